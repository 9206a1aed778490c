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
	if !s.sharded(m) {
		return fetchOne(ctx, s, m, key, args, shardTarget{e: s.engineFor(m)}, finish)
	}
	ts, err := s.targets(ctx, m, func(c *ShardChooser) ([]string, error) {
		if c.Key == nil {
			return nil, nil
		}
		if len(args) == 1 {
			return c.Key(m.Type, args[0])
		}
		return c.Key(m.Type, args)
	})
	if err != nil {
		return failed[T](err)
	}
	s.mu.Lock()
	if err := s.unusable(); err != nil {
		s.mu.Unlock()
		return failed[T](err)
	}
	for _, t := range ts {
		key.shard = t.name
		if in, ok := s.identity[key]; ok && !in.expired {
			v, err := finish(s, in)
			s.mu.Unlock()
			return asyncengine.Ready(v, err)
		}
	}
	s.mu.Unlock()
	if len(ts) == 1 {
		return fetchOne(ctx, s, m, key, args, ts[0], finish)
	}
	// the answers are joined on the drainer, under the session's lock, by the last one's apply
	g, f := gather(shardNames(ts), func(found []*instance) (T, error) {
		for _, in := range found {
			if in != nil {
				return finish(s, in)
			}
		}
		return finish(s, nil)
	})
	ops := make([]*op, len(ts))
	for i, t := range ts {
		ops[i] = fetchOp(ctx, m, key, args, t, func(_ *Session, in *instance) error {
			g.done(i, in, nil)
			return nil
		}, func(err error) { g.done(i, nil, err) })
	}
	s.submit(ops...)
	return f
}

// fetchOne is fetch on one shard (or an unsharded model's engine).
func fetchOne[T any](ctx context.Context, s *Session, m *structmap.Model, key identityKey, args []any, t shardTarget, finish func(*Session, *instance) (T, error)) *asyncengine.Future[T] {
	key.shard = t.name
	if t.name == "" {
		// the identity map was not looked in yet
		s.mu.Lock()
		if err := s.unusable(); err != nil {
			s.mu.Unlock()
			return failed[T](err)
		}
		if in, ok := s.identity[key]; ok && !in.expired {
			v, err := finish(s, in)
			s.mu.Unlock()
			return asyncengine.Ready(v, err)
		}
		s.mu.Unlock()
	}
	f, resolve := asyncengine.NewPromise[T]()
	s.submit(fetchOp(ctx, m, key, args, t, func(s *Session, in *instance) error {
		v, err := finish(s, in)
		if err != nil {
			return err
		}
		resolve(v, nil)
		return nil
	}, func(err error) { var zero T; resolve(zero, err) }))
	return f
}

// fetchOp is the request for the row of key on shard t; found receives its object (nil: no such
// row), fail the request's error.
func fetchOp(ctx context.Context, m *structmap.Model, key identityKey, args []any, t shardTarget, found func(*Session, *instance) error, fail func(error)) *op {
	key.shard = t.name
	sql := selectByPK(t.e.Dialect(), m)
	o := &op{ctx: ctx, engine: t.e, autoflush: flushInserts, fail: fail}
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
			if in, err = s.merge(m, rs[0], 0, false, t.name); err != nil {
				return err
			}
		}
		return found(s, in)
	}
	return o
}
