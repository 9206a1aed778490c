package asyncsession

import (
	"errors"
	"slices"
	"sync"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/internal/structmap"
)

// ErrSessionClosed is returned by a session used after Close.
var ErrSessionClosed = errors.New("gosqla: session is closed")

// ErrNilObject is matched by the error of a call given a nil pointer where an object is needed
// (Add, Delete, Merge, Refresh, an element of Upsert or InsertMany).
var ErrNilObject = errors.New("gosqla: nil object")

// ErrNotInSession is matched by the error of a call that needs an object of the session (Delete,
// Related, Load) given one the session does not hold: load it first, or Add it.
var ErrNotInSession = errors.New("gosqla: not in this session")

// ErrCommitted is matched by the error of a Commit whose transaction was committed although a
// request that travelled with it could not store its results (a value that did not fit its
// field, a Scan method that panicked): the write is in the database, the objects of that request
// may not show it.
var ErrCommitted = errors.New("gosqla: the transaction was committed")

// ErrTableChanged is matched by the error of a flush whose batch INSERT or UPDATE found its
// table's column types, or its BEFORE INSERT triggers, changed since the engine read them:
// nothing of the batch was written.
var ErrTableChanged = errors.New("gosqla: the table changed")

// ErrRowsSkipped is matched by the error of a flush whose INSERT wrote fewer rows than it was
// sent (a BEFORE INSERT trigger that returned NULL, a rule): nothing of its transaction commits.
var ErrRowsSkipped = errors.New("gosqla: rows skipped")

// ErrStaleObject is matched by the error of a flush whose UPDATE of a loaded object matched no
// row by the object's key (another transaction deleted the row or changed its key since it was
// loaded, or a trigger skipped the update), or more than one: nothing of its transaction commits.
// A row another transaction only updated still matches: there is no version column (use
// REPEATABLE READ, whose serialization failure says so, or lock the rows with FOR UPDATE).
var ErrStaleObject = errors.New("gosqla: stale object")

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
	identity identityMap
	owned    *ownership // the objects it registered as its own (ownership.go); nil until one
	objects  objectMap  // by the *T the user holds
	// block holds instances not handed out yet (newInstance); blockSize is its last size
	block     []instance
	blockSize int
	byTable   map[string]*tableSet // registered objects by table word (autoflush.go)
	lastSet   tableSetOfModel      // the table set tableSetOf returned last
	pending   []*instance          // added, in order
	deleted   []*instance
	bounds    []*bound
	failed    error        // set when a statement of the transaction failed
	gen       int          // savepoint generation: see instance.insertedSince
	chunking  *chunking    // the request whose flush this round sends by parts (chunk.go)
	part      int32        // the part of a flush by parts being planned (chunk.go); 0 outside one
	gone      []goneObject // deleted by a flush of the open transaction
	rekeyed   []keySwitch  // primary keys changed by flushes of the open transaction, in order
	undoSeq   int          // the last seq given to a goneObject or keySwitch
	// letGo are the objects the application expunged and those whose DELETE was flushed, by
	// address: a relationship that still refers to one, unchanged since the last flush, does not
	// bring it back (cascade.go); the relationship keeps the object alive, the set must not
	letGo map[uintptr]struct{}
	// keptClaims are the claims of objects let go of while another object at their address (a
	// struct and its first field) was still held, dropped with the last one there (ownership.go)
	keptClaims []keptClaim
	// beginStmts opens a transaction (the options' BEGIN), shared by every round
	beginStmts []asyncengine.Statement
	// committedOn holds the engines whose COMMIT succeeded in a commit that failed on another:
	// the next rollback keeps their objects as committed
	committedOn  map[*asyncengine.Engine]bool
	replicaState // reads routed to replicas (replica.go)
}

// goneObject is an object whose DELETE was flushed in savepoint generation gen; seq orders it
// among the session's flushed DELETEs and key changes (undoSeq).
type goneObject struct {
	in  *instance
	gen int
	seq int
}

// keySwitch is an object whose primary key an UPDATE flushed in savepoint generation gen
// changed: a rollback past it gives the object its old key back, in its fields, its snapshot and
// the identity map, as the row has it again.
type keySwitch struct {
	in     *instance
	old    identityKey
	fields []int           // the key fields the UPDATE changed
	snaps  []fieldSnapshot // their snapshots before it
	gen    int
	seq    int
}

// bound is one engine the session uses, with its connection while a transaction is open.
type bound struct {
	e    *asyncengine.Engine
	conn *asyncengine.Conn
	inTx bool
	// reads: a replica's, whose reads run outside any transaction and whose failures leave the
	// session's transaction as it was
	reads bool
	// lost: its connection was lost in the open transaction, which went with it: a rollback
	// has nothing to send there (a replica's: lost in this round, and reported to the set)
	lost bool
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
	s := &Session{opts: o, beginStmts: []asyncengine.Statement{{SQL: o.begin}}}
	s.idle = sync.NewCond(&s.mu)
	return s
}

