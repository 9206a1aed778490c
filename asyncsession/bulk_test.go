package asyncsession_test

import (
	"fmt"
	"iter"
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
)

// An iterator that reuses one struct is the normal way to stream without allocating: every row
// must be stored with the values it had when it was yielded, across page boundaries.
func TestInsertSeqStoresEachYieldedValue(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
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
	ctx := enginetest.Context(t)
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
			ctx := enginetest.Context(t)
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

func TestUpsertWritesEachObjectAsItSays(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		first := await(t, asyncsession.Upsert(ctx, s, []*Author{{Name: "first"}}))
		id := first[0].ID
		require.NotZero(t, id)

		got := await(t, asyncsession.Upsert(ctx, s, []*Author{{Name: "new"}, {ID: id, Name: "v2"}}))
		require.Len(t, got, 2)
		assert.Equal(t, "new", got[0].Name)
		assert.NotEqual(t, id, got[0].ID)
		assert.Equal(t, id, got[1].ID)
		got = await(t, asyncsession.Upsert(ctx, s, []*Author{{ID: id, Name: "v3"}, {Name: "newer"}}))
		assert.Equal(t, id, got[0].ID)
		assert.NotZero(t, got[1].ID)
		await(t, s.Commit(ctx))

		assert.EqualValues(t, 3, count(t, e, "authors"), "an update is never inserted as a new row")
		r, err := e.Query(ctx, "SELECT name FROM authors WHERE id = "+fmt.Sprint(id))
		require.NoError(t, err)
		name, _ := r.Scalar()
		assert.Equal(t, "v3", name)
		r, err = e.Query(ctx, "SELECT count(*) FROM authors WHERE id = 0")
		require.NoError(t, err)
		n, _ := r.Scalar()
		assert.EqualValues(t, 0, n, "no row written with a zero key")
	})
}

func TestPanicInBulkSequenceInvalidatesTheConnection(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t))
	ctx := enginetest.Context(t)
	s := newSession(t, e)
	before := e.Stats().Invalidations
	seq := func(yield func(*Author) bool) {
		yield(&Author{ID: 1, Name: "a"})
		panic("bad sequence")
	}
	_, err := asyncsession.InsertSeq(ctx, s, seq).Await(ctx)
	var pe *asyncengine.PanicError
	require.ErrorAs(t, err, &pe)
	assert.Greater(t, e.Stats().Invalidations, before, "a connection left mid-COPY is not reused")
	await(t, s.Rollback(ctx))
	await(t, s.Execute(ctx, "SELECT 1"))
	assert.EqualValues(t, 0, count(t, e, "authors"))
}
