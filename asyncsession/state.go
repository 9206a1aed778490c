package asyncsession

import (
	"errors"
	"fmt"

	"github.com/gosqla/gosqla/asyncengine"
)

// txStep marks the parts that open or end the session's transaction, so that a pipeline the
// server never ran can put the transaction state back.
type txStep int

const (
	txNone txStep = iota
	txBegins
	txEnds
)

// pendingRollback is the error of a request refused because an earlier statement of the
// transaction failed: it matches ErrPendingRollback and, with errors.As, the cause (a
// *pgconn.PgError for instance).
func pendingRollback(cause error) error {
	return fmt.Errorf("%w: %w", ErrPendingRollback, cause)
}

// notSentError is a pipeline that never reached the server: no connection could be checked out.
type notSentError struct{ err error }

func (e *notSentError) Error() string { return e.err.Error() }
func (e *notSentError) Unwrap() error { return e.err }

// isUnsent reports an error after which the server ran none of the pipeline's statements.
func isUnsent(err error) bool {
	var ns *notSentError
	if errors.As(err, &ns) {
		return true
	}
	var pe *asyncengine.PipelineError
	return errors.As(err, &pe) && pe.NotExecuted
}

// unsentError is the error of parts[k] when its pipeline was never run: the request whose
// statement the server refused gets that refusal; the others learn that they were not sent.
func unsentError(err error, parts []part, k int) error {
	var ns *notSentError
	if errors.As(err, &ns) {
		return ns.err
	}
	var pe *asyncengine.PipelineError
	errors.As(err, &pe)
	if p := parts[k]; p.by == culprit(parts, p.b, pe.Index) {
		return pe.Err
	}
	return fmt.Errorf("gosqla: not sent, nothing was run: the server refused another statement of the same pipeline: %w", pe.Err)
}

// restoreUnsent puts back what planning the parts of a never-run pipeline changed: the
// transaction state and the flushed changes. Called locked.
func (s *Session) restoreUnsent(parts []part, unsent map[*bound]bool) {
	if len(unsent) == 0 {
		return
	}
	for k := len(parts) - 1; k >= 0; k-- {
		p := parts[k]
		if !unsent[p.b] {
			continue
		}
		switch p.tx {
		case txBegins:
			p.b.inTx = false
		case txEnds:
			p.b.inTx = true
		}
		if p.undo != nil {
			p.undo()
		}
	}
}

// safeRound is round with a panic contained: the requests of the batch fail with the
// *asyncengine.PanicError, the session's connections are invalidated rather than returned (their
// protocol state is unknown), and an open transaction is reported lost until Rollback.
func (s *Session) safeRound(batch []*op) (rest []*op) {
	err := asyncengine.CatchPanic(func() error {
		rest = s.round(batch)
		return nil
	})
	if err == nil {
		return rest
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	lost := false
	for _, b := range append(s.bounds, s.readBounds...) {
		if b.conn != nil {
			b.conn.Invalidate(err)
			_ = b.conn.Close()
			b.conn = nil
		}
		lost = lost || b.inTx
		b.inTx = false
	}
	if lost {
		s.failed = err
	}
	for _, o := range batch {
		o.reject(err)
	}
	return nil
}

// culprit returns the request that planned the statement at index of b's pipeline.
func culprit(parts []part, b *bound, index int) *op {
	for _, p := range parts {
		if p.b == b && index >= p.offset && index < p.offset+len(p.stmts) {
			return p.by
		}
	}
	return nil
}