// Engine returns the session's default engine (in a sharded session, the first shard's by name).
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

// unusable returns why no call can be served: the session is closed, or one of its options
// failed. Called locked.
func (s *Session) unusable() error {
	if s.closed {
		return ErrSessionClosed
	}
	return s.opts.bindErr
}

// committed updates the session after its transaction committed. Called locked.
func (s *Session) committed() {
	s.eachObject(s.committedObject)
	s.gen = 0
	for _, g := range s.gone {
		s.disown(g.in) // its row is gone for good
	}
	s.gone = nil
	s.rekeyed = nil
	s.replica = nil // the next reads choose again, for the position this commit reached
}

// committedObject updates an object after its transaction committed. Called locked.
func (s *Session) committedObject(in *instance) {
	in.insertedIn = 0
	if s.opts.expireOnCommit && in.state == statePersistent {
		in.expired = true
	}
}

// rolledBack updates the session after a rollback to savepoint generation gen (0: the whole
// transaction). Called locked.
func (s *Session) rolledBack(gen int) {
	// objects of the engines a partly failed commit committed on (none after most commits)
	committedOn := s.committedOn
	if gen == 0 {
		s.committedOn = nil
		s.replica = nil
	}
	committed := func(in *instance) bool { return committedOn != nil && committedOn[s.engineOf(in)] }
	s.eachObject(func(in *instance) {
		switch {
		case in.state == statePending:
			s.forget(in)
		case committed(in):
			s.committedObject(in)
		case in.insertedSince(gen):
			s.forget(in)
		default:
			in.state = statePersistent
			in.expired = true
		}
	})
	// deletes and key changes flushed since the savepoint are undone, the latest first: a key
	// taken from a deleted object, or moved through others, comes back in turn
	i, j := len(s.gone)-1, len(s.rekeyed)-1
	for i >= 0 || j >= 0 {
		if j < 0 || i >= 0 && s.gone[i].seq > s.rekeyed[j].seq {
			if g := s.gone[i]; g.gen >= gen {
				s.undoDelete(g.in, gen, committed)
			}
			i--
			continue
		}
		if k := s.rekeyed[j]; k.gen >= gen {
			s.undoKey(k, committed)
		}
		j--
	}
	s.gone = slices.DeleteFunc(s.gone, func(g goneObject) bool { return g.gen >= gen })
	s.rekeyed = slices.DeleteFunc(s.rekeyed, func(k keySwitch) bool { return k.gen >= gen })
	s.pending, s.deleted, s.failed = nil, nil, nil
}

// undoDelete loads (expired) again an object whose DELETE a rollback to savepoint generation gen
// undoes, unless it was inserted since too, its DELETE committed, or its key was taken by an
// object the rollback keeps. Called locked.
func (s *Session) undoDelete(in *instance, gen int, committed func(*instance) bool) {
	// a relationship that refers to it treats it as any other object again
	delete(s.letGo, addressOf(in))
	if in.insertedSince(gen) || committed(in) || s.identity.get(in.key()) != nil {
		s.disown(in)
		return
	}
	in.state = statePersistent
	in.expired = true
	s.register(in)
}

// undoKey gives an object whose primary key a flushed UPDATE changed its old key back, in its
// fields, its snapshot and the identity map, as its row has it again. An object that holds the
// old key meanwhile (loaded from a row the rollback took away) leaves the session. Called locked.
func (s *Session) undoKey(k keySwitch, committed func(*instance) bool) {
	in := k.in
	if s.objects.of(in.ptr) != in || committed(in) {
		return
	}
	if s.identity.get(in.key()) == in {
		s.identity.drop(in.key())
	}
	for j, fi := range k.fields {
		in.setSnapshotOfField(fi, k.snaps[j])
		in.v.FieldByIndex(in.model.Fields[fi].Index).Set(k.snaps[j].v)
	}
	in.forgetRaw()
	in.rekey()
	if other := s.identity.get(in.key()); other != nil && other != in {
		s.forget(other)
	}
	s.identity.set(in.key(), in)
}

// eachObject calls fn with every object of the session, which may forget it. When every object
// is registered (none pending), it walks the tables' sets, in memory order, rather than the
// objects map. Called locked.
func (s *Session) eachObject(fn func(*instance)) {
	n := 0
	for _, set := range s.byTable {
		n += len(set.ins)
	}
	if n != s.objects.len() {
		for in := range s.objects.all() {
			fn(in)
		}
		return
	}
	for _, set := range s.byTable {
		// from the end: forgetting an object moves the set's last one into its place
		for i := len(set.ins) - 1; i >= 0; i-- {
			if i < len(set.ins) {
				fn(set.ins[i])
			}
		}
	}
}
