// Package pgxdriver is the non-blocking PostgreSQL driver, built on pgx's native connection.
package pgxdriver

import (
	"context"
	"errors"
	"io"
	"iter"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gosqla/gosqla/asyncengine/driver"
	"github.com/gosqla/gosqla/asyncengine/internal/pgtypes"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// IsDisconnect classifies pgx errors: a closed or reset socket, EOF, SQLSTATE class 08 and the
// admin/crash shutdown codes 57P01–57P03. A context the caller cancelled is not a disconnect.
func IsDisconnect(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		severity := pgErr.SeverityUnlocalized
		if severity == "" {
			severity = pgErr.Severity // PgBouncer sends only this one, never localized
		}
		if pgErr.Code == "08P01" && severity != "FATAL" {
			// the server refused a malformed request (a NUL byte in the SQL, for one) and goes on:
			// the request's error, not a lost connection; a FATAL one ends the session
			return false
		}
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connectErr), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ECONNREFUSED), errors.As(err, &netErr):
		return true
	}
	return strings.Contains(err.Error(), "conn closed")
}

// Conn is one pgx connection.
type Conn struct {
	pc *pgx.Conn
	// cc counts what the socket carries (round trips, bytes sent); nil for a connection that
	// Open's connector did not dial (a pgxpool's)
	cc *countingConn
	// untyped: statements go without their parameters' types (statement_cache=none, simple), so
	// arguments pass through textArgs first
	untyped bool
	// streams: statements are prepared (statement_cache's default), so that a stream can send
	// them as they come (stream.go)
	streams   bool
	described streamDescriptions
}

// Pgx returns the underlying connection.
func (c *Conn) Pgx() *pgx.Conn { return c.pc }

// args readies a statement's arguments for the connection's execution mode (see textArgs).
func (c *Conn) args(args []any) ([]any, error) {
	if !c.untyped || len(args) == 0 {
		return args, nil
	}
	return untypedArgs(c.pc.TypeMap(), args)
}

func (c *Conn) Query(ctx context.Context, sql string, args []any) (*driver.Result, error) {
	args, err := c.args(args)
	if err != nil {
		return nil, err
	}
	mark := c.written()
	rows, err := c.pc.Query(ctx, sql, args...)
	if err != nil {
		return nil, c.settled(mark, err)
	}
	r, err := readRows(rows)
	return r, c.settled(mark, err)
}

// columns describes the result's columns, named by the connection's type map.
func columns(m *pgtype.Map, fds []pgconn.FieldDescription) []driver.Column {
	return columnsIn(nil, m, fds)
}

// columnsIn is columns, stored in dst when it is large enough.
func columnsIn(dst []driver.Column, m *pgtype.Map, fds []pgconn.FieldDescription) []driver.Column {
	cols := dst[:0]
	if cap(cols) < len(fds) {
		cols = make([]driver.Column, len(fds))
	}
	cols = cols[:len(fds):len(fds)]
	for i, fd := range fds {
		cols[i] = driver.Column{Name: fd.Name, TypeOID: fd.DataTypeOID, TypeName: pgtypes.TypeName(m, fd.DataTypeOID)}
	}
	return cols
}

