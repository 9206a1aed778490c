package asyncsession

import (
	"context"
	"iter"
	"reflect"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/internal/structmap"
)

// Stream runs a query in the session's transaction (after an autoflush) and yields its rows as
// objects of type T as they arrive, without holding the result: a loop over a million rows takes
// the memory of one. Streamed objects stay outside the identity map. The session serves its other
// requests after the loop ends, so the loop body must not wait for one of them; ending the loop
// early discards the rest of the result. Like Select, it refuses rows that leave out a mapped
// column or return one no field maps (a *MappingError). Cancelling ctx stops the query and, like any failed
// statement, leaves the transaction to be rolled back.
func Stream[T any](ctx context.Context, s *Session, sql string, args ...any) iter.Seq2[*T, error] {
	return func(yield func(*T, error) bool) {
		m, err := structmap.Of(reflect.TypeFor[T]())
		if err != nil {
			yield(nil, err)
			return
		}
		if s.opts.bindErr == nil && s.sharded(m) {
			// the chooser sees the statement as sent: named arguments made positional (the
			// connection binds it for the other sessions)
			if sql, args, err = s.engineFor(m).Dialect().Bind(sql, args); err != nil {
				yield(nil, err)
				return
			}
		}
		t, err := s.oneTarget(ctx, m, "Stream", sql, args)
		if err != nil {
			yield(nil, err)
			return
		}
		o, f, resolve := newOp[struct{}](ctx)
		o.engine = t.e
		conns := make(chan *asyncengine.Conn)
		done := make(chan error, 1)
		o.run = func(ctx context.Context, c *asyncengine.Conn) error {
			select {
			case conns <- c:
			case <-ctx.Done():
				return ctx.Err()
			}
			err := <-done
			if err == nil {
				resolve(struct{}{}, nil)
			}
			return err
		}
		s.submit(o)
		var c *asyncengine.Conn
		select {
		case c = <-conns:
		case <-f.Done():
			_, err := f.Await(ctx)
			yield(nil, err)
			return
		}
		var failure error
		defer func() {
			done <- failure
			_, _ = f.Await(context.WithoutCancel(ctx))
		}()
		rows := c.Stream(ctx, sql, args...)
		whole := func(yield func(*asyncengine.Row, error) bool) {
			// rows must carry every mapped column, as Select's do: no object with zero fields
			first := true
			for r, err := range rows {
				if err == nil && first {
					first = false
					if err = wholeRows(m, r.Columns()); err != nil {
						yield(nil, err)
						return
					}
				}
				if !yield(r, err) {
					return
				}
			}
		}
		for v, err := range asyncengine.ScanEach[T](whole) {
			if err != nil {
				failure = err
				yield(nil, err)
				return
			}
			if !yield(&v, nil) {
				return
			}
		}
	}
}
