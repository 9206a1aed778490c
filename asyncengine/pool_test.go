package asyncengine_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func checkout(t *testing.T, e *asyncengine.Engine) *asyncengine.Conn {
	t.Helper()
	c, err := e.Connect(enginetest.Context(t))
	require.NoError(t, err)
	// a checkout touches the server, so that the connection is really open
	require.NoError(t, c.Ping(enginetest.Context(t)))
	return c
}

func TestQueuePoolAccountingAndTimeout(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		// pool_timeout leaves room for connects on a loaded machine: only the last checkout must wait
		e := newEngine(t, url, "pool_size=2&max_overflow=1&pool_timeout=1")
		a, b, c := checkout(t, e), checkout(t, e), checkout(t, e)
		st := e.Stats()
		assert.Equal(t, asyncengine.PoolStats{Size: 2, CheckedOut: 3, Overflow: 1}, pick(st))
		_, err := e.Connect(enginetest.Context(t))
		require.ErrorIs(t, err, asyncengine.ErrPoolTimeout)
		assert.EqualError(t, err, "QueuePool limit of size 2 overflow 1 reached, connection timed out, timeout 1.00s")
		require.NoError(t, c.Close())
		st = e.Stats()
		assert.Equal(t, asyncengine.PoolStats{Size: 2, CheckedIn: 1, CheckedOut: 2, Overflow: 1}, pick(st))
		require.NoError(t, a.Close())
		st = e.Stats()
		assert.Equal(t, asyncengine.PoolStats{Size: 2, CheckedIn: 2, CheckedOut: 1, Overflow: 1}, pick(st))
		require.NoError(t, b.Close())
		st = e.Stats()
		assert.Equal(t, asyncengine.PoolStats{Size: 2, CheckedIn: 2, Overflow: 0}, pick(st), "a connection beyond pool_size is closed on checkin")
		assert.EqualValues(t, 1, st.Timeouts)
		assert.EqualValues(t, 3, st.Connects)
		assert.EqualValues(t, 1, st.Closes)
	})
}

// pick keeps the accounting fields of a snapshot.
func pick(s asyncengine.PoolStats) asyncengine.PoolStats {
	return asyncengine.PoolStats{Size: s.Size, CheckedIn: s.CheckedIn, CheckedOut: s.CheckedOut, Overflow: s.Overflow, Waiting: s.Waiting}
}

func TestQueuePoolUnlimited(t *testing.T) {
	url := enginetest.NewDatabase(t)
	for _, q := range []string{"pool_size=0", "pool_size=1&max_overflow=-1"} {
		e := newEngine(t, url, q+"&pool_timeout=5&connect_timeout=10")
		var conns []*asyncengine.Conn
		for i := 0; i < 25; i++ {
			conns = append(conns, checkout(t, e))
		}
		assert.Equal(t, 25, e.Stats().CheckedOut, q)
		for _, c := range conns {
			require.NoError(t, c.Close())
		}
	}
}

func TestFailedConnectConsumesNoSlot(t *testing.T) {
	e := newEngine(t, "postgresql://postgres@127.0.0.1:1/nothing?connect_timeout=1", "pool_size=1&max_overflow=0&pool_timeout=0.1")
	for i := 0; i < 3; i++ {
		_, err := e.Connect(enginetest.Context(t))
		require.Error(t, err)
		assert.NotErrorIs(t, err, asyncengine.ErrPoolTimeout, "a failed connect gives its slot back")
	}
	st := e.Stats()
	assert.Equal(t, 0, st.CheckedOut)
	assert.EqualValues(t, 3, st.ConnectErrors)
}

