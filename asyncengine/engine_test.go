package asyncengine_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/goleak"

	"testing"

	"path/filepath"
	"sync"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestQueryAndScan(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		ctx := enginetest.Context(t)
		e := newEngine(t, url, "")
		_, err := e.Exec(ctx, "CREATE TABLE items (id integer PRIMARY KEY, name text, price real)")
		require.NoError(t, err)
		res, err := e.Exec(ctx, "INSERT INTO items VALUES (:id, :name, :price), (:id2, :name, NULL)", asyncengine.Named{"id": 1, "name": "a::b", "price": 2.5, "id2": 2})
		require.NoError(t, err)
		assert.EqualValues(t, 2, res.RowsAffected())

		r, err := e.Query(ctx, "SELECT count(*) FROM items WHERE name = 'x:y' OR name = :n", asyncengine.Named{"n": "a::b"})
		require.NoError(t, err)
		n, err := r.Scalar()
		require.NoError(t, err)
		assert.EqualValues(t, 2, n)

		type item struct {
			ID    int      `db:"id,pk"`
			Name  string   `db:"name"`
			Price *float64 `db:"price"`
		}
		r, err = e.Query(ctx, "SELECT id, name, price FROM items ORDER BY id")
		require.NoError(t, err)
		items, err := asyncengine.ScanAll[item](r)
		require.NoError(t, err)
		require.Len(t, items, 2)
		assert.Equal(t, "a::b", items[0].Name)
		require.NotNil(t, items[0].Price)
		assert.InDelta(t, 2.5, *items[0].Price, 0.001)
		assert.Nil(t, items[1].Price)
		assert.Equal(t, []string{"id", "name", "price"}, r.Columns())
		assert.Len(t, r.Mappings(), 2)

		var id int
		var name string
		require.ErrorIs(t, r.One(&id, &name, new(any)), asyncengine.ErrMultipleRows)
		var ce *asyncengine.ConvertError
		var when time.Time
		require.ErrorAs(t, r.ScanRow(0, &id, &when, new(any)), &ce, "text into time.Time")
		assert.Equal(t, "name", ce.Column)
		var me *asyncengine.MappingError
		_, err = asyncengine.ScanAll[struct{ Other int }](r)
		require.ErrorAs(t, err, &me)
		assert.Contains(t, me.Error(), `"id"`)
		r, err = e.Query(ctx, "SELECT id, name FROM items WHERE id = 1")
		require.NoError(t, err)
		require.NoError(t, r.One(&id, &name))
		assert.Equal(t, 1, id)
		r, err = e.Query(ctx, "SELECT id FROM items WHERE id = 99")
		require.NoError(t, err)
		_, err = r.Scalar()
		require.ErrorIs(t, err, asyncengine.ErrNoRows)
		assert.Equal(t, 0, e.Stats().CheckedOut)
	})
}

// slowQuery keeps a connection busy for a while on each dialect.
func slowQuery(e *asyncengine.Engine) string {
	if e.Dialect().Name() == "sqlite" {
		return "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 300000) SELECT count(*) FROM c"
	}
	return "SELECT pg_sleep(0.5)"
}

func TestConcurrentUseIsDetected(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		ctx := enginetest.Context(t)
		e := newEngine(t, url, "")
		c, err := e.Connect(ctx)
		require.NoError(t, err)
		defer c.Close()
		// The goroutine keeps a slow query running until the test has seen ErrConcurrentUse:
		// no guess of when "the first query is running". A probe that lands between two of its
		// queries succeeds, and one of its queries that lands during a probe is retried.
		seen := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			for {
				_, err := c.Query(ctx, slowQuery(e))
				if err != nil && !errors.Is(err, asyncengine.ErrConcurrentUse) {
					done <- err
					return
				}
				select {
				case <-seen:
					done <- nil
					return
				default:
				}
			}
		}()
		waitUntil(t, 20*time.Second, "a second call on a busy Conn to get ErrConcurrentUse", func() bool {
			_, err := c.Query(ctx, "SELECT 1")
			if err != nil && !errors.Is(err, asyncengine.ErrConcurrentUse) {
				t.Fatalf("the second call fails only with ErrConcurrentUse: %v", err)
			}
			return err != nil
		})
		close(seen)
		require.NoError(t, <-done, "the running call is unaffected")
		r, err := c.Query(ctx, "SELECT 2")
		require.NoError(t, err, "the connection stays usable")
		v, _ := r.Scalar()
		assert.EqualValues(t, 2, v)
	})
}

