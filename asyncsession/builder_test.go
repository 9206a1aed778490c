package asyncsession_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A Where condition ending in a -- comment.
func TestWhereEndingInAComment(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		seedLibrary(t, e)
		s := newSession(t, e)
		q := asyncsession.From[Writer](s).Where("writers.name <> 'w0' -- not the first").OrderBy("name").Limit(2)
		ws, err := q.All(enginetest.Context(t)).Await(enginetest.Context(t))
		require.NoError(t, err)
		require.Len(t, ws, 2)
	})
}

// Exists of a SkipLocked query while another transaction holds every row.
func TestCountAndExistsSkipLocked(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t))
	relSchema(t, e)
	saved(t, e, &Writer{Name: "only"})
	ctx := enginetest.Context(t)
	holder := newSession(t, e)
	held := await(t, asyncsession.From[Writer](holder).ForUpdate().All(ctx))
	require.Len(t, held, 1)
	s := newSession(t, e)
	q := asyncsession.From[Writer](s).SkipLocked()
	assert.Empty(t, await(t, q.All(ctx)))
	assert.False(t, await(t, q.Exists(ctx)), "All finds no unlocked row")
	assert.Equal(t, int64(0), await(t, q.Count(ctx)), "All finds no unlocked row")
}

// Ordering by a many-to-one joined with Join while a collection is joined too.
func TestOrderByAManyToOneWithACollectionJoined(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		seedLibrary(t, e)
		s := newSession(t, e)
		q := asyncsession.From[Volume](s).Join("Writer").Join("Tags").Filter("Tags.name", "fantasy").OrderBy("Writer.name DESC")
		vs, err := q.All(enginetest.Context(t)).Await(enginetest.Context(t))
		require.NoError(t, err)
		require.Len(t, vs, 5)
		assert.Equal(t, "t4-0", vs[0].Title)
	})
}

// Exists with an Offset past the rows, or Limit(0): All selects nothing.
func TestCountAndExistsKeepOffsetAndLimit(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		seedLibrary(t, e)
		s := newSession(t, e)
		ctx := enginetest.Context(t)
		q := asyncsession.From[Writer](s).Offset(100)
		assert.Empty(t, await(t, q.All(ctx)))
		assert.False(t, await(t, q.Exists(ctx)), "Offset(100) selects no row")
		q = asyncsession.From[Writer](s).Limit(0)
		assert.Empty(t, await(t, q.All(ctx)))
		assert.False(t, await(t, q.Exists(ctx)), "Limit(0) selects no row")
	})
}

// A second Where binding :v to another value fails: it silently replaced the value the first
// condition read. The same value twice is one binding.
func TestWhereRebindingANameFails(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		seedLibrary(t, e)
		s := newSession(t, e)
		ctx := enginetest.Context(t)
		_, err := asyncsession.From[Volume](s).
			Where("volumes.title >= :v", asyncengine.Named{"v": "t1-0"}).
			Where("volumes.title <= :v", asyncengine.Named{"v": "t1-9"}).All(ctx).Await(ctx)
		var ae *asyncengine.ArgumentError
		require.True(t, errors.As(err, &ae), "%v", err)
		assert.Contains(t, err.Error(), "earlier condition of the query bound it to t1-0")
		vs := await(t, asyncsession.From[Volume](s).
			Where("volumes.title >= :lo", asyncengine.Named{"lo": "t1-0"}).
			Where("volumes.title <= :hi", asyncengine.Named{"hi": "t1-9", "lo": "t1-0"}).All(ctx))
		assert.Len(t, vs, 3)
	})
}

// Filter(column, nil) on a nullable column.
func TestFilterNil(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		relSchema(t, e)
		saved(t, e, &Follower{Name: "orphan"})
		s := newSession(t, e)
		q := asyncsession.From[Follower](s).Filter("writer_id", nil)
		fs := await(t, q.All(enginetest.Context(t)))
		assert.Len(t, fs, 1, "writer_id = NULL matches nothing")
	})
}