// readRows keeps the rows' cells as they came off the wire; they are scanned when the caller asks
// for them, into the caller's own destinations.
func readRows(rows pgx.Rows) (*driver.Result, error) {
	defer rows.Close()
	res, cells := newResult(rows.Conn().TypeMap(), rows.FieldDescriptions())
	if cells != nil {
		for rows.Next() {
			cells.Append(rows.RawValues())
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	res.RowsAffected = rows.CommandTag().RowsAffected()
	return res, nil
}

// newResult is an empty result with columns fds, and the cells its rows go into (nil for a
// statement without columns).
func newResult(m *pgtype.Map, fds []pgconn.FieldDescription) (*driver.Result, *pgtypes.Cells) {
	// the result and its cells in one allocation
	rc := &struct {
		driver.Result
		cells pgtypes.Cells
		cols  [4]driver.Column // the columns of a narrow result, in the same allocation
	}{}
	res := &rc.Result
	res.Columns = columnsIn(rc.cols[:], m, fds)
	if len(fds) == 0 {
		return res, nil
	}
	rc.cells.Init(len(fds), func(i int) (uint32, int16) { return fds[i].DataTypeOID, fds[i].Format })
	res.Rows = &rc.cells
	return res, &rc.cells
}

// QueryRows returns the rows as they arrive, scanned with the connection's own type map (so types
// registered on the connection are known).
func (c *Conn) QueryRows(ctx context.Context, sql string, args []any) (driver.Rows, error) {
	args, err := c.args(args)
	if err != nil {
		return nil, err
	}
	mark := c.written()
	rows, err := c.pc.Query(ctx, sql, args...)
	if err != nil {
		return nil, c.settled(mark, err)
	}
	return &liveRows{c: c, mark: mark, rows: rows, m: c.pc.TypeMap(), cols: columns(c.pc.TypeMap(), rows.FieldDescriptions())}, nil
}

type liveRows struct {
	c    *Conn
	mark int64
	rows pgx.Rows
	m    *pgtype.Map
	cols []driver.Column
	fds  []pgconn.FieldDescription
	raw  [][]byte
}

func (r *liveRows) Columns() []driver.Column { return r.cols }
func (r *liveRows) Next() bool {
	if !r.rows.Next() {
		return false
	}
	r.fds, r.raw = r.rows.FieldDescriptions(), r.rows.RawValues()
	return true
}
func (r *liveRows) Scan(j int, dest any) error {
	return r.m.Scan(r.fds[j].DataTypeOID, r.fds[j].Format, r.raw[j], dest)
}
func (r *liveRows) Value(j int) (any, error) {
	return pgtypes.Decode(r.m, r.fds[j].DataTypeOID, r.fds[j].Format, r.raw[j])
}
func (r *liveRows) Err() error { return r.c.settled(r.mark, r.rows.Err()) }
func (r *liveRows) Close() error {
	r.rows.Close()
	return r.Err()
}
func (r *liveRows) RowsAffected() int64 { return r.rows.CommandTag().RowsAffected() }

// Cancel asks the server to stop the statement when it runs outside a transaction block, where
// a cancelled statement takes nothing else with it. The server ignores a cancel that arrives once
// the statement is done and the connection idle.
func (r *liveRows) Cancel(ctx context.Context) bool {
	pg := r.c.pc.PgConn()
	if pg.TxStatus() != 'I' {
		return false
	}
	return pg.CancelRequest(ctx) == nil
}

func (c *Conn) Exec(ctx context.Context, sql string, args []any) (int64, error) {
	args, err := c.args(args)
	if err != nil {
		return 0, err
	}
	mark := c.written()
	tag, err := c.pc.Exec(ctx, sql, args...)
	if err != nil {
		return 0, c.settled(mark, err)
	}
	return tag.RowsAffected(), nil
}

// emptyResult is a statement whose result has no columns and no rows.
const emptyResult = "SELECT WHERE false"

func (c *Conn) Pipeline(ctx context.Context, stmts []driver.Statement) ([]*driver.Result, error) {
	return c.PipelineEach(ctx, stmts, nil)
}

// PipelineEach hands each statement's result to each as soon as it is read: the server runs the
// statements after it meanwhile.
func (c *Conn) PipelineEach(ctx context.Context, stmts []driver.Statement, each func(int, *driver.Result)) ([]*driver.Result, error) {
	hand := func(i int, r *driver.Result) {
		if each != nil {
			each(i, r)
		}
	}
	if allTxControl(stmts) {
		rs, err := c.simplePipeline(ctx, stmts)
		for i, r := range rs {
			hand(i, r)
		}
		return rs, err
	}
	var b pgx.Batch
	for i, s := range stmts {
		if strings.TrimSpace(s.SQL) == "" {
			// an empty statement has an empty result, as Query gives it; a batch cannot describe
			// an empty text, so a statement with the same (empty) result stands in for it
			s.SQL = emptyResult
		}
		args, err := c.args(s.Args)
		if err != nil {
			return nil, &driver.PipelineError{Index: i, Err: err, NotExecuted: true}
		}
		b.Queue(s.SQL, args...)
	}
	mark := c.written()
	br := c.pc.SendBatch(ctx, &b)
	results := make([]*driver.Result, 0, len(stmts))
	plain := make([]driver.Result, len(stmts)) // the results without rows, in one allocation
	for i, st := range stmts {
		var err error
		if noRows(st.SQL) {
			var tag pgconn.CommandTag
			if tag, err = br.Exec(); err == nil {
				plain[i].RowsAffected = tag.RowsAffected()
				results = append(results, &plain[i])
				hand(i, &plain[i])
				continue
			}
		} else {
			var rows pgx.Rows
			if rows, err = br.Query(); err == nil {
				var r *driver.Result
				if r, err = readRows(rows); err == nil {
					results = append(results, r)
					hand(i, r)
					continue
				}
			}
		}
		_ = br.Close()
		return results, c.pipelineError(stmts, &b, i, c.settled(mark, err))
	}
	if err := br.Close(); err != nil {
		return results, &driver.PipelineError{Index: len(stmts) - 1, Err: c.settled(mark, err)}
	}
	return results, nil
}

// noRows reports statements that cannot return rows: transaction control, and INSERT, UPDATE and
// DELETE without RETURNING. A pipeline reads their command tag only.
func noRows(sql string) bool {
	word := firstWord(sql)
	switch {
	case strings.EqualFold(word, "INSERT"), strings.EqualFold(word, "UPDATE"), strings.EqualFold(word, "DELETE"):
		return !containsFold(sql, "returning")
	case strings.EqualFold(word, "BEGIN"), strings.EqualFold(word, "COMMIT"), strings.EqualFold(word, "ROLLBACK"),
		strings.EqualFold(word, "SAVEPOINT"), strings.EqualFold(word, "RELEASE"), strings.EqualFold(word, "END"):
		return true
	}
	return false
}

func firstWord(sql string) string {
	sql = strings.TrimLeft(sql, " \t\r\n")
	if i := strings.IndexAny(sql, " \t\r\n;"); i >= 0 {
		return sql[:i]
	}
	return sql
}

// containsFold reports whether s contains the lower-case ASCII word w in any case.
func containsFold(s, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		if s[i]|0x20 == w[0] && strings.EqualFold(s[i:i+len(w)], w) {
			return true
		}
	}
	return false
}

// pipelineError reports the failing statement of a pipeline. A batch prepares and encodes every
// statement before running any, and reports a failure there at its first statement: the
// statement at fault is found by its SQL, and the pipeline is marked not executed unless the
// failed prepare aborted an open transaction. Without parameter types (statement_cache=none,
// simple) pgx encodes the whole batch before sending any of it and names neither the statement
// nor the preprocessing: an argument it could not encode is found by encoding the arguments
// again, and nothing was sent.
func (c *Conn) pipelineError(stmts []driver.Statement, b *pgx.Batch, i int, err error) *driver.PipelineError {
	if i == 0 && c.untyped && unencodable(err) {
		return &driver.PipelineError{Index: c.unencodableAt(b), Err: err, NotExecuted: !c.pc.IsClosed()}
	}
	var pre pgx.ErrPreprocessingBatch
	if i != 0 || !errors.As(err, &pre) {
		return &driver.PipelineError{Index: i, Err: err}
	}
	for k, s := range stmts {
		if s.SQL == pre.SQL() {
			i = k
			break
		}
	}
	return &driver.PipelineError{Index: i, Err: err, NotExecuted: !c.pc.IsClosed() && c.pc.PgConn().TxStatus() != 'E'}
}

// unencodableAt is the first statement of b with an argument pgx cannot encode without its
// type, as it encodes them without a description; 0 when none is found.
func (c *Conn) unencodableAt(b *pgx.Batch) int {
	m := c.pc.TypeMap()
	for k, q := range b.QueuedQueries {
		for _, a := range q.Arguments {
			if _, err := m.Encode(0, pgtype.TextFormatCode, a, nil); err != nil {
				return k
			}
		}
	}
	return 0
}

// allTxControl reports statements that only steer the transaction. They go through the simple
// protocol: a batch prepares every statement first, and in a failed transaction the server
// refuses to prepare anything but the statement that ends the failure.
func allTxControl(stmts []driver.Statement) bool {
	for _, s := range stmts {
		if len(s.Args) > 0 || strings.Contains(s.SQL, ";") {
			return false // a ";" could hide another statement behind a SAVEPOINT
		}
		switch strings.ToUpper(firstWord(s.SQL)) {
		case "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE":
		default:
			return false
		}
	}
	return true
}

func (c *Conn) simplePipeline(ctx context.Context, stmts []driver.Statement) ([]*driver.Result, error) {
	sqls := make([]string, len(stmts))
	for i, s := range stmts {
		sqls[i] = s.SQL
	}
	mark := c.written()
	rs, err := c.pc.PgConn().Exec(ctx, strings.Join(sqls, "; ")).ReadAll()
	out := make([]*driver.Result, 0, len(stmts))
	for _, r := range rs {
		if r.Err != nil {
			break
		}
		out = append(out, &driver.Result{RowsAffected: r.CommandTag.RowsAffected()})
	}
	if err != nil {
		return out, &driver.PipelineError{Index: len(out), Err: c.settled(mark, err)}
	}
	return out, nil
}

func (c *Conn) CopyFrom(ctx context.Context, table string, columns []string, rows iter.Seq2[[]any, error]) (int64, error) {
	next, stop := iter.Pull2(rows)
	defer stop()
	mark := c.written()
	n, err := c.pc.CopyFrom(ctx, pgx.Identifier(strings.Split(table, ".")), columns, &pullSource{next: next})
	return n, c.settled(mark, err)
}

type pullSource struct {
	next func() ([]any, error, bool)
	row  []any
	err  error
}

func (s *pullSource) Next() bool {
	row, err, ok := s.next()
	if !ok {
		return false
	}
	if err != nil {
		s.err = err
		return false
	}
	s.row = row
	return true
}
func (s *pullSource) Values() ([]any, error) { return s.row, nil }
func (s *pullSource) Err() error             { return s.err }

func (c *Conn) Ping(ctx context.Context) error { return c.pc.Ping(ctx) }
func (c *Conn) InTransaction() bool            { return c.pc.PgConn().TxStatus() != 'I' }

// TxFailed reports a transaction the server aborted: COMMIT would roll it back.
func (c *Conn) TxFailed() bool { return c.pc.PgConn().TxStatus() == 'E' }
func (c *Conn) IsClosed() bool { return c.pc.IsClosed() }
func (c *Conn) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return c.pc.Close(ctx)
}

