package asyncsession

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/internal/abandon"
	"github.com/gosqla/gosqla/internal/structmap"
)

// Add puts new objects (pointers to mapped structs) in the session; they are inserted at the next
// flush. Adding a deleted object undeletes it; adding a known object does nothing; an object
// another open session was given is refused (ErrOtherSession). The objects are taken in order:
// an error stops Add at the object it names, and those before it stay added (Expunge them to
// take them back). No I/O.
func (s *Session) Add(objs ...any) error {
	for _, obj := range objs {
		m, err := objectModel(obj)
		if err != nil {
			return err
		}
		var shard string
		if s.sharded(m) && !s.Contains(obj) {
			if shard, err = s.objectShard(obj, m); err != nil {
				return err
			}
		}
		s.mu.Lock()
		if err := s.unusable(); err != nil {
			s.mu.Unlock()
			return err
		}
		in, isNew, err := s.attach(obj, m)
		if isNew {
			in.shard = shard
		}
		s.mu.Unlock()
		if err != nil {
			return err
		}
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
	in, ok := s.objects.get(obj)
	if !ok {
		return fmt.Errorf("%w: a %T; load it first (Get or Select)", ErrNotInSession, obj)
	}
	s.markDeleted(in)
	return nil
}

// Expunge removes obj from the session: its changes are no longer tracked, and a relationship of
// another object that still refers to it, unchanged, does not add it back. Its relatives stay.
// No I/O.
func (s *Session) Expunge(obj any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in, ok := s.objects.get(obj); ok {
		s.pending = without(s.pending, []*instance{in})
		s.deleted = without(s.deleted, []*instance{in})
		s.forget(in)
		s.letPass(in)
	}
}

// ExpungeAll empties the session.
func (s *Session) ExpungeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	// the session goes on claiming with the same handle: its entries are removed now
	for in := range s.objects.all() {
		in.attached, in.owned = false, false
	}
	if s.owned != nil {
		s.owned.release()
	}
	s.identity = identityMap{}
	s.objects = objectMap{}
	s.byTable, s.lastSet.t = nil, nil
	s.pending, s.deleted, s.gone, s.letGo, s.rekeyed, s.keptClaims = nil, nil, nil, nil, nil, nil
}

// IsExpired reports whether obj's fields may be stale (after Commit or Rollback): the next Get,
// Select or Refresh that touches it reloads it in place.
func (s *Session) IsExpired(obj any) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.objects.get(obj)
	return ok && in.expired
}

// Contains reports whether obj is in the session (pending, loaded or marked deleted).
func (s *Session) Contains(obj any) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.objects.get(obj)
	return ok
}

// Flush sends pending changes inside the session's transaction.
func (s *Session) Flush(ctx context.Context) *asyncengine.Future[struct{}] {
	return s.control(ctx, controlOp{flush: flushAll}, nil)
}

// Commit flushes and commits. With ExpireOnCommit, loaded objects are expired. A Commit whose
// COMMIT travelled in a pipeline that was lost before the server answered (the connection died,
// ctx ended) fails with a *asyncengine.CommitUnknownError: the transaction may have committed.
// An Await whose context ends before the Commit completes returns at once, with a
// *CommitUnknownError that also matches the context's error (errors.Is): the session may not
// have heard of the COMMIT's fate yet. Await the future again with a context that outlives it
// (context.WithoutCancel) to learn it.
func (s *Session) Commit(ctx context.Context) *asyncengine.Future[struct{}] {
	f := s.control(ctx, controlOp{flush: flushAll, txEnd: commitTx}, (*Session).committed)
	abandon.Set(f, commitAbandoned)
	return f
}

// commitAbandoned is the error of an Await of a Commit that its context ended first.
func commitAbandoned(ctxErr error) error {
	return &asyncengine.CommitUnknownError{Err: fmt.Errorf("the wait ended before the session learnt whether the COMMIT ran (await the Commit's future again with a context that outlives it to learn it): %w", ctxErr)}
}

// Rollback rolls the transaction back: objects inserted or added in it are expunged, loaded ones
// expired, deletions undone. It also clears the pending-rollback state of a failed flush.
func (s *Session) Rollback(ctx context.Context) *asyncengine.Future[struct{}] {
	return s.control(ctx, controlOp{rollback: true, txEnd: rollbackTx}, rolledBackAll)
}

