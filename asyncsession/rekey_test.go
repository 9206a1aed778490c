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
		relSchema(t, e)
		s := newSession(t, e)
		a, b := &Tag{ID: 1, Name: "a"}, &Tag{ID: 2, Name: "b"}
		require.NoError(t, s.Add(a, b))
		await(t, s.Commit(ctx))
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