// RoundTrips counts the times the connection read from the server after writing to it.
func (c *Conn) RoundTrips() int64 {
	if c.cc == nil {
		return 0
	}
	return c.cc.trips.Load()
}

// written is how many bytes the connection has sent, for settled.
func (c *Conn) written() int64 {
	if c.cc == nil {
		return 0
	}
	return c.cc.sent.Load()
}

// counter finds the countingConn Open's dialer put under nc, also beneath TLS (whose
// connection gives the socket it runs on through NetConn); nil when there is none.
func counter(nc net.Conn) *countingConn {
	for {
		switch c := nc.(type) {
		case *countingConn:
			return c
		case interface{ NetConn() net.Conn }:
			nc = c.NetConn()
		default:
			return nil
		}
	}
}

// settled returns err, no longer safe to retry when bytes went to the server since mark. pgx
// reports a request whose answer was cut off by a lost connection as "conn closed", safe to
// retry, although the server may have run it: a COMMIT that committed must not be retried.
func (c *Conn) settled(mark int64, err error) error {
	switch {
	case err == nil:
		return nil
	case unencodable(err):
		return &driver.EncodeError{Err: err, Fix: outOfRangeFix(err)}
	case !pgconn.SafeToRetry(err) || c.written() == mark:
		return err
	}
	return &sentError{err: err}
}

