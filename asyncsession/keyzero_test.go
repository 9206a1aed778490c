package asyncsession_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
)

// A failed flush leaves the objects it inserted as it found them: a key the caller gave an
// object is its own, not one the INSERT filled, and stays — only what the server filled in is
// taken back.
func TestFailedFlushKeepsGivenKeys(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		_, err := e.Exec(ctx, "CREATE TABLE stock (id bigint PRIMARY KEY, qty bigint NOT NULL CHECK (qty >= 0))")
		require.NoError(t, err)
		s := newSession(t, e)
		old := &Stock{ID: 1, Qty: 5}
		require.NoError(t, s.Add(old))
		await(t, s.Commit(ctx))

		fresh := []*Stock{{ID: 9999, Qty: 1}, {ID: 9998, Qty: 2}}
		require.NoError(t, s.Add(fresh[0], fresh[1]))
		old.Qty = -1
		_, err = s.Commit(ctx).Await(ctx)
		require.Error(t, err, "the CHECK fails")
		assert.EqualValues(t, 9999, fresh[0].ID, "the key given stays")
		assert.EqualValues(t, 9998, fresh[1].ID)
		await(t, s.Rollback(ctx))
		old.Qty = 4
		require.NoError(t, s.Add(fresh[0], fresh[1]))
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 1, count(t, e, "stock WHERE id = 9999"))
		assert.EqualValues(t, 0, count(t, e, "stock WHERE id = 0"))
	})
}

type Stock struct {
	ID  int64 `db:"id,pk"`
	Qty int64 `db:"qty"`
}

func (Stock) TableName() string { return "stock" }
