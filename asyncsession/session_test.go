package asyncsession_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"time"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/sync/errgroup"
)

func TestIdentityMap(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		a := &Author{Name: "Ann"}
		require.NoError(t, s.Add(a))
		await(t, s.Flush(ctx))
		require.NotZero(t, a.ID, "the generated key comes back through RETURNING")
		got := await(t, asyncsession.Get[Author](ctx, s, a.ID))
		assert.Same(t, a, got, "one object per primary key")
		f := asyncsession.Get[Author](ctx, s, int32(a.ID))
		select {
		case <-f.Done():
		default:
			t.Fatal("a Get of a loaded key completes without SQL")
		}
		all := await(t, asyncsession.Select[Author](ctx, s, "SELECT * FROM authors WHERE name = :n", asyncengine.Named{"n": "Ann"}))
		require.Len(t, all, 1)
		assert.Same(t, a, all[0], "Select results are merged into the identity map")
		missing := await(t, asyncsession.Get[Author](ctx, s, 12345))
		assert.Nil(t, missing)
		await(t, s.Commit(ctx))

		s2 := newSession(t, e)
		b := await(t, asyncsession.Get[Author](ctx, s2, a.ID))
		require.NotNil(t, b)
		assert.NotSame(t, a, b, "each session has its own identity map")
		assert.Equal(t, "Ann", b.Name)
	})
}

func TestUnitOfWork(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		var buf bytes.Buffer
		var mu sync.Mutex
		cfg := *e.Config()
		cfg.Echo = true
		cfg.Logger = slog.New(slog.NewTextHandler(lockedWriter{&buf, &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
		echo, err := asyncengine.NewWithConfig(&cfg)
		require.NoError(t, err)
		defer echo.Close()
		s := newSession(t, echo)
		// children added before their parent: the flush inserts parents first
		b1 := &Book{ID: 11, AuthorID: 100, Title: "one", Pages: 10}
		b2 := &Book{ID: 12, AuthorID: 100, Title: "two", Pages: 20}
		a := &Author{ID: 100, Name: "Bo"}
		require.NoError(t, s.Add(b1, b2, a))
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 2, count(t, e, "books"))

		mu.Lock()
		buf.Reset()
		mu.Unlock()
		got := await(t, asyncsession.Get[Book](ctx, s, 11))
		got.Title = "uno"
		_ = await(t, asyncsession.Get[Book](ctx, s, 12)) // loaded, unchanged: no UPDATE
		await(t, s.Flush(ctx))
		mu.Lock()
		log := buf.String()
		mu.Unlock()
		assert.Contains(t, log, `UPDATE \"books\" SET \"title\" = `, "only the changed column is updated")
		assert.Equal(t, 1, strings.Count(log, "UPDATE"), "unchanged objects are not updated")

		// deletes: children before parents, whatever the order of Delete calls
		loadedA := await(t, asyncsession.Get[Author](ctx, s, 100))
		require.NoError(t, s.Delete(loadedA))
		require.NoError(t, s.Delete(got))
		require.NoError(t, s.Delete(await(t, asyncsession.Get[Book](ctx, s, 12))))
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 0, count(t, e, "books"))
		assert.EqualValues(t, 0, count(t, e, "authors"))
		assert.False(t, s.Contains(loadedA))
	})
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func TestFailedFlushNeedsRollback(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		require.NoError(t, s.Add(&Author{ID: 1, Name: "A"}))
		await(t, s.Commit(ctx))
		dup := &Author{ID: 1, Name: "again"}
		require.NoError(t, s.Add(dup))
		_, err := s.Commit(ctx).Await(ctx)
		require.Error(t, err)
		_, err = asyncsession.Get[Author](ctx, s, 2).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrPendingRollback)
		_, err = s.Execute(ctx, "SELECT 1").Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrPendingRollback)
		await(t, s.Rollback(ctx))
		assert.False(t, s.Contains(dup), "Rollback expunges what was added in the transaction")
		a := await(t, asyncsession.Get[Author](ctx, s, 1))
		assert.Equal(t, "A", a.Name)
	})
}

