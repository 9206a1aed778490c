package asyncengine

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/gosqla/gosqla/asyncengine/driver"
)

// Conn is a connection checked out of the engine's pool. Like every Go driver connection it is
// not goroutine-safe; a call made while another goroutine's call is running on it returns
// ErrConcurrentUse and leaves the running call alone. Close returns it to the pool.
//
// After its physical connection is lost (a *DisconnectError) a Conn outside a transaction
// reconnects on its next use; inside one, every call returns ErrPendingRollback until Rollback.
type Conn struct {
	e         *Engine
	pc        *pconn // nil once invalidated, until the next use reconnects
	hookOnly  bool   // handed to a pool hook: not checked out, Close does nothing
	finalizer bool   // a finalizer recovers the connection if the Conn leaks
	inUse     atomic.Bool
	// rowsOpen: a cursor (or stream) holds inUse; cursor is that cursor, for Close, written before
	// rowsOpen is set and left as it is when it is cleared, so that whoever sees rowsOpen reads
	// it safely. (An atomic.Pointer would do both, but its Load makes every Conn escape to the
	// heap, the Engine's own on-stack ones included.)
	rowsOpen atomic.Bool
	cursor   *Cursor
	closed   bool
	tx       *Tx  // innermost open transaction
	lost     bool // the connection was lost inside a transaction
	// aborted is the error of a statement that failed inside the open transaction: until a
	// Rollback (of it or of a savepoint around the failure) every call returns ErrPendingRollback,
	// on every driver — PostgreSQL aborts such a transaction, SQLite would commit the rest of it
	aborted error
	// beginning is the trace context of a transaction whose BEGIN (or SAVEPOINT) is running
	beginning context.Context
	trips     int64 // the driver's round-trip count at checkout
	// the transaction of Engine.Begin, which never hands it out: the Conn is its only allocation
	ownTx Tx
}

// busy is the error of a call made while the Conn is in use: by rows still open, or by another
// goroutine.
func (c *Conn) busy() error {
	if c.rowsOpen.Load() {
		return fmt.Errorf("%w (here: the rows of a Cursor or Stream are still open on this connection; close the cursor or leave the loop first)", ErrConcurrentUse)
	}
	return ErrConcurrentUse
}

func roundTrips(pc *pconn) int64 {
	if rt, ok := pc.dc.(driver.RoundTripper); ok {
		return rt.RoundTrips()
	}
	return 0
}

// countTrips adds the round trips made since checkout to the pool's counter.
func (c *Conn) countTrips(pc *pconn) {
	if n := roundTrips(pc) - c.trips; n > 0 {
		c.e.base.roundTrips.Add(n)
	}
}

// ExecResult is what a statement without rows reports.
type ExecResult struct {
	rowsAffected int64
}

// RowsAffected is the number of rows the statement inserted, updated or deleted.
func (r ExecResult) RowsAffected() int64 { return r.rowsAffected }

// ID identifies the physical connection: two Conns with the same ID used the same driver
// connection. It is 0 while the Conn has none (after invalidation).
func (c *Conn) ID() uint64 {
	if c.pc == nil {
		return 0
	}
	return c.pc.id
}

// Engine returns the engine the connection came from.
func (c *Conn) Engine() *Engine { return c.e }

// Dialect returns the connection's SQL dialect.
func (c *Conn) Dialect() *Dialect { return c.e.dialect }

// driverConn returns the driver connection, nil while c has none.
func (c *Conn) driverConn() driver.Conn {
	if c.pc == nil {
		return nil
	}
	return c.pc.dc
}

// guarded runs fn with the driver connection under c's concurrent-use guard and error handling:
// a lost connection is invalidated. Blocking drivers run fn on the engine's workers.
func (c *Conn) guarded(ctx context.Context, fn func(driver.Conn) error) error {
	_, err := guardedCall(ctx, c, fn, callFunc)
	return err
}

func callFunc(_ context.Context, dc driver.Conn, fn func(driver.Conn) error) (struct{}, error) {
	return struct{}{}, fn(dc)
}