func TestWaitersFIFOAndCancellation(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t), "pool_size=1&max_overflow=0&pool_timeout=10")
	held := checkout(t, e)
	var order []int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := e.Connect(enginetest.Context(t))
			if !assert.NoError(t, err) {
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			c.Close()
		}()
		waitUntil(t, 10*time.Second, fmt.Sprintf("waiter %d to queue", i), func() bool { return e.Stats().Waiting == i+1 })
	}
	// a waiter that gives up leaves nothing behind
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err := e.Connect(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, 5, e.Stats().Waiting)
	require.NoError(t, held.Close())
	wg.Wait()
	assert.Equal(t, []int{0, 1, 2, 3, 4}, order, "waiters are served first come, first served")
	st := e.Stats()
	assert.Equal(t, asyncengine.PoolStats{Size: 1, CheckedIn: 1, Overflow: 0}, pick(st))
}

func TestWaiterWokenByInvalidation(t *testing.T) {
	verifyNoLeaks(t)
	e := newEngine(t, enginetest.NewDatabase(t), "pool_size=1&max_overflow=0&pool_timeout=10")
	held := checkout(t, e)
	got := make(chan error, 1)
	go func() {
		c, err := e.Connect(enginetest.Context(t))
		if err == nil {
			err = c.Ping(enginetest.Context(t))
			c.Close()
		}
		got <- err
	}()
	waitUntil(t, 10*time.Second, "the waiter to queue", func() bool { return e.Stats().Waiting == 1 })
	held.Invalidate(errors.New("test"))
	require.NoError(t, <-got)
	require.NoError(t, held.Close())
	assert.Equal(t, 0, e.Stats().CheckedOut)
}

// A waiter is woken by Close with ErrPoolClosed; across Dispose it waits on, and is served a
// new connection, not the disposed one, when the held connection comes back.
func TestWaitersAcrossDisposeAndClose(t *testing.T) {
	verifyNoLeaks(t)
	e := newEngine(t, enginetest.NewDatabase(t), "pool_size=1&max_overflow=0&pool_timeout=10")
	held := checkout(t, e)
	heldID := held.ID()
	got := make(chan uint64, 1)
	go func() {
		c, err := e.Connect(enginetest.Context(t))
		if err != nil {
			got <- 0
			return
		}
		got <- c.ID()
		c.Close()
	}()
	waitUntil(t, 10*time.Second, "the waiter to queue", func() bool { return e.Stats().Waiting == 1 })
	require.NoError(t, e.Dispose(enginetest.Context(t)))
	assert.Equal(t, 1, e.Stats().Waiting, "Dispose does not fail a waiter")
	require.NoError(t, held.Close())
	id := <-got
	require.NotZero(t, id, "the waiter is served")
	assert.NotEqual(t, heldID, id, "the disposed connection is closed, the waiter gets a new one")

	held = checkout(t, e)
	failed := make(chan error, 1)
	go func() { _, err := e.Connect(enginetest.Context(t)); failed <- err }()
	waitUntil(t, 10*time.Second, "the waiter to queue", func() bool { return e.Stats().Waiting == 1 })
	require.NoError(t, e.Close())
	select {
	case err := <-failed:
		require.ErrorIs(t, err, asyncengine.ErrPoolClosed)
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not wake the waiter")
	}
	require.NoError(t, held.Close())
}

func TestLIFOAndFIFO(t *testing.T) {
	verifyNoLeaks(t)
	url := enginetest.NewDatabase(t)
	for _, lifo := range []bool{false, true} {
		q := "pool_size=3&pool_use_lifo=false"
		if lifo {
			q = "pool_size=3&pool_use_lifo=true"
		}
		e := newEngine(t, url, q)
		a, b := checkout(t, e), checkout(t, e)
		ida, idb := a.ID(), b.ID()
		a.Close()
		b.Close()
		c := checkout(t, e)
		if lifo {
			assert.Equal(t, idb, c.ID(), "LIFO reuses the most recently returned")
		} else {
			assert.Equal(t, ida, c.ID(), "FIFO reuses the least recently returned")
		}
		c.Close()
	}
}

