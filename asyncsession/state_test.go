package asyncsession_test

import (
	"errors"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func authorName(t *testing.T, e *asyncengine.Engine, id int64) string {
	t.Helper()
	r, err := e.Query(enginetest.Context(t), "SELECT name FROM authors WHERE id = :id", asyncengine.Named{"id": id})
	require.NoError(t, err)
	var name string
	require.NoError(t, r.One(&name))
	return name
}

// A change made to an expired object (after Commit or Rollback) is written by the next flush, and
// a reload of the expired object keeps it.
func TestExpiredObjectChangesAreFlushed(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		a := &Author{Name: "a"}
		require.NoError(t, s.Add(a))
		await(t, s.Commit(ctx))
		require.True(t, s.IsExpired(a))
		a.Name = "after commit"
		await(t, s.Commit(ctx))
		assert.Equal(t, "after commit", authorName(t, e, a.ID), "a change after Commit is written")

		await(t, s.Rollback(ctx))
		a.Name = "after rollback"
		await(t, s.Flush(ctx))
		await(t, s.Commit(ctx))
		assert.Equal(t, "after rollback", authorName(t, e, a.ID), "a change after Rollback is written, through an explicit Flush")

		// an expired object reloaded by Get keeps the fields changed since its last flush
		_, err := e.Exec(ctx, "UPDATE authors SET email = 'x@y' WHERE id = :id", asyncengine.Named{"id": a.ID})
		require.NoError(t, err)
		a.Name = "edited while expired"
		g := await(t, asyncsession.Get[Author](ctx, s, a.ID))
		require.Same(t, a, g)
		assert.Equal(t, "edited while expired", a.Name, "the reload keeps the caller's change")
		require.NotNil(t, a.Email)
		assert.Equal(t, "x@y", *a.Email, "and loads the rest")
		await(t, s.Commit(ctx))
		assert.Equal(t, "edited while expired", authorName(t, e, a.ID))
	})
}

// A Delete flushed and then rolled back is undone: the object is back in the session (expired),
// Get returns it, and a change to it is written.
func TestRollbackRestoresFlushedDelete(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		a := &Author{Name: "a"}
		require.NoError(t, s.Add(a))
		await(t, s.Commit(ctx))
		b := await(t, asyncsession.Get[Author](ctx, s, a.ID))
		require.NoError(t, s.Delete(b))
		await(t, s.Flush(ctx))
		assert.Nil(t, await(t, asyncsession.Get[Author](ctx, s, a.ID)), "deleted in the transaction")
		await(t, s.Rollback(ctx))
		require.True(t, s.Contains(b), "Rollback restores the deleted object")
		assert.True(t, s.IsExpired(b))
		assert.Same(t, b, await(t, asyncsession.Get[Author](ctx, s, a.ID)), "one object per key")
		b.Name = "kept"
		await(t, s.Commit(ctx))
		assert.Equal(t, "kept", authorName(t, e, a.ID))

		// inside a savepoint
		require.NoError(t, s.Delete(b))
		sp := await(t, s.BeginNested(ctx))
		c := &Author{Name: "c"}
		require.NoError(t, s.Add(c))
		await(t, s.Flush(ctx))
		require.NoError(t, s.Delete(c))
		await(t, s.Flush(ctx))
		await(t, sp.Rollback(ctx))
		assert.False(t, s.Contains(b), "deleted before the savepoint: stays deleted")
		assert.False(t, s.Contains(c), "inserted and deleted inside the savepoint: gone")
		await(t, s.Commit(ctx))
		assert.Zero(t, count(t, e, "authors"))
	})
}

// Rolling back a savepoint keeps the objects inserted before it, whose changes are written.
func TestSavepointRollbackKeepsEarlierInserts(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		k := &Author{Name: "k"}
		require.NoError(t, s.Add(k))
		sp := await(t, s.BeginNested(ctx)) // its flush inserts k before the SAVEPOINT
		later := &Author{Name: "later"}
		require.NoError(t, s.Add(later))
		await(t, s.Flush(ctx))
		await(t, sp.Rollback(ctx))
		assert.True(t, s.Contains(k), "inserted before the savepoint")
		assert.False(t, s.Contains(later), "inserted inside it")
		k.Name = "k2"
		await(t, s.Commit(ctx))
		assert.Equal(t, "k2", authorName(t, e, k.ID))
		assert.EqualValues(t, 1, count(t, e, "authors"))
	})
}

