// Package sqldriver adapts any database/sql driver as a blocking gosqla driver. The engine only
// calls it from its Workers.
package sqldriver

import (
	"context"
	"database/sql"
	sqldrv "database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gosqla/gosqla/asyncengine/driver"
	"github.com/gosqla/gosqla/asyncengine/internal/pgtypes"
	"github.com/gosqla/gosqla/internal/structmap"
	"github.com/jackc/pgx/v5/pgtype"
)

// Connector opens connections through a *sql.DB that keeps no idle connections of its own: the
// engine's pool owns them, and a *sql.Conn pins one physical connection until it is closed.
type Connector struct {
	db            *sql.DB
	dialect       string
	isDisconnect  func(error) bool
	isUnencodable func(error) bool
	encodeFix     func(error) string
	isClosed      func(driverConn any) bool
	args          func([]any) ([]any, error)
	connectMu     *sync.Mutex // set when connects must not overlap
	timeout       time.Duration
	target        string
}

// Probes tell a driver's lost connections apart; either may be nil.
type Probes struct {
	// IsDisconnect classifies errors beyond driver.ErrBadConn.
	IsDisconnect func(error) bool
	// IsClosed inspects a driver connection (for drivers without driver.Validator).
	IsClosed func(driverConn any) bool
	// IsUnencodable recognizes the driver's error for an argument it cannot encode, returned
	// before anything runs (database/sql's own "converting argument" error is known already).
	IsUnencodable func(error) bool
	// EncodeFix says what to do about such an error when the driver's types are not the
	// question (a number out of its parameter's range); "" for the usual advice.
	EncodeFix func(error) string
	// SerialConnect opens one connection at a time: SQLite's connection pragmas (journal_mode=WAL
	// above all) take locks that overlapping opens of a new database file can fail to get.
	SerialConnect bool
	// ConnectTimeout is the driver's own bound of one connection attempt (0 = none).
	ConnectTimeout time.Duration
	// Target, when set, names what a failed connect tried to open (a file path).
	Target string
	// Args, when set, readies a statement's arguments before database/sql and the driver see
	// them (PostgreSQL without parameter types: see pgxdriver); its error is the argument's.
	Args func(args []any) ([]any, error)
}

// New wraps db.
func New(db *sql.DB, dialect string, p Probes) *Connector {
	db.SetMaxIdleConns(0)
	db.SetMaxOpenConns(0)
	c := &Connector{db: db, dialect: dialect, isDisconnect: p.IsDisconnect, isClosed: p.IsClosed,
		isUnencodable: p.IsUnencodable, encodeFix: p.EncodeFix, args: p.Args, timeout: p.ConnectTimeout, target: p.Target}
	if p.SerialConnect {
		c.connectMu = new(sync.Mutex)
	}
	return c
}

func (c *Connector) Dialect() string { return c.dialect }
func (c *Connector) Blocking() bool  { return true }
func (c *Connector) Close() error    { return c.db.Close() }

// ConnectTimeout is the driver's own bound of a connection attempt.
func (c *Connector) ConnectTimeout() time.Duration { return c.timeout }
func (c *Connector) IsDisconnect(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, sqldrv.ErrBadConn) || errors.Is(err, sql.ErrConnDone) {
		return true
	}
	return c.isDisconnect != nil && c.isDisconnect(err)
}

func (c *Connector) Connect(ctx context.Context) (driver.Conn, error) {
	if c.connectMu != nil {
		c.connectMu.Lock()
		defer c.connectMu.Unlock()
	}
	sc, err := c.db.Conn(ctx)
	if err != nil {
		if c.target != "" {
			return nil, fmt.Errorf("cannot open %s: %w", c.target, err)
		}
		return nil, err
	}
	return &Conn{sc: sc, dialect: c.dialect, isClosed: c.isClosed, isUnencodable: c.isUnencodable, encodeFix: c.encodeFix, args: c.args}, nil
}

