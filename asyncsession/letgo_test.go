package asyncsession_test

import (
	"fmt"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// loadedWriter commits a writer with two books and returns it loaded, books and all, in s.
func loadedWriter(t *testing.T, s *asyncsession.Session) *Writer {
	t.Helper()
	ctx := enginetest.Context(t)
	w := &Writer{Name: "w", Books: []*Volume{{Title: "a"}, {Title: "b"}}}
	require.NoError(t, s.Add(w))
	await(t, s.Commit(ctx))
	s.ExpungeAll()
	got := await(t, asyncsession.Get[Writer](ctx, s, w.ID))
	_, err := asyncsession.Load(ctx, s, got, "Books").Await(ctx)
	require.NoError(t, err)
	require.Len(t, got.Books, 2)
	return got
}

// TestExpungedRelativeStaysOut: an object expunged while loaded objects still refer to it is not
// inserted again by the next flush, from either side of the relationship.
func TestExpungedRelativeStaysOut(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		relSchema(t, e)
		s := newSession(t, e)
		w := loadedWriter(t, s)
		_, err := asyncsession.Load(ctx, s, w.Books[0], "Writer").Await(ctx)
		require.NoError(t, err)
		s.Expunge(w)
		await(t, s.Commit(ctx))
		s.Expunge(w.Books[1])
		w.Books[0].Title = "a2"
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 1, count(t, e, "writers"))
		assert.EqualValues(t, 2, count(t, e, "volumes"))

		// a new reference to an expunged object is the application's intent: it is added again
		x := &Volume{Title: "x"}
		w2 := loadedWriter(t, s)
		w2.Books = append(w2.Books, x)
		await(t, s.Commit(ctx))
		s.Expunge(x)
		other := &Writer{Name: "other", Books: []*Volume{x}}
		require.NoError(t, s.Add(other))
		_, err = s.Commit(ctx).Await(ctx)
		require.Error(t, err, "x keeps its key: its INSERT meets its own row")
		await(t, s.Rollback(ctx))
	})
}

// TestDeletedMemberStaysDeleted: Delete wins over a loaded collection that still holds the
// object, at that flush and the ones after; a Rollback brings it back.
func TestDeletedMemberStaysDeleted(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		relSchema(t, e)
		s := newSession(t, e)
		w := loadedWriter(t, s)
		require.NoError(t, s.Delete(w.Books[0]))
		await(t, s.Flush(ctx))
		w.Name = "renamed"
		await(t, s.Flush(ctx))
		await(t, s.Rollback(ctx))
		assert.EqualValues(t, 2, count(t, e, "volumes"), "rolled back")

		w = loadedWriter(t, s)
		require.NoError(t, s.Delete(w.Books[0]))
		await(t, s.Commit(ctx))
		w.Name = "renamed"
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 3, count(t, e, "volumes"), "one of the second writer's two deleted")
	})
}

// TestRolledBackMemberInsertedAgain: a book inserted in a transaction that rolled back is
// expunged, and the collection that still holds it inserts it at the next flush — also when the
// transaction deleted it again, which the rollback undid too.
func TestRolledBackMemberInsertedAgain(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		relSchema(t, e)
		s := newSession(t, e)
		for _, deleted := range []bool{false, true} {
			w := loadedWriter(t, s)
			v := &Volume{Title: "c"}
			w.Books = append(w.Books, v)
			await(t, s.Flush(ctx))
			if deleted {
				require.NoError(t, s.Delete(v))
				await(t, s.Flush(ctx))
			}
			await(t, s.Rollback(ctx))
			assert.False(t, s.Contains(v))
			await(t, s.Commit(ctx))
			n := count(t, e, fmt.Sprintf("volumes WHERE writer_id = %d", w.ID))
			assert.EqualValues(t, 3, n, "deleted before the rollback: %v", deleted)
		}
	})
}
