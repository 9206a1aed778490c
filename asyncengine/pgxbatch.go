package asyncengine

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// CopyFrom loads rows in bulk with COPY, as pgx.Conn.CopyFrom does (sqlc's :copyfrom), traced
// and echoed like Conn.CopyFrom.
func (p *PgxConn) CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error) {
	if err := p.check(""); err != nil {
		return 0, err
	}
	c := p.c
	table := tableName.Sanitize()
	start := c.echoStart()
	ct := c.e.trace.copy
	if ct != nil {
		ctx = ct.TraceCopyFromStart(ctx, c, TraceCopyFromStartData{Table: table, Columns: columnNames})
	}
	var n int64
	err := c.RawPgx(ctx, func(pc *pgx.Conn) error {
		var err error
		n, err = pc.CopyFrom(ctx, tableName, columnNames, rowSrc)
		return err
	})
	c.copyDone(ctx, ct, table, start, n, err)
	return n, err
}

// SendBatch sends the queued queries as one pipeline, as pgx.Conn.SendBatch does (sqlc's :batch
// queries), traced as a pipeline. Every result is read before SendBatch returns, so the
// connection is free again at once; the results are handed out in order by the returned
// BatchResults, and Close runs the callbacks queued with QueuedQuery.Exec, Query or QueryRow for
// the results not read yet and returns the batch's first error, as pgx's Close does.
func (p *PgxConn) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if err := p.check(""); err != nil {
		return &batchResults{err: err}
	}
	c := p.c
	for _, q := range b.QueuedQueries {
		if err := c.refuseTxControl(q.SQL); err != nil {
			return &batchResults{err: err}
		}
	}
	if len(b.QueuedQueries) > 0 && beginsTx(b.QueuedQueries[0].SQL) {
		return &batchResults{err: fmt.Errorf("gosqla: a batch that begins a transaction (Batch.BeginTx or a queued BEGIN) would leave it open on a pooled connection; send the batch on a transaction's view instead (Conn.Begin, then Tx.Pgx)")}
	}
	// what echo and the tracer are shown, when either is on
	var stmts []Statement
	if c.e.log != nil || c.e.trace.pipeline != nil {
		stmts = make([]Statement, len(b.QueuedQueries))
		for i, q := range b.QueuedQueries {
			stmts[i] = Statement{SQL: q.SQL, Args: q.Arguments}
		}
	}
	start := c.echoStart()
	ctx = c.tracePipelineStart(ctx, stmts)
	// every result is read here, so the driver runs none of the queued callbacks (it runs those
	// of unread results): the returned BatchResults runs them, on these results
	out := &batchResults{queued: b.QueuedQueries}
	err := c.RawPgx(ctx, func(pc *pgx.Conn) error {
		br := pc.SendBatch(ctx, b)
		for range b.QueuedQueries {
			rows, err := br.Query()
			if err != nil {
				out.results = append(out.results, &bufferedRows{err: err})
				continue
			}
			out.results = append(out.results, readAll(rows, pc.TypeMap()))
		}
		return br.Close()
	})
	done := 0 // the results before the first failed one
	for done < len(out.results) && out.results[done].err == nil {
		done++
	}
	failed := err
	if done < len(out.results) {
		failed = &PipelineError{Index: done, Err: out.results[done].err}
	}
	if err != nil && len(out.results) < len(b.QueuedQueries) {
		out.err = err // the connection failed before every result was read
	}
	c.pipelineDone(ctx, stmts, start, done, failed, "(batch failed)")
	return out
}

// batchResults hands out a batch's results, read in full, in order.
type batchResults struct {
	queued  []*pgx.QueuedQuery
	results []*bufferedRows
	err     error // the batch as a whole failed
	next    int
	closed  bool
}

var errBatchClosed = errors.New("gosqla: batch already closed")

// take returns the next result.
func (r *batchResults) take() (*bufferedRows, error) {
	if r.closed {
		return nil, errBatchClosed
	}
	if r.next >= len(r.results) {
		if r.err != nil {
			return nil, r.err
		}
		return nil, fmt.Errorf("gosqla: no result left: the batch had %d queries", len(r.queued))
	}
	res := r.results[r.next]
	r.next++
	return res, res.err
}

// Exec returns the next query's command tag.
func (r *batchResults) Exec() (pgconn.CommandTag, error) {
	res, err := r.take()
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	return res.tag, nil
}

// Query returns the next query's rows.
func (r *batchResults) Query() (pgx.Rows, error) {
	res, err := r.take()
	if err != nil {
		if res == nil {
			res = &bufferedRows{}
		}
		res.err = err
		return res, err
	}
	return res, nil
}

// Tx returns nil: a batch on the view never begins a transaction (see SendBatch).
func (r *batchResults) Tx() pgx.Tx { return nil }

// QueryRow returns the next query's first row.
func (r *batchResults) QueryRow() pgx.Row {
	res, err := r.take()
	if err != nil {
		return errRow{err}
	}
	return rowOf{res}
}

// Close runs the queued callbacks of the results not read yet, and returns the batch's first
// error as pgx's Close does: that of a result read before it, of a callback, of a result read
// by it, or of the batch as a whole. Like pgx's, it runs no callback after the first error.
func (r *batchResults) Close() error {
	if r.closed {
		return r.err
	}
	var first error
	for _, res := range r.results[:r.next] {
		if res.err != nil {
			first = res.err
			break
		}
	}
	for first == nil && r.next < len(r.queued) && r.err == nil {
		if fn := r.queued[r.next].Fn; fn != nil {
			first = fn(r)
		} else {
			_, first = r.Exec()
		}
	}
	r.closed = true
	if first == nil {
		first = r.err
	}
	r.err = first
	return first
}