// guardedCall is guarded for a driver call fn(ctx, dc, a) returning a value. fn is a plain
// function rather than a closure, so that a call on a non-blocking driver allocates nothing for
// it.
func guardedCall[A, R any](ctx context.Context, c *Conn, a A, fn func(context.Context, driver.Conn, A) (R, error)) (R, error) {
	if !c.inUse.CompareAndSwap(false, true) {
		var zero R
		return zero, c.busy()
	}
	defer c.inUse.Store(false)
	return doCall(ctx, c, a, fn)
}

func doCall[A, R any](ctx context.Context, c *Conn, a A, fn func(context.Context, driver.Conn, A) (R, error)) (r R, err error) {
	switch {
	case c.closed:
		return r, ErrConnClosed
	case c.lost:
		return r, ErrPendingRollback
	case c.aborted != nil:
		return r, fmt.Errorf("%w (a statement of the transaction failed: %w)", ErrPendingRollback, c.aborted)
	}
	if c.pc == nil {
		pc, err := c.e.pool.get(ctx)
		if err != nil {
			return r, err
		}
		c.pc = pc
		c.trips = roundTrips(pc)
	}
	if !c.pc.busy.CompareAndSwap(false, true) {
		return r, ErrConcurrentUse
	}
	dc := c.pc.dc
	if c.e.connector.Blocking() {
		r, err = callOnWorker(ctx, c.e, dc, a, fn)
	} else {
		r, err = catchDriverPanic(ctx, dc, a, fn)
	}
	c.pc.busy.Store(false)
	if err != nil {
		return r, c.failed(ctx, err)
	}
	return r, nil
}

// callOnWorker runs a blocking driver call on the engine's workers. It is kept apart from doCall
// so that the variables its closure captures live on the heap only on this path.
func callOnWorker[A, R any](ctx context.Context, e *Engine, dc driver.Conn, a A, fn func(context.Context, driver.Conn, A) (R, error)) (r R, err error) {
	err = e.callOnWorker(func() error {
		var err error
		r, err = fn(ctx, dc, a)
		return err
	})
	return r, err
}

// failed handles a driver error: a connection that is gone is invalidated and its slot freed.
func (c *Conn) failed(ctx context.Context, err error) error {
	pc := c.pc
	var enc *driver.EncodeError
	if errors.As(err, &enc) {
		// refused before it was sent. A pipeline keeps its statement index outermost, with the
		// *ArgumentError for the statement's error.
		var pipe *driver.PipelineError
		if errors.As(err, &pipe) {
			err = &driver.PipelineError{Index: pipe.Index, Err: encodeArgumentError(enc, pipe.Err), NotExecuted: pipe.NotExecuted}
		} else {
			err = encodeArgumentError(enc, err)
		}
		if !pc.dc.IsClosed() {
			return err // the connection and its transaction go on
		}
		// pgx closes the connection when a pipeline (a batch of described statements) fails
		// to encode a statement after it queued others: invalidated below, as any closed one
	} else if c.tx != nil && reachedServer(err) {
		c.aborted = err
	}
	disconnect := c.e.connector.IsDisconnect(err)
	// a panic may have left the connection in the middle of the protocol: it is not reused
	var pe *PanicError
	panicked := errors.As(err, &pe)
	if !disconnect && !panicked && !pc.dc.IsClosed() {
		return err
	}
	c.pc = nil
	c.countTrips(pc)
	c.e.base.invalidated(ctx, pc, err)
	c.e.pool.discard(pc)
	if c.tx != nil {
		c.lost = true
	}
	if disconnect {
		return &DisconnectError{ConnID: pc.id, Err: err}
	}
	return err
}

// encodeArgumentError is the *ArgumentError of an argument the driver could not encode (enc),
// wrapping err.
func encodeArgumentError(enc *driver.EncodeError, err error) *ArgumentError {
	fix := enc.Fix
	if fix == "" {
		fix = "pass a type the driver encodes (see the package documentation's type table) or one implementing driver.Valuer"
	}
	return &ArgumentError{Fix: "an argument cannot be encoded for the server: " + enc.Err.Error() + "; " + fix, Err: err}
}

