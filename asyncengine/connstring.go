package asyncengine

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// ParseConfig parses a connection string: a URL, or a PostgreSQL keyword/value string.
//
//	postgresql://user:pass@host:5432/db?pool_size=10   native pgx driver (also postgres://, postgresql+pgx://)
//	postgresql+stdlib://user:pass@host/db              PostgreSQL through database/sql
//	host=db1,db2 dbname=app pool_size=10               keyword/value, native pgx driver
//	sqlite:///relative/path.db, sqlite:////abs/path.db  embedded SQLite file
//	sqlite://                                           in-memory SQLite
//
// gosqla's keys are taken out; everything else reaches the driver byte for byte, so PostgreSQL
// strings mean what pgx makes of them (several hosts, PG* environment variables, service and
// password files). No password appears in an error or in the Config's String.
func ParseConfig(connString string) (*Config, error) {
	cfg, err := parseConfig(connString)
	if err != nil {
		return nil, secretsOf(connString).clean(err)
	}
	return cfg, nil
}

func parseConfig(s string) (*Config, error) {
	cfg := &Config{
		PoolSize: 5, MaxOverflow: 10, PoolTimeout: 30 * time.Second, PoolRecycle: -1,
		PoolResetOnReturn: ResetRollback, PoolClass: PoolQueue, WorkerQueue: 65536,
		StatementCache: CachePrepare,
	}
	scheme, rest, isURL := strings.Cut(s, "://")
	if !isURL {
		if !keywordValue.MatchString(s) {
			return nil, &ConfigError{Value: describe(s), Allowed: "postgresql://…, postgresql+pgx://…, postgresql+stdlib://…, sqlite:///path.db, sqlite://, or keyword/value (host=… dbname=…)",
				Err: fmt.Errorf("missing scheme")}
		}
		cfg.Driver, cfg.Dialect = DriverPgx, DialectPostgreSQL
		if err := parseKeywordValue(cfg, s); err != nil {
			return nil, err
		}
	} else {
		dialect, drv, _ := strings.Cut(strings.ToLower(scheme), "+")
		switch dialect {
		case "postgresql", "postgres":
			cfg.Dialect = DialectPostgreSQL
			switch drv {
			case "", "pgx":
				cfg.Driver = DriverPgx
			case "stdlib":
				cfg.Driver = DriverStdlib
			default:
				return nil, &ConfigError{Key: "driver", Value: drv, Allowed: "pgx, stdlib"}
			}
		case "sqlite":
			cfg.Dialect = DialectSQLite
			if drv != "" && drv != "modernc" {
				return nil, &ConfigError{Key: "driver", Value: drv, Allowed: "modernc (the default)"}
			}
			cfg.Driver = DriverSQLite
		default:
			return nil, &ConfigError{Key: "dialect", Value: dialect, Allowed: "postgresql, sqlite"}
		}
		if err := parseURL(cfg, scheme, rest); err != nil {
			return nil, err
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// keywordValue recognizes a libpq keyword/value string (empty means: all from the environment).
var keywordValue = regexp.MustCompile(`^\s*$|^\s*[A-Za-z_][A-Za-z0-9_]*\s*=`)

// settings collects what a connection string says, whatever its form.
type settings struct {
	cfg       *Config
	set       map[string]bool // gosqla keys given
	execMode  string          // pgx's default_query_exec_mode, if given
	sqlite    bool
	driverKey []string // the driver's keys, in order, as written
}

// take applies key=value if it is gosqla's, and reports whether the driver should get it.
func (st *settings) take(key, value string) (forDriver bool, err error) {
	if spec, ok := keys[key]; ok {
		if err := spec.set(st.cfg, value); err != nil {
			if err == errNotAllowed {
				err = nil
			}
			return false, &ConfigError{Key: key, Value: value, Allowed: spec.allowed, Err: err}
		}
		st.set[key] = true
		return false, nil
	}
	if st.sqlite {
		if !sqliteKeys[key] {
			return false, &ConfigError{Key: key, Err: fmt.Errorf("unknown key for SQLite%s", didYouMean(key)), Allowed: knownKeys() + "; SQLite's own: " + sqliteKeyList()}
		}
		return true, nil
	}
	if hint, ok := pgxpoolKeys[key]; ok {
		return false, &ConfigError{Key: key, Err: fmt.Errorf("pgxpool's key is not read by gosqla's pool: did you mean %s?", hint)}
	}
	if key == "default_query_exec_mode" {
		st.execMode = value
		return true, nil
	}
	if pgxKeys[key] {
		return true, nil
	}
	if hint := didYouMean(key); hint != "" || looksLikeOurs(key) {
		return false, &ConfigError{Key: key, Err: fmt.Errorf("unknown gosqla key%s", hint), Allowed: knownKeys()}
	}
	st.driverKey = append(st.driverKey, key)
	return true, nil
}

// finish reconciles pgx's default_query_exec_mode with statement_cache: one is the other.
func (st *settings) finish() error {
	if st.execMode == "" {
		return nil
	}
	mode, ok := execModes[st.execMode]
	if !ok {
		return &ConfigError{Key: "default_query_exec_mode", Value: st.execMode, Allowed: "cache_statement, cache_describe, describe_exec, exec, simple_protocol"}
	}
	if st.set["statement_cache"] && st.cfg.StatementCache != mode {
		return &ConfigError{Key: "default_query_exec_mode", Value: st.execMode,
			Err: fmt.Errorf("conflicts with statement_cache=%s (default_query_exec_mode=%s is statement_cache=%s); give one of them", st.cfg.StatementCache, st.execMode, mode)}
	}
	st.cfg.StatementCache = mode
	return nil
}

func parseURL(cfg *Config, scheme, rest string) error {
	st := &settings{cfg: cfg, set: map[string]bool{}, sqlite: cfg.Dialect == DialectSQLite}
	base, rawQuery, _ := strings.Cut(rest, "?")
	var driverParts []string
	for _, part := range strings.Split(rawQuery, "&") {
		if part == "" {
			continue
		}
		rawKey, rawValue, _ := strings.Cut(part, "=")
		key, err := url.QueryUnescape(rawKey)
		if err != nil {
			return &ConfigError{Key: describeKey(rawKey), Err: fmt.Errorf("the key is not valid URL encoding")}
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			if _, ours := keys[key]; ours {
				return &ConfigError{Key: key, Value: rawValue, Err: fmt.Errorf("the value is not valid URL encoding")}
			}
			return &ConfigError{Key: key, Err: fmt.Errorf("the value is not valid URL encoding")}
		}
		forDriver, err := st.take(key, value)
		if err != nil {
			return err
		}
		if forDriver {
			driverParts = append(driverParts, part)
		}
	}
	if err := st.finish(); err != nil {
		return err
	}
	if st.sqlite {
		memory := base == "" || base == "/:memory:"
		if memory {
			// Every connection to ":memory:" is a database of its own: keep one, as SQLAlchemy does.
			if !st.set["poolclass"] {
				cfg.PoolClass = PoolStatic
			}
			cfg.DSN = "file::memory:"
		} else {
			cfg.DSN = "file:" + strings.TrimPrefix(base, "/")
		}
		driverParts = append(driverParts, "_pragma=busy_timeout%2810000%29", "_pragma=foreign_keys%281%29")
		if !slices.ContainsFunc(driverParts, func(p string) bool { return strings.HasPrefix(p, "_time_format=") }) {
			// the driver's default writes a time.Time with a bare UTC offset in a form it cannot
			// read back; this one round-trips every time.Time
			driverParts = append(driverParts, "_time_format=sqlite")
		}
		if !memory {
			driverParts = append(driverParts, "_pragma=journal_mode%28WAL%29")
		}
		cfg.DSN += "?" + strings.Join(driverParts, "&")
		cfg.url = describe(scheme + "://" + base)
		return nil
	}
	if strings.Count(base, "@") > 1 {
		// pgx ends the user information at the first '@', Go's url package at the last one:
		// one of them would take part of the password for the host name
		return &ConfigError{Value: describe(scheme + "://" + rest), Err: fmt.Errorf("more than one '@' before the host: percent-encode '@' in the user name and password as %%40")}
	}
	cfg.DSN = "postgresql://" + base
	if len(driverParts) > 0 {
		cfg.DSN += "?" + strings.Join(driverParts, "&")
	}
	if _, err := url.Parse(cfg.DSN); err != nil {
		return &ConfigError{Value: describe(scheme + "://" + rest), Err: fmt.Errorf("the URL does not parse: percent-encode reserved characters (@ : / ? # %% and spaces) in the user name and password")}
	}
	cfg.url = describe(scheme + "://" + strings.TrimPrefix(cfg.DSN, "postgresql://"))
	return nil
}

// kvPair is one keyword=value of a keyword/value string, with where it was written.
type kvPair struct {
	key, value string
	start, end int
}

// splitKeywordValue reads a libpq keyword/value string: values may be single-quoted, and a
// backslash escapes the next character.
func splitKeywordValue(s string) ([]kvPair, error) {
	var pairs []kvPair
	i := 0
	for {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i == len(s) {
			return pairs, nil
		}
		start := i
		for i < len(s) && s[i] != '=' && !isSpace(s[i]) {
			i++
		}
		key := s[start:i]
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i == len(s) || s[i] != '=' {
			// the word itself is not quoted: it may be the rest of an unquoted password
			where := "at the start"
			if len(pairs) > 0 {
				where = "after " + pairs[len(pairs)-1].key + "="
			}
			return nil, &ConfigError{Err: fmt.Errorf("keyword/value string: a word without '=' %s (quote values that contain spaces: key='a b')", where)}
		}
		i++
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		var v strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			closed := false
			for i < len(s) {
				switch c := s[i]; {
				case c == '\\' && i+1 < len(s):
					v.WriteByte(s[i+1])
					i += 2
					continue
				case c == '\'':
					closed = true
				default:
					v.WriteByte(c)
				}
				i++
				if closed {
					break
				}
			}
			if !closed {
				return nil, &ConfigError{Key: key, Err: fmt.Errorf("keyword/value string: the quoted value of %s has no closing quote", key)}
			}
		} else {
			for i < len(s) && !isSpace(s[i]) {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				v.WriteByte(s[i])
				i++
			}
		}
		pairs = append(pairs, kvPair{key: key, value: v.String(), start: start, end: i})
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// parseKeywordValue reads a keyword/value string; gosqla's keys are given as keywords too
// ("host=db dbname=app pool_size=10").
func parseKeywordValue(cfg *Config, s string) error {
	pairs, err := splitKeywordValue(s)
	if err != nil {
		return err
	}
	st := &settings{cfg: cfg, set: map[string]bool{}}
	var kept []string
	for _, p := range pairs {
		forDriver, err := st.take(p.key, p.value)
		if err != nil {
			return err
		}
		if forDriver {
			kept = append(kept, s[p.start:p.end])
		}
	}
	if err := st.finish(); err != nil {
		return err
	}
	cfg.DSN = strings.Join(kept, " ")
	cfg.url = describe(cfg.DSN)
	return nil
}

// pgxpoolKeys are pgxpool's own keys, and what configures the same thing in gosqla.
var pgxpoolKeys = map[string]string{
	"pool_max_conns":                "pool_size / max_overflow (at most pool_size + max_overflow connections)",
	"pool_min_conns":                "pool_size (the connections kept open)",
	"pool_min_idle_conns":           "pool_size (the connections kept open)",
	"pool_max_conn_lifetime":        "pool_recycle",
	"pool_max_conn_lifetime_jitter": "pool_recycle",
	"pool_max_conn_idle_time":       "pool_size (idle connections beyond it are closed at checkin)",
	"pool_health_check_period":      "pool_pre_ping",
}

// pgxKeys are pgx's keys that look like gosqla's.
var pgxKeys = map[string]bool{"statement_cache_capacity": true, "description_cache_capacity": true}

// sqliteKeys are the keys modernc.org/sqlite and SQLite's URI file names understand.
var sqliteKeys = map[string]bool{
	"_pragma": true, "_busy_timeout": true, "_timeout": true, "_auto_vacuum": true, "_vacuum": true,
	"_foreign_keys": true, "_fk": true, "_journal_mode": true, "_journal": true, "_synchronous": true,
	"_sync": true, "_query_only": true, "_time_format": true, "_time_integer_format": true,
	"_timezone": true, "_txlock": true, "_inttotime": true, "_texttotime": true, "_dqs": true,
	"_defensive": true, "_error_rc": true, "vfs": true, "mode": true, "cache": true, "immutable": true,
	"nolock": true, "psow": true, "modeof": true,
}

func sqliteKeyList() string {
	return "_pragma, _busy_timeout, _foreign_keys, _journal_mode, _synchronous, _txlock, _time_format, …, vfs, mode, cache, immutable, nolock"
}

// looksLikeOurs reports whether an unknown key was probably meant for gosqla (a typo), rather than
// for the driver.
func looksLikeOurs(k string) bool {
	for _, p := range []string{"pool", "max_overflow", "overflow", "worker", "statement_cache", "echo", "cancel_grace", "log_param"} {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// didYouMean names the gosqla key closest to k when it is a likely misspelling of it.
func didYouMean(k string) string {
	best, bestD := "", 3
	for name := range keys {
		d := editDistance(k, name)
		if d < bestD || d == bestD && name < best {
			best, bestD = name, d
		}
	}
	limit := 2
	if len(k) < 6 {
		limit = 1
	}
	if best == "" || bestD > limit {
		return ""
	}
	return "; did you mean " + best + "?"
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// describeKey is a key fit for a message: keys are short names, a long one is likely a
// misplaced value.
func describeKey(k string) string {
	if len(k) > 40 {
		return k[:20] + "…"
	}
	return k
}
