package asyncengine_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/stretchr/testify/require"
)

func TestReplicaSetConfig(t *testing.T) {
	t.Parallel()
	cfg, err := asyncengine.ParseConfig("postgresql://u@db1/app?replicas=db2,db3:5433&replica_routing=least_busy&max_replica_lag=2s&replica_fallback=error&read_your_writes_wait=0.5")
	require.NoError(t, err)
	require.Equal(t, asyncengine.ReplicaSettings{Hosts: []string{"db2", "db3:5433"}, Routing: asyncengine.RouteLeastBusy,
		Fallback: asyncengine.FallbackError, MaxLag: 2 * time.Second, ReadYourWritesWait: 500 * time.Millisecond}, cfg.Replica)
	require.NotContains(t, cfg.DSN, "replica")

	rs, err := asyncengine.NewReplicaSet("postgresql://u:secret@db1:5432/app?replicas=db2,db3:5433&sslmode=disable")
	require.NoError(t, err)
	defer rs.Close()
	st := rs.Stats()
	require.Len(t, st, 3)
	require.Equal(t, "primary", st[0].Role)
	require.Contains(t, st[1].Server, "@db2/app")
	require.Contains(t, st[2].Server, "@db3:5433/app")
	require.Contains(t, st[2].Server, "sslmode=disable")
	require.NotContains(t, fmt.Sprint(st), "secret")

	for _, bad := range []string{
		"postgresql://u@db1/app?replica_routing=fastest",
		"postgresql://u@db1/app?replicas=",
		"postgresql://u@db1/app?replicas=db2/x",
		"postgresql://u@db1/app?replica_fallback=maybe",
	} {
		_, err := asyncengine.NewReplicaSet(bad)
		require.ErrorIs(t, err, asyncengine.ErrInvalidConfig, bad)
	}
	_, err = asyncengine.NewReplicaSet("postgresql://u@db1/app")
	require.ErrorIs(t, err, asyncengine.ErrInvalidConfig)
	require.Contains(t, err.Error(), "no replicas")
	_, err = asyncengine.New("postgresql://u@db1/app?replicas=db2")
	require.ErrorIs(t, err, asyncengine.ErrInvalidConfig)
	require.Contains(t, err.Error(), "NewReplicaSet")
	_, err = asyncengine.NewReplicaSet("sqlite://?replicas=db2")
	require.ErrorIs(t, err, asyncengine.ErrInvalidConfig)
}

func TestReadYourWritesToken(t *testing.T) {
	t.Parallel()
	rw, err := asyncengine.NewReadYourWrites("")
	require.NoError(t, err)
	require.Equal(t, "", rw.Token())
	rw.Observe(0x16_B374D848)
	rw.Observe(0x10) // never backwards
	require.Equal(t, "16/B374D848", rw.Token())
	again, err := asyncengine.NewReadYourWrites(rw.Token())
	require.NoError(t, err)
	require.Equal(t, rw.Position(), again.Position())
	for _, bad := range []string{"16", "x/1", "1/2/3", "100000000/0"} {
		_, err := asyncengine.NewReadYourWrites(bad)
		require.ErrorIs(t, err, asyncengine.ErrInvalidConfig, bad)
	}
}

func TestReadOnlySQL(t *testing.T) {
	t.Parallel()
	for sql, readOnly := range map[string]bool{
		"SELECT * FROM t":                               true,
		"  select updated_at, locked FROM t":            true,
		"WITH x AS (SELECT 1) SELECT * FROM x":          true,
		"SELECT * FROM t FOR UPDATE":                    false,
		"select * from t for no key update":             false,
		"SELECT * FROM t FOR SHARE SKIP LOCKED":         false,
		"SELECT * FROM t for key share":                 false,
		"WITH d AS (DELETE FROM t RETURNING *) TABLE d": false,
		"INSERT INTO t VALUES (1) RETURNING id":         false,
		"UPDATE t SET a = 1":                            false,
		"SELECT nextval('s')":                           false,
		"SELECT * INTO t2 FROM t":                       false,
		"SELECT pg_advisory_lock(1)":                    false,
		"CREATE TABLE t (id int)":                       false,
	} {
		require.Equal(t, readOnly, asyncengine.ReadOnlySQL(sql), sql)
	}
}

// replicaSet opens a set over the shared replication's primary and standbys for database db.
func replicaSet(t *testing.T, r *enginetest.Replication, db, query string) *asyncengine.ReplicaSet {
	t.Helper()
	hosts := ""
	for i, s := range r.Standbys {
		if i > 0 {
			hosts += ","
		}
		hosts += fmt.Sprintf("127.0.0.1:%d", s.Port())
	}
	rs, err := asyncengine.NewReplicaSet(enginetest.WithQuery(r.Primary.URL(db), "replicas="+hosts+"&"+query))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, rs.Close()) })
	return rs
}