func TestRecycleAndDispose(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		// Reuse is only asserted when the second checkout provably came within the recycle age:
		// on a loaded machine a connect alone can take longer, and then the attempt is made
		// again on a new engine rather than the assertion dropped or left to chance.
		const recycle = 2 * time.Second
		var e *asyncengine.Engine
		var c *asyncengine.Conn
		var id uint64
		var opened, connected time.Time // the connection was made between the two
		for attempt := 1; ; attempt++ {
			e = newEngine(t, url, "pool_recycle=2s")
			opened = time.Now()
			c = checkout(t, e)
			connected = time.Now()
			id = c.ID()
			c.Close()
			c = checkout(t, e)
			if time.Since(opened) < recycle {
				break
			}
			c.Close()
			require.Less(t, attempt, 5, "two checkouts never came within the 2 s recycle age")
		}
		assert.Equal(t, id, c.ID(), "a connection younger than pool_recycle is reused")
		c.Close()
		time.Sleep(time.Until(connected.Add(recycle + 50*time.Millisecond)))
		c = checkout(t, e)
		assert.NotEqual(t, id, c.ID(), "an old connection is replaced at checkout")
		c.Close()

		e = newEngine(t, url, "")
		a, b := checkout(t, e), checkout(t, e)
		ida := a.ID()
		a.Close()
		require.NoError(t, e.Dispose(enginetest.Context(t)))
		assert.Equal(t, 0, e.Stats().CheckedIn)
		b.Close()
		assert.Equal(t, 0, e.Stats().CheckedIn, "connections checked out at Dispose are closed when they come back")
		c = checkout(t, e)
		assert.NotEqual(t, ida, c.ID())
		c.Close()
	})
}

func TestResetOnReturn(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		ctx := enginetest.Context(t)
		e0 := newEngine(t, url, "")
		_, err := e0.Exec(ctx, "CREATE TABLE r (v integer)")
		require.NoError(t, err)
		for _, mode := range []string{"rollback", "commit", "none"} {
			var resets atomic.Int32
			cfg, err := asyncengine.ParseConfig(enginetest.WithQuery(url, "pool_size=1&max_overflow=0&pool_reset_on_return="+mode))
			require.NoError(t, err)
			cfg.OnReset = func(uint64, asyncengine.ResetMode) { resets.Add(1) }
			e, err := asyncengine.NewWithConfig(cfg)
			require.NoError(t, err)
			c := checkout(t, e)
			c.Close()
			assert.Zero(t, resets.Load(), "nothing is sent when no transaction is open")
			c = checkout(t, e)
			_, err = c.Begin(ctx)
			require.NoError(t, err)
			_, err = c.Exec(ctx, "INSERT INTO r VALUES (1)")
			require.NoError(t, err)
			c.Close()
			if mode == "none" {
				assert.Zero(t, resets.Load())
				c = checkout(t, e)
				_, err = c.Exec(ctx, "ROLLBACK")
				require.NoError(t, err)
				c.Close()
			} else {
				assert.EqualValues(t, 1, resets.Load())
			}
			require.NoError(t, e.Close())
			r, err := e0.Query(ctx, "SELECT count(*) FROM r")
			require.NoError(t, err)
			var n int64
			require.NoError(t, r.One(&n))
			if mode == "commit" {
				assert.EqualValues(t, 1, n)
			} else {
				assert.EqualValues(t, 0, n, mode)
			}
			_, err = e0.Exec(ctx, "DELETE FROM r")
			require.NoError(t, err)
		}
	})
}

