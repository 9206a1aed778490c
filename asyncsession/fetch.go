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