func TestExpireOnCommitAndRollback(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		a := &Author{ID: 5, Name: "before"}
		require.NoError(t, s.Add(a))
		await(t, s.Commit(ctx))
		assert.True(t, s.IsExpired(a))
		_, err := e.Exec(ctx, "UPDATE authors SET name = 'outside' WHERE id = 5")
		require.NoError(t, err)
		got := await(t, asyncsession.Get[Author](ctx, s, 5))
		assert.Same(t, a, got)
		assert.Equal(t, "outside", a.Name, "an expired object is reloaded in place")
		assert.False(t, s.IsExpired(a))

		a.Name = "unflushed"
		b := &Author{ID: 6, Name: "new"}
		require.NoError(t, s.Add(b))
		await(t, s.Flush(ctx))
		await(t, s.Rollback(ctx))
		assert.False(t, s.Contains(b))
		assert.True(t, s.IsExpired(a))
		await(t, s.Refresh(ctx, a))
		assert.Equal(t, "outside", a.Name, "rolled-back changes are discarded on reload")
		assert.EqualValues(t, 1, count(t, e, "authors"))

		s2 := newSession(t, e, asyncsession.ExpireOnCommit(false))
		c := await(t, asyncsession.Get[Author](ctx, s2, 5))
		await(t, s2.Commit(ctx))
		assert.False(t, s2.IsExpired(c))
	})
}

func TestSavepoints(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		require.NoError(t, s.Add(&Author{ID: 1, Name: "kept"}))
		sp := await(t, s.BeginNested(ctx))
		inner := &Author{ID: 2, Name: "undone"}
		require.NoError(t, s.Add(inner))
		await(t, s.Flush(ctx))
		await(t, sp.Rollback(ctx))
		assert.False(t, s.Contains(inner))

		sp = await(t, s.BeginNested(ctx))
		require.NoError(t, s.Add(&Author{ID: 1, Name: "duplicate"}))
		_, err := s.Flush(ctx).Await(ctx)
		require.Error(t, err)
		await(t, sp.Rollback(ctx)) // clears the failure inside the savepoint
		sp = await(t, s.BeginNested(ctx))
		require.NoError(t, s.Add(&Author{ID: 3, Name: "released"}))
		await(t, sp.Commit(ctx))
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 2, count(t, e, "authors"))
	})
}

func TestPipelinedGets(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		for i := 1; i <= 100; i++ {
			require.NoError(t, s.Add(&Author{ID: int64(i), Name: "a"}))
		}
		await(t, s.Commit(ctx))
		s.ExpungeAll()

		pg := e.Dialect().Name() == "postgresql"
		before := e.Stats().RoundTrips
		futures := make([]*asyncengine.Future[*Author], 100)
		func() {
			// the Gets queue while the session is busy: how they are grouped does not depend on
			// how fast its goroutine runs
			defer holdSession(t, s)()
			for i := range futures {
				futures[i] = asyncsession.Get[Author](ctx, s, i+1)
			}
		}()
		got, err := asyncengine.All(ctx, futures...)
		require.NoError(t, err)
		for i, a := range got {
			require.NotNil(t, a)
			assert.EqualValues(t, i+1, a.ID)
		}
		require.NoError(t, s.Close())
		if pg {
			trips := e.Stats().RoundTrips - before
			t.Logf("100 Gets issued before any Await: %d round trips", trips)
			assert.LessOrEqual(t, trips, int64(6), "the Gets travel as a handful of pipelines, not 100 round trips")
		}
	})
}

// Round trips are counted on the PostgreSQL driver's socket.
func TestAddCommitIsOneRoundTrip(t *testing.T) {
	for _, cache := range []string{"prepare", "describe", "none"} {
		t.Run(cache, func(t *testing.T) {
			e := newEngine(t, enginetest.NewDatabase(t)+"&pool_size=1&max_overflow=0&statement_cache="+cache)
			ctx := enginetest.Context(t)
			trips := func(id int64) int64 {
				s := asyncsession.New(e) // a new session each time: nothing begun, nothing queued
				defer s.Close()
				before := e.Stats().RoundTrips
				require.NoError(t, s.Add(&Author{ID: id, Name: "x"}))
				await(t, s.Commit(ctx))
				return e.Stats().RoundTrips - before
			}
			first := trips(1)
			t.Logf("statement_cache=%s: first Add+Commit on a fresh connection %d round trips", cache, first)
			if cache == "none" {
				assert.EqualValues(t, 1, first, "nothing to prepare: BEGIN, INSERT and COMMIT travel together")
			} else {
				assert.EqualValues(t, 2, first, "the INSERT is described once on the connection, then BEGIN, INSERT and COMMIT travel together")
			}
			assert.EqualValues(t, 1, trips(2), "a new session's Add+Commit on a connection that knows the statement: one round trip")
		})
	}
}