// countOn counts t's rows through c (inside c's transaction, if any). It may run off the test's
// goroutine, so it reports instead of failing the test.
func countOn(ctx context.Context, c *asyncengine.Conn) (int64, error) {
	r, err := c.Query(ctx, "SELECT count(*) FROM t")
	if err != nil {
		return 0, err
	}
	var n int64
	return n, r.One(&n)
}

func TestTransactions(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		ctx := enginetest.Context(t)
		e := newEngine(t, url, "")
		_, err := e.Exec(ctx, "CREATE TABLE t (v integer)")
		require.NoError(t, err)
		count := func() int64 {
			r, err := e.Query(ctx, "SELECT count(*) FROM t")
			require.NoError(t, err)
			var n int64
			require.NoError(t, r.One(&n))
			return n
		}
		require.NoError(t, e.Begin(ctx, func(c *asyncengine.Conn) error {
			_, err := c.Exec(ctx, "INSERT INTO t VALUES (1)")
			return err
		}))
		assert.EqualValues(t, 1, count())
		err = e.Begin(ctx, func(c *asyncengine.Conn) error {
			if _, err := c.Exec(ctx, "INSERT INTO t VALUES (2)"); err != nil {
				return err
			}
			if n, err := countOn(ctx, c); n != 2 {
				return fmt.Errorf("inside the transaction %d rows (%v), want 2", n, err)
			}
			return errors.New("boom")
		})
		assert.EqualError(t, err, "boom")
		assert.EqualValues(t, 1, count(), "rolled back")
		err = e.Begin(ctx, func(c *asyncengine.Conn) error {
			if _, err := c.Exec(ctx, "INSERT INTO t VALUES (2)"); err != nil {
				return err
			}
			if n, err := countOn(ctx, c); n != 2 {
				return fmt.Errorf("inside the transaction %d rows (%v), want 2", n, err)
			}
			panic("kaboom")
		})
		var pe *asyncengine.PanicError
		require.ErrorAs(t, err, &pe)
		assert.EqualValues(t, 1, count())

		// savepoints
		c, err := e.Connect(ctx)
		require.NoError(t, err)
		tx, err := c.Begin(ctx)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, "INSERT INTO t VALUES (10)")
		require.NoError(t, err)
		sp, err := c.BeginNested(ctx)
		require.NoError(t, err)
		_, err = sp.Exec(ctx, "INSERT INTO t VALUES (11)")
		require.NoError(t, err)
		require.NoError(t, sp.Rollback(ctx))
		sp, err = c.BeginNested(ctx)
		require.NoError(t, err)
		_, err = sp.Exec(ctx, "INSERT INTO t VALUES (12)")
		require.NoError(t, err)
		require.NoError(t, sp.Commit(ctx))
		require.NoError(t, tx.Commit(ctx))
		assert.ErrorIs(t, tx.Commit(ctx), asyncengine.ErrTxDone)
		require.NoError(t, c.Close())
		require.NoError(t, c.Close(), "a second Close is a no-op")
		_, err = c.Exec(ctx, "SELECT 1")
		assert.ErrorIs(t, err, asyncengine.ErrConnClosed)
		r, err := e.Query(ctx, "SELECT v FROM t ORDER BY v")
		require.NoError(t, err)
		got, err := asyncengine.ScanAll[struct {
			V int `db:"v"`
		}](r)
		require.NoError(t, err)
		require.Len(t, got, 3)
		assert.Equal(t, []int{1, 10, 12}, []int{got[0].V, got[1].V, got[2].V}, "the rolled-back savepoint's 11 is gone")
	})
}

