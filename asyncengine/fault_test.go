package asyncengine_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// load runs n goroutines issuing queries until stop is closed, and reports every result.
func load(ctx context.Context, e *asyncengine.Engine, n int, stop <-chan struct{}, report func(start time.Time, err error)) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				_, err := e.Query(ctx, "SELECT 1")
				report(start, err)
				time.Sleep(time.Millisecond)
			}
		}()
	}
	return &wg
}

func TestTerminateBackendsUnderLoad(t *testing.T) {
	for _, prePing := range []bool{true, false} {
		name := "pre_ping"
		if !prePing {
			name = "no_pre_ping"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url := enginetest.NewDatabase(t)
			q := "pool_size=10&max_overflow=10&pool_pre_ping=false"
			if prePing {
				q = "pool_size=10&max_overflow=10&pool_pre_ping=true"
			}
			e := newEngine(t, url, q)
			ctx := enginetest.Context(t)
			var mu sync.Mutex
			var killedAt, firstFailure time.Time
			var failures []error
			var failedAfterKill, failedAfterFirst int
			var ok atomic.Int64
			stop := make(chan struct{})
			wg := load(ctx, e, 50, stop, func(start time.Time, err error) {
				if err == nil {
					ok.Add(1)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				failures = append(failures, err)
				if !killedAt.IsZero() && start.After(killedAt) {
					failedAfterKill++
				}
				if !firstFailure.IsZero() && start.After(firstFailure) {
					failedAfterFirst++
				}
				if firstFailure.IsZero() {
					firstFailure = time.Now()
				}
			})
			stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
			t.Cleanup(stopLoad)
			// until the pool is busy, then after the kill until the load has gone on a while
			waitUntil(t, 20*time.Second, "200 queries before the kill", func() bool { return ok.Load() >= 200 })
			// The kill happens between queries on idle connections only for pre-ping to be meaningful;
			// connections busy at that instant fail in either mode.
			killed := enginetest.Shared(t).TerminateBackends(t, url)
			require.Positive(t, killed, "the pool's backends were terminated")
			mu.Lock()
			killedAt = time.Now()
			mu.Unlock()
			after := ok.Load() + 500
			waitUntil(t, 20*time.Second, "500 queries after the kill", func() bool { return ok.Load() >= after })
			stopLoad()
			mu.Lock()
			defer mu.Unlock()
			for _, err := range failures {
				var de *asyncengine.DisconnectError
				assert.True(t, errors.As(err, &de), "every failure is a *DisconnectError: %v", err)
			}
			if prePing {
				assert.Zero(t, failedAfterKill, "with pre-ping no request that starts after the kill fails")
			} else {
				// without pre-ping the killed connections are found by using them: the fault must
				// have been seen, and the first failure marks every older connection stale, so
				// no request that starts after it fails, and at most the connections open at the
				// kill (pool_size + max_overflow) fail
				require.NotEmpty(t, failures, "without pre-ping the kill is seen as a failure")
				assert.LessOrEqual(t, len(failures), 20, "at most the connections open at the kill fail")
				assert.Zero(t, failedAfterFirst, "no request that starts after the first failure fails")
			}
			st := e.Stats()
			assert.Equal(t, 0, st.CheckedOut)
			assert.Positive(t, st.Invalidations)
		})
	}
}

func TestServerRestartMidLoad(t *testing.T) {
	t.Parallel()
	cl := enginetest.NewCluster(t)
	url := cl.NewDatabase(t)
	e := newEngine(t, url, "pool_size=5&max_overflow=5&pool_timeout=2")
	ctx := enginetest.Context(t)
	var lastErr, errs, okAfter, okTotal, back atomic.Int64
	stop := make(chan struct{})
	wg := load(ctx, e, 20, stop, func(start time.Time, err error) {
		if err != nil {
			errs.Add(1)
			lastErr.Store(time.Now().UnixNano())
			return
		}
		okTotal.Add(1)
		if b := back.Load(); b != 0 && start.UnixNano() > b {
			okAfter.Add(1)
		}
	})
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopLoad)
	waitUntil(t, 20*time.Second, "queries before the restart", func() bool { return okTotal.Load() >= 100 })
	cl.Stop(t)
	waitUntil(t, 20*time.Second, "errors while the server is down", func() bool { return errs.Load() >= 20 })
	cl.Start(t)
	back.Store(time.Now().UnixNano())
	waitUntil(t, 20*time.Second, "queries after the restart", func() bool { return okAfter.Load() >= 200 })
	stopLoad()
	require.Positive(t, lastErr.Load(), "the outage was observed")
	recovered := time.Duration(lastErr.Load() - back.Load())
	assert.Less(t, recovered, 2*time.Second, "queries succeed again within 2 s of the server's return")
	assert.Equal(t, 0, e.Stats().CheckedOut)
}

