package asyncsession_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/sync/errgroup"
)

func TestNoGoroutineOutlivesTheSession(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t))
	ctx := ctxT(t)
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

func TestBinds(t *testing.T) {
	ctx := ctxT(t)
	main := newEngine(t, enginetest.NewDatabase(t))
	other := newEngine(t, enginetest.NewDatabase(t))
	_, err := other.Exec(ctx, "INSERT INTO authors (id, name) VALUES (7, 'other')")
	require.NoError(t, err)
	s := newSession(t, main, asyncsession.Bind(Book{}, other))
	require.NoError(t, s.Add(&Author{ID: 1, Name: "main"}, &Book{ID: 1, AuthorID: 7, Title: "other"}))
	await(t, s.Commit(ctx))
	assert.EqualValues(t, 1, count(t, main, "authors"))
	assert.EqualValues(t, 0, count(t, main, "books"))
	assert.EqualValues(t, 1, count(t, other, "books"), "Book rows go to the engine it is bound to")
	b := await(t, asyncsession.Get[Book](ctx, s, 1))
	require.NotNil(t, b)
	assert.Equal(t, "other", b.Title)
}

func TestMiddlewareScopesASessionPerRequest(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t))
	m := asyncsession.NewMaker(e)
	var seen []*asyncsession.Session
	h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := asyncsession.FromContext(r.Context())
		seen = append(seen, s)
		if err := s.Add(&Author{ID: int64(len(seen)), Name: r.URL.Query().Get("n")}); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		if _, err := s.Commit(r.Context()).Await(r.Context()); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		io.WriteString(w, "ok")
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, n := range []string{"x", "y"} {
		resp, err := http.Get(srv.URL + "?n=" + n)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, "ok", string(body))
	}
	require.Len(t, seen, 2)
	assert.NotSame(t, seen[0], seen[1])
	_, err := seen[0].Flush(ctxT(t)).Await(ctxT(t))
	assert.ErrorIs(t, err, asyncsession.ErrSessionClosed, "the request's session is closed after it")
	assert.EqualValues(t, 2, count(t, e, "authors"))
}

func TestMergeRefreshExpunge(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := ctxT(t)
		s := newSession(t, e)
		a := &Author{ID: 1, Name: "stored"}
		require.NoError(t, s.Add(a))
		await(t, s.Commit(ctx))

		detached := &Author{ID: 1, Name: "merged"}
		got := await(t, asyncsession.Merge(ctx, s, detached))
		assert.Same(t, a, got, "Merge copies onto the session's object")
		assert.False(t, s.Contains(detached))
		fresh := await(t, asyncsession.Merge(ctx, s, &Author{ID: 2, Name: "new"}))
		assert.True(t, s.Contains(fresh))
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 2, count(t, e, "authors"))
		r := await(t, s.Execute(ctx, "SELECT name FROM authors WHERE id = 1"))
		name, _ := r.Scalar()
		assert.Equal(t, "merged", name)

		a2 := await(t, asyncsession.Get[Author](ctx, s, 1))
		a2.Name = "local change"
		await(t, s.Refresh(ctx, a2))
		assert.Equal(t, "merged", a2.Name, "Refresh discards unflushed changes")

		s.Expunge(a2)
		assert.False(t, s.Contains(a2))
		a3 := await(t, asyncsession.Get[Author](ctx, s, 1))
		assert.NotSame(t, a2, a3, "an expunged object is no longer the session's")
		_, err := s.Refresh(ctx, a2).Await(ctx)
		assert.Error(t, err)
	})
}

func TestDisconnectInSession(t *testing.T) {
	url := enginetest.NewDatabase(t)
	e := newEngine(t, url)
	ctx := ctxT(t)
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

// An iterator that reuses one struct is the normal way to stream without allocating: every row
// must be stored with the values it had when it was yielded, across page boundaries.
func TestInsertSeqStoresEachYieldedValue(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := ctxT(t)
		s := newSession(t, e)
		require.NoError(t, s.Add(&Author{ID: 1, Name: "a"}))
		await(t, s.Commit(ctx))
		const n = 2_500 // more than one page of multi-row INSERTs
		seq := iter.Seq[*Book](func(yield func(*Book) bool) {
			b := &Book{AuthorID: 1}
			for i := 0; i < n; i++ {
				b.Pages = i
				b.Title = fmt.Sprintf("title %d", i)
				if !yield(b) {
					return
				}
			}
		})
		assert.EqualValues(t, n, await(t, asyncsession.InsertSeq(ctx, s, seq)))
		objs := make([]*Book, 0, 3)
		for i := n; i < n+3; i++ {
			objs = append(objs, &Book{AuthorID: 1, Pages: i, Title: fmt.Sprintf("title %d", i)})
		}
		assert.EqualValues(t, 3, await(t, asyncsession.InsertMany(ctx, s, objs)))
		await(t, s.Commit(ctx))

		r, err := e.Query(ctx, "SELECT pages, title FROM books ORDER BY pages")
		require.NoError(t, err)
		rows, err := asyncengine.ScanAll[struct {
			Pages int    `db:"pages"`
			Title string `db:"title"`
		}](r)
		require.NoError(t, err)
		require.Len(t, rows, n+3)
		for i, row := range rows {
			if row.Pages != i || row.Title != fmt.Sprintf("title %d", i) {
				t.Fatalf("row %d stored as (%d, %q): the values yielded were not the values written", i, row.Pages, row.Title)
			}
		}
	})
}