// servedBy runs a read and says which server answered it.
func servedBy(t *testing.T, ctx context.Context, rs *asyncengine.ReplicaSet) int32 {
	t.Helper()
	res, err := rs.Query(ctx, "SELECT inet_server_port()")
	require.NoError(t, err)
	var port int32
	require.NoError(t, res.One(&port))
	return port
}

// Reads spread over the replicas; writes, locking reads and marked reads go to the primary.
func TestReplicaSetRouting(t *testing.T) {
	t.Parallel()
	r := enginetest.SharedReplication(t)
	db := r.NewDatabase(t)
	ctx := enginetest.Context(t)
	primary, s1, s2 := int32(r.Primary.Port()), int32(r.Standbys[0].Port()), int32(r.Standbys[1].Port())
	for _, routing := range []string{"round_robin", "random", "least_busy"} {
		rs := replicaSet(t, r, db, "replica_routing="+routing)
		served := map[int32]int{}
		const reads = 300
		for i := 0; i < reads; i++ {
			served[servedBy(t, ctx, rs)]++
		}
		require.Zero(t, served[primary], routing)
		require.Equal(t, reads, served[s1]+served[s2], routing)
		if routing == "round_robin" { // the others spread too, but by chance or by load
			require.GreaterOrEqual(t, served[s1], reads/3)
			require.GreaterOrEqual(t, served[s2], reads/3)
		}
		st := rs.Stats()
		require.EqualValues(t, served[s1], st[1].Reads, routing)
		require.EqualValues(t, served[s2], st[2].Reads, routing)
		t.Logf("%s: %d reads on standby 1, %d on standby 2", routing, served[s1], served[s2])

		res, err := rs.Query(ctx, "SELECT inet_server_port() FROM pg_class LIMIT 1 FOR UPDATE")
		require.NoError(t, err)
		port, _ := res.Scalar()
		require.Equal(t, primary, port, "a locking read goes to the primary")
		require.Equal(t, primary, servedBy(t, asyncengine.WithPrimary(ctx), rs), "a marked read goes to the primary")
		_, err = rs.Exec(ctx, "CREATE TABLE IF NOT EXISTS w (id int)")
		require.NoError(t, err, "writes go to the primary")
		require.NoError(t, rs.Begin(ctx, func(c *asyncengine.Conn) error {
			_, err := c.Exec(ctx, "INSERT INTO w VALUES (1)")
			return err
		}))
	}
}

