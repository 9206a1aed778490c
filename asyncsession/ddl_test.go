package asyncsession_test

import (
	"database/sql"
	"encoding/json"
	"testing"
	"time"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type Profile struct {
	ID       int64           `db:"id,pk"`
	Nickname sql.NullString  `db:"nickname"`
	Score    sql.NullFloat64 `db:"score"`
	Bio      *string         `db:"bio"`
	Joined   time.Time       `db:"joined"`
}

func TestNullableColumns(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
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

// Post's slices and map have nil as their zero value, which is written as NULL.
type Post struct {
	ID    int64             `db:"id,pk"`
	Tags  []string          `db:"tags"`
	Meta  json.RawMessage   `db:"meta"`
	Blob  []byte            `db:"blob"`
	Attrs map[string]string `db:"attrs"`
}

// CreateAll lets a column whose Go type's zero value is nil hold NULL: the zero Post saves into
// the table CreateAll made for it, and reads back as it was.
func TestCreateAllNilColumns(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		require.NoError(t, asyncsession.CreateAll(ctx, e, Post{}))
		s := newSession(t, e)
		require.NoError(t, s.Add(&Post{ID: 1}, &Post{ID: 2, Tags: []string{"a"}, Meta: json.RawMessage(`{"k":1}`), Blob: []byte{1}, Attrs: map[string]string{"x": "y"}}))
		await(t, s.Commit(ctx))
		s.ExpungeAll()
		p1 := await(t, asyncsession.Get[Post](ctx, s, 1))
		assert.Equal(t, Post{ID: 1}, *p1)
		p2 := await(t, asyncsession.Get[Post](ctx, s, 2))
		assert.Equal(t, []string{"a"}, p2.Tags)
		assert.Equal(t, map[string]string{"x": "y"}, p2.Attrs)
	})
}
