package asyncsession

import (
	"context"
	"errors"
	"fmt"

	"github.com/gosqla/gosqla/asyncengine"
)

// part is one request's share of a round: its statements for one engine.
type part struct {
	o     *op // nil for an autoflush, a BEGIN or an engine's COMMIT
	by    *op // the request that planned it: its own error is not reported as an earlier failure
	b     *bound
	stmts []asyncengine.Statement
	apply func(s *Session, rs []*asyncengine.Result) error
	// applyEach applies statement i's result as soon as it is read (readEarly); apply then
	// applies the rest
	applyEach func(s *Session, i int, r *asyncengine.Result) error
	offset    int                   // where its statements start in the engine's pipeline
	rs        []*asyncengine.Result // filled by send
	tx        txStep                // a BEGIN, COMMIT or ROLLBACK of the session's transaction
	commits   bool                  // a COMMIT
	undo      func()                // puts a flush's changes back when its pipeline was never run
	// readsBack: the part stores in objects values its writes returned (generated keys, server
	// defaults), which may not fit: a COMMIT is sent only once they are stored
	readsBack bool
	failed    func(*Session) // told that the part's flush failed: it leaves its objects as found
	// explain, given the part's statement i that failed and its error, returns the error to
	// report
	explain func(i int, err error) error
}

// round sends as many of the batch's requests as can travel together — one pipeline per engine —
// and returns the requests left for the next round.
func (s *Session) round(batch []*op) []*op {
	if batch = s.chooseReplica(batch); len(batch) == 0 {
		return nil
	}
	parts, ctxs, i, exclusive := s.gather(batch)
	if exclusive {
		s.exclusive(batch[i])
		return batch[i+1:]
	}
	ctx, stop := sharedContext(ctxs)
	s.execute(ctx, stop, parts)
	rest := batch[i:]
	if i < len(batch) && batch[i].streamed {
		rest = batch[i+1:] // its flush went by parts, and its end with them (chunk.go)
	} else if i < len(batch) && batch[i].again {
		o := batch[i]
		o.again = false
		if o.staleStage {
			rest = batch[i+1:] // its stage failed: it has its error
		}
	}
	if s.opts.replicas != nil {
		s.mu.Lock()
		rest = s.takeRetry(rest)
		s.mu.Unlock()
	}
	return rest
}

// gather plans the requests of one round; exclusive reports that batch[i] must run alone now.
func (s *Session) gather(batch []*op) (parts []part, ctxs []context.Context, i int, exclusive bool) {
	parts = make([]part, 0, len(batch)+2)
	ctxs = make([]context.Context, 0, len(batch))
	s.mu.Lock()
	defer s.mu.Unlock()
	committing := false // a COMMIT is planned in this round
	for ; i < len(batch); i++ {
		o := batch[i]
		if err := o.ctx.Err(); err != nil {
			o.reject(err)
			continue
		}
		if s.failed != nil && !o.rollback {
			o.reject(pendingRollback(s.failed))
			continue
		}
		if o.rollback && len(parts) > 0 {
			break // a rollback travels alone: it may have to end a failed transaction first
		}
		if o.run != nil {
			if len(parts) > 0 {
				break // exclusive: runs alone, after what is gathered so far
			}
			return nil, nil, i, true
		}
		if committing && s.onReplica(o) {
			break // a replica for it is chosen for the position this COMMIT reaches
		}
		var err error
		var again bool
		planned := len(parts)
		if parts, again, err = s.plan(parts, o); err != nil {
			if len(parts) > planned {
				ctxs = append(ctxs, o.ctx) // the autoflush it planned goes on its context
			}
			if len(o.stageFailed) > 0 {
				// the stages of its flush before this one were written in the transaction: the
				// flush fails with them, as when a statement of this stage fails (finish), and
				// the session needs Rollback
				for _, f := range o.stageFailed {
					f(s)
				}
				o.stageFailed = nil
				s.markFailed(err)
			}
			o.reject(err)
			continue
		}
		ctxs = append(ctxs, o.ctx)
		if again {
			o.again = true
			break // its flush has another stage: o is planned again in the next round
		}
		committing = committing || o.txEnd == commitTx
		if o.rollback {
			i++
			break
		}
	}
	return parts, ctxs, i, false
}

