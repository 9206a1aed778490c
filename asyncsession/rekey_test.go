package asyncsession_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
)

// A primary-key change flushed and then rolled back gives the object its old key back — in its
// field, in the identity map and for its reload — as the row has it again; keys swapped between
// two objects come back in turn, and a rollback to a savepoint undoes only the changes made
// since.
func TestRollbackRestoresChangedKey(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		s, a, b := twoTags(t, e, "a", "b")
		get := func(id int64) *Tag {
			t.Helper()
			got, err := asyncsession.Get[Tag](ctx, s, id).Await(ctx)
			require.NoError(t, err)
			return got
		}

		// a moves to 3, b to 1, a to 2: a swap through a free key
		a.ID = 3
		await(t, s.Flush(ctx))
		b.ID = 1
		await(t, s.Flush(ctx))
		a.ID = 2
		a.Name = "a2"
		await(t, s.Flush(ctx))
		assert.Same(t, a, get(2))
		assert.Same(t, b, get(1))
		await(t, s.Rollback(ctx))

		assert.EqualValues(t, 1, a.ID, "the key is the row's again")
		assert.EqualValues(t, 2, b.ID)
		assert.Same(t, a, get(1), "the identity map finds the object by its old key")
		assert.Same(t, b, get(2))
		assert.Equal(t, "a", a.Name, "the reload reads the row as the rollback left it")
		assert.Nil(t, get(3))

		// a savepoint's rollback undoes the changes made since it only
		a.ID = 10
		await(t, s.Flush(ctx))
		sp, err := s.BeginNested(ctx).Await(ctx)
		require.NoError(t, err)
		a.ID = 11
		await(t, s.Flush(ctx))
		await(t, sp.Rollback(ctx))
		assert.EqualValues(t, 10, a.ID)
		assert.Same(t, a, get(10))
		await(t, s.Commit(ctx))
		assert.Same(t, a, get(10))
		assert.EqualValues(t, 1, count(t, e, "tags WHERE id = 10"))
	})
}

// A flush whose primary-key UPDATE fails (the key is taken) leaves the object as it found it:
// after Rollback its snapshot and identity key are the row's, so that the next flush does not
// update the row of the key it failed to take, and a change it did not write is still written.
func TestFailedKeyChangeLeavesTheSnapshot(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		s, p, _ := twoTags(t, e, "apple", "quince")

		p.ID, p.Name = 2, "apple2"
		_, err := s.Commit(ctx).Await(ctx)
		require.Error(t, err, "the key is taken")
		await(t, s.Rollback(ctx))

		p.ID = 1 // the key the caller meant to keep; the name stays a change to write
		await(t, s.Commit(ctx))
		names := map[int64]string{}
		for _, id := range []int64{1, 2} {
			r, err := e.Query(ctx, "SELECT name FROM tags WHERE id = :id", asyncengine.Named{"id": id})
			require.NoError(t, err)
			var name string
			require.NoError(t, r.One(&name))
			names[id] = name
		}
		assert.Equal(t, map[int64]string{1: "apple2", 2: "quince"}, names)
		got, err := asyncsession.Get[Tag](ctx, s, int64(1)).Await(ctx)
		require.NoError(t, err)
		assert.Same(t, p, got)
	})
}

// twoTags creates the relationship schema and saves tags 1 and 2 named first and second in a new
// session.
func twoTags(t *testing.T, e *asyncengine.Engine, first, second string) (*asyncsession.Session, *Tag, *Tag) {
	t.Helper()
	relSchema(t, e)
	s := newSession(t, e)
	a, b := &Tag{ID: 1, Name: first}, &Tag{ID: 2, Name: second}
	require.NoError(t, s.Add(a, b))
	await(t, s.Commit(enginetest.Context(t)))
	return s, a, b
}
