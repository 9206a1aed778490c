package asyncsession_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func seedLibrary(t *testing.T, e *asyncengine.Engine) {
	t.Helper()
	relSchema(t, e)
	s := newSession(t, e)
	fantasy := &Tag{Name: "fantasy"}
	for i := range 5 {
		w := &Writer{Name: fmt.Sprint("w", i)}
		for j := range 3 {
			v := &Volume{Title: fmt.Sprintf("t%d-%d", i, j)}
			if j == 0 {
				v.Tags = []*Tag{fantasy}
			}
			w.Books = append(w.Books, v)
		}
		require.NoError(t, s.Add(w))
	}
	await(t, s.Commit(enginetest.Context(t)))
}

func TestQueryBuilder(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		seedLibrary(t, e)
		s := newSession(t, e)

		q := asyncsession.From[Volume](s).Where("volumes.title LIKE :p", asyncengine.Named{"p": "t1-%"}).OrderBy("title DESC").Limit(2)
		vs := await(t, q.All(enginetest.Context(t)))
		require.Len(t, vs, 2)
		assert.Equal(t, "t1-2", vs[0].Title)
		assert.Equal(t, "t1-1", vs[1].Title)
		assert.Contains(t, q.String(), "ORDER BY")
		assert.Contains(t, q.String(), "[t1-%]")

		// the page after
		vs = await(t, asyncsession.From[Volume](s).Filter("writer_id", vs[0].WriterID).OrderBy("title").Offset(1).All(enginetest.Context(t)))
		require.Len(t, vs, 2)
		assert.Equal(t, "t1-1", vs[0].Title)

		// a join along a relationship, with a slice filter
		vs = await(t, asyncsession.From[Volume](s).Join("Writer").Filter("Writer.name", []string{"w2", "w3"}).OrderBy("title").All(enginetest.Context(t)))
		require.Len(t, vs, 6)
		assert.Equal(t, "t2-0", vs[0].Title)
		// many-to-many join, rows of one volume de-duplicated
		vs = await(t, asyncsession.From[Volume](s).Join("Tags").Filter("Tags.name", "fantasy").All(enginetest.Context(t)))
		assert.Len(t, vs, 5)

		n := await(t, asyncsession.From[Volume](s).Join("Writer").Where("writer.name = :n", asyncengine.Named{"n": "w4"}).Count(enginetest.Context(t)))
		assert.Equal(t, int64(3), n)
		assert.True(t, await(t, asyncsession.From[Writer](s).Filter("name", "w0").Exists(enginetest.Context(t))))
		assert.False(t, await(t, asyncsession.From[Writer](s).Filter("name", "nobody").Exists(enginetest.Context(t))))

		titles := await(t, asyncsession.Scalars[string](enginetest.Context(t), asyncsession.From[Volume](s).Filter("writer_id", vs[0].WriterID).OrderBy("title"), "title"))
		assert.Len(t, titles, 3)

		w := await(t, asyncsession.From[Writer](s).Filter("name", "w1").One(enginetest.Context(t)))
		assert.Equal(t, "w1", w.Name)
		_, err := asyncsession.From[Writer](s).One(enginetest.Context(t)).Await(enginetest.Context(t))
		require.ErrorIs(t, err, asyncsession.ErrMultipleRows)
		require.ErrorIs(t, err, asyncengine.ErrMultipleRows, "the engine's, as ErrNoRows is")
		_, err = asyncsession.From[Writer](s).Filter("name", "x").One(enginetest.Context(t)).Await(enginetest.Context(t))
		require.ErrorIs(t, err, asyncengine.ErrNoRows)
		none := await(t, asyncsession.From[Writer](s).Filter("name", "x").OneOrNone(enginetest.Context(t)))
		assert.Nil(t, none)
		first := await(t, asyncsession.From[Writer](s).OrderBy("name DESC").First(enginetest.Context(t)))
		assert.Equal(t, "w4", first.Name)

		streamed := 0
		// a relationship loaded Joined is not streamed (Stream loads none): its columns are left out
		for v, err := range asyncsession.From[Volume](s).Load("Writer", asyncsession.Joined).OrderBy("id").Stream(enginetest.Context(t)) {
			require.NoError(t, err)
			require.NotEmpty(t, v.Title)
			streamed++
		}
		assert.Equal(t, 15, streamed)
	})
}

// A builder call naming a column the model does not map fails before anything is sent.
func TestQueryBuilderErrors(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		relSchema(t, e)
		s := newSession(t, e)
		before := roundTrips(e)
		var me *asyncsession.MappingError
		_, err := asyncsession.From[Volume](s).Filter("titel", "x").All(enginetest.Context(t)).Await(enginetest.Context(t))
		require.ErrorAs(t, err, &me)
		assert.Contains(t, err.Error(), `no column "titel"`)
		_, err = asyncsession.From[Volume](s).OrderBy("Writer.name").All(enginetest.Context(t)).Await(enginetest.Context(t))
		require.ErrorAs(t, err, &me)
		assert.Contains(t, err.Error(), "Join")
		_, err = asyncsession.From[Volume](s).Join("Author").All(enginetest.Context(t)).Await(enginetest.Context(t))
		require.ErrorAs(t, err, &me)
		_, err = asyncsession.Scalars[string](enginetest.Context(t), asyncsession.From[Volume](s), "nope").Await(enginetest.Context(t))
		require.ErrorAs(t, err, &me)
		_, err = asyncsession.From[Writer](s).Load("Books", asyncsession.Joined).All(enginetest.Context(t)).Await(enginetest.Context(t))
		require.ErrorAs(t, err, &me)
		assert.Equal(t, before, roundTrips(e), "nothing was sent")
		assert.True(t, errors.As(err, &me))
	})
}

