// Package sqlview opens a *sql.DB over a gosqla engine, so that tools written for database/sql
// (goose, golang-migrate, sqlx, scany's sqlscan, sqlc's database/sql output) share the engine's
// pool instead of opening a second one: every database/sql connection is a connection checked out
// of the engine, with its pre-ping, invalidation, limits, hooks, tracing and statistics.
//
// # Two pools, one set of connections
//
// database/sql keeps a pool of its own. OpenDB sets it to keep no idle connection
// (SetMaxIdleConns(0)): a database/sql connection goes back to the engine's pool as soon as
// database/sql releases it (after each Exec, after Rows.Close, at Tx.Commit/Rollback, at
// Conn.Close), so database/sql code and gosqla code draw on the same connections and the
// engine's pool_size and max_overflow bound both. A caller who raises SetMaxIdleConns makes
// database/sql hold engine connections while idle: they count as checked out in Engine.Stats.
// The engine's pool_timeout applies to a database/sql checkout too.
//
// # Values
//
// Arguments go to the engine's driver as given (driver.NamedValueChecker accepts every value), so
// pgx encodes the types users hold (pgtype values, net/netip, uuid arrays, maps as json) as it
// does for gosqla's own calls. Named arguments (sql.Named) are refused: write positional
// placeholders ($1 on PostgreSQL, ? on SQLite).
//
// Rows stream: database/sql's Rows.Next reads the next row as it arrives (through
// Conn.Cursor), so a large result takes the memory of one row, and the connection is busy until
// the rows are closed (as with every PostgreSQL driver, a second query on the same connection
// while rows are open is refused). Values are handed to database/sql as its driver values, as pgx's own database/sql driver does: integers as
// int64, floating point as float64, bool, []byte for bytea and the raw text of json, jsonb and
// xml, time.Time for dates and timestamps, and PostgreSQL's text form as a string for every other
// type (numeric, uuid, inet, intervals, arrays, ranges), which pgtype's sql.Scanner types and
// database/sql's string conversions read without loss. ColumnTypeDatabaseTypeName reports the
// database's type name in upper case ("INT4", "_TEXT", "NUMERIC").
//
// # Transactions and errors
//
// BeginTx honours sql.TxOptions on PostgreSQL (every isolation level PostgreSQL has, and read-only
// transactions); on SQLite only the default and serializable levels, read-write, are accepted.
// A lost connection invalidates the engine connection; database/sql hears driver.ErrBadConn (and
// retries on another connection) only when the statement was certainly not sent, otherwise the
// error itself, and the connection is then discarded (driver.Validator). A connection lost while
// rows stream ends them with that error (Rows.Err), never ErrBadConn: the query ran.
package sqlview

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/gosqla/gosqla/asyncengine"
)

// ErrNamedArgs is returned for a sql.Named argument: the view takes positional arguments only.
var ErrNamedArgs = errors.New("gosqla sqlview: named arguments (sql.Named) are not supported; use positional placeholders ($1 on PostgreSQL, ? on SQLite)")

// ErrIsolation is returned by BeginTx for an isolation level or read-only mode the database does
// not offer.
var ErrIsolation = errors.New("gosqla sqlview: unsupported transaction options")

// Connector is a database/sql/driver.Connector whose connections are checked out of an engine.
type Connector struct {
	e *asyncengine.Engine
}

// NewConnector returns a connector over e; sql.OpenDB(NewConnector(e)) is a *sql.DB that keeps
// database/sql's default idle pool. OpenDB is what most callers want.
func NewConnector(e *asyncengine.Engine) *Connector { return &Connector{e: e} }

// OpenDB returns a *sql.DB over e that keeps no idle connection of its own: each connection goes
// back to the engine's pool when database/sql releases it. Closing the *sql.DB does not close e.
func OpenDB(e *asyncengine.Engine) *sql.DB {
	db := sql.OpenDB(NewConnector(e))
	db.SetMaxIdleConns(0)
	return db
}

// Connect checks a connection out of the engine (waiting at most pool_timeout).
func (c *Connector) Connect(ctx context.Context) (driver.Conn, error) {
	ec, err := c.e.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &conn{c: ec, pg: ec.Dialect().Name() == "postgresql"}, nil
}

// Driver returns a driver.Driver whose Open fails: a view is opened with OpenDB or NewConnector,
// not by name.
func (c *Connector) Driver() driver.Driver { return viewDriver{} }

type viewDriver struct{}

func (viewDriver) Open(string) (driver.Conn, error) {
	return nil, fmt.Errorf("gosqla sqlview: open a view with sqlview.OpenDB(engine), not sql.Open")
}
