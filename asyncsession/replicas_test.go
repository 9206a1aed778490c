package asyncsession_test

import (
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
	primary, _ := r.URLs(db)
	var hosts []string
	for _, s := range r.Standbys {
		hosts = append(hosts, fmt.Sprintf("127.0.0.1:%d", s.Port()))
	}
	rs, err := asyncengine.NewReplicaSet(enginetest.WithQuery(primary, "replicas="+strings.Join(hosts, ",")+"&read_your_writes_wait=50ms"))
	require.NoError(t, err)
	defer rs.Close()
	require.NoError(t, asyncsession.CreateAll(ctx, rs.Primary(), Author{}))
	r.CatchUp(t)

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
