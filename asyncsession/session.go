package asyncsession

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"sync"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/internal/structmap"
)

// ErrSessionClosed is returned by a session used after Close.
var ErrSessionClosed = errors.New("gosqla: session is closed")

// ErrNilObject is matched by the error of a call given a nil pointer where an object is needed
// (Add, Delete, Merge, Refresh, an element of Upsert or InsertMany).
var ErrNilObject = errors.New("gosqla: nil object")

// ErrPendingRollback is the engine's: a statement of the session's transaction failed, and only
// Rollback (or Close) is accepted until then.
var ErrPendingRollback = asyncengine.ErrPendingRollback

// MappingError reports a struct that cannot be mapped.
type MappingError = asyncengine.MappingError

// Session is a unit of work over one transaction per bound engine, with an identity map. It is
// safe for concurrent use: every request is queued and served in submission order by one
// drainer, and on PostgreSQL the requests queued while a round trip is in flight go out together
// as one pipeline.
type Session struct {
	opts options

	mu       sync.Mutex
	queue    []*op
	draining bool
	closed   bool
	idle     *sync.Cond // signalled when the drainer stops

	// state below is guarded by mu
	identity map[identityKey]*instance
	objects  map[any]*instance    // by the *T the user holds
	byTable  map[string]*tableSet // registered objects by table word (autoflush.go)
	pending  []*instance          // added, in order
	deleted  []*instance
	bounds   []*bound
	failed   error // set when a statement of the transaction failed
	gen      int   // savepoint generation: objects inserted since a savepoint have addedAt >= its gen
}

// bound is one engine the session uses, with its connection while a transaction is open.
type bound struct {
	e    *asyncengine.Engine
	conn *asyncengine.Conn
	inTx bool
}

// New returns a session on e.
func New(e *asyncengine.Engine, opts ...Option) *Session {
	o := defaultOptions(e)
	for _, opt := range opts {
		opt(&o)
	}
	return newSession(o)
}

func newSession(o options) *Session {
	s := &Session{opts: o, identity: map[identityKey]*instance{}, objects: map[any]*instance{}}
	s.idle = sync.NewCond(&s.mu)
	return s
}

// Engine returns the session's default engine.
func (s *Session) Engine() *asyncengine.Engine { return s.opts.engine }

func (s *Session) boundFor(e *asyncengine.Engine) *bound {
	for _, b := range s.bounds {
		if b.e == e {
			return b
		}
	}
	b := &bound{e: e}
	s.bounds = append(s.bounds, b)
	return b
}

func (s *Session) engineFor(m *structmap.Model) *asyncengine.Engine {
	if e, ok := s.opts.binds[m.Type]; ok {
		return e
	}
	return s.opts.engine
}