func TestPoolClasses(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		e := newEngine(t, url, "poolclass=null")
		a := checkout(t, e)
		ida := a.ID()
		a.Close()
		a = checkout(t, e)
		assert.NotEqual(t, ida, a.ID(), "NullPool opens a connection per checkout")
		a.Close()
		assert.Equal(t, 0, e.Stats().CheckedIn)

		e = newEngine(t, url, "poolclass=static&pool_timeout=1")
		a = checkout(t, e)
		ida = a.ID()
		_, err := e.Connect(enginetest.Context(t))
		assert.ErrorIs(t, err, asyncengine.ErrPoolTimeout, "StaticPool's one connection is taken in turns")
		a.Invalidate(errors.New("test"))
		a.Close()
		a = checkout(t, e)
		assert.NotEqual(t, ida, a.ID(), "an invalidated static connection is replaced")
		a.Close()

		e = newEngine(t, url, "poolclass=assertion&pool_debug=true")
		a = checkout(t, e)
		_, err = e.Connect(enginetest.Context(t))
		require.ErrorIs(t, err, asyncengine.ErrAlreadyCheckedOut)
		assert.Contains(t, err.Error(), "pool_test.go", "pool_debug shows where it was checked out")
		a.Close()
		a = checkout(t, e)
		a.Close()
	})
}

func TestPgxpoolClass(t *testing.T) {
	url := enginetest.NewDatabase(t)
	e := newEngine(t, url, "poolclass=pgxpool&pool_size=2&max_overflow=0&pool_timeout=1&pool_pre_ping=true")
	a, b := checkout(t, e), checkout(t, e)
	assert.Equal(t, 2, e.Stats().CheckedOut)
	waited := make(chan error)
	go func() { _, err := e.Connect(enginetest.Context(t)); waited <- err }()
	waitUntil(t, 10*time.Second, "the waiter to queue", func() bool { return e.Stats().Waiting == 1 })
	require.ErrorIs(t, <-waited, asyncengine.ErrPoolTimeout)
	assert.Equal(t, 0, e.Stats().Waiting)
	ida := a.ID()
	a.Close()
	b.Close()
	enginetest.Shared(t).TerminateBackends(t, url)
	c := checkout(t, e)
	assert.NotEqual(t, ida, c.ID(), "pre-ping replaced the dead connection")
	c.Close()

	p, err := pgxpool.New(enginetest.Context(t), url)
	require.NoError(t, err)
	defer p.Close()
	e2, err := asyncengine.NewFromPgxPool(p, nil)
	require.NoError(t, err)
	r, err := e2.Query(enginetest.Context(t), "SELECT 41 + 1")
	require.NoError(t, err)
	v, _ := r.Scalar()
	assert.EqualValues(t, 42, v)
	require.NoError(t, e2.Close())
	require.NoError(t, p.Ping(enginetest.Context(t)), "the caller's pool stays open")
}

func TestEvents(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		ctx := enginetest.Context(t)
		cfg, err := asyncengine.ParseConfig(enginetest.WithQuery(url, "pool_size=20"))
		require.NoError(t, err)
		var connects, firsts, checkouts, checkins, invalidates, closes atomic.Int32
		var rejectOnce atomic.Bool
		cfg.OnConnect = func(ctx context.Context, c *asyncengine.Conn) error {
			connects.Add(1)
			_, err := c.Query(ctx, "SELECT 1")
			return err
		}
		cfg.OnFirstConnect = func(context.Context, *asyncengine.Conn) error {
			firsts.Add(1)
			return nil
		}
		cfg.OnCheckout = func(context.Context, *asyncengine.Conn) error {
			checkouts.Add(1)
			if rejectOnce.CompareAndSwap(true, false) {
				return errors.New("not this one")
			}
			return nil
		}
		cfg.OnCheckin = func(uint64) { checkins.Add(1) }
		cfg.OnInvalidate = func(uint64, error) { invalidates.Add(1) }
		cfg.OnClose = func(uint64) { closes.Add(1) }
		e, err := asyncengine.NewWithConfig(cfg)
		require.NoError(t, err)
		defer e.Close()
		// ten goroutines connect at once and each holds its connection until all ten have one:
		// ten connects, however the goroutines happen to overlap
		var all sync.WaitGroup
		all.Add(10)
		concurrently(10, func(int) {
			c, err := e.Connect(ctx)
			all.Done()
			if !assert.NoError(t, err) {
				return
			}
			all.Wait()
			_, err = c.Query(ctx, "SELECT 1")
			assert.NoError(t, err)
			assert.NoError(t, c.Close())
		})
		assert.EqualValues(t, 1, firsts.Load(), "OnFirstConnect runs exactly once")
		assert.EqualValues(t, 10, connects.Load())
		assert.EqualValues(t, 10, checkins.Load())

		c := checkout(t, e)
		id := c.ID()
		c.Close()
		rejectOnce.Store(true)
		c = checkout(t, e)
		assert.NotEqual(t, id, c.ID(), "a rejected connection is replaced")
		c.Close()
		assert.EqualValues(t, 1, invalidates.Load())
		assert.EqualValues(t, 1, closes.Load())

		cfg2 := *cfg
		cfg2.OnConnect = func(context.Context, *asyncengine.Conn) error { panic("hook") }
		cfg2.OnFirstConnect, cfg2.OnCheckout = nil, nil
		e2, err := asyncengine.NewWithConfig(&cfg2)
		require.NoError(t, err)
		defer e2.Close()
		for i := 0; i < 3; i++ {
			_, err = e2.Connect(ctx)
			var pe *asyncengine.PanicError
			require.ErrorAs(t, err, &pe)
		}
		assert.Equal(t, 0, e2.Stats().CheckedOut, "a panicking hook leaks no slot")
	})
}

