package asyncsession_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/stretchr/testify/require"
)

// A Commit whose context carries a ReadYourWrites advances it to the commit's WAL position in the
// commit's own round trip: with the replicas' replay paused, the next read with that context goes
// to the primary and sees the session's write. A session reading from a standby commits as usual.
func TestCommitAdvancesReadYourWrites(t *testing.T) {
	r := enginetest.SharedReplication(t)
	db := r.NewDatabase(t)
	ctx := enginetest.Context(t)
	rs := replicated(t, r, db, "read_your_writes_wait=50ms")

	commit := func(ctxName string, rw *asyncengine.ReadYourWrites) int64 {
		s := asyncsession.New(rs.Primary())
		defer s.Close()
		c := ctx
		if rw != nil {
			c = asyncengine.WithReadYourWrites(ctx, rw)
		}
		require.NoError(t, s.Add(&Author{Name: ctxName}))
		before := rs.Primary().Stats().RoundTrips
		await(t, s.Commit(c))
		return rs.Primary().Stats().RoundTrips - before
	}
	warm, err := asyncengine.NewReadYourWrites("")
	require.NoError(t, err)
	commit("warm-up", warm) // statements are described once per connection

	for _, s := range r.Standbys {
		s.PauseReplay(t)
		defer s.ResumeReplay(t)
	}
	rw, err := asyncengine.NewReadYourWrites("")
	require.NoError(t, err)
	trips := commit("Ann", rw)
	require.NotEmpty(t, rw.Token())
	require.Equal(t, commit("Bo", nil), trips, "no round trip of its own")

	rctx := asyncengine.WithReadYourWrites(ctx, rw)
	eng, err := rs.ReadEngine(rctx)
	require.NoError(t, err)
	require.Same(t, rs.Primary(), eng, "the paused replicas have not replayed the commit")
	res, err := rs.Query(rctx, "SELECT count(*) FROM authors WHERE name = 'Ann'")
	require.NoError(t, err)
	var n int64
	require.NoError(t, res.One(&n))
	require.Equal(t, int64(1), n)

	// a read-only session on a standby, committed with the same context
	s := asyncsession.New(rs.Replicas()[0])
	defer s.Close()
	await(t, asyncsession.Select[Author](rctx, s, "SELECT * FROM authors"))
	before := rw.Position()
	await(t, s.Commit(rctx))
	require.Equal(t, before, rw.Position())
}

// replicated is a ReplicaSet over the shared replication's primary and standbys for database db,
// with the schema of the relationship tests created and replayed on the standbys.
func replicated(t *testing.T, r *enginetest.Replication, db, query string) *asyncengine.ReplicaSet {
	t.Helper()
	var hosts []string
	for _, s := range r.Standbys {
		hosts = append(hosts, fmt.Sprintf("127.0.0.1:%d", s.Port()))
	}
	q := "replicas=" + strings.Join(hosts, ",")
	if query != "" {
		q += "&" + query
	}
	rs, err := asyncengine.NewReplicaSet(enginetest.WithQuery(r.Primary.URL(db), q))
	require.NoError(t, err)
	t.Cleanup(func() { rs.Close() })
	relSchema(t, rs.Primary())
	require.NoError(t, asyncsession.CreateAll(enginetest.Context(t), rs.Primary(), Author{}, Book{}))
	r.CatchUp(t)
	return rs
}

// replicatedDB is replicated on a new database of the shared replication.
func replicatedDB(t *testing.T, query string) (*enginetest.Replication, string, *asyncengine.ReplicaSet) {
	t.Helper()
	r := enginetest.SharedReplication(t)
	db := r.NewDatabase(t)
	return r, db, replicated(t, r, db, query)
}

// servedBy is the port of the server a session's read with ctx runs on.
func servedBy(t *testing.T, ctx context.Context, s *asyncsession.Session) int32 {
	t.Helper()
	res := await(t, s.Execute(ctx, "SELECT inet_server_port()"))
	var port int32
	require.NoError(t, res.One(&port))
	return port
}

