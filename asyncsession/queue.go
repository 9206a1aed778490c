package asyncsession

import (
	"context"
	"runtime"

	"github.com/gosqla/gosqla/asyncengine"
)

// op is one queued request. build and apply run under s.mu on the drainer; build returns the
// statements to send, apply receives their results. A request with run set is exclusive: it
// runs alone with the connection (COPY, RunSync).
type op struct {
	ctx       context.Context
	engine    *asyncengine.Engine
	autoflush flushKind // flushes when the session autoflushes
	reads     reads     // what its statement reads: an autoflush compares only those tables' objects
	flush     flushKind // flushes always (Flush, Commit)
	build     func(s *Session) ([]asyncengine.Statement, error)
	apply     func(s *Session, rs []*asyncengine.Result) error
	// stmts are sent when build is nil (build may return them); a request of one statement
	// keeps it in one (see statement). A request of one result (Execute) has result, which
	// receives its result or error, instead of apply and fail
	stmts     []asyncengine.Statement
	one       [1]asyncengine.Statement
	result    func(*asyncengine.Result, error)
	run       func(ctx context.Context, c *asyncengine.Conn) error
	fail      func(error)
	txEnd     txEnd
	rollback  bool // accepted while the session has failed
	readsBack bool // stores rows its write returned: a COMMIT waits for its results (round.go)
	// replicaOK: a request that only reads, sent to a replica in a session with Replicas when
	// its statements neither write nor lock (replica.go); retried: sent once more after its
	// replica failed
	replicaOK, retried bool
	close              bool
	// again marks a request whose flush runs in stages and is planned again in the next round;
	// staleStage that a stage failed, and the request with it
	again, staleStage bool
	// streamed: its flush went by parts, its end with the last one, in one round (chunk.go)
	streamed bool
	// stageFailed: the failed hooks of the stages of its flush applied in earlier rounds, run
	// when a later stage fails (round.go)
	stageFailed []func(*Session)
}

type flushKind int

func (o *op) flushKind(s *Session) flushKind {
	if o.flush != noFlush || !s.opts.autoflush || autoflushOff(o.ctx) {
		return o.flush
	}
	return o.autoflush
}

const (
	noFlush      flushKind = iota
	flushInserts           // pending inserts and deletes only (a Get that misses the map)
	flushAll
)

type txEnd int

const (
	keepTx txEnd = iota
	commitTx
	rollbackTx
)

// submit queues ops, together, and makes sure a drainer serves the queue: the requests of one
// call on several shards are served in one round.
func (s *Session) submit(ops ...*op) {
	s.mu.Lock()
	for _, o := range ops {
		if o.engine == nil {
			o.engine = s.opts.engine
		}
		err := s.unusable()
		switch {
		case s.closed:
			err = ErrSessionClosed
		case o.close:
			err = nil
			s.closed = true
		}
		if err != nil {
			s.mu.Unlock()
			for _, o := range ops {
				o.reject(err)
			}
			return
		}
	}
	s.enqueue(ops...)
	s.mu.Unlock()
}

// enqueue queues ops, which the session accepts, and starts the drainer if none runs. Called
// locked.
func (s *Session) enqueue(ops ...*op) {
	s.queue = append(s.queue, ops...)
	if !s.draining {
		s.draining = true
		go s.drain()
	}
}

// drain serves the queue until it is empty, then exits: an idle session holds no goroutine.
func (s *Session) drain() {
	yielded := false
	for {
		s.mu.Lock()
		batch := s.queue
		s.queue = nil
		if len(batch) == 0 && !yielded {
			// the callers just woken often queue their next requests at once: give them the
			// processor before deciding the queue is empty
			yielded = true
			s.mu.Unlock()
			runtime.Gosched()
			continue
		}
		yielded = false
		if len(batch) == 0 {
			s.draining = false
			s.idle.Broadcast()
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		for len(batch) > 0 {
			batch = s.safeRound(batch)
		}
	}
}

// newOp returns a request and its future; the request fails by completing the future with err.
func newOp[T any](ctx context.Context) (*op, *asyncengine.Future[T], func(T, error)) {
	f, resolve := asyncengine.NewPromise[T]()
	return &op{ctx: ctx, fail: func(err error) { var zero T; resolve(zero, err) }}, f, resolve
}

// statement makes st the request's one statement, held in the request itself.
func (o *op) statement(st asyncengine.Statement) {
	o.one[0] = st
	o.stmts = o.one[:]
}

// reject fails the request with err.
func (o *op) reject(err error) {
	if o.fail == nil {
		o.result(nil, err)
		return
	}
	o.fail(err)
}

func failed[T any](err error) *asyncengine.Future[T] {
	var zero T
	return asyncengine.Ready(zero, err)
}
