package asyncengine_test

import (
	"context"
	"testing"
	"time"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A cursor pulls rows one at a time: its columns are known before the first row (also for an
// empty result), an early Close frees the connection, the query's own error comes from Cursor
// and a failure mid-result from Err.
func TestCursor(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		_, ctx, c := cursorConn(t, url)
		series := "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 100) SELECT n, 'x' AS label FROM s"

		cu, err := c.Cursor(ctx, series+" WHERE n > 1000")
		require.NoError(t, err)
		require.Equal(t, []string{"n", "label"}, cu.Columns())
		require.Len(t, cu.ColumnTypes(), 2)
		require.False(t, cu.Next())
		require.NoError(t, cu.Err())
		require.NoError(t, cu.Close())

		cu, err = c.Cursor(ctx, series)
		require.NoError(t, err)
		var sum int64
		for i := 0; i < 10 && cu.Next(); i++ {
			var n int64
			var label string
			require.NoError(t, cu.Row().Scan(&n, &label))
			sum += n
		}
		// the connection is busy until the cursor is closed
		_, err = c.Exec(ctx, "SELECT 1")
		require.ErrorIs(t, err, asyncengine.ErrConcurrentUse)
		require.NoError(t, cu.Close())
		require.False(t, cu.Next())
		require.Equal(t, int64(55), sum)
		_, err = c.Exec(ctx, "SELECT 1")
		require.NoError(t, err, "the connection is free after Close")

		_, err = c.Cursor(ctx, "SELECT * FROM no_such_table")
		require.Error(t, err)

		cu, err = c.Cursor(ctx, "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 5) SELECT 10 / (3 - n) FROM s")
		if err == nil {
			for cu.Next() {
			}
			err = cu.Err()
			require.Equal(t, err, cu.Close())
		}
		if url[:6] == "sqlite" {
			return // SQLite's division by zero is NULL
		}
		require.ErrorContains(t, err, "division by zero")
	})
}

// A cursor whose context is cancelled mid-rows stops: Next returns false, Err is the context's
// error, and the Conn serves its next statement (on a fresh connection if the driver dropped
// the one it had). A panicking loop body over Conn.Stream leaves the Conn usable too.
func TestCursorCancelledAndPanickingBody(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		e, ctx, c := cursorConn(t, url)
		series := "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 100000) SELECT n FROM s"

		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		cu, err := c.Cursor(cctx, series)
		require.NoError(t, err)
		n := 0
		for cu.Next() {
			if n++; n == 5 {
				cancel()
			}
		}
		require.Equal(t, 5, n, "no row after the cancellation")
		require.ErrorIs(t, cu.Err(), context.Canceled)
		require.ErrorIs(t, cu.Close(), context.Canceled)
		var one int64
		r, err := c.Query(ctx, "SELECT 1")
		require.NoError(t, err, "the Conn serves the next statement")
		require.NoError(t, r.One(&one))

		func() {
			defer func() { assert.Equal(t, "boom", recover()) }()
			for range c.Stream(ctx, series) {
				panic("boom")
			}
		}()
		r, err = c.Query(ctx, "SELECT 2")
		require.NoError(t, err, "the Conn serves the next statement after a panicking loop body")
		require.NoError(t, r.One(&one))
		require.Equal(t, int64(2), one)
		require.Equal(t, 1, e.Stats().CheckedOut)
	})
}

// Leaving a long result early does not read the rest: outside a transaction the server is asked
// to stop the statement (a result that would take hours ends at once) and the connection serves
// the next call; inside one the rest is read, so the transaction goes on.
func TestCursorClosedEarly(t *testing.T) {
	t.Parallel()
	e := newEngine(t, enginetest.BackendURL(t, "pgx"), "pool_size=1")
	// without the cancel, closing would read until this context ends: the test fails, not hangs
	ctx, cancel := context.WithTimeout(enginetest.Context(t), time.Minute)
	defer cancel()
	endless := "SELECT generate_series(1, 1000000000000)" // in the select list: rows come as made
	n := 0
	for row, err := range e.Stream(ctx, endless) {
		require.NoError(t, err)
		require.NotNil(t, row)
		if n++; n == 10 {
			break // would read for hours without the cancel; the test's context ends first
		}
	}
	c, err := e.Connect(ctx)
	require.NoError(t, err)
	defer c.Close()
	cu, err := c.Cursor(ctx, endless)
	require.NoError(t, err)
	require.True(t, cu.Next())
	require.NoError(t, cu.Close())
	var one int
	res, err := c.Query(ctx, "SELECT 1")
	require.NoError(t, err)
	require.NoError(t, res.One(&one))

	tx, err := c.Begin(ctx)
	require.NoError(t, err)
	cu, err = tx.Conn().Cursor(ctx, "SELECT x FROM generate_series(1, 100000) x")
	require.NoError(t, err)
	require.True(t, cu.Next())
	require.NoError(t, cu.Close())
	_, err = tx.Exec(ctx, "SELECT 1")
	require.NoError(t, err, "the transaction was not cancelled")
	require.NoError(t, tx.Commit(ctx))
}

// A call made while a cursor's rows are open says so, and closing the Conn closes the cursor
// first, so a deferred Close returns the connection to the pool.
func TestCursorLeftOpen(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		e := newEngine(t, url, "pool_size=1")
		ctx := enginetest.Context(t)
		c, err := e.Connect(ctx)
		require.NoError(t, err)
		cu, err := c.Cursor(ctx, "SELECT 1 UNION ALL SELECT 2")
		require.NoError(t, err)
		require.True(t, cu.Next())
		_, err = c.Exec(ctx, "SELECT 1")
		require.ErrorIs(t, err, asyncengine.ErrConcurrentUse)
		require.ErrorContains(t, err, "still open")
		_, err = c.Cursor(ctx, "SELECT 1")
		require.ErrorIs(t, err, asyncengine.ErrConcurrentUse)
		require.NoError(t, c.Close())
		require.False(t, cu.Next())
		require.Zero(t, e.Stats().CheckedOut, "the connection went back to the pool")
		var one int
		res, err := e.Query(ctx, "SELECT 1")
		require.NoError(t, err)
		require.NoError(t, res.One(&one))
	})
}

// cursorConn is an engine of one connection on url, the test's context, and a Conn checked out
// for the test.
func cursorConn(t *testing.T, url string) (*asyncengine.Engine, context.Context, *asyncengine.Conn) {
	t.Helper()
	e := newEngine(t, url, "pool_size=1")
	ctx := enginetest.Context(t)
	c, err := e.Connect(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return e, ctx, c
}
