package asyncsession_test

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
)

// An UPDATE of a loaded object whose row another transaction deleted matches nothing: the flush
// fails with ErrStaleObject instead of succeeding without writing, and nothing of its
// transaction commits — on PostgreSQL although the COMMIT travels in the same pipeline, where
// the objects' UPDATEs go as one statement that counts the rows it matched.
func TestUpdateOfAGoneRow(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		s, a, b := twoAuthors(t, e)
		a.Name, b.Name = "a1", "b1"
		await(t, s.Commit(ctx)) // the UPDATE is prepared on the connection
		deleteAuthorRow(t, e, 1)

		before := roundTrips(e)
		a.Name, b.Name = "a2", "b2"
		_, err := s.Commit(ctx).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrStaleObject)
		if e.Dialect().Name() == "postgresql" {
			assert.Contains(t, err.Error(), `UPDATE of 2 rows of "authors" by their keys matched 1 (no row for key 1)`, "one statement, naming the gone row")
			assert.EqualValues(t, 1, roundTrips(e)-before, "the COMMIT travelled with the UPDATE")
		} else {
			assert.Contains(t, err.Error(), `UPDATE of "authors" with key 1 matched 0 rows`)
		}
		await(t, s.Rollback(ctx))
		assert.Equal(t, "b1", authorName(t, e, 2), "nothing of the transaction is committed")

		got, err := asyncsession.Get[Author](ctx, s, int64(1)).Await(ctx)
		require.NoError(t, err)
		assert.Nil(t, got, "the row is gone")
		s.Expunge(a) // its change has no row to go to
		await(t, s.Commit(ctx))
		assert.Equal(t, "b2", authorName(t, e, 2), "the change not written is written now")
	})
}

// deleteAuthorRow deletes author id's row behind the sessions' backs.
func deleteAuthorRow(t *testing.T, e *asyncengine.Engine, id int64) {
	t.Helper()
	_, err := e.Exec(enginetest.Context(t), "DELETE FROM authors WHERE id = :id", asyncengine.Named{"id": id})
	require.NoError(t, err)
}

// twoAuthors saves authors 1 "a" and 2 "b" in a new session.
func twoAuthors(t *testing.T, e *asyncengine.Engine) (*asyncsession.Session, *Author, *Author) {
	t.Helper()
	ctx := enginetest.Context(t)
	s := newSession(t, e)
	a, b := &Author{ID: 1, Name: "a"}, &Author{ID: 2, Name: "b"}
	require.NoError(t, s.Add(a, b))
	await(t, s.Commit(ctx))
	return s, a, b
}

// Seat has a key of two columns, one of them text.
type Seat struct {
	Row    string `db:"row,pk"`
	Num    int64  `db:"num,pk"`
	Holder string `db:"holder"`
}

func (Seat) TableName() string { return "seats" }

// The batch UPDATE's failure names the keys that matched no row, composite ones as rows, text
// as the server writes it (quotes and commas too).
func TestBatchUpdateNamesGoneKeys(t *testing.T) {
	ctx := enginetest.Context(t)
	e := newEngine(t, enginetest.NewDatabase(t))
	require.NoError(t, asyncsession.CreateAll(ctx, e, Seat{}))
	s := newSession(t, e)
	seats := []*Seat{{Row: `a"1, b`, Num: 1}, {Row: "b", Num: 2}, {Row: "c", Num: 3}}
	require.NoError(t, s.Add(seats[0], seats[1], seats[2]))
	await(t, s.Commit(ctx))
	_, err := e.Exec(ctx, `DELETE FROM seats WHERE num <> 2`)
	require.NoError(t, err)

	for _, st := range seats {
		st.Holder = "x"
	}
	_, err = s.Commit(ctx).Await(ctx)
	require.ErrorIs(t, err, asyncsession.ErrStaleObject)
	assert.Contains(t, err.Error(), `UPDATE of 3 rows of "seats" by their keys matched 1 (no row for key `)
	assert.Contains(t, err.Error(), `("a""1, b",1)`)
	assert.Contains(t, err.Error(), `(c,3)`)
	assert.NotContains(t, err.Error(), `(b,2)`)
	await(t, s.Rollback(ctx))
}

// A request queued after a stale UPDATE is told the session is pending rollback because of the
// stale object, not of the check's own server error (a 22P02 a caller would take for bad input).
func TestRequestAfterAStaleUpdate(t *testing.T) {
	ctx := enginetest.Context(t)
	e := newEngine(t, enginetest.NewDatabase(t))
	s, a, b := twoAuthors(t, e)
	a.Name, b.Name = "a1", "b1"
	await(t, s.Commit(ctx))
	deleteAuthorRow(t, e, 1)
	a.Name, b.Name = "a2", "b2"
	flush := s.Flush(ctx)
	after := s.Execute(ctx, "SELECT 1")
	_, err := flush.Await(ctx)
	require.ErrorIs(t, err, asyncsession.ErrStaleObject)
	_, err = after.Await(ctx)
	require.ErrorIs(t, err, asyncengine.ErrPendingRollback)
	assert.ErrorIs(t, err, asyncsession.ErrStaleObject)
	var pgErr *pgconn.PgError
	assert.False(t, errors.As(err, &pgErr), "the check's server error is not the cause: %v", err)
	await(t, s.Rollback(ctx))
}

// TestGetByCompositeKey: a key of several columns is a []any in the key's column order, each
// value converted to its field's type; another shape says how to pass it.
func TestGetByCompositeKey(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) { getByCompositeKey(t, e) })
}

func getByCompositeKey(t *testing.T, e *asyncengine.Engine) {
	ctx := enginetest.Context(t)
	require.NoError(t, asyncsession.CreateAll(ctx, e, Seat{}))
	s := newSession(t, e)
	seat := &Seat{Row: "b", Num: 2, Holder: "ann"}
	require.NoError(t, s.Add(seat))
	await(t, s.Commit(ctx))

	assert.Same(t, seat, await(t, asyncsession.Get[Seat](ctx, s, []any{"b", int64(2)})))
	assert.Same(t, seat, await(t, asyncsession.Get[Seat](ctx, s, []any{"b", 2})), "an int is converted to the key's int64")
	_, err := asyncsession.Get[Seat](ctx, s, [2]any{"b", 2}).Await(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "has a primary key of 2 columns; pass them as a []any in the key's column order")
	_, err = asyncsession.Get[Seat](ctx, s, []any{"b"}).Await(ctx)
	assert.ErrorContains(t, err, "got 1 value(s)")
}
