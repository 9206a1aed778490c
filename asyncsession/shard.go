package asyncsession

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/internal/structmap"
)

// ErrOneShard is matched by the error of a call that runs on one shard (Execute, the query
// builder, RunSync, Stream, Upsert, InsertMany, InsertSeq) when its context names no single shard
// and the ShardChooser's Query does not choose exactly one.
var ErrOneShard = errors.New("gosqla: the call runs on one shard")

// ErrCrossShard is matched by the error of a flush that would join objects of two shards by a
// relationship.
var ErrCrossShard = errors.New("gosqla: a relationship cannot cross shards")

// ShardChooser tells a sharded session where rows live, as SQLAlchemy's horizontal sharding's
// three choosers do. Only Object is required. Every name it returns must be one of the ShardSet's:
// another is an *asyncengine.UnknownShardError, and nothing is read or written elsewhere. The
// session never holds its lock while it calls a chooser, so a chooser may call the session (to
// ask ShardOf an object's parent, say).
type ShardChooser struct {
	// Object names the shard of a new object, when it is given to Add (or to Merge when no shard
	// holds its key; Merge asks before it looks): a field changed later does not move it. An object reached from it by a
	// relationship goes to the same shard: a relationship never crosses shards, as a foreign key
	// does not cross databases. A session that adds no objects needs no Object.
	Object func(obj any) (string, error)
	// Key names the shards that may hold the row of model (a struct type) whose primary key is pk,
	// in the order Get searches them: the first that has the row wins. Nil, or no names: every
	// shard, in the order of their names. Merge finds the object it copies onto the same way. A
	// composite key arrives as a []any of its columns' values, in the key's order.
	Key func(model reflect.Type, pk any) ([]string, error)
	// Query names the shards a Select on model runs on, and the one shard of a call that runs on
	// one (model is nil for Execute and RunSync); sql and args are the statement as sent, empty
	// for RunSync, Upsert, InsertMany and InsertSeq (name the shard with OnShard for those), and
	// named arguments are already positional. Nil, or no names: every shard, in the order of
	// their names.
	Query func(model reflect.Type, sql string, args []any) ([]string, error)
}

// sharding is a session's shards and how it chooses among them.
type sharding struct {
	set     *asyncengine.ShardSet
	names   []string // set.Names(), read once
	chooser ShardChooser
}

// shardTarget is a shard a request runs on: "" and the model's engine in an unsharded session.
type shardTarget struct {
	name string
	e    *asyncengine.Engine
}

// NewSharded returns a session over the shards of set (all of one dialect: the session fails
// every call otherwise) (SQLAlchemy's horizontal sharding): new
// objects go to the shard chooser.Object names, Get asks chooser.Key, Select chooser.Query, and a
// request on several shards runs on all of them at once, one pipeline each. Objects are known by
// shard and key: the same key on two shards is two objects. Each shard has its own transaction;
// Commit commits them at once, and there is no atomicity across shards: one may commit while
// another fails. Models given to Bind stay on their engine, unsharded.
//
// A call that can run on one shard only (Execute, the query builder, RunSync, Stream, Upsert,
// InsertMany, InsertSeq) runs where its context's OnShard says, for Upsert and InsertMany where
// chooser.Object names one shard for every object, or where chooser.Query names exactly one
// shard; else it fails with ErrOneShard. BeginNested is refused: a savepoint on one
// shard cannot undo the others' work.
func NewSharded(set *asyncengine.ShardSet, chooser ShardChooser, opts ...Option) *Session {
	return newSession(shardedOptions(set, chooser, opts))
}

// NewShardedMaker returns a Maker of sharded sessions (see NewSharded).
func NewShardedMaker(set *asyncengine.ShardSet, chooser ShardChooser, opts ...Option) *Maker {
	return &Maker{shards: &sharding{set: set, chooser: chooser}, opts: opts}
}

