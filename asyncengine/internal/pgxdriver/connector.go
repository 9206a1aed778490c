package pgxdriver

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/gosqla/gosqla/asyncengine/driver"
	"github.com/gosqla/gosqla/asyncengine/internal/pgtypes"
	"github.com/gosqla/gosqla/asyncengine/internal/sqldriver"
	"github.com/gosqla/gosqla/internal/pgarrays"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

func init() {
	driver.Register("pgx", func(cfg driver.Config) (driver.Connector, error) { return Open(cfg) })
	driver.Register("stdlib", OpenStdlib)
}

// Connector opens pgx connections.
type Connector struct {
	cfg  *pgx.ConnConfig
	pool *pgxpool.Config // the same parse, for an engine backed by pgxpool
}

// parse reads a connection string the way pgx does (URL or keyword/value, PG* environment
// variables, service and password files) and applies the statement cache policy.
func parse(cfg driver.Config) (*pgxpool.Config, error) {
	pcfg, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, err
	}
	if cfg.StatementCache != "" {
		mode, err := ExecMode(cfg.StatementCache)
		if err != nil {
			return nil, err
		}
		pcfg.ConnConfig.DefaultQueryExecMode = mode
	}
	return pcfg, nil
}

// ExecMode is pgx's query execution mode for a statement cache policy.
func ExecMode(cache string) (pgx.QueryExecMode, error) {
	switch cache {
	case "prepare":
		return pgx.QueryExecModeCacheStatement, nil
	case "describe":
		return pgx.QueryExecModeCacheDescribe, nil
	case "none":
		return pgx.QueryExecModeExec, nil
	case "describe_exec":
		return pgx.QueryExecModeDescribeExec, nil
	case "simple":
		return pgx.QueryExecModeSimpleProtocol, nil
	}
	return 0, fmt.Errorf("unknown statement cache policy %q", cache)
}

// Open parses the connection string once and returns the native driver's connector.
func Open(cfg driver.Config) (*Connector, error) {
	pcfg, err := parse(cfg)
	if err != nil {
		return nil, err
	}
	conn := pcfg.ConnConfig.Copy()
	if cfg.CancelGrace > 0 {
		grace := cfg.CancelGrace
		conn.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
			return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: grace}
		}
	}
	dial := conn.DialFunc
	conn.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: nc}, nil
	}
	return &Connector{cfg: conn, pool: pcfg}, nil
}

// OpenStdlib returns a connector that reaches PostgreSQL through pgx's database/sql adapter.
func OpenStdlib(cfg driver.Config) (driver.Connector, error) {
	pcfg, err := parse(cfg)
	if err != nil {
		return nil, err
	}
	probes := sqldriver.Probes{
		IsDisconnect:  IsDisconnect,
		IsUnencodable: unencodable,
		EncodeFix:     outOfRangeFix,
		IsClosed: func(dc any) bool {
			c, ok := dc.(interface{ Conn() *pgx.Conn })
			return ok && c.Conn().IsClosed()
		},
		ConnectTimeout: pcfg.ConnConfig.ConnectTimeout,
	}
	if untypedParams(pcfg.ConnConfig.DefaultQueryExecMode) {
		probes.Args = stdlibArgs
	}
	return sqldriver.New(stdlib.OpenDB(*pcfg.ConnConfig), "postgresql", probes), nil
}

// stdlibArgs is textArgs for pgx's database/sql adapter, whose connections are out of reach
// before database/sql hands them the arguments: a lent map of pgx's own types stands in for the
// connection's, which the adapter opens with those types only.
func stdlibArgs(args []any) ([]any, error) {
	m := pgtypes.Map()
	defer pgtypes.Release(m)
	return untypedArgs(m, args)
}

// ConnConfig returns the configuration connections are opened with.
func (c *Connector) ConnConfig() *pgx.ConnConfig { return c.cfg }

// NewPool opens a pgxpool from the connector's configuration: at most maxConns connections
// (0 = no limit), each replaced after lifetime (0 = never).
func (c *Connector) NewPool(ctx context.Context, maxConns int, lifetime time.Duration) (*pgxpool.Pool, error) {
	pcfg := c.pool.Copy()
	if maxConns > 0 {
		pcfg.MaxConns = int32(maxConns)
	} else {
		pcfg.MaxConns = 1 << 20
	}
	if lifetime > 0 {
		pcfg.MaxConnLifetime = lifetime
	}
	return pgxpool.NewWithConfig(ctx, pcfg)
}

func (c *Connector) Dialect() string               { return "postgresql" }
func (c *Connector) Blocking() bool                { return false }
func (c *Connector) IsDisconnect(err error) bool   { return IsDisconnect(err) }
func (c *Connector) Close() error                  { return nil }
func (c *Connector) ConnectTimeout() time.Duration { return c.cfg.ConnectTimeout }

func (c *Connector) Connect(ctx context.Context) (driver.Conn, error) {
	pc, err := pgx.ConnectConfig(ctx, c.cfg)
	if err != nil {
		return nil, err
	}
	return Wrap(pc), nil
}

// Wrap adapts an open pgx connection.
func Wrap(pc *pgx.Conn) *Conn {
	pgarrays.Install(pc.TypeMap())
	mode := pc.Config().DefaultQueryExecMode
	return &Conn{pc: pc, cc: counter(pc.PgConn().Conn()), untyped: untypedParams(mode), streams: mode == pgx.QueryExecModeCacheStatement}
}