func TestSharedBetweenGoroutines(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		for i := 1; i <= 200; i++ {
			require.NoError(t, s.Add(&Author{ID: int64(i), Name: "n"}))
		}
		await(t, s.Commit(ctx))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(32)
		for i := 1; i <= 200; i++ {
			g.Go(func() error {
				a, err := asyncsession.Get[Author](gctx, s, i).Await(gctx)
				if err != nil {
					return err
				}
				if a == nil || a.ID != int64(i) {
					return errors.New("wrong object")
				}
				return nil
			})
		}
		require.NoError(t, g.Wait())
		// within one goroutine, requests are served in submission order
		require.NoError(t, s.Add(&Author{ID: 999, Name: "late"}))
		r := await(t, s.Execute(ctx, "SELECT count(*) FROM authors"))
		n, _ := r.Scalar()
		assert.EqualValues(t, 201, n, "Execute autoflushes what was added before it")
	})
}

func TestRunSyncInSessionTransaction(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		require.NoError(t, s.Add(&Author{ID: 1, Name: "pending"}))
		await(t, s.RunSync(ctx, func(ctx context.Context, c *asyncengine.Conn) error {
			r, err := c.Query(ctx, "SELECT count(*) FROM authors")
			if err != nil {
				return err
			}
			var n int64
			if err := r.One(&n); err != nil {
				return err
			}
			if n != 1 {
				return errors.New("the session's flush is not visible")
			}
			_, err = c.Exec(ctx, "INSERT INTO authors (id, name) VALUES (2, 'sync')")
			return err
		}))
		r := await(t, s.Execute(ctx, "SELECT count(*) FROM authors"))
		n, _ := r.Scalar()
		assert.EqualValues(t, 2, n, "the sync code's writes are visible to the session")
		await(t, s.Rollback(ctx))
		assert.EqualValues(t, 0, count(t, e, "authors"), "and part of its transaction")
	})
}

func TestUpsertAndInsertMany(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		loaded := &Author{ID: 1, Name: "old"}
		require.NoError(t, s.Add(loaded))
		await(t, s.Flush(ctx))
		got := await(t, asyncsession.Upsert(ctx, s, []*Author{{ID: 1, Name: "new"}, {ID: 2, Name: "two"}}))
		require.Len(t, got, 2)
		assert.Same(t, loaded, got[0], "an upserted row overwrites the loaded object")
		assert.Equal(t, "new", loaded.Name)
		assert.Same(t, got[1], await(t, asyncsession.Get[Author](ctx, s, 2)))
		await(t, s.Commit(ctx))

		books := make([]*Book, 5000)
		for i := range books {
			books[i] = &Book{AuthorID: 1 + int64(i%2), Title: "t", Pages: i}
		}
		n := await(t, asyncsession.InsertMany(ctx, s, books))
		assert.EqualValues(t, 5000, n)
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 5000, count(t, e, "books"))
		r, err := e.Query(ctx, "SELECT count(DISTINCT pages), CAST(sum(pages) AS bigint), CAST(sum(author_id) AS bigint) FROM books")
		require.NoError(t, err)
		var distinct, pages, authors int64
		require.NoError(t, r.One(&distinct, &pages, &authors))
		assert.EqualValues(t, 5000, distinct, "each row stored with its own values")
		assert.EqualValues(t, 4999*5000/2, pages)
		assert.EqualValues(t, 2500*1+2500*2, authors)
	})
}

