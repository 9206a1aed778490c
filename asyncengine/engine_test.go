package asyncengine_test

import (
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestQueryAndScan(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string) {
		ctx := ctxT(t)
		e := newEngine(t, url, "")
		_, err := e.Exec(ctx, "CREATE TABLE items (id integer PRIMARY KEY, name text, price real)")
		require.NoError(t, err)
		res, err := e.Exec(ctx, "INSERT INTO items VALUES (:id, :name, :price), (:id2, :name, NULL)", asyncengine.Named{"id": 1, "name": "a::b", "price": 2.5, "id2": 2})
		require.NoError(t, err)
		assert.EqualValues(t, 2, res.RowsAffected())

		r, err := e.Query(ctx, "SELECT count(*) FROM items WHERE name = 'x:y' OR name = :n", asyncengine.Named{"n": "a::b"})
		require.NoError(t, err)
		n, err := r.Scalar()
		require.NoError(t, err)
		assert.EqualValues(t, 2, n)

		type item struct {
			ID    int      `db:"id,pk"`
			Name  string   `db:"name"`
			Price *float64 `db:"price"`
		}
		r, err = e.Query(ctx, "SELECT id, name, price FROM items ORDER BY id")
		require.NoError(t, err)
		items, err := asyncengine.ScanAll[item](r)
		require.NoError(t, err)
		require.Len(t, items, 2)
		assert.Equal(t, "a::b", items[0].Name)
		require.NotNil(t, items[0].Price)
		assert.InDelta(t, 2.5, *items[0].Price, 0.001)
		assert.Nil(t, items[1].Price)
		assert.Equal(t, []string{"id", "name", "price"}, r.Columns())
		assert.Len(t, r.Mappings(), 2)

		var id int
		var name string
		require.ErrorIs(t, r.One(&id, &name, new(any)), asyncengine.ErrMultipleRows)
		r, err = e.Query(ctx, "SELECT id, name FROM items WHERE id = 1")
		require.NoError(t, err)
		require.NoError(t, r.One(&id, &name))
		assert.Equal(t, 1, id)
		r, err = e.Query(ctx, "SELECT id FROM items WHERE id = 99")
		require.NoError(t, err)
		_, err = r.Scalar()
		require.ErrorIs(t, err, asyncengine.ErrNoRows)
		assert.Equal(t, 0, e.Stats().CheckedOut)
	})
}
