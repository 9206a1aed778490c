package asyncengine

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gosqla/gosqla/asyncengine/driver"
)

// PoolStats is a snapshot of the pool, with SQLAlchemy's accounting: Size is pool_size,
// CheckedIn the idle connections, CheckedOut those in use, Overflow the connections open beyond
// Size (negative while fewer than Size are open, as in SQLAlchemy), Waiting the checkouts waiting.
type PoolStats struct {
	Size       int
	CheckedIn  int
	CheckedOut int
	Overflow   int
	Waiting    int

	Connects      int64 // physical connections opened
	ConnectErrors int64
	Closes        int64 // physical connections closed
	Invalidations int64
	Timeouts      int64 // checkouts that gave up after pool_timeout
	Waits         int64 // checkouts that had to wait
	WaitTime      time.Duration
	Leaks         int64 // connections garbage-collected while checked out
	// RoundTrips counts the round trips to the server made on checked-out connections, as seen on
	// the socket (PostgreSQL native driver only; counted at checkin).
	RoundTrips int64
}

// pconn is one physical connection and what the pool knows of it.
type pconn struct {
	dc        driver.Conn
	id        uint64
	created   time.Time
	checkouts int64
	busy      atomic.Bool // a call is running on it: concurrent use detection
	stack     []byte      // where it was checked out, with pool_debug
	handle    any         // the pool class's own handle (a *pgxpool.Conn)
	e         *Engine
}

// pool is what every pool class offers the engine.
type pool interface {
	get(ctx context.Context) (*pconn, error)
	// put returns a healthy, reset connection.
	put(pc *pconn)
	// discard closes a connection that must not be reused and frees its slot.
	discard(pc *pconn)
	// closeIdleOlder closes idle connections created before t (pool-wide invalidation).
	closeIdleOlder(t time.Time)
	stats() PoolStats
	dispose()
	close()
}

// poolBase is the part every pool class shares: opening and closing physical connections, hooks,
// counters and the pool-wide invalidation time.
type poolBase struct {
	e           *Engine
	ids         atomic.Uint64
	invalidTime atomic.Int64 // unix nanos; connections created at or before it are stale

	firstMu   sync.Mutex
	firstDone atomic.Bool

	connects, connectErrors, closes, invalidations, timeouts, waits, waitNanos, leaks, roundTrips atomic.Int64
}

func (b *poolBase) counters(s *PoolStats) {
	s.Connects, s.ConnectErrors, s.Closes = b.connects.Load(), b.connectErrors.Load(), b.closes.Load()
	s.Invalidations, s.Timeouts, s.Waits = b.invalidations.Load(), b.timeouts.Load(), b.waits.Load()
	s.WaitTime, s.Leaks, s.RoundTrips = time.Duration(b.waitNanos.Load()), b.leaks.Load(), b.roundTrips.Load()
}

// connect opens a physical connection and runs the connect hooks on it.
func (b *poolBase) connect(ctx context.Context) (*pconn, error) {
	e := b.e
	var dc driver.Conn
	err := e.call(func() error {
		var err error
		dc, err = e.connector.Connect(ctx)
		return err
	})
	if err != nil {
		b.connectErrors.Add(1)
		e.logf(ctx, "connect failed", "error", err)
		return nil, err
	}
	b.connects.Add(1)
	pc := &pconn{dc: dc, id: b.ids.Add(1), created: time.Now(), e: e}
	e.logConn(ctx, "connect", pc.id)
	if err := b.connectHooks(ctx, pc); err != nil {
		b.closeConn(pc)
		return nil, err
	}
	return pc, nil
}

func (b *poolBase) connectHooks(ctx context.Context, pc *pconn) error {
	e := b.e
	if e.cfg.OnFirstConnect != nil && !b.firstDone.Load() {
		b.firstMu.Lock()
		if !b.firstDone.Load() {
			if err := callHook(ctx, e, pc, e.cfg.OnFirstConnect); err != nil {
				b.firstMu.Unlock()
				return fmt.Errorf("gosqla: OnFirstConnect: %w", err)
			}
			b.firstDone.Store(true)
		}
		b.firstMu.Unlock()
	}
	if e.cfg.OnConnect != nil {
		if err := callHook(ctx, e, pc, e.cfg.OnConnect); err != nil {
			return fmt.Errorf("gosqla: OnConnect: %w", err)
		}
	}
	return nil
}