func TestMakerAndScope(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		m := asyncsession.NewMaker(e, asyncsession.AutoFlush(true))
		require.NoError(t, m.Begin(ctx, func(s *asyncsession.Session) error {
			return s.Add(&Author{ID: 1, Name: "committed"})
		}))
		// each insert is flushed and seen inside its transaction before the transaction fails,
		// so that "rolled back" cannot pass for "never inserted"
		flushedTwo := func(ctx context.Context, s *asyncsession.Session, a *Author) error {
			if err := s.Add(a); err != nil {
				return err
			}
			if _, err := s.Flush(ctx).Await(ctx); err != nil {
				return err
			}
			r, err := s.Execute(ctx, "SELECT count(*) FROM authors").Await(ctx)
			if err != nil {
				return err
			}
			var n int64
			if err := r.One(&n); err != nil {
				return err
			}
			if n != 2 {
				return fmt.Errorf("%d authors inside the transaction, want 2", n)
			}
			return nil
		}
		err := m.Begin(ctx, func(s *asyncsession.Session) error {
			if err := flushedTwo(ctx, s, &Author{ID: 2, Name: "rolled back"}); err != nil {
				return err
			}
			return errors.New("no")
		})
		require.EqualError(t, err, "no")
		err = m.Begin(ctx, func(s *asyncsession.Session) error {
			if err := flushedTwo(ctx, s, &Author{ID: 3, Name: "rolled back"}); err != nil {
				return err
			}
			panic("boom")
		})
		var pe *asyncengine.PanicError
		require.ErrorAs(t, err, &pe)
		assert.EqualValues(t, 1, count(t, e, "authors"))

		scoped, remove := m.Scope(ctx)
		s := asyncsession.FromContext(scoped)
		require.NotNil(t, s)
		assert.Nil(t, asyncsession.FromContext(ctx))
		require.NoError(t, s.Add(&Author{ID: 4, Name: "never committed"}))
		await(t, s.Flush(ctx))
		require.NoError(t, remove())
		assert.EqualValues(t, 1, count(t, e, "authors"), "removing the scope closes the session")
		_, err = s.Flush(ctx).Await(ctx)
		assert.ErrorIs(t, err, asyncsession.ErrSessionClosed)
	})
}

func TestMappingErrors(t *testing.T) {
	e := newEngine(t, "sqlite://")
	s := newSession(t, e)
	type noPK struct {
		Name string `db:"name"`
	}
	type badTag struct {
		ID int `db:"id,primary"`
	}
	var me *asyncsession.MappingError
	require.ErrorAs(t, s.Add(&noPK{}), &me)
	assert.Contains(t, me.Error(), "primary key")
	require.ErrorAs(t, s.Add(&badTag{}), &me)
	assert.Contains(t, me.Error(), `"primary"`)
	require.ErrorAs(t, s.Add(noPK{}), &me, "a value, not a pointer")
	_, err := asyncsession.Get[int](enginetest.Context(t), s, 1).Await(enginetest.Context(t))
	require.ErrorAs(t, err, &me)
	var ce *asyncengine.ConvertError
	_, err = asyncsession.Get[Author](enginetest.Context(t), s, "seven").Await(enginetest.Context(t))
	require.ErrorAs(t, err, &ce, "a key that does not fit the primary key's type")
	type weird struct {
		ID int      `db:"id,pk"`
		C  chan int `db:"c"` // maps and structs are JSON columns now; a channel has no SQL type
	}
	require.ErrorAs(t, asyncsession.CreateAll(enginetest.Context(t), e, weird{}), &me)
	assert.Contains(t, me.Error(), "no SQL type")
	me = nil
	require.ErrorAs(t, s.Add(&weird{ID: 1}), &me, "at the model's first use, before anything is sent")
	assert.Equal(t, "C", me.Field)
	assert.Contains(t, me.Error(), "no SQL type for Go type chan int")
}

func TestNoGoroutineOutlivesTheSession(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t))
	ctx := enginetest.Context(t)
	// warm the pool so that its connections' goroutines (none for pgx) do not count
	_, err := e.Query(ctx, "SELECT 1")
	require.NoError(t, err)
	ignore := goleak.IgnoreCurrent()

	s := asyncsession.New(e)
	require.NoError(t, s.Add(&Author{ID: 1, Name: "a"}))
	await(t, s.Commit(ctx))
	_ = await(t, asyncsession.Get[Author](ctx, s, 1))
	require.NoError(t, s.Close())
	goleak.VerifyNone(t, ignore)

	// a session that is never closed: its drainer exits once the queue is empty
	s2 := asyncsession.New(e)
	_ = await(t, asyncsession.Get[Author](ctx, s2, 1))
	await(t, s2.Commit(ctx))
	goleak.VerifyNone(t, ignore)
}

