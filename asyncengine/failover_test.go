package asyncengine_test

import (
	"context"
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
	url := multiHost(db, "target_session_attrs=read-write&connect_timeout=2&pool_size=8&max_overflow=0&pool_timeout=10", r.Primary, r.Standbys[0])
	e := newEngine(t, url, "")
	ctx := enginetest.Context(t)
	_, err := e.Exec(ctx, "CREATE TABLE w (id int PRIMARY KEY, writer int NOT NULL)")
	require.NoError(t, err)

	const writers = 4
	w := startWriters(ctx, e, writers)
	acked, ackCount, wg, stop := w.acked, &w.count, &w.wg, w.stop
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
	resumed := writeAgain(t, ctx, e, promoted)
	onNew := ackCount.Load()
	waitUntil(t, 30*time.Second, "writes acknowledged by the new primary", func() bool { return ackCount.Load() >= onNew+20 })
	close(stop)
	wg.Wait()
	t.Logf("writes resumed %v after the promotion (%v after the primary began to stop)", resumed, promoted.Add(resumed).Sub(stopped))
	require.Less(t, resumed, 5*time.Second)

	// every acknowledged write is on the new primary, which is what the engine now talks to
	requirePrimary(t, ctx, e, r.Standbys[0])
	total := requireAcked(t, ctx, e, acked)
	requireTyped(t, w.errs)
	require.Empty(t, retryErrs, "BeginRetry rode out the failover")
	require.NotEmpty(t, retryAcked)
	res, err := e.Query(ctx, "SELECT count(*) FROM w WHERE id = ANY($1)", retryAcked)
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

// writers insert rows (id, writer) until stop is closed, each recording the ids the server
// acknowledged.
type writers struct {
	acked [][]int
	errs  [][]error    // the failed writes' errors
	count atomic.Int64 // acknowledged writes so far, for the test to wait on
	wg    sync.WaitGroup
	stop  chan struct{}
}

func startWriters(ctx context.Context, e *asyncengine.Engine, n int) *writers {
	w := &writers{acked: make([][]int, n), errs: make([][]error, n), stop: make(chan struct{})}
	for i := range n {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for k := 0; ; k++ {
				select {
				case <-w.stop:
					return
				default:
				}
				id := k*n + i
				if _, err := e.Exec(ctx, "INSERT INTO w VALUES ($1, $2)", id, i); err == nil {
					w.acked[i] = append(w.acked[i], id)
					w.count.Add(1)
				} else {
					w.errs[i] = append(w.errs[i], err)
					time.Sleep(5 * time.Millisecond)
				}
			}
		}()
	}
	return w
}

// requirePrimary checks that e talks to c, a primary.
func requirePrimary(t *testing.T, ctx context.Context, e *asyncengine.Engine, c *enginetest.Cluster) {
	t.Helper()
	res, err := e.Query(ctx, "SELECT pg_is_in_recovery(), inet_server_port()")
	require.NoError(t, err)
	var standby bool
	var port int32
	require.NoError(t, res.One(&standby, &port))
	require.False(t, standby)
	require.Equal(t, int32(c.Port()), port)
}

// requireTyped checks that every error the writers saw says what happened: the connection was
// lost, or no server could be reached.
func requireTyped(t *testing.T, errs [][]error) {
	t.Helper()
	n := 0
	for _, es := range errs {
		for _, err := range es {
			n++
			var lost *asyncengine.DisconnectError
			if !errors.As(err, &lost) && !errors.Is(err, asyncengine.ErrServerUnavailable) {
				t.Errorf("a failed write's error is neither a lost connection nor an unavailable server: %v", err)
				for e := err; e != nil; e = errors.Unwrap(e) {
					t.Logf("  %T", e)
				}
			}
		}
	}
	t.Logf("%d failed writes, each a lost connection or an unavailable server", n)
}

// writeAgain waits until a write succeeds, and returns how long after since it did.
func writeAgain(t *testing.T, ctx context.Context, e *asyncengine.Engine, since time.Time) time.Duration {
	t.Helper()
	for {
		if _, err := e.Exec(ctx, "INSERT INTO w VALUES (-1, -1) ON CONFLICT DO NOTHING"); err == nil {
			return time.Since(since)
		}
		require.Less(t, time.Since(since), 30*time.Second, "writes did not resume")
		time.Sleep(5 * time.Millisecond)
	}
}

// requireAcked checks that every write the writers acknowledged is in the table e sees.
func requireAcked(t *testing.T, ctx context.Context, e *asyncengine.Engine, acked [][]int) int {
	t.Helper()
	total := 0
	for w, ids := range acked {
		total += len(ids)
		res, err := e.Query(ctx, "SELECT count(*) FROM w WHERE id = ANY($1)", ids)
		require.NoError(t, err)
		n, err := res.Scalar()
		require.NoError(t, err)
		require.EqualValues(t, len(ids), n, "writer %d: every acknowledged write survived the failover", w)
	}
	require.NotZero(t, total)
	return total
}

// A PgBouncer in front of a failover pair: the HA manager promotes the standby and points
// PgBouncer at it. The engine's connections to PgBouncer see one error per call in flight at the
// switch, and writes resume through the same PgBouncer without the application changing
// anything; with synchronous replication no acknowledged write is lost.
func TestFailoverThroughPgBouncer(t *testing.T) {
	t.Parallel()
	r := enginetest.NewReplication(t, enginetest.ReplicationOptions{Standbys: 1, Synchronous: true})
	db := r.NewDatabase(t)
	e := newEngine(t, r.Primary.PgBouncer(t, r.Primary.URL(db)), "statement_cache=describe&connect_timeout=2&pool_size=8&max_overflow=0&pool_timeout=10")
	ctx := enginetest.Context(t)
	_, err := e.Exec(ctx, "CREATE TABLE w (id int PRIMARY KEY, writer int NOT NULL)")
	require.NoError(t, err)

	w := startWriters(ctx, e, 4)
	waitUntil(t, 30*time.Second, "writes acknowledged by the first primary", func() bool { return w.count.Load() >= 20 })
	r.Primary.Stop(t)
	r.Standbys[0].Promote(t)
	r.Primary.MoveBouncer(t, r.Standbys[0])
	moved := time.Now()
	resumed := writeAgain(t, ctx, e, moved)
	onNew := w.count.Load()
	waitUntil(t, 30*time.Second, "writes acknowledged by the new primary", func() bool { return w.count.Load() >= onNew+20 })
	close(w.stop)
	w.wg.Wait()
	t.Logf("writes resumed %v after PgBouncer was moved to the new primary", resumed)
	require.Less(t, resumed, 5*time.Second)

	requirePrimary(t, ctx, e, r.Standbys[0])
	t.Logf("%d acknowledged writes, all on the new primary", requireAcked(t, ctx, e, w.acked))
	requireTyped(t, w.errs)
}
