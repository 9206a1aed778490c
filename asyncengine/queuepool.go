package asyncengine

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// queuePool is QueuePool and its relatives: NullPool keeps nothing idle and has no limit;
// StaticPool and AssertionPool hold one connection.
type queuePool struct {
	*poolBase
	size      int // reported Size
	capacity  int // most open connections; 0 = no limit
	keepIdle  int // most idle connections; <0 = no limit
	lifo      bool
	assertion bool

	src source // a replacement is a new connection in the same slot

	mu         sync.Mutex
	idle       []*pconn // oldest checkin first
	waiters    []*waiter
	open       int // open or being opened
	checkedOut int
	closed     bool
	lastStack  []byte // assertion pool: where the connection was checked out
}

// waiter is a checkout waiting for a connection. The grant is a connection, or nil with ok set:
// a free slot to connect in.
type waiter struct {
	ch chan grant
}

type grant struct {
	pc  *pconn
	err error
}

func newQueuePool(b *poolBase, cfg *Config) *queuePool {
	p := &queuePool{poolBase: b, size: cfg.PoolSize, capacity: cfg.capacity(), keepIdle: cfg.PoolSize,
		lifo: cfg.PoolUseLIFO}
	b.owner = p
	p.src = p.sourceBy(time.Time{})
	switch cfg.PoolClass {
	case PoolNull:
		p.size, p.keepIdle = 0, 0
	case PoolStatic:
		p.size, p.keepIdle = 1, 1
	case PoolAssertion:
		p.size, p.keepIdle, p.assertion = 1, 1, true
	default:
		if cfg.PoolSize == 0 {
			p.keepIdle = -1
		}
	}
	return p
}

// sourceBy replaces a connection with a new one in the same slot, connected by deadline (zero:
// within pool_timeout from the attempt).
func (p *queuePool) sourceBy(deadline time.Time) source {
	return source{drop: p.closeConn, fresh: func(ctx context.Context) (*pconn, error) {
		pc, err := p.connect(ctx, deadline)
		if err != nil {
			p.discard(nil) // a failed connect consumes no slot
		}
		return pc, err
	}}
}

// ready checks out pc (nil: connect in a free slot) through src.
func (p *queuePool) ready(ctx context.Context, pc *pconn, src source) (*pconn, error) {
	pc, err := p.checkout(ctx, pc, src)
	if err == nil && p.assertion && pc.stack != nil {
		p.noteCheckout(pc.stack)
	}
	return pc, err
}

func (p *queuePool) get(ctx context.Context) (*pconn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrPoolClosed
	}
	if n := len(p.idle); n > 0 && len(p.waiters) == 0 {
		var pc *pconn
		if p.lifo {
			pc = p.idle[n-1]
			p.idle[n-1] = nil
			p.idle = p.idle[:n-1]
		} else {
			// shift rather than reslice, so that the slice keeps its capacity
			pc = p.idle[0]
			copy(p.idle, p.idle[1:])
			p.idle[n-1] = nil
			p.idle = p.idle[:n-1]
		}
		p.checkedOut++
		p.mu.Unlock()
		return p.ready(ctx, pc, p.src)
	}
	if (p.capacity == 0 || p.open < p.capacity) && len(p.waiters) == 0 {
		p.open++
		p.checkedOut++
		p.mu.Unlock()
		return p.ready(ctx, nil, p.src)
	}
	if p.assertion {
		stack := p.lastStack
		p.mu.Unlock()
		if stack != nil {
			return nil, fmt.Errorf("%w; it was checked out at:\n%s", ErrAlreadyCheckedOut, stack)
		}
		return nil, fmt.Errorf("%w (set pool_debug=true to see where)", ErrAlreadyCheckedOut)
	}
	w := &waiter{ch: make(chan grant, 1)}
	p.waiters = append(p.waiters, w)
	p.mu.Unlock()
	return p.wait(ctx, w)
}

func (p *queuePool) wait(ctx context.Context, w *waiter) (*pconn, error) {
	start := time.Now()
	p.waits.Add(1)
	timer := time.NewTimer(p.timeout)
	defer func() {
		timer.Stop()
		p.waitNanos.Add(int64(time.Since(start)))
	}()
	select {
	case g := <-w.ch:
		return p.granted(ctx, g, start)
	case <-ctx.Done():
		if g, ok := p.abandon(w); ok {
			p.release(g)
		}
		return nil, ctx.Err()
	case <-timer.C:
		if g, ok := p.abandon(w); ok {
			return p.granted(ctx, g, start)
		}
		p.timeouts.Add(1)
		overflow := p.capacity - p.size
		return nil, &PoolTimeoutError{Size: p.size, Overflow: overflow, Timeout: p.timeout.Seconds()}
	}
}