// Conn is one pinned database/sql connection.
type Conn struct {
	sc       *sql.Conn
	dialect  string
	isClosed func(any) bool
	// isUnencodable, encodeFix: see Probes
	isUnencodable func(error) bool
	encodeFix     func(error) string
	// args: see Probes
	args   func([]any) ([]any, error)
	inTx   bool
	closed bool
}

func (c *Conn) Query(ctx context.Context, query string, args []any) (*driver.Result, error) {
	rows, err := c.QueryRows(ctx, query, args)
	if err != nil {
		return nil, err
	}
	lr := rows.(*liveRows)
	defer lr.rows.Close()
	res := &driver.Result{Columns: lr.conv.cols}
	var vals []any
	for lr.Next() {
		vals = append(vals, lr.vals...)
	}
	if err := lr.Close(); err != nil {
		return nil, err
	}
	if len(lr.conv.cols) > 0 {
		res.Rows = &bufferedRows{conv: lr.conv, vals: vals}
	}
	res.RowsAffected = lr.n
	return res, nil
}

// QueryRows returns the rows as database/sql reads them.
func (c *Conn) QueryRows(ctx context.Context, query string, args []any) (driver.Rows, error) {
	args, err := c.encode(args)
	if err != nil {
		return nil, encodeError(err)
	}
	rows, err := c.sc.QueryContext(ctx, query, args...)
	if err != nil {
		c.afterError(err)
		return nil, c.unencodable(err)
	}
	conv, err := c.converter(rows)
	if err != nil {
		rows.Close()
		return nil, err
	}
	lr := &liveRows{c: c, query: query, rows: rows, conv: conv, vals: make([]any, len(conv.cols)), ptrs: make([]any, len(conv.cols))}
	for i := range lr.vals {
		lr.ptrs[i] = &lr.vals[i]
	}
	return lr, nil
}

// converter describes the columns and picks the scan rules: pgx's type map for PostgreSQL, so that
// both PostgreSQL drivers fill a destination alike, else database/sql's own conversions.
func (c *Conn) converter(rows *sql.Rows) (*converter, error) {
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	conv := &converter{cols: make([]driver.Column, len(types)), pg: c.dialect == "postgresql"}
	var m *pgtype.Map
	if conv.pg {
		m = pgtypes.Map()
		defer pgtypes.Release(m)
	}
	for i, t := range types {
		conv.cols[i] = driver.Column{Name: t.Name(), TypeName: t.DatabaseTypeName()}
		if conv.pg {
			oid := pgtypes.OIDForName(m, t.DatabaseTypeName())
			conv.cols[i].TypeOID = oid
			conv.cols[i].TypeName = pgtypes.TypeName(m, oid)
		}
	}
	return conv, nil
}

type converter struct {
	cols []driver.Column
	pg   bool
}

func (cv *converter) scan(j int, v, dest any) error {
	if !cv.pg {
		return structmap.Assign(dest, v)
	}
	m := pgtypes.Map()
	err := pgtypes.ScanValue(m, cv.cols[j].TypeOID, v, dest)
	pgtypes.Release(m)
	return err
}

func (cv *converter) value(j int, v any) (any, error) {
	if !cv.pg {
		return v, nil
	}
	m := pgtypes.Map()
	out, err := pgtypes.DecodeValue(m, cv.cols[j].TypeOID, v)
	pgtypes.Release(m)
	return out, err
}

type liveRows struct {
	c     *Conn
	query string
	rows  *sql.Rows
	conv  *converter
	vals  []any
	ptrs  []any
	n     int64
	err   error
}

func (r *liveRows) Columns() []driver.Column { return r.conv.cols }
func (r *liveRows) Next() bool {
	if r.err != nil || !r.rows.Next() {
		return false
	}
	clear(r.vals)
	if err := r.rows.Scan(r.ptrs...); err != nil {
		r.err = err
		return false
	}
	r.n++
	return true
}
func (r *liveRows) Scan(j int, dest any) error { return r.conv.scan(j, r.vals[j], dest) }
func (r *liveRows) Value(j int) (any, error)   { return r.conv.value(j, r.vals[j]) }
func (r *liveRows) Err() error {
	if r.err != nil {
		return r.err
	}
	return r.rows.Err()
}
func (r *liveRows) Close() error {
	cerr := r.rows.Close()
	err := r.Err()
	if err == nil {
		err = cerr
	}
	if err != nil {
		r.c.afterError(err)
		return err
	}
	r.c.track(r.query)
	return nil
}
func (r *liveRows) RowsAffected() int64 { return r.n }

