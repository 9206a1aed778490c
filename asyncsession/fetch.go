package asyncsession

import (
	"context"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/internal/structmap"
)

// fetch finds the object of key — in the identity map, or by a query — and completes the future
// with what finish makes of it (nil: no such row).
func fetch[T any](ctx context.Context, s *Session, m *structmap.Model, key identityKey, args []any, finish func(*Session, *instance) (T, error)) *asyncengine.Future[T] {
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
