package asyncengine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ReplicaRouting chooses among healthy replicas (replica_routing).
type ReplicaRouting string

const (
	RouteRoundRobin ReplicaRouting = "round_robin" // each in turn (the default)
	RouteRandom     ReplicaRouting = "random"
	RouteLeastBusy  ReplicaRouting = "least_busy" // fewest connections checked out or waited for
)

// ReplicaFallback says where reads go when no replica is healthy (replica_fallback).
type ReplicaFallback string

const (
	FallbackPrimary ReplicaFallback = "primary" // to the primary (the default)
	FallbackError   ReplicaFallback = "error"   // nowhere: the read fails with ErrNoReplica
)

// ReplicaSettings configure a ReplicaSet. In a URL they are the keys named beside each field.
type ReplicaSettings struct {
	// Hosts are read replicas (streaming standbys) of the primary, "host" or "host:port", reached
	// with the primary's user, password, database and driver keys (replicas=h1:5432,h2:5432).
	Hosts []string
	// Routing chooses among healthy replicas (replica_routing; default round_robin).
	Routing ReplicaRouting
	// Fallback is where reads go when no replica is healthy (replica_fallback; default primary).
	Fallback ReplicaFallback
	// MaxLag: a replica further behind than this is not read from; when every replica is, reads
	// go to the primary (max_replica_lag; 0 = no bound). Lag is the age of the last replayed
	// transaction while the replica has received WAL it has not replayed, else zero.
	MaxLag time.Duration
	// RetryAfter is how long a replica that failed stays out of routing (replica_retry; default 5s).
	RetryAfter time.Duration
	// ReadYourWritesWait bounds how long a read waits for a replica to replay the caller's writes
	// before it goes to the primary (read_your_writes_wait; default 200ms).
	ReadYourWritesWait time.Duration
}

func init() {
	keys["replicas"] = keySpec{"a comma-separated list of host or host:port", func(c *Config, v string) error {
		var hosts []string
		for _, h := range strings.Split(v, ",") {
			if h = strings.TrimSpace(h); h == "" || strings.ContainsAny(h, "/@?= ") {
				return errNotAllowed
			}
			hosts = append(hosts, h)
		}
		c.Replica.Hosts = hosts
		return nil
	}}
	keys["replica_routing"] = enumKey(func(c *Config) *ReplicaRouting { return &c.Replica.Routing }, RouteRoundRobin, RouteRandom, RouteLeastBusy)
	keys["replica_fallback"] = enumKey(func(c *Config) *ReplicaFallback { return &c.Replica.Fallback }, FallbackPrimary, FallbackError)
	keys["max_replica_lag"] = durationKey(false, func(c *Config) *time.Duration { return &c.Replica.MaxLag })
	keys["replica_retry"] = durationKey(false, func(c *Config) *time.Duration { return &c.Replica.RetryAfter })
	keys["read_your_writes_wait"] = durationKey(false, func(c *Config) *time.Duration { return &c.Replica.ReadYourWritesWait })
}

// refuseInEngine keeps replica settings from being silently ignored by a single Engine.
func (s *ReplicaSettings) refuseInEngine() error {
	if len(s.Hosts) > 0 || s.Routing != "" || s.Fallback != "" || s.MaxLag != 0 || s.RetryAfter != 0 || s.ReadYourWritesWait != 0 {
		return &ConfigError{Key: "replicas", Err: fmt.Errorf("an Engine talks to one server; replica keys (replicas, replica_routing, replica_fallback, max_replica_lag, replica_retry, read_your_writes_wait) need NewReplicaSet")}
	}
	return nil
}

var (
	// ErrNoReplica is returned by a read when no replica is healthy and replica_fallback=error.
	ErrNoReplica = errors.New("gosqla: no healthy replica")
	// ErrReplicaSet is matched by every *ReplicaSetError.
	ErrReplicaSet = errors.New("gosqla: replica set misconfigured")
)

// ReplicaSetError reports a member that is not what the configuration says: a replica that is a
// primary, a primary that is a standby, or members on different databases or users. Every
// operation of the set returns it from then on: nothing is written to or read from the wrong
// server.
type ReplicaSetError struct {
	Member string // the member's connection string, passwords hidden
	Err    error
}