// bufferedRows keeps the values database/sql handed over, converted when scanned.
type bufferedRows struct {
	conv *converter
	vals []any // row-major
}

func (b *bufferedRows) Len() int { return len(b.vals) / len(b.conv.cols) }
func (b *bufferedRows) Scan(i, j int, dest any) error {
	return b.conv.scan(j, b.vals[i*len(b.conv.cols)+j], dest)
}
func (b *bufferedRows) Value(i, j int) (any, error) {
	return b.conv.value(j, b.vals[i*len(b.conv.cols)+j])
}

func (c *Conn) Exec(ctx context.Context, query string, args []any) (int64, error) {
	args, err := c.encode(args)
	if err != nil {
		return 0, encodeError(err)
	}
	r, err := c.sc.ExecContext(ctx, query, args...)
	if err != nil {
		c.afterError(err)
		return 0, c.unencodable(err)
	}
	c.track(query)
	n, err := r.RowsAffected()
	if err != nil {
		return 0, nil
	}
	return n, nil
}

// track follows transaction state from the statements that change it, since database/sql does
// not report it for a connection used outside sql.Tx.
func (c *Conn) track(query string) {
	q := strings.TrimLeft(query, " \t\r\n(")
	word := q
	if i := strings.IndexAny(q, " \t\r\n;"); i >= 0 {
		word = q[:i]
	}
	switch strings.ToUpper(word) {
	case "BEGIN", "START":
		c.inTx = true
	case "COMMIT", "END":
		c.inTx = false
	case "ROLLBACK", "ABORT":
		if !strings.Contains(strings.ToUpper(q), " TO ") {
			c.inTx = false
		}
	}
}

// encodeError is the error of arguments refused before they were sent, as a *driver.EncodeError.
func encodeError(err error) error {
	var enc *driver.EncodeError
	if errors.As(err, &enc) {
		return err
	}
	return &driver.EncodeError{Err: err}
}

// unencodable marks the error for an argument the driver cannot take (database/sql's "sql:
// converting argument …", or what Probes.IsUnencodable recognizes), returned before anything runs.
func (c *Conn) unencodable(err error) error {
	if strings.HasPrefix(err.Error(), "sql: converting argument") || c.isUnencodable != nil && c.isUnencodable(err) {
		enc := &driver.EncodeError{Err: err}
		if c.encodeFix != nil {
			enc.Fix = c.encodeFix(err)
		}
		return enc
	}
	return err
}

// afterError asks the driver whether the connection survived: database/sql itself only finds out
// on the next use, too late for the pool.
func (c *Conn) afterError(err error) {
	if errors.Is(err, sqldrv.ErrBadConn) || errors.Is(err, sql.ErrConnDone) {
		c.closed = true
		return
	}
	rawErr := c.sc.Raw(func(dc any) error {
		if v, ok := dc.(sqldrv.Validator); ok && !v.IsValid() {
			c.closed = true
		}
		if c.isClosed != nil && c.isClosed(dc) {
			c.closed = true
		}
		return nil
	})
	if rawErr != nil {
		c.closed = true
	}
}

func (c *Conn) Ping(ctx context.Context) error {
	err := c.sc.PingContext(ctx)
	if err != nil {
		c.afterError(err)
	}
	return err
}

func (c *Conn) InTransaction() bool { return c.inTx }
func (c *Conn) IsClosed() bool      { return c.closed }

// Close closes the physical connection: the *sql.DB keeps no idle ones, and a connection known to
// be broken is reported as bad so that database/sql discards it too.
func (c *Conn) Close() error {
	if c.closed {
		_ = c.sc.Raw(func(any) error { return sqldrv.ErrBadConn })
	}
	c.closed = true
	return c.sc.Close()
}