// A session with Replicas reads from a replica until its transaction writes; then everything
// goes to the primary, which holds the session's uncommitted writes, until Commit. After the
// commit its reads wait for a replica that has replayed it. Not parallel: it pauses the shared
// standbys' replay.
func TestSessionReadsFromReplicas(t *testing.T) {
	r := enginetest.SharedReplication(t)
	db := r.NewDatabase(t)
	ctx := enginetest.Context(t)
	rs := replicated(t, r, db, "read_your_writes_wait=200ms")
	primary := int32(r.Primary.Port())
	standby := map[int32]bool{int32(r.Standbys[0].Port()): true, int32(r.Standbys[1].Port()): true}

	seed := asyncsession.New(rs.Primary())
	le := &Writer{Name: "Le Guin", Books: []*Volume{{Title: "Earthsea"}, {Title: "Lathe"}}}
	require.NoError(t, seed.Add(le))
	await(t, seed.Commit(ctx))
	require.NoError(t, seed.Close())
	r.CatchUp(t)

	s := newSession(t, rs.Primary(), asyncsession.Replicas(rs))
	replica := servedBy(t, ctx, s)
	require.True(t, standby[replica], "a read goes to a replica, not to %d", replica)
	primaryTrips := roundTrips(rs.Primary())

	// every kind of read, issued together, on the replica chosen, and nothing on the primary
	w := asyncsession.Get[Writer](ctx, s, le.ID)
	all := asyncsession.Select[Writer](ctx, s, "SELECT * FROM writers")
	titles := asyncsession.Scalars[string](ctx, asyncsession.From[Volume](s).OrderBy("title"), "title")
	n := asyncsession.From[Volume](s).Count(ctx)
	got := await(t, w)
	require.Len(t, await(t, all), 1)
	require.Equal(t, []string{"Earthsea", "Lathe"}, await(t, titles))
	require.EqualValues(t, 2, await(t, n))
	await(t, asyncsession.Load(ctx, s, got, "Books"))
	require.Len(t, got.Books, 2)
	await(t, s.Refresh(ctx, got))
	require.Equal(t, replica, servedBy(t, ctx, s), "the session keeps its replica: its reads move only forward")
	require.Equal(t, primaryTrips, roundTrips(rs.Primary()), "no read reached the primary")

	// marked reads and locking reads go to the primary
	require.Equal(t, primary, servedBy(t, asyncengine.WithPrimary(ctx), s))
	await(t, s.Rollback(ctx))
	locked := await(t, asyncsession.Select[Writer](ctx, s, "SELECT * FROM writers FOR UPDATE"))
	require.Len(t, locked, 1)
	require.Equal(t, primary, servedBy(t, ctx, s), "after a locking read the transaction is the primary's")
	await(t, s.Rollback(ctx))
	require.True(t, standby[servedBy(t, ctx, s)])

	// a write opens the transaction on the primary: the reads after it see it there
	for _, st := range r.Standbys {
		st.PauseReplay(t)
		defer st.ResumeReplay(t)
	}
	got.Books = append(got.Books, &Volume{Title: "Tehanu"})
	vols := await(t, asyncsession.Select[Volume](ctx, s, "SELECT * FROM volumes ORDER BY title"))
	require.Len(t, vols, 3, "the autoflush wrote on the primary, and the read went with it")
	require.Equal(t, primary, servedBy(t, ctx, s))
	await(t, s.Commit(ctx))

	// after the commit no replica has replayed it: the reads wait, then go to the primary and see it
	count := func() int64 {
		return await(t, asyncsession.From[Volume](s).Count(ctx))
	}
	require.EqualValues(t, 3, count(), "no stale read of the session's own write")
	require.Equal(t, primary, servedBy(t, ctx, s))
	require.Zero(t, rs.Primary().Stats().CheckedOut, "reads that fell back to the primary opened no transaction there")

	// a read queued right after a Commit, before it is awaited, sees it too
	got.Books = append(got.Books, &Volume{Title: "Voyager"})
	committed := s.Commit(ctx)
	after := asyncsession.From[Volume](s).Count(ctx)
	await(t, committed)
	require.EqualValues(t, 4, await(t, after), "no stale read of the commit queued before it")
	// the position recorded is one the standbys receive at once: flushed, not merely inserted
	res, err := rs.Primary().Query(ctx, "SELECT pg_current_wal_flush_lsn()::text")
	require.NoError(t, err)
	var text string
	require.NoError(t, res.One(&text))
	flushed, err := asyncengine.ParseWALPosition(text)
	require.NoError(t, err)
	require.NotZero(t, s.ReadYourWrites().Position())
	require.LessOrEqual(t, s.ReadYourWrites().Position(), flushed)

	// with replay running again the reads go back to a replica, which has the write
	for _, st := range r.Standbys {
		st.ResumeReplay(t)
	}
	fresh := newSession(t, rs.Primary(), asyncsession.Replicas(rs))
	require.True(t, standby[servedBy(t, ctx, fresh)])
	ctx2 := asyncengine.WithReadYourWrites(ctx, sessionToken(t, rs, s))
	require.EqualValues(t, 4, await(t, asyncsession.From[Volume](fresh).Count(ctx2)))
	require.EqualValues(t, 4, count())
	require.True(t, standby[servedBy(t, ctx, s)], "a replica has replayed the commit: reads go there again")
}

// sessionToken is a ReadYourWrites at the primary's current position: what a service hands to
// the next request after a session committed.
func sessionToken(t *testing.T, rs *asyncengine.ReplicaSet, _ *asyncsession.Session) *asyncengine.ReadYourWrites {
	t.Helper()
	rw, err := asyncengine.NewReadYourWrites("")
	require.NoError(t, err)
	require.NoError(t, rs.ObserveWrites(asyncengine.WithReadYourWrites(enginetest.Context(t), rw)))
	return rw
}

