package asyncengine

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gosqla/gosqla/asyncengine/driver"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PoolClass selects the pool implementation.
type PoolClass string

const (
	PoolQueue     PoolClass = "queue"     // bounded pool with overflow (default)
	PoolNull      PoolClass = "null"      // open per checkout, close per checkin
	PoolStatic    PoolClass = "static"    // one connection, checkouts take turns
	PoolAssertion PoolClass = "assertion" // one connection, a second checkout is an error
	PoolPgxpool   PoolClass = "pgxpool"   // backed by a *pgxpool.Pool
)

// ResetMode is what happens to an open transaction when a connection is checked in.
type ResetMode string

const (
	ResetRollback ResetMode = "rollback"
	ResetCommit   ResetMode = "commit"
	ResetNone     ResetMode = "none"
)

// StatementCache selects how the PostgreSQL driver prepares statements.
type StatementCache string

const (
	// CachePrepare prepares each statement once per connection (fastest; breaks behind PgBouncer
	// in transaction mode).
	CachePrepare StatementCache = "prepare"
	// CacheDescribe caches statement descriptions and runs unnamed statements (PgBouncer-safe).
	CacheDescribe StatementCache = "describe"
	// CacheNone runs every statement unnamed with text parameters (PgBouncer-safe).
	CacheNone StatementCache = "none"
	// CacheDescribeExec describes each statement before running it, caching nothing (pgx's
	// describe_exec; PgBouncer-safe).
	CacheDescribeExec StatementCache = "describe_exec"
	// CacheSimple sends every statement through the simple protocol, arguments interpolated by
	// the driver (pgx's simple_protocol; PgBouncer-safe).
	CacheSimple StatementCache = "simple"
)

// execModes maps pgx's default_query_exec_mode values to statement_cache policies.
var execModes = map[string]StatementCache{
	"cache_statement": CachePrepare,
	"cache_describe":  CacheDescribe,
	"exec":            CacheNone,
	"describe_exec":   CacheDescribeExec,
	"simple_protocol": CacheSimple,
}

// DriverName names a registered driver (see package driver's Register). The built-in ones are
// DriverPgx, DriverStdlib and DriverSQLite.
type DriverName string

const (
	DriverPgx    DriverName = "pgx"    // PostgreSQL through pgx's native, non-blocking connection
	DriverStdlib DriverName = "stdlib" // PostgreSQL through pgx's database/sql adapter
	DriverSQLite DriverName = "sqlite" // the embedded SQLite (modernc.org/sqlite)
)

// DialectName names the SQL dialect an engine speaks: DialectPostgreSQL or DialectSQLite. The
// Engine's Dialect is the dialect itself (placeholders, quoting, binding).
type DialectName string

const (
	DialectPostgreSQL DialectName = "postgresql"
	DialectSQLite     DialectName = "sqlite"
)

