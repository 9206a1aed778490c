package asyncengine

import (
	"context"
	"sync/atomic"

	"github.com/gosqla/gosqla/asyncengine/driver"
)

// Cursor reads a query's rows one at a time as they arrive, without holding the result, for
// code that pulls rows instead of ranging over Stream (a database/sql driver, a loop with
// several exits). The connection serves nothing else until Close, which must be called; Next
// returning false closes it too, and so does closing the Conn. A call on the Conn while the rows
// are open fails with ErrConcurrentUse, saying the rows are open. Cancelling the context given to
// Conn.Cursor stops the query: Next returns false and Err the context's error.
type Cursor struct {
	c       *Conn
	ctx     context.Context
	rows    driver.Rows
	row     Row
	more    bool
	advance func() error // reads the next row on a worker (blocking drivers), made on first use
	err     error
	done    bool
	// busy is held by Next and Close: a Conn.Close from another goroutine does not close rows
	// that are being read
	busy atomic.Bool
}

// Cursor runs a query and returns a cursor on its rows. An error of the query itself (SQL,
// arguments, a lost connection) is returned here, with no cursor.
func (c *Conn) Cursor(ctx context.Context, sql string, args ...any) (*Cursor, error) {
	if !c.inUse.CompareAndSwap(false, true) {
		return nil, c.busy()
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
	if err := c.refuseTxControl(sql); err != nil {
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
	c.pc.busy.Store(true)
	cu := &Cursor{c: c, ctx: ctx, rows: rows, row: Row{rows: rows, cols: rows.Columns(), pg: c.e.pg}}
	c.cursor = cu
	c.rowsOpen.Store(true)
	return cu, nil
}

// Columns returns the column names.
func (cu *Cursor) Columns() []string { return cu.row.Columns() }

// ColumnTypes returns the database's type names of the columns.
func (cu *Cursor) ColumnTypes() []string { return cu.row.ColumnTypes() }

// Next advances to the next row and reports whether there is one. After false the cursor is
// closed, and Err says whether the rows ended or failed.
func (cu *Cursor) Next() bool {
	if !cu.busy.CompareAndSwap(false, true) {
		return false // being closed by another goroutine
	}
	defer cu.busy.Store(false)
	if cu.done {
		return false
	}
	var failure error
	if cu.ctx.Err() == nil {
		if failure = cu.step(); failure == nil && cu.more {
			return true
		}
	}
	// the end, a cancelled context (the driver reports it when the rows close), or a failure
	cu.finish(false, failure)
	return false
}

// step reads the next row into cu.more; its error is a panic of the driver's.
func (cu *Cursor) step() error {
	e := cu.c.e
	if !e.connector.Blocking() {
		var err error
		cu.more, err = catchDriverPanic(cu.ctx, nil, cu.rows, nextRow)
		return err
	}
	if cu.advance == nil {
		cu.advance = func() error { cu.more = cu.rows.Next(); return nil }
	}
	return e.callOnWorker(cu.advance)
}

// closeRows closes the rows, on a worker for a blocking driver; its error may be a panic of the
// driver's.
func (cu *Cursor) closeRows() error {
	if e := cu.c.e; e.connector.Blocking() {
		return e.callOnWorker(cu.rows.Close)
	}
	_, err := catchDriverPanic(cu.ctx, nil, cu.rows, closeRows)
	return err
}

// drainBeforeCancel is how many rows a cursor closed early reads before it asks the server to
// stop the statement: the rest of a short result costs less to read than a cancel request.
const drainBeforeCancel = 64

// abandon makes closing a cursor before its end cheap: the rows left of a short result are read,
// and a longer one is cancelled on the server when the driver can do so without aborting a
// transaction (else Close reads the rest). Its error is a panic of the driver's.
func (cu *Cursor) abandon() error {
	rc, ok := cu.rows.(driver.RowsCanceler)
	if !ok {
		return nil // closing the rows reads the rest
	}
	for range drainBeforeCancel {
		if cu.ctx.Err() != nil {
			return nil
		}
		if err := cu.step(); err != nil || !cu.more {
			return err
		}
	}
	rc.Cancel(cu.ctx)
	return nil
}

// nextRow and closeRows are plain functions, so that a call on a non-blocking driver allocates
// nothing for them.
func nextRow(_ context.Context, _ driver.Conn, rows driver.Rows) (bool, error) {
	return rows.Next(), nil
}

func closeRows(_ context.Context, _ driver.Conn, rows driver.Rows) (struct{}, error) {
	return struct{}{}, rows.Close()
}

// Row is the current row, valid until the next call of Next or Close.
func (cu *Cursor) Row() *Row { return &cu.row }

// Err is the error that ended the rows, if any.
func (cu *Cursor) Err() error { return cu.err }

// Close discards the rows not read and frees the connection (while another goroutine is in Next,
// it returns ErrConcurrentUse and closes nothing): outside a transaction, on
// PostgreSQL's native driver, a result with more than a few dozen rows left is cancelled on the
// server instead of read to its end; inside a transaction (where a cancel would abort it) and on
// other drivers the rest is read and discarded. It returns the rows' error, not one of the
// discarded rest.
func (cu *Cursor) Close() error {
	if !cu.busy.CompareAndSwap(false, true) {
		return ErrConcurrentUse // being read by another goroutine
	}
	defer cu.busy.Store(false)
	if !cu.done {
		cu.finish(true, nil)
	}
	return cu.err
}

// finish closes the rows; stopped means the caller gave up on the rest, whose error is not
// theirs to hear (a lost connection is still invalidated). failure is a panic of the driver's
// while reading a row: it left the connection mid-protocol, so it is the error handled (the
// connection is invalidated), whatever closing the rows says.
func (cu *Cursor) finish(stopped bool, failure error) {
	cu.done = true
	c := cu.c
	if stopped && failure == nil {
		failure = cu.abandon()
	}
	err := cu.closeRows()
	c.pc.busy.Store(false)
	if failure != nil {
		err = failure
	}
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
	if qt := c.e.trace.query; qt != nil {
		qt.TraceQueryEnd(cu.ctx, c, TraceQueryEndData{Err: err})
	}
	c.rowsOpen.Store(false)
	c.inUse.Store(false)
}
