package asyncengine

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/gosqla/gosqla/asyncengine/driver"
	"github.com/gosqla/gosqla/asyncengine/internal/pgxdriver"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pgxPool backs the engine with a *pgxpool.Pool, keeping gosqla's checkout semantics on
// top: pool_timeout, pre-ping, pool-wide invalidation, hooks and Stats.
type pgxPool struct {
	*poolBase
	p       *pgxpool.Pool
	owned   bool
	waiting atomic.Int64 // acquires under way: pgxpool keeps no count of its waiters
}

const pgxpoolRecordKey = "gosqla.pconn"

// NewFromPgxPool returns an engine whose connections come from p, which the caller keeps owning:
// Engine.Close does not close it. Engine options may be set through cfg (nil for defaults).
func NewFromPgxPool(p *pgxpool.Pool, cfg *Config) (*Engine, error) {
	if cfg == nil {
		var err error
		if cfg, err = ParseConfig("postgresql://"); err != nil {
			return nil, err
		}
	}
	c := *cfg
	c.Driver, c.Dialect, c.PoolClass, c.PgxPool = DriverPgx, DialectPostgreSQL, PoolPgxpool, p
	c.DSN = p.Config().ConnConfig.ConnString()
	if c.url == "" {
		c.url = "postgresql+pgxpool://"
	}
	return NewWithConfig(&c)
}

func newPgxPool(b *poolBase, cfg *Config, connector driver.Connector) (*pgxPool, error) {
	if cfg.PgxPool != nil {
		pp := &pgxPool{poolBase: b, p: cfg.PgxPool}
		b.owner = pp
		return pp, nil
	}
	pc, ok := connector.(*pgxdriver.Connector)
	if !ok {
		return nil, &ConfigError{Key: "poolclass", Value: string(PoolPgxpool), Err: fmt.Errorf("pgxpool needs the native pgx driver")}
	}
	p, err := pc.NewPool(context.Background(), cfg.capacity(), max(cfg.PoolRecycle, 0))
	if err != nil {
		return nil, &ConfigError{Value: cfg.String(), Err: err}
	}
	pp := &pgxPool{poolBase: b, p: p, owned: true}
	b.owner = pp
	return pp, nil
}

func (p *pgxPool) get(ctx context.Context) (*pconn, error) {
	// a replacement is another connection from pgxpool; a dropped one is destroyed by it
	return p.checkout(ctx, nil, source{fresh: p.acquire, drop: p.discard})
}

// acquire takes a connection from pgxpool within pool_timeout and finds (or creates) its record.
func (p *pgxPool) acquire(ctx context.Context) (*pconn, error) {
	actx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	start := time.Now()
	p.waiting.Add(1)
	c, err := p.p.Acquire(actx)
	p.waiting.Add(-1)
	if d := time.Since(start); d > time.Millisecond {
		p.waits.Add(1)
		p.waitNanos.Add(int64(d))
	}
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			p.timeouts.Add(1)
			size := int(p.p.Config().MaxConns)
			return nil, &PoolTimeoutError{Size: size, Overflow: 0, Timeout: p.timeout.Seconds()}
		}
		p.connectErrors.Add(1)
		return nil, err
	}
	data := c.Conn().PgConn().CustomData()
	pc, _ := data[pgxpoolRecordKey].(*pconn)
	if pc == nil {
		pc = &pconn{dc: pgxdriver.Wrap(c.Conn()), id: p.ids.Add(1), created: time.Now()}
		data[pgxpoolRecordKey] = pc
		p.connects.Add(1)
		pc.handle = c
		if err := p.connectHooks(ctx, pc); err != nil {
			p.discard(pc)
			return nil, err
		}
	}
	pc.handle = c
	return pc, nil
}

func (p *pgxPool) put(pc *pconn) {
	if p.stale(pc) {
		p.discard(pc)
		return
	}
	pc.handle.(*pgxpool.Conn).Release()
}

func (p *pgxPool) discard(pc *pconn) {
	if pc == nil {
		return
	}
	p.closeConn(pc)
	pc.handle.(*pgxpool.Conn).Release() // pgxpool destroys a closed connection on release
}

func (p *pgxPool) closeIdleOlder(t time.Time) {
	for _, c := range p.p.AcquireAllIdle(context.Background()) {
		pc, _ := c.Conn().PgConn().CustomData()[pgxpoolRecordKey].(*pconn)
		if pc != nil && !pc.created.After(t) {
			pc.handle = c
			p.discard(pc)
			continue
		}
		c.Release()
	}
}

func (p *pgxPool) stats() PoolStats {
	st := p.p.Stat()
	s := PoolStats{Size: int(st.MaxConns()), CheckedIn: int(st.IdleConns()), CheckedOut: int(st.AcquiredConns()),
		Overflow: int(st.TotalConns()) - int(st.MaxConns()), Waiting: int(p.waiting.Load()), MaxOpen: int(st.MaxConns())}
	p.counters(&s)
	return s
}

func (p *pgxPool) dispose() {
	p.invalidTime.Store(time.Now().UnixNano())
	p.p.Reset()
}

func (p *pgxPool) close() {
	if p.owned {
		p.p.Close()
	}
}