// op is one queued request. build and apply run under s.mu on the drainer; build returns the
// statements to send, apply receives their results. A request with run set is exclusive: it
// runs alone with the connection (COPY, RunSync).
type op struct {
	ctx       context.Context
	engine    *asyncengine.Engine
	autoflush flushKind       // flushes when the session autoflushes
	reads     map[string]bool // the words of its statement: an autoflush compares only their tables' objects
	flush     flushKind       // flushes always (Flush, Commit)
	build     func(s *Session) ([]asyncengine.Statement, error)
	apply     func(s *Session, rs []*asyncengine.Result) error
	run       func(ctx context.Context, c *asyncengine.Conn) error
	fail      func(error)
	txEnd     txEnd
	rollback  bool // accepted while the session has failed
	close     bool
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

// submit queues o and makes sure a drainer serves the queue.
func (s *Session) submit(o *op) {
	if o.engine == nil {
		o.engine = s.opts.engine
	}
	s.mu.Lock()
	if err := s.unusable(); err != nil && !o.close {
		s.mu.Unlock()
		o.fail(err)
		return
	}
	if s.closed {
		s.mu.Unlock()
		o.fail(ErrSessionClosed)
		return
	}
	if o.close {
		s.closed = true
	}
	s.queue = append(s.queue, o)
	if !s.draining {
		s.draining = true
		go s.drain()
	}
	s.mu.Unlock()
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

// part is one request's share of a round: its statements for one engine.
type part struct {
	o      *op // nil for an autoflush, a BEGIN or an engine's COMMIT
	by     *op // the request that planned it: its own error is not reported as an earlier failure
	b      *bound
	stmts  []asyncengine.Statement
	apply  func(s *Session, rs []*asyncengine.Result) error
	offset int                   // where its statements start in the engine's pipeline
	rs     []*asyncengine.Result // filled by send
	tx     txStep                // a BEGIN, COMMIT or ROLLBACK of the session's transaction
	undo   func()                // puts a flush's changes back when its pipeline was never run
}

// round sends as many of the batch's requests as can travel together — one pipeline per engine —
// and returns the requests left for the next round.
func (s *Session) round(batch []*op) []*op {
	parts, ctxs, i, exclusive := s.gather(batch)
	if exclusive {
		s.exclusive(batch[i])
		return batch[i+1:]
	}
	ctx, stop := sharedContext(ctxs)
	s.execute(ctx, stop, parts)
	return batch[i:]
}

// gather plans the requests of one round; exclusive reports that batch[i] must run alone now.
func (s *Session) gather(batch []*op) (parts []part, ctxs []context.Context, i int, exclusive bool) {
	parts = make([]part, 0, len(batch)+2)
	ctxs = make([]context.Context, 0, len(batch))
	s.mu.Lock()
	defer s.mu.Unlock()
	for ; i < len(batch); i++ {
		o := batch[i]
		if err := o.ctx.Err(); err != nil {
			o.fail(err)
			continue
		}
		if s.failed != nil && !o.rollback {
			o.fail(pendingRollback(s.failed))
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
		var err error
		if parts, err = s.plan(parts, o); err != nil {
			o.fail(err)
			continue
		}
		ctxs = append(ctxs, o.ctx)
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
func (s *Session) plan(parts []part, o *op) (out []part, err error) {
	start := len(parts)
	defer func() {
		for k := start; k < len(out); k++ {
			out[k].by = o
		}
	}()
	if kind := o.flushKind(s); kind != noFlush {
		reads := o.reads
		if o.flush != noFlush {
			reads = nil // Flush and Commit compare every object
		}
		fparts, err := s.planFlush(kind == flushAll, reads)
		if err != nil {
			return parts, err
		}
		for _, p := range fparts {
			parts = s.add(parts, p)
		}
	}
	var stmts []asyncengine.Statement
	if o.build != nil {
		var err error
		if stmts, err = o.build(s); err != nil {
			return parts, err
		}
	}
	if o.txEnd != keepTx {
		end := "COMMIT"
		if o.txEnd == rollbackTx {
			end = "ROLLBACK"
		}
		for _, b := range s.bounds {
			if b.inTx {
				parts = append(parts, part{b: b, stmts: []asyncengine.Statement{{SQL: end}}, tx: txEnds})
				b.inTx = false
			}
		}
	}
	return s.add(parts, part{o: o, b: s.boundFor(o.engine), stmts: stmts, apply: o.apply}), nil
}

// add appends p, preceded by BEGIN when its engine has no transaction open.
func (s *Session) add(parts []part, p part) []part {
	if len(p.stmts) > 0 && !p.b.inTx {
		parts = append(parts, part{b: p.b, stmts: []asyncengine.Statement{{SQL: s.opts.begin}}, tx: txBegins})
		p.b.inTx = true
	}
	return append(parts, p)
}

// execute sends the parts, one pipeline per engine, and hands each request its results.
func (s *Session) execute(ctx context.Context, stop func(), parts []part) {
	errs := s.send(ctx, parts)
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
	unsent := map[*bound]bool{}
	for b, err := range errs {
		if isUnsent(err) {
			unsent[b] = true
		}
	}
	partErrs := make([]error, len(parts))
	var first error
	for k, p := range parts {
		err := errs[p.b]
		switch {
		case unsent[p.b]:
			err = unsentError(err, parts, k)
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
			default:
				err = pendingRollback(pe.Err)
			}
			if err != nil {
				failure, failedBy = err, p.by
			}
		}
		partErrs[k] = err
		if first == nil {
			first = err
		}
	}
	s.restoreUnsent(parts, unsent)
	if failure != nil {
		s.markFailed(failure)
	}
	// connections go back to the pool before any caller hears of the results
	s.releaseIdle()
	var applyErr error
	for k, p := range parts {
		err := partErrs[k]
		if err == nil && applyErr != nil && p.o != nil && p.o.txEnd == commitTx {
			// the COMMIT travelled in the same pipeline: it cannot be taken back, but the caller
			// is not told it succeeded as if nothing had failed
			p.o.fail(fmt.Errorf("gosqla: the transaction was committed, but an earlier request of the same pipeline failed after the server ran it: %w", applyErr))
		}
		if err == nil && p.apply != nil {
			if err = p.apply(s, p.rs); err != nil {
				// the server ran the statement: the transaction must not commit what the caller
				// was told failed
				s.markFailed(err)
				if first == nil {
					first = err
				}
				if applyErr == nil {
					applyErr = err
				}
			}
		}
		if err != nil && p.o != nil {
			p.o.fail(err)
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
	for _, b := range s.bounds {
		if !b.inTx && b.conn != nil {
			_ = b.conn.Close()
			b.conn = nil
		}
	}
}

// send runs each engine's statements as one pipeline (one round trip on PostgreSQL; one worker
// call running them in order on a blocking driver).
func (s *Session) send(ctx context.Context, parts []part) map[*bound]error {
	type pipeline struct {
		b     *bound
		stmts []asyncengine.Statement
	}
	var pipes []pipeline // one per engine, in order of first use: rarely more than one
	at := func(b *bound) *pipeline {
		for i := range pipes {
			if pipes[i].b == b {
				return &pipes[i]
			}
		}
		pipes = append(pipes, pipeline{b: b, stmts: make([]asyncengine.Statement, 0, len(parts)+2)})
		return &pipes[len(pipes)-1]
	}
	for k := range parts {
		p := &parts[k]
		pl := at(p.b)
		p.offset = len(pl.stmts)
		pl.stmts = append(pl.stmts, p.stmts...)
	}
	var errs map[*bound]error
	for _, pl := range pipes {
		if len(pl.stmts) == 0 {
			continue
		}
		rs, err := s.pipeline(ctx, pl.b, pl.stmts)
		if err != nil {
			if errs == nil {
				errs = map[*bound]error{}
			}
			errs[pl.b] = err
		}
		for k := range parts {
			if p := &parts[k]; p.b == pl.b && len(p.stmts) > 0 && p.offset+len(p.stmts) <= len(rs) {
				p.rs = rs[p.offset : p.offset+len(p.stmts)]
			}
		}
	}
	return errs
}

func (s *Session) pipeline(ctx context.Context, b *bound, stmts []asyncengine.Statement) ([]*asyncengine.Result, error) {
	if b.conn == nil {
		c, err := b.e.Connect(ctx)
		if err != nil {
			return nil, &notSentError{err}
		}
		b.conn = c
	}
	return b.conn.Pipeline(ctx, stmts)
}

// exclusive runs a request that needs the connection to itself: pending changes are flushed and
// the transaction opened first.
func (s *Session) exclusive(o *op) {
	parts, b, err := s.planExclusive(o)
	if err != nil {
		o.fail(err)
		return
	}
	ctx, stop := sharedContext([]context.Context{o.ctx})
	errs := s.send(ctx, parts)
	stop()
	conn, failure := s.finishExclusive(parts, errs, b)
	if failure != nil {
		o.fail(failure)
		return
	}
	if err := o.run(o.ctx, conn); err != nil {
		s.mu.Lock()
		s.markFailed(err)
		s.mu.Unlock()
		o.fail(err)
	}
}

func (s *Session) planExclusive(o *op) (parts []part, b *bound, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts.autoflush {
		var fparts []part
		if fparts, err = s.planFlush(true, nil); err != nil {
			return nil, nil, err
		}
		for _, p := range fparts {
			parts = s.add(parts, p)
		}
	}
	b = s.boundFor(o.engine)
	if !b.inTx {
		parts = append(parts, part{b: b, stmts: []asyncengine.Statement{{SQL: s.opts.begin}}, tx: txBegins})
		b.inTx = true
	}
	for k := range parts {
		parts[k].by = o
	}
	return parts, b, err
}

func (s *Session) finishExclusive(parts []part, errs map[*bound]error, b *bound) (*asyncengine.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.finish(parts, errs)
	return b.conn, err
}

// sharedContext is the context of a pipeline carrying several requests: it ends when every
// request's context has ended, so that one caller giving up does not fail the others.
func sharedContext(ctxs []context.Context) (context.Context, func()) {
	ctxs = distinct(ctxs)
	switch len(ctxs) {
	case 0:
		return context.Background(), func() {}
	case 1:
		return ctxs[0], func() {}
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctxs[0]))
	var mu sync.Mutex
	left := len(ctxs)
	stops := make([]func() bool, len(ctxs))
	for i, c := range ctxs {
		stops[i] = context.AfterFunc(c, func() {
			mu.Lock()
			left--
			if left == 0 {
				cancel()
			}
			mu.Unlock()
		})
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

// distinct drops repeated contexts (requests of one caller share one); a context that never ends
// stands for them all.
func distinct(ctxs []context.Context) []context.Context {
	for _, c := range ctxs {
		if c.Done() == nil {
			// a request that never gives up keeps the pipeline going, whatever the others do
			return []context.Context{c}
		}
	}
	out := ctxs[:0]
	for _, c := range ctxs {
		dup := false
		for _, o := range out {
			if o == c {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, c)
		}
		if len(out) > 8 {
			return ctxs // many distinct callers: the general case handles them
		}
	}
	if len(out) == 0 {
		return ctxs[:1]
	}
	return out
}

// unusable returns why no call can be served: the session is closed, or one of its options
// failed. Called locked.
func (s *Session) unusable() error {
	if s.closed {
		return ErrSessionClosed
	}
	return s.opts.bindErr
}

// objectModel returns the mapping of obj, a non-nil pointer to a mapped struct.
func objectModel(obj any) (*structmap.Model, error) {
	if v := reflect.ValueOf(obj); v.Kind() == reflect.Pointer && v.IsNil() {
		return nil, fmt.Errorf("gosqla: got a nil %T; pass a pointer to an object: %w", obj, ErrNilObject)
	}
	return modelOf(obj)
}

// modelOf returns the mapping of obj's type, which must be a pointer to a mapped struct.
func modelOf(obj any) (*structmap.Model, error) {
	t := reflect.TypeOf(obj)
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil, &MappingError{Type: fmt.Sprintf("%T", obj), Reason: "pass a pointer to a mapped struct"}
	}
	m, err := structmap.Of(t)
	if err != nil {
		return nil, err
	}
	if len(m.PK) == 0 {
		return nil, &MappingError{Type: m.Type.String(), Reason: "no primary key; tag one field `db:\"id,pk\"`"}
	}
	return m, nil
}
