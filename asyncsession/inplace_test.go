package asyncsession_test

import (
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type InPlaceProfile struct {
	ID    int64          `db:"id,pk,default"`
	Email *string        `db:"email"`
	Tags  []string       `db:"tags"`
	Attrs map[string]any `db:"attrs"`
}

func (InPlaceProfile) TableName() string { return "inplace_profiles" }

// Changes made in place — through a pointer field, to an element of a slice, to a key of a map —
// leave the struct's own bytes as they were; Flush and Commit still send them.
func TestInPlaceChangesAreFlushed(t *testing.T) {
	e, err := asyncengine.New(enginetest.NewDatabase(t))
	require.NoError(t, err)
	t.Cleanup(func() { e.Close() })
	ctx := enginetest.Context(t)
	require.NoError(t, asyncsession.CreateAll(ctx, e, InPlaceProfile{}))

	email := "a@example.com"
	s := newSession(t, e)
	p := &InPlaceProfile{Email: &email, Tags: []string{"a", "b"}, Attrs: map[string]any{"k": "v"}}
	require.NoError(t, s.Add(p))
	await(t, s.Commit(ctx))

	s2 := newSession(t, e)
	got := await(t, asyncsession.Get[InPlaceProfile](ctx, s2, p.ID))
	*got.Email = "b@example.com"
	got.Tags[1] = "c"
	got.Attrs["k"] = "w"
	// Flush compares them by content (an autoflush looks at the struct's own bytes only)
	await(t, s2.Flush(ctx))
	r := await(t, s2.Execute(ctx, "SELECT email, tags[2], attrs->>'k' FROM inplace_profiles WHERE id = $1", p.ID))
	var gotEmail, tag, attr string
	require.NoError(t, r.One(&gotEmail, &tag, &attr))
	assert.Equal(t, []string{"b@example.com", "c", "w"}, []string{gotEmail, tag, attr})

	*got.Email = "c@example.com"
	await(t, s2.Commit(ctx))
	var stored string
	r2, err := e.Query(ctx, "SELECT email FROM inplace_profiles WHERE id = $1", p.ID)
	require.NoError(t, err)
	require.NoError(t, r2.One(&stored))
	assert.Equal(t, "c@example.com", stored, "Commit flushed a write through a pointer field")
}
