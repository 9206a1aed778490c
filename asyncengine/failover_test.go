package asyncengine_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/stretchr/testify/require"
)

// multiHost is a libpq multi-host URL naming the given clusters' database db, in order.
func multiHost(db, query string, cs ...*enginetest.Cluster) string {
	hosts := ""
	for i, c := range cs {
		if i > 0 {
			hosts += ","
		}
		hosts += fmt.Sprintf("127.0.0.1:%d", c.Port())
	}
	return fmt.Sprintf("postgresql://postgres@%s/%s?sslmode=disable&%s", hosts, db, query)
}

// The primary is stopped while clients write; a standby is promoted; the engine, on a multi-host
// URL with target_session_attrs=read-write, drops the old connections and writes again on the new
// primary. With synchronous replication no acknowledged write is lost.
func TestFailoverMultiHost(t *testing.T) {
	t.Parallel()
	r := enginetest.NewReplication(t, enginetest.ReplicationOptions{Standbys: 1, Synchronous: true})
	db := r.NewDatabase(t)
	url := multiHost(db, "target_session_attrs=read-write&connect_timeout=2&pool_size=4&max_overflow=0&pool_timeout=10", r.Primary, r.Standbys[0])
	e := newEngine(t, url, "")
	ctx := enginetest.Context(t)
	_, err := e.Exec(ctx, "CREATE TABLE w (id int PRIMARY KEY, writer int NOT NULL)")
	require.NoError(t, err)

	// four writers until told to stop, each recording the ids the server acknowledged
	const writers = 4
	stop := make(chan struct{})
	acked := make([][]int, writers)
	var ackCount atomic.Int64 // acknowledged writes so far, for the main goroutine to wait on
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				id := n*writers + w
				if _, err := e.Exec(ctx, "INSERT INTO w VALUES ($1, $2)", id, w); err == nil {
					acked[w] = append(acked[w], id)
					ackCount.Add(1)
				} else {
					time.Sleep(5 * time.Millisecond)
				}
			}
		}()
	}
	// a fifth writer uses BeginRetry: the failover costs it no error, except a COMMIT whose outcome
	// it cannot know
	var retryAcked []int
	var retryErrs []error
	wg.Add(1)
	go func() {
		defer wg.Done()
		var retried []string // the errors BeginRetry retried, for the log of a failure
		defer func() { t.Logf("BeginRetry retried %d times: %q", len(retried), retried) }()
		p := asyncengine.RetryPolicy{MaxAttempts: 1000, BaseDelay: time.Millisecond, MaxDelay: 50 * time.Millisecond,
			OnRetry: func(_ int, err error) { retried = append(retried, err.Error()) }}
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			id := -2 - n
			err := e.BeginRetry(ctx, p, func(c *asyncengine.Conn) error {
				_, err := c.Exec(ctx, "INSERT INTO w VALUES ($1, $2)", id, writers)
				return err
			})
			switch {
			case err == nil:
				retryAcked = append(retryAcked, id)
			case !errors.Is(err, asyncengine.ErrCommitUnknown):
				retryErrs = append(retryErrs, err)
			}
		}
	}()
	waitUntil(t, 30*time.Second, "the condition", func() bool { return e.Stats().CheckedOut > 0 })
	waitUntil(t, 30*time.Second, "writes acknowledged by the first primary", func() bool { return ackCount.Load() >= 20 })

	stopped := time.Now()
	r.Primary.Stop(t)
	r.Standbys[0].Promote(t)
	promoted := time.Now()
	var resumed time.Duration
	for {
		if _, err := e.Exec(ctx, "INSERT INTO w VALUES (-1, -1) ON CONFLICT DO NOTHING"); err == nil {
			resumed = time.Since(promoted)
			break
		}
		require.Less(t, time.Since(promoted), 30*time.Second, "writes did not resume")
		time.Sleep(5 * time.Millisecond)
	}
	onNew := ackCount.Load()
	waitUntil(t, 30*time.Second, "writes acknowledged by the new primary", func() bool { return ackCount.Load() >= onNew+20 })
	close(stop)
	wg.Wait()
	t.Logf("writes resumed %v after the promotion (%v after the primary began to stop)", resumed, promoted.Add(resumed).Sub(stopped))
	require.Less(t, resumed, 5*time.Second)

	// every acknowledged write is on the new primary, which is what the engine now talks to
	res, err := e.Query(ctx, "SELECT pg_is_in_recovery(), inet_server_port()")
	require.NoError(t, err)
	var standby bool
	var port int32
	require.NoError(t, res.One(&standby, &port))
	require.False(t, standby)
	require.Equal(t, int32(r.Standbys[0].Port()), port)
	total := 0
	for w := 0; w < writers; w++ {
		total += len(acked[w])
		res, err := e.Query(ctx, "SELECT count(*) FROM w WHERE id = ANY($1)", acked[w])
		require.NoError(t, err)
		n, err := res.Scalar()
		require.NoError(t, err)
		require.EqualValues(t, len(acked[w]), n, "writer %d: every acknowledged write survived the failover", w)
	}
	require.NotZero(t, total)
	require.Empty(t, retryErrs, "BeginRetry rode out the failover")
	require.NotEmpty(t, retryAcked)
	res, err = e.Query(ctx, "SELECT count(*) FROM w WHERE id = ANY($1)", retryAcked)
	require.NoError(t, err)
	var n int64
	require.NoError(t, res.One(&n))
	require.EqualValues(t, len(retryAcked), n, "every write BeginRetry acknowledged survived")
	t.Logf("%d acknowledged writes, all on the new primary", total)
}

