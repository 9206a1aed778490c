package asyncengine

import (
	"context"
	"errors"
	"time"

	"github.com/gosqla/gosqla/asyncengine/driver"
)

// Statement is one statement of a pipeline, already in the dialect's placeholder style (see
// Dialect.Bind).
type Statement = driver.Statement

// PipelineError reports which statement of a pipeline failed (Index, from 0) and why (Err, which
// it unwraps to).
type PipelineError = driver.PipelineError

// Pipeline runs statements in order as one round trip where the driver can pipeline them
// (PostgreSQL), else one after another in a single worker call. Statements must already use the
// dialect's placeholders (see Dialect.Bind). The first failing statement stops the rest; its
// index is reported through a *PipelineError, and the results of the statements before it are
// returned.
func (c *Conn) Pipeline(ctx context.Context, stmts []Statement) ([]*Result, error) {
	return c.PipelineEach(ctx, stmts, nil)
}

// PipelineEach is Pipeline handing each statement's result to each, in order, as soon as it is
// read: on PostgreSQL while the server still runs the statements after it, so that work on one
// result overlaps the next statements; with a driver that does not stream them, as each
// statement completes or once the pipeline returns. The results handed over are the ones
// returned. each runs on the goroutine reading the connection, which waits for it, and must not
// use the connection. A panic in each stops the calls to it; it is raised again, as a
// *PanicError, on the caller's goroutine once the pipeline has been read.
func (c *Conn) PipelineEach(ctx context.Context, stmts []Statement, each func(i int, r *Result)) ([]*Result, error) {
	return c.PipelineStream(ctx, stmts, nil, each)
}

// PipelineStream is PipelineEach whose statements come in batches: stmts, then each batch more
// returns, until it returns none (a nil more: stmts alone). On PostgreSQL each batch leaves as
// soon as more returns it, so that the server runs the first statements while the caller works
// out the next ones; statements the connection prepares (statement_cache's default) are needed
// for that, and otherwise, as with a driver that does not stream, every batch is collected
// before the pipeline is sent. more runs on the calling goroutine and must not use the
// connection; it is not called again once the pipeline is known to have failed (an argument
// that cannot be encoded, a statement that cannot be prepared), while a statement the server
// fails is known only as its result is read, once every batch is sent: the statements after it
// do not run. A panic in more ends the pipeline with the statements returned before it, which
// run, and is raised again as a panic in each is.
func (c *Conn) PipelineStream(ctx context.Context, stmts []Statement, more func() []Statement, each func(i int, r *Result)) ([]*Result, error) {
	if c.tx != nil {
		for _, st := range stmts {
			if err := c.refuseTxControl(st.SQL); err != nil {
				return nil, err
			}
		}
	}
	start := c.echoStart()
	ctx = c.tracePipelineStart(ctx, stmts)
	// one allocation for every result of the pipeline, when its statements are known at once
	vals := make([]Result, len(stmts))
	rs := make([]*Result, len(stmts))
	all := stmts // every statement sent, for the echo
	call := pipelineCall{stmts: stmts}
	var panicked, morePanicked, refused error
	if more != nil {
		call.more = func() []driver.Statement {
			if morePanicked != nil || refused != nil {
				return nil
			}
			var next []Statement
			if morePanicked = CatchPanic(func() error { next = more(); return nil }); morePanicked != nil {
				return nil
			}
			for _, st := range next {
				if c.tx == nil {
					break
				}
				if refused = c.refuseTxControl(st.SQL); refused != nil {
					return nil
				}
			}
			all = append(all[:len(all):len(all)], next...)
			return next
		}
	}
	if each != nil {
		call.each = func(i int, r *driver.Result) {
			for len(rs) <= i {
				rs = append(rs, nil)
			}
			rs[i] = resultIn(vals, i, r, c.e.pg)
			if panicked == nil {
				panicked = CatchPanic(func() error { each(i, rs[i]); return nil })
			}
		}
	}
	drs, err := guardedCall(ctx, c, call, runStatements)
	if err != nil {
		err = pipelineFailure(err)
	} else if refused != nil {
		err = &driver.PipelineError{Index: len(drs), Err: refused, NotExecuted: len(drs) == 0}
	}
	c.pipelineDone(ctx, all, start, len(drs), err, "(pipeline failed)")
	for len(rs) < len(drs) {
		rs = append(rs, nil)
	}
	for i, r := range drs {
		if rs[i] == nil {
			rs[i] = resultIn(vals, i, r, c.e.pg)
		}
	}
	if panicked == nil {
		panicked = morePanicked
	}
	if panicked != nil {
		panic(panicked)
	}
	return rs[:len(drs)], err
}

