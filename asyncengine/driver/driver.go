// Package driver is the small interface between the engine and a database driver.
//
// A driver opens physical connections (Connector) and runs statements on them (Conn). A driver is
// either non-blocking — its calls honour ctx and may be made from any goroutine — or blocking, in
// which case the engine only ever calls it from its bounded Workers. Optional capabilities are
// separate interfaces, discovered by type assertion: Pipeliner sends several statements in one
// round trip, Copier bulk-loads rows.
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

// Result is a fully read statement result.
type Result struct {
	Columns      []string
	Rows         [][]any
	RowsAffected int64
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