func TestSQLErrorsAndArguments(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		ctx := enginetest.Context(t)
		e := newEngine(t, url, "")
		_, err := e.Query(ctx, "SELECT * FROM no_such_table")
		require.Error(t, err)
		_, err = e.Query(ctx, "SELECT :a", asyncengine.Named{"b": 1})
		require.ErrorIs(t, err, asyncengine.ErrInvalidArgument)
		assert.Contains(t, err.Error(), `"a"`)
		// a query is one statement: SQLite's driver would drop all but the last one's rows
		_, err = e.Query(ctx, "SELECT 1 AS a; SELECT 2 AS b")
		require.Error(t, err)
		streamed := 0
		for _, err := range e.Stream(ctx, "SELECT 1 AS a; SELECT 2 AS b") {
			require.Error(t, err)
			streamed++
		}
		require.Equal(t, 1, streamed, "the stream yields its error")
		// a value no driver encodes is refused, with no panic
		_, err = e.Exec(ctx, "SELECT :f", asyncengine.Named{"f": func() {}})
		require.ErrorIs(t, err, asyncengine.ErrInvalidArgument)
		var pe *asyncengine.PanicError
		assert.False(t, errors.As(err, &pe), "not a panic: %v", err)
		var ae *asyncengine.ArgumentError
		require.ErrorAs(t, err, &ae)
		require.Error(t, ae.Err, "the driver's error stays reachable")
		st := e.Stats()
		assert.Equal(t, 0, st.CheckedOut)
		r, err := e.Query(ctx, "SELECT 1")
		require.NoError(t, err)
		assert.Equal(t, 1, r.Len())
	})
}

// A statement that fails inside a transaction leaves it pending rollback on every driver: later
// calls return ErrPendingRollback, Commit rolls back, and nothing before the failure is committed
// (SQLite would otherwise commit it). Rolling back a savepoint around the failure goes on; a call
// refused before anything was sent changes nothing.
func TestFailedStatementLeavesTransactionPendingRollback(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		ctx := enginetest.Context(t)
		e := newEngine(t, url, "")
		_, err := e.Exec(ctx, "CREATE TABLE pr (id integer PRIMARY KEY)")
		require.NoError(t, err)
		count := func() int64 {
			r, err := e.Query(ctx, "SELECT count(*) FROM pr")
			require.NoError(t, err)
			var n int64
			require.NoError(t, r.One(&n))
			return n
		}
		insert := "INSERT INTO pr VALUES (:id)"

		err = e.Begin(ctx, func(c *asyncengine.Conn) error {
			_, err := c.Exec(ctx, insert, asyncengine.Named{"id": 1})
			require.NoError(t, err)
			_, err = c.Exec(ctx, insert, asyncengine.Named{"id": 1})
			require.Error(t, err, "a duplicate key")
			_, err = c.Exec(ctx, insert, asyncengine.Named{"id": 2})
			require.ErrorIs(t, err, asyncengine.ErrPendingRollback)
			return nil // the failure swallowed
		})
		require.ErrorIs(t, err, asyncengine.ErrPendingRollback)
		assert.EqualValues(t, 0, count(), "nothing of the failed transaction is committed")

		require.NoError(t, e.Begin(ctx, func(c *asyncengine.Conn) error {
			_, err := c.Exec(ctx, insert, asyncengine.Named{"id": 1})
			require.NoError(t, err)
			_, err = c.Exec(ctx, insert) // refused before it is sent
			require.ErrorIs(t, err, asyncengine.ErrInvalidArgument)
			_, err = c.Exec(ctx, insert, asyncengine.Named{"id": make(chan int)}) // refused by the driver, unsent
			require.ErrorIs(t, err, asyncengine.ErrInvalidArgument)
			sp, err := c.BeginNested(ctx)
			require.NoError(t, err)
			_, err = c.Exec(ctx, insert, asyncengine.Named{"id": 1})
			require.Error(t, err)
			require.ErrorIs(t, sp.Commit(ctx), asyncengine.ErrPendingRollback)
			require.NoError(t, sp.Rollback(ctx))
			_, err = c.Exec(ctx, insert, asyncengine.Named{"id": 2})
			return err
		}))
		assert.EqualValues(t, 2, count(), "the savepoint's rollback undid the failure")
		assert.Equal(t, 0, e.Stats().CheckedOut)
	})
}

