package asyncsession

import (
	"context"
	"sync"

	"github.com/gosqla/gosqla/asyncengine"
)

// send runs each engine's statements as one pipeline (one round trip on PostgreSQL; one worker
// call running them in order on a blocking driver). The pipelines of several engines (shards,
// binds) run at once.
func (s *Session) send(ctx context.Context, parts []part) map[*bound]error {
	type pipeline struct {
		b     *bound
		stmts []asyncengine.Statement
		rs    []*asyncengine.Result
		err   error
	}
	var pipes []pipeline // one per engine, in order of first use: rarely more than one
	at := func(b *bound) *pipeline {
		for i := range pipes {
			if pipes[i].b == b {
				return &pipes[i]
			}
		}
		pipes = append(pipes, pipeline{b: b, stmts: make([]asyncengine.Statement, 0, len(parts)+2)})
		return &pipes[len(pipes)-1]
	}
	for k := range parts {
		p := &parts[k]
		pl := at(p.b)
		p.offset = len(pl.stmts)
		pl.stmts = append(pl.stmts, p.stmts...)
	}
	run := func(pl *pipeline) {
		if len(pl.stmts) > 0 {
			pl.rs, pl.err = s.pipeline(ctx, pl.b, pl.stmts)
		}
	}
	if len(pipes) == 1 {
		run(&pipes[0])
	} else {
		// a panic is raised again here, on the drainer, whose round recovers it for every engine
		panics := make([]error, len(pipes))
		var wg sync.WaitGroup
		for i := range pipes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				panics[i] = asyncengine.CatchPanic(func() error { run(&pipes[i]); return nil })
			}()
		}
		wg.Wait()
		for _, p := range panics {
			if p != nil {
				panic(p)
			}
		}
	}
	var errs map[*bound]error
	for _, pl := range pipes {
		if pl.err != nil {
			if errs == nil {
				errs = map[*bound]error{}
			}
			errs[pl.b] = pl.err
		}
		for k := range parts {
			if p := &parts[k]; p.b == pl.b && len(p.stmts) > 0 && p.offset+len(p.stmts) <= len(pl.rs) {
				p.rs = pl.rs[p.offset : p.offset+len(p.stmts)]
			}
		}
	}
	return errs
}

func (s *Session) pipeline(ctx context.Context, b *bound, stmts []asyncengine.Statement) ([]*asyncengine.Result, error) {
	if b.conn == nil {
		c, err := b.e.Connect(ctx)
		if err != nil {
			return nil, &notSentError{err}
		}
		b.conn = c
	}
	return b.conn.Pipeline(ctx, stmts)
}

// sharedContext is the context of a pipeline carrying several requests: it ends when every
// request's context has ended, so that one caller giving up does not fail the others.
func sharedContext(ctxs []context.Context) (context.Context, func()) {
	ctxs = distinct(ctxs)
	switch len(ctxs) {
	case 0:
		return context.Background(), func() {}
	case 1:
		return ctxs[0], func() {}
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctxs[0]))
	var mu sync.Mutex
	left := len(ctxs)
	stops := make([]func() bool, len(ctxs))
	for i, c := range ctxs {
		stops[i] = context.AfterFunc(c, func() {
			mu.Lock()
			left--
			if left == 0 {
				cancel()
			}
			mu.Unlock()
		})
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

// distinct drops repeated contexts (requests of one caller share one); a context that never ends
// stands for them all.
func distinct(ctxs []context.Context) []context.Context {
	for _, c := range ctxs {
		if c.Done() == nil {
			// a request that never gives up keeps the pipeline going, whatever the others do
			return []context.Context{c}
		}
	}
	out := ctxs[:0]
	for _, c := range ctxs {
		dup := false
		for _, o := range out {
			if o == c {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, c)
		}
		if len(out) > 8 {
			return ctxs // many distinct callers: the general case handles them
		}
	}
	if len(out) == 0 {
		return ctxs[:1]
	}
	return out
}
