package asyncengine

import (
	"context"
	"iter"
	"reflect"

	"github.com/gosqla/gosqla/asyncengine/driver"
	"github.com/gosqla/gosqla/internal/structmap"
)

// Row is the current row of a stream. It is valid until the loop body returns.
type Row struct {
	rows  driver.Rows
	cols  []driver.Column
	names []string
	pg    bool
}

// Columns returns the column names.
func (r *Row) Columns() []string {
	if r.names == nil {
		r.names = columnNames(r.cols)
	}
	return r.names
}

// Scan scans the row into dest, one pointer per column (nil skips a column), by the same rules
// as Result.ScanRow.
func (r *Row) Scan(dest ...any) error { return scanRow(r, 0, len(r.cols), dest) }

// Values returns the row as untyped Go values (see Result.Values).
func (r *Row) Values() ([]any, error) {
	out := make([]any, len(r.cols))
	for j := range out {
		v, err := r.rows.Value(j)
		if err != nil {
			return nil, valueError(r.cols[j], err)
		}
		out[j] = v
	}
	return out, nil
}

func (r *Row) scanCell(_, j int, d any) error {
	if err := r.rows.Scan(j, d); err != nil {
		v, _ := r.rows.Value(j)
		return convertError(r.cols[j], reflect.TypeOf(d), v == nil, r.pg, err)
	}
	return nil
}

// Stream runs a query and yields its rows as they arrive, without holding the result: a loop over
// a million rows takes the memory of one. The connection serves nothing else until the loop ends;
// ending it early (break, return) discards the rest of the result and frees the connection.
// Cancelling ctx stops the query. An error ends the sequence as its last element.
func (c *Conn) Stream(ctx context.Context, sql string, args ...any) iter.Seq2[*Row, error] {
	return func(yield func(*Row, error) bool) {
		if !c.inUse.CompareAndSwap(false, true) {
			yield(nil, ErrConcurrentUse)
			return
		}
		defer c.inUse.Store(false)
		if err := c.stream(ctx, sql, args, yield); err != nil {
			yield(nil, err)
		}
	}
}

func (c *Conn) stream(ctx context.Context, sql string, args []any, yield func(*Row, error) bool) (err error) {
	if err := c.oneQuery(sql); err != nil {
		return err
	}
	sql, args, err = bindArgs(c.e.dialect, sql, args)
	if err != nil {
		return err
	}
	if qt := c.e.trace.query; qt != nil {
		ctx = qt.TraceQueryStart(ctx, c, TraceQueryStartData{SQL: sql, Args: c.e.traceArgs(args)})
		defer func() { qt.TraceQueryEnd(ctx, c, TraceQueryEndData{Err: err}) }()
	}
	start := c.echoStart()
	rows, err := doCall(ctx, c, driver.Statement{SQL: sql, Args: args}, streamStatement)
	c.echo(ctx, sql, args, start, err)
	if err != nil {
		return err
	}
	// the driver connection stays busy until the rows are closed, also when the loop body panics
	pc := c.pc
	pc.busy.Store(true)
	open := true
	closeRows := func() error {
		open = false
		err := c.e.call(rows.Close)
		pc.busy.Store(false)
		return err
	}
	defer func() {
		if open {
			if err := closeRows(); err != nil {
				_ = c.failed(ctx, err)
			}
		}
	}()
	row := &Row{rows: rows, cols: rows.Columns(), pg: c.e.pg}
	var more bool
	next := func() error { more = rows.Next(); return nil }
	stopped := false
	for {
		if ctx.Err() != nil {
			break // the driver reports the cancellation when the rows close
		}
		if err := c.e.call(next); err != nil || !more {
			break
		}
		if !yield(row, nil) {
			stopped = true
			break
		}
	}
	err = closeRows()
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		err = c.failed(ctx, err)
	}
	if stopped {
		return nil // the caller is gone: an error of the discarded rest is not theirs to hear
	}
	return err
}

func streamStatement(ctx context.Context, dc driver.Conn, st driver.Statement) (driver.Rows, error) {
	return dc.QueryRows(ctx, st.SQL, st.Args)
}

// Stream checks out a connection, streams the query's rows as Conn.Stream does, and returns the
// connection when the loop ends.
func (e *Engine) Stream(ctx context.Context, sql string, args ...any) iter.Seq2[*Row, error] {
	return func(yield func(*Row, error) bool) {
		c, err := e.checkout(ctx)
		if err != nil {
			yield(nil, err)
			return
		}
		defer c.Close()
		for row, err := range c.Stream(ctx, sql, args...) {
			if !yield(row, err) {
				return
			}
		}
	}
}

// ScanEach maps a stream's rows to values of T, matching columns to the fields' `db` tags as
// ScanAll does. Each T is a fresh value.
func ScanEach[T any](rows iter.Seq2[*Row, error]) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		m, err := structmap.Of(reflect.TypeFor[T]())
		if err != nil {
			yield(zero, err)
			return
		}
		var fields []*structmap.Field
		for row, err := range rows {
			if err != nil {
				yield(zero, err)
				return
			}
			if fields == nil {
				if fields, err = columnFields(m, row.Columns()); err != nil {
					yield(zero, err)
					return
				}
			}
			var v T
			if err := scanFields(row, 0, reflect.ValueOf(&v).Elem(), fields); err != nil {
				yield(zero, err)
				return
			}
			if !yield(v, nil) {
				return
			}
		}
	}
}