// Sessions spread over the replicas; a replica lost under a session is reported to the set and
// the read goes to another, once.
func TestSessionReplicaSpreadAndFailure(t *testing.T) {
	t.Parallel()
	r, db, rs := replicatedDB(t, "")
	ctx := enginetest.Context(t)
	s1, s2 := int32(r.Standbys[0].Port()), int32(r.Standbys[1].Port())

	served := map[int32]int{}
	const sessions = 30
	for range sessions {
		s := asyncsession.New(rs.Primary(), asyncsession.Replicas(rs))
		for range 3 {
			served[servedBy(t, ctx, s)]++
		}
		require.NoError(t, s.Close())
	}
	require.Equal(t, 3*sessions, served[s1]+served[s2], "every read on a replica: %v", served)
	require.GreaterOrEqual(t, served[s1], sessions, "each replica serves at least a third: %v", served)
	require.GreaterOrEqual(t, served[s2], sessions, "each replica serves at least a third: %v", served)

	s := newSession(t, rs.Primary(), asyncsession.Replicas(rs))
	first := servedBy(t, ctx, s)
	lost, other := r.Standbys[0], s2
	if first == s2 {
		lost, other = r.Standbys[1], s1
	}
	require.Positive(t, lost.TerminateBackends(t, lost.URL(db)))
	// the pooled connection to the replica is dead: the read finds out, and goes to the other
	require.Len(t, await(t, asyncsession.Select[Writer](ctx, s, "SELECT * FROM writers")), 0)
	require.Equal(t, other, servedBy(t, ctx, s))
	st := rs.Stats()
	i := 1
	if lost == r.Standbys[1] {
		i = 2
	}
	require.False(t, st[i].Healthy, "the lost replica is out of routing")
	require.EqualValues(t, 1, st[i].Failures)

	// a read that fails on a replica fails alone: the read pipelined after it is sent again, and
	// the session's transaction is untouched
	bad := s.Execute(ctx, "SELECT 1/0")
	after := asyncsession.Select[Writer](ctx, s, "SELECT * FROM writers")
	_, err := bad.Await(ctx)
	require.ErrorContains(t, err, "division by zero")
	require.NotErrorIs(t, err, asyncengine.ErrPendingRollback)
	require.Empty(t, await(t, after))
	require.NoError(t, s.Add(&Writer{Name: "Butler"}))
	await(t, s.Commit(ctx))
}

// Replicas needs the set's primary as the session's engine, and no shards.
func TestSessionReplicasMisuse(t *testing.T) {
	t.Parallel()
	r, _, rs := replicatedDB(t, "")
	ctx := enginetest.Context(t)
	for name, s := range map[string]*asyncsession.Session{
		"not the primary": asyncsession.New(rs.Replicas()[0], asyncsession.Replicas(rs)),
		"nil set":         asyncsession.New(rs.Primary(), asyncsession.Replicas(nil)),
	} {
		_, err := asyncsession.Get[Writer](ctx, s, 1).Await(ctx)
		var ce *asyncengine.ConfigError
		require.ErrorAs(t, err, &ce, name)
		require.Equal(t, "replicas", ce.Key, name)
		require.NoError(t, s.Close())
	}
	err := asyncsession.NewMaker(rs.Replicas()[0], asyncsession.Replicas(rs)).Begin(ctx, func(s *asyncsession.Session) error {
		_, err := asyncsession.Get[Writer](ctx, s, 1).Await(ctx)
		return err
	})
	require.Equal(t, 1, strings.Count(err.Error(), "not the set's primary"), "said once: %v", err)

	// a transaction that reads one snapshot reads it on the primary, where its writes are checked
	// against its reads
	for _, level := range []string{"REPEATABLE READ", "serializable"} {
		s := newSession(t, rs.Primary(), asyncsession.Replicas(rs), asyncsession.Isolation(level))
		require.Equal(t, int32(r.Primary.Port()), servedBy(t, ctx, s), level)
	}
	s := newSession(t, rs.Primary(), asyncsession.Replicas(rs), asyncsession.Isolation("read committed"))
	require.NotEqual(t, int32(r.Primary.Port()), servedBy(t, ctx, s))

	set, err := asyncengine.NewShardSet(map[string]*asyncengine.Engine{"a": rs.Primary()})
	require.NoError(t, err)
	sharded := asyncsession.NewSharded(set, asyncsession.ShardChooser{}, asyncsession.Replicas(rs))
	defer sharded.Close()
	_, err = asyncsession.Get[Writer](ctx, sharded, 1).Await(ctx)
	require.ErrorContains(t, err, "sharded")
}
