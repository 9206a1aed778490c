package asyncsession_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
)

// A Scan method that panics as a result is stored is that request's failure, as an error that
// does not fit is: the request gets the *asyncengine.PanicError, the transaction is pending
// rollback, and its connection stays (the pipeline was read to its end). When a COMMIT travelled
// in the same pipeline, the server ran it: Commit's error matches ErrCommitted and carries the
// panic, and the session goes on after the commit.
func TestPanicStoringResults(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		boomRow(t, e)
		s := newSession(t, e)
		var pe *asyncengine.PanicError

		// in a transaction: pending rollback, nothing committed
		require.NoError(t, s.Add(&Author{ID: 1, Name: "a"}))
		_, err := asyncsession.Select[Boom](ctx, s, "SELECT * FROM booms").Await(ctx)
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, "boom", pe.Value)
		_, err = s.Commit(ctx).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrPendingRollback)
		await(t, s.Rollback(ctx))
		assert.Zero(t, count(t, e, "authors"))

		// with the COMMIT in the same pipeline: committed, and said so
		require.NoError(t, s.Add(&Author{ID: 2, Name: "b"}))
		await(t, s.Flush(ctx))
		release := holdSession(t, s)
		sel := asyncsession.Select[Boom](ctx, s, "SELECT * FROM booms")
		commit := s.Commit(ctx)
		release()
		_, err = sel.Await(ctx)
		require.ErrorAs(t, err, &pe)
		_, err = commit.Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrCommitted)
		require.ErrorAs(t, err, &pe)
		assert.False(t, errors.Is(err, asyncsession.ErrPendingRollback))
		assert.EqualValues(t, 1, count(t, e, "authors"))

		// storing a flush's returned values (applied as read on PostgreSQL): the COMMIT waited
		_, err = e.Exec(ctx, "CREATE TABLE boom_defaults (id bigint PRIMARY KEY, v bigint DEFAULT 7)")
		require.NoError(t, err)
		require.NoError(t, s.Add(&BoomDefault{ID: 1}, &BoomDefault{ID: 2}))
		_, err = s.Commit(ctx).Await(ctx)
		require.ErrorAs(t, err, &pe)
		assert.False(t, errors.Is(err, asyncsession.ErrCommitted))
		await(t, s.Rollback(ctx))
		assert.Zero(t, count(t, e, "boom_defaults"))

		// the session goes on
		require.NoError(t, s.Add(&Author{ID: 3, Name: "c"}))
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 2, count(t, e, "authors"))
	})
}

type BoomDefault struct {
	ID int64  `db:"id,pk"`
	V  boomer `db:"v,default"`
}

func (BoomDefault) TableName() string { return "boom_defaults" }
