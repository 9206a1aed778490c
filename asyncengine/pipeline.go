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
	if c.tx != nil {
		for _, st := range stmts {
			if err := c.refuseTxControl(st.SQL); err != nil {
				return nil, err
			}
		}
	}
	start := c.echoStart()
	ctx = c.tracePipelineStart(ctx, stmts)
	drs, err := guardedCall(ctx, c, stmts, runStatements)
	if err != nil {
		err = pipelineFailure(err)
	}
	c.pipelineDone(ctx, stmts, start, len(drs), err, "(pipeline failed)")
	// one allocation for every result of the pipeline
	vals := make([]Result, len(drs))
	rs := make([]*Result, len(drs))
	for i, r := range drs {
		vals[i] = resultOf(r, c.e.pg)
		rs[i] = &vals[i]
	}
	return rs, err
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

func runStatements(ctx context.Context, dc driver.Conn, stmts []driver.Statement) ([]*driver.Result, error) {
	if pl, ok := dc.(driver.Pipeliner); ok && len(stmts) > 1 {
		return pl.Pipeline(ctx, stmts)
	}
	rs := make([]*driver.Result, 0, len(stmts))
	for i, st := range stmts {
		r, err := dc.Query(ctx, st.SQL, st.Args)
		if err != nil {
			return rs, &driver.PipelineError{Index: i, Err: err}
		}
		rs = append(rs, r)
	}
	return rs, nil
}
