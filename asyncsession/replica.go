package asyncsession

import (
	"errors"
	"fmt"

	"github.com/gosqla/gosqla/asyncengine"
)

// replicaState is how a session with Replicas routes its reads. Reads go to one replica, kept
// until the session commits or rolls back, or the replica fails, so that the session's reads move
// only forward in time; its writes and everything after them in a transaction go to the primary.
type replicaState struct {
	// rw is advanced by the session's own commits: its reads wait for a replica that has
	// replayed them
	rw *asyncengine.ReadYourWrites
	// replica is where reads go now (nil: choose one before the next round that reads);
	// replicaFor the position it was chosen for
	replica    *bound
	replicaFor asyncengine.WALPosition
	// fallback: replica is the primary's, read outside the transaction, for one round
	fallback bool
	// readBounds are the replicas used, each with its connection during a round
	readBounds []*bound
	// retry holds reads to send once more: their replica failed, or a read sent with them did
	retry []*op
}

// errRetried marks the part of a read that is sent again in the next round.
var errRetried = errors.New("gosqla: sent again")

// onReplica reports whether o may go to a replica: a read of the session's own engine, in a
// session with Replicas, whose context does not ask for the primary. Called locked.
func (s *Session) onReplica(o *op) bool {
	return o.replicaOK && s.opts.replicas != nil && !s.opts.snapshot && o.engine == s.opts.engine && !asyncengine.PrimaryRequested(o.ctx)
}

// primaryInTx reports whether the session's transaction on its own engine is open. Called locked.
func (s *Session) primaryInTx() bool {
	for _, b := range s.bounds {
		if b.e == s.opts.engine {
			return b.inTx
		}
	}
	return false
}

// chooseReplica makes sure the reads of batch have a replica to go to, when they may go to one:
// it asks the ReplicaSet for one that has replayed the session's commits and the ReadYourWrites
// of the reads' contexts (waiting up to read_your_writes_wait). A read the set cannot serve
// (replica_fallback=error with no replica healthy, a misconfigured set) fails with its error and
// is dropped from the batch; when the set answers with the primary, the reads go there.
func (s *Session) chooseReplica(batch []*op) []*op {
	rs := s.opts.replicas
	if rs == nil {
		return batch
	}
	s.mu.Lock()
	var first *op
	var need asyncengine.WALPosition
	if !s.primaryInTx() {
		need = s.replicaNeed().Position()
		for _, o := range batch {
			if !s.onReplica(o) {
				continue
			}
			if first == nil {
				first = o
			}
			if rw := asyncengine.ReadYourWritesFrom(o.ctx); rw != nil && rw.Position() > need {
				need = rw.Position()
			}
		}
	}
	if first == nil || (s.replica != nil && !s.fallback && need <= s.replicaFor) {
		s.mu.Unlock()
		return batch
	}
	s.mu.Unlock()

	rw, _ := asyncengine.NewReadYourWrites("")
	rw.Observe(need)
	e, err := rs.ReadEngine(asyncengine.WithReadYourWrites(first.ctx, rw))

	s.mu.Lock()
	defer s.mu.Unlock()
	s.replica = nil
	switch {
	case err == nil && e != rs.Primary():
		s.replica, s.replicaFor, s.fallback = s.readBound(e), need, false
	case err == nil:
		// no replica will do now: this round's reads go to the primary, outside the session's
		// transaction as on a replica, and the next round asks again
		s.replica, s.fallback = s.readBound(e), true
	case err != nil && first.ctx.Err() == nil:
		// the set cannot serve reads: they fail, rather than go where the set says they must not
		kept := batch[:0]
		for _, o := range batch {
			if s.onReplica(o) {
				o.reject(err)
				continue
			}
			kept = append(kept, o)
		}
		return kept
	}
	return batch
}

// ReadYourWrites is the session's own record of its commits' WAL positions, advanced by each
// Commit from the moment it is first asked for (in a session with Replicas, from the start): its
// Token is what a service hands to the client's next request, whose reads through a ReplicaSet
// (with asyncengine.WithReadYourWrites) then see this session's writes.
func (s *Session) ReadYourWrites() *asyncengine.ReadYourWrites {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.replicaNeed()
}

// replicaNeed is the session's own ReadYourWrites. Called locked.
func (s *Session) replicaNeed() *asyncengine.ReadYourWrites {
	if s.rw == nil {
		s.rw, _ = asyncengine.NewReadYourWrites("")
	}
	return s.rw
}

// readBound is the bound of replica e.
func (s *Session) readBound(e *asyncengine.Engine) *bound {
	for _, b := range s.readBounds {
		if b.e == e {
			return b
		}
	}
	b := &bound{e: e, reads: true}
	s.readBounds = append(s.readBounds, b)
	return b
}

// boundOf is where o's statements go: its engine's bound, or the replica when o may go there and
// nothing of the session's transaction is open on its engine — a write planned before it in this
// round, its own autoflush included, opens it. Called locked.
func (s *Session) boundOf(o *op, stmts []asyncengine.Statement) *bound {
	b := s.boundFor(o.engine)
	if b.inTx || s.replica == nil || !s.onReplica(o) {
		return b
	}
	for _, st := range stmts {
		if !asyncengine.ReadOnlySQL(st.SQL) {
			return b
		}
	}
	return s.replica
}

// replicaFailed reports to the set, once per round, a replica whose pipeline failed with err: a
// lost one is taken out of routing, and the session chooses another. Called locked.
func (s *Session) replicaFailed(b *bound, err error) {
	if s.opts.replicas.ReportFailure(b.e, err) {
		b.lost = true
		if s.replica == b {
			s.replica = nil
		}
	}
}

// replicaPartErr is the error of p, a part sent to a replica outside any transaction: its own
// statement's, or, when a read sent before it in the pipeline failed, errRetried — it is sent
// again, once. A read whose replica was lost is sent again too, and the replica reported to the
// set. Called locked.
func (s *Session) replicaPartErr(p *part, err error) error {
	if err == nil {
		return nil
	}
	var pe *asyncengine.PipelineError
	own := true
	if errors.As(err, &pe) && !pe.NotExecuted {
		switch end := p.offset + len(p.stmts); {
		case pe.Index >= end && len(p.rs) == len(p.stmts):
			return nil // its statements ran before the failing one
		case pe.Index < p.offset || pe.Index >= end:
			own = false
		default:
			err = pe.Err
		}
	}
	if own && (p.b.lost || isUnsent(err)) {
		own = false // the replica is gone, or no connection was had: another try may find one
	}
	if own {
		return err
	}
	if p.o == nil || p.o.retried {
		return fmt.Errorf("gosqla: a read on replica %s failed: %w", s.engineName(p.b.e), err)
	}
	p.o.retried = true
	s.retry = append(s.retry, p.o)
	return errRetried
}

// takeRetry returns the reads to send again, ahead of rest. Called locked.
func (s *Session) takeRetry(rest []*op) []*op {
	if len(s.retry) == 0 {
		return rest
	}
	out := append(s.retry, rest...)
	s.retry = nil
	return out
}

// releaseReplicas returns the replicas' connections after a round. Called locked.
func (s *Session) releaseReplicas() {
	for _, b := range s.readBounds {
		if b.conn != nil {
			_ = b.conn.Close()
			b.conn = nil
		}
		b.lost = false
	}
}
