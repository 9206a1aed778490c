package asyncengine

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gosqla/gosqla/asyncengine/driver"
	_ "github.com/gosqla/gosqla/asyncengine/internal/pgxdriver" // registers pgx and stdlib
	_ "github.com/gosqla/gosqla/asyncengine/internal/sqldriver" // registers sqlite
)

// Engine is the entry point: a connection pool, a dialect and a worker pool. It is safe for
// concurrent use, and connects lazily: nothing is opened before the first checkout.
type Engine struct {
	cfg       *Config
	connector driver.Connector
	dialect   *Dialect
	pg        bool // PostgreSQL, whichever driver: results scan by pgx's rules
	pool      pool
	base      *poolBase
	workers   *Workers
	log       *slog.Logger // nil unless echo is on
	trace     tracers
	closed    atomic.Bool
}

// New parses url (see ParseConfig) and returns an engine.
func New(url string) (*Engine, error) {
	cfg, err := ParseConfig(url)
	if err != nil {
		return nil, err
	}
	return NewWithConfig(cfg)
}

// NewWithConfig returns an engine for a configuration from ParseConfig.
func NewWithConfig(cfg *Config) (*Engine, error) {
	if cfg == nil {
		return nil, &ConfigError{Err: fmt.Errorf("a nil Config: build one with ParseConfig")}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := cfg.Replica.refuseInEngine(); err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, dialect: dialectFor(string(cfg.Dialect)), pg: cfg.Dialect == DialectPostgreSQL}
	if cfg.Echo {
		e.log = cfg.Logger
		if e.log == nil {
			e.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	}
	e.trace = newTracers(cfg.Tracer, e.warnLog())
	var err error
	if e.connector, err = newConnector(cfg); err != nil {
		return nil, err
	}
	workers := cfg.Workers
	if workers == 0 {
		if workers = cfg.capacity(); workers == 0 {
			workers = 64
		}
	}
	e.workers = NewWorkers(workers, cfg.WorkerQueue)
	e.base = newPoolBase(e.poolDeps())
	if cfg.PoolClass == PoolPgxpool {
		if e.pool, err = newPgxPool(e.base, cfg, e.connector); err != nil {
			return nil, err
		}
	} else {
		e.pool = newQueuePool(e.base, cfg)
	}
	e.logf(context.Background(), "engine created", "url", cfg.String(), "poolclass", string(cfg.PoolClass))
	return e, nil
}

// poolDeps is what the engine hands its pool: the connector, how to run a driver call, the
// hooks (given a Conn that is not checked out: closing it does nothing) and the loggers.
func (e *Engine) poolDeps() poolDeps {
	cfg := e.cfg
	asConn := func(hook func(context.Context, *Conn) error) func(context.Context, *pconn) error {
		if hook == nil {
			return nil
		}
		return func(ctx context.Context, pc *pconn) error { return hook(ctx, &Conn{e: e, pc: pc, hookOnly: true}) }
	}
	return poolDeps{
		connector: e.connector,
		call:      e.call,
		hooks: poolHooks{connect: asConn(cfg.OnConnect), firstConnect: asConn(cfg.OnFirstConnect), checkout: asConn(cfg.OnCheckout),
			invalidate: cfg.OnInvalidate, close: cfg.OnClose},
		echo: e.log, warn: e.warnLog(), engine: e, connectTracer: e.trace.connect,
		timeout: cfg.PoolTimeout, recycle: cfg.PoolRecycle, prePing: cfg.PoolPrePing, debug: cfg.PoolDebug,
	}
}

// warnLog receives what must not be lost whether echo is on or not.
func (e *Engine) warnLog() *slog.Logger {
	switch {
	case e.log != nil:
		return e.log
	case e.cfg.Logger != nil:
		return e.cfg.Logger
	}
	return slog.Default()
}

// newConnector builds the configured driver's connector; the driver parses the DSN once.
func newConnector(cfg *Config) (driver.Connector, error) {
	open, _ := driver.Lookup(string(cfg.Driver)) // validate saw it registered
	c, err := open(driver.Config{DSN: cfg.DSN, StatementCache: string(cfg.StatementCache), CancelGrace: cfg.CancelGrace})
	if err != nil {
		ce := &ConfigError{Value: cfg.String(), Err: err}
		if strings.Contains(err.Error(), "target_session_attrs") {
			ce.Allowed = "target_session_attrs=any, read-write, read-only, primary, standby, prefer-standby"
		}
		return nil, secretsOf(cfg.DSN).clean(ce)
	}
	return c, nil
}

// Config returns the engine's configuration. Do not modify it.
func (e *Engine) Config() *Config { return e.cfg }

// Dialect returns the engine's SQL dialect.
func (e *Engine) Dialect() *Dialect { return e.dialect }

// Workers returns the engine's worker pool.
func (e *Engine) Workers() *Workers { return e.workers }

// Blocking reports whether the driver blocks (database/sql), so its calls run on Workers.
func (e *Engine) Blocking() bool { return e.connector.Blocking() }

// Stats returns a snapshot of the pool.
func (e *Engine) Stats() PoolStats {
	s := e.pool.stats()
	if s.MaxOpen == 0 {
		s.MaxOpen = e.cfg.capacity()
	}
	return s
}

// call runs a driver call: inline for a non-blocking driver, on Workers for a blocking one. A
// panic in the driver comes back as a *PanicError.
func (e *Engine) call(fn func() error) error {
	if !e.connector.Blocking() {
		return CatchPanic(fn)
	}
	return e.callOnWorker(fn)
}

// callOnWorker runs fn on a worker (kept apart from call so that a non-blocking call allocates
// nothing for it).
func (e *Engine) callOnWorker(fn func() error) (err error) {
	e.workers.do(func() { err = CatchPanic(fn) })
	return err
}

// Connect checks a connection out of the pool. Close returns it.
func (e *Engine) Connect(ctx context.Context) (*Conn, error) {
	c, err := e.checkout(ctx)
	if err != nil {
		return nil, err
	}
	c.finalizer = true
	runtime.SetFinalizer(c, (*Conn).finalize)
	return c, nil
}

// checkout checks a connection out for a caller that closes it itself before returning (Exec,
// Query, Begin, Stream): it needs no finalizer to recover a leak.
func (e *Engine) checkout(ctx context.Context) (*Conn, error) {
	c := &Conn{}
	if err := e.checkoutTo(ctx, c); err != nil {
		return nil, err
	}
	return c, nil
}

// checkoutTo is checkout into a Conn the caller provides: Exec and Query keep theirs on the stack.
func (e *Engine) checkoutTo(ctx context.Context, c *Conn) error {
	if e.closed.Load() {
		return ErrPoolClosed
	}
	if _, nested := ctx.Value(connKey{e}).(*Conn); nested {
		if limit := e.cfg.capacity(); limit > 0 && e.pool.stats().CheckedOut >= limit {
			return ErrNestedCheckout
		}
	}
	if t := e.trace.checkout; t != nil {
		return e.tracedCheckout(ctx, t, c)
	}
	pc, err := e.pool.get(ctx)
	if err != nil {
		return err
	}
	c.e, c.pc, c.trips = e, pc, roundTrips(pc)
	return nil
}

func (e *Engine) tracedCheckout(ctx context.Context, t CheckoutTracer, c *Conn) error {
	tctx := t.TraceCheckoutStart(ctx, e, TraceCheckoutStartData{})
	pc, err := e.pool.get(ctx)
	if err != nil {
		t.TraceCheckoutEnd(tctx, e, TraceCheckoutEndData{Err: err})
		return err
	}
	t.TraceCheckoutEnd(tctx, e, TraceCheckoutEndData{ConnID: pc.id})
	c.e, c.pc, c.trips = e, pc, roundTrips(pc)
	return nil
}

// finalize runs when a Conn is garbage-collected. A finalizer (rather than a cleanup) sees the
// Conn's current connection, and costs no allocation per checkout.
func (c *Conn) finalize() {
	if !c.closed && !c.hookOnly && c.pc != nil {
		c.e.leaked(c.pc)
	}
}

// leaked runs when a Conn is garbage-collected while checked out: its connection may be in any
// state, so it is closed and its slot recovered.
func (e *Engine) leaked(pc *pconn) {
	// counted once reported and recovered, so that a reader of Stats who sees the leak also sees
	// its slot free
	defer e.base.leaks.Add(1)
	logger := e.base.warn
	if pc.stack != nil {
		logger.Warn("gosqla: connection garbage-collected while checked out; call Conn.Close (for a session holding it, Session.Close)", "conn", pc.id, "checkout", string(pc.stack))
	} else {
		logger.Warn("gosqla: connection garbage-collected while checked out; call Conn.Close (for a session holding it, Session.Close) (pool_debug=true records where)", "conn", pc.id)
	}
	if !e.closed.Load() {
		e.pool.discard(pc)
	}
}

// Begin runs fn in a transaction: COMMIT when fn returns nil, ROLLBACK when it returns an error
// or panics (the panic comes back as a *PanicError).
func (e *Engine) Begin(ctx context.Context, fn func(*Conn) error) (err error) {
	c, err := e.checkout(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	tx := &c.ownTx
	*tx = Tx{c: c}
	if err := c.begin(ctx, tx); err != nil {
		return err
	}
	if err = CatchPanic(func() error { return fn(c) }); err != nil {
		// ctx may be what ended fn: the rollback gets a short context of its own
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if rbErr := tx.Rollback(rctx); rbErr != nil && rbErr != ErrTxDone {
			return fmt.Errorf("%w (and rollback failed: %w)", err, rbErr)
		}
		return err
	}
	return tx.Commit(ctx)
}

// Exec runs a statement on a pooled connection.
func (e *Engine) Exec(ctx context.Context, sql string, args ...any) (ExecResult, error) {
	if e.trace.query != nil {
		// the tracer is handed the Conn and may keep it: it lives on the heap
		c := new(Conn)
		if err := e.checkoutTo(ctx, c); err != nil {
			return ExecResult{}, err
		}
		defer c.release()
		return c.Exec(ctx, sql, args...)
	}
	var c Conn
	if err := e.checkoutTo(ctx, &c); err != nil {
		return ExecResult{}, err
	}
	defer c.release()
	n, err := runUntraced(ctx, &c, sql, args, execStatement)
	return ExecResult{rowsAffected: n}, err
}

// Query runs a query on a pooled connection and returns its buffered result.
func (e *Engine) Query(ctx context.Context, sql string, args ...any) (*Result, error) {
	if e.trace.query != nil {
		// the tracer is handed the Conn and may keep it: it lives on the heap
		c := new(Conn)
		if err := e.checkoutTo(ctx, c); err != nil {
			return nil, err
		}
		defer c.release()
		return c.Query(ctx, sql, args...)
	}
	var c Conn
	if err := e.checkoutTo(ctx, &c); err != nil {
		return nil, err
	}
	defer c.release()
	return c.queryUntraced(ctx, sql, args)
}

// Dispose closes the idle connections and lets the checked-out ones close when they come back;
// the engine goes on with a fresh pool. Use it after a fork of configuration (new credentials,
// failover).
func (e *Engine) Dispose(ctx context.Context) error {
	if e.closed.Load() {
		return ErrPoolClosed
	}
	e.pool.dispose()
	e.logf(ctx, "dispose")
	return ctx.Err()
}

// Close closes the pool (waiting checkouts fail with ErrPoolClosed), waits for worker tasks, and
// releases the driver. Connections still checked out are closed when they are returned.
func (e *Engine) Close() error {
	if !e.closed.CompareAndSwap(false, true) {
		return nil
	}
	e.pool.close()
	err := e.workers.Close()
	if cerr := e.connector.Close(); err == nil {
		err = cerr
	}
	return err
}

// RunSync runs fn on one of the engine's workers with a connection checked out for it, and
// returns its future. Sync-style code — blocking calls, one after another — can so run inside a
// fan-out of any width: the workers bound how many run at once, so the pool is never asked for
// more connections than it has, and the rest wait in the worker queue rather than time out on
// the pool.
//
// A RunSync called with the context fn was given runs inline, on the same worker with the same
// connection: nothing waits for capacity its own caller holds. A Connect with that context while
// the pool is exhausted fails at once with ErrNestedCheckout.
func RunSync[T any](ctx context.Context, e *Engine, fn func(context.Context, *Conn) (T, error)) *Future[T] {
	if c, ok := ctx.Value(connKey{e}).(*Conn); ok && e.workers.owns(ctx) {
		v, err := runTask(ctx, e.workers, func(ctx context.Context) (T, error) { return fn(ctx, c) })
		return Ready(v, err)
	}
	return Go(ctx, e.workers, func(ctx context.Context) (T, error) {
		c, err := e.Connect(ctx)
		if err != nil {
			var zero T
			return zero, err
		}
		defer c.Close()
		return fn(WithConn(ctx, c), c)
	})
}

// connKey marks the context of a RunSync function with its connection.
type connKey struct{ e *Engine }

// WithConn returns a context under which a RunSync on c's engine, called from a task of the
// engine's workers, runs inline with c, and a Connect while the pool is exhausted fails at once
// with ErrNestedCheckout. Layers that hand a connection to sync-style code (the session's
// RunSync) use it so that nested calls do not wait for the connection they hold.
func WithConn(ctx context.Context, c *Conn) context.Context {
	return context.WithValue(ctx, connKey{c.e}, c)
}

func (e *Engine) logf(ctx context.Context, msg string, args ...any) {
	if e.log != nil {
		e.log.DebugContext(ctx, "gosqla: "+msg, args...)
	}
}
