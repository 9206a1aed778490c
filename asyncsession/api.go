package asyncsession

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/internal/structmap"
)

// newOp returns a request and its future; the request fails by completing the future with err.
func newOp[T any](ctx context.Context) (*op, *asyncengine.Future[T], func(T, error)) {
	f, resolve := asyncengine.NewPromise[T]()
	return &op{ctx: ctx, fail: func(err error) { var zero T; resolve(zero, err) }}, f, resolve
}

func failed[T any](err error) *asyncengine.Future[T] {
	var zero T
	return asyncengine.Ready(zero, err)
}

// Add puts new objects (pointers to mapped structs) in the session; they are inserted at the next
// flush. Adding a deleted object undeletes it; adding a known object does nothing. No I/O.
func (s *Session) Add(objs ...any) error {
	for _, obj := range objs {
		m, err := objectModel(obj)
		if err != nil {
			return err
		}
		s.mu.Lock()
		if err := s.unusable(); err != nil {
			s.mu.Unlock()
			return err
		}
		if in, ok := s.objects[obj]; ok {
			if in.state == stateDeleted {
				in.state = statePersistent
				s.deleted = without(s.deleted, []*instance{in})
			}
			s.mu.Unlock()
			continue
		}
		in := newInstance(obj, m)
		in.state = statePending
		s.objects[obj] = in
		s.pending = append(s.pending, in)
		s.mu.Unlock()
	}
	return nil
}

// Delete marks a loaded object for deletion at the next flush (a pending one is just dropped).
func (s *Session) Delete(obj any) error {
	if _, err := objectModel(obj); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.unusable(); err != nil {
		return err
	}
	in, ok := s.objects[obj]
	if !ok {
		return fmt.Errorf("gosqla: %T is not in this session; load it first (Get or Select)", obj)
	}
	switch in.state {
	case statePending:
		s.pending = without(s.pending, []*instance{in})
		s.forget(in)
	case statePersistent:
		in.state = stateDeleted
		s.deleted = append(s.deleted, in)
	}
	return nil
}

// Expunge removes obj from the session: its changes are no longer tracked. No I/O.
func (s *Session) Expunge(obj any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in, ok := s.objects[obj]; ok {
		s.pending = without(s.pending, []*instance{in})
		s.deleted = without(s.deleted, []*instance{in})
		s.forget(in)
	}
}

// ExpungeAll empties the session.
func (s *Session) ExpungeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.identity = map[identityKey]*instance{}
	s.objects = map[any]*instance{}
	s.byTable = nil
	s.pending, s.deleted = nil, nil
}

// IsExpired reports whether obj's fields may be stale (after Commit or Rollback): the next Get,
// Select or Refresh that touches it reloads it in place.
func (s *Session) IsExpired(obj any) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.objects[obj]
	return ok && in.expired
}

// Contains reports whether obj is in the session (pending, loaded or marked deleted).
func (s *Session) Contains(obj any) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.objects[obj]
	return ok
}

// Flush sends pending changes inside the session's transaction.
func (s *Session) Flush(ctx context.Context) *asyncengine.Future[struct{}] {
	o, f, resolve := newOp[struct{}](ctx)
	o.flush = flushAll
	o.apply = func(*Session, []*asyncengine.Result) error { resolve(struct{}{}, nil); return nil }
	s.submit(o)
	return f
}

// Commit flushes and commits. With ExpireOnCommit, loaded objects are expired.
func (s *Session) Commit(ctx context.Context) *asyncengine.Future[struct{}] {
	o, f, resolve := newOp[struct{}](ctx)
	o.flush = flushAll
	o.txEnd = commitTx
	o.apply = func(s *Session, _ []*asyncengine.Result) error {
		for _, in := range s.objects {
			in.addedInTx = false
			if s.opts.expireOnCommit && in.state == statePersistent {
				in.expired = true
			}
		}
		s.gen = 0
		resolve(struct{}{}, nil)
		return nil
	}
	s.submit(o)
	return f
}

// Rollback rolls the transaction back: objects inserted or added in it are expunged, loaded ones
// expired, deletions undone. It also clears the pending-rollback state of a failed flush.
func (s *Session) Rollback(ctx context.Context) *asyncengine.Future[struct{}] {
	o, f, resolve := newOp[struct{}](ctx)
	o.rollback = true
	o.txEnd = rollbackTx
	o.apply = func(s *Session, _ []*asyncengine.Result) error {
		s.rolledBack(0)
		resolve(struct{}{}, nil)
		return nil
	}
	s.submit(o)
	return f
}

