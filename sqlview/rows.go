package sqlview

import (
	"database/sql/driver"
	"encoding"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/jackc/pgx/v5/pgtype"
)

// rows hands a query's rows to database/sql one at a time, as they arrive: a large result takes
// the memory of one row.
type rows struct {
	cu    *asyncengine.Cursor
	c     *conn
	cols  []string
	scan  []any       // ScanRow destinations of the json, jsonb and xml columns (their raw text), nil elsewhere
	bytes [][]byte    // where the raw columns land
	types []string    // the database's type names
	tm    *pgtype.Map // encodes other values in PostgreSQL's text form, made on first need
}

var (
	_ driver.Rows                           = (*rows)(nil)
	_ driver.RowsColumnTypeDatabaseTypeName = (*rows)(nil)
)

func newRows(cu *asyncengine.Cursor, c *conn) *rows {
	rs := &rows{cu: cu, c: c, cols: cu.Columns(), types: cu.ColumnTypes()}
	if c.pg {
		for j, t := range rs.types {
			switch t {
			case "json", "jsonb", "xml":
				if rs.scan == nil {
					rs.scan = make([]any, len(rs.types))
					rs.bytes = make([][]byte, len(rs.types))
				}
				rs.scan[j] = &rs.bytes[j]
			}
		}
	}
	return rs
}

func (r *rows) Columns() []string { return r.cols }

// Close discards the rows not read and frees the connection.
func (r *rows) Close() error { return r.c.failed(r.cu.Close()) }

// ColumnTypeDatabaseTypeName is the database's type name in upper case, as database/sql drivers
// report it.
func (r *rows) ColumnTypeDatabaseTypeName(j int) string { return strings.ToUpper(r.types[j]) }

func (r *rows) Next(dest []driver.Value) error {
	if !r.cu.Next() {
		if err := r.cu.Err(); err != nil {
			return r.c.failed(err)
		}
		return io.EOF
	}
	row := r.cu.Row()
	if r.scan != nil {
		// json, jsonb and xml as the server sent them, not decoded and encoded again; the scan
		// copies them out of the driver's buffer, so each row's are its own
		if err := row.Scan(r.scan...); err != nil {
			return err
		}
	}
	for j := range dest {
		if r.scan != nil && r.scan[j] != nil {
			if b := r.bytes[j]; b != nil {
				dest[j] = b
			} else {
				dest[j] = nil
			}
			continue
		}
		// the other columns one by one: nothing decoded that is not handed over
		v, err := row.Value(j)
		if err != nil {
			return err
		}
		if dest[j], err = r.driverValue(v, j); err != nil {
			return err
		}
	}
	return nil
}

// driverValue turns a value as the engine's driver decoded it into one of database/sql's driver
// values without losing anything: numbers widen, and what has no driver value of its own is
// given in PostgreSQL's text form.
func (r *rows) driverValue(v any, j int) (driver.Value, error) {
	switch x := v.(type) {
	case nil, int64, float64, bool, []byte, string, time.Time:
		return x, nil
	case int32:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case int8:
		return int64(x), nil
	case int:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case uint16:
		return int64(x), nil
	case uint8:
		return int64(x), nil
	case float32:
		return float64(x), nil
	}
	if r.c.pg {
		return r.pgText(v, j)
	}
	if vr, ok := v.(driver.Valuer); ok {
		return vr.Value()
	}
	if tm, ok := v.(encoding.TextMarshaler); ok {
		b, err := tm.MarshalText()
		return string(b), err
	}
	return nil, fmt.Errorf("gosqla sqlview: column %q: a %T has no database/sql value", r.cols[j], v)
}

// pgText encodes v in PostgreSQL's text form for its column's type.
func (r *rows) pgText(v any, j int) (driver.Value, error) {
	if r.tm == nil {
		r.tm = pgtype.NewMap()
	}
	typ, ok := r.tm.TypeForName(r.types[j])
	if !ok {
		if vr, ok := v.(driver.Valuer); ok {
			return vr.Value()
		}
		return nil, fmt.Errorf("gosqla sqlview: column %q: type %s has no database/sql value; read it through the engine", r.cols[j], r.types[j])
	}
	b, err := r.tm.Encode(typ.OID, pgtype.TextFormatCode, v, nil)
	if err != nil {
		return nil, fmt.Errorf("gosqla sqlview: column %q of type %s: %w", r.cols[j], r.types[j], err)
	}
	if b == nil {
		return nil, nil
	}
	return string(b), nil
}
