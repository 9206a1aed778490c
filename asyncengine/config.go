package asyncengine

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
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
)

// execMode is pgx's query execution mode for the statement cache policy.
func (c StatementCache) execMode() pgx.QueryExecMode {
	switch c {
	case CacheDescribe:
		return pgx.QueryExecModeCacheDescribe
	case CacheNone:
		return pgx.QueryExecModeExec
	}
	return pgx.QueryExecModeCacheStatement
}

// Config is a parsed engine configuration. Build one with ParseConfig, adjust fields (hooks,
// Logger), then call NewWithConfig. Field defaults match SQLAlchemy's create_engine.
type Config struct {
	// Driver is "pgx" (native PostgreSQL), "stdlib" (PostgreSQL through database/sql) or "sqlite".
	Driver string
	// Dialect is "postgresql" or "sqlite".
	Dialect string
	// DSN is what the driver receives: the URL without gosqla's keys (a file path for SQLite).
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
	// Logger receives echo output (and leak reports); nil means slog.Default().
	Logger *slog.Logger

	// PgxPool, when set, backs the engine (poolclass=pgxpool) with a pool the caller owns.
	PgxPool *pgxpool.Pool

	// Pool events. A hook that returns an error or panics fails the operation it belongs to and
	// leaks no slot.
	OnConnect      func(ctx context.Context, c *Conn) error // a new physical connection
	OnFirstConnect func(ctx context.Context, c *Conn) error // the pool's first connection, exactly once
	OnCheckout     func(ctx context.Context, c *Conn) error // an error invalidates the connection and another is tried
	OnCheckin      func(connID uint64)
	OnReset        func(connID uint64, mode ResetMode)
	OnInvalidate   func(connID uint64, err error)
	OnClose        func(connID uint64)

	url string // redacted form, for logs
}

// String returns the URL with its password redacted.
func (c *Config) String() string { return c.url }

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
	"statement_cache":      enumKey(func(c *Config) *StatementCache { return &c.StatementCache }, CachePrepare, CacheDescribe, CacheNone),
	"cancel_grace":         durationKey(false, func(c *Config) *time.Duration { return &c.CancelGrace }),
	"echo":                 boolKey(func(c *Config) *bool { return &c.Echo }),
}

// looksLikeOurs reports whether an unknown key was probably meant for gosqla (a typo), rather than
// for the driver.
func looksLikeOurs(k string) bool {
	for _, p := range []string{"pool", "max_overflow", "overflow", "worker", "statement_cache", "echo", "cancel_grace"} {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
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

// ParseConfig parses an engine URL:
//
//	postgresql://user:pass@host:5432/db?pool_size=10   native pgx driver (also postgres://, postgresql+pgx://)
//	postgresql+stdlib://user:pass@host/db              PostgreSQL through database/sql
//	sqlite:///relative/path.db, sqlite:////abs/path.db  embedded SQLite file
//	sqlite://                                           in-memory SQLite
//
// gosqla's query keys are taken out; the rest go to the driver.
func ParseConfig(rawURL string) (*Config, error) {
	cfg := &Config{
		PoolSize: 5, MaxOverflow: 10, PoolTimeout: 30 * time.Second, PoolRecycle: -1,
		PoolResetOnReturn: ResetRollback, PoolClass: PoolQueue, WorkerQueue: 65536,
		StatementCache: CachePrepare,
	}
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil, &ConfigError{Value: redact(rawURL), Allowed: "postgresql://…, postgresql+pgx://…, postgresql+stdlib://…, sqlite:///path.db, sqlite://", Err: fmt.Errorf("missing scheme")}
	}
	dialect, drv, _ := strings.Cut(strings.ToLower(scheme), "+")
	switch dialect {
	case "postgresql", "postgres":
		cfg.Dialect = "postgresql"
		switch drv {
		case "", "pgx":
			cfg.Driver = "pgx"
		case "stdlib":
			cfg.Driver = "stdlib"
		default:
			return nil, &ConfigError{Key: "driver", Value: drv, Allowed: "pgx, stdlib"}
		}
	case "sqlite":
		cfg.Dialect = "sqlite"
		if drv != "" && drv != "modernc" {
			return nil, &ConfigError{Key: "driver", Value: drv, Allowed: "modernc (the default)"}
		}
		cfg.Driver = "sqlite"
	default:
		return nil, &ConfigError{Key: "dialect", Value: dialect, Allowed: "postgresql, sqlite"}
	}

	path, rawQuery, _ := strings.Cut(rest, "?")
	query, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, &ConfigError{Value: redact(rawURL), Err: err}
	}
	explicitClass := query.Has("poolclass")
	driverQuery := url.Values{}
	for k, vs := range query {
		spec, ok := keys[k]
		if !ok {
			if looksLikeOurs(k) {
				return nil, &ConfigError{Key: k, Value: vs[0], Err: fmt.Errorf("unknown gosqla key"), Allowed: knownKeys()}
			}
			driverQuery[k] = vs
			continue
		}
		v := vs[len(vs)-1]
		if err := spec.set(cfg, v); err != nil {
			if err == errNotAllowed {
				err = nil
			}
			return nil, &ConfigError{Key: k, Value: v, Allowed: spec.allowed, Err: err}
		}
	}

	if cfg.Dialect == "sqlite" {
		if cfg.PoolClass == PoolPgxpool {
			return nil, &ConfigError{Key: "poolclass", Value: "pgxpool", Allowed: "queue, null, static, assertion (pgxpool is PostgreSQL only)"}
		}
		memory := path == "" || path == "/:memory:"
		if memory {
			// Every connection to ":memory:" is a database of its own: keep one, as SQLAlchemy does.
			if !explicitClass {
				cfg.PoolClass = PoolStatic
			}
			cfg.DSN = "file::memory:"
		} else {
			cfg.DSN = "file:" + strings.TrimPrefix(path, "/")
		}
		for _, p := range []string{"busy_timeout(10000)", "foreign_keys(1)"} {
			driverQuery.Add("_pragma", p)
		}
		if !memory {
			driverQuery.Add("_pragma", "journal_mode(WAL)")
		}
		cfg.DSN += "?" + driverQuery.Encode()
		cfg.url = scheme + "://" + path
	} else {
		u, err := url.Parse("postgresql://" + path)
		if err != nil {
			return nil, &ConfigError{Value: redact(rawURL), Err: err}
		}
		u.RawQuery = driverQuery.Encode()
		cfg.DSN = u.String()
		cfg.url = scheme + "://" + strings.TrimPrefix(strings.TrimPrefix(u.Redacted(), "postgresql:"), "//")
	}
	return cfg, nil
}

var userinfoPassword = regexp.MustCompile(`([^/:@]+):[^@/]*@`)

// redact hides the password of a URL, also one that does not parse.
func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Scheme != "" {
		return u.Redacted()
	}
	return userinfoPassword.ReplaceAllString(raw, "$1:xxxxx@")
}
