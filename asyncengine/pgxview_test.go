package asyncengine_test

import (
	"context"
	"errors"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// queries is what sqlc's pgx/v5 output generates: a struct over a DBTX.
type queries struct{ db asyncengine.DBTX }

type author struct {
	ID   int64
	Name string
	Bio  pgtype.Text
}

func (q queries) createAuthor(ctx context.Context, name string, bio *string) (author, error) {
	var a author
	err := q.db.QueryRow(ctx, "INSERT INTO authors (name, bio) VALUES ($1, $2) RETURNING id, name, bio", name, bio).Scan(&a.ID, &a.Name, &a.Bio)
	return a, err
}

func (q queries) listAuthors(ctx context.Context) ([]author, error) {
	rows, err := q.db.Query(ctx, "SELECT id, name, bio FROM authors ORDER BY id")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[author])
}

func (q queries) deleteAuthors(ctx context.Context) (pgconn.CommandTag, error) {
	return q.db.Exec(ctx, "DELETE FROM authors")
}

// authorsConn is a connection of a traced engine on url (the native driver's), on a database
// with an empty authors table.
func authorsConn(t *testing.T, url string) (*asyncengine.Conn, *recorder) {
	e, rec := tracedEngine(t, url, "")
	ctx := enginetest.Context(t)
	_, err := e.Exec(ctx, "CREATE TABLE authors (id bigserial PRIMARY KEY, name text NOT NULL, bio text)")
	require.NoError(t, err)
	c, err := e.Connect(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c, rec
}

// TestPgxViewRunsSqlcCode: code written against pgx's DBTX runs on a gosqla connection and
// transaction, with pgx's types and errors.
func TestPgxViewRunsSqlcCode(t *testing.T) {
	c, rec := authorsConn(t, enginetest.BackendURL(t, "pgx"))
	ctx := enginetest.Context(t)
	q := queries{c.Pgx()}
	bio := "wrote things"
	a, err := q.createAuthor(ctx, "Ann", &bio)
	require.NoError(t, err)
	assert.Equal(t, author{ID: 1, Name: "Ann", Bio: pgtype.Text{String: bio, Valid: true}}, a)

	tx, err := c.Begin(ctx)
	require.NoError(t, err)
	qtx := queries{tx.Pgx()}
	_, err = qtx.createAuthor(ctx, "Bob", nil)
	require.NoError(t, err)
	list, err := qtx.listAuthors(ctx)
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.False(t, list[1].Bio.Valid, "NULL stays NULL")
	require.NoError(t, tx.Rollback(ctx))
	_, err = qtx.listAuthors(ctx)
	require.ErrorIs(t, err, asyncengine.ErrTxDone)

	list, err = q.listAuthors(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1, "the rolled-back insert is gone")

	var none int
	err = c.Pgx().QueryRow(ctx, "SELECT 1 WHERE false").Scan(&none)
	require.ErrorIs(t, err, pgx.ErrNoRows)
	err = c.Pgx().QueryRow(ctx, "SELECT * FROM nowhere").Scan(&none)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "42P01", pgErr.Code)

	rows, err := c.Pgx().Query(ctx, "SELECT 1::int, 'x'::text, NULL::int")
	require.NoError(t, err)
	require.True(t, rows.Next())
	vals, err := rows.Values()
	require.NoError(t, err)
	assert.Equal(t, []any{int32(1), "x", nil}, vals)
	rows.Close()

	tag, err := q.deleteAuthors(ctx)
	require.NoError(t, err)
	assert.Equal(t, "DELETE 1", tag.String())

	rec.take()
	_, err = c.Pgx().Exec(ctx, "SELECT $1::int", 5)
	require.NoError(t, err)
	assert.Equal(t, []string{"query start SELECT $1::int args=[]", "query end ok"}, rec.take(), "the pgx view is traced")
}

// TestPgxViewNeedsNativeDriver: stdlib and SQLite engines say clearly that the view needs pgx.
func TestPgxViewNeedsNativeDriver(t *testing.T) {
	for _, name := range []string{"stdlib", "sqlite"} {
		t.Run(name, func(t *testing.T) {
			e := newEngine(t, enginetest.BackendURL(t, name), "")
			ctx := enginetest.Context(t)
			c, err := e.Connect(ctx)
			require.NoError(t, err)
			defer c.Close()
			_, err = c.Pgx().Exec(ctx, "SELECT 1")
			require.ErrorIs(t, err, asyncengine.ErrNotPgx)
			var n int
			require.ErrorIs(t, c.Pgx().QueryRow(ctx, "SELECT 1").Scan(&n), asyncengine.ErrNotPgx)
			_, err = c.Exec(ctx, "SELECT 1")
			require.NoError(t, err, "the connection is still usable")
		})
	}
}