// Exec runs a statement that returns no rows. Arguments are positional ($1 / ?) or one Named.
func (c *Conn) Exec(ctx context.Context, sql string, args ...any) (ExecResult, error) {
	if err := c.refuseTxControl(sql); err != nil {
		return ExecResult{}, err
	}
	n, err := runStatement(ctx, c, sql, args, execStatement, execRows)
	return ExecResult{rowsAffected: n}, err
}

// control runs a statement of the Tx's own that begins, ends or marks the transaction.
func (c *Conn) control(ctx context.Context, sql string) error {
	_, err := runStatement(ctx, c, sql, nil, execStatement, execRows)
	return err
}

// Query runs a statement and returns its buffered result.
func (c *Conn) Query(ctx context.Context, sql string, args ...any) (*Result, error) {
	if err := c.oneQuery(sql); err != nil {
		return nil, err
	}
	if err := c.refuseTxControl(sql); err != nil {
		return nil, err
	}
	r, err := runStatement(ctx, c, sql, args, queryStatement, queryRows)
	if err != nil {
		return nil, err
	}
	return newResult(r, c.e.pg), nil
}

// queryUntraced is Query for an engine without a query tracer (see runUntraced).
func (c *Conn) queryUntraced(ctx context.Context, sql string, args []any) (*Result, error) {
	if err := c.oneQuery(sql); err != nil {
		return nil, err
	}
	r, err := runUntraced(ctx, c, sql, args, queryStatement)
	if err != nil {
		return nil, err
	}
	return newResult(r, c.e.pg), nil
}

// oneQuery refuses a query of several statements on SQLite, whose driver would return the last
// one's rows and drop the others; PostgreSQL's extended protocol refuses it itself.
func (c *Conn) oneQuery(sql string) error {
	if c.e.pg {
		return nil
	}
	return oneStatement(sql, false)
}

// runStatement is the one path of Exec and Query: bind the arguments, run the statement under
// the connection's guard, and report it to echo and the query tracer.
func runStatement[R any](ctx context.Context, c *Conn, sql string, args []any, call func(context.Context, driver.Conn, driver.Statement) (R, error), affected func(R) int64) (R, error) {
	qt := c.e.trace.query
	if qt == nil {
		return runUntraced(ctx, c, sql, args, call)
	}
	sql, args, err := bindArgs(c.e.dialect, sql, args)
	if err != nil {
		var zero R
		return zero, err
	}
	start := c.echoStart()
	ctx = qt.TraceQueryStart(ctx, c, TraceQueryStartData{SQL: sql, Args: c.e.traceArgs(args)})
	r, err := guardedCall(ctx, c, driver.Statement{SQL: sql, Args: args}, call)
	c.echo(ctx, sql, args, start, err)
	qt.TraceQueryEnd(ctx, c, TraceQueryEndData{RowsAffected: affected(r), Err: err})
	return r, err
}

// runUntraced is runStatement without a tracer. It hands c to nothing that may keep it (a tracer
// may), so that the Conn of Engine.Exec and Engine.Query stays on their stack when the engine
// has no query tracer: tracing costs no allocation when it is off.
func runUntraced[R any](ctx context.Context, c *Conn, sql string, args []any, call func(context.Context, driver.Conn, driver.Statement) (R, error)) (R, error) {
	sql, args, err := bindArgs(c.e.dialect, sql, args)
	if err != nil {
		var zero R
		return zero, err
	}
	start := c.echoStart()
	r, err := guardedCall(ctx, c, driver.Statement{SQL: sql, Args: args}, call)
	c.echo(ctx, sql, args, start, err)
	return r, err
}

func execRows(n int64) int64 { return n }

func queryRows(r *driver.Result) int64 {
	if r == nil {
		return 0
	}
	return r.RowsAffected
}

func execStatement(ctx context.Context, dc driver.Conn, st driver.Statement) (int64, error) {
	return dc.Exec(ctx, st.SQL, st.Args)
}

func queryStatement(ctx context.Context, dc driver.Conn, st driver.Statement) (*driver.Result, error) {
	return dc.Query(ctx, st.SQL, st.Args)
}

// echoStart is when a statement starts, for echo: the clock is read only when statements are
// logged.
func (c *Conn) echoStart() time.Time {
	if c.e.log == nil {
		return time.Time{}
	}
	return time.Now()
}