func TestLeakedConnectionIsRecovered(t *testing.T) {
	e, log := loggedEngine(t, enginetest.WithQuery(enginetest.NewDatabase(t), "pool_size=1&max_overflow=0&pool_debug=true"))
	func() {
		c, err := e.Connect(enginetest.Context(t))
		require.NoError(t, err)
		_ = c.Ping(enginetest.Context(t))
	}()
	waitUntil(t, 5*time.Second, "the leaked connection's report", func() bool {
		runtime.GC()
		return e.Stats().Leaks != 0
	})
	assert.EqualValues(t, 1, e.Stats().Leaks)
	assert.Equal(t, 0, e.Stats().CheckedOut)
	assert.Contains(t, log.String(), "pool_test.go", "the report shows where it was checked out")
	c := checkout(t, e)
	c.Close()
}

func TestEchoRedactsPasswords(t *testing.T) {
	e, log := loggedEngine(t, enginetest.WithQuery(enginetest.NewDatabase(t), "echo=true"))
	_, err := e.Query(enginetest.Context(t), "SELECT 'echoed'")
	require.NoError(t, err)
	out := log.String()
	assert.Contains(t, out, "SELECT 'echoed'")
	assert.Contains(t, out, "checkout")

	e2, log2 := loggedEngine(t, "postgresql://u:topsecret@127.0.0.1:1/x?echo=true")
	_, _ = e2.Connect(enginetest.Context(t))
	e2.Close()
	assert.NotContains(t, log2.String(), "topsecret")
	assert.Contains(t, log2.String(), "engine created")
}

func TestPrePingSkipsFreshConnections(t *testing.T) {
	e, log := loggedEngine(t, enginetest.WithQuery(enginetest.NewDatabase(t), "pool_size=1&max_overflow=0&pool_pre_ping=true&echo=true"))
	pings := func() int { return strings.Count(log.String(), "pre-ping") }
	c := checkout(t, e)
	c.Close()
	assert.Equal(t, 0, pings(), "a fresh connection is not pinged")
	c = checkout(t, e)
	c.Close()
	assert.Equal(t, 1, pings(), "a reused one is")
}

