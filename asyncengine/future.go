package asyncengine

import (
	"context"
	"sync"

	"github.com/gosqla/gosqla/internal/abandon"
)

// Future is the result of an operation that completes later. Await it from any number of
// goroutines; every caller sees the same value and error.
type Future[T any] struct {
	once sync.Once
	done chan struct{}
	val  T
	err  error
	// abandoned, when set, turns the error of an Await that its context ended into what the
	// operation's caller needs to know then (a COMMIT whose outcome is not known yet)
	abandoned func(ctxErr error) error
}

func init() {
	abandon.Set = func(f any, fn func(error) error) { f.(abandonable).setAbandoned(fn) }
}

type abandonable interface{ setAbandoned(func(error) error) }

func (f *Future[T]) setAbandoned(fn func(error) error) { f.abandoned = fn }

// NewPromise returns a pending future and the function that completes it. Only the first call of
// resolve counts.
func NewPromise[T any]() (*Future[T], func(T, error)) {
	f := &Future[T]{done: make(chan struct{})}
	return f, f.resolve
}

// Ready returns a future that is already complete.
func Ready[T any](v T, err error) *Future[T] {
	f := &Future[T]{done: closedChan, val: v, err: err}
	f.once.Do(func() {})
	return f
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (f *Future[T]) resolve(v T, err error) {
	f.once.Do(func() {
		f.val, f.err = v, err
		close(f.done)
	})
}

// Done is closed when the future completes.
func (f *Future[T]) Done() <-chan struct{} { return f.done }

// Await waits for the result, or for ctx to end. A ctx that ends abandons the wait, not the
// operation: the future still completes, and a later Await sees its result. The error of an
// abandoned wait matches ctx's error with errors.Is; a session's Commit makes it a
// *CommitUnknownError as well, since the COMMIT may be under way.
func (f *Future[T]) Await(ctx context.Context) (T, error) {
	select {
	case <-f.done:
		return f.val, f.err
	default:
	}
	select {
	case <-f.done:
		return f.val, f.err
	case <-ctx.Done():
		var zero T
		if f.abandoned != nil {
			return zero, f.abandoned(ctx.Err())
		}
		return zero, ctx.Err()
	}
}

// All awaits every future in order and returns their values, or the first error met.
func All[T any](ctx context.Context, fs ...*Future[T]) ([]T, error) {
	out := make([]T, len(fs))
	for i, f := range fs {
		v, err := f.Await(ctx)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}