// target_session_attrs picks the server by role, as libpq defines it.
func TestTargetSessionAttrs(t *testing.T) {
	t.Parallel()
	r := enginetest.SharedReplication(t)
	db := r.NewDatabase(t)
	ctx := enginetest.Context(t)
	for _, tc := range []struct {
		attrs    string
		standby  bool
		order    []*enginetest.Cluster
		scenario string
	}{
		{"read-write", false, []*enginetest.Cluster{r.Standbys[0], r.Primary}, "skips a standby listed first"},
		{"primary", false, []*enginetest.Cluster{r.Standbys[0], r.Primary}, "skips a standby listed first"},
		{"standby", true, []*enginetest.Cluster{r.Primary, r.Standbys[0]}, "skips the primary listed first"},
		{"prefer-standby", true, []*enginetest.Cluster{r.Primary, r.Standbys[0]}, "takes the standby"},
		{"read-only", true, []*enginetest.Cluster{r.Primary, r.Standbys[1]}, "skips the primary listed first"},
		{"any", false, []*enginetest.Cluster{r.Primary, r.Standbys[0]}, "takes the first"},
	} {
		e := newEngine(t, multiHost(db, "target_session_attrs="+tc.attrs, tc.order...), "")
		res, err := e.Query(ctx, "SELECT pg_is_in_recovery()")
		require.NoError(t, err, tc.attrs)
		v, err := res.Scalar()
		require.NoError(t, err)
		require.Equal(t, tc.standby, v, "%s %s", tc.attrs, tc.scenario)
	}

	// prefer-standby with no standby reachable falls back to the primary
	e := newEngine(t, multiHost(db, "target_session_attrs=prefer-standby", r.Primary), "")
	res, err := e.Query(ctx, "SELECT pg_is_in_recovery()")
	require.NoError(t, err)
	v, _ := res.Scalar()
	require.Equal(t, false, v)

	// a standby alone cannot satisfy read-write: the error names the reason
	e = newEngine(t, multiHost(db, "target_session_attrs=read-write&connect_timeout=2", r.Standbys[0]), "")
	_, err = e.Exec(ctx, "SELECT 1")
	require.Error(t, err)
	require.Contains(t, err.Error(), "read")
}

func TestTargetSessionAttrsUnknown(t *testing.T) {
	t.Parallel()
	_, err := asyncengine.New("postgresql://u@h1:5432,h2:5432/db?target_session_attrs=writable")
	require.ErrorIs(t, err, asyncengine.ErrInvalidConfig)
	require.Contains(t, err.Error(), "target_session_attrs")
	require.Contains(t, err.Error(), "writable")
	require.Contains(t, err.Error(), "prefer-standby")
}