// On PostgreSQL, InsertSeq and InsertMany load with COPY: while the sequence is being read the
// server runs a COPY … FROM STDIN for the session's connection (pg_stat_activity).
func TestInsertManyUsesCopyOnPostgreSQL(t *testing.T) {
	url := enginetest.NewDatabase(t)
	e := newEngine(t, url)
	observer := newEngine(t, url)
	ctx := ctxT(t)
	s := newSession(t, e)
	require.NoError(t, s.Add(&Author{ID: 1, Name: "a"}))
	await(t, s.Commit(ctx))
	const n, probeAt = 40_000, 30_000
	var seen string
	var probeErr error
	seq := iter.Seq[*Book](func(yield func(*Book) bool) {
		b := &Book{AuthorID: 1, Title: "copied"}
		for i := 0; i < n; i++ {
			// The rows before have filled the COPY's buffers, so the statement has been sent;
			// the server shows it once its backend gets to it (the sequence waits meanwhile).
			for deadline := time.Now().Add(20 * time.Second); i == probeAt && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				var r *asyncengine.Result
				r, probeErr = observer.Query(ctx, `SELECT coalesce(string_agg(query, ' | '), '') FROM pg_stat_activity
					WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active'`)
				if probeErr == nil {
					probeErr = r.One(&seen)
				}
				if probeErr != nil || seen != "" {
					break
				}
			}
			b.Pages = i
			if !yield(b) {
				return
			}
		}
	})
	assert.EqualValues(t, n, await(t, asyncsession.InsertSeq(ctx, s, seq)))
	await(t, s.Commit(ctx))
	require.NoError(t, probeErr)
	assert.Regexp(t, `(?i)^copy "?books"? .*from stdin`, seen, "the rows travel by COPY")
	assert.EqualValues(t, n, count(t, e, "books"))
}

// The heap must stay near one page of rows while a sequence many times larger than the bound
// streams through. Each row is a fresh object with a 1 KiB title: gathering the sequence before
// sending it would hold about 50 MiB. Run without parallel tests so that the heap is this test's.
func TestInsertSeqMemoryIsBounded(t *testing.T) {
	urls := map[string]string{
		"pgx":    enginetest.NewDatabase(t),
		"sqlite": "sqlite:///" + filepath.Join(t.TempDir(), "s.db"),
	}
	for _, name := range []string{"pgx", "sqlite"} {
		t.Run(name, func(t *testing.T) {
			e := newEngine(t, urls[name])
			ctx := ctxT(t)
			s := newSession(t, e)
			require.NoError(t, s.Add(&Author{ID: 1, Name: "a"}))
			await(t, s.Commit(ctx))
			const n = 50_000
			pad := strings.Repeat("x", 1024)
			seq := iter.Seq[*Book](func(yield func(*Book) bool) {
				for i := 0; i < n; i++ {
					if !yield(&Book{AuthorID: 1, Pages: i, Title: pad[:1000] + strconv.Itoa(i)}) {
						return
					}
				}
			})
			var before runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			var peak atomic.Uint64
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				var m runtime.MemStats
				tick := time.NewTicker(time.Millisecond)
				defer tick.Stop()
				for {
					runtime.ReadMemStats(&m)
					if m.HeapInuse > peak.Load() {
						peak.Store(m.HeapInuse)
					}
					select {
					case <-stop:
						return
					case <-tick.C:
					}
				}
			}()
			got, err := asyncsession.InsertSeq(ctx, s, seq).Await(ctx)
			close(stop)
			<-done
			require.NoError(t, err)
			await(t, s.Commit(ctx))
			assert.EqualValues(t, n, got)
			assert.EqualValues(t, n, count(t, e, "books"))
			grew := int64(peak.Load()) - int64(before.HeapInuse)
			t.Logf("heap grew by %d KiB while streaming %d rows of 1 KiB", grew/1024, n)
			assert.Less(t, grew, int64(16<<20), "rows are streamed, not gathered (gathered they take ~50 MiB)")
		})
	}
}