// unencodable recognizes pgx's error for an argument it has no encoding for (it has no type of
// its own): "failed to encode args[…]" from the extended protocol, pgx's bare "unable to encode
// …" from the simple protocol, which does not name the argument. pgx runs nothing then; a
// statement it prepared first stays prepared. The server's own errors are never such an error,
// whatever their text.
func unencodable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "failed to encode args[") || strings.Contains(msg, "unable to encode ")
}

// outOfRangeFix says what to do with a number the parameter's type cannot hold (pgx's range
// check), where the driver's types are not the question; "" for any other encoding error.
func outOfRangeFix(err error) string {
	msg := err.Error()
	if strings.Contains(msg, "is greater than maximum value for") || strings.Contains(msg, "is less than minimum value for") {
		return "the value does not fit the parameter's type (the column's): check the value, or widen the column"
	}
	return ""
}

// sentError is an error of a request that reached the server.
type sentError struct{ err error }

func (e *sentError) Error() string     { return e.err.Error() }
func (e *sentError) Unwrap() error     { return e.err }
func (e *sentError) SafeToRetry() bool { return false }

// countingConn counts round trips (an answer that follows a request) and the bytes sent.
type countingConn struct {
	net.Conn
	wrote atomic.Bool
	trips atomic.Int64
	sent  atomic.Int64
	// counted: a stream counts its own round trips, the times it waits for the server: the
	// answers it reads while it still writes (pgx reads in the background as it writes, to keep
	// the server from blocking) are not waited for (stream.go)
	counted atomic.Bool
}

// countOwn stops counting round trips from reads until the returned func, which adds trips and
// counts again.
func (c *countingConn) countOwn() func(trips int64) {
	c.counted.Store(true)
	return func(trips int64) {
		c.wrote.Store(false)
		c.counted.Store(false)
		c.trips.Add(trips)
	}
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.wrote.Store(true)
	n, err := c.Conn.Write(p)
	c.sent.Add(int64(n))
	return n, err
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	// counted when the answer arrives: a read that waits while the request is still being
	// written (pgx reads in the background during large writes) is not a round trip of its own
	if n > 0 && !c.counted.Load() && c.wrote.Swap(false) {
		c.trips.Add(1)
	}
	return n, err
}