func (e *ReplicaSetError) Error() string {
	return fmt.Sprintf("gosqla: replica set member %s: %v", e.Member, e.Err)
}
func (e *ReplicaSetError) Is(target error) bool { return target == ErrReplicaSet }
func (e *ReplicaSetError) Unwrap() error        { return e.Err }

// ReplicaSet is a primary and its read replicas, each with its own pool. Writes, transactions,
// Connect, and reads that lock rows or change data go to the primary; other reads outside a
// transaction go to a healthy replica chosen by the routing policy. A replica that fails is left
// out for RetryAfter. See ReadYourWrites for reads that must see the caller's own writes, and
// WithPrimary to send a read to the primary.
type ReplicaSet struct {
	primary  *member
	replicas []*member
	s        ReplicaSettings
	next     atomic.Uint64

	identity atomic.Pointer[memberIdentity] // the primary's, learnt at first use
	bad      atomic.Pointer[ReplicaSetError]
}

type memberIdentity struct{ db, user string }

type member struct {
	e         *Engine
	reads     atomic.Int64
	failures  atomic.Int64
	downUntil atomic.Int64 // unix nanoseconds
	verified  atomic.Bool
	replayed  atomic.Uint64 // furthest replay position seen

	lagMu sync.Mutex
	lag   time.Duration
	lagAt time.Time
}

// MemberStats describes one member of a ReplicaSet.
type MemberStats struct {
	Role   string // "primary" or "replica"
	Server string // connection string, passwords hidden
	Pool   PoolStats
	// Reads routed to it (for the primary: reads that fell back or were marked); a ReadEngine
	// call, and so a session with Replicas choosing its replica, counts one
	Reads    int64
	Failures int64 // times it was taken out of routing
	Healthy  bool
	// Replayed is the furthest replay position the set's checks saw (replicas): 0/0 until a read
	// checked it, which a read does when it waits for a ReadYourWrites position or when
	// max_replica_lag's last measure is older than 100 ms
	Replayed WALPosition
}

// NewReplicaSet opens a replica set from a URL naming the primary and, with replicas=, its
// replicas: postgresql://app@db1/app?replicas=db2,db3:5433&replica_routing=least_busy.
func NewReplicaSet(url string) (*ReplicaSet, error) {
	cfg, err := ParseConfig(url)
	if err != nil {
		return nil, err
	}
	return NewReplicaSetWithConfig(cfg)
}

// NewReplicaSetWithConfig opens a replica set: primary's Replica settings apply, its Replica.Hosts
// become replicas built from primary's configuration, and replicas adds replicas configured in
// full. No connection is made until first use, where each member is checked to be what it is
// said to be.
func NewReplicaSetWithConfig(primary *Config, replicas ...*Config) (*ReplicaSet, error) {
	if primary == nil {
		return nil, &ConfigError{Err: fmt.Errorf("a nil Config: build one with ParseConfig")}
	}
	s := primary.Replica
	if s.Routing == "" {
		s.Routing = RouteRoundRobin
	}
	if s.Fallback == "" {
		s.Fallback = FallbackPrimary
	}
	if s.RetryAfter <= 0 {
		s.RetryAfter = 5 * time.Second
	}
	if s.ReadYourWritesWait <= 0 {
		s.ReadYourWritesWait = 200 * time.Millisecond
	}
	for _, k := range []struct{ key, v string }{{"replica_routing", string(s.Routing)}, {"replica_fallback", string(s.Fallback)}} {
		if err := keys[k.key].set(&Config{}, k.v); err != nil {
			return nil, &ConfigError{Key: k.key, Value: k.v, Allowed: keys[k.key].allowed}
		}
	}
	base := *primary
	base.Replica = ReplicaSettings{}
	cfgs := []*Config{&base}
	for _, h := range s.Hosts {
		c := base
		dsn, err := withHost(base.DSN, h)
		if err != nil {
			return nil, err
		}
		c.DSN, c.url = dsn, ""
		cfgs = append(cfgs, &c)
	}
	cfgs = append(cfgs, replicas...)
	if len(cfgs) == 1 {
		return nil, &ConfigError{Key: "replicas", Err: fmt.Errorf("no replicas: name them with replicas=host:port,… or pass their Configs")}
	}
	rs := &ReplicaSet{s: s}
	for i, c := range cfgs {
		if c == nil || c.Dialect != "postgresql" {
			rs.Close()
			return nil, &ConfigError{Key: "replicas", Err: fmt.Errorf("every member of a replica set must be a PostgreSQL server")}
		}
		e, err := NewWithConfig(c)
		if err != nil {
			rs.Close()
			return nil, err
		}
		if i == 0 {
			rs.primary = &member{e: e}
		} else {
			rs.replicas = append(rs.replicas, &member{e: e})
		}
	}
	return rs, nil
}

