package sqldriver

import (
	"database/sql"
	sqldrv "database/sql/driver"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/gosqla/gosqla/asyncengine/driver"
	"github.com/gosqla/gosqla/asyncengine/internal/argmap"
	_ "modernc.org/sqlite" // the embedded SQLite
)

func init() { driver.Register("sqlite", OpenSQLite) }

// OpenSQLite returns a connector for the embedded SQLite driver; cfg.DSN is a modernc "file:"
// name with its query.
func OpenSQLite(cfg driver.Config) (driver.Connector, error) {
	db, err := sql.Open("sqlite", cfg.DSN)
	if err != nil {
		return nil, err
	}
	target, _, _ := strings.Cut(strings.TrimPrefix(cfg.DSN, "file:"), "?")
	target = "SQLite database " + `"` + target + `"`
	return New(db, "sqlite", Probes{SerialConnect: true, Target: target}), nil
}

// encode turns the arguments SQLite has no type for into the text CreateAll declares for them,
// as reading them back decodes it (structmap.Assign): a value with a text form (netip.Prefix,
// netip.Addr) by its MarshalText, other slices, arrays, maps and structs as JSON. PostgreSQL's
// arguments pass to Probes.Args when set, else unchanged: pgx encodes them.
func (c *Conn) encode(args []any) ([]any, error) {
	if c.dialect != "sqlite" {
		if c.args != nil && len(args) > 0 {
			return c.args(args)
		}
		return args, nil
	}
	return argmap.Map(args, func(i int, a any) (any, bool, error) {
		v, err := sqliteValue(a)
		if err != nil {
			return nil, false, fmt.Errorf("gosqla: argument %d (%T) cannot be stored in SQLite: %w", i+1, a, err)
		}
		// compared by kind first: == on an interface holding a func or a map panics
		return v, !same(v, a), nil
	})
}

// same reports whether sqliteValue returned its argument unchanged.
func same(v, a any) bool {
	if v == nil || a == nil {
		return v == nil && a == nil
	}
	tv, ta := reflect.TypeOf(v), reflect.TypeOf(a)
	return tv == ta && tv.Comparable() && v == a
}

func sqliteValue(a any) (any, error) {
	switch a.(type) {
	case nil, sqldrv.Valuer, time.Time, []byte, string, int64, float64, bool:
		return a, nil
	}
	if m, ok := a.(encoding.TextMarshaler); ok {
		b, err := m.MarshalText()
		return string(b), err
	}
	v := reflect.ValueOf(a)
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil, nil
		}
		return sqliteValue(v.Elem().Interface())
	}
	switch v.Kind() {
	case reflect.Slice:
		if v.IsNil() {
			return nil, nil
		}
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return v.Bytes(), nil
		}
	case reflect.Map:
		if v.IsNil() {
			return nil, nil
		}
	case reflect.Array, reflect.Struct:
		if v.Type() == reflect.TypeFor[[16]byte]() {
			b := v.Interface().([16]byte)
			return b[:], nil
		}
	default:
		return a, nil // database/sql converts the other kinds
	}
	b, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}
