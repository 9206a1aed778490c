package asyncsession_test

import (
	"strconv"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A many-to-one set to nil while its parent's collection is loaded takes the child out of the
// collection and writes NULL: the walk of the collection put the parent back, and the commit
// wrote nothing. Each order of loading (the parent first, the child first) is tried.
func TestManyToOneSetToNilLeavesTheCollection(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		staffChain(t, e)
		ctx := enginetest.Context(t)
		for _, parentFirst := range []bool{true, false} {
			s := newSession(t, e)
			var boss, mid *Staff
			if parentFirst {
				boss = await(t, asyncsession.Get[Staff](ctx, s, int64(1)))
				await(t, asyncsession.Load(ctx, s, boss, "Reports"))
				mid = boss.Reports[0]
			} else {
				mid = await(t, asyncsession.From[Staff](s).Filter("name", "mid").Load("Manager", asyncsession.SelectIn).One(ctx))
				boss = mid.Manager
				await(t, asyncsession.Load(ctx, s, boss, "Reports"))
			}
			require.Equal(t, "mid", mid.Name)
			mid.Manager = nil
			await(t, s.Commit(ctx))
			assert.Nil(t, mid.Manager, "parent first: %v", parentFirst)
			assert.Empty(t, boss.Reports, "parent first: %v", parentFirst)
			assert.EqualValues(t, 0, countWhere(t, e, "staff", "manager_id = 1"), "parent first: %v", parentFirst)
			_, err := e.Exec(ctx, "UPDATE staff SET manager_id = 1 WHERE id = 2")
			require.NoError(t, err)
		}
	})
}

// Through a delete-orphan collection, the child set to nil is an orphan: it is deleted, as a
// removal from the collection deletes it (its key cannot hold NULL).
func TestManyToOneSetToNilOrphansTheChild(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		seedLibrary(t, e)
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		w := await(t, asyncsession.From[Writer](s).Filter("name", "w1").One(ctx))
		require.Len(t, w.Books, 3)
		gone := w.Books[1]
		gone.Writer = nil
		await(t, s.Commit(ctx))
		assert.Len(t, w.Books, 2)
		assert.NotContains(t, w.Books, gone)
		assert.EqualValues(t, 0, countWhere(t, e, "volumes", "title = 't1-1'"))
		assert.EqualValues(t, 2, countWhere(t, e, "volumes", "title LIKE 't1-%'"))
	})
}

// A many-to-many declared on both models: a link made from both sides is one row (it failed the
// commit with the association's unique violation), a link made or removed from one side shows
// in the other side's loaded collection, as a one-to-many's back-reference does.
func TestManyToManyFromBothSides(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		seedLibrary(t, e)
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		v := await(t, asyncsession.From[Volume](s).Filter("title", "t2-1").One(ctx))
		fantasy := await(t, asyncsession.From[Tag](s).Filter("name", "fantasy").One(ctx))
		await(t, asyncsession.Load(ctx, s, fantasy, "Volumes"))
		require.Empty(t, v.Tags)
		require.Len(t, fantasy.Volumes, 5)

		v.Tags = append(v.Tags, fantasy)
		fantasy.Volumes = append(fantasy.Volumes, v)
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 1, countWhere(t, e, "volume_tags", "volume_id = "+strconv.FormatInt(v.ID, 10)))

		w := await(t, asyncsession.From[Volume](s).Filter("title", "t3-1").One(ctx))
		w.Tags = append(w.Tags, fantasy)
		await(t, s.Flush(ctx))
		assert.Contains(t, fantasy.Volumes, w, "the other side follows")
		assert.Len(t, fantasy.Volumes, 7)

		v.Tags = nil
		await(t, s.Commit(ctx))
		assert.NotContains(t, fantasy.Volumes, v, "the other side follows")
		assert.EqualValues(t, 0, countWhere(t, e, "volume_tags", "volume_id = "+strconv.FormatInt(v.ID, 10)))
		assert.EqualValues(t, 6, countWhere(t, e, "volume_tags", "tag_id = "+strconv.FormatInt(fantasy.ID, 10)))
	})
}