// withHost is dsn with its host and port replaced by hostport.
func withHost(dsn, hostport string) (string, error) {
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", &ConfigError{Key: "replicas", Err: fmt.Errorf("the primary's URL cannot take a replica's host: %w", err)}
		}
		u.Host = hostport
		return u.String(), nil
	}
	host, port, _ := strings.Cut(hostport, ":")
	dsn += " host=" + host
	if port != "" {
		dsn += " port=" + port
	}
	return dsn, nil
}

// Primary is the primary's engine.
func (rs *ReplicaSet) Primary() *Engine { return rs.primary.e }

// Replicas are the replicas' engines, in configuration order.
func (rs *ReplicaSet) Replicas() []*Engine {
	out := make([]*Engine, len(rs.replicas))
	for i, m := range rs.replicas {
		out[i] = m.e
	}
	return out
}

// Close closes every member's engine.
func (rs *ReplicaSet) Close() error {
	var errs []error
	for _, m := range append([]*member{rs.primary}, rs.replicas...) {
		if m != nil {
			errs = append(errs, m.e.Close())
		}
	}
	return errors.Join(errs...)
}

// Stats describes each member, the primary first.
func (rs *ReplicaSet) Stats() []MemberStats {
	now := time.Now().UnixNano()
	out := []MemberStats{rs.primary.stats("primary", now)}
	for _, m := range rs.replicas {
		out = append(out, m.stats("replica", now))
	}
	return out
}

func (m *member) stats(role string, now int64) MemberStats {
	return MemberStats{Role: role, Server: m.e.cfg.String(), Pool: m.e.Stats(), Reads: m.reads.Load(),
		Failures: m.failures.Load(), Healthy: m.up(now), Replayed: WALPosition(m.replayed.Load())}
}