func TestDisconnectInSession(t *testing.T) {
	url := enginetest.NewDatabase(t)
	e := newEngine(t, url)
	ctx := enginetest.Context(t)
	s := newSession(t, e)
	require.NoError(t, s.Add(&Author{ID: 1, Name: "a"}))
	await(t, s.Flush(ctx))
	enginetest.Shared(t).TerminateBackends(t, url)
	_, err := asyncsession.Get[Author](ctx, s, 99).Await(ctx)
	var de *asyncengine.DisconnectError
	require.ErrorAs(t, err, &de)
	_, err = asyncsession.Get[Author](ctx, s, 98).Await(ctx)
	require.ErrorIs(t, err, asyncsession.ErrPendingRollback)
	await(t, s.Rollback(ctx))
	assert.Nil(t, await(t, asyncsession.Get[Author](ctx, s, 1)), "the lost transaction's insert is gone")
	require.NoError(t, s.Close())
	assert.Equal(t, 0, e.Stats().CheckedOut, "no connection is leaked")
}

// TestMixedConcurrentUse shares one session between goroutines that add, load, modify, flush
// and query at once: every write lands, and each key has one object.
func TestMixedConcurrentUse(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		const workers, each = 8, 25
		require.NoError(t, concurrentKeys(ctx, workers, each, func(gctx context.Context, i int, id int64) error {
			if err := s.Add(&Author{ID: id, Name: "new"}); err != nil {
				return err
			}
			a, err := asyncsession.Get[Author](gctx, s, id).Await(gctx)
			if err != nil {
				return err
			}
			if a == nil {
				return errors.New("an added object is not found by its key")
			}
			if i%5 == 0 {
				if _, err := s.Flush(gctx).Await(gctx); err != nil {
					return err
				}
			}
			if _, err := s.Execute(gctx, "SELECT count(*) FROM authors").Await(gctx); err != nil {
				return err
			}
			return nil
		}))
		await(t, s.Commit(ctx))
		assert.EqualValues(t, workers*each, count(t, e, "authors"))
		all := await(t, asyncsession.Select[Author](ctx, s, "SELECT * FROM authors"))
		seen := map[*Author]bool{}
		for _, a := range all {
			seen[a] = true
		}
		assert.Len(t, seen, workers*each, "one object per key")
	})
}

// TestConcurrentCommits: goroutines sharing a session each add, commit and read back; commits of
// one goroutine end the transaction the others' requests run in, and nothing is lost.
func TestConcurrentCommits(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		const workers, each = 6, 15
		require.NoError(t, concurrentKeys(ctx, workers, each, func(gctx context.Context, _ int, id int64) error {
			if err := s.Add(&Author{ID: id, Name: "c"}); err != nil {
				return err
			}
			if _, err := s.Commit(gctx).Await(gctx); err != nil {
				return err
			}
			a, err := asyncsession.Get[Author](gctx, s, id).Await(gctx)
			if err != nil {
				return err
			}
			if a == nil || a.Name != "c" {
				return errors.New("a committed object reads back wrong")
			}
			a2 := &Book{ID: id, AuthorID: id, Title: "t"}
			return s.Add(a2)
		}))
		await(t, s.Commit(ctx))
		assert.EqualValues(t, workers*each, count(t, e, "authors"))
		assert.EqualValues(t, workers*each, count(t, e, "books"))
		assert.Equal(t, 0, e.Stats().CheckedOut, "the connection goes back between transactions")
	})
}

// requireUniqueViolation checks that err carries the server's unique violation, matchable with
// errors.As, and is not reported as an earlier failure of the transaction.
func requireUniqueViolation(t *testing.T, err error) {
	t.Helper()
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "23505", pgErr.Code)
	assert.NotErrorIs(t, err, asyncsession.ErrPendingRollback, "the first error is the statement's own")
}