// rolledBack updates the session after a rollback to savepoint generation gen (0: the whole
// transaction). Called locked.
func (s *Session) rolledBack(gen int) {
	for _, in := range s.objects {
		switch {
		case in.state == statePending, in.addedInTx && in.addedAt >= gen:
			s.forget(in)
		default:
			in.state = statePersistent
			in.expired = true
		}
	}
	s.pending, s.deleted, s.failed = nil, nil, nil
	if gen == 0 {
		for _, in := range s.objects {
			in.addedInTx = false
		}
	}
}

// Close rolls back what was not committed, returns the connections and waits until the
// session's goroutine has exited. Later calls fail with ErrSessionClosed.
func (s *Session) Close() error {
	o, f, resolve := newOp[struct{}](context.Background())
	o.rollback, o.close, o.txEnd = true, true, rollbackTx
	o.apply = func(s *Session, _ []*asyncengine.Result) error {
		s.rolledBack(0)
		resolve(struct{}{}, nil)
		return nil
	}
	s.submit(o)
	_, err := f.Await(context.Background())
	if err == ErrSessionClosed {
		err = nil
	}
	// the close request ended every transaction and returned the connections; what is left is to
	// see the drainer gone
	s.mu.Lock()
	for s.draining {
		s.idle.Wait()
	}
	s.mu.Unlock()
	return err
}

// Execute runs a statement in the session's transaction (after an autoflush) and returns its result.
func (s *Session) Execute(ctx context.Context, sql string, args ...any) *asyncengine.Future[*asyncengine.Result] {
	o, f, resolve := newOp[*asyncengine.Result](ctx)
	if err := s.opts.engine.Dialect().OneStatement(sql); err != nil {
		return failed[*asyncengine.Result](err)
	}
	sql, args, err := s.opts.engine.Dialect().Bind(sql, args)
	if err != nil {
		return failed[*asyncengine.Result](err)
	}
	o.autoflush = flushAll
	o.reads = readsOf(sql)
	o.build = func(*Session) ([]asyncengine.Statement, error) {
		return []asyncengine.Statement{{SQL: sql, Args: args}}, nil
	}
	o.apply = func(_ *Session, rs []*asyncengine.Result) error {
		resolve(rs[0], nil)
		return nil
	}
	s.submit(o)
	return f
}

// Savepoint is a nested transaction started by BeginNested.
type Savepoint struct {
	s    *Session
	name string
	gen  int
}

// BeginNested flushes and starts a savepoint in the session's transaction (on its default engine).
func (s *Session) BeginNested(ctx context.Context) *asyncengine.Future[*Savepoint] {
	o, f, resolve := newOp[*Savepoint](ctx)
	o.flush = flushAll
	var sp *Savepoint
	o.build = func(s *Session) ([]asyncengine.Statement, error) {
		s.gen++
		sp = &Savepoint{s: s, name: fmt.Sprintf("gosqla_sp_%d", s.gen), gen: s.gen}
		return []asyncengine.Statement{{SQL: "SAVEPOINT " + sp.name}}, nil
	}
	o.apply = func(*Session, []*asyncengine.Result) error { resolve(sp, nil); return nil }
	s.submit(o)
	return f
}

// Commit flushes and releases the savepoint.
func (sp *Savepoint) Commit(ctx context.Context) *asyncengine.Future[struct{}] {
	o, f, resolve := newOp[struct{}](ctx)
	o.flush = flushAll
	o.build = func(*Session) ([]asyncengine.Statement, error) {
		return []asyncengine.Statement{{SQL: "RELEASE SAVEPOINT " + sp.name}}, nil
	}
	o.apply = func(*Session, []*asyncengine.Result) error { resolve(struct{}{}, nil); return nil }
	sp.s.submit(o)
	return f
}

// Rollback undoes the work since the savepoint: objects inserted since are expunged, loaded ones
// expired. It clears a failure that happened inside the savepoint.
func (sp *Savepoint) Rollback(ctx context.Context) *asyncengine.Future[struct{}] {
	o, f, resolve := newOp[struct{}](ctx)
	o.rollback = true
	o.build = func(*Session) ([]asyncengine.Statement, error) {
		return []asyncengine.Statement{{SQL: "ROLLBACK TO SAVEPOINT " + sp.name}, {SQL: "RELEASE SAVEPOINT " + sp.name}}, nil
	}
	o.apply = func(s *Session, _ []*asyncengine.Result) error {
		s.rolledBack(sp.gen)
		resolve(struct{}{}, nil)
		return nil
	}
	sp.s.submit(o)
	return f
}