func (c *Conn) echo(ctx context.Context, sql string, args []any, start time.Time, err error) {
	if c.e.log == nil {
		return
	}
	params := c.e.cfg.LogParameters
	if err != nil {
		c.e.log.DebugContext(ctx, "gosqla: sql", "conn", c.ID(), "sql", capped(sql), "args", statementArgs(args, params), "elapsed", time.Since(start), "error", statementError(err, params))
		return
	}
	c.e.log.DebugContext(ctx, "gosqla: sql", "conn", c.ID(), "sql", capped(sql), "args", statementArgs(args, params), "elapsed", time.Since(start))
}

// Ping checks that the connection is alive.
func (c *Conn) Ping(ctx context.Context) error {
	return c.guarded(ctx, func(dc driver.Conn) error { return dc.Ping(ctx) })
}

// Invalidate discards the physical connection instead of returning it to the pool; the Conn
// reconnects on its next use. If err is a disconnect, every older pooled connection is marked
// stale too.
func (c *Conn) Invalidate(err error) {
	if c.hookOnly || c.pc == nil || !c.inUse.CompareAndSwap(false, true) {
		return
	}
	defer c.inUse.Store(false)
	if err == nil {
		err = fmt.Errorf("invalidated by the application")
	}
	pc := c.pc
	c.pc = nil
	c.e.base.invalidated(context.Background(), pc, err)
	c.e.pool.discard(pc)
	if c.tx != nil {
		c.lost = true
	}
}

// Close returns the connection to the pool, first ending an open transaction as
// pool_reset_on_return says. A second Close does nothing.
func (c *Conn) Close() error {
	if c.hookOnly {
		return nil
	}
	if !c.inUse.CompareAndSwap(false, true) {
		// rows left open: closing the connection discards them (a deferred Close must not leak
		// the connection because a loop or cursor was not closed first), unless another goroutine
		// is reading them right now
		if !c.rowsOpen.Load() || c.cursor.Close() == ErrConcurrentUse || !c.inUse.CompareAndSwap(false, true) {
			return ErrConcurrentUse
		}
	}
	defer c.inUse.Store(false)
	if c.closed {
		return nil
	}
	if c.finalizer {
		runtime.SetFinalizer(c, nil)
	}
	c.release()
	return nil
}

// release is Close for a Conn that is in use by its closer and has no finalizer (Engine.Exec and
// Query's own, which live on their caller's stack).
func (c *Conn) release() {
	c.closed = true
	for tx := c.tx; tx != nil; tx = tx.parent {
		tx.traceTxEnd(false, ErrTxDone)
		tx.done = true
	}
	c.tx, c.aborted = nil, nil
	pc := c.pc
	c.pc = nil
	if pc == nil {
		return
	}
	e := c.e
	c.countTrips(pc)
	e.base.logConn(context.Background(), "checkin", pc.id)
	if h := e.cfg.OnCheckin; h != nil {
		e.base.notify("OnCheckin", pc.id, func() { h(pc.id) })
	}
	if err := c.reset(pc); err != nil {
		e.base.invalidated(context.Background(), pc, err)
		e.pool.discard(pc)
		return
	}
	e.pool.put(pc)
}

// reset ends a transaction left open, unless pool_reset_on_return=none. Nothing is sent when no
// transaction is open.
func (c *Conn) reset(pc *pconn) error {
	e := c.e
	mode := e.cfg.PoolResetOnReturn
	if pc.dc.IsClosed() {
		return fmt.Errorf("connection closed before checkin")
	}
	if mode == ResetNone || !pc.dc.InTransaction() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stmt := "ROLLBACK"
	if mode == ResetCommit {
		stmt = "COMMIT"
	}
	err := e.call(func() error {
		_, err := pc.dc.Exec(ctx, stmt, nil)
		return err
	})
	if err == nil {
		e.base.logf(ctx, "reset", "conn", pc.id, "mode", string(mode))
		if h := e.cfg.OnReset; h != nil {
			e.base.notify("OnReset", pc.id, func() { h(pc.id, mode) })
		}
	}
	return err
}