func TestServerDownWhileConnecting(t *testing.T) {
	t.Parallel()
	cl := enginetest.NewCluster(t)
	url := cl.NewDatabase(t)
	e := newEngine(t, url, "pool_size=4&max_overflow=4&pool_timeout=1&pool_pre_ping=true")
	ctx := enginetest.Context(t)
	_, err := e.Query(ctx, "SELECT 1") // one idle connection, to be pre-pinged
	require.NoError(t, err)
	cl.Stop(t)
	_, err = e.Query(ctx, "SELECT 1")
	var ce *pgconn.ConnectError
	require.ErrorAs(t, err, &ce, "pre-ping finds the connection dead and the reconnect's error comes back")
	concurrently(30, func(int) {
		_, err := e.Query(ctx, "SELECT 1")
		assert.Error(t, err)
	})
	assert.Equal(t, 0, e.Stats().CheckedOut)
	cl.Start(t)
	var conns []*asyncengine.Conn
	for i := 0; i < 8; i++ {
		c, err := e.Connect(ctx)
		require.NoError(t, err, "the full capacity is available once the server is back")
		require.NoError(t, c.Ping(ctx))
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Close()
	}
}

func TestRandomDeadlines(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		e := newEngine(t, url, "pool_size=5&max_overflow=5&pool_timeout=5")
		sleep := "SELECT pg_sleep(0.002)"
		if e.Dialect().Name() == "sqlite" {
			sleep = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 20000) SELECT count(*) FROM c"
		}
		var wg sync.WaitGroup
		var expired, otherErrs atomic.Int64
		sem := make(chan struct{}, 20)
		for i := 0; i < 1000; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rand.IntN(3000))*time.Microsecond)
				defer cancel()
				if _, err := e.Query(ctx, sleep); err != nil {
					expired.Add(1)
					// a query fails only because its deadline passed; the error itself may be
					// a dial timeout when it passed while connecting, reported by the socket's
					// deadline a moment before ctx.Err() is set, so the clock is what is checked
					if dl, _ := ctx.Deadline(); time.Now().Before(dl) {
						otherErrs.Add(1)
						t.Logf("failed before its deadline: %v", err)
					}
				}
			}()
		}
		wg.Wait()
		require.Positive(t, expired.Load(), "some deadlines expired: the test exercised what it is about")
		assert.Zero(t, otherErrs.Load(), "a query fails only by its deadline")
		st := e.Stats()
		assert.Equal(t, 0, st.CheckedOut)
		// every pooled connection works afterwards
		ctx := enginetest.Context(t)
		var conns []*asyncengine.Conn
		for i := 0; i < 10; i++ {
			c, err := e.Connect(ctx)
			require.NoError(t, err)
			r, err := c.Query(ctx, "SELECT 7")
			require.NoError(t, err, "connection %d", c.ID())
			v, _ := r.Scalar()
			assert.EqualValues(t, 7, v)
			conns = append(conns, c)
		}
		for _, c := range conns {
			c.Close()
		}
	})
}

// TestCancelMidQuery cancels a query the server is known to be running: it waits on an advisory
// lock another connection holds, as pg_stat_activity shows, when its context is cancelled.
func TestCancelMidQuery(t *testing.T) {
	verifyNoLeaks(t)
	url := enginetest.NewDatabase(t)
	observer := newEngine(t, url, "pool_size=2")
	ctx := enginetest.Context(t)
	running := func(tag string) int {
		r, err := observer.Query(ctx, `SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid()
			AND state = 'active' AND wait_event_type = 'Lock' AND query LIKE '%' || :tag || '%'`, asyncengine.Named{"tag": tag})
		require.NoError(t, err)
		var n int
		require.NoError(t, r.One(&n))
		return n
	}
	holder := checkout(t, observer)
	_, err := holder.Exec(ctx, "SELECT pg_advisory_lock(42)")
	require.NoError(t, err)
	n := 0
	for _, q := range []string{"pool_size=1&max_overflow=0", "pool_size=1&max_overflow=0&cancel_grace=2s", "pool_size=1&max_overflow=0&statement_cache=none"} {
		for _, u := range []string{url, strings.Replace(url, "postgresql://", "postgresql+stdlib://", 1)} {
			n++
			tag := fmt.Sprintf("cancel_me_%d", n)
			e := newEngine(t, u, q)
			c := checkout(t, e)
			id := c.ID()
			qctx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() {
				_, err := c.Query(qctx, "SELECT pg_advisory_lock(42) /* "+tag+" */")
				done <- err
			}()
			waitUntil(t, 20*time.Second, "the query to wait on the lock", func() bool { return running(tag) == 1 })
			cancel()
			var cerr error
			select {
			case cerr = <-done:
			case <-time.After(20 * time.Second):
				t.Fatalf("%s %s: the cancelled query did not return within 20 s", q, u)
			}
			require.Error(t, cerr, "%s %s", q, u)
			var pgErr *pgconn.PgError
			if errors.As(cerr, &pgErr) {
				assert.Equal(t, "57014", pgErr.Code, "a server error can only be the cancellation: %v", cerr)
			} else {
				assert.ErrorIs(t, cerr, context.Canceled)
			}
			waitUntil(t, 20*time.Second, "the server to stop running the cancelled query", func() bool { return running(tag) == 0 })
			c.Close()
			c = checkout(t, e)
			r, err := c.Query(ctx, "SELECT 1")
			require.NoError(t, err, "the next user gets a working connection (%s)", q)
			assert.Equal(t, 1, r.Len())
			if strings.Contains(q, "cancel_grace") && strings.HasPrefix(u, "postgresql://") {
				assert.Equal(t, id, c.ID(), "with cancel_grace the server cancels the query and the connection survives")
				require.ErrorAs(t, cerr, &pgErr, "with cancel_grace the server reports the cancellation: %v", cerr)
				assert.Equal(t, "57014", pgErr.Code)
			}
			c.Close()
		}
	}
	_, err = holder.Exec(ctx, "SELECT pg_advisory_unlock(42)")
	require.NoError(t, err)
	holder.Close()
}

