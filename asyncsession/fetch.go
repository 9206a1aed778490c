package asyncsession

import (
	"context"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/internal/structmap"
)

// fetch finds the object of key — in the identity map, or by a query — and completes the future
// with what finish makes of it (nil: no such row). In a sharded session the shards the chooser's
// Key names are searched at once, and the first in its order that holds the row wins.
func fetch[T any](ctx context.Context, s *Session, m *structmap.Model, key identityKey, args []any, finish func(*Session, *instance) (T, error)) *asyncengine.Future[T] {
	f, resolve := asyncengine.NewPromise[T]()
	fetchThen(ctx, s, m, key, args, finish, resolve)
	return f
}

// fetchThen is fetch, handing its answer to resolve: under the session's lock when it succeeds.
func fetchThen[T any](ctx context.Context, s *Session, m *structmap.Model, key identityKey, args []any, finish func(*Session, *instance) (T, error), resolve func(T, error)) {
	ts := []shardTarget{{e: s.engineFor(m)}}
	if s.sharded(m) {
		var err error
		if ts, err = s.targets(ctx, m, func(c *ShardChooser) ([]string, error) {
			if c.Key == nil {
				return nil, nil
			}
			if len(args) == 1 {
				return c.Key(m.Type, args[0])
			}
			return c.Key(m.Type, args)
		}); err != nil {
			var zero T
			resolve(zero, err)
			return
		}
	}
	if fetchLoaded(s, key, ts, finish, resolve) {
		return
	}
	if len(ts) == 1 {
		s.submit(fetchOp(ctx, m, key, args, ts[0], finish, resolve))
		return
	}
	// the answers are joined on the drainer, under the session's lock, by the last one's apply
	g := gatherInto(shardNames(ts), func(found []*instance) (T, error) {
		for _, in := range found {
			if in != nil {
				return finish(s, in)
			}
		}
		return finish(s, nil)
	}, resolve)
	ops := make([]*op, len(ts))
	for i, t := range ts {
		ops[i] = fetchOp(ctx, m, key, args, t, found, func(in *instance, err error) { g.done(i, in, err) })
	}
	s.submit(ops...)
}

// found is the finish of a fetch on one of several shards: the object itself.
func found(_ *Session, in *instance) (*instance, error) { return in, nil }

// fetchLoaded serves a fetch without SQL, under the session's lock: from the object of key
// loaded on the first of ts that has it, or with the session's reason to serve nothing. False: a
// query must look.
func fetchLoaded[T any](s *Session, key identityKey, ts []shardTarget, finish func(*Session, *instance) (T, error), resolve func(T, error)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.unusable(); err != nil {
		var zero T
		resolve(zero, err)
		return true
	}
	for _, t := range ts {
		key.shard = t.name
		if in := s.identity.get(key); in != nil && !in.expired {
			resolve(finish(s, in))
			return true
		}
	}
	return false
}

// fetchOp is the request for the row of key on shard t: resolve receives what finish makes of
// its object (nil: no such row), or the request's error.
func fetchOp[T any](ctx context.Context, m *structmap.Model, key identityKey, args []any, t shardTarget, finish func(*Session, *instance) (T, error), resolve func(T, error)) *op {
	key.shard = t.name
	o := &op{ctx: ctx, engine: t.e, autoflush: flushInserts, fail: func(err error) { var zero T; resolve(zero, err) }, replicaOK: true}
	o.statement(asyncengine.Statement{SQL: selectByPK(t.e.Dialect(), m), Args: args})
	o.build = func(s *Session) ([]asyncengine.Statement, error) {
		if in := s.identity.get(key); in != nil && !in.expired {
			return nil, nil // loaded by a request ahead of this one
		}
		return o.stmts, nil
	}
	o.apply = func(s *Session, rs []*asyncengine.Result) error {
		var in *instance
		switch {
		case len(rs) == 0:
			in = s.identity.get(key)
		case rs[0].Len() > 0:
			var err error
			if in, err = s.merge(m, rs[0], 0, false, t.name); err != nil {
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
	return o
}
