package asyncsession_test

import (
	"context"
	"testing"
	"time"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/stretchr/testify/require"
)

// A conflict in the first attempt runs fn again on a new session, whose identity map does not
// hold the first attempt's objects; the work is committed once.
func TestMakerBeginRetry(t *testing.T) {
	t.Parallel()
	e := newEngine(t, enginetest.NewDatabase(t))
	ctx := enginetest.Context(t)
	m := asyncsession.NewMaker(e)
	var sessions []*asyncsession.Session
	var retried int
	p := asyncengine.RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond, OnRetry: func(int, error) { retried++ }}
	err := m.BeginRetry(ctx, p, func(s *asyncsession.Session) error {
		sessions = append(sessions, s)
		if err := s.Add(&Author{ID: 1, Name: "once"}); err != nil {
			return err
		}
		if len(sessions) == 1 {
			_, err := s.Execute(ctx, `DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$`).Await(ctx)
			return err
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, 1, retried)
	require.Len(t, sessions, 2)
	require.NotSame(t, sessions[0], sessions[1])
	require.EqualValues(t, 1, count(t, e, "authors"))

	// the application's error is not retried
	sessions = nil
	err = m.BeginRetry(ctx, p, func(s *asyncsession.Session) error {
		sessions = append(sessions, s)
		return s.Add(&Author{ID: 1, Name: "duplicate"}) // fails at flush: a unique violation
	})
	require.Error(t, err)
	require.Len(t, sessions, 1)
}

// A Commit whose context ends while its pipeline, COMMIT included, is in flight cannot know
// whether the server committed: it says so with a *CommitUnknownError, the context's error
// reachable.
func TestCommitCutOffInFlightIsUnknown(t *testing.T) {
	t.Parallel()
	e := newEngine(t, enginetest.NewDatabase(t))
	ctx := enginetest.Context(t)
	_, err := e.Exec(ctx, `CREATE FUNCTION slow_author() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_sleep(2); RETURN NEW; END $$`)
	require.NoError(t, err)
	_, err = e.Exec(ctx, "CREATE TRIGGER slow_author BEFORE INSERT ON authors FOR EACH ROW EXECUTE FUNCTION slow_author()")
	require.NoError(t, err)

	s := newSession(t, e)
	require.NoError(t, s.Add(&Author{ID: 1, Name: "late"}))
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	f := s.Commit(short)
	// the wait that the same context ends: the outcome is not known yet, and the error says so
	_, err = f.Await(short)
	require.ErrorIs(t, err, asyncengine.ErrCommitUnknown)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	// the session's own classification, once it has it
	_, err = f.Await(ctx)
	require.ErrorIs(t, err, asyncengine.ErrCommitUnknown)
	var unknown *asyncengine.CommitUnknownError
	require.ErrorAs(t, err, &unknown)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	await(t, s.Rollback(ctx))
}