// resultIn is statement i's result, kept in vals when the statements were known at the start.
func resultIn(vals []Result, i int, r *driver.Result, pg bool) *Result {
	if i < len(vals) {
		vals[i] = resultOf(r, pg)
		return &vals[i]
	}
	v := resultOf(r, pg)
	return &v
}

// pipelineDone echoes a pipeline's statements (and failed, the echo's name for its failure) and
// ends its trace: results statements succeeded, err is the failure.
func (c *Conn) pipelineDone(ctx context.Context, stmts []Statement, start time.Time, results int, err error, failed string) {
	if c.e.log != nil {
		for _, st := range stmts {
			c.echo(ctx, st.SQL, st.Args, start, nil)
		}
		if err != nil {
			c.echo(ctx, failed, nil, start, err)
		}
	}
	if pt := c.e.trace.pipeline; pt != nil {
		pt.TracePipelineEnd(ctx, c, TracePipelineEndData{Results: results, Err: err})
	}
}

// pipelineFailure keeps the statement index outermost, and the disconnect with the statement's
// error.
func pipelineFailure(err error) error {
	var de *DisconnectError
	var pe *driver.PipelineError
	if errors.As(err, &de) && errors.As(de.Err, &pe) {
		return &driver.PipelineError{Index: pe.Index, Err: &DisconnectError{ConnID: de.ConnID, Err: pe.Err}}
	}
	return err
}

// pipelineCall is a pipeline's statements, what returns the statements after them (nil: none)
// and what is handed each result (nil: nothing).
type pipelineCall struct {
	stmts []driver.Statement
	more  func() []driver.Statement
	each  func(i int, r *driver.Result)
}

func runStatements(ctx context.Context, dc driver.Conn, call pipelineCall) ([]*driver.Result, error) {
	stmts, each := call.stmts, call.each
	if call.more != nil {
		if pl, ok := dc.(driver.StreamPipeliner); ok {
			return pl.PipelineStream(ctx, stmts, call.more, each)
		}
		for next := call.more(); len(next) > 0; next = call.more() {
			stmts = append(stmts[:len(stmts):len(stmts)], next...)
		}
	}
	if len(stmts) > 1 {
		if pl, ok := dc.(driver.EachPipeliner); ok && each != nil {
			return pl.PipelineEach(ctx, stmts, each)
		}
		if pl, ok := dc.(driver.Pipeliner); ok {
			rs, err := pl.Pipeline(ctx, stmts)
			if each != nil {
				for i, r := range rs {
					each(i, r)
				}
			}
			return rs, err
		}
	}
	rs := make([]*driver.Result, 0, len(stmts))
	for i, st := range stmts {
		r, err := dc.Query(ctx, st.SQL, st.Args)
		if err != nil {
			// an argument refused before the first statement was sent: nothing ran
			var enc *driver.EncodeError
			return rs, &driver.PipelineError{Index: i, Err: err, NotExecuted: i == 0 && errors.As(err, &enc)}
		}
		rs = append(rs, r)
		if each != nil {
			each(i, r)
		}
	}
	return rs, nil
}