// callHook runs a hook with a Conn that is not checked out of the pool: closing it does nothing.
func callHook(ctx context.Context, e *Engine, pc *pconn, hook func(context.Context, *Conn) error) error {
	return CatchPanic(func() error { return hook(ctx, &Conn{e: e, pc: pc, hookOnly: true}) })
}

func notify(fn func()) {
	defer func() { _ = recover() }()
	fn()
}

func (b *poolBase) closeConn(pc *pconn) {
	_ = b.e.call(pc.dc.Close)
	b.closes.Add(1)
	b.e.logConn(context.Background(), "close", pc.id)
	if h := b.e.cfg.OnClose; h != nil {
		notify(func() { h(pc.id) })
	}
}

// stale reports whether an idle connection must be replaced before it is handed out.
func (b *poolBase) stale(pc *pconn) bool {
	if pc.dc.IsClosed() || pc.created.UnixNano() <= b.invalidTime.Load() {
		return true
	}
	r := b.e.cfg.PoolRecycle
	return r >= 0 && time.Since(pc.created) > r
}

// source is how a pool class replaces a connection the checkout will not hand out.
type source struct {
	// fresh returns another connection for the checkout; on failure it has settled its slot.
	fresh func(ctx context.Context) (*pconn, error)
	// drop lets a connection go; the checkout keeps its place.
	drop func(pc *pconn)
}

// checkout turns a connection the pool handed out (nil: a free slot to connect in) into one that
// is ready: fresh enough, alive when pre-ping is on, and accepted by OnCheckout (three tries).
// On failure the checkout's place is given back through p.
func (b *poolBase) checkout(ctx context.Context, p pool, pc *pconn, src source) (*pconn, error) {
	e := b.e
	var lastErr error
	for rejected := 0; rejected < 3; {
		if pc == nil {
			var err error
			if pc, err = src.fresh(ctx); err != nil {
				return nil, err
			}
		}
		if b.stale(pc) {
			src.drop(pc)
			pc = nil
			continue
		}
		if e.cfg.PoolPrePing && pc.checkouts > 0 {
			if err := b.ping(ctx, pc); err != nil {
				if ctx.Err() != nil {
					p.discard(pc)
					return nil, ctx.Err()
				}
				b.invalidated(ctx, pc, err)
				src.drop(pc)
				pc = nil
				continue
			}
		}
		if h := e.cfg.OnCheckout; h != nil {
			if err := callHook(ctx, e, pc, h); err != nil {
				lastErr = fmt.Errorf("gosqla: OnCheckout rejected the connection: %w", err)
				b.invalidated(ctx, pc, lastErr)
				src.drop(pc)
				pc = nil
				rejected++
				continue
			}
		}
		pc.checkouts++
		e.logConn(ctx, "checkout", pc.id)
		if e.cfg.PoolDebug {
			pc.stack = debug.Stack()
			if q, ok := p.(*queuePool); ok {
				q.noteCheckout(pc.stack)
			}
		}
		return pc, nil
	}
	p.discard(nil)
	return nil, lastErr
}

func (b *poolBase) ping(ctx context.Context, pc *pconn) error {
	b.e.logConn(ctx, "pre-ping", pc.id)
	return b.e.call(func() error { return pc.dc.Ping(ctx) })
}

// invalidated records that pc is being discarded because of err. A disconnect also marks every
// connection created before now as stale, so one lost server costs one error, not one per
// pooled connection.
func (b *poolBase) invalidated(ctx context.Context, pc *pconn, err error) {
	e := b.e
	b.invalidations.Add(1)
	e.logf(ctx, "invalidate", "conn", pc.id, "error", err)
	if h := e.cfg.OnInvalidate; h != nil {
		notify(func() { h(pc.id, err) })
	}
	if e.connector.IsDisconnect(err) {
		now := time.Now().UnixNano()
		b.invalidTime.Store(now)
		e.pool.closeIdleOlder(time.Unix(0, now))
	}
}