func TestServerErrorsKeepTheirCause(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t))
	ctx := enginetest.Context(t)
	_, err := e.Exec(ctx, "INSERT INTO authors (id, name) VALUES (1, 'taken')")
	require.NoError(t, err)

	t.Run("first statement", func(t *testing.T) {
		s := newSession(t, e)
		_, err := s.Execute(ctx, "INSERT INTO authors (id, name) VALUES (1, 'dup')").Await(ctx)
		requireUniqueViolation(t, err)
		_, err = asyncsession.Get[Author](ctx, s, 1).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrPendingRollback)
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr, "a later request still reaches the cause")
		assert.Equal(t, "23505", pgErr.Code)
	})
	t.Run("flush", func(t *testing.T) {
		s := newSession(t, e)
		require.NoError(t, s.Add(&Author{ID: 1, Name: "dup"}))
		_, err := s.Flush(ctx).Await(ctx)
		requireUniqueViolation(t, err)
	})
	t.Run("commit", func(t *testing.T) {
		s := newSession(t, e)
		require.NoError(t, s.Add(&Author{ID: 1, Name: "dup"}))
		_, err := s.Commit(ctx).Await(ctx)
		requireUniqueViolation(t, err)
	})
	t.Run("savepoint", func(t *testing.T) {
		s := newSession(t, e)
		sp := await(t, s.BeginNested(ctx))
		require.NoError(t, s.Add(&Author{ID: 1, Name: "dup"}))
		_, err := sp.Commit(ctx).Await(ctx)
		requireUniqueViolation(t, err)
		await(t, sp.Rollback(ctx))
		await(t, s.Commit(ctx))
	})
	t.Run("pipelined", func(t *testing.T) {
		s := newSession(t, e)
		require.NoError(t, s.Add(&Author{ID: 1, Name: "dup"}))
		f1 := s.Flush(ctx)
		f2 := s.Execute(ctx, "SELECT 1")
		_, err := f1.Await(ctx)
		requireUniqueViolation(t, err)
		_, err = f2.Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrPendingRollback)
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr)
	})
}

func TestCallsAfterCloseFail(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		s := asyncsession.New(e)
		a := &Author{ID: 1, Name: "a"}
		require.NoError(t, s.Add(a))
		await(t, s.Commit(ctx))
		_ = await(t, asyncsession.Get[Author](ctx, s, 1))
		require.NoError(t, s.Close())
		require.ErrorIs(t, s.Add(&Author{ID: 2, Name: "b"}), asyncsession.ErrSessionClosed)
		require.ErrorIs(t, s.Delete(a), asyncsession.ErrSessionClosed)
		_, err := asyncsession.Get[Author](ctx, s, 1).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrSessionClosed, "even a key the identity map holds")
		_, err = s.Commit(ctx).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrSessionClosed)
		require.NoError(t, s.Close(), "a second Close is harmless")
	})
}

// strictInt refuses values above 100 when scanned: a column the server fills with more makes a
// result that cannot be read after the write was executed.
type strictInt int64

func (v *strictInt) Scan(src any) error {
	n, ok := src.(int64)
	if !ok || n > 100 {
		return fmt.Errorf("strictInt: %v out of range", src)
	}
	*v = strictInt(n)
	return nil
}

type Gauge struct {
	ID int64     `db:"id,pk"`
	V  strictInt `db:"v,default"`
}

func (Gauge) TableName() string { return "gauges" }

func TestFailureAfterExecutionLeavesPendingRollback(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		_, err := e.Exec(ctx, "CREATE TABLE gauges (id bigint PRIMARY KEY, v bigint DEFAULT 1000)")
		require.NoError(t, err)
		s := newSession(t, e)
		_, err = asyncsession.Upsert(ctx, s, []*Gauge{{ID: 1}}).Await(ctx)
		require.ErrorContains(t, err, "out of range")
		_, err = s.Commit(ctx).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrPendingRollback, "the write the caller was told failed is not committed")
		await(t, s.Rollback(ctx))
		assert.EqualValues(t, 0, count(t, e, "gauges"))
	})
}

