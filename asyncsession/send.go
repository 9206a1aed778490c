package asyncsession

import (
	"context"
	"sync"

	"github.com/gosqla/gosqla/asyncengine"
)

// pipe is one engine's share of a round: its statements, sent as one pipeline, and their
// results.
type pipe struct {
	b     *bound
	stmts []asyncengine.Statement
	each  func(int, *asyncengine.Result) // applies results as they are read (nil: none)
	rs    []*asyncengine.Result
	err   error
}

// send runs each engine's statements as one pipeline (one round trip on PostgreSQL; one worker
// call running them in order on a blocking driver). The pipelines of several engines (shards,
// binds) run at once.
func (s *Session) send(ctx context.Context, parts []part) ([]part, map[*bound]error) {
	if s.chunking != nil {
		return s.sendChunks(ctx, parts)
	}
	var pipes []pipe // one per engine, in order of first use: rarely more than one
	for k := range parts {
		p := &parts[k]
		i := 0
		for i < len(pipes) && pipes[i].b != p.b {
			i++
		}
		if i == len(pipes) {
			pipes = append(pipes, pipe{b: p.b, stmts: make([]asyncengine.Statement, 0, len(parts)+2)})
		}
		p.offset = len(pipes[i].stmts)
		pipes[i].stmts = append(pipes[i].stmts, p.stmts...)
	}
	switch len(pipes) {
	case 0:
	case 1:
		pipes[0].each = s.readEarly(&parts)
		s.sendOne(ctx, &pipes[0])
	default:
		s.sendAll(ctx, pipes)
	}
	return parts, s.pipeErrors(parts, pipes)
}

// sendChunks sends a request's flush by parts (chunk.go): the parts planned so far, then each
// part the pipeline asks for as it sends the ones before, and the request's end.
func (s *Session) sendChunks(ctx context.Context, parts []part) ([]part, map[*bound]error) {
	c := s.chunking
	defer func() {
		// the pipeline may have stopped before asking for every part, or panicked
		s.mu.Lock()
		s.stopChunks()
		s.mu.Unlock()
	}()
	pl := pipe{b: parts[0].b}
	for k := range parts {
		p := &parts[k]
		p.offset = len(pl.stmts)
		pl.stmts = append(pl.stmts, p.stmts...)
	}
	c.offset = len(pl.stmts)
	pl.each = s.readEarly(&parts)
	more := func() []asyncengine.Statement { return s.nextChunk(&parts) }
	if pl.b.conn == nil {
		c, err := pl.b.e.Connect(ctx)
		if err != nil {
			pl.err = &notSentError{err}
		}
		pl.b.conn = c
	}
	if pl.err == nil {
		pl.rs, pl.err = pl.b.conn.PipelineStream(ctx, pl.stmts, more, pl.each)
	}
	if pl.err == nil && c.err != nil {
		// a part after the first could not be planned: the flush fails with the parts sent, as
		// with a statement of a part that failed, and the transaction with it
		pl.err = c.err
	}
	return parts, s.pipeErrors(parts, []pipe{pl})
}

// pipeErrors hands each part its results and returns the pipelines' failures by engine.
func (s *Session) pipeErrors(parts []part, pipes []pipe) map[*bound]error {
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

// sendOne sends pl's statements, if it has any.
func (s *Session) sendOne(ctx context.Context, pl *pipe) {
	if len(pl.stmts) > 0 {
		pl.rs, pl.err = s.pipeline(ctx, pl.b, pl.stmts, pl.each)
	}
}

// sendAll sends the pipelines at once: the first on the drainer, each other one with statements
// on a goroutine of its own. A panic is raised again here, on the drainer, whose round recovers
// it for every engine.
func (s *Session) sendAll(ctx context.Context, pipes []pipe) {
	panics := make([]error, len(pipes))
	var wg sync.WaitGroup
	for i := 1; i < len(pipes); i++ {
		if len(pipes[i].stmts) == 0 {
			continue
		}
		wg.Go(func() {
			panics[i] = asyncengine.CatchPanic(func() error { s.sendOne(ctx, &pipes[i]); return nil })
		})
	}
	panics[0] = asyncengine.CatchPanic(func() error { s.sendOne(ctx, &pipes[0]); return nil })
	wg.Wait()
	for _, p := range panics {
		if p != nil {
			panic(p)
		}
	}
}

func (s *Session) pipeline(ctx context.Context, b *bound, stmts []asyncengine.Statement, each func(int, *asyncengine.Result)) ([]*asyncengine.Result, error) {
	if b.conn == nil {
		c, err := b.e.Connect(ctx)
		if err != nil {
			return nil, &notSentError{err}
		}
		b.conn = c
	}
	return b.conn.PipelineEach(ctx, stmts, each)
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
			ctxs[0] = c
			return ctxs[:1]
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
	return out
}
