package sqlview

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/jackc/pgx/v5/pgconn"
)

// conn is one database/sql connection: an engine connection checked out for it.
type conn struct {
	c   *asyncengine.Conn
	tx  *asyncengine.Tx
	pg  bool
	bad bool // the connection was lost: database/sql must discard it
}

var (
	_ driver.Conn               = (*conn)(nil)
	_ driver.ConnBeginTx        = (*conn)(nil)
	_ driver.ExecerContext      = (*conn)(nil)
	_ driver.QueryerContext     = (*conn)(nil)
	_ driver.ConnPrepareContext = (*conn)(nil)
	_ driver.Pinger             = (*conn)(nil)
	_ driver.NamedValueChecker  = (*conn)(nil)
	_ driver.SessionResetter    = (*conn)(nil)
	_ driver.Validator          = (*conn)(nil)
)

// failed turns an engine error into what database/sql expects: ErrBadConn when the connection
// was lost before the statement could have reached the server (database/sql then retries on
// another connection), the error itself otherwise.
func (c *conn) failed(err error) error {
	var de *asyncengine.DisconnectError
	if !errors.As(err, &de) {
		return err
	}
	c.bad = true
	if pgconn.SafeToRetry(err) {
		return fmt.Errorf("%w: %w", driver.ErrBadConn, err)
	}
	return err
}

func args(named []driver.NamedValue) ([]any, error) {
	if len(named) == 0 {
		return nil, nil
	}
	out := make([]any, len(named))
	for i, nv := range named {
		if nv.Name != "" {
			return nil, ErrNamedArgs
		}
		out[i] = nv.Value
	}
	return out, nil
}

// CheckNamedValue accepts every value: the engine's driver encodes it (pgx encodes the Go types
// it knows, sql.Scanner/driver.Valuer included).
func (c *conn) CheckNamedValue(nv *driver.NamedValue) error {
	if nv.Name != "" {
		return ErrNamedArgs
	}
	return nil
}

func (c *conn) ExecContext(ctx context.Context, query string, named []driver.NamedValue) (driver.Result, error) {
	a, err := args(named)
	if err != nil {
		return nil, err
	}
	r, err := c.c.Exec(ctx, query, a...)
	if err != nil {
		return nil, c.failed(err)
	}
	return result(r.RowsAffected()), nil
}

func (c *conn) QueryContext(ctx context.Context, query string, named []driver.NamedValue) (driver.Rows, error) {
	a, err := args(named)
	if err != nil {
		return nil, err
	}
	cu, err := c.c.Cursor(ctx, query, a...)
	if err != nil {
		return nil, c.failed(err)
	}
	return newRows(cu, c), nil
}

func (c *conn) Ping(ctx context.Context) error {
	if err := c.c.Ping(ctx); err != nil {
		return c.failed(err)
	}
	return nil
}

// ResetSession runs when database/sql reuses a connection it kept idle.
func (c *conn) ResetSession(context.Context) error {
	if c.bad {
		return driver.ErrBadConn
	}
	return nil
}

func (c *conn) IsValid() bool { return !c.bad }

func (c *conn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// PrepareContext returns a statement that runs through the engine's own statement cache
// (statement_cache): nothing is sent until it is executed.
func (c *conn) PrepareContext(_ context.Context, query string) (driver.Stmt, error) {
	return &stmt{c: c, query: query}, nil
}

// Close returns the engine connection to the engine's pool (rolling back a transaction left open).
func (c *conn) Close() error { return c.c.Close() }

func (c *conn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	set, err := c.txSettings(sql.IsolationLevel(opts.Isolation), opts.ReadOnly)
	if err != nil {
		return nil, err
	}
	tx, err := c.c.Begin(ctx)
	if err != nil {
		return nil, c.failed(err)
	}
	if set != "" {
		if _, err := c.c.Exec(ctx, set); err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			return nil, c.failed(err)
		}
	}
	c.tx = tx
	return (*txn)(c), nil
}

// txSettings is the statement that gives a new transaction its options ("" for none).
func (c *conn) txSettings(level sql.IsolationLevel, readOnly bool) (string, error) {
	if !c.pg {
		if (level != sql.LevelDefault && level != sql.LevelSerializable) || readOnly {
			return "", fmt.Errorf("%w: SQLite transactions are serializable and read-write (asked: %s, read-only %v)", ErrIsolation, level, readOnly)
		}
		return "", nil
	}
	set := ""
	switch level {
	case sql.LevelDefault:
	case sql.LevelReadUncommitted, sql.LevelReadCommitted, sql.LevelRepeatableRead, sql.LevelSerializable:
		set = " ISOLATION LEVEL " + level.String()
	default:
		return "", fmt.Errorf("%w: PostgreSQL has no isolation level %s (use Read Committed, Repeatable Read or Serializable)", ErrIsolation, level)
	}
	if readOnly {
		set += " READ ONLY"
	}
	if set == "" {
		return "", nil
	}
	return "SET TRANSACTION" + set, nil
}

// txn is the open transaction of a conn.
type txn conn

func (t *txn) Commit() error   { return t.end(true) }
func (t *txn) Rollback() error { return t.end(false) }
func (t *txn) end(commit bool) error {
	c := (*conn)(t)
	tx := c.tx
	c.tx = nil
	if tx == nil {
		return asyncengine.ErrTxDone
	}
	var err error
	if commit {
		err = tx.Commit(context.Background())
	} else {
		err = tx.Rollback(context.Background())
	}
	if err != nil {
		return c.failed(err)
	}
	return nil
}

type result int64

func (r result) RowsAffected() (int64, error) { return int64(r), nil }

// LastInsertId is not offered: use RETURNING.
func (r result) LastInsertId() (int64, error) {
	return 0, fmt.Errorf("gosqla sqlview: LastInsertId is not supported; use RETURNING")
}

// stmt is a prepared statement in database/sql's sense; the engine's driver prepares it (or not)
// by statement_cache when it runs.
type stmt struct {
	c     *conn
	query string
}

var (
	_ driver.StmtExecContext  = (*stmt)(nil)
	_ driver.StmtQueryContext = (*stmt)(nil)
)

func (s *stmt) Close() error  { return nil }
func (s *stmt) NumInput() int { return -1 }

func (s *stmt) Exec(vals []driver.Value) (driver.Result, error) {
	return s.ExecContext(context.Background(), namedOf(vals))
}

func (s *stmt) Query(vals []driver.Value) (driver.Rows, error) {
	return s.QueryContext(context.Background(), namedOf(vals))
}

func (s *stmt) ExecContext(ctx context.Context, named []driver.NamedValue) (driver.Result, error) {
	return s.c.ExecContext(ctx, s.query, named)
}

func (s *stmt) QueryContext(ctx context.Context, named []driver.NamedValue) (driver.Rows, error) {
	return s.c.QueryContext(ctx, s.query, named)
}

// CheckNamedValue accepts every value, as the connection does.
func (s *stmt) CheckNamedValue(nv *driver.NamedValue) error { return s.c.CheckNamedValue(nv) }

func namedOf(vals []driver.Value) []driver.NamedValue {
	out := make([]driver.NamedValue, len(vals))
	for i, v := range vals {
		out[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	return out
}