// controlOp is what a request that steers the session's transaction does.
type controlOp struct {
	flush    flushKind
	txEnd    txEnd
	rollback bool
	close    bool
}

func rolledBackAll(s *Session) { s.rolledBack(0) }

// control queues a Flush, Commit, Rollback or Close; done updates the session's objects once
// the server has answered.
func (s *Session) control(ctx context.Context, c controlOp, done func(*Session)) *asyncengine.Future[struct{}] {
	o, f, resolve := newOp[struct{}](ctx)
	o.flush, o.txEnd, o.rollback, o.close = c.flush, c.txEnd, c.rollback, c.close
	o.apply = func(s *Session, _ []*asyncengine.Result) error {
		if done != nil {
			done(s)
		}
		resolve(struct{}{}, nil)
		return nil
	}
	s.submit(o)
	return f
}

// Close rolls back what was not committed, returns the connections and waits until the
// session's goroutine has exited. Later calls fail with ErrSessionClosed, but Close, which
// returns nil again.
func (s *Session) Close() error {
	f := s.control(context.Background(), controlOp{rollback: true, txEnd: rollbackTx, close: true}, rolledBackAll)
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
	// its objects stay readable, but another session may take them now
	s.closeOwnership()
	s.mu.Unlock()
	return err
}

// Execute runs a statement in the session's transaction (after an autoflush) and returns its result.
func (s *Session) Execute(ctx context.Context, sql string, args ...any) *asyncengine.Future[*asyncengine.Result] {
	if err := s.opts.bindErr; err != nil {
		return failed[*asyncengine.Result](err)
	}
	if err := s.opts.engine.Dialect().OneStatement(sql); err != nil {
		return failed[*asyncengine.Result](err)
	}
	sql, args, err := s.opts.engine.Dialect().Bind(sql, args)
	if err != nil {
		return failed[*asyncengine.Result](err)
	}
	t, err := s.oneTarget(ctx, nil, "Execute", sql, args)
	if err != nil {
		return failed[*asyncengine.Result](err)
	}
	f, resolve := asyncengine.NewPromise[*asyncengine.Result]()
	o := &op{ctx: ctx, engine: t.e, autoflush: flushAll, reads: readsSQL(sql, ""), result: resolve, replicaOK: true}
	o.statement(asyncengine.Statement{SQL: sql, Args: args})
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
	if s.opts.shards != nil {
		return failed[*Savepoint](errors.New("gosqla: BeginNested on a sharded session: a savepoint on one shard cannot undo the work of the others"))
	}
	o, f, resolve := newOp[*Savepoint](ctx)
	o.flush = flushAll
	var sp *Savepoint
	o.build = func(s *Session) ([]asyncengine.Statement, error) {
		s.gen++
		sp = &Savepoint{s: s, name: fmt.Sprintf("gosqla_sp_%d", s.gen), gen: s.gen}
		return []asyncengine.Statement{{SQL: savepointSQL(sp.name)}}, nil
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
		return []asyncengine.Statement{{SQL: releaseSQL(sp.name)}}, nil
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
		return []asyncengine.Statement{{SQL: rollbackToSQL(sp.name)}, {SQL: releaseSQL(sp.name)}}, nil
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
	t, err := s.oneTarget(ctx, nil, "RunSync", "", nil)
	if err != nil {
		return failed[struct{}](err)
	}
	o, f, resolve := newOp[struct{}](ctx)
	o.engine = t.e
	o.run = func(ctx context.Context, c *asyncengine.Conn) error {
		// the connection is the session's again only once fn has returned: wait for that even
		// when ctx ends first (fn sees ctx end too)
		_, err := asyncengine.Go(ctx, t.e.Workers(), func(ctx context.Context) (struct{}, error) {
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

// Refresh reloads obj (a loaded object) from the database, discarding unflushed changes. When
// its row is gone the Refresh fails with an error matching asyncengine.ErrNoRows, and only it:
// the transaction goes on, and the object stays in the session, with its unflushed changes
// (which the next flush fails to write, ErrStaleObject), until Expunge.
func (s *Session) Refresh(ctx context.Context, obj any) *asyncengine.Future[struct{}] {
	o, f, resolve := newOp[struct{}](ctx)
	m, err := objectModel(obj)
	if err != nil {
		return failed[struct{}](err)
	}
	o.engine = s.engineFor(m)
	o.replicaOK = true
	s.mu.Lock()
	if in, ok := s.objects.get(obj); ok {
		o.engine = s.engineOf(in)
	}
	s.mu.Unlock()
	o.build = func(s *Session) ([]asyncengine.Statement, error) {
		in, ok := s.objects.get(obj)
		if !ok || in.state == statePending {
			return nil, fmt.Errorf("gosqla: Refresh of a %T that is not loaded in this session", obj)
		}
		return []asyncengine.Statement{{SQL: selectByPK(o.engine.Dialect(), m), Args: loadedPK(in)}}, nil
	}
	o.apply = func(s *Session, rs []*asyncengine.Result) error {
		in := s.objects.of(obj)
		if rs[0].Len() == 0 {
			// a read that found nothing: the Refresh fails, the transaction goes on (its writes
			// are as they were), and the object stays until expunged
			resolve(struct{}{}, fmt.Errorf("gosqla: Refresh: %T with key %v no longer exists; Expunge it: %w", obj, in.pk, asyncengine.ErrNoRows))
			return nil
		}
		if err := in.load(rs[0], 0); err != nil {
			return err
		}
		s.columnsReloaded(in)
		resolve(struct{}{}, nil)
		return nil
	}
	s.submit(o)
	return f
}

// Get returns the object with primary key pk: from the identity map without SQL when it is loaded
// and not expired, else by a query that pipelines with the session's other requests. It is nil
// when no row has that key. A key of several columns is a []any of their values in the key's
// column order (Get[OrderLine](ctx, s, []any{orderID, 2})); each value is converted to its
// field's type as a scan would, so that 7, int64(7) and "7" find the same object.
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
	return fetch(ctx, s, m, key, args, func(_ *Session, in *instance) (*T, error) {
		if in == nil || in.state == stateDeleted {
			return nil, nil
		}
		return in.ptr.(*T), nil
	})
}

// Select runs a query (after an autoflush) and returns its rows as objects of type T, merged
// into the identity map: a row whose key is loaded returns the loaded object (refreshed if
// expired). Arguments are positional or one asyncengine.Named. In a sharded session it runs on
// every shard the chooser's Query names at once, and returns their rows in the order of the
// shards.
func Select[T any](ctx context.Context, s *Session, sql string, args ...any) *asyncengine.Future[[]*T] {
	m, err := modelOf((*T)(nil))
	if err != nil {
		return failed[[]*T](err)
	}
	if err := s.opts.bindErr; err != nil {
		return failed[[]*T](err) // before the statement is read by a dialect that may be wrong
	}
	e := s.engineFor(m)
	d := e.Dialect()
	if err := d.OneStatement(sql); err != nil {
		return failed[[]*T](err)
	}
	sql, args, err = d.Bind(sql, args)
	if err != nil {
		return failed[[]*T](err)
	}
	ts := []shardTarget{{e: e}}
	if s.sharded(m) {
		if ts, err = s.targets(ctx, m, queryChooser(m, sql, args)); err != nil {
			return failed[[]*T](err)
		}
	}
	if len(ts) == 1 {
		f, resolve := asyncengine.NewPromise[[]*T]()
		s.submit(selectOp(ctx, m, sql, args, ts[0], resolve))
		return f
	}
	g, f := gather(shardNames(ts), func(parts [][]*T) ([]*T, error) {
		var out []*T
		for _, p := range parts {
			out = append(out, p...)
		}
		return out, nil
	})
	ops := make([]*op, len(ts))
	for i, t := range ts {
		ops[i] = selectOp(ctx, m, sql, args, t, func(out []*T, err error) { g.done(i, out, err) })
	}
	s.submit(ops...)
	return f
}

// selectOp is the request of a Select on shard t; resolve receives its objects or its error.
func selectOp[T any](ctx context.Context, m *structmap.Model, sql string, args []any, t shardTarget, resolve func([]*T, error)) *op {
	o := &op{ctx: ctx, engine: t.e, autoflush: flushAll, reads: readsSQL(sql, tableWord(m)), fail: func(err error) { resolve(nil, err) }, replicaOK: true}
	o.statement(asyncengine.Statement{SQL: sql, Args: args})
	o.apply = func(s *Session, rs []*asyncengine.Result) error {
		if err := wholeRows(m, rs[0].Columns()); err != nil {
			return err
		}
		out, err := loadAll[T](s, m, rs[0], false, t.name)
		if err != nil {
			return err
		}
		resolve(out, nil)
		return nil
	}
	return o
}
