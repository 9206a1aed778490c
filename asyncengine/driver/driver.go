// Package driver is the small interface between the engine and a database driver.
//
// A driver opens physical connections (Connector) and runs statements on them (Conn). A driver is
// either non-blocking — its calls honour ctx and may be made from any goroutine — or blocking, in
// which case the engine only ever calls it from its bounded Workers. Optional capabilities are
// separate interfaces, discovered by type assertion: Pipeliner sends several statements in one
// round trip (EachPipeliner hands over their results as they are read, StreamPipeliner sends them
// as they are handed over), Copier bulk-loads rows.
package driver

import (
	"context"
	"iter"
)

// Connector opens physical connections to one database.
type Connector interface {
	// Connect opens a new physical connection.
	Connect(ctx context.Context) (Conn, error)
	// Dialect names the SQL dialect spoken: "postgresql" or "sqlite".
	Dialect() string
	// Blocking reports whether calls may block regardless of ctx, so they must run on workers.
	Blocking() bool
	// IsDisconnect reports whether err means the connection (and likely the server) went away.
	IsDisconnect(err error) bool
	// Close releases what the connector holds; connections it opened are closed separately.
	Close() error
}

// Column describes one result column.
type Column struct {
	Name string
	// TypeName is the database's name of the column type ("numeric", "_text" for text[],
	// "INTEGER" on SQLite), or "" when the driver does not know it.
	TypeName string
	// TypeOID is PostgreSQL's type OID, 0 elsewhere.
	TypeOID uint32
}

// Result is a fully read statement result. Its rows are kept as the driver read them and are
// scanned on demand by the driver's own rules, so that a value reaches its destination without
// passing through a Go type of ours.
type Result struct {
	Columns      []Column
	Rows         RowSet // nil for a statement without rows
	RowsAffected int64
}

// Len is the number of rows.
func (r *Result) Len() int {
	if r.Rows == nil {
		return 0
	}
	return r.Rows.Len()
}

// RowSet holds a result's rows. It may be scanned from any goroutine after the call that read it
// returned, while its connection serves other calls, but by one goroutine at a time.
type RowSet interface {
	Len() int
	// Scan stores the value of row i, column j into dest (a non-nil pointer) by the driver's
	// rules; an error leaves dest as it was where the driver allows.
	Scan(i, j int, dest any) error
	// Value returns the value of row i, column j as its untyped Go value (nil for NULL).
	Value(i, j int) (any, error)
}

// Rows is a result read as it arrives. It is used by one goroutine at a time and must be closed.
type Rows interface {
	Columns() []Column
	// Next advances to the next row; false at the end or on an error (see Err).
	Next() bool
	// Scan stores column j of the current row into dest by the driver's rules.
	Scan(j int, dest any) error
	// Value returns column j of the current row as its untyped Go value.
	Value(j int) (any, error)
	Err() error
	// Close discards the rows not read and releases the connection for the next call.
	Close() error
	// RowsAffected is known once Next returned false.
	RowsAffected() int64
}

// RowsCanceler is implemented by rows whose statement the driver can stop on the server, so
// that closing them early need not read the rest of a large result. Cancel asks the server to
// stop the statement only where that cannot abort a transaction (the statement runs on its own),
// and reports whether it asked; Close then discards what was already sent.
type RowsCanceler interface {
	Cancel(ctx context.Context) bool
}

// Statement is one SQL statement with its positional arguments, already in the driver's placeholder
// style.
type Statement struct {
	SQL  string
	Args []any
}

// Conn is one physical connection. It is used by one goroutine at a time.
type Conn interface {
	// Query runs a statement and reads its whole result.
	Query(ctx context.Context, sql string, args []any) (*Result, error)
	// QueryRows runs a statement and returns its rows as they arrive; the connection serves no
	// other call until they are closed.
	QueryRows(ctx context.Context, sql string, args []any) (Rows, error)
	// Exec runs a statement that returns no rows and reports the rows it affected.
	Exec(ctx context.Context, sql string, args []any) (int64, error)
	// Ping checks liveness with the cheapest round trip the server offers (never a prepared statement).
	Ping(ctx context.Context) error
	// InTransaction reports whether a transaction is open on the server side.
	InTransaction() bool
	// IsClosed reports whether the connection is known to be unusable.
	IsClosed() bool
	// Close closes the physical connection.
	Close() error
}

// Pipeliner is implemented by connections that can send several statements in one round trip.
// Statements run in order; the first failing statement stops the rest, and its index is reported
// through a *PipelineError.
type Pipeliner interface {
	Pipeline(ctx context.Context, stmts []Statement) ([]*Result, error)
}

// EachPipeliner is implemented by pipelining connections that hand over each statement's result
// as soon as it is read, while the server may still be running the statements after it: each is
// called, in order and on the calling goroutine, with every result returned, before the next one
// is read. each must not use the connection. The engine calls PipelineEach only with a non-nil
// each, and Pipeline otherwise.
type EachPipeliner interface {
	PipelineEach(ctx context.Context, stmts []Statement, each func(i int, r *Result)) ([]*Result, error)
}

// StreamPipeliner is implemented by pipelining connections that send a pipeline's statements
// as they are handed over: stmts at once, then each batch more returns as soon as it is
// returned, until more returns none, so that the server runs the first statements while the
// caller works out the next ones. more is called on the calling goroutine and must not use the
// connection; a failure stops the calls to it. Results are handed to each (which may be nil) as
// EachPipeliner hands them, and a failure is reported as Pipeline reports it.
type StreamPipeliner interface {
	PipelineStream(ctx context.Context, stmts []Statement, more func() []Statement, each func(i int, r *Result)) ([]*Result, error)
}

// EncodeError is a driver's error for an argument it cannot encode for the server (a channel, a
// value of a type with no encoding), returned before the statement runs: the connection and its
// transaction are as they were.
type EncodeError struct {
	Err error
	// Fix says what to change when the driver knows more than that the type has no encoding
	// (a value whose encoding depends on a parameter type the driver was not told); "" if not.
	Fix string
}

func (e *EncodeError) Error() string { return e.Err.Error() }
func (e *EncodeError) Unwrap() error { return e.Err }

// PipelineError reports which statement of a pipeline failed.
type PipelineError struct {
	Index int
	Err   error
	// NotExecuted reports that the server ran none of the pipeline's statements and the
	// connection's transaction state is as it was before (a statement refused at prepare time
	// outside a transaction, an argument that could not be encoded).
	NotExecuted bool
}

func (e *PipelineError) Error() string { return e.Err.Error() }
func (e *PipelineError) Unwrap() error { return e.Err }

// Copier is implemented by connections with a bulk-load protocol (PostgreSQL COPY).
type Copier interface {
	CopyFrom(ctx context.Context, table string, columns []string, rows iter.Seq2[[]any, error]) (int64, error)
}

// RoundTripper is implemented by connections that count their round trips to the server.
type RoundTripper interface {
	RoundTrips() int64
}