// Config is a parsed engine configuration. Build one with ParseConfig, adjust fields (hooks,
// Logger), then call NewWithConfig. Field defaults match SQLAlchemy's create_engine.
type Config struct {
	// Driver is DriverPgx (native PostgreSQL), DriverStdlib (PostgreSQL through database/sql),
	// DriverSQLite, or the name of a driver registered with package driver's Register.
	Driver DriverName
	// Dialect is DialectPostgreSQL or DialectSQLite.
	Dialect DialectName
	// DSN is what the driver receives: the connection string without gosqla's keys, every other
	// byte as written (a modernc "file:" name for SQLite). It holds the password: print String().
	DSN string

	PoolSize          int           // pool_size: idle connections kept; 0 = no limit (default 5)
	MaxOverflow       int           // max_overflow: extra connections beyond PoolSize; -1 = no limit (default 10)
	PoolTimeout       time.Duration // pool_timeout: longest wait for a connection (default 30s)
	PoolRecycle       time.Duration // pool_recycle: replace connections older than this at checkout; <0 = never
	PoolPrePing       bool          // pool_pre_ping: check liveness at checkout
	PoolUseLIFO       bool          // pool_use_lifo: reuse the most recently returned connection first
	PoolResetOnReturn ResetMode     // pool_reset_on_return
	PoolClass         PoolClass     // poolclass
	PoolDebug         bool          // pool_debug: record checkout stacks for leak and assertion reports

	Workers        int            // workers: size of the worker pool; 0 = pool capacity
	WorkerQueue    int            // worker_queue: tasks that may wait for a worker (default 65536)
	StatementCache StatementCache // statement_cache (PostgreSQL only)
	CancelGrace    time.Duration  // cancel_grace: on a cancelled ctx send a server cancel and wait this long before closing the connection; 0 = close at once
	Echo           bool           // echo: log SQL and pool events at debug level
	LogParameters  bool           // log_parameters: echo also logs argument values and the text of server errors
	// Logger receives echo output (and leak reports); nil means slog.Default().
	Logger *slog.Logger

	// Replica configures a ReplicaSet (NewReplicaSet); an Engine refuses a Config that names
	// replicas.
	Replica ReplicaSettings

	// PgxPool, when set, backs the engine (poolclass=pgxpool) with a pool the caller owns.
	PgxPool *pgxpool.Pool

	// Pool events. OnConnect, OnFirstConnect and OnCheckout run for a caller: an error or a panic
	// fails the operation they belong to and leaks no slot. OnCheckin, OnReset, OnInvalidate and
	// OnClose are notifications with no caller to fail: a panic in one is recovered and reported
	// through Logger at warn level, and the pool goes on.
	OnConnect      func(ctx context.Context, c *Conn) error // a new physical connection
	OnFirstConnect func(ctx context.Context, c *Conn) error // the pool's first connection, exactly once
	OnCheckout     func(ctx context.Context, c *Conn) error // an error invalidates the connection and another is tried
	OnCheckin      func(connID uint64)
	OnReset        func(connID uint64, mode ResetMode)
	OnInvalidate   func(connID uint64, err error)
	OnClose        func(connID uint64)

	// Tracer receives the start and end of every statement, and also of checkouts, connects,
	// pipelines, COPY and transactions when it implements CheckoutTracer, ConnectTracer,
	// PipelineTracer, CopyFromTracer or TxTracer (see QueryTracer). nil traces nothing, at the
	// cost of one comparison per event.
	Tracer QueryTracer

	url string // redacted form, for logs
}

// String returns the connection string with every password and secret key value replaced by
// xxxxx. Printing a Config (%v, %+v, %s) shows this form too.
func (c Config) String() string {
	if c.url == "" && c.DSN != "" {
		return describe(c.DSN)
	}
	return c.url
}

// GoString is String for %#v: a Config never prints its password.
func (c Config) GoString() string {
	return fmt.Sprintf("asyncengine.Config{Driver: %q, URL: %q}", c.Driver, c.String())
}

// capacity returns the most connections that may be open; 0 means no limit.
func (c *Config) capacity() int {
	switch c.PoolClass {
	case PoolStatic, PoolAssertion:
		return 1
	case PoolNull:
		return 0
	}
	if c.PoolSize == 0 || c.MaxOverflow < 0 {
		return 0
	}
	return c.PoolSize + c.MaxOverflow
}

type keySpec struct {
	allowed string
	set     func(c *Config, v string) error
}

var errNotAllowed = fmt.Errorf("not an allowed value")

func intKey(min int, allowed string, dst func(*Config) *int) keySpec {
	return keySpec{allowed, func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return err
		}
		if n < min {
			return errNotAllowed
		}
		*dst(c) = n
		return nil
	}}
}

func boolKey(dst func(*Config) *bool) keySpec {
	return keySpec{"true, false, 1, 0, yes, no", func(c *Config, v string) error {
		switch strings.ToLower(v) {
		case "true", "1", "yes", "on":
			*dst(c) = true
		case "false", "0", "no", "off":
			*dst(c) = false
		default:
			return errNotAllowed
		}
		return nil
	}}
}

func durationKey(allowNegative bool, dst func(*Config) *time.Duration) keySpec {
	allowed := `a duration ("250ms", "2m") or seconds ("30", "0.5")`
	if allowNegative {
		allowed += "; -1 disables"
	}
	return keySpec{allowed, func(c *Config, v string) error {
		d, err := parseDuration(v)
		if err != nil {
			return err
		}
		if d < 0 && !allowNegative {
			return errNotAllowed
		}
		*dst(c) = d
		return nil
	}}
}

func enumKey[T ~string](dst func(*Config) *T, values ...T) keySpec {
	names := make([]string, len(values))
	for i, v := range values {
		names[i] = string(v)
	}
	return keySpec{strings.Join(names, ", "), func(c *Config, v string) error {
		for _, allowed := range values {
			if strings.EqualFold(v, string(allowed)) {
				*dst(c) = allowed
				return nil
			}
		}
		return errNotAllowed
	}}
}