// plan adds o's parts to a round: the autoflush it asks for, a BEGIN where the engine has no
// transaction open, its statements, and for the end of a transaction a COMMIT or ROLLBACK on
// every engine in one. Called locked.
//
// again reports that o's flush needs the keys this round generates: only the flush's first stage
// was added, and o is to be planned again in the next round.
func (s *Session) plan(parts []part, o *op) (out []part, again bool, err error) {
	start := len(parts)
	defer func() {
		for k := start; k < len(out); k++ {
			out[k].by = o
		}
	}()
	if kind := o.flushKind(s); kind != noFlush {
		r := o.reads
		if o.flush != noFlush {
			r = reads{} // Flush and Commit compare every object
		}
		var rest []*instance // the objects the parts after this one plan (chunk.go)
		if s.mayChunk(o, len(parts)) {
			rest = s.startChunks()
			defer func() { s.part = 0 }() // also when planning panics
		}
		fparts, more, err := s.planFlush(kind == flushAll, r)
		if rest != nil && (err != nil || more || len(fparts) == 0) {
			s.pending = append(s.pending, rest...)
			rest = nil
		}
		if err != nil {
			return parts, false, err
		}
		for _, p := range fparts {
			parts = s.add(parts, p)
		}
		if more && len(fparts) > 0 {
			return parts, true, nil
		}
		if rest != nil {
			// the pipeline asks for the other parts, and o's end, as it sends this one
			s.chunking = &chunking{o: o, rest: rest, roots: chunkRoots, part: 1}
			return parts, true, nil
		}
	}
	return s.planEnd(parts, o)
}

// planEnd adds the rest of o's parts once its flush is planned: its statements and the end of
// its transaction. again reports a COMMIT that waits for the flush's results (readsBack). Called
// locked.
func (s *Session) planEnd(parts []part, o *op) (out []part, again bool, err error) {
	start := len(parts)
	defer func() {
		for k := start; k < len(out); k++ {
			out[k].by = o
		}
	}()
	if o.txEnd == commitTx && readsBack(parts) {
		// a result that cannot be stored must fail the transaction, not follow its COMMIT: the
		// COMMIT goes in the next round, once the writes' results are stored
		return parts, true, nil
	}
	stmts := o.stmts
	if o.build != nil {
		var err error
		if stmts, err = o.build(s); err != nil {
			return parts, false, err
		}
	}
	if o.txEnd != keepTx {
		end := commitStmts
		if o.txEnd == rollbackTx {
			end = rollbackStmts
		}
		for _, b := range s.bounds {
			if !b.inTx {
				continue
			}
			b.inTx = false
			if b.lost && o.txEnd == rollbackTx {
				continue // the transaction went with its connection: there is nothing to roll back
			}
			p := part{b: b, stmts: end, tx: txEnds, commits: o.txEnd == commitTx}
			if rws := s.commitObservers(o.ctx, b); p.commits && len(rws) > 0 && b.e.Dialect().Name() == "postgresql" {
				p.stmts, p.apply = commitObserveStmts, observeCommit(rws)
			}
			parts = append(parts, p)
		}
	}
	return s.add(parts, part{o: o, b: s.boundOf(o, stmts), stmts: stmts, apply: o.apply, readsBack: o.readsBack}), false, nil
}

// commitObservers are the ReadYourWrites a COMMIT on b advances: ctx's, and in a session with
// Replicas the session's own, when b is its primary. Called locked.
func (s *Session) commitObservers(ctx context.Context, b *bound) []*asyncengine.ReadYourWrites {
	var rws []*asyncengine.ReadYourWrites
	if rw := asyncengine.ReadYourWritesFrom(ctx); rw != nil {
		rws = append(rws, rw)
	}
	if (s.opts.replicas != nil || s.rw != nil) && b.e == s.opts.engine {
		rws = append(rws, s.replicaNeed())
	}
	return rws
}

// observeCommit advances rws to the WAL position a COMMIT reached, read in its pipeline.
func observeCommit(rws []*asyncengine.ReadYourWrites) func(*Session, []*asyncengine.Result) error {
	return func(_ *Session, rs []*asyncengine.Result) error {
		var text *string
		if err := rs[1].One(&text); err != nil || text == nil {
			return nil // the commit stands; a standby has no position of its own
		}
		if p, err := asyncengine.ParseWALPosition(*text); err == nil {
			for _, rw := range rws {
				rw.Observe(p)
			}
		}
		return nil
	}
}

// readsBack reports a part of the round that stores returned values in objects.
func readsBack(parts []part) bool {
	for _, p := range parts {
		if p.readsBack {
			return true
		}
	}
	return false
}

// add appends p, preceded by BEGIN when its engine has no transaction open.
func (s *Session) add(parts []part, p part) []part {
	if len(p.stmts) > 0 && !p.b.reads {
		parts = s.begin(parts, p.b)
	}
	return append(parts, p)
}

// commitsOn reports a round whose pipeline on b carries a COMMIT.
func commitsOn(parts []part, b *bound) bool {
	for _, p := range parts {
		if p.commits && p.b == b {
			return true
		}
	}
	return false
}