func TestExecuteErrorsAreTyped(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := ctxT(t)
		s := newSession(t, e)
		_, err := s.Execute(ctx, "SELECT :missing", asyncengine.Named{}).Await(ctx)
		require.ErrorIs(t, err, asyncengine.ErrInvalidArgument)
		_, err = asyncsession.Select[Author](ctx, s, "SELECT * FROM authors WHERE id = ?").Await(ctx)
		if e.Dialect().Name() == "sqlite" {
			require.ErrorIs(t, err, asyncengine.ErrInvalidArgument)
		} else {
			// PostgreSQL has no ? placeholder: refused before sending, or a syntax error
			require.Error(t, err)
			if !errors.Is(err, asyncengine.ErrInvalidArgument) {
				assert.Contains(t, err.Error(), "42601", "a syntax error at the ?")
			}
			await(t, s.Rollback(ctx))
		}
		_, err = s.Execute(ctx, "SELECT * FROM nowhere").Await(ctx)
		require.Error(t, err)
		await(t, s.Rollback(ctx))
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err = asyncsession.Get[Author](cctx, s, 1).Await(ctx)
		require.True(t, errors.Is(err, context.Canceled))
	})
}

func TestRepeatableReadPipeline(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t))
	ctx := ctxT(t)
	_, err := e.Exec(ctx, "INSERT INTO authors (id, name) VALUES (1, 'before'), (2, 'before')")
	require.NoError(t, err)
	s := newSession(t, e, asyncsession.Isolation("repeatable read"))
	a := await(t, asyncsession.Get[Author](ctx, s, 1))
	_, err = e.Exec(ctx, "UPDATE authors SET name = 'after'")
	require.NoError(t, err)
	b := await(t, asyncsession.Get[Author](ctx, s, 2))
	assert.Equal(t, "before", a.Name)
	assert.Equal(t, "before", b.Name, "every read of the transaction sees one snapshot")
	await(t, s.Commit(ctx))
	b = await(t, asyncsession.Get[Author](ctx, s, 2))
	assert.Equal(t, "after", b.Name)

	bad := asyncsession.New(e, asyncsession.Isolation("chaos"))
	defer bad.Close()
	assert.ErrorContains(t, bad.Add(&Author{ID: 3}), "isolation")
}

type Profile struct {
	ID       int64           `db:"id,pk"`
	Nickname sql.NullString  `db:"nickname"`
	Score    sql.NullFloat64 `db:"score"`
	Bio      *string         `db:"bio"`
	Joined   time.Time       `db:"joined"`
}

func TestNullableColumns(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := ctxT(t)
		require.NoError(t, asyncsession.CreateAll(ctx, e, Profile{}))
		s := newSession(t, e)
		bio := "hello"
		joined := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		require.NoError(t, s.Add(&Profile{ID: 1, Joined: joined}, &Profile{ID: 2, Nickname: sql.NullString{String: "n", Valid: true}, Score: sql.NullFloat64{Float64: 1.5, Valid: true}, Bio: &bio, Joined: joined}))
		await(t, s.Commit(ctx))
		s.ExpungeAll()
		p1 := await(t, asyncsession.Get[Profile](ctx, s, 1))
		p2 := await(t, asyncsession.Get[Profile](ctx, s, 2))
		assert.False(t, p1.Nickname.Valid)
		assert.False(t, p1.Score.Valid)
		assert.Nil(t, p1.Bio)
		assert.Equal(t, "n", p2.Nickname.String)
		assert.InDelta(t, 1.5, p2.Score.Float64, 0.001)
		require.NotNil(t, p2.Bio)
		assert.Equal(t, "hello", *p2.Bio)
		assert.True(t, joined.Equal(p2.Joined), "%v", p2.Joined)
		r := await(t, s.Execute(ctx, "SELECT count(*) FROM profile WHERE nickname IS NULL AND bio IS NULL"))
		n, _ := r.Scalar()
		assert.EqualValues(t, 1, n)
	})
}

// TestMixedConcurrentUse shares one session between goroutines that add, load, modify, flush
// and query at once: every write lands, and each key has one object.
func TestMixedConcurrentUse(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := ctxT(t)
		s := newSession(t, e)
		const workers, each = 8, 25
		g, gctx := errgroup.WithContext(ctx)
		for w := 0; w < workers; w++ {
			g.Go(func() error {
				for i := 0; i < each; i++ {
					id := int64(w*1000 + i + 1)
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
				}
				return nil
			})
		}
		require.NoError(t, g.Wait())
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
		ctx := ctxT(t)
		s := newSession(t, e)
		const workers, each = 6, 15
		g, gctx := errgroup.WithContext(ctx)
		for w := 0; w < workers; w++ {
			g.Go(func() error {
				for i := 0; i < each; i++ {
					id := int64(w*1000 + i + 1)
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
					if err := s.Add(a2); err != nil {
						return err
					}
				}
				return nil
			})
		}
		require.NoError(t, g.Wait())
		await(t, s.Commit(ctx))
		assert.EqualValues(t, workers*each, count(t, e, "authors"))
		assert.EqualValues(t, workers*each, count(t, e, "books"))
		assert.Equal(t, 0, e.Stats().CheckedOut, "the connection goes back between transactions")
	})
}
