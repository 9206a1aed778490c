package asyncengine

import (
	"context"
	"iter"
	"strings"
	"time"

	"github.com/gosqla/gosqla/asyncengine/driver"
)

// CopyFrom loads rows into table's columns in bulk: PostgreSQL's COPY on the native driver,
// multi-row INSERTs sized to the dialect's parameter limit elsewhere. rows is read once, as it is
// sent, so a large load takes the memory of one page of rows; the slice it yields may be reused
// between rows. It returns the number of rows loaded.
func (c *Conn) CopyFrom(ctx context.Context, table string, columns []string, rows iter.Seq2[[]any, error]) (int64, error) {
	var n int64
	start := c.echoStart()
	ct := c.e.trace.copy
	if ct != nil {
		ctx = ct.TraceCopyFromStart(ctx, c, TraceCopyFromStartData{Table: table, Columns: columns})
	}
	// the error the sequence itself yields is the call's error as it was given (a driver may wrap
	// it, or report only that the copy was aborted)
	var srcErr error
	src := func(yield func([]any, error) bool) {
		for row, err := range rows {
			if err != nil {
				srcErr = err
				yield(nil, err)
				return
			}
			if !yield(row, nil) {
				return
			}
		}
	}
	err := c.guarded(ctx, func(dc driver.Conn) error {
		var err error
		if cp, ok := dc.(driver.Copier); ok {
			n, err = cp.CopyFrom(ctx, table, columns, src)
		} else {
			n, err = insertPages(ctx, dc, c.e.dialect, table, columns, src)
		}
		if srcErr != nil {
			err = srcErr
		}
		return err
	})
	c.copyDone(ctx, ct, table, start, n, err)
	return n, err
}

// copyDone echoes and traces the end of a bulk load.
func (c *Conn) copyDone(ctx context.Context, ct CopyFromTracer, table string, start time.Time, n int64, err error) {
	if c.e.log != nil {
		c.echo(ctx, "COPY "+table, nil, start, err)
	}
	if ct != nil {
		ct.TraceCopyFromEnd(ctx, c, TraceCopyFromEndData{Rows: n, Err: err})
	}
}

// insertPages loads rows as INSERTs of as many rows as the parameter limit allows (at most 1000).
func insertPages(ctx context.Context, dc driver.Conn, d *Dialect, table string, columns []string, rows iter.Seq2[[]any, error]) (int64, error) {
	page := min(d.MaxParams/max(len(columns), 1), 1000)
	quoted := make([]string, len(columns))
	for i, c := range columns {
		quoted[i] = d.Quote(c)
	}
	head := "INSERT INTO " + d.Quote(table) + " (" + strings.Join(quoted, ", ") + ") VALUES "
	var total int64
	args := make([]any, 0, page*len(columns))
	var b strings.Builder
	flush := func() error {
		if len(args) == 0 {
			return nil
		}
		n, err := dc.Exec(ctx, b.String(), args)
		total += n
		args = args[:0]
		b.Reset()
		return err
	}
	for row, err := range rows {
		if err != nil {
			return total, err
		}
		if len(args) == 0 {
			b.WriteString(head)
		} else {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for i, v := range row {
			if i > 0 {
				b.WriteString(", ")
			}
			args = append(args, v)
			b.WriteString(d.Placeholder(len(args)))
		}
		b.WriteByte(')')
		if len(args) >= page*len(columns) {
			if err := flush(); err != nil {
				return total, err
			}
		}
	}
	return total, flush()
}