// Connect checks out a connection to the primary. Writes made on it do not advance a
// ReadYourWrites by themselves: call ObserveWrites after them.
func (rs *ReplicaSet) Connect(ctx context.Context) (*Conn, error) {
	c, err := rs.primary.e.Connect(ctx)
	if err != nil {
		return nil, err
	}
	if err := rs.checkPrimary(ctx, c); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Exec runs a statement on the primary; a ReadYourWrites in ctx advances past it.
func (rs *ReplicaSet) Exec(ctx context.Context, sql string, args ...any) (ExecResult, error) {
	c, err := rs.Connect(ctx)
	if err != nil {
		return ExecResult{}, err
	}
	defer c.Close()
	res, err := c.Exec(ctx, sql, args...)
	if err == nil {
		err = rs.observe(ctx, c)
	}
	return res, err
}

// Begin runs fn in a transaction on the primary (Engine.Begin); a ReadYourWrites in ctx advances
// past its commit.
func (rs *ReplicaSet) Begin(ctx context.Context, fn func(*Conn) error) error {
	return rs.BeginRetry(ctx, RetryPolicy{MaxAttempts: 1}, fn)
}

// BeginRetry is Begin retried under policy p (Engine.BeginRetry).
func (rs *ReplicaSet) BeginRetry(ctx context.Context, p RetryPolicy, fn func(*Conn) error) error {
	if err := rs.checkPrimary(ctx, nil); err != nil {
		return err
	}
	if err := rs.primary.e.BeginRetry(ctx, p, fn); err != nil {
		return err
	}
	return rs.observe(ctx, nil)
}

// observe advances the context's ReadYourWrites to the primary's CommitPositionSQL, which lies
// past every commit acknowledged so far.
func (rs *ReplicaSet) observe(ctx context.Context, c *Conn) error {
	rw := ReadYourWritesFrom(ctx)
	if rw == nil {
		return nil
	}
	var res *Result
	var err error
	if c != nil {
		res, err = c.Query(ctx, "SELECT "+CommitPositionSQL+"::text")
	} else {
		res, err = rs.primary.e.Query(ctx, "SELECT "+CommitPositionSQL+"::text")
	}
	var text string
	if err == nil {
		err = res.One(&text)
	}
	if err != nil {
		return fmt.Errorf("gosqla: the write succeeded, but its WAL position could not be read for read-your-writes: %w", err)
	}
	p, err := ParseWALPosition(text)
	if err != nil {
		return err
	}
	rw.Observe(p)
	return nil
}

// writeSQL spots statements that must run on the primary: they change data or lock rows.
var writeSQL = regexp.MustCompile(`(?is)^\s*(?:insert|update|delete|merge|create|alter|drop|truncate|grant|revoke|lock|call|do|copy|vacuum|analyze|cluster|reindex|refresh|comment|set|reset|begin|start|commit|rollback|savepoint|release|prepare|execute|listen|notify|discard)\b|\b(?:for\s+(?:no\s+key\s+)?update|for\s+(?:key\s+)?share|into|nextval|setval|pg_advisory\w*|insert|update|delete|merge)\b`)

// ReadOnlySQL reports whether a ReplicaSet may send the statement to a replica: a query that
// neither changes data (INSERT, UPDATE, DELETE, MERGE, DDL, SELECT … INTO, nextval…) nor locks
// rows (FOR UPDATE, FOR SHARE…). It errs toward the primary; a read calling a function with side
// effects must be sent there with WithPrimary.
func ReadOnlySQL(sql string) bool { return !writeSQL.MatchString(sql) }

// Query runs a query: a read on a replica (or on the primary when ctx asks for it, the statement
// writes or locks, no replica is healthy, or none has caught up with ctx's ReadYourWrites within
// read_your_writes_wait, or every replica lags more than max_replica_lag). A read that finds its
// replica gone is tried again on another replica; under replica_fallback=error, once none is
// healthy, it fails with ErrNoReplica. A statement that writes (INSERT … RETURNING) advances a
// ReadYourWrites in ctx, as Exec does.
func (rs *ReplicaSet) Query(ctx context.Context, sql string, args ...any) (*Result, error) {
	if writes := !ReadOnlySQL(sql); PrimaryRequested(ctx) || writes {
		c, err := rs.Connect(ctx)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		rs.primary.reads.Add(1)
		res, err := c.Query(ctx, sql, args...)
		if err == nil && writes {
			// a write (INSERT … RETURNING, a CTE that updates): later reads must see it
			err = rs.observe(ctx, c)
		}
		return res, err
	}
	for {
		c, m, err := rs.readConn(ctx)
		if err != nil {
			return nil, err
		}
		res, err := c.Query(ctx, sql, args...)
		c.Close()
		var lost *DisconnectError
		if err != nil && m != rs.primary && errors.As(err, &lost) {
			m.takeOut(rs.s.RetryAfter)
			continue
		}
		return res, err
	}
}

// ConnectReplica checks out a connection for reads as Query would route them (a replica, or the
// primary by fallback). Do not write on it.
func (rs *ReplicaSet) ConnectReplica(ctx context.Context) (*Conn, error) {
	c, _, err := rs.readConn(ctx)
	return c, err
}

// ReadEngine is the engine a read with ctx would go to now: a healthy replica that has replayed
// ctx's ReadYourWrites (checked on one of its connections), else the primary. It serves code that
// runs its own reads, such as a read-only session: asyncsession.New(eng). A replica's replay
// position only moves forward, so every later read on it sees those writes too; a replica that
// fails later is not taken out of routing by such reads.
func (rs *ReplicaSet) ReadEngine(ctx context.Context) (*Engine, error) {
	c, m, err := rs.readConn(ctx)
	if err != nil {
		return nil, err
	}
	c.Close()
	return m.e, nil
}

// ObserveWrites advances ctx's ReadYourWrites past every commit made on the primary so far: call
// it after writing through something other than the set's Exec, Query and Begin — a Conn from
// Connect. A session's Commit with ctx advances it by itself.
func (rs *ReplicaSet) ObserveWrites(ctx context.Context) error { return rs.observe(ctx, nil) }

// ReportFailure tells the set that a read its code ran on e — an engine ReadEngine returned —
// failed with err. When err means the server is gone or unreachable and e is a replica, the
// replica is taken out of routing for replica_retry, as a failed read of the set's own is, and
// ReportFailure returns true.
func (rs *ReplicaSet) ReportFailure(e *Engine, err error) bool {
	for _, m := range rs.replicas {
		if m.e == e && err != nil && e.lost(err) {
			m.takeOut(rs.s.RetryAfter)
			return true
		}
	}
	return false
}

// lost reports whether err means the server is gone or unreachable.
func (e *Engine) lost(err error) bool {
	var de *DisconnectError
	return errors.As(err, &de) || e.connector.IsDisconnect(err)
}

func (m *member) takeOut(d time.Duration) {
	m.failures.Add(1)
	m.downUntil.Store(time.Now().Add(d).UnixNano())
}

// readConn picks a member for a read and checks a connection out of it.
func (rs *ReplicaSet) readConn(ctx context.Context) (*Conn, *member, error) {
	if bad := rs.bad.Load(); bad != nil {
		return nil, nil, bad
	}
	var need WALPosition
	if rw := ReadYourWritesFrom(ctx); rw != nil {
		need = rw.Position()
	}
	deadline := time.Now().Add(rs.s.ReadYourWritesWait)
	for {
		healthy := rs.candidates()
		for _, m := range healthy {
			c, err := m.e.Connect(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil, nil, err
				}
				if m.e.lost(err) { // a busy replica (pool timeout) is only passed over
					m.takeOut(rs.s.RetryAfter)
				}
				continue
			}
			ok, err := rs.usable(ctx, m, c, need)
			if err == nil && ok {
				m.reads.Add(1)
				return c, m, nil
			}
			c.Close()
			switch {
			case errors.Is(err, ErrReplicaSet) || ctx.Err() != nil:
				return nil, nil, err
			case err != nil:
				m.takeOut(rs.s.RetryAfter)
			}
		}
		if rs.s.Fallback == FallbackError && !rs.anyHealthy() {
			// none healthy, also when this pass took the last ones out
			return nil, nil, fmt.Errorf("%w: all %d are out after failures (replica_fallback=error)", ErrNoReplica, len(rs.replicas))
		}
		// only a read waiting for its own writes waits; a lagging or missing replica sends it on
		if need == 0 || len(healthy) == 0 || !time.Now().Before(deadline) {
			break
		}
		t := time.NewTimer(2 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil, ctx.Err()
		case <-t.C:
		}
	}
	c, err := rs.Connect(ctx)
	if err != nil {
		return nil, nil, err
	}
	rs.primary.reads.Add(1)
	return c, rs.primary, nil
}