func shardedOptions(set *asyncengine.ShardSet, chooser ShardChooser, opts []Option) options {
	if set == nil {
		o := defaultOptions(nil)
		o.bindErr = &asyncengine.ConfigError{Key: "shards", Err: errors.New("a nil ShardSet")}
		return o
	}
	names := set.Names()
	first, _ := set.Shard(names[0])
	o := defaultOptions(first)
	for _, name := range names[1:] {
		if e, _ := set.Shard(name); e.Dialect().Name() != first.Dialect().Name() {
			o.bindErr = &asyncengine.ConfigError{Key: "shards", Value: name,
				Err: fmt.Errorf("shard %q is %s and shard %q %s: a sharded session needs one dialect", names[0], first.Dialect().Name(), name, e.Dialect().Name())}
		}
	}
	o.shards = &sharding{set: set, names: names, chooser: chooser}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

type onShardKey struct{}

// OnShard returns a context whose requests on a sharded session run on the named shards, whatever
// the ShardChooser says: a Get searches them in order, a Select runs on each, and a call that runs
// on one shard needs exactly one name. Sessions that are not sharded ignore it.
func OnShard(ctx context.Context, shards ...string) context.Context {
	return context.WithValue(ctx, onShardKey{}, shards)
}

// ShardOf returns the shard of obj, an object of the session: where it was loaded from, or where
// it is to be inserted. ok is false for an object the session does not hold, or one that is not
// sharded (a session without shards, a model given to Bind).
func (s *Session) ShardOf(obj any) (shard string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, held := s.objects.get(obj)
	if !held || in.shard == "" {
		return "", false
	}
	return in.shard, true
}

// sharded reports whether objects of m have a shard in this session.
func (s *Session) sharded(m *structmap.Model) bool {
	if s.opts.shards == nil {
		return false
	}
	_, bound := s.opts.binds[m.Type]
	return !bound
}

// targets are the shards a request on model m, which the session shards, runs on (m is nil for
// a statement of no model in a sharded session): those OnShard names in ctx, else those choose
// names (all when it names none).
func (s *Session) targets(ctx context.Context, m *structmap.Model, choose func(c *ShardChooser) ([]string, error)) ([]shardTarget, error) {
	set := s.opts.shards.set
	names, _ := ctx.Value(onShardKey{}).([]string)
	if names == nil && choose != nil {
		var err error
		if err = asyncengine.CatchPanic(func() error {
			names, err = choose(&s.opts.shards.chooser)
			return err
		}); err != nil {
			return nil, fmt.Errorf("gosqla: the shard chooser: %w", err)
		}
	}
	if len(names) == 0 {
		names = s.opts.shards.names
	}
	out := make([]shardTarget, len(names))
	for i, name := range names {
		e, err := set.Shard(name)
		if err != nil {
			return nil, err
		}
		out[i] = shardTarget{name: name, e: e}
	}
	return out, nil
}

// queryChooser asks the chooser's Query for the shards of a statement on m (nil: no model).
func queryChooser(m *structmap.Model, sql string, args []any) func(c *ShardChooser) ([]string, error) {
	return func(c *ShardChooser) ([]string, error) {
		if c.Query == nil {
			return nil, nil
		}
		var t reflect.Type
		if m != nil {
			t = m.Type
		}
		return c.Query(t, sql, args)
	}
}

// oneTarget is the shard a call that runs on one shard uses (what names the call in the error).
// An unsharded model's target is its engine; a statement of no model in an unsharded session
// runs on the session's engine.
func (s *Session) oneTarget(ctx context.Context, m *structmap.Model, what, sql string, args []any) (shardTarget, error) {
	switch {
	case s.opts.bindErr != nil:
		return shardTarget{}, s.opts.bindErr // the session has no usable engine to name
	case m == nil && s.opts.shards == nil:
		return shardTarget{e: s.opts.engine}, nil
	case m != nil && !s.sharded(m):
		return shardTarget{e: s.engineFor(m)}, nil
	}
	ts, err := s.targets(ctx, m, queryChooser(m, sql, args))
	if err != nil {
		return shardTarget{}, err
	}
	if len(ts) != 1 {
		return shardTarget{}, fmt.Errorf("%w: %s would run on shards %v; name one with asyncsession.OnShard(ctx, name)", ErrOneShard, what, shardNames(ts))
	}
	return ts[0], nil
}

// objectsShard routes a bulk call on objs (Upsert, InsertMany) in a sharded session whose ctx
// names no shard: to the one shard the chooser's Object names for all of them.
func objectsShard[T any](ctx context.Context, s *Session, objs []*T) (context.Context, error) {
	if len(objs) == 0 || s.opts.shards == nil || s.opts.shards.chooser.Object == nil || ctx.Value(onShardKey{}) != nil {
		return ctx, nil
	}
	m, err := modelOf((*T)(nil))
	if err != nil || !s.sharded(m) {
		return ctx, err
	}
	var names []string
	for _, obj := range objs {
		name, err := s.objectShard(obj, m)
		if err != nil {
			return ctx, err
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	if len(names) > 1 {
		return ctx, fmt.Errorf("%w: the objects belong to shards %v; make one call per shard", ErrOneShard, names)
	}
	return OnShard(ctx, names[0]), nil
}

// engineOf is the engine that holds in's row: its shard's, or its model's.
func (s *Session) engineOf(in *instance) *asyncengine.Engine {
	if in.shard != "" {
		e, _ := s.opts.shards.set.Shard(in.shard)
		return e
	}
	return s.engineFor(in.model)
}

// objectShard asks the chooser for the shard of a new object.
func (s *Session) objectShard(obj any, m *structmap.Model) (string, error) {
	if !s.sharded(m) {
		return "", nil
	}
	if s.opts.shards.chooser.Object == nil {
		return "", &asyncengine.ConfigError{Key: "shards", Err: fmt.Errorf("the ShardChooser has no Object function: a new %s has no shard", m.Type)}
	}
	var name string
	err := asyncengine.CatchPanic(func() error {
		var err error
		name, err = s.opts.shards.chooser.Object(obj)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("gosqla: the shard chooser for a new %s: %w", m.Type, err)
	}
	if _, err := s.opts.shards.set.Shard(name); err != nil {
		return "", err
	}
	return name, nil
}

// gathered completes one future with the results of one request per shard (or per object:
// Merge), once every one has answered: the first failure (naming its shard, when it has a
// name), or join of the results in order.
type gathered[V, R any] struct {
	names   []string
	mu      sync.Mutex
	results []V
	left    int
	failed  bool
	join    func([]V) (R, error)
	resolve func(R, error)
}

func gather[V, R any](names []string, join func([]V) (R, error)) (*gathered[V, R], *asyncengine.Future[R]) {
	f, resolve := asyncengine.NewPromise[R]()
	return gatherInto(names, join, resolve), f
}

// gatherInto is gather, handing the joined answer to resolve.
func gatherInto[V, R any](names []string, join func([]V) (R, error), resolve func(R, error)) *gathered[V, R] {
	return &gathered[V, R]{names: names, results: make([]V, len(names)), left: len(names), join: join, resolve: resolve}
}

// shardNames are the names of ts.
func shardNames(ts []shardTarget) []string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.name
	}
	return names
}

// done records shard i's answer.
func (g *gathered[V, R]) done(i int, v V, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.failed {
		return
	}
	if err != nil {
		g.failed = true
		var zero R
		if g.names[i] != "" {
			err = fmt.Errorf("shard %q: %w", g.names[i], err)
		}
		g.resolve(zero, err)
		return
	}
	g.results[i] = v
	if g.left--; g.left == 0 {
		g.resolve(g.join(g.results))
	}
}

// ErrPartialCommit is matched by the error of a Commit over several engines (shards, binds)
// that committed on some and failed on others: a *PartialCommitError says which.
var ErrPartialCommit = errors.New("gosqla: the commit succeeded on some engines only")

// PartialCommitError reports a Commit that committed on the engines named in Committed and
// failed on those in Failed (by shard name in a sharded session). The session stays pending
// rollback; its Rollback keeps the objects of the committed engines as committed and rolls back
// the others'.
type PartialCommitError struct {
	Committed []string
	Failed    map[string]error
}

func (e *PartialCommitError) Error() string {
	var failed []string
	for name, err := range e.Failed {
		failed = append(failed, fmt.Sprintf("%s: %v", name, err))
	}
	slices.Sort(failed)
	return fmt.Sprintf("gosqla: the commit succeeded on %s and failed on %s", strings.Join(e.Committed, ", "), strings.Join(failed, "; "))
}

func (e *PartialCommitError) Is(target error) bool { return target == ErrPartialCommit }

// Unwrap returns the failures, so that errors.As finds a driver's error among them.
func (e *PartialCommitError) Unwrap() []error {
	var errs []error
	for _, err := range e.Failed {
		errs = append(errs, err)
	}
	return errs
}

// partialCommit returns the error of a round whose COMMITs succeeded on some engines and failed
// on others, after recording which committed; nil when all did the same. Called locked.
func (s *Session) partialCommit(parts []part, errs map[*bound]error, failure error) error {
	if failure == nil || len(s.bounds) < 2 {
		return nil
	}
	pe := &PartialCommitError{Failed: map[string]error{}}
	var committed map[*asyncengine.Engine]bool
	for _, p := range parts {
		if !p.commits {
			continue
		}
		if err := errs[p.b]; err != nil {
			pe.Failed[s.engineName(p.b.e)] = err
			continue
		}
		if committed == nil {
			committed = map[*asyncengine.Engine]bool{}
		}
		committed[p.b.e] = true
		pe.Committed = append(pe.Committed, s.engineName(p.b.e))
	}
	if len(pe.Committed) == 0 || len(pe.Failed) == 0 {
		return nil
	}
	s.committedOn = committed
	return pe
}

// engineName names e in errors: its shard, or its URL without the password.
func (s *Session) engineName(e *asyncengine.Engine) string {
	if s.opts.shards != nil {
		for _, name := range s.opts.shards.names {
			if se, _ := s.opts.shards.set.Shard(name); se == e {
				return name
			}
		}
	}
	return e.Config().String()
}
