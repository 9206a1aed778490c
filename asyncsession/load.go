package asyncsession

import (
	"context"
	"database/sql/driver"
	"fmt"
	"reflect"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/internal/structmap"
)

// Load loads relationship name (the Go field name) of obj, an object of the session, into its
// field, and returns a future: loads issued together — for many objects — travel as one
// pipeline, so loading the books of a thousand authors one by one costs one round trip, not a
// thousand. A relationship already loaded is not loaded again.
//
// name may be a path of relationships joined by dots, "Books.Tags": the books load, then the tags
// of every book obj holds, loaded now or before, with one more query for all of them; a path of
// d steps takes d round trips.
func Load(ctx context.Context, s *Session, obj any, name string) *asyncengine.Future[struct{}] {
	return loadRelation(ctx, s, []any{obj}, name, false)
}

// LoadAll loads relationship name of every object of objs with one query (selectin):
// = ANY($1) on PostgreSQL, an IN list on SQLite (several lists when the keys exceed its
// parameter limit). name may be a path, "Books.Tags", as for Load: one query per step, for the
// objects of that step of every object of objs, each object once.
func LoadAll[T any](ctx context.Context, s *Session, objs []*T, name string) *asyncengine.Future[struct{}] {
	return loadRelation(ctx, s, anys(objs), name, false)
}

// anys returns objs as a []any.
func anys[T any](objs []*T) []any {
	all := make([]any, len(objs))
	for i, o := range objs {
		all[i] = o
	}
	return all
}

// Reload reads relationship name of obj again, loaded or not, as Load does the first time: what
// another transaction committed since shows as the session's transaction sees it (on SQLite, and
// under REPEATABLE READ, a transaction open since before does not see it: end it first), and a
// path ("Books.Tags") reads every step again.
// Like every query it autoflushes first, so the changes made to the relationship are written
// before it is read; under NoAutoflush they are replaced by what the database holds, except
// objects added to a collection and not written yet, which stay after the loaded rows.
func Reload(ctx context.Context, s *Session, obj any, name string) *asyncengine.Future[struct{}] {
	return loadRelation(ctx, s, []any{obj}, name, true)
}

// ReloadAll is Reload for every object of objs, with one query per step as LoadAll.
func ReloadAll[T any](ctx context.Context, s *Session, objs []*T, name string) *asyncengine.Future[struct{}] {
	return loadRelation(ctx, s, anys(objs), name, true)
}

