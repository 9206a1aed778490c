package asyncengine

import (
	"context"
	"sync"
)

// Group runs tasks on Workers as errgroup.Group runs goroutines: the first error cancels the
// group's context, and Wait returns only when every task it started has finished, so no task
// is left holding a connection after Wait. A task whose context ended before a worker took it
// never runs. SetLimit bounds how many of the group's tasks are queued or running at once,
// which keeps the rest of the workers for other stages and bounds the results held in memory.
type Group struct {
	w      *Workers
	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup
	sem    chan struct{}

	once sync.Once
	err  error
}

// NewGroup returns a group running its tasks on w, and the context its tasks get: it ends with
// the first error or when Wait returns.
func NewGroup(ctx context.Context, w *Workers) (*Group, context.Context) {
	ctx, cancel := context.WithCancelCause(ctx)
	return &Group{w: w, ctx: ctx, cancel: cancel}, ctx
}

// SetLimit allows at most n of the group's tasks queued or running at once (n < 1: no limit).
// It must be called before Go.
func (g *Group) SetLimit(n int) {
	if n < 1 {
		g.sem = nil
		return
	}
	g.sem = make(chan struct{}, n)
}

// Go runs fn on a worker. It waits while the group is at its limit or the workers' queue is
// full; once the group's context has ended, fn is not run.
func (g *Group) Go(fn func(ctx context.Context) error) {
	g.wg.Add(1)
	if g.sem != nil {
		select {
		case g.sem <- struct{}{}:
		case <-g.ctx.Done():
			g.wg.Done()
			return
		}
	}
	done := func(err error) {
		if err != nil {
			g.once.Do(func() {
				g.err = err
				g.cancel(err)
			})
		}
		if g.sem != nil {
			<-g.sem
		}
		g.wg.Done()
	}
	run := func() {
		// not started once the group's context ended (runTask checks it): only the first error
		// is kept, so the group's own error stands
		_, err := runTask(g.ctx, g.w, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) })
		done(err)
	}
	if g.w.owns(g.ctx) {
		run() // a group made inside a task of w: queueing could wait for this very worker
		return
	}
	if err := g.w.Submit(g.ctx, run); err != nil {
		done(err)
	}
}

// Wait waits until every task started by Go has returned, then returns the first error.
func (g *Group) Wait() error {
	g.wg.Wait()
	g.cancel(nil)
	return g.err
}
