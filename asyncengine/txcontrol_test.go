package asyncengine_test

import (
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// Inside a Tx, a statement that would begin or end the transaction behind the Tx's back is
// refused before it is sent, through every way of sending one; savepoint statements and plain
// statements run.
func TestTxControlStatementsRefused(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		e := newEngine(t, url, "")
		ctx := enginetest.Context(t)
		_, err := e.Exec(ctx, "CREATE TABLE marks (n int)")
		require.NoError(t, err)
		c, err := e.Connect(ctx)
		require.NoError(t, err)
		defer c.Close()
		tx, err := c.Begin(ctx)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, "INSERT INTO marks VALUES (1)")
		require.NoError(t, err)
		for _, sql := range []string{"COMMIT", " commit;", "END", "ROLLBACK", "rollback work", "ABORT", "BEGIN", "START TRANSACTION",
			"/* a note */ COMMIT", "-- a note\ncommit", "ROLLBACK TRANSACTION"} {
			_, err = tx.Exec(ctx, sql)
			require.ErrorIs(t, err, asyncengine.ErrInvalidArgument, sql)
			require.ErrorContains(t, err, "Tx.Commit or Tx.Rollback", sql)
			_, err = c.Query(ctx, sql)
			require.ErrorIs(t, err, asyncengine.ErrInvalidArgument, sql)
			_, err = c.Pipeline(ctx, []asyncengine.Statement{{SQL: "SELECT 1"}, {SQL: sql}})
			require.ErrorIs(t, err, asyncengine.ErrInvalidArgument, sql)
			_, err = c.Cursor(ctx, sql)
			require.ErrorIs(t, err, asyncengine.ErrInvalidArgument, sql)
		}
		rollbacksTo := []string{"ROLLBACK TO SAVEPOINT s1", "ROLLBACK TRANSACTION TO s1"}
		if url[:6] != "sqlite" {
			rollbacksTo = append(rollbacksTo, "rollback work to savepoint s1") // SQLite has no WORK
		}
		for _, sql := range rollbacksTo {
			_, err = tx.Exec(ctx, "SAVEPOINT s1")
			require.NoError(t, err)
			_, err = tx.Exec(ctx, sql)
			require.NoError(t, err, sql)
		}
		if url[:6] != "sqlite" && url[:19] != "postgresql+stdlib:/" {
			_, err = tx.Pgx().Exec(ctx, "COMMIT")
			require.ErrorIs(t, err, asyncengine.ErrInvalidArgument)
			b := &pgx.Batch{}
			b.Queue("SELECT 1")
			b.Queue("COMMIT")
			require.ErrorIs(t, tx.Pgx().SendBatch(ctx, b).Close(), asyncengine.ErrInvalidArgument)
		}
		require.NoError(t, tx.Rollback(ctx))
		var n int64
		res, err := c.Query(ctx, "SELECT count(*) FROM marks")
		require.NoError(t, err)
		require.NoError(t, res.One(&n))
		require.Zero(t, n, "the rollback undid the insert: nothing committed behind its back")
		_, err = c.Exec(ctx, "BEGIN") // outside a Tx, the statement is the caller's business
		require.NoError(t, err)
		_, err = c.Exec(ctx, "ROLLBACK")
		require.NoError(t, err)
	})
}
