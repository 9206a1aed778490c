package asyncengine_test

import (
	"context"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type seriesRow struct {
	N int64 `db:"n"`
}

func TestStream(t *testing.T) {
	verifyNoLeaks(t)
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		e := newEngine(t, url, "pool_size=1")
		ctx := enginetest.Context(t)
		series := "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 5000) SELECT n FROM s"

		t.Run("all rows", func(t *testing.T) {
			var sum int64
			count := 0
			for row, err := range e.Stream(ctx, series) {
				require.NoError(t, err)
				var n int64
				require.NoError(t, row.Scan(&n))
				sum += n
				count++
			}
			assert.Equal(t, 5000, count)
			assert.Equal(t, int64(5000*5001/2), sum)
			assert.Zero(t, e.Stats().CheckedOut)
		})

		t.Run("early exit frees the connection", func(t *testing.T) {
			for i := range 3 { // pool_size=1: a connection kept by an early exit would block the next
				n := 0
				for v, err := range asyncengine.ScanEach[seriesRow](e.Stream(ctx, series)) {
					require.NoError(t, err)
					n++
					assert.Equal(t, int64(n), v.N)
					if n == 10+i {
						break
					}
				}
				assert.Equal(t, 10+i, n)
				assert.Zero(t, e.Stats().CheckedOut)
			}
			var one int
			r, err := e.Query(ctx, "SELECT 1")
			require.NoError(t, err)
			require.NoError(t, r.One(&one))
		})

		t.Run("cancellation", func(t *testing.T) {
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			n := 0
			var last error
			for _, err := range e.Stream(cctx, series) {
				if err != nil {
					last = err
					break
				}
				n++
				if n == 5 {
					cancel()
				}
			}
			require.ErrorIs(t, last, context.Canceled)
			assert.Less(t, n, 5000)
			assert.Zero(t, e.Stats().CheckedOut)
			r, err := e.Query(ctx, "SELECT 1")
			require.NoError(t, err, "the pool serves the next query")
			assert.Equal(t, 1, r.Len())
		})

		t.Run("errors", func(t *testing.T) {
			var last error
			for _, err := range e.Stream(ctx, "SELECT * FROM no_such_table") {
				last = err
			}
			require.Error(t, last)
			for v, err := range e.Stream(ctx, "SELECT NULL AS n") {
				require.NotNil(t, v)
				require.NoError(t, err)
				var n int64
				var ce *asyncengine.ConvertError
				require.ErrorAs(t, v.Scan(&n), &ce)
			}
		})

		t.Run("a panicking loop body frees the connection", func(t *testing.T) {
			func() {
				defer func() { assert.Equal(t, "boom", recover()) }()
				for range e.Stream(ctx, series) {
					panic("boom")
				}
			}()
			assert.Zero(t, e.Stats().CheckedOut)
			r, err := e.Query(ctx, "SELECT 1")
			require.NoError(t, err)
			assert.Equal(t, 1, r.Len())
		})

		t.Run("conn in use", func(t *testing.T) {
			c, err := e.Connect(ctx)
			require.NoError(t, err)
			defer c.Close()
			for range c.Stream(ctx, series) {
				_, err := c.Query(ctx, "SELECT 1")
				require.ErrorIs(t, err, asyncengine.ErrConcurrentUse)
				break
			}
		})
	})
}