// Filter with an empty slice.
func TestFilterEmptySlice(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		seedLibrary(t, e)
		s := newSession(t, e)
		ctx := enginetest.Context(t)
		assert.Empty(t, await(t, asyncsession.From[Volume](s).Filter("id", []int64{}).All(ctx)))
		assert.Empty(t, await(t, asyncsession.From[Volume](s).Filter("id", []int64(nil)).All(ctx)))
		assert.Equal(t, int64(0), await(t, asyncsession.From[Volume](s).Filter("id", []int64{}).Count(ctx)))
	})
}

// manyWriters inserts writers 1 to n.
func manyWriters(t *testing.T, e *asyncengine.Engine, n int) {
	ctx := enginetest.Context(t)
	relSchema(t, e)
	_, err := e.Exec(ctx, "INSERT INTO writers (id, name) WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < :n) SELECT i, 'w' || i FROM c", asyncengine.Named{"n": n})
	require.NoError(t, err)
}

// A slice longer than the dialect's parameter limit: one array on PostgreSQL (an IN list of
// 70 000 placeholders broke the connection); refused before it is sent on SQLite, with the
// session and the engine usable after it.
func TestFilterLongerThanTheParameterLimit(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		manyWriters(t, e, 70000)
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		ids := make([]int64, 70000)
		for i := range ids {
			ids[i] = int64(i + 1)
		}
		n, err := asyncsession.From[Writer](s).Filter("id", ids).Count(ctx).Await(ctx)
		if e.Dialect().Name() == "postgresql" {
			require.NoError(t, err)
			assert.Equal(t, int64(70000), n)
		} else {
			var ae *asyncengine.ArgumentError
			require.True(t, errors.As(err, &ae), "%v", err)
			assert.Contains(t, err.Error(), "70000 parameters, more than the 32766")
			// the error's advice: the list as one JSON array
			list, err := json.Marshal(ids)
			require.NoError(t, err)
			n = await(t, asyncsession.From[Writer](s).Where("writers.id IN (SELECT value FROM json_each(:ids))", asyncengine.Named{"ids": string(list)}).Count(ctx))
			assert.Equal(t, int64(70000), n)
		}
		assert.Equal(t, int64(70000), await(t, asyncsession.From[Writer](s).Count(ctx)))
		assert.Zero(t, e.Stats().Invalidations)
	})
}

// Clone lets two branches extend one base query: the methods change the query they are called on.
func TestCloneBranchesAQuery(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		seedLibrary(t, e)
		s := newSession(t, e)
		ctx := enginetest.Context(t)
		base := asyncsession.From[Volume](s).Where("volumes.title LIKE :p", asyncengine.Named{"p": "t1-%"}).Load("Writer", asyncsession.SelectIn)
		one := base.Clone().Filter("title", "t1-0").Load("Writer", asyncsession.Joined)
		assert.EqualValues(t, 1, await(t, one.Count(ctx)))
		assert.EqualValues(t, 3, await(t, base.Count(ctx)), "the branch left the base as it was")
		sql, _, err := base.SQL()
		require.NoError(t, err)
		assert.NotContains(t, sql, "LEFT OUTER JOIN", "the branch's Joined load stays the branch's")
	})
}

// Filter on an array column with a slice of its own type compares the array whole; a
// positional placeholder in a builder's condition is an ArgumentError before anything is sent.
func TestFilterOnAnArrayColumnAndPositionalPlaceholders(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t))
	ctx := enginetest.Context(t)
	require.NoError(t, asyncsession.CreateAll(ctx, e, Labelled{}))
	saved(t, e, &Labelled{Labels: []string{"x", "y"}}, &Labelled{Labels: []string{"y"}})
	s := newSession(t, e)
	assert.EqualValues(t, 1, await(t, asyncsession.From[Labelled](s).Filter("labels", []string{"x", "y"}).Count(ctx)))
	_, err := asyncsession.From[Labelled](s).Where("id = $1").All(ctx).Await(ctx)
	var ae *asyncengine.ArgumentError
	require.ErrorAs(t, err, &ae)
	assert.Contains(t, err.Error(), "positional placeholder $1")
}

type Labelled struct {
	ID     int64    `db:"id,pk,default"`
	Labels []string `db:"labels"`
}

func (Labelled) TableName() string { return "labelled" }
