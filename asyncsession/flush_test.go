package asyncsession_test

import (
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestUnsentFlushKeepsUpdates(t *testing.T) {
	url := enginetest.NewDatabase(t)
	e := newEngine(t, url+"&pool_size=1&max_overflow=0&pool_timeout=0.2&connect_timeout=10")
	ctx := enginetest.Context(t)
	_, err := e.Exec(ctx, "INSERT INTO authors (id, name) VALUES (1, 'old')")
	require.NoError(t, err)
	s := newSession(t, e, asyncsession.ExpireOnCommit(false))
	a := await(t, asyncsession.Get[Author](ctx, s, 1))
	await(t, s.Commit(ctx))
	a.Name = "changed"
	held, err := e.Connect(ctx)
	require.NoError(t, err)
	_, err = s.Flush(ctx).Await(ctx)
	require.ErrorIs(t, err, asyncengine.ErrPoolTimeout)
	require.NoError(t, held.Close())
	await(t, s.Commit(ctx))
	r, err := e.Query(ctx, "SELECT name FROM authors WHERE id = 1")
	require.NoError(t, err)
	n, _ := r.Scalar()
	assert.Equal(t, "changed", n, "the update planned for the flush that never ran is sent by the next one")
}