// Read-your-writes by WAL position: with replay paused nothing stale is read (the reads go to the
// primary after the bounded wait); with replay running the replicas serve them. Not parallel: it
// pauses the shared standbys' replay.
func TestReadYourWrites(t *testing.T) {
	r := enginetest.SharedReplication(t)
	db := r.NewDatabase(t)
	ctx := enginetest.Context(t)
	rs := replicaSet(t, r, db, "read_your_writes_wait=50ms")
	_, err := rs.Exec(ctx, "CREATE TABLE counter (n int)")
	require.NoError(t, err)
	_, err = rs.Exec(ctx, "INSERT INTO counter VALUES (0)")
	require.NoError(t, err)
	r.CatchUp(t)

	rounds := func(n int) (stale int, replicaReads int64) {
		before := rs.Stats()
		rw, err := asyncengine.NewReadYourWrites("")
		require.NoError(t, err)
		for i := 1; i <= n; i++ {
			// each round is a new request carrying the token the last one handed out
			rw, err = asyncengine.NewReadYourWrites(rw.Token())
			require.NoError(t, err)
			ctx := asyncengine.WithReadYourWrites(ctx, rw)
			require.NoError(t, rs.Begin(ctx, func(c *asyncengine.Conn) error {
				_, err := c.Exec(ctx, "UPDATE counter SET n = n + 1")
				return err
			}))
			res, err := rs.Query(ctx, "SELECT n FROM counter")
			require.NoError(t, err)
			var got, want int
			res2, err := rs.Query(asyncengine.WithPrimary(ctx), "SELECT n FROM counter")
			require.NoError(t, err)
			require.NoError(t, res.One(&got))
			require.NoError(t, res2.One(&want))
			if got != want {
				stale++
			}
		}
		after := rs.Stats()
		return stale, after[1].Reads + after[2].Reads - before[1].Reads - before[2].Reads
	}

	r.Standbys[0].PauseReplay(t)
	r.Standbys[1].PauseReplay(t)
	stale, onReplicas := rounds(20)
	// a write sent through Query (UPDATE … RETURNING) advances the token as Exec does
	rwq, err := asyncengine.NewReadYourWrites("")
	require.NoError(t, err)
	qctx := asyncengine.WithReadYourWrites(ctx, rwq)
	wroteRes, err := rs.Query(qctx, "UPDATE counter SET n = n + 1 RETURNING n")
	require.NoError(t, err)
	require.NotEmpty(t, rwq.Token())
	readRes, err := rs.Query(qctx, "SELECT n FROM counter")
	require.NoError(t, err)
	var wrote, read int
	require.NoError(t, wroteRes.One(&wrote))
	require.NoError(t, readRes.One(&read))
	require.Equal(t, wrote, read, "the read sees the write Query made")
	// writes made around the set (a session on the primary) are observed after they commit, and
	// ReadEngine then picks the primary while the replicas have not replayed them
	rw, err := asyncengine.NewReadYourWrites("")
	require.NoError(t, err)
	rwctx := asyncengine.WithReadYourWrites(ctx, rw)
	_, err = rs.Primary().Exec(ctx, "UPDATE counter SET n = n + 1")
	require.NoError(t, err)
	require.NoError(t, rs.ObserveWrites(rwctx))
	eng, err := rs.ReadEngine(rwctx)
	require.NoError(t, err)
	require.Same(t, rs.Primary(), eng)
	r.Standbys[0].ResumeReplay(t)
	r.Standbys[1].ResumeReplay(t)
	t.Logf("replay paused: %d stale reads of 20, %d served by replicas", stale, onReplicas)
	require.Zero(t, stale)
	require.Zero(t, onReplicas)

	eng, err = rs.ReadEngine(rwctx) // now a replica within the wait, or the primary: never stale
	require.NoError(t, err)
	res, err := eng.Query(ctx, "SELECT n FROM counter")
	require.NoError(t, err)
	var seen, latest int
	require.NoError(t, res.One(&seen))
	res, err = rs.Primary().Query(ctx, "SELECT n FROM counter")
	require.NoError(t, err)
	require.NoError(t, res.One(&latest))
	require.Equal(t, latest, seen)

	stale, onReplicas = rounds(50)
	t.Logf("replay running: %d stale reads of 50, %d served by replicas", stale, onReplicas)
	require.Zero(t, stale)
	require.NotZero(t, onReplicas)

	// without a token, a paused replica serves its stale data: the guarantee is opt-in
	rs2 := replicaSet(t, r, db, "max_replica_lag=100ms&replica_routing=round_robin")
	r.Standbys[0].PauseReplay(t)
	defer r.Standbys[0].ResumeReplay(t)
	_, err = rs.Exec(ctx, "UPDATE counter SET n = n + 1")
	require.NoError(t, err)
	// max_replica_lag: once the paused standby is 100ms behind, reads avoid it
	s1 := int32(r.Standbys[0].Port())
	waitUntil(t, 30*time.Second, "the condition", func() bool {
		for i := 0; i < 10; i++ {
			if servedBy(t, ctx, rs2) == s1 {
				return false
			}
		}
		return true
	})
	r.Standbys[1].PauseReplay(t)
	_, err = rs.Exec(ctx, "UPDATE counter SET n = n + 1")
	require.NoError(t, err)
	waitUntil(t, 30*time.Second, "the condition", func() bool { return servedBy(t, ctx, rs2) == int32(r.Primary.Port()) })
	r.Standbys[1].ResumeReplay(t)
}

