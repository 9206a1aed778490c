package asyncengine_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
)

// batches returns a more that hands over the given batches one by one, recording which ones
// were asked for.
func batches(asked *int, bs ...[]asyncengine.Statement) func() []asyncengine.Statement {
	return func() []asyncengine.Statement {
		if *asked >= len(bs) {
			*asked++
			return nil
		}
		*asked++
		return bs[*asked-1]
	}
}

// PipelineStream sends its statements in the batches it is handed, in one pipeline and one
// round trip once the statements are prepared; each result is handed over in order; a statement
// first met in a later batch is prepared as it comes. With statement_cache=describe (and on
// SQLite) the batches are collected before the pipeline is sent, with the same results.
func TestPipelineStreamRunsEveryBatchInOrder(t *testing.T) {
	for _, query := range []string{"pool_size=1&max_overflow=0", "pool_size=1&max_overflow=0&statement_cache=describe"} {
		enginetest.EachBackend(t, func(t *testing.T, url string) {
			e := newEngine(t, url, query)
			ctx := enginetest.Context(t)
			c, err := e.Connect(ctx)
			require.NoError(t, err)
			defer c.Close()
			_, err = c.Exec(ctx, "CREATE TABLE streamed (n integer PRIMARY KEY)")
			require.NoError(t, err)
			p := e.Dialect().Placeholder
			insert := func(n int) asyncengine.Statement {
				return asyncengine.Statement{SQL: "INSERT INTO streamed (n) VALUES (" + p(1) + ") RETURNING n", Args: []any{n}}
			}
			run := func() ([]*asyncengine.Result, []int, error) {
				asked := 0
				var order []int
				more := batches(&asked,
					[]asyncengine.Statement{insert(2), insert(3)},
					[]asyncengine.Statement{{SQL: "SELECT count(*) FROM streamed"}, insert(4)},
				)
				rs, err := c.PipelineStream(ctx, []asyncengine.Statement{{SQL: "DELETE FROM streamed"}, insert(1)}, more,
					func(i int, r *asyncengine.Result) { order = append(order, i) })
				assert.Equal(t, 3, asked, "more is asked until it returns none")
				return rs, order, err
			}
			rs, order, err := run()
			require.NoError(t, err)
			require.Len(t, rs, 6)
			assert.Equal(t, []int{0, 1, 2, 3, 4, 5}, order)
			for i, want := range map[int]int64{1: 1, 2: 2, 3: 3, 4: 3, 5: 4} {
				v, err := rs[i].Scalar()
				require.NoError(t, err)
				assert.EqualValues(t, want, v, "statement %d", i)
			}
			if e.Dialect().Name() == "postgresql" && !strings.Contains(url, "+stdlib") {
				// pgx counts what its socket carries: the pool's one connection, whose round trips count as it goes back
				require.NoError(t, c.Close())
				before := e.Stats().RoundTrips
				c, err = e.Connect(ctx)
				require.NoError(t, err)
				_, _, err = run()
				require.NoError(t, err)
				require.NoError(t, c.Close())
				assert.EqualValues(t, 1, e.Stats().RoundTrips-before, "prepared: one round trip")
			}
		})
	}
}

// A statement of a later batch that fails stops the pipeline there: the results before it are
// returned, its index is reported, more is not asked again, and the connection serves the next
// call. An argument of a later batch that cannot be encoded fails at its statement, after the
// statements sent before it ran; a statement that cannot be prepared fails at its index.
func TestPipelineStreamFailureInALaterBatch(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		e := newEngine(t, url, "")
		ctx := enginetest.Context(t)
		c, err := e.Connect(ctx)
		require.NoError(t, err)
		defer c.Close()
		p := e.Dialect().Placeholder
		one := asyncengine.Statement{SQL: "SELECT 1"}
		streams := e.Dialect().Name() == "postgresql" && !strings.Contains(url, "+stdlib") // pgx, which prepares its statements
		for name, bad := range map[string]asyncengine.Statement{
			// fails as it runs, on either server: the absolute value of the smallest integer
			"fails as it runs": {SQL: "SELECT abs(CAST(" + p(1) + " AS bigint))", Args: []any{int64(math.MinInt64)}},
			"cannot encode":    {SQL: "SELECT " + p(1), Args: []any{make(chan int)}},
			"cannot prepare":   {SQL: "SELEKT 1"},
		} {
			t.Run(name, func(t *testing.T) {
				asked := 0
				more := batches(&asked, []asyncengine.Statement{one, one}, []asyncengine.Statement{one, bad, one}, []asyncengine.Statement{one})
				rs, err := c.PipelineStream(ctx, []asyncengine.Statement{one}, more, nil)
				var pe *asyncengine.PipelineError
				require.ErrorAs(t, err, &pe)
				assert.Equal(t, 4, pe.Index, "%v", err)
				assert.Len(t, rs, 4, "the results before the failing statement")
				assert.False(t, pe.NotExecuted, "the statements before it ran")
				switch {
				case !streams:
					assert.Equal(t, 4, asked, "every batch is collected before the pipeline is sent")
				case name == "fails as it runs":
					assert.Equal(t, 4, asked, "a statement the server fails is known once every batch is sent")
				default:
					assert.Equal(t, 2, asked, "more is not asked again once the pipeline failed")
				}
				servesNextCall(t, ctx, c)
			})
		}
	})
}