// keys are gosqla's URL query keys; any other key goes to the driver.
var keys = map[string]keySpec{
	"pool_size":            intKey(0, "an integer >= 0 (0 = no limit)", func(c *Config) *int { return &c.PoolSize }),
	"max_overflow":         intKey(-1, "an integer >= -1 (-1 = no limit)", func(c *Config) *int { return &c.MaxOverflow }),
	"pool_timeout":         durationKey(false, func(c *Config) *time.Duration { return &c.PoolTimeout }),
	"pool_recycle":         durationKey(true, func(c *Config) *time.Duration { return &c.PoolRecycle }),
	"pool_pre_ping":        boolKey(func(c *Config) *bool { return &c.PoolPrePing }),
	"pool_use_lifo":        boolKey(func(c *Config) *bool { return &c.PoolUseLIFO }),
	"pool_debug":           boolKey(func(c *Config) *bool { return &c.PoolDebug }),
	"pool_reset_on_return": enumKey(func(c *Config) *ResetMode { return &c.PoolResetOnReturn }, ResetRollback, ResetCommit, ResetNone),
	"poolclass":            enumKey(func(c *Config) *PoolClass { return &c.PoolClass }, PoolQueue, PoolNull, PoolStatic, PoolAssertion, PoolPgxpool),
	"workers":              intKey(0, "an integer >= 0 (0 = pool capacity)", func(c *Config) *int { return &c.Workers }),
	"worker_queue":         intKey(1, "an integer >= 1", func(c *Config) *int { return &c.WorkerQueue }),
	"statement_cache":      enumKey(func(c *Config) *StatementCache { return &c.StatementCache }, CachePrepare, CacheDescribe, CacheNone, CacheDescribeExec, CacheSimple),
	"cancel_grace":         durationKey(false, func(c *Config) *time.Duration { return &c.CancelGrace }),
	"echo":                 boolKey(func(c *Config) *bool { return &c.Echo }),
	"log_parameters":       boolKey(func(c *Config) *bool { return &c.LogParameters }),
}

func knownKeys() string {
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func parseDuration(v string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if f < 0 {
			return -1, nil
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	return time.ParseDuration(v)
}

// validate checks a configuration as ParseConfig built it or as the caller edited it since: both
// ParseConfig and NewWithConfig call it, so that an engine is never built from a value that
// ParseConfig would have refused.
func (c *Config) validate() error {
	if c.Driver == "" {
		return &ConfigError{Key: "Driver", Err: fmt.Errorf("no driver: build the Config with ParseConfig"), Allowed: strings.Join(driver.Drivers(), ", ")}
	}
	if _, ok := driver.Lookup(string(c.Driver)); !ok {
		return &ConfigError{Key: "Driver", Value: string(c.Driver), Err: fmt.Errorf("no such driver is registered"), Allowed: strings.Join(driver.Drivers(), ", ")}
	}
	if c.Dialect != DialectPostgreSQL && c.Dialect != DialectSQLite {
		return &ConfigError{Key: "Dialect", Value: string(c.Dialect), Allowed: "postgresql, sqlite"}
	}
	if c.PoolSize < 0 || c.MaxOverflow < -1 || c.PoolTimeout < 0 || c.Workers < 0 || c.CancelGrace < 0 {
		return &ConfigError{Key: "pool_size/max_overflow/pool_timeout/workers/cancel_grace",
			Value:   fmt.Sprint(c.PoolSize, c.MaxOverflow, c.PoolTimeout, c.Workers, c.CancelGrace),
			Allowed: "pool_size >= 0, max_overflow >= -1, pool_timeout >= 0, workers >= 0, cancel_grace >= 0"}
	}
	if c.WorkerQueue < 1 {
		return &ConfigError{Key: "worker_queue", Value: strconv.Itoa(c.WorkerQueue), Allowed: keys["worker_queue"].allowed}
	}
	for _, k := range []struct{ key, value string }{
		{"poolclass", string(c.PoolClass)},
		{"pool_reset_on_return", string(c.PoolResetOnReturn)},
		{"statement_cache", string(c.StatementCache)},
	} {
		spec := keys[k.key]
		if err := spec.set(&Config{}, k.value); err != nil {
			return &ConfigError{Key: k.key, Value: k.value, Allowed: spec.allowed}
		}
	}
	if c.PoolClass == PoolPgxpool && c.Driver != DriverPgx {
		return &ConfigError{Key: "poolclass", Value: string(PoolPgxpool), Err: fmt.Errorf("pgxpool is for the native PostgreSQL driver (pgx), not %s", c.Driver),
			Allowed: "queue, null, static, assertion"}
	}
	return nil
}