// RunSync runs sync-style code on one of the engine's workers with the session's own connection,
// inside its transaction, after flushing. Its writes are visible to the session's later requests.
// fn must not Close the connection; the session returns it.
func (s *Session) RunSync(ctx context.Context, fn func(context.Context, *asyncengine.Conn) error) *asyncengine.Future[struct{}] {
	o, f, resolve := newOp[struct{}](ctx)
	o.run = func(ctx context.Context, c *asyncengine.Conn) error {
		// the connection is the session's again only once fn has returned: wait for that even
		// when ctx ends first (fn sees ctx end too)
		_, err := asyncengine.Go(ctx, s.opts.engine.Workers(), func(ctx context.Context) (struct{}, error) {
			return struct{}{}, fn(asyncengine.WithConn(ctx, c), c)
		}).Await(context.WithoutCancel(ctx))
		if err == nil {
			resolve(struct{}{}, nil)
		}
		return err
	}
	s.submit(o)
	return f
}

// Refresh reloads obj (a loaded object) from the database, discarding unflushed changes.
func (s *Session) Refresh(ctx context.Context, obj any) *asyncengine.Future[struct{}] {
	o, f, resolve := newOp[struct{}](ctx)
	m, err := objectModel(obj)
	if err != nil {
		return failed[struct{}](err)
	}
	o.engine = s.engineFor(m)
	o.build = func(s *Session) ([]asyncengine.Statement, error) {
		in, ok := s.objects[obj]
		if !ok || in.state == statePending {
			return nil, fmt.Errorf("gosqla: Refresh of a %T that is not loaded in this session", obj)
		}
		return []asyncengine.Statement{{SQL: selectByPK(o.engine.Dialect(), m), Args: loadedPK(in)}}, nil
	}
	o.apply = func(s *Session, rs []*asyncengine.Result) error {
		in := s.objects[obj]
		if rs[0].Len() == 0 {
			return fmt.Errorf("gosqla: %T with key %v no longer exists: %w", obj, in.key.pk, asyncengine.ErrNoRows)
		}
		if err := in.load(rs[0], 0); err != nil {
			return err
		}
		resolve(struct{}{}, nil)
		return nil
	}
	s.submit(o)
	return f
}

func selectColumns(d *asyncengine.Dialect, m *structmap.Model) string {
	cols := make([]string, len(m.Fields))
	for i, f := range m.Fields {
		cols[i] = d.Quote(f.Column)
	}
	return "SELECT " + strings.Join(cols, ", ") + " FROM " + d.Quote(m.Table)
}

type statementKey struct {
	d *asyncengine.Dialect
	m *structmap.Model
}

var selectByPKCache sync.Map // statementKey → string

// selectByPK reads one row by its primary key. The statement is built once per model and dialect.
func selectByPK(d *asyncengine.Dialect, m *structmap.Model) string {
	key := statementKey{d, m}
	if s, ok := selectByPKCache.Load(key); ok {
		return s.(string)
	}
	var b strings.Builder
	b.WriteString(selectColumns(d, m))
	wherePK(&b, d, m, nil, make([]any, len(m.PK)))
	selectByPKCache.Store(key, b.String())
	return b.String()
}

// Get returns the object of type T with primary key pk (a value, or a []any for a composite key):
// from the identity map without SQL when it is loaded and not expired, else by a query that
// pipelines with the session's other requests. It is nil when no row has that key.
func Get[T any](ctx context.Context, s *Session, pk any) *asyncengine.Future[*T] {
	m, err := modelOf((*T)(nil))
	if err != nil {
		return failed[*T](err)
	}
	var key identityKey
	var args []any
	if len(m.PK) == 1 && reflect.TypeOf(pk) == m.PK[0].Type {
		// the common case needs no conversion: the value is the key
		key, args = identityKey{t: m.Type, pk: pk}, []any{pk}
	} else {
		k, v, err := keyFor(m, pk)
		if err != nil {
			return failed[*T](keyError(m, pk, err))
		}
		key, args = k, pkValues(m, v)
	}
	return load(ctx, s, m, key, args, func(_ *Session, in *instance) (*T, error) {
		if in == nil || in.state == stateDeleted {
			return nil, nil
		}
		return in.ptr.(*T), nil
	})
}

