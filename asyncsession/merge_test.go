package asyncsession_test

import (
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A detached writer whose books point back at it merges as a graph: the session's writer holds
// the session's books, each pointing back at it; a changed book is written and a new one
// inserted with the writer's key. A book the detached collection lacks is kept: Merge adds to a
// collection and never removes.
func TestMergeGraph(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		relSchema(t, e)
		s := newSession(t, e)
		w := &Writer{Name: "w", Books: []*Volume{{Title: "a"}, {Title: "b"}}}
		require.NoError(t, s.Add(w))
		await(t, s.Commit(ctx))
		await(t, asyncsession.Load(ctx, s, w, "Books"))
		for _, b := range w.Books {
			require.Same(t, w, b.Writer)
		}
		s.Close()

		// detached: changed, one book removed, one added that points back at the detached writer
		w.Name = "w2"
		w.Books[0].Title = "a2"
		w.Books = append(w.Books[:1], &Volume{Title: "c", Writer: w})

		s = newSession(t, e)
		got := await(t, asyncsession.Merge(ctx, s, w))
		require.NotSame(t, w, got)
		require.Len(t, got.Books, 2)
		for _, b := range got.Books {
			assert.Same(t, got, b.Writer, "the members point at the merged writer")
			assert.NotSame(t, w.Books[0], b)
		}
		assert.True(t, s.Contains(got.Books[0]))
		await(t, s.Commit(ctx))

		r := await(t, s.Execute(ctx, "SELECT name FROM writers"))
		name, _ := r.Scalar()
		assert.Equal(t, "w2", name)
		r = await(t, s.Execute(ctx, "SELECT title FROM volumes WHERE writer_id = :id ORDER BY title", asyncengine.Named{"id": got.ID}))
		var titles []string
		for i := range r.Len() {
			var title string
			require.NoError(t, r.ScanRow(i, &title))
			titles = append(titles, title)
		}
		assert.Equal(t, []string{"a2", "b", "c"}, titles, "b is kept, c inserted")
		assert.Equal(t, got.ID, got.Books[1].WriterID, "the new book holds the writer's key")
	})
}

// A new graph (server-filled keys left at zero) merges as copies that the next Commit inserts;
// a nil member fails with ErrNilObject before anything is sent; a nil relationship field keeps
// the session object's own.
func TestMergeNewGraphAndNils(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		relSchema(t, e)
		s := newSession(t, e)
		w := &Writer{Name: "n", Books: []*Volume{{Title: "x"}, {Title: "y"}}}
		got := await(t, asyncsession.Merge(ctx, s, w))
		require.NotSame(t, w, got)
		assert.False(t, s.Contains(w))
		assert.Zero(t, w.ID)
		await(t, s.Commit(ctx))
		assert.NotZero(t, got.ID)
		assert.Equal(t, int64(2), count(t, e, "volumes"))
		assert.Zero(t, w.Books[0].WriterID, "the objects given stay as they were")

		_, err := asyncsession.Merge(ctx, s, &Writer{ID: got.ID, Name: "n", Books: []*Volume{nil}}).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrNilObject)
		assert.Contains(t, err.Error(), "Writer.Books[0] is nil")

		await(t, asyncsession.Load(ctx, s, got, "Books"))
		for _, b := range got.Books {
			assert.Same(t, got, b.Writer, "the copies point at their writer")
		}
		same := await(t, asyncsession.Merge(ctx, s, &Writer{ID: got.ID, Name: "renamed"}))
		assert.Same(t, got, same)
		assert.Len(t, same.Books, 2, "a nil collection keeps the session's")
		more := await(t, asyncsession.Merge(ctx, s, &Writer{ID: got.ID, Name: "renamed", Books: []*Volume{{Title: "z"}}}))
		assert.Len(t, more.Books, 3, "a loaded collection gains the merged members")
		await(t, s.Commit(ctx))
		assert.Equal(t, int64(3), count(t, e, "volumes"))

		// an object of the session merges as itself: no copy, no second row
		p := &Writer{Name: "pending"}
		require.NoError(t, s.Add(p))
		assert.Same(t, p, await(t, asyncsession.Merge(ctx, s, p)))
		await(t, s.Commit(ctx))
		assert.Equal(t, int64(2), count(t, e, "writers"))

		// onto an object the session deletes: refused
		q := await(t, asyncsession.Get[Writer](ctx, s, p.ID))
		require.NoError(t, s.Delete(q))
		_, err = asyncsession.Merge(ctx, s, &Writer{ID: p.ID, Name: "revived"}).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrMergeDeleted)
	})
}