// sqlc's :copyfrom and :batch queries: CopyFrom and SendBatch on the view, on a connection and in
// a transaction, traced as COPY and as a pipeline; a failing query of a batch is reported at its
// place, and a batch that would begin a transaction is refused.
func TestPgxViewCopyFromAndSendBatch(t *testing.T) {
	c, rec := authorsConn(t, enginetest.BackendURL(t, "pgx"))
	ctx := enginetest.Context(t)
	rec.take()

	var view asyncengine.DBTX = c.Pgx()
	n, err := view.CopyFrom(ctx, pgx.Identifier{"authors"}, []string{"name", "bio"}, pgx.CopyFromRows([][]any{{"Ann", "a"}, {"Bo", nil}}))
	require.NoError(t, err)
	require.Equal(t, int64(2), n)
	assert.Equal(t, []string{"copy start \"authors\" [name bio]", "copy end 2 rows ok"}, rec.take())

	b := &pgx.Batch{}
	b.Queue("INSERT INTO authors (name) VALUES ($1)", "Cy")
	b.Queue("SELECT name FROM authors ORDER BY id")
	b.Queue("SELECT count(*) FROM authors WHERE bio IS NULL")
	var viaCallback int64
	b.Queue("SELECT max(id) FROM authors").QueryRow(func(row pgx.Row) error { return row.Scan(&viaCallback) })
	br := view.SendBatch(ctx, b)
	tag, err := br.Exec()
	require.NoError(t, err)
	require.Equal(t, int64(1), tag.RowsAffected())
	rows, err := br.Query()
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"Ann", "Bo", "Cy"}, names)
	var nulls int64
	require.NoError(t, br.QueryRow().Scan(&nulls))
	require.Equal(t, int64(2), nulls)
	require.Nil(t, br.Tx())
	require.NoError(t, br.Close())
	require.Equal(t, int64(3), viaCallback, "Close ran the callback of the result not read")
	assert.Equal(t, []string{"pipeline start 4 statements, 0 args", "pipeline end 4 results ok"}, rec.take())

	// in a transaction; the second query fails and is reported at its place
	tx, err := c.Begin(ctx)
	require.NoError(t, err)
	b = &pgx.Batch{}
	b.Queue("INSERT INTO authors (name) VALUES ('Di')")
	b.Queue("SELECT 1/0")
	b.Queue("SELECT 1")
	br = tx.Pgx().SendBatch(ctx, b)
	_, err = br.Exec()
	require.NoError(t, err)
	_, err = br.Exec()
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "22012", pgErr.Code)
	require.Error(t, br.Close())
	rec.take()
	require.NoError(t, tx.Rollback(ctx))
	var count int64
	require.NoError(t, c.Pgx().QueryRow(ctx, "SELECT count(*) FROM authors").Scan(&count))
	require.Equal(t, int64(3), count, "the transaction's insert was rolled back")
	_, err = tx.Pgx().SendBatch(ctx, &pgx.Batch{}).Exec()
	require.ErrorIs(t, err, asyncengine.ErrTxDone)

	b = &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	b.Queue("SELECT 1")
	require.ErrorContains(t, c.Pgx().SendBatch(ctx, b).Close(), "begins a transaction")
}

// failingSource yields rows rows and then fails.
type failingSource struct {
	rows int
	err  error
}

func (s *failingSource) Next() bool             { s.rows--; return s.rows >= 0 }
func (s *failingSource) Values() ([]any, error) { return []any{"x", nil}, nil }
func (s *failingSource) Err() error {
	if s.rows < 0 {
		return s.err
	}
	return nil
}

// A CopyFrom on the view whose source fails loads nothing, returns the server's answer to the
// failed COPY (which names the source's error) and is traced with it; the connection goes on, and in a transaction the failure asks for a rollback.
func TestPgxViewCopyFromFailingSource(t *testing.T) {
	c, rec := authorsConn(t, enginetest.BackendURL(t, "pgx"))
	ctx := enginetest.Context(t)
	rec.take()
	boom := errors.New("source broke")
	_, err := c.Pgx().CopyFrom(ctx, pgx.Identifier{"authors"}, []string{"name", "bio"}, &failingSource{rows: 3, err: boom})
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr, "the server's answer to the failed COPY, as on a pgx connection")
	require.ErrorContains(t, err, "source broke")
	trace := rec.take()
	require.Len(t, trace, 2)
	assert.Equal(t, "copy start \"authors\" [name bio]", trace[0])
	assert.Equal(t, "copy end 0 rows error", trace[1])
	var count int64
	require.NoError(t, c.Pgx().QueryRow(ctx, "SELECT count(*) FROM authors").Scan(&count), "the connection goes on")
	assert.Zero(t, count, "nothing was loaded")

	tx, err := c.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Pgx().CopyFrom(ctx, pgx.Identifier{"authors"}, []string{"name", "bio"}, &failingSource{rows: 3, err: boom})
	require.ErrorContains(t, err, "source broke")
	_, err = tx.Exec(ctx, "SELECT 1")
	require.ErrorIs(t, err, asyncengine.ErrPendingRollback)
	require.NoError(t, tx.Rollback(ctx))
	require.NoError(t, c.Pgx().QueryRow(ctx, "SELECT count(*) FROM authors").Scan(&count))
	assert.Zero(t, count)
}

// A batch sent on a connection the server dropped fails at its first query, every result says
// so, the connection is invalidated, and the Conn's next call runs on a fresh one.
func TestPgxViewSendBatchLostConnection(t *testing.T) {
	url := enginetest.BackendURL(t, "pgx")
	c, rec := authorsConn(t, url)
	ctx := enginetest.Context(t)
	before := c.ID()
	enginetest.Shared(t).TerminateBackends(t, url)
	rec.take()

	b := &pgx.Batch{}
	b.Queue("INSERT INTO authors (name) VALUES ('Ann')")
	b.Queue("SELECT 1")
	br := c.Pgx().SendBatch(ctx, b)
	_, err := br.Exec()
	require.Error(t, err)
	trace := rec.take()
	require.Len(t, trace, 2)
	assert.Equal(t, "pipeline start 2 statements, 0 args", trace[0])
	assert.Equal(t, "pipeline end 0 results error", trace[1])
	assert.GreaterOrEqual(t, c.Engine().Stats().Invalidations, int64(1))

	var one int
	require.NoError(t, c.Pgx().QueryRow(ctx, "SELECT 1").Scan(&one), "the Conn reconnects")
	assert.NotEqual(t, before, c.ID())
}
