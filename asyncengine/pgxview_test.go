package asyncengine_test

import (
	"context"
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

// TestPgxViewRunsSqlcCode: code written against pgx's DBTX runs on a gosqla connection and
// transaction, with pgx's types and errors.
func TestPgxViewRunsSqlcCode(t *testing.T) {
	e, rec := tracedEngine(t, enginetest.BackendURL(t, "pgx"), "")
	ctx := enginetest.Context(t)
	_, err := e.Exec(ctx, "CREATE TABLE authors (id bigserial PRIMARY KEY, name text NOT NULL, bio text)")
	require.NoError(t, err)

	c, err := e.Connect(ctx)
	require.NoError(t, err)
	defer c.Close()
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