// A replica that cannot be reached is taken out and reads go on elsewhere; with none left they go
// to the primary, or fail with replica_fallback=error.
func TestReplicaSetFailingReplica(t *testing.T) {
	t.Parallel()
	r := enginetest.SharedReplication(t)
	db := r.NewDatabase(t)
	ctx := enginetest.Context(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := l.Addr().String()
	require.NoError(t, l.Close())

	rs, err := asyncengine.NewReplicaSet(enginetest.WithQuery(r.Primary.URL(db), fmt.Sprintf("replicas=%s,127.0.0.1:%d&connect_timeout=2", dead, r.Standbys[0].Port())))
	require.NoError(t, err)
	defer rs.Close()
	for i := 0; i < 10; i++ {
		require.Equal(t, int32(r.Standbys[0].Port()), servedBy(t, ctx, rs))
	}
	st := rs.Stats()
	require.False(t, st[1].Healthy)
	require.EqualValues(t, 1, st[1].Failures, "taken out once, not tried again before replica_retry")
	require.True(t, st[2].Healthy)

	// with the primary unreachable, replicas go on serving reads; writes fail
	pcfg, err := asyncengine.ParseConfig(fmt.Sprintf("postgresql://postgres@%s/%s?sslmode=disable&connect_timeout=2", dead, db))
	require.NoError(t, err)
	rcfg, err := asyncengine.ParseConfig(r.Standbys[1].URL(db))
	require.NoError(t, err)
	headless, err := asyncengine.NewReplicaSetWithConfig(pcfg, rcfg)
	require.NoError(t, err)
	defer headless.Close()
	for i := 0; i < 3; i++ {
		require.Equal(t, int32(r.Standbys[1].Port()), servedBy(t, ctx, headless))
	}
	_, err = headless.Exec(ctx, "SELECT 1")
	require.Error(t, err)
	require.NotErrorIs(t, err, asyncengine.ErrReplicaSet)

	for fallback, want := range map[string]error{"primary": nil, "error": asyncengine.ErrNoReplica} {
		rs, err := asyncengine.NewReplicaSet(enginetest.WithQuery(r.Primary.URL(db), "replicas="+dead+"&replica_fallback="+fallback))
		require.NoError(t, err)
		_, err = rs.Query(ctx, "SELECT 1") // takes the replica out, then falls back or fails
		if want == nil {
			require.NoError(t, err)
		} else {
			require.ErrorIs(t, err, want, "the read that took the last replica out does not reach the primary")
		}
		res, err := rs.Query(ctx, "SELECT inet_server_port()")
		if want == nil {
			require.NoError(t, err)
			port, _ := res.Scalar()
			require.Equal(t, int32(r.Primary.Port()), port)
		} else {
			require.ErrorIs(t, err, want)
		}
		require.NoError(t, rs.Close())
	}
}

// Members that are not what the configuration says are refused at first use.
func TestReplicaSetMisconfigured(t *testing.T) {
	t.Parallel()
	r := enginetest.SharedReplication(t)
	db := r.NewDatabase(t)
	other := r.NewDatabase(t)
	ctx := enginetest.Context(t)
	open := func(primary string, replicas ...string) *asyncengine.ReplicaSet {
		cfg, err := asyncengine.ParseConfig(primary)
		require.NoError(t, err)
		var rcs []*asyncengine.Config
		for _, u := range replicas {
			rc, err := asyncengine.ParseConfig(u)
			require.NoError(t, err)
			rcs = append(rcs, rc)
		}
		rs, err := asyncengine.NewReplicaSetWithConfig(cfg, rcs...)
		require.NoError(t, err)
		t.Cleanup(func() { rs.Close() })
		return rs
	}

	rs := open(r.Primary.URL(db), r.Primary.URL(db)) // a primary listed as a replica
	_, err := rs.Query(ctx, "SELECT 1")
	require.ErrorIs(t, err, asyncengine.ErrReplicaSet)
	require.Contains(t, err.Error(), "is a primary")
	_, err = rs.Query(ctx, "SELECT 1")
	require.ErrorIs(t, err, asyncengine.ErrReplicaSet, "refused from then on")

	rs = open(r.Standbys[0].URL(db), r.Standbys[1].URL(db)) // a standby as the primary
	_, err = rs.Exec(ctx, "CREATE TABLE x (id int)")
	require.ErrorIs(t, err, asyncengine.ErrReplicaSet)
	require.Contains(t, err.Error(), "is a standby")
	_, err = rs.Query(ctx, "SELECT 1")
	require.ErrorIs(t, err, asyncengine.ErrReplicaSet)

	rs = open(r.Primary.URL(db), r.Standbys[0].URL(other)) // another database
	_, err = rs.Query(ctx, "SELECT 1")
	require.ErrorIs(t, err, asyncengine.ErrReplicaSet)
	require.Contains(t, err.Error(), "same database")
	var rse *asyncengine.ReplicaSetError
	require.ErrorAs(t, err, &rse)
	require.Contains(t, rse.Member, other)
}

// Through PgBouncer in transaction mode in front of the primary, writes and the WAL positions
// read after them travel on whatever server connection is free: read-your-writes still holds.
func TestReplicaSetThroughPgBouncer(t *testing.T) {
	t.Parallel()
	r := enginetest.SharedReplication(t)
	db := r.NewDatabase(t)
	ctx := enginetest.Context(t)
	primary := r.Primary.PgBouncer(t, r.Primary.URL(db))
	rs, err := asyncengine.NewReplicaSet(enginetest.WithQuery(primary, fmt.Sprintf("statement_cache=describe&replicas=127.0.0.1:%d", r.Standbys[0].Port())))
	require.NoError(t, err)
	defer rs.Close()
	_, err = rs.Exec(ctx, "CREATE TABLE n (v int)")
	require.NoError(t, err)
	rw, err := asyncengine.NewReadYourWrites("")
	require.NoError(t, err)
	wctx := asyncengine.WithReadYourWrites(ctx, rw)
	for i := 1; i <= 20; i++ {
		_, err := rs.Exec(wctx, "INSERT INTO n VALUES ($1)", i)
		require.NoError(t, err)
		res, err := rs.Query(wctx, "SELECT count(*) FROM n")
		require.NoError(t, err)
		var n int64
		require.NoError(t, res.One(&n))
		require.EqualValues(t, i, n, "read %d sees the writes before it", i)
	}
	require.NotEmpty(t, rw.Token())
}