// Related returns relationship name of obj as its field holds it (T is the field's type, *U or
// []*U), or an error matching ErrNotLoaded when the session has not loaded it: an unloaded
// collection is not read as empty.
func Related[T any](s *Session, obj any, name string) (T, error) {
	var zero T
	m, err := objectModel(obj)
	if err != nil {
		return zero, err
	}
	r, err := relationOf(m, name)
	if err != nil {
		return zero, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.objects.get(obj)
	if !ok {
		return zero, fmt.Errorf("%w: a %T; load it first (Get or Select), or flush to add an object reachable from one the session holds", ErrNotInSession, obj)
	}
	if !whole(in, r) {
		return zero, fmt.Errorf("gosqla: %s.%s of the object with key %v: %w; call Load or LoadAll, or query with Query.Load", m.Type, name, pkValue(in), ErrNotLoaded)
	}
	v, ok := r.field(in.v).Interface().(T)
	if !ok {
		ft := r.field(in.v).Type()
		return zero, &MappingError{Type: m.Type.String(), Field: name, Reason: fmt.Sprintf("is a %s, not a %T; call Related[%s]", ft, zero, ft)}
	}
	return v, nil
}

func loadRelation(ctx context.Context, s *Session, objs []any, name string, again bool) *asyncengine.Future[struct{}] {
	if len(objs) == 0 {
		return asyncengine.Ready(struct{}{}, nil)
	}
	m, err := objectModel(objs[0])
	if err != nil {
		return failed[struct{}](err)
	}
	path, err := relationPath(m, name)
	if err != nil {
		return failed[struct{}](err)
	}
	// every step loads selectin: its objects are in the session already, not in a query to join
	steps := resolveSteps(addPath(nil, path, SelectIn), false)
	f, resolve := asyncengine.NewPromise[struct{}]()
	pl := &pathLoad{ctx: ctx, again: again, done: func(err error) { resolve(struct{}{}, err) }}
	s.mu.Lock()
	ops := s.follow(pl, steps, objs)
	s.mu.Unlock()
	// a relationship stays on its owner's shard: each shard's owners load there, all at once
	s.submit(pl.start(ops)...)
	return f
}

// byShard groups objs by the shard of their session objects, in order of first appearance; an
// unsharded session has one group. Called locked.
func (s *Session) byShard(objs []any) (shards []string, groups [][]any) {
	if s.opts.shards == nil {
		return []string{""}, [][]any{objs}
	}
	at := map[string]int{}
	for _, obj := range objs {
		var shard string
		if in, ok := s.objects.get(obj); ok {
			shard = in.shard
		}
		k, ok := at[shard]
		if !ok {
			k = len(groups)
			at[shard] = k
			shards = append(shards, shard)
			groups = append(groups, nil)
		}
		groups[k] = append(groups[k], obj)
	}
	return shards, groups
}

// relTarget is where relationship r of an owner on shard loads: the same shard, or the engine of
// an unsharded target model.
func (s *Session) relTarget(r *relation, shard string) shardTarget {
	if shard == "" || !s.sharded(r.target) {
		return shardTarget{e: s.engineFor(r.target)}
	}
	e, _ := s.opts.shards.set.Shard(shard)
	return shardTarget{name: shard, e: e}
}

// loadOp is the request that loads r for owners objs from t; done is called once loaded, fail
// with the request's error.
func loadOp(ctx context.Context, r *relation, objs []any, t shardTarget, again bool, done func(), fail func(error)) *op {
	o := &op{ctx: ctx, engine: t.e, autoflush: flushAll, reads: readsTable(tableWord(r.target)), fail: fail, replicaOK: true}
	var l *relLoad
	o.build = func(s *Session) ([]asyncengine.Statement, error) {
		var err error
		l, err = s.planLoad(r, objs, t, again)
		return l.stmts, err
	}
	o.apply = func(s *Session, rs []*asyncengine.Result) error {
		if err := s.applyLoad(l, rs); err != nil {
			return err
		}
		done()
		return nil
	}
	return o
}

// relLoad is one load of a relationship for a set of owners.
type relLoad struct {
	r      *relation
	shard  string // where the owners and the loaded rows live
	owners []*instance
	stmts  []asyncengine.Statement
}

// planLoad picks the owners whose relationship is not loaded (again: every owner with a row) and
// builds their queries. Called locked.
func (s *Session) planLoad(r *relation, objs []any, t shardTarget, again bool) (*relLoad, error) {
	l := &relLoad{r: r, shard: t.name}
	d := t.e.Dialect()
	seen := map[any]bool{}
	var keys []any
	for i, obj := range objs {
		if v := reflect.ValueOf(obj); !v.IsValid() || (v.Kind() == reflect.Pointer && v.IsNil()) {
			return l, fmt.Errorf("gosqla: loading %s.%s: object %d is nil: %w", r.owner.Type, r.name, i, ErrNilObject)
		}
		in, ok := s.objects.get(obj)
		if !ok || reflect.TypeOf(obj) != reflect.PointerTo(r.owner.Type) {
			return l, fmt.Errorf("%w: loading %s.%s: object %d (%T) is not a %s of this session; load it first (Get or Select)", ErrNotInSession, r.owner.Type, r.name, i, obj, r.owner.Type)
		}
		if again && in.state == statePending {
			continue // no row yet: nothing to read
		}
		if !again && whole(in, r) {
			continue // loaded already, or the application's own
		}
		key := pkValue(in)
		if r.kind == manyToOne {
			var ok bool
			if key, ok = refKey(r.fk.Value(in.v), r.target.PK[0]); !ok {
				return l, fmt.Errorf("gosqla: loading %s.%s: %s holds %v, which no key of %s (%s) can equal", r.owner.Type, r.name, r.fk.Column, r.fk.Value(in.v), r.target.Table, r.target.PK[0].Type)
			}
			if key == nil {
				in.setLoaded(r, reflect.Zero(r.field(in.v).Type()))
				continue
			}
			if t := s.identity.get(identityKey{t: r.target.Type, pk: key, shard: t.name}); t != nil && !t.expired {
				in.setLoaded(r, reflect.ValueOf(t.ptr))
				continue
			}
		}
		l.owners = append(l.owners, in)
		if !seen[key] {
			seen[key] = true
			keys = append(keys, key)
		}
	}
	// SQLite binds each key of an IN list: a list longer than its parameter limit is split
	chunk := len(keys)
	if d.Name() != "postgresql" {
		chunk = d.MaxParams
	}
	for len(keys) > 0 {
		n := min(chunk, len(keys))
		sql, args := relatedSQL(d, r, keys[:n])
		l.stmts = append(l.stmts, asyncengine.Statement{SQL: sql, Args: args})
		keys = keys[n:]
	}
	return l, nil
}

// applyLoad merges the loaded rows into the identity map and sets each owner's field. Called
// locked.
func (s *Session) applyLoad(l *relLoad, rs []*asyncengine.Result) error {
	r := l.r
	byKey := map[any][]*instance{}
	for _, res := range rs {
		for i := range res.Len() {
			t, err := s.merge(r.target, res, i, false, l.shard)
			if err != nil {
				return err
			}
			var key any
			switch r.kind {
			case manyToMany:
				owner := reflect.New(r.owner.PK[0].Type)
				dest := make([]any, len(res.Columns()))
				dest[0] = owner.Interface()
				if err := res.ScanRow(i, dest...); err != nil {
					return err
				}
				key = owner.Elem().Interface()
			case manyToOne:
				key = pkValue(t)
			default:
				key, _ = refKey(r.fk.Value(t.v), r.owner.PK[0])
			}
			byKey[key] = append(byKey[key], t)
		}
	}
	b := r.backref()
	for _, in := range l.owners {
		key := pkValue(in)
		if r.kind == manyToOne {
			key, _ = refKey(r.fk.Value(in.v), r.target.PK[0])
		}
		found := byKey[key]
		fv := r.field(in.v)
		if r.many() {
			out := reflect.MakeSlice(fv.Type(), 0, len(found))
			for _, t := range found {
				out = reflect.Append(out, reflect.ValueOf(t.ptr))
				if b != nil && b.kind == manyToOne {
					t.pointAt(b, in)
				}
			}
			added := unsynced(fv, found, in.rels[r])
			in.setLoaded(r, reflect.Append(out, added...))
			if len(added) > 0 {
				st := in.rels[r]
				st.members, st.header = st.members[:len(found)], [2]uintptr{}
			}
			continue
		}
		switch {
		case len(found) == 0 && r.kind == manyToOne:
			return fmt.Errorf("gosqla: %s.%s references key %v, which no row of %s has: %w", r.owner.Type, r.name, key, r.target.Table, asyncengine.ErrNoRows)
		case len(found) == 0:
			in.setLoaded(r, reflect.Zero(fv.Type()))
		case len(found) > 1:
			return fmt.Errorf("gosqla: %s.%s is one object, but %d rows of %s have %s = %v; make it a collection ([]*%s)", r.owner.Type, r.name, len(found), r.target.Table, r.fk.Column, key, r.target.Type.Name())
		default:
			in.setLoadedOne(r, found[0])
		}
	}
	return nil
}

// unsynced returns the members of collection fv that the application added and no flush has
// written yet (under NoAutoflush), nil ones included (the next flush refuses them): those that
// are neither among the rows loaded now nor among the members st synced. A member synced before
// and not loaded now was removed by another transaction.
func unsynced(fv reflect.Value, loaded []*instance, st *relState) []reflect.Value {
	if fv.Len() == 0 {
		return nil // the usual case: a collection loaded for the first time
	}
	known := make(map[any]bool, len(loaded))
	for _, t := range loaded {
		known[t.ptr] = true
	}
	if st != nil && st.loaded {
		for _, m := range st.members {
			known[m] = true
		}
	}
	var out []reflect.Value
	for i := range fv.Len() {
		if m := fv.Index(i); m.IsNil() || !known[m.Interface()] {
			out = append(out, m)
		}
	}
	return out
}

// isNull reports a value that is SQL's NULL: nil, a nil pointer, a driver.Valuer whose value is
// nil (sql.NullInt64{}).
func isNull(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer && rv.IsNil() {
		return true
	}
	if vl, ok := v.(driver.Valuer); ok {
		x, err := vl.Value()
		return err == nil && x == nil
	}
	return false
}

// sameKey reports whether fk, the value of a foreign key, refers to key, a value of the key
// field pk.
func sameKey(fk any, pk *structmap.Field, key any) bool {
	k, ok := refKey(fk, pk)
	if !ok || k == nil || key == nil {
		return false
	}
	if !reflect.TypeOf(k).Comparable() {
		return reflect.DeepEqual(k, key)
	}
	return k == key
}

// refKey is the key that v, the value of a foreign key, refers to, as a value of the key field
// pk's own type, as the identity map and the loaded rows hold it: a pointer or a driver.Valuer
// (sql.NullInt64) gives the value it holds, and a value of another type is stored as the key's
// type as a scan stores it (an int32 or a sql.NullInt64 finds an int64 key, a string a
// `type Sku string` key, a uuid's text a [16]byte key). nil for NULL; ok is false for a value no
// key of that type can equal.
func refKey(v any, pk *structmap.Field) (key any, ok bool) {
	if v == nil {
		return nil, true
	}
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer && rv.Type() != pk.Type {
		if rv.IsNil() {
			return nil, true
		}
		rv = rv.Elem()
	}
	if rv.Type() == pk.Type {
		return rv.Interface(), true
	}
	x := rv.Interface()
	if vl, isValuer := x.(driver.Valuer); isValuer {
		val, err := vl.Value()
		if err != nil {
			return nil, false
		}
		if val == nil {
			return nil, true
		}
		x = val
	}
	x, err := uuidText(x, pk.Type)
	if err != nil {
		return nil, false
	}
	out := reflect.New(pk.Type)
	if err := structmap.Assign(out.Interface(), x); err != nil {
		return nil, false
	}
	return out.Elem().Interface(), true
}
