package asyncengine

import (
	"context"

	"github.com/gosqla/gosqla/asyncengine/driver"
)

// Cursor reads a query's rows one at a time as they arrive, without holding the result, for
// code that pulls rows instead of ranging over Stream (a database/sql driver, a loop with
// several exits). The connection serves nothing else until Close, which must be called; Next
// returning false closes it too.
type Cursor struct {
	c       *Conn
	ctx     context.Context
	rows    driver.Rows
	pc      *pconn
	row     *Row
	more    bool
	advance func() error // reads the next row, on a worker for a blocking driver
	traced  bool
	err     error
	done    bool
}

// Cursor runs a query and returns a cursor on its rows. An error of the query itself (SQL,
// arguments, a lost connection) is returned here, with no cursor.
func (c *Conn) Cursor(ctx context.Context, sql string, args ...any) (*Cursor, error) {
	if !c.inUse.CompareAndSwap(false, true) {
		return nil, ErrConcurrentUse
	}
	cu, err := c.openCursor(ctx, sql, args)
	if err != nil {
		c.inUse.Store(false)
		return nil, err
	}
	return cu, nil
}

func (c *Conn) openCursor(ctx context.Context, sql string, args []any) (*Cursor, error) {
	if err := c.oneQuery(sql); err != nil {
		return nil, err
	}
	sql, args, err := bindArgs(c.e.dialect, sql, args)
	if err != nil {
		return nil, err
	}
	qt := c.e.trace.query
	if qt != nil {
		ctx = qt.TraceQueryStart(ctx, c, TraceQueryStartData{SQL: sql, Args: c.e.traceArgs(args)})
	}
	start := c.echoStart()
	rows, err := doCall(ctx, c, driver.Statement{SQL: sql, Args: args}, streamStatement)
	c.echo(ctx, sql, args, start, err)
	if err != nil {
		if qt != nil {
			qt.TraceQueryEnd(ctx, c, TraceQueryEndData{Err: err})
		}
		return nil, err
	}
	// the driver connection stays busy until the rows are closed
	pc := c.pc
	pc.busy.Store(true)
	cu := &Cursor{c: c, ctx: ctx, rows: rows, pc: pc, traced: qt != nil,
		row: &Row{rows: rows, cols: rows.Columns(), pg: c.e.pg}}
	cu.advance = func() error { cu.more = rows.Next(); return nil }
	return cu, nil
}

// Columns returns the column names.
func (cu *Cursor) Columns() []string { return cu.row.Columns() }

// ColumnTypes returns the database's type names of the columns.
func (cu *Cursor) ColumnTypes() []string { return cu.row.ColumnTypes() }

// Next advances to the next row and reports whether there is one. After false the cursor is
// closed, and Err says whether the rows ended or failed.
func (cu *Cursor) Next() bool {
	if cu.done {
		return false
	}
	if cu.ctx.Err() == nil {
		if err := cu.c.e.call(cu.advance); err == nil && cu.more {
			return true
		}
	}
	// the end, a cancelled context (the driver reports it when the rows close), or a failure
	cu.finish(false)
	return false
}

// Row is the current row, valid until the next call of Next or Close.
func (cu *Cursor) Row() *Row { return cu.row }

// Err is the error that ended the rows, if any.
func (cu *Cursor) Err() error { return cu.err }

// Close discards the rows not read and frees the connection. It returns the rows' error, not one
// of the discarded rest.
func (cu *Cursor) Close() error {
	if !cu.done {
		cu.finish(true)
	}
	return cu.err
}

// finish closes the rows; stopped means the caller gave up on the rest, whose error is not
// theirs to hear (a lost connection is still invalidated).
func (cu *Cursor) finish(stopped bool) {
	cu.done = true
	c := cu.c
	err := c.e.call(cu.rows.Close)
	cu.pc.busy.Store(false)
	if err == nil {
		err = cu.ctx.Err()
	}
	if err != nil {
		err = c.failed(cu.ctx, err)
	}
	if stopped {
		err = nil
	}
	cu.err = err
	if cu.traced {
		c.e.trace.query.TraceQueryEnd(cu.ctx, c, TraceQueryEndData{Err: err})
	}
	c.inUse.Store(false)
}