// Narrow reads a server default back into a field too small for it.
type Narrow struct {
	ID  int64 `db:"id,pk,default"`
	Qty int8  `db:"qty,default"`
}

func (Narrow) TableName() string { return "narrow" }

func createNarrow(t *testing.T, e *asyncengine.Engine) {
	t.Helper()
	ddl := "CREATE TABLE narrow (id bigserial PRIMARY KEY, qty int4 DEFAULT 300)"
	if e.Dialect().Name() == "sqlite" {
		ddl = "CREATE TABLE narrow (id INTEGER PRIMARY KEY, qty INTEGER DEFAULT 300)"
	}
	_, err := e.Exec(enginetest.Context(t), ddl)
	require.NoError(t, err)
}

// A RETURNING row that cannot be stored in its object fails the request that planned the flush,
// leaves the session pending rollback, and is never committed, even by a Commit sent with it.
func TestFlushReadBackFailureIsNeverCommitted(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		createNarrow(t, e)
		var convErr *asyncengine.ConvertError

		s := newSession(t, e)
		require.NoError(t, s.Add(&Narrow{}))
		_, err := s.Flush(ctx).Await(ctx)
		require.ErrorAs(t, err, &convErr, "the Flush that planned the INSERT gets the failure")
		_, err = s.Commit(ctx).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrPendingRollback)
		await(t, s.Rollback(ctx))
		assert.Zero(t, count(t, e, "narrow"))

		// Flush, Execute and Commit in one pipeline
		require.NoError(t, s.Add(&Narrow{}))
		ff := s.Flush(ctx)
		fe := s.Execute(ctx, "SELECT 1")
		fc := s.Commit(ctx)
		_, err = ff.Await(ctx)
		require.ErrorAs(t, err, &convErr)
		_, err = fe.Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrPendingRollback, "a request after the failure in the same pipeline")
		_, err = fc.Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrPendingRollback)
		assert.False(t, errors.Is(err, asyncsession.ErrCommitted))
		await(t, s.Rollback(ctx))
		assert.Zero(t, count(t, e, "narrow"))

		// the Commit that planned the flush
		require.NoError(t, s.Add(&Narrow{}))
		_, err = s.Commit(ctx).Await(ctx)
		require.ErrorAs(t, err, &convErr)
		assert.False(t, errors.Is(err, asyncsession.ErrCommitted))
		await(t, s.Rollback(ctx))
		assert.Zero(t, count(t, e, "narrow"), "a write the caller was told failed is never committed")

		// a value that fits commits as before
		n := &Narrow{Qty: 7}
		require.NoError(t, s.Add(n))
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 1, count(t, e, "narrow"))
	})
}

// A Select that fails on one row changes no object of the identity map.
func TestFailedSelectRefreshesNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		_, err := e.Exec(ctx, "CREATE TABLE gauges (id bigint PRIMARY KEY, v bigint)")
		require.NoError(t, err)
		_, err = e.Exec(ctx, "INSERT INTO gauges (id, v) VALUES (1, 5)")
		require.NoError(t, err)
		s := newSession(t, e)
		g := await(t, asyncsession.Get[Gauge](ctx, s, int64(1)))
		await(t, s.Commit(ctx)) // expires g
		_, err = e.Exec(ctx, "UPDATE gauges SET v = 6 WHERE id = 1")
		require.NoError(t, err)
		_, err = e.Exec(ctx, "INSERT INTO gauges (id, v) VALUES (2, 1000)")
		require.NoError(t, err)
		for name, sel := range map[string]func() error{
			"Select": func() error {
				_, err := asyncsession.Select[Gauge](ctx, s, "SELECT * FROM gauges ORDER BY id").Await(ctx)
				return err
			},
			"From": func() error {
				_, err := asyncsession.From[Gauge](s).OrderBy("id").All(ctx).Await(ctx)
				return err
			},
		} {
			require.ErrorContains(t, sel(), "out of range", name)
			assert.EqualValues(t, 5, g.V, "%s: the row that fitted was not stored either", name)
			assert.True(t, s.IsExpired(g), name)
			await(t, s.Rollback(ctx))
		}
	})
}
