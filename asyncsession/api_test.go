package asyncsession_test

import (
	"context"
	"errors"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMergeRefreshExpunge(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		a := &Author{ID: 1, Name: "stored"}
		require.NoError(t, s.Add(a))
		await(t, s.Commit(ctx))

		detached := &Author{ID: 1, Name: "merged"}
		got := await(t, asyncsession.Merge(ctx, s, detached))
		assert.Same(t, a, got, "Merge copies onto the session's object")
		assert.False(t, s.Contains(detached))
		fresh := await(t, asyncsession.Merge(ctx, s, &Author{ID: 2, Name: "new"}))
		assert.True(t, s.Contains(fresh))
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 2, count(t, e, "authors"))
		r := await(t, s.Execute(ctx, "SELECT name FROM authors WHERE id = 1"))
		name, _ := r.Scalar()
		assert.Equal(t, "merged", name)

		a2 := await(t, asyncsession.Get[Author](ctx, s, 1))
		a2.Name = "local change"
		await(t, s.Refresh(ctx, a2))
		assert.Equal(t, "merged", a2.Name, "Refresh discards unflushed changes")

		s.Expunge(a2)
		assert.False(t, s.Contains(a2))
		a3 := await(t, asyncsession.Get[Author](ctx, s, 1))
		assert.NotSame(t, a2, a3, "an expunged object is no longer the session's")
		_, err := s.Refresh(ctx, a2).Await(ctx)
		assert.Error(t, err)
	})
}

func TestExecuteErrorsAreTyped(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		_, err := s.Execute(ctx, "SELECT :missing", asyncengine.Named{}).Await(ctx)
		require.ErrorIs(t, err, asyncengine.ErrInvalidArgument)
		_, err = asyncsession.Select[Author](ctx, s, "SELECT * FROM authors WHERE id = ?").Await(ctx)
		if e.Dialect().Name() == "sqlite" {
			require.ErrorIs(t, err, asyncengine.ErrInvalidArgument)
		} else {
			// PostgreSQL has no ? placeholder: refused before sending, or a syntax error
			require.Error(t, err)
			if !errors.Is(err, asyncengine.ErrInvalidArgument) {
				assert.Contains(t, err.Error(), "42601", "a syntax error at the ?")
			}
			await(t, s.Rollback(ctx))
		}
		_, err = s.Execute(ctx, "SELECT * FROM nowhere").Await(ctx)
		require.Error(t, err)
		await(t, s.Rollback(ctx))
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err = asyncsession.Get[Author](cctx, s, 1).Await(ctx)
		require.True(t, errors.Is(err, context.Canceled))
	})
}