// begin appends a BEGIN of b's transaction unless one is open.
func (s *Session) begin(parts []part, b *bound) []part {
	if b.inTx {
		return parts
	}
	b.inTx, b.lost = true, false
	return append(parts, part{b: b, stmts: s.beginStmts, tx: txBegins})
}

// execute sends the parts, one pipeline per engine, and hands each request its results.
func (s *Session) execute(ctx context.Context, stop func(), parts []part) {
	parts, errs := s.send(ctx, parts)
	stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.finish(parts, errs)
}

// finish applies results in submission order. A request whose statement failed gets the error
// (as does the request that planned it, when an autoflush or BEGIN of its own failed); the ones
// after it in the same pipeline get ErrPendingRollback wrapping it. A pipeline the server never
// ran (no connection, a statement refused before execution) leaves the transaction as it was.
// Called locked.
func (s *Session) finish(parts []part, errs map[*bound]error) error {
	var failure error
	var failedBy *op
	var unsent map[*bound]bool // allocated only in the rare round that has one
	for b, err := range errs {
		if _, ok := errors.AsType[*asyncengine.DisconnectError](err); ok && b.inTx {
			b.lost = true
		}
		if b.reads {
			s.replicaFailed(b, err)
		}
		if isUnsent(err) {
			if unsent == nil {
				unsent = map[*bound]bool{}
			}
			unsent[b] = true
		}
	}
	// committedPart reports that part k's engine ran its pipeline to its end with a COMMIT after
	// part k, in the same transaction: what the part wrote is committed, whatever else failed.
	// Asked only on the paths of a failure.
	committedPart := func(k int) bool {
		b := parts[k].b
		if errs[b] != nil || b.reads {
			return false
		}
		for _, q := range parts[k+1:] {
			if q.b == b && (q.commits || q.tx == txBegins) {
				return q.commits
			}
		}
		return false
	}
	partErrs := make([]error, len(parts))
	var first error
	for k, p := range parts {
		err := errs[p.b]
		if p.b.reads {
			// a read on a replica, outside the session's transaction: its error is its own
			err = s.replicaPartErr(&parts[k], err)
			partErrs[k] = err
			if first == nil && err != errRetried {
				first = err
			}
			continue
		}
		// a pipeline that carried a COMMIT and was lost without the server's answer
		inFlight := err != nil && commitsOn(parts, p.b) && errors.Is(p.b.e.ClassifyCommitError(err), asyncengine.ErrCommitUnknown)
		switch {
		case unsent[p.b]:
			err = unsentError(err, parts, k)
		case failure != nil && committedPart(k):
			// committed on its engine although another failed (a partial commit): applied below
		case failure != nil && p.by != nil && p.by == failedBy:
			err = failure
		case failure != nil:
			err = pendingRollback(failure)
		case err != nil:
			var pe *asyncengine.PipelineError
			switch {
			case !errors.As(err, &pe):
			case pe.Index >= p.offset+len(p.stmts) && len(p.rs) == len(p.stmts):
				err = nil // its statements ran before the failing one
			case pe.Index >= p.offset+len(p.stmts):
				// refused before anything ran (a batch prepares every statement first)
				err = pendingRollback(pe.Err)
				if culprit(parts, p.b, pe.Index) == p.by {
					err = pe.Err
				}
			case pe.Index >= p.offset:
				err = pe.Err
				if p.explain != nil {
					err = p.explain(pe.Index-p.offset, err)
				}
			default:
				err = pendingRollback(pe.Err)
			}
			if inFlight && err != nil && !errors.Is(err, asyncengine.ErrCommitUnknown) {
				err = &asyncengine.CommitUnknownError{Err: err}
			}
			if err != nil {
				failure, failedBy = err, p.by
			}
		}
		partErrs[k] = err
		if err != nil {
			p.fail(s)
		}
		if first == nil {
			first = err
		}
	}
	s.restoreUnsent(parts, unsent)
	if partial := s.partialCommit(parts, errs, failure); partial != nil {
		for k := range partErrs {
			if partErrs[k] == failure {
				partErrs[k] = partial
			}
		}
		if first == failure {
			first = partial
		}
		failure = partial
	}
	if failure != nil {
		s.markFailed(failure)
	}
	// connections go back to the pool before any caller hears of the results
	s.releaseIdle()
	var applyErr error
	var applyBy *op
	for k, p := range parts {
		err := partErrs[k]
		if err == errRetried {
			continue
		}
		if err == nil && failure != nil && p.by != nil && p.by == failedBy && p.failed != nil && !committedPart(k) {
			// the failed request's flush ran on another engine too: it fails with the request,
			// and its transaction rolls back, so its objects keep what it did not write
			p.fail(s)
			err = failure
		}
		if err == nil && applyErr != nil && p.o != nil && p.o.txEnd == commitTx {
			// the COMMIT travelled in the same pipeline (only reads came before it): it
			// cannot be taken back, and the caller is told so
			s.committed()
			err = fmt.Errorf("%w, but a request of the same pipeline failed after the server ran it: %w", ErrCommitted, applyErr)
		} else if err == nil && applyErr != nil && !committedPart(k) {
			// the session is pending rollback: what follows is not delivered as a success, and a
			// flush among it leaves its objects as it found them
			err = pendingRollback(applyErr)
			if p.by == applyBy {
				err = applyErr
			}
			p.fail(s)
		} else if err == nil && p.o != nil && p.o.result != nil {
			p.o.result(p.rs[0], nil)
		} else if err == nil && p.apply != nil {
			// a panic storing the results (a Scan method) fails the request as an error would:
			// the pipeline was read to its end, and its COMMIT, if any, ran
			if err = asyncengine.CatchPanic(func() error { return p.apply(s, p.rs) }); err != nil {
				if !committedPart(k) {
					p.fail(s) // a flush whose results could not all be stored failed too
				}
				// the server ran the statement: the transaction must not commit what the caller
				// was told failed
				s.markFailed(err)
				if first == nil {
					first = err
				}
				if applyErr == nil {
					applyErr, applyBy = err, p.by
					// the request's other parts (an autoflush stored before its own results
					// failed) fail with it, before it hears of it
					for j, q := range parts {
						if j != k && q.by == applyBy && applyBy != nil && !committedPart(j) {
							q.fail(s)
						}
					}
				}
			} else if p.failed != nil && p.by != nil && p.by.again && !committedPart(k) {
				// a stage of a flush that goes on in the next round: a later stage that fails
				// takes this one back too
				p.by.stageFailed = append(p.by.stageFailed, p.failed)
			}
		}
		switch {
		case err == nil:
		case p.o != nil:
			p.o.reject(err)
		case p.by != nil && err == applyErr:
			p.by.reject(err) // the request whose flush, BEGIN or autoflush it was
		}
		if err != nil && p.o == nil && p.by != nil && p.by.again && !p.by.staleStage {
			// a stage of its flush failed: the request is not planned again
			p.by.staleStage = true
			p.by.reject(err)
		}
	}
	return first
}

