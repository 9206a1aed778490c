package asyncengine

import (
	"context"
	"fmt"
	"log/slog"
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
	MaxOpen    int // most connections open at once (pool_size + max_overflow); 0 = no limit

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

// poolHooks are the pool events, as the pool calls them: the engine turns the Config's hooks
// into these.
type poolHooks struct {
	connect, firstConnect, checkout func(ctx context.Context, pc *pconn) error
	invalidate                      func(id uint64, err error)
	close                           func(id uint64)
}

// poolDeps is what a pool class is handed at construction; it reaches nothing else.
type poolDeps struct {
	connector driver.Connector
	// call runs a driver call: inline for a non-blocking driver, on workers for a blocking one.
	call    func(fn func() error) error
	hooks   poolHooks
	echo    *slog.Logger // pool events at debug level; nil when echo is off
	warn    *slog.Logger // reports that must not be lost: leaks, panicking notifications
	timeout time.Duration
	recycle time.Duration
	prePing bool
	debug   bool
	// connectTracer, when set, traces open; engine is what it is handed.
	connectTracer ConnectTracer
	engine        *Engine
}

// poolBase is the part every pool class shares: opening and closing physical connections, hooks,
// counters and the pool-wide invalidation time.
type poolBase struct {
	poolDeps
	owner pool // the pool class this base serves, set when the class is built
	// connectBound bounds a connection attempt when the connector has no bound of its own
	// (connect_timeout): a checkout waits at most pool_timeout, connecting included.
	connectBound time.Duration
	ids          atomic.Uint64
	invalidTime  atomic.Int64 // unix nanos; connections created at or before it are stale

	firstMu   sync.Mutex
	firstDone atomic.Bool

	connects, connectErrors, closes, invalidations, timeouts, waits, waitNanos, leaks, roundTrips atomic.Int64
}

func newPoolBase(d poolDeps) *poolBase {
	b := &poolBase{poolDeps: d}
	if ct, ok := d.connector.(driver.ConnectTimeouter); !ok || ct.ConnectTimeout() <= 0 {
		b.connectBound = d.timeout
	}
	return b
}

func (b *poolBase) counters(s *PoolStats) {
	s.Connects, s.ConnectErrors, s.Closes = b.connects.Load(), b.connectErrors.Load(), b.closes.Load()
	s.Invalidations, s.Timeouts, s.Waits = b.invalidations.Load(), b.timeouts.Load(), b.waits.Load()
	s.WaitTime, s.Leaks, s.RoundTrips = time.Duration(b.waitNanos.Load()), b.leaks.Load(), b.roundTrips.Load()
}

// connect opens a physical connection and runs the connect hooks on it, by deadline (zero: within
// pool_timeout from now) unless the connector bounds its attempts itself.
func (b *poolBase) connect(ctx context.Context, deadline time.Time) (*pconn, error) {
	bounded := ctx
	if b.connectBound > 0 {
		if deadline.IsZero() {
			deadline = time.Now().Add(b.connectBound)
		}
		var cancel context.CancelFunc
		bounded, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	pc, err := b.open(bounded)
	// the dialer's own timer may report "i/o timeout" a moment before the context says so
	if err != nil && ctx.Err() == nil && b.connectBound > 0 && (bounded.Err() != nil || time.Until(deadline) < 10*time.Millisecond) {
		b.timeouts.Add(1)
		err = fmt.Errorf("%w: no connection within pool_timeout %s, connecting included (connect_timeout bounds connection attempts instead): %w", ErrPoolTimeout, b.timeout, err)
	}
	return pc, err
}

func (b *poolBase) open(ctx context.Context) (*pconn, error) {
	if t := b.connectTracer; t != nil {
		tctx := t.TraceConnectStart(ctx, b.engine, TraceConnectStartData{})
		pc, err := b.openConn(ctx)
		end := TraceConnectEndData{Err: err}
		if pc != nil {
			end.ConnID = pc.id
		}
		t.TraceConnectEnd(tctx, b.engine, end)
		return pc, err
	}
	return b.openConn(ctx)
}

func (b *poolBase) openConn(ctx context.Context) (*pconn, error) {
	var dc driver.Conn
	err := b.call(func() error {
		var err error
		dc, err = b.connector.Connect(ctx)
		return err
	})
	if err != nil {
		b.connectErrors.Add(1)
		b.logf(ctx, "connect failed", "error", b.errorText(err))
		if ctx.Err() == nil && b.connector.IsDisconnect(err) {
			err = &ServerUnavailableError{Err: err}
		}
		return nil, err
	}
	b.connects.Add(1)
	pc := &pconn{dc: dc, id: b.ids.Add(1), created: time.Now()}
	b.logConn(ctx, "connect", pc.id)
	if err := b.connectHooks(ctx, pc); err != nil {
		b.closeConn(pc)
		return nil, err
	}
	return pc, nil
}

func (b *poolBase) connectHooks(ctx context.Context, pc *pconn) error {
	if h := b.hooks.firstConnect; h != nil && !b.firstDone.Load() {
		b.firstMu.Lock()
		if !b.firstDone.Load() {
			if err := CatchPanic(func() error { return h(ctx, pc) }); err != nil {
				b.firstMu.Unlock()
				return fmt.Errorf("gosqla: OnFirstConnect: %w", err)
			}
			b.firstDone.Store(true)
		}
		b.firstMu.Unlock()
	}
	if h := b.hooks.connect; h != nil {
		if err := CatchPanic(func() error { return h(ctx, pc) }); err != nil {
			return fmt.Errorf("gosqla: OnConnect: %w", err)
		}
	}
	return nil
}

// notify runs a notification hook. It has no caller to fail, so a panic in it is reported
// through the logger, and the pool goes on.
func (b *poolBase) notify(hook string, id uint64, fn func()) {
	if err := CatchPanic(func() error { fn(); return nil }); err != nil {
		pe := err.(*PanicError)
		b.warn.Warn("gosqla: "+hook+" hook panicked; the pool went on", "conn", id, "panic", fmt.Sprint(pe.Value), "stack", string(pe.Stack))
	}
}

func (b *poolBase) closeConn(pc *pconn) {
	_ = b.call(pc.dc.Close)
	b.closes.Add(1)
	b.logConn(context.Background(), "close", pc.id)
	if h := b.hooks.close; h != nil {
		b.notify("OnClose", pc.id, func() { h(pc.id) })
	}
}

// stale reports whether an idle connection must be replaced before it is handed out.
func (b *poolBase) stale(pc *pconn) bool {
	if pc.dc.IsClosed() || pc.created.UnixNano() <= b.invalidTime.Load() {
		return true
	}
	return b.recycle >= 0 && time.Since(pc.created) > b.recycle
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
// On failure the checkout's place is given back to the owning pool.
func (b *poolBase) checkout(ctx context.Context, pc *pconn, src source) (*pconn, error) {
	p := b.owner
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
		if b.prePing && pc.checkouts > 0 {
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
		if h := b.hooks.checkout; h != nil {
			if err := CatchPanic(func() error { return h(ctx, pc) }); err != nil {
				lastErr = fmt.Errorf("gosqla: OnCheckout rejected the connection: %w", err)
				b.invalidated(ctx, pc, lastErr)
				src.drop(pc)
				pc = nil
				rejected++
				continue
			}
		}
		pc.checkouts++
		b.logConn(ctx, "checkout", pc.id)
		if b.debug {
			pc.stack = debug.Stack()
		}
		return pc, nil
	}
	p.discard(nil)
	return nil, lastErr
}

func (b *poolBase) ping(ctx context.Context, pc *pconn) error {
	b.logConn(ctx, "pre-ping", pc.id)
	return b.call(func() error { return pc.dc.Ping(ctx) })
}

// invalidated records that pc, of pool p, is being discarded because of err. A disconnect also
// marks every connection created before now as stale, so one lost server costs one error, not
// one per pooled connection.
func (b *poolBase) invalidated(ctx context.Context, pc *pconn, err error) {
	b.invalidations.Add(1)
	b.logf(ctx, "invalidate", "conn", pc.id, "error", b.errorText(err))
	if h := b.hooks.invalidate; h != nil {
		b.notify("OnInvalidate", pc.id, func() { h(pc.id, err) })
	}
	if b.connector.IsDisconnect(err) {
		now := time.Now().UnixNano()
		b.invalidTime.Store(now)
		b.owner.closeIdleOlder(time.Unix(0, now))
	}
}

// logConn logs a pool event of one connection; nothing is built when echo is off.
func (b *poolBase) logConn(ctx context.Context, msg string, id uint64) {
	if b.echo != nil {
		b.echo.DebugContext(ctx, "gosqla: "+msg, "conn", id)
	}
}

func (b *poolBase) logf(ctx context.Context, msg string, args ...any) {
	if b.echo != nil {
		b.echo.DebugContext(ctx, "gosqla: "+msg, args...)
	}
}
