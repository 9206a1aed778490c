package asyncengine

import (
	"context"
	"errors"
	"fmt"

	"github.com/gosqla/gosqla/asyncengine/driver"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// ErrNotPgx is returned by the pgx-shaped view (Conn.Pgx, Tx.Pgx) and Conn.RawPgx on an engine
// whose driver is not the native PostgreSQL one (stdlib, SQLite).
var ErrNotPgx = errors.New("gosqla: the pgx view needs the native PostgreSQL driver (a postgresql:// URL, not postgresql+stdlib:// or sqlite://)")

// DBTX is the interface sqlc's pgx/v5 output asks of a connection or transaction. Conn.Pgx and
// Tx.Pgx return one.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error)
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// PgxConn is a connection or transaction seen with pgx's method shapes, so that code written for
// pgx (sqlc's pgx/v5 output, scany's pgxscan, pgx.CollectRows) runs on gosqla's connections and
// transactions. Statements go to pgx as written ($1 placeholders, pgx's own argument encoding and
// statement cache), traced and counted by the engine like its own. Query reads its whole result
// before returning, so the connection is free again when it returns; the rows' Conn method
// returns nil. Like Conn it is not goroutine-safe.
type PgxConn struct {
	c  *Conn
	tx *Tx // nil outside a transaction
}

// Pgx returns c with pgx's method shapes (see PgxConn). On an engine without the native
// PostgreSQL driver every call returns ErrNotPgx.
func (c *Conn) Pgx() *PgxConn { return &PgxConn{c: c} }

// Pgx returns the transaction with pgx's method shapes (see PgxConn); after Commit or Rollback
// every call returns ErrTxDone.
func (t *Tx) Pgx() *PgxConn { return &PgxConn{c: t.c, tx: t} }

var _ DBTX = (*PgxConn)(nil)

// RawPgx runs fn with the *pgx.Conn underneath c, under c's concurrent-use guard: a lost
// connection is invalidated as after any of c's calls. fn must not keep the *pgx.Conn, nor leave
// rows open. Engines without the native PostgreSQL driver return ErrNotPgx.
func (c *Conn) RawPgx(ctx context.Context, fn func(*pgx.Conn) error) error {
	return c.guarded(ctx, func(dc driver.Conn) error {
		p, ok := dc.(interface{ Pgx() *pgx.Conn })
		if !ok {
			return ErrNotPgx
		}
		return fn(p.Pgx())
	})
}

func (p *PgxConn) check(sql string) error {
	if p.tx != nil && p.tx.done {
		return ErrTxDone
	}
	return p.c.refuseTxControl(sql)
}

// run runs fn on the pgx connection, traced and echoed as a statement.
func (p *PgxConn) run(ctx context.Context, sql string, args []any, fn func(ctx context.Context, pc *pgx.Conn) (int64, error)) error {
	if err := p.check(sql); err != nil {
		return err
	}
	c := p.c
	qt := c.e.trace.query
	if qt != nil {
		ctx = qt.TraceQueryStart(ctx, c, TraceQueryStartData{SQL: sql, Args: c.e.traceArgs(args)})
	}
	var n int64
	start := c.echoStart()
	err := c.RawPgx(ctx, func(pc *pgx.Conn) error {
		var err error
		n, err = fn(ctx, pc)
		return err
	})
	c.echo(ctx, sql, args, start, err)
	if qt != nil {
		qt.TraceQueryEnd(ctx, c, TraceQueryEndData{RowsAffected: n, Err: err})
	}
	return err
}

// Exec runs a statement, as pgx.Conn.Exec does.
func (p *PgxConn) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	var tag pgconn.CommandTag
	err := p.run(ctx, sql, args, func(ctx context.Context, pc *pgx.Conn) (int64, error) {
		var err error
		tag, err = pc.Exec(ctx, sql, args...)
		return tag.RowsAffected(), err
	})
	return tag, err
}

// Query runs a query, as pgx.Conn.Query does, and returns its rows read in full. An error comes
// back from Query itself (not only from the rows' Err).
func (p *PgxConn) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	var br *bufferedRows
	err := p.run(ctx, sql, args, func(ctx context.Context, pc *pgx.Conn) (int64, error) {
		rows, err := pc.Query(ctx, sql, args...)
		if err != nil {
			return 0, err
		}
		br = readAll(rows, pc.TypeMap())
		return br.tag.RowsAffected(), br.err
	})
	if err != nil {
		return nil, err
	}
	return br, nil
}

