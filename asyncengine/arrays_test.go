package asyncengine_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/internal/pgarrays"
)

// The columns a flush sends as arrays (pgarrays, written without work per element on the native
// driver's connections) reach the server as the values they hold, in every statement_cache mode
// and on both drivers; a column whose parameter type is another one is the driver's to write,
// with the driver's own errors.
func TestBatchColumnsRoundTrip(t *testing.T) {
	ids := pgarrays.Int8s{1, -1, 0, math.MaxInt64, math.MinInt64}
	pos := pgarrays.Int4s{3, -3, 0, math.MaxInt32, math.MinInt32}
	titles := pgarrays.Texts{"a", "", "é ✓ \"q\" {b} \\", "NULL", "x"}
	eachCacheMode(t, func(t *testing.T, e *asyncengine.Engine, drv, mode string) {
		ctx := enginetest.Context(t)
		r, err := e.Query(ctx, `SELECT a, b, c, d FROM unnest($1::bigint[], $2::integer[], $3::text[], $4::varchar[]) WITH ORDINALITY AS u(a, b, c, d, n) ORDER BY n`,
			ids, pos, titles, titles)
		require.NoError(t, err)
		require.Equal(t, len(ids), r.Len())
		for i := range r.Len() {
			var a int64
			var b int32
			var c, d string
			require.NoError(t, r.ScanRow(i, &a, &b, &c, &d))
			require.Equal(t, []any{ids[i], pos[i], titles[i], titles[i]}, []any{a, b, c, d})
		}
		// the driver's own conversions where the parameter is of another type
		var n int64
		r, err = e.Query(ctx, `SELECT sum(x) FROM unnest($1::integer[]) AS x`, pgarrays.Int8s{1, 2})
		require.NoError(t, err)
		require.NoError(t, r.One(&n))
		require.EqualValues(t, 3, n)
		_, err = e.Query(ctx, `SELECT unnest($1::integer[])`, []int64{1 << 40})
		require.Error(t, err, "a bigint out of range for integer")
		if mode == "describe" || mode == "prepare" {
			// the driver's range check, before anything is sent (the server's own check otherwise)
			require.ErrorIs(t, err, asyncengine.ErrInvalidArgument)
			require.Contains(t, err.Error(), "does not fit the parameter's type")
		}
		_, err = e.Query(ctx, `SELECT unnest($1::integer[])`, pgarrays.Int8s{1 << 40})
		require.Error(t, err, "a bigint out of range for integer")
		var empty, null bool
		r, err = e.Query(ctx, `SELECT cardinality($1::bigint[]) = 0, $2::text[] IS NULL`, pgarrays.Int8s{}, pgarrays.Texts(nil))
		require.NoError(t, err)
		require.NoError(t, r.One(&empty, &null))
		require.True(t, empty)
		require.True(t, null)
	})
}
