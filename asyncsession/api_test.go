package asyncsession_test

import (
	"context"
	"errors"
	"testing"

	"fmt"
	"strings"
	"time"

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

func TestNilObjectsAreRejected(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		require.ErrorIs(t, s.Add((*Author)(nil)), asyncsession.ErrNilObject)
		err := s.Add(nil)
		require.ErrorIs(t, err, asyncsession.ErrNilObject)
		assert.Contains(t, err.Error(), "got nil; pass a pointer to an object")
		require.ErrorIs(t, s.Add(&Author{ID: 1, Name: "ok"}, (*Book)(nil)), asyncsession.ErrNilObject)
		require.ErrorIs(t, s.Delete((*Author)(nil)), asyncsession.ErrNilObject)
		_, err = asyncsession.Merge[Author](ctx, s, nil).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrNilObject)
		_, err = s.Refresh(ctx, (*Author)(nil)).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrNilObject)
		_, err = asyncsession.Upsert(ctx, s, []*Author{{ID: 2, Name: "b"}, nil}).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrNilObject)
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 1, count(t, e, "authors"), "the valid object added before the nil one is kept")

		_, err = asyncsession.InsertMany(ctx, s, []*Author{{ID: 3, Name: "c"}, nil}).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrNilObject)
		await(t, s.Rollback(ctx))
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 1, count(t, e, "authors"))
	})
}

func TestArgumentsRejectedBeforeSending(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		_, err := s.Execute(ctx, "SELECT name FROM authors WHERE id = :id").Await(ctx)
		var ae *asyncengine.ArgumentError
		require.ErrorAs(t, err, &ae)
		assert.Equal(t, "id", ae.Missing)
		assert.ErrorIs(t, err, asyncengine.ErrInvalidArgument)
		assert.Contains(t, err.Error(), "Named")

		_, err = asyncsession.Select[Author](ctx, s, "SELECT * FROM authors WHERE id = :id", map[string]any{"id": 1}).Await(ctx)
		require.ErrorAs(t, err, &ae)
		assert.Contains(t, err.Error(), "asyncengine.Named")
		assert.NotContains(t, err.Error(), "placeholder(s)")

		// nothing was sent: the session is as usable as before
		require.NoError(t, s.Add(&Author{ID: 1, Name: "a"}))
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 1, count(t, e, "authors"))

		_, err = asyncsession.Get[Author](ctx, s, "one").Await(ctx)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "Author")
		assert.Contains(t, err.Error(), "id int64")
	})
}

func TestSelectLoadsOnlyWholeObjects(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		_, err := e.Exec(ctx, "INSERT INTO authors (id, name, email) VALUES (1, 'a', 'a@x')")
		require.NoError(t, err)
		s := newSession(t, e)
		_, err = asyncsession.Select[Author](ctx, s, "SELECT id, name FROM authors").Await(ctx)
		var me *asyncsession.MappingError
		require.ErrorAs(t, err, &me)
		assert.Contains(t, err.Error(), "email")
		await(t, s.Rollback(ctx))

		_, err = asyncsession.Select[Author](ctx, s, "SELECT id, name, email, 1 AS extra FROM authors").Await(ctx)
		require.ErrorAs(t, err, &me)
		assert.Contains(t, err.Error(), "extra")
		await(t, s.Rollback(ctx))

		a := await(t, asyncsession.Get[Author](ctx, s, 1))
		require.NotNil(t, a)
		require.NotNil(t, a.Email, "no half-loaded object was left in the identity map")
		assert.Equal(t, "a@x", *a.Email)
	})
}

func TestSessionRunSyncReleasesAfterItsFunction(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		inner := make(chan error, 1)
		f := s.RunSync(short, func(_ context.Context, c *asyncengine.Conn) error {
			<-short.Done() // outlives its caller's context
			_, err := c.Exec(context.Background(), "INSERT INTO authors (id, name) VALUES (1, 'sync')")
			inner <- err
			return err
		})
		_, _ = f.Await(short)
		await(t, s.Commit(ctx))
		require.NoError(t, <-inner, "the connection stayed the function's until it returned")
		assert.EqualValues(t, 1, count(t, e, "authors"))
	})
}