// QueryRow runs a query and returns its first row, as pgx.Conn.QueryRow does: Scan reports
// pgx.ErrNoRows when there is none, and the query's error otherwise.
func (p *PgxConn) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := p.Query(ctx, sql, args...)
	if err != nil {
		return errRow{err}
	}
	return rowOf{rows.(*bufferedRows)}
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

type rowOf struct{ rows *bufferedRows }

func (r rowOf) Scan(dest ...any) error {
	if !r.rows.Next() {
		return pgx.ErrNoRows
	}
	return r.rows.Scan(dest...)
}

// bufferedRows is a pgx.Rows over a result read in full: the raw values of every row in one
// buffer, decoded by pgx's type map as they are scanned.
type bufferedRows struct {
	fields  []pgconn.FieldDescription
	typeMap *pgtype.Map
	rows    [][][]byte
	tag     pgconn.CommandTag
	err     error
	i       int // the current row, from 1; 0 before the first Next
	closed  bool
}

func readAll(rows pgx.Rows, m *pgtype.Map) *bufferedRows {
	defer rows.Close()
	br := &bufferedRows{fields: append([]pgconn.FieldDescription(nil), rows.FieldDescriptions()...), typeMap: m}
	for rows.Next() {
		raw := rows.RawValues()
		size := 0
		for _, v := range raw {
			size += len(v)
		}
		buf := make([]byte, 0, size)
		row := make([][]byte, len(raw))
		for j, v := range raw {
			if v != nil {
				start := len(buf)
				buf = append(buf, v...)
				row[j] = buf[start:len(buf):len(buf)]
			}
		}
		br.rows = append(br.rows, row)
	}
	rows.Close()
	br.err = rows.Err()
	br.tag = rows.CommandTag()
	return br
}

func (r *bufferedRows) Close()                                       { r.closed = true }
func (r *bufferedRows) Err() error                                   { return r.err }
func (r *bufferedRows) CommandTag() pgconn.CommandTag                { return r.tag }
func (r *bufferedRows) FieldDescriptions() []pgconn.FieldDescription { return r.fields }

// Conn returns nil: the connection went back to gosqla when the rows were read.
func (r *bufferedRows) Conn() *pgx.Conn { return nil }

func (r *bufferedRows) Next() bool {
	if r.closed || r.err != nil || r.i >= len(r.rows) {
		r.closed = true
		return false
	}
	r.i++
	return true
}

func (r *bufferedRows) current() ([][]byte, error) {
	if r.i == 0 || r.i > len(r.rows) {
		return nil, fmt.Errorf("gosqla: no current row: call Next first")
	}
	return r.rows[r.i-1], nil
}

func (r *bufferedRows) Scan(dest ...any) error {
	row, err := r.current()
	if err != nil {
		return err
	}
	return pgx.ScanRow(r.typeMap, r.fields, row, dest...)
}

func (r *bufferedRows) RawValues() [][]byte {
	row, _ := r.current()
	return row
}

// Values decodes the current row as pgx.Rows.Values does.
func (r *bufferedRows) Values() ([]any, error) {
	row, err := r.current()
	if err != nil {
		return nil, err
	}
	out := make([]any, len(row))
	for j, buf := range row {
		if buf == nil {
			continue
		}
		fd := &r.fields[j]
		dt, ok := r.typeMap.TypeForOID(fd.DataTypeOID)
		if !ok {
			if fd.Format == pgx.TextFormatCode {
				out[j] = string(buf)
			} else {
				out[j] = append([]byte(nil), buf...)
			}
			continue
		}
		v, err := dt.Codec.DecodeValue(r.typeMap, fd.DataTypeOID, fd.Format, buf)
		if err != nil {
			return nil, fmt.Errorf("gosqla: column %q: %w", fd.Name, err)
		}
		out[j] = v
	}
	return out, nil
}

// TypeMap is the connection's type map, which decodes the rows.
func (r *bufferedRows) TypeMap() *pgtype.Map { return r.typeMap }