func TestRequestNeverSentMarksNothing(t *testing.T) {
	url := enginetest.NewDatabase(t)
	e := newEngine(t, url+"&pool_size=1&max_overflow=0&pool_timeout=0.2&connect_timeout=10")
	ctx := enginetest.Context(t)
	s := newSession(t, e)
	held, err := e.Connect(ctx)
	require.NoError(t, err)
	require.NoError(t, s.Add(&Author{ID: 1, Name: "a"}))
	_, err = s.Flush(ctx).Await(ctx)
	require.ErrorIs(t, err, asyncengine.ErrPoolTimeout)
	require.NoError(t, held.Close())

	got := await(t, asyncsession.Get[Author](ctx, s, 1))
	require.NotNil(t, got, "no phantom failed transaction; the pending insert was kept and flushed")
	await(t, s.Commit(ctx))
	assert.EqualValues(t, 1, count(t, e, "authors"))
}

func TestFirstRequestFailingAtPrepareReportsItsStatement(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t))
	ctx := enginetest.Context(t)
	s := newSession(t, e)
	_, err := s.Execute(ctx, "SELECT * FROM no_such_table").Await(ctx)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "42P01", pgErr.Code)
	assert.NotErrorIs(t, err, asyncsession.ErrPendingRollback)
	// nothing ran: the session goes on without a Rollback
	require.NoError(t, s.Add(&Author{ID: 1, Name: "a"}))
	await(t, s.Commit(ctx))
	assert.EqualValues(t, 1, count(t, e, "authors"))
}

// boomer panics when scanned: user code running on the session's goroutine.
type boomer int64

func (*boomer) Scan(any) error { panic("boom") }

type Boom struct {
	ID int64  `db:"id,pk"`
	V  boomer `db:"v"`
}

func (Boom) TableName() string { return "booms" }

// boomRow creates the booms table with one row, which panics when loaded.
func boomRow(t *testing.T, e *asyncengine.Engine) {
	t.Helper()
	ctx := enginetest.Context(t)
	_, err := e.Exec(ctx, "CREATE TABLE booms (id bigint PRIMARY KEY, v bigint)")
	require.NoError(t, err)
	_, err = e.Exec(ctx, "INSERT INTO booms VALUES (1, 1)")
	require.NoError(t, err)
}

func TestPanicInSessionFailsItsRequests(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		boomRow(t, e)
		s := newSession(t, e)
		before := e.Stats().Invalidations
		_, err := asyncsession.Get[Boom](ctx, s, 1).Await(ctx)
		var pe *asyncengine.PanicError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, "boom", pe.Value)
		_, err = s.Execute(ctx, "SELECT 1").Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrPendingRollback, "the request failed in the transaction")
		assert.Equal(t, before, e.Stats().Invalidations, "the pipeline was read to its end: the connection stays")
		await(t, s.Rollback(ctx))
		await(t, s.Execute(ctx, "SELECT 1"))
	})
}

func TestCancellationAffectsOnlyItsRequest(t *testing.T) {
	url := enginetest.NewDatabase(t)
	e := newEngine(t, url)
	ctx := enginetest.Context(t)
	s := newSession(t, e)
	// hold the session's goroutine so that the two requests below queue and travel together
	release := holdSession(t, s)
	long := s.Execute(context.Background(), "SELECT pg_sleep(1), 'marker_long'")
	short, cancel := context.WithCancel(ctx)
	other := s.Execute(short, "SELECT 1")
	release()
	// wait until the pipeline carrying both requests is on the server, then cancel one of them
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := e.Query(ctx, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%marker_long%' AND pid <> pg_backend_pid()")
		require.NoError(t, err)
		n, _ := r.Scalar()
		if n.(int64) > 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the pipeline never reached the server")
	}
	cancel()
	_, err := long.Await(ctx)
	require.NoError(t, err, "a request whose context never ends is not cancelled by another's")
	_, _ = other.Await(ctx)
}

// A statement refused at prepare time inside an open transaction ran nothing: the autoflush
// planned before it did not run either, and the request gets its own statement's error.
func TestPrepareFailureInsideATransaction(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t))
	ctx := enginetest.Context(t)
	_, err := e.Exec(ctx, "INSERT INTO authors (id, name) VALUES (1, 'old')")
	require.NoError(t, err)
	s := newSession(t, e)
	a := await(t, asyncsession.Get[Author](ctx, s, 1))
	a.Name = "changed"
	_, err = s.Execute(ctx, "SELECT name FROM authors JOIN no_such_table USING (id)").Await(ctx)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "42P01", pgErr.Code)
	assert.NotErrorIs(t, err, asyncsession.ErrPendingRollback)
	_, err = s.Commit(ctx).Await(ctx)
	require.ErrorIs(t, err, asyncsession.ErrPendingRollback, "the server aborted the transaction")
	await(t, s.Rollback(ctx))
}