// A statement that cannot be prepared in the first batch fails before anything runs; a
// prepared statement dropped behind the connection's back (DEALLOCATE ALL) fails the pipeline
// that uses it once, and the next one prepares it again.
func TestPipelineStreamPreparesAgain(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		e := newEngine(t, url, "")
		ctx := enginetest.Context(t)
		c, err := e.Connect(ctx)
		require.NoError(t, err)
		defer c.Close()
		none := func() []asyncengine.Statement { return nil }
		_, err = c.PipelineStream(ctx, []asyncengine.Statement{{SQL: "SELEKT 1"}, {SQL: "SELECT 1"}}, none, nil)
		var pe *asyncengine.PipelineError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, 0, pe.Index)
		assert.True(t, pe.NotExecuted, "nothing ran")

		stmts := []asyncengine.Statement{{SQL: "SELECT 41"}, {SQL: "SELECT 42"}}
		_, err = c.PipelineStream(ctx, stmts, none, nil)
		require.NoError(t, err)
		_, err = c.Exec(ctx, "DEALLOCATE ALL")
		require.NoError(t, err)
		_, err = c.PipelineStream(ctx, stmts, none, nil)
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr)
		assert.Equal(t, "26000", pgErr.Code, "the statement is gone")
		rs, err := c.PipelineStream(ctx, stmts, none, nil)
		require.NoError(t, err, "prepared again")
		v, err := rs[1].Scalar()
		require.NoError(t, err)
		assert.EqualValues(t, 42, v)
	}, "pgx")
}

// A panic in more ends the pipeline with the statements handed over before it, which run and
// are read; it is raised again on the caller's goroutine, and the connection stays in service.
func TestPipelineStreamPanicInMore(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		e := newEngine(t, url, "")
		ctx := enginetest.Context(t)
		c, err := e.Connect(ctx)
		require.NoError(t, err)
		defer c.Close()
		calls := 0
		more := func() []asyncengine.Statement {
			calls++
			if calls == 2 {
				panic("planning failed")
			}
			return []asyncengine.Statement{{SQL: fmt.Sprint("SELECT ", calls)}}
		}
		var handed int
		func() {
			defer func() {
				r := recover()
				require.NotNil(t, r)
				var pe *asyncengine.PanicError
				require.True(t, errors.As(r.(error), &pe), "%v", r)
			}()
			_, _ = c.PipelineStream(ctx, []asyncengine.Statement{{SQL: "SELECT 0"}}, more, func(int, *asyncengine.Result) { handed++ })
		}()
		assert.Equal(t, 2, handed, "the statements handed over before the panic ran")
		assert.Equal(t, 2, calls)
		servesNextCall(t, ctx, c)
	})
}

// A context cancelled while the pipeline still takes batches fails it with the context's error;
// the connection's pool serves the next caller.
func TestPipelineStreamCancelled(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		e := newEngine(t, url, "pool_size=1&max_overflow=0")
		ctx, cancel := context.WithCancel(enginetest.Context(t))
		defer cancel()
		c, err := e.Connect(ctx)
		require.NoError(t, err)
		calls := 0
		more := func() []asyncengine.Statement {
			calls++
			if calls == 2 {
				cancel()
			}
			if calls > 3 {
				return nil
			}
			return []asyncengine.Statement{{SQL: "SELECT pg_sleep(0.05)"}}
		}
		_, err = c.PipelineStream(ctx, []asyncengine.Statement{{SQL: "SELECT 1"}}, more, nil)
		require.ErrorIs(t, err, context.Canceled)
		c.Close()
		ctx = enginetest.Context(t)
		servesNextCall(t, ctx, e)
	}, "pgx")
}

// servesNextCall checks that q (a connection, or an engine's pool) answers a query after a
// pipeline.
func servesNextCall(t *testing.T, ctx context.Context, q interface {
	Query(context.Context, string, ...any) (*asyncengine.Result, error)
}) {
	t.Helper()
	r, err := q.Query(ctx, "SELECT 7")
	require.NoError(t, err, "the connection serves the next call")
	v, err := r.Scalar()
	require.NoError(t, err)
	assert.EqualValues(t, 7, v)
}
