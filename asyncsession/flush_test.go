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

type narrowItem struct {
	ID  int64 `db:"id,pk,default"`
	Qty int64 `db:"qty"`
}

func (narrowItem) TableName() string { return "narrow_items" }

// A batch whose int64 field is an integer column goes as the driver's own []int64: a value out of
// range is the driver's error, naming the value and the column's type and no type of the
// session's own, and nothing is written.
func TestBatchOutOfRangeIsTheDriversError(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		if e.Dialect().Name() != "postgresql" {
			return // SQLite's integers are 64 bits wide
		}
		ctx := enginetest.Context(t)
		_, err := e.Exec(ctx, "CREATE TABLE narrow_items (id bigserial PRIMARY KEY, qty integer NOT NULL)")
		require.NoError(t, err)
		s := newSession(t, e)
		for range 3 {
			require.NoError(t, s.Add(&narrowItem{Qty: 1 << 40}))
		}
		_, err = s.Commit(ctx).Await(ctx)
		require.Error(t, err)
		require.Contains(t, err.Error(), "greater than maximum value for int4")
		require.Contains(t, err.Error(), "[]int64{")
		require.NotContains(t, err.Error(), "pgarrays")
		require.Contains(t, err.Error(), "does not fit the parameter's type")
		require.Zero(t, count(t, e, "narrow_items"))
	})
}
