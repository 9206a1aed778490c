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

// ColumnTypes returns the database's type names of the columns (lower case: "int8", "jsonb").
func (r *Row) ColumnTypes() []string { return columnTypes(r.cols) }

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
		v, err := r.Value(j)
		if err != nil {
			return nil, err
		}
		out[j] = v
	}
	return out, nil
}

// Value returns column j (from 0) as its untyped Go value, as Values does, decoding that column
// alone.
func (r *Row) Value(j int) (any, error) {
	v, err := r.rows.Value(j)
	if err != nil {
		return nil, valueError(r.cols[j], err)
	}
	return v, nil
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
// ending it early (break, return) discards the rest of the result and frees the connection (see
// Cursor.Close for what that costs).
// Cancelling ctx stops the query. An error ends the sequence as its last element.
func (c *Conn) Stream(ctx context.Context, sql string, args ...any) iter.Seq2[*Row, error] {
	return func(yield func(*Row, error) bool) {
		cu, err := c.Cursor(ctx, sql, args...)
		if err != nil {
			yield(nil, err)
			return
		}
		// the rows are closed also when the loop body panics
		defer cu.Close()
		for cu.Next() {
			if !yield(&cu.row, nil) {
				return
			}
		}
		if err := cu.Close(); err != nil {
			yield(nil, err)
		}
	}
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