// A Commit issued with a write whose returned row cannot be stored waits for that result: the
// write the caller was told failed is not committed. A read that fails in the same pipeline as a
// COMMIT cannot stop it: Commit's error matches ErrCommitted.
func TestCommitInTheSamePipelineAsALateFailure(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		_, err := e.Exec(ctx, "CREATE TABLE gauges (id bigint PRIMARY KEY, v bigint DEFAULT 1000)")
		require.NoError(t, err)
		s := newSession(t, e)
		release := holdSession(t, s)
		up := asyncsession.Upsert(ctx, s, []*Gauge{{ID: 1}})
		commit := s.Commit(ctx)
		release()
		_, err = up.Await(ctx)
		require.ErrorContains(t, err, "out of range")
		_, err = commit.Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrPendingRollback)
		require.ErrorContains(t, err, "out of range")
		await(t, s.Rollback(ctx))
		assert.Zero(t, count(t, e, "gauges"), "the failed Upsert is not committed")

		_, err = e.Exec(ctx, "INSERT INTO gauges (id) VALUES (2)")
		require.NoError(t, err)
		require.NoError(t, s.Add(&Author{ID: 1, Name: "a"}))
		release = holdSession(t, s)
		sel := asyncsession.Select[Gauge](ctx, s, "SELECT * FROM gauges")
		commit = s.Commit(ctx)
		release()
		_, err = sel.Await(ctx)
		require.ErrorContains(t, err, "out of range")
		_, err = commit.Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrCommitted)
		require.ErrorContains(t, err, "out of range")
		assert.EqualValues(t, 1, count(t, e, "authors"))
	})
}

// holdSession keeps the session's goroutine busy until release is called, so that the requests
// made meanwhile queue and travel together in the next pipeline.
func holdSession(t *testing.T, s *asyncsession.Session) (release func()) {
	started, done := make(chan struct{}), make(chan struct{})
	blocker := s.RunSync(enginetest.Context(t), func(context.Context, *asyncengine.Conn) error {
		close(started)
		<-done
		return nil
	})
	<-started
	return func() {
		close(done)
		await(t, blocker)
	}
}

type UUIDKeyed struct {
	ID   [16]byte `db:"id,pk,type=uuid"`
	Name string   `db:"name"`
}

// Add(nil) is ErrNilObject; a [16]byte key takes the uuid's text form; a wrong key type says
// which type to pass.
func TestKeyAndNilMisuses(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t))
	ctx := enginetest.Context(t)
	require.NoError(t, asyncsession.CreateAll(ctx, e, UUIDKeyed{}))
	s := newSession(t, e)
	require.ErrorIs(t, s.Add(nil), asyncsession.ErrNilObject)
	id := [16]byte{0x12, 0x34, 0x56, 0x78, 0x12, 0x34, 0x12, 0x34, 0x12, 0x34, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc}
	require.NoError(t, s.Add(&UUIDKeyed{ID: id, Name: "u"}))
	await(t, s.Commit(ctx))
	got := await(t, asyncsession.Get[UUIDKeyed](ctx, newSession(t, e), "12345678-1234-1234-1234-123456789abc"))
	require.NotNil(t, got)
	assert.Equal(t, id, got.ID)
	_, err := asyncsession.Get[Author](ctx, s, struct{}{}).Await(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "pass the key as int64")
	_, err = asyncsession.Get[UUIDKeyed](ctx, s, "not-a-uuid").Await(ctx)
	assert.ErrorContains(t, err, `"not-a-uuid" is not a uuid; pass a uuid's text or its 16 bytes`)
	_, err = asyncsession.Get[Author](ctx, s, nil).Await(ctx)
	assert.ErrorContains(t, err, "the value of id is nil; a key has no NULL in it")
	key := int64(1)
	_, err = asyncsession.Get[Author](ctx, s, &key).Await(ctx)
	assert.ErrorContains(t, err, "the value of id is a *int64; pass the value (int64), not a pointer to it")
}