func TestErrorsNameWhatToFix(t *testing.T) {
	err := fmt.Errorf("x: %w", asyncsession.ErrNilObject)
	assert.True(t, errors.Is(err, asyncsession.ErrNilObject))
	assert.True(t, strings.Contains(asyncsession.ErrNilObject.Error(), "nil"))
}

func TestExecuteRunsOneStatementPerCall(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		for _, sql := range []string{"SAVEPOINT x; DROP TABLE books", "SELECT 1; DROP TABLE books", "SELECT 1; -- c\n DROP TABLE books"} {
			_, err := s.Execute(ctx, sql).Await(ctx)
			var ae *asyncengine.ArgumentError
			require.ErrorAs(t, err, &ae, sql)
			assert.Contains(t, err.Error(), "one per call")
		}
		_, err := asyncsession.Select[Author](ctx, s, "SELECT * FROM authors; DROP TABLE books").Await(ctx)
		require.ErrorIs(t, err, asyncengine.ErrInvalidArgument)
		await(t, s.Execute(ctx, "SELECT ';' AS a; -- a trailing semicolon and comment are one statement"))
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 0, count(t, e, "books"), "the table is still there")
	})
}

// An engine RunSync nested in the session's RunSync runs inline with the session's connection,
// inside its transaction, even when the pool has nothing left.
func TestNestedRunSyncInSessionRunSync(t *testing.T) {
	url := enginetest.NewDatabase(t)
	e := newEngine(t, url+"&pool_size=1&max_overflow=0&workers=1")
	ctx := enginetest.Context(t)
	s := newSession(t, e)
	require.NoError(t, s.Add(&Author{ID: 1, Name: "a"}))
	wait, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err := s.RunSync(wait, func(ctx context.Context, c *asyncengine.Conn) error {
		n, err := asyncengine.RunSync(ctx, e, func(ctx context.Context, inner *asyncengine.Conn) (int64, error) {
			r, err := inner.Query(ctx, "SELECT count(*) FROM authors")
			if err != nil {
				return 0, err
			}
			var n int64
			return n, r.One(&n)
		}).Await(ctx)
		if n != 1 {
			return fmt.Errorf("the nested call saw %d authors, not the session's flushed one", n)
		}
		return err
	}).Await(wait)
	require.NoError(t, err)
}

// An empty statement reaches the database as the engine sends it, and answers the empty result
// Engine.Query gives it, on every backend.
func TestExecuteEmptyStatement(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		ctx := enginetest.Context(t)
		e, err := asyncengine.New(url)
		require.NoError(t, err)
		t.Cleanup(func() { e.Close() })
		s := newSession(t, e)
		r := await(t, s.Execute(ctx, ""))
		assert.Empty(t, r.Rows())
		want, err := e.Query(ctx, "")
		require.NoError(t, err)
		assert.Equal(t, want.Columns(), r.Columns())
		await(t, s.Commit(ctx))
	})
}

// A Refresh whose row is gone fails alone: the transaction it read in goes on and commits what
// the session wrote before and after it.
func TestRefreshOfAGoneRow(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		s, a, b := twoAuthors(t, e)
		deleteAuthorRow(t, e, 1)

		b.Name = "b1"
		await(t, s.Flush(ctx))
		_, err := s.Refresh(ctx, a).Await(ctx)
		require.ErrorIs(t, err, asyncengine.ErrNoRows)
		assert.Contains(t, err.Error(), "with key 1 no longer exists")
		assert.True(t, s.Contains(a), "the object stays until expunged")

		s.Expunge(a)
		require.NoError(t, s.Add(&Author{ID: 3, Name: "c"}))
		await(t, s.Commit(ctx))
		assert.Equal(t, "b1", authorName(t, e, 2), "the flush before the Refresh committed")
		assert.Equal(t, "c", authorName(t, e, 3), "and the write after it")
	})
}