// The pre-ping is an empty statement (nothing to parse, plan or prepare): the backend's last
// statement after a checkout that pinged it is comment-only, on both PostgreSQL drivers.
func TestPrePingSendsAnEmptyStatement(t *testing.T) {
	verifyNoLeaks(t)
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		ctx := enginetest.Context(t)
		e := newEngine(t, url, "pool_size=1&max_overflow=0&pool_pre_ping=true")
		observer := newEngine(t, strings.Replace(url, "postgresql+stdlib://", "postgresql://", 1), "")
		lastStatement := func(pid int32) string {
			r, err := observer.Query(ctx, "SELECT query FROM pg_stat_activity WHERE pid = :pid", asyncengine.Named{"pid": pid})
			require.NoError(t, err)
			var q string
			require.NoError(t, r.One(&q))
			return q
		}
		c := checkout(t, e)
		r, err := c.Query(ctx, "SELECT pg_backend_pid()")
		require.NoError(t, err)
		var pid int32
		require.NoError(t, r.One(&pid))
		c.Close()
		require.Contains(t, lastStatement(pid), "pg_backend_pid", "the observer sees the connection's statements")
		c = checkout(t, e) // reused: pre-pinged
		last := lastStatement(pid)
		c.Close()
		var sql []string
		for _, line := range strings.Split(last, "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "--") && line != ";" {
				sql = append(sql, line)
			}
		}
		assert.Empty(t, sql, "the pre-ping is an empty statement, got %q", last)
	}, "pgx", "stdlib")
}

// TestPoolAccountingUnderChurn: checkouts, invalidations, cancelled waits and Dispose at once;
// the pool never held more connections than its capacity, afterwards nothing is checked out or
// waiting, and the server's backends come down to the connections the pool holds. (How many
// backends the server shows during the churn is not bounded: a closed connection's server process
// exits in its own time, later on a loaded machine.)
func TestPoolAccountingUnderChurn(t *testing.T) {
	url := enginetest.NewDatabase(t)
	e := newEngine(t, url, "pool_size=4&max_overflow=3&pool_timeout=2")
	var maxBackends, maxOpen atomic.Int64
	var watchErr atomic.Value
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			n, err := enginetest.Shared(t).CountBackends(context.Background(), url)
			if err != nil {
				watchErr.Store(err)
				return
			}
			if int64(n) > maxBackends.Load() {
				maxBackends.Store(int64(n))
			}
			if st := e.Stats(); int64(st.Size+st.Overflow) > maxOpen.Load() {
				maxOpen.Store(int64(st.Size + st.Overflow))
			}
		}
	}()
	// the watcher must be seen to count: the full capacity held until it has seen it
	var full []*asyncengine.Conn
	for i := 0; i < 7; i++ {
		full = append(full, checkout(t, e))
	}
	waitUntil(t, 20*time.Second, "the watcher to see the 7 backends", func() bool { return maxBackends.Load() >= 7 || watchErr.Load() != nil })
	for _, c := range full {
		c.Close()
	}
	// the closed overflow connections' server processes are gone before the churn starts
	waitUntil(t, 20*time.Second, "the overflow backends to exit", func() bool { return enginetest.Shared(t).Backends(t, url) <= 4 })
	concurrently(24, func(g int) {
		for i := 0; i < 40; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(1+(g*i)%30)*time.Millisecond)
			c, err := e.Connect(ctx)
			if err == nil {
				_, _ = c.Query(ctx, "SELECT 1")
				switch (g + i) % 7 {
				case 0:
					c.Invalidate(errors.New("churn"))
				case 1:
					_ = e.Dispose(context.Background())
				}
				c.Close()
			}
			cancel()
		}
	})
	close(stop)
	<-watched
	require.Nil(t, watchErr.Load(), "counting the server's backends")
	st := e.Stats()
	assert.Equal(t, 0, st.CheckedOut)
	assert.Equal(t, 0, st.Waiting)
	assert.LessOrEqual(t, st.CheckedIn, 4)
	assert.LessOrEqual(t, maxOpen.Load(), int64(7), "never more connections than pool_size + max_overflow")
	waitUntil(t, 20*time.Second, "the server's backends to be the pool's connections", func() bool {
		st := e.Stats()
		return enginetest.Shared(t).Backends(t, url) <= st.Size+st.Overflow
	})
	var conns []*asyncengine.Conn
	for i := 0; i < 7; i++ {
		conns = append(conns, checkout(t, e))
	}
	for _, c := range conns {
		c.Close()
	}
}