func TestRunSyncAndWorkers(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		ctx := enginetest.Context(t)
		e := newEngine(t, url, "pool_size=2&max_overflow=1&pool_timeout=5")
		assert.Equal(t, 3, e.Workers().Size(), "workers default to the pool's capacity")
		var futures []*asyncengine.Future[int64]
		for i := 0; i < 200; i++ {
			futures = append(futures, asyncengine.RunSync(ctx, e, func(ctx context.Context, c *asyncengine.Conn) (int64, error) {
				r, err := c.Query(ctx, "SELECT CAST(:i AS bigint)", asyncengine.Named{"i": i})
				if err != nil {
					return 0, err
				}
				var v int64
				err = r.One(&v)
				return v, err
			}))
		}
		vals, err := asyncengine.All(ctx, futures...)
		require.NoError(t, err)
		assert.EqualValues(t, 199, vals[199])
		st := e.Stats()
		assert.Zero(t, st.Timeouts)
		assert.Equal(t, 0, st.CheckedOut)

		f := asyncengine.RunSync(ctx, e, func(ctx context.Context, c *asyncengine.Conn) (int, error) { panic("in task") })
		_, err = f.Await(ctx)
		var pe *asyncengine.PanicError
		require.ErrorAs(t, err, &pe)
		assert.Contains(t, string(pe.Stack), "engine_test.go")
		assert.Equal(t, 0, e.Stats().CheckedOut, "a panicking task returns its connection")
	})
}

// TestCloseLeavesNoGoroutine runs without t.Parallel: it compares goroutines before and after.
func TestCloseLeavesNoGoroutine(t *testing.T) {
	for _, name := range enginetest.Backends {
		url := enginetest.BackendURL(t, name)
		ignore := goleak.IgnoreCurrent()
		ctx := enginetest.Context(t)
		e, err := asyncengine.New(enginetest.WithQuery(url, "pool_size=2&max_overflow=2"))
		require.NoError(t, err)
		var futures []*asyncengine.Future[int]
		for i := 0; i < 20; i++ {
			futures = append(futures, asyncengine.RunSync(ctx, e, func(ctx context.Context, c *asyncengine.Conn) (int, error) {
				_, err := c.Exec(ctx, "SELECT 1")
				return i, err
			}))
		}
		_, err = asyncengine.All(ctx, futures...)
		require.NoError(t, err)
		held, err := e.Connect(ctx)
		require.NoError(t, err)
		require.NoError(t, e.Close())
		require.NoError(t, held.Close(), "a connection returned after Close is closed, not pooled")
		_, err = e.Connect(ctx)
		require.ErrorIs(t, err, asyncengine.ErrPoolClosed)
		goleak.VerifyNone(t, ignore)
		assert.Equal(t, 0, e.Stats().CheckedOut, name)
	}
}

// 100 000 RunSync tasks submitted at once with the default worker_queue (65 536): while the
// first tasks hold every worker, the queue fills, the submitter waits for room (through its
// context) instead of failing, no task times out on the pool, and every future completes with
// its own value.
func TestRunSync100kWithDefaultQueue(t *testing.T) {
	verifyNoLeaks(t)
	e := newEngine(t, "sqlite:///"+filepath.Join(t.TempDir(), "q.db"), "pool_size=5&max_overflow=10&pool_timeout=5")
	ctx := enginetest.Context(t)
	const n = 100_000
	release := make(chan struct{})
	let := sync.OnceFunc(func() { close(release) })
	t.Cleanup(let)
	futures := make([]*asyncengine.Future[int], n)
	submitted := make(chan struct{})
	go func() {
		defer close(submitted)
		for i := range futures {
			futures[i] = asyncengine.RunSync(ctx, e, func(ctx context.Context, c *asyncengine.Conn) (int, error) {
				<-release
				return i, nil
			})
		}
	}()
	waitUntil(t, 30*time.Second, "the default worker queue to fill", func() bool { return e.Workers().Stats().Queued == 65536 })
	select {
	case <-submitted:
		t.Fatal("all tasks were submitted while the queue was full")
	default:
	}
	let()
	<-submitted
	got, err := asyncengine.All(ctx, futures...)
	require.NoError(t, err)
	for i, v := range got {
		if v != i {
			t.Fatalf("future %d resolved to %d", i, v)
		}
	}
	st := e.Stats()
	assert.Zero(t, st.Timeouts, "no task timed out on the pool")
	assert.Equal(t, 0, st.CheckedOut)
}