func TestDisconnectInTransaction(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		ctx := enginetest.Context(t)
		e := newEngine(t, url, "")
		c := checkout(t, e)
		tx, err := c.Begin(ctx)
		require.NoError(t, err)
		enginetest.Shared(t).TerminateBackends(t, url)
		_, err = tx.Exec(ctx, "SELECT 1")
		var de *asyncengine.DisconnectError
		require.ErrorAs(t, err, &de)
		assert.Contains(t, err.Error(), "invalidated")
		_, err = tx.Exec(ctx, "SELECT 1")
		require.ErrorIs(t, err, asyncengine.ErrPendingRollback)
		require.ErrorIs(t, tx.Commit(ctx), asyncengine.ErrPendingRollback)
		require.NoError(t, tx.Rollback(ctx))
		r, err := c.Query(ctx, "SELECT 1")
		require.NoError(t, err, "after Rollback the Conn reconnects")
		assert.Equal(t, 1, r.Len())
		c.Close()
		assert.Equal(t, 0, e.Stats().CheckedOut)
	}, "pgx", "stdlib")
}

func TestPgBouncerTransactionMode(t *testing.T) {
	url := enginetest.NewDatabase(t)
	bounced := enginetest.PgBouncer(t, url)
	for _, mode := range []string{"none", "describe"} {
		for _, u := range []string{bounced, strings.Replace(bounced, "postgresql://", "postgresql+stdlib://", 1)} {
			e := newEngine(t, u, "pool_size=10&max_overflow=10&statement_cache="+mode)
			ctx := enginetest.Context(t)
			concurrently(30, func(g int) {
				for i := 0; i < 30; i++ {
					r, err := e.Query(ctx, "SELECT CAST($1 AS int) + 1", g*100+i)
					if !assert.NoError(t, err, "statement_cache=%s", mode) {
						return
					}
					var v int
					assert.NoError(t, r.One(&v))
					assert.Equal(t, g*100+i+1, v)
				}
			})
		}
	}
	// The default prepares statements by name on whichever server connection PgBouncer lends:
	// deterministic in sequence — two client connections, one idle server connection between
	// them, the second one's prepare finds the first one's statement already there.
	e := newEngine(t, bounced, "pool_size=2&statement_cache=prepare")
	ctx := enginetest.Context(t)
	a, b := checkout(t, e), checkout(t, e)
	_, err := a.Query(ctx, "SELECT CAST($1 AS int) + 2", 1)
	require.NoError(t, err)
	_, err = b.Query(ctx, "SELECT CAST($1 AS int) + 2", 1)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr, "the second connection's prepare lands where the first one's statement is")
	assert.Equal(t, "42P05", pgErr.Code, "prepared statement already exists: %v", err)
	a.Close()
	b.Close()
	// Under concurrent load whether anything breaks depends on how PgBouncer happens to pair
	// connections; what holds always is that a query either returns its own right value or
	// fails with a prepared-statement error, never someone else's data.
	e = newEngine(t, bounced, "pool_size=10&statement_cache=prepare")
	var failed atomic.Int64
	concurrently(30, func(g int) {
		for i := 0; i < 30; i++ {
			r, err := e.Query(ctx, "SELECT CAST($1 AS int) + 3", g*100+i)
			if err != nil {
				failed.Add(1)
				var pgErr *pgconn.PgError
				if assert.ErrorAs(t, err, &pgErr) {
					assert.Contains(t, []string{"42P05", "26000"}, pgErr.Code, "a prepared-statement error: %v", err)
				}
				continue
			}
			var v int
			assert.NoError(t, r.One(&v))
			assert.Equal(t, g*100+i+3, v)
		}
	})
	t.Logf("statement_cache=prepare behind PgBouncer: %d of 900 queries failed", failed.Load())
}
