package asyncengine_test

import (
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A slice bound to :name after IN becomes one placeholder per element, on every dialect; a
// slice elsewhere stays one value (a PostgreSQL array for = ANY(:ids)).
func TestNamedInList(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		e := newEngine(t, url, "")
		d := e.Dialect()
		sql, args, err := d.Bind("SELECT n FROM t WHERE n IN (:ids) OR m in :ids OR x = :one", []any{asyncengine.Named{"ids": []int64{1, 2, 3}, "one": 4}})
		require.NoError(t, err)
		if d.Name() == "postgresql" {
			assert.Equal(t, "SELECT n FROM t WHERE n IN ($1, $2, $3) OR m in ($1, $2, $3) OR x = $4", sql)
			assert.Equal(t, []any{int64(1), int64(2), int64(3), 4}, args)
		} else {
			assert.Equal(t, "SELECT n FROM t WHERE n IN (?, ?, ?) OR m in (?, ?, ?) OR x = ?", sql)
			assert.Len(t, args, 7)
		}
		_, _, err = d.Bind("SELECT 1 WHERE 1 IN (:ids)", []any{asyncengine.Named{"ids": []int{}}})
		require.ErrorIs(t, err, asyncengine.ErrInvalidArgument)
		assert.Contains(t, err.Error(), "empty")

		// through Query, against the server
		_, err = e.Exec(enginetest.Context(t), "CREATE TABLE nums (n integer)")
		require.NoError(t, err)
		_, err = e.Exec(enginetest.Context(t), "INSERT INTO nums (n) VALUES (1), (2), (3), (4)")
		require.NoError(t, err)
		r, err := e.Query(enginetest.Context(t), "SELECT n FROM nums WHERE n IN (:ids) ORDER BY n", asyncengine.Named{"ids": []int{2, 4, 9}})
		require.NoError(t, err)
		var got []int64
		for i := range r.Len() {
			var n int64
			require.NoError(t, r.ScanRow(i, &n))
			got = append(got, n)
		}
		assert.Equal(t, []int64{2, 4}, got)
		// a name that merely ends in "in" is not the keyword
		_, _, err = d.Bind("SELECT :within", []any{asyncengine.Named{"within": []byte("x")}})
		require.NoError(t, err)
		sql, _, err = d.Bind("SELECT * FROM t WHERE login = :ids", []any{asyncengine.Named{"ids": []int{1}}})
		require.NoError(t, err)
		assert.NotContains(t, sql, ",")
	})
}

// A PostgreSQL escape string (E'…') ends at an unescaped quote: \' does not end it, so a :name
// inside it is text, not a placeholder.
func TestNamedSkipsEscapeStrings(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t), "")
	ctx := enginetest.Context(t)
	for _, sql := range []string{`SELECT E'it\'s :y', :v::text`, `SELECT e'a\\' || ':y', :v::text`} {
		r, err := e.Query(ctx, sql, asyncengine.Named{"v": "x"})
		require.NoError(t, err, sql)
		row := r.Rows()[0]
		assert.Contains(t, row[0], ":y", sql)
		assert.Equal(t, "x", row[1], sql)
	}
	// an identifier ending in e before a quote is not an escape string
	sql, _, err := e.Dialect().Bind(`SELECT 'a\' AS x, :v`, []any{asyncengine.Named{"v": 1}})
	require.NoError(t, err)
	assert.Equal(t, `SELECT 'a\' AS x, $1`, sql)
}

// A Named key the statement does not use is refused, named, before anything is sent.
func TestNamedUnusedKeyIsRefused(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t), "")
	_, _, err := e.Dialect().Bind("SELECT :id", []any{asyncengine.Named{"id": 1, "nmae": "x"}})
	require.ErrorIs(t, err, asyncengine.ErrInvalidArgument)
	assert.Contains(t, err.Error(), ":nmae")
}