// candidates are the healthy replicas in the order the routing policy tries them. Each call
// moves round robin on by one.
func (rs *ReplicaSet) candidates() []*member {
	now := time.Now().UnixNano()
	var out []*member
	for _, m := range rs.replicas {
		if m.up(now) {
			out = append(out, m)
		}
	}
	if len(out) < 2 {
		return out
	}
	start := 0
	switch rs.s.Routing {
	case RouteRandom:
		start = rand.IntN(len(out))
	default:
		start = int(rs.next.Add(1) % uint64(len(out)))
	}
	out = append(out[start:], out[:start]...)
	if rs.s.Routing == RouteLeastBusy {
		sort.SliceStable(out, func(i, j int) bool { return out[i].busy() < out[j].busy() })
	}
	return out
}

// anyHealthy reports whether a replica is in routing now (without moving round robin on).
func (rs *ReplicaSet) anyHealthy() bool {
	now := time.Now().UnixNano()
	for _, m := range rs.replicas {
		if m.up(now) {
			return true
		}
	}
	return false
}

// up reports whether m is not taken out at time now (unix nanoseconds).
func (m *member) up(now int64) bool { return m.downUntil.Load() <= now }

func (m *member) busy() int {
	s := m.e.Stats()
	return s.CheckedOut + s.Waiting
}