// load finds the object of key — in the identity map, or by a query — and completes the future
// with what finish makes of it (nil: no such row).
func load[T any](ctx context.Context, s *Session, m *structmap.Model, key identityKey, args []any, finish func(*Session, *instance) (T, error)) *asyncengine.Future[T] {
	s.mu.Lock()
	if err := s.unusable(); err != nil {
		s.mu.Unlock()
		var zero T
		return asyncengine.Ready(zero, err)
	}
	if in, ok := s.identity[key]; ok && !in.expired {
		v, err := finish(s, in)
		s.mu.Unlock()
		return asyncengine.Ready(v, err)
	}
	s.mu.Unlock()
	o, f, resolve := newOp[T](ctx)
	o.engine = s.engineFor(m)
	o.autoflush = flushInserts
	sql := selectByPK(o.engine.Dialect(), m)
	o.build = func(s *Session) ([]asyncengine.Statement, error) {
		if in, ok := s.identity[key]; ok && !in.expired {
			return nil, nil // loaded by a request ahead of this one
		}
		return []asyncengine.Statement{{SQL: sql, Args: args}}, nil
	}
	o.apply = func(s *Session, rs []*asyncengine.Result) error {
		var in *instance
		switch {
		case len(rs) == 0:
			in = s.identity[key]
		case rs[0].Len() > 0:
			var err error
			if in, err = s.merge(m, rs[0], 0, false); err != nil {
				return err
			}
		}
		v, err := finish(s, in)
		if err != nil {
			return err
		}
		resolve(v, nil)
		return nil
	}
	s.submit(o)
	return f
}

// Select runs a query (after an autoflush) and returns its rows as objects of type T, merged
// into the identity map: a row whose key is loaded returns the loaded object (refreshed if
// expired). Arguments are positional or one asyncengine.Named.
func Select[T any](ctx context.Context, s *Session, sql string, args ...any) *asyncengine.Future[[]*T] {
	m, err := modelOf((*T)(nil))
	if err != nil {
		return failed[[]*T](err)
	}
	o, f, resolve := newOp[[]*T](ctx)
	o.engine = s.engineFor(m)
	if err := o.engine.Dialect().OneStatement(sql); err != nil {
		return failed[[]*T](err)
	}
	sql, args, err = o.engine.Dialect().Bind(sql, args)
	if err != nil {
		return failed[[]*T](err)
	}
	o.autoflush = flushAll
	o.reads = readsOf(sql)
	o.reads[tableWord(m)] = true
	o.build = func(*Session) ([]asyncengine.Statement, error) {
		return []asyncengine.Statement{{SQL: sql, Args: args}}, nil
	}
	o.apply = func(s *Session, rs []*asyncengine.Result) error {
		if err := wholeRows(m, rs[0].Columns()); err != nil {
			return err
		}
		out, err := loadAll[T](s, m, rs[0], false)
		if err != nil {
			return err
		}
		resolve(out, nil)
		return nil
	}
	s.submit(o)
	return f
}

// wholeRows checks that a result's columns are exactly the model's: a row missing a column
// would sit in the identity map as if whole, and a column with no field would be lost.
func wholeRows(m *structmap.Model, columns []string) error {
	seen := make(map[string]bool, len(columns))
	for _, c := range columns {
		if m.Column(c) == nil {
			return &MappingError{Type: m.Type.String(), Reason: fmt.Sprintf("the query returns column %q, which no field maps; select only mapped columns, or read it with Execute", c)}
		}
		seen[c] = true
	}
	var missing []string
	for _, f := range m.Fields {
		if !seen[f.Column] {
			missing = append(missing, f.Column)
		}
	}
	if len(missing) > 0 {
		return &MappingError{Type: m.Type.String(), Reason: fmt.Sprintf("the query does not return column(s) %s: Select loads whole objects into the identity map; select every mapped column, or read partial rows with Execute", strings.Join(missing, ", "))}
	}
	return nil
}

// Merge copies the state of obj into the session's object with the same key — loading it first
// if needed, adding a copy as new if no row has that key — and returns that object. obj itself is
// not added.
func Merge[T any](ctx context.Context, s *Session, obj *T) *asyncengine.Future[*T] {
	m, err := objectModel(obj)
	if err != nil {
		return failed[*T](err)
	}
	v := reflect.ValueOf(obj).Elem()
	return load(ctx, s, m, keyOf(m, v), pkValues(m, v), func(s *Session, in *instance) (*T, error) {
		if in == nil {
			cp := new(T)
			*cp = *obj
			in = newInstance(cp, m)
			in.state = statePending
			s.objects[cp] = in
			s.pending = append(s.pending, in)
			return cp, nil
		}
		in.v.Set(v)
		return in.ptr.(*T), nil
	})
}