// granted checks out what a waiter was granted; a free slot is connected in within what is left
// of pool_timeout, so that waiting and connecting together take no longer.
func (p *queuePool) granted(ctx context.Context, g grant, waitStart time.Time) (*pconn, error) {
	if g.err != nil {
		return nil, g.err
	}
	src := p.src
	if g.pc == nil {
		src = p.sourceBy(waitStart.Add(p.timeout))
	}
	return p.ready(ctx, g.pc, src)
}

// abandon removes w from the queue. If a grant reached it first, the grant is returned so that
// the caller can use or release it: a cancelled waiter leaks nothing.
func (p *queuePool) abandon(w *waiter) (grant, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, x := range p.waiters {
		if x == w {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			return grant{}, false
		}
	}
	return <-w.ch, true
}

// release gives back a grant that its waiter no longer wants.
func (p *queuePool) release(g grant) {
	switch {
	case g.err != nil:
	case g.pc != nil:
		p.put(g.pc)
	default:
		p.discard(nil)
	}
}

// handOff gives the first waiter the connection (or, with pc nil, the free slot). Called locked.
func (p *queuePool) handOff(pc *pconn) bool {
	if len(p.waiters) == 0 {
		return false
	}
	w := p.waiters[0]
	copy(p.waiters, p.waiters[1:])
	p.waiters[len(p.waiters)-1] = nil
	p.waiters = p.waiters[:len(p.waiters)-1]
	p.checkedOut++
	if pc == nil {
		p.open++
	}
	w.ch <- grant{pc: pc}
	return true
}

func (p *queuePool) put(pc *pconn) {
	if p.stale(pc) {
		p.discard(pc)
		return
	}
	p.mu.Lock()
	p.checkedOut--
	p.lastStack = nil
	if p.closed {
		p.open--
		p.mu.Unlock()
		p.closeConn(pc)
		return
	}
	if p.handOff(pc) {
		p.mu.Unlock()
		return
	}
	if p.keepIdle >= 0 && len(p.idle) >= p.keepIdle {
		// an overflow connection: closed on checkin
		p.open--
		p.mu.Unlock()
		p.closeConn(pc)
		return
	}
	p.idle = append(p.idle, pc)
	p.mu.Unlock()
}

func (p *queuePool) discard(pc *pconn) {
	if pc != nil {
		p.closeConn(pc)
	}
	p.mu.Lock()
	p.checkedOut--
	p.open--
	p.lastStack = nil
	if !p.closed {
		p.handOff(nil)
	}
	p.mu.Unlock()
}

func (p *queuePool) closeIdleOlder(t time.Time) {
	var old []*pconn
	p.mu.Lock()
	kept := p.idle[:0]
	for _, pc := range p.idle {
		if !pc.created.After(t) {
			old = append(old, pc)
		} else {
			kept = append(kept, pc)
		}
	}
	for i := len(kept); i < len(p.idle); i++ {
		p.idle[i] = nil
	}
	p.idle = kept
	p.open -= len(old)
	for range old {
		if !p.closed && !p.handOff(nil) {
			break
		}
	}
	p.mu.Unlock()
	for _, pc := range old {
		p.closeConn(pc)
	}
}

func (p *queuePool) stats() PoolStats {
	p.mu.Lock()
	s := PoolStats{Size: p.size, CheckedIn: len(p.idle), CheckedOut: p.checkedOut,
		Overflow: p.open - p.size, Waiting: len(p.waiters)}
	p.mu.Unlock()
	p.counters(&s)
	return s
}

// dispose closes the idle connections and marks the checked-out ones stale, so that they are
// closed when they come back: the pool starts afresh.
func (p *queuePool) dispose() {
	now := time.Now()
	p.invalidTime.Store(now.UnixNano())
	p.closeIdleOlder(now)
}

func (p *queuePool) close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.open -= len(idle)
	waiters := p.waiters
	p.waiters = nil
	for _, w := range waiters {
		w.ch <- grant{err: ErrPoolClosed}
	}
	p.mu.Unlock()
	for _, pc := range idle {
		p.closeConn(pc)
	}
}

// noteCheckout remembers where the assertion pool's connection went.
func (p *queuePool) noteCheckout(stack []byte) {
	if p.assertion {
		p.mu.Lock()
		p.lastStack = stack
		p.mu.Unlock()
	}
}
