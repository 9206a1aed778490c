package asyncsession

import (
	"context"

	"github.com/gosqla/gosqla/asyncengine"
)

// BeginRetry is Begin retried under policy p (see asyncengine.RetryPolicy): an attempt that
// failed with a serialization failure, a deadlock, or a connection lost before COMMIT was sent
// runs again with a new session — an empty identity map, so nothing read in the failed attempt
// is reused. fn must have no effect outside the database that a second run would repeat. A
// COMMIT whose outcome is unknown is a *asyncengine.CommitUnknownError, never retried.
func (m *Maker) BeginRetry(ctx context.Context, p asyncengine.RetryPolicy, fn func(s *Session) error) error {
	return m.e.Retry(ctx, p, func(ctx context.Context) error {
		committing := false
		err := m.Begin(ctx, func(s *Session) error {
			if err := fn(s); err != nil {
				return err
			}
			// flushed here, the statements' errors are told apart from COMMIT's
			if _, err := s.Flush(ctx).Await(ctx); err != nil {
				return err
			}
			committing = true
			return nil
		})
		if err != nil && committing {
			return m.e.ClassifyCommitError(err)
		}
		return err
	})
}