// markFailed puts the session in pending-rollback state when a transaction is open. Called locked.
func (s *Session) markFailed(err error) {
	for _, b := range s.bounds {
		if b.inTx || b.conn != nil {
			s.failed = err
			return
		}
	}
}

// releaseIdle returns the connections of engines with no open transaction. Called locked.
func (s *Session) releaseIdle() {
	s.releaseReplicas()
	for _, b := range s.bounds {
		if !b.inTx && b.conn != nil {
			_ = b.conn.Close()
			b.conn = nil
		}
	}
}

// exclusive runs a request that needs the connection to itself: pending changes are flushed and
// the transaction opened first.
func (s *Session) exclusive(o *op) {
	var conn *asyncengine.Conn
	for more := true; more; {
		parts, b, again, err := s.planExclusive(o)
		if err != nil {
			o.reject(err)
			return
		}
		ctx, stop := sharedContext([]context.Context{o.ctx})
		_, errs := s.send(ctx, parts)
		stop()
		c, failure := s.finishExclusive(parts, errs, b)
		if failure != nil {
			o.reject(failure)
			return
		}
		conn, more = c, again
	}
	if err := o.run(o.ctx, conn); err != nil {
		s.mu.Lock()
		s.markFailed(err)
		s.mu.Unlock()
		o.reject(err)
	}
}

func (s *Session) planExclusive(o *op) (parts []part, b *bound, more bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts.autoflush {
		var fparts []part
		if fparts, more, err = s.planFlush(true, reads{}); err != nil {
			return nil, nil, false, err
		}
		more = more && len(fparts) > 0
		for _, p := range fparts {
			parts = s.add(parts, p)
		}
	}
	b = s.boundFor(o.engine)
	parts = s.begin(parts, b)
	for k := range parts {
		parts[k].by = o
	}
	return parts, b, more, err
}

func (s *Session) finishExclusive(parts []part, errs map[*bound]error, b *bound) (*asyncengine.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.finish(parts, errs)
	return b.conn, err
}

// fail leaves the objects of a part's flush as the flush found them (failed), and those of the
// earlier stages of its request's flush. Called locked.
func (p *part) fail(s *Session) {
	if p.failed != nil {
		p.failed(s)
	}
	if p.by != nil {
		for _, f := range p.by.stageFailed {
			f(s)
		}
		p.by.stageFailed = nil
	}
}
