package asyncengine_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
)

// threeSelects opens an engine on url and a connection of it, closed with the test, and returns
// them with a pipeline of three SELECTs.
func threeSelects(t *testing.T, url string) (*asyncengine.Engine, *asyncengine.Conn, []asyncengine.Statement) {
	e := newEngine(t, url, "")
	c, err := e.Connect(enginetest.Context(t))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return e, c, []asyncengine.Statement{{SQL: "SELECT 1"}, {SQL: "SELECT 2"}, {SQL: "SELECT 3"}}
}

// PipelineEach hands over each statement's result, in order, as it is read: the results handed
// over are the ones returned, and a failing statement stops the calls with the rest.
func TestPipelineEachHandsOverResultsInOrder(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		e, c, stmts := threeSelects(t, url)
		ctx := enginetest.Context(t)
		var handed []*asyncengine.Result
		var order []int
		rs, err := c.PipelineEach(ctx, stmts, func(i int, r *asyncengine.Result) {
			order = append(order, i)
			handed = append(handed, r)
		})
		require.NoError(t, err)
		assert.Equal(t, []int{0, 1, 2}, order)
		assert.Equal(t, rs, handed, "the results handed over are the ones returned")
		for i, r := range rs {
			v, err := r.Scalar()
			require.NoError(t, err)
			assert.EqualValues(t, i+1, v)
		}

		order = nil
		// fails as it runs, on either server: the absolute value of the smallest integer
		stmts[1] = asyncengine.Statement{SQL: "SELECT abs(CAST(" + e.Dialect().Placeholder(1) + " AS bigint))", Args: []any{int64(math.MinInt64)}}
		rs, err = c.PipelineEach(ctx, stmts, func(i int, r *asyncengine.Result) { order = append(order, i) })
		var pe *asyncengine.PipelineError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, 1, pe.Index)
		assert.Len(t, rs, 1)
		assert.Equal(t, []int{0}, order, "nothing is handed over from the failing statement on")
	})
}

// A panic in what PipelineEach hands results to stops the calls, lets the pipeline be read to
// its end, and is raised again on the caller's goroutine: the connection stays in service.
func TestPipelineEachPanicRaisedAfterTheRead(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		e, c, stmts := threeSelects(t, url)
		ctx := enginetest.Context(t)
		id := c.ID()
		calls := 0
		raised := func() (rec any) {
			defer func() { rec = recover() }()
			_, _ = c.PipelineEach(ctx, stmts, func(i int, r *asyncengine.Result) {
				calls++
				panic("in the caller's code")
			})
			return nil
		}()
		pe, ok := raised.(*asyncengine.PanicError)
		require.True(t, ok, "raised as a *PanicError: %v", raised)
		assert.Equal(t, "in the caller's code", pe.Value)
		assert.Equal(t, 1, calls, "no call after the panic")
		v, err := c.Query(ctx, "SELECT 4")
		require.NoError(t, err, "the rest of the pipeline was read")
		n, err := v.Scalar()
		require.NoError(t, err)
		assert.EqualValues(t, 4, n)
		assert.Equal(t, id, c.ID(), "the connection is kept")
		assert.Zero(t, e.Stats().Invalidations)
	})
}