// Collections load with one more query for all the objects (selectin, their default); a
// many-to-one loads in the same query with Joined; Lazy leaves a relationship not loaded.
func TestQueryStrategies(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		seedLibrary(t, e)
		s := newSession(t, e)
		ws := await(t, asyncsession.From[Writer](s).OrderBy("name").All(enginetest.Context(t)))
		require.Len(t, ws, 5)
		for _, w := range ws {
			books, err := asyncsession.Related[[]*Volume](s, w, "Books")
			require.NoError(t, err)
			require.Len(t, books, 3)
			assert.Same(t, w, books[0].Writer)
		}
		_, err := asyncsession.Related[*WriterBio](s, ws[0], "Bio")
		require.ErrorIs(t, err, asyncsession.ErrNotLoaded, "Bio is lazy")

		s2 := newSession(t, e)
		vs := await(t, asyncsession.From[Volume](s2).Load("Writer", asyncsession.Joined).Load("Tags", asyncsession.Lazy).OrderBy("title").All(enginetest.Context(t)))
		require.Len(t, vs, 15)
		assert.Same(t, vs[0].Writer, vs[1].Writer, "rows of one writer are one object")
		assert.Equal(t, "w0", vs[0].Writer.Name)
		_, err = asyncsession.Related[[]*Tag](s2, vs[0], "Tags")
		require.ErrorIs(t, err, asyncsession.ErrNotLoaded)
		q := asyncsession.From[Volume](s2).Load("Writer", asyncsession.Joined)
		assert.Contains(t, q.String(), "LEFT OUTER JOIN")
	})
}

// Round trips on the wire: a query and its selectin loads take two.
func TestQueryRoundTrips(t *testing.T) {
	e := newEngine(t, enginetestURL(t))
	seedLibrary(t, e)
	count := func() int64 {
		s := newSession(t, e)
		before := roundTrips(e)
		ws := await(t, asyncsession.From[Writer](s).Load("Bio", asyncsession.SelectIn).All(enginetest.Context(t)))
		require.Len(t, ws, 5)
		await(t, s.Commit(enginetest.Context(t)))
		return roundTrips(e) - before
	}
	count()
	// BEGIN and the writers; Books, Fans and Bio in one pipeline; COMMIT
	assert.Equal(t, int64(3), count())

	s := newSession(t, e)
	vs := await(t, asyncsession.From[Volume](s).SkipLocked().Limit(2).All(enginetest.Context(t)))
	assert.Len(t, vs, 2)

	// with a Joined load and a join along a collection, the lock is on the volumes' rows alone
	// (the nullable side of an outer join cannot be locked)
	q := asyncsession.From[Volume](s).Load("Writer", asyncsession.Joined).Join("Tags").Filter("Tags.name", "fantasy").ForUpdate()
	vs = await(t, q.All(enginetest.Context(t)))
	assert.Len(t, vs, 5)
	assert.Contains(t, q.String(), `FOR UPDATE OF "volumes"`)
	vs = await(t, asyncsession.From[Volume](s).Load("Writer", asyncsession.Joined).SkipLocked().Limit(2).All(enginetest.Context(t)))
	assert.Len(t, vs, 2)
}

// Stream, like Select, refuses rows that leave out a mapped column instead of yielding objects
// with zero fields.
func TestStreamRefusesPartialRows(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		require.NoError(t, s.Add(&Author{ID: 1, Name: "a"}))
		var got error
		for a, err := range asyncsession.Stream[Author](ctx, s, "SELECT id FROM authors") {
			require.Nil(t, a)
			got = err
		}
		var me *asyncsession.MappingError
		require.ErrorAs(t, got, &me)
		assert.Contains(t, got.Error(), "name")
	})
}

// A join along a collection selects each object once: All, Limit, Count and Exists count
// objects, not the rows of the join; Scalars reads a value per joined row; ordering by a column of
// the collection is refused before anything is sent.
func TestJoinAlongACollection(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		relSchema(t, e)
		s := newSession(t, e)
		sf, classic := &Tag{Name: "sf"}, &Tag{Name: "classic"}
		w := &Writer{Name: "w"}
		for i := range 4 {
			w.Books = append(w.Books, &Volume{Title: fmt.Sprint("v", i), Tags: []*Tag{sf, classic}})
		}
		w.Books = append(w.Books, &Volume{Title: "v4", Tags: []*Tag{sf}})
		require.NoError(t, s.Add(w))
		await(t, s.Commit(ctx))

		both := func() *asyncsession.Query[Volume] {
			return asyncsession.From[Volume](s).Join("Tags").Filter("Tags.name", []string{"sf", "classic"})
		}
		assert.Len(t, await(t, both().All(ctx)), 5)
		assert.EqualValues(t, 5, await(t, both().Count(ctx)), "objects, as All")
		page := await(t, both().OrderBy("title").Limit(3).All(ctx))
		require.Len(t, page, 3, "a limit of objects")
		assert.Equal(t, []string{"v0", "v1", "v2"}, []string{page[0].Title, page[1].Title, page[2].Title})
		page = await(t, both().OrderBy("title").Offset(3).All(ctx))
		require.Len(t, page, 2)
		assert.Equal(t, "v3", page[0].Title)
		assert.True(t, await(t, both().Exists(ctx)))
		names := await(t, asyncsession.Scalars[string](ctx, both(), "Tags.name"))
		assert.Len(t, names, 9, "a value per joined row")

		_, err := both().OrderBy("Tags.name").All(ctx).Await(ctx)
		var me *asyncsession.MappingError
		require.ErrorAs(t, err, &me)
		assert.Contains(t, err.Error(), "Tags is a collection")
	})
}
