package asyncengine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// RetryPolicy says how often and how patiently a transaction is retried (Engine.BeginRetry,
// Engine.Retry). Retrying is opt-in: Engine.Begin never retries.
//
// An attempt is retried when it failed in a way that leaves nothing committed: a serialization
// failure (SQLSTATE 40001) or a deadlock (40P01), or a connection lost (or refused) before COMMIT
// was sent. A COMMIT whose outcome is unknown — the connection was lost after COMMIT was sent
// and before its answer — is never retried: the caller gets a *CommitUnknownError, because the
// transaction may have committed.
type RetryPolicy struct {
	// MaxAttempts bounds the attempts, the first included (0 means 10).
	MaxAttempts int
	// BaseDelay is the backoff before the second attempt; it doubles on each further attempt up to
	// MaxDelay, and each wait is drawn at random between zero and that bound ("full jitter"), so that
	// clients that failed together do not retry together. 0 means 5ms; MaxDelay 0 means 1s.
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// OnRetry, if set, is told of each failed attempt that is about to be retried (metrics, logs).
	OnRetry func(attempt int, err error)
}

// DefaultRetryPolicy is RetryPolicy{} with its defaults spelled out.
var DefaultRetryPolicy = RetryPolicy{MaxAttempts: 10, BaseDelay: 5 * time.Millisecond, MaxDelay: time.Second}

// ErrCommitUnknown is matched by every *CommitUnknownError.
var ErrCommitUnknown = errors.New("gosqla: outcome of COMMIT unknown")

// CommitUnknownError reports that the connection was lost (or the context ended) after COMMIT
// was sent and before the server answered: the transaction may or may not have committed. It is never retried; check
// the data (for example by a unique key the transaction wrote) before doing the work again.
type CommitUnknownError struct {
	Err error
}

func (e *CommitUnknownError) Error() string {
	return fmt.Sprintf("gosqla: the connection was lost or the context ended while COMMIT was in flight; the transaction may or may not have committed, so it was not retried: %v", e.Err)
}
func (e *CommitUnknownError) Is(target error) bool { return target == ErrCommitUnknown }
func (e *CommitUnknownError) Unwrap() error        { return e.Err }

// RetryError reports that every attempt allowed by the policy failed with a retryable error. It
// unwraps to the last attempt's error.
type RetryError struct {
	Attempts int
	Err      error
}

func (e *RetryError) Error() string {
	return fmt.Sprintf("gosqla: transaction failed %d times (raise RetryPolicy.MaxAttempts to try longer): %v", e.Attempts, e.Err)
}
func (e *RetryError) Unwrap() error { return e.Err }

// BeginRetry is Begin retried under policy p. fn may run several times, each time on a fresh
// transaction (and perhaps a fresh connection), so it must have no effect outside the database
// that a second run would repeat.
// A COMMIT whose outcome is unknown comes back from Begin as a *CommitUnknownError (Tx.Commit
// classifies it), which is never retried.
func (e *Engine) BeginRetry(ctx context.Context, p RetryPolicy, fn func(*Conn) error) error {
	return e.Retry(ctx, p, func(ctx context.Context) error { return e.Begin(ctx, fn) })
}

// ClassifyCommitError classifies an error returned by COMMIT (for wrappers that commit
// themselves, such as a session's): the server's own answer (a serialization failure, a deferred
// constraint, ErrPendingRollback) says that nothing was committed and comes back as it is; a
// lost connection or a cancelled context after COMMIT was sent leaves the outcome unknown and
// comes back as a *CommitUnknownError.
func (e *Engine) ClassifyCommitError(err error) error {
	if errors.Is(err, ErrCommitUnknown) {
		return err // classified already (Tx.Commit): a wrapper may pass it on
	}
	var coded interface{ SQLState() string }
	if errors.Is(err, ErrPendingRollback) || errors.Is(err, ErrConcurrentUse) || errors.Is(err, ErrConnClosed) ||
		errors.Is(err, ErrInvalidArgument) || errors.As(err, &coded) && !e.connector.IsDisconnect(err) {
		// the server's answer, or a call refused before COMMIT was sent: an argument that could
		// not be encoded stops a pipeline at its statement, so a COMMIT after it was not sent
		// (and one before it was answered)
		return err
	}
	if !reachedServer(err) {
		return err // COMMIT never left the client
	}
	if e.dialect == dialectSQLite && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		// an embedded database has no connection to lose: its error is its answer (a
		// constraint failed), and the transaction did not commit
		return err
	}
	return &CommitUnknownError{Err: err}
}

// Retry runs attempt until it succeeds, fails with an error that is not retryable (see
// RetryPolicy), the policy's attempts run out, or ctx ends. attempt should do all its work in one
// transaction and return a *CommitUnknownError when it lost its connection after sending COMMIT
// (BeginRetry does); other wrappers, such as a session's, build on it.
func (e *Engine) Retry(ctx context.Context, p RetryPolicy, attempt func(ctx context.Context) error) error {
	p = p.withDefaults()
	for n := 1; ; n++ {
		err := attempt(ctx)
		if err == nil || !e.Retryable(err) {
			return err
		}
		if n >= p.MaxAttempts {
			return &RetryError{Attempts: n, Err: err}
		}
		if p.OnRetry != nil {
			p.OnRetry(n, err)
		}
		t := time.NewTimer(p.backoff(n))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (retrying after: %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// Retryable reports whether err leaves nothing committed and may succeed if tried again: a
// serialization failure (40001), a deadlock (40P01), or a lost or refused connection — but never
// a *CommitUnknownError, nor the caller's own cancellation.
func (e *Engine) Retryable(err error) bool {
	if err == nil || errors.Is(err, ErrCommitUnknown) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var coded interface{ SQLState() string }
	if errors.As(err, &coded) {
		if code := coded.SQLState(); code == "40001" || code == "40P01" {
			return true
		}
	}
	return e.lost(err)
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultRetryPolicy.MaxAttempts
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = DefaultRetryPolicy.BaseDelay
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = DefaultRetryPolicy.MaxDelay
	}
	return p
}

// backoff is the wait after failed attempt n: full jitter under an exponential bound.
func (p RetryPolicy) backoff(n int) time.Duration {
	bound := p.MaxDelay
	if n < 30 && p.BaseDelay<<(n-1) < bound {
		bound = p.BaseDelay << (n - 1)
	}
	return rand.N(bound) + 1
}