// usable reports whether replica m may serve a read needing position need, checking on c (at
// first use) that m is a standby of the primary's database, as the same user.
func (rs *ReplicaSet) usable(ctx context.Context, m *member, c *Conn, need WALPosition) (bool, error) {
	if !m.verified.Load() {
		mid, standby, err := identify(ctx, c)
		if err != nil {
			return false, err
		}
		if !standby {
			return false, rs.misconfigured(m, fmt.Errorf("configured as a replica but is a primary (not in recovery); list streaming standbys as replicas"))
		}
		// with the primary unreachable, replicas go on serving reads; the comparison waits for it
		id, err := rs.primaryIdentity(ctx)
		switch {
		case errors.Is(err, ErrReplicaSet):
			return false, err
		case err == nil && *mid != *id:
			return false, rs.misconfigured(m, fmt.Errorf("serves database %q as user %q, but the primary serves %q as %q: every member must be a copy of the same database, used as the same user", mid.db, mid.user, id.db, id.user))
		case err == nil:
			m.verified.Store(true)
		}
	}
	needLag := rs.s.MaxLag > 0 && m.lagStale()
	if WALPosition(m.replayed.Load()) >= need && !needLag {
		return m.lagOK(rs.s.MaxLag), nil
	}
	res, err := c.Query(ctx, `SELECT coalesce(pg_last_wal_replay_lsn(), '0/0')::text,
		coalesce(CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
			ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END, 0)::float8`)
	var text string
	var lag float64
	if err == nil {
		err = res.One(&text, &lag)
	}
	if err != nil {
		return false, err
	}
	p, err := ParseWALPosition(text)
	if err != nil {
		return false, err
	}
	advanceTo(&m.replayed, p)
	m.lagMu.Lock()
	m.lag, m.lagAt = time.Duration(lag*float64(time.Second)), time.Now()
	m.lagMu.Unlock()
	return p >= need && m.lagOK(rs.s.MaxLag), nil
}

// lagStale: the lag measured last is older than this, so it is measured again with the read.
const lagFreshness = 100 * time.Millisecond

func (m *member) lagStale() bool {
	m.lagMu.Lock()
	defer m.lagMu.Unlock()
	return time.Since(m.lagAt) > lagFreshness
}

func (m *member) lagOK(max time.Duration) bool {
	if max <= 0 {
		return true
	}
	m.lagMu.Lock()
	defer m.lagMu.Unlock()
	return m.lag <= max
}

// checkPrimary checks, at first use, that the primary is not a standby.
func (rs *ReplicaSet) checkPrimary(ctx context.Context, c *Conn) error {
	if bad := rs.bad.Load(); bad != nil {
		return bad
	}
	if rs.primary.verified.Load() {
		return nil
	}
	if c == nil {
		var err error
		if c, err = rs.primary.e.Connect(ctx); err != nil {
			return err
		}
		defer c.Close()
	}
	id, standby, err := identify(ctx, c)
	if err != nil {
		return err
	}
	if standby {
		return rs.misconfigured(rs.primary, fmt.Errorf("configured as the primary but is a standby (in recovery); name the primary, or a multi-host URL with target_session_attrs=read-write"))
	}
	rs.identity.CompareAndSwap(nil, id)
	rs.primary.verified.Store(true)
	return nil
}

func (rs *ReplicaSet) primaryIdentity(ctx context.Context) (*memberIdentity, error) {
	if id := rs.identity.Load(); id != nil {
		return id, nil
	}
	if err := rs.checkPrimary(ctx, nil); err != nil {
		return nil, err
	}
	return rs.identity.Load(), nil
}

func identify(ctx context.Context, c *Conn) (*memberIdentity, bool, error) {
	res, err := c.Query(ctx, "SELECT current_database()::text, current_user::text, pg_is_in_recovery()")
	var id memberIdentity
	var standby bool
	if err == nil {
		err = res.One(&id.db, &id.user, &standby)
	}
	return &id, standby, err
}

// misconfigured records the first misconfiguration found; the set refuses all work from then on.
func (rs *ReplicaSet) misconfigured(m *member, err error) error {
	rs.bad.CompareAndSwap(nil, &ReplicaSetError{Member: m.e.cfg.String(), Err: err})
	return rs.bad.Load()
}
