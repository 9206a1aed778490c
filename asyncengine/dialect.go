package asyncengine

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"time"

	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"
)

// Dialect describes the SQL a database speaks: placeholders, identifier quoting, and which
// statements it offers (RETURNING, ON CONFLICT, savepoints are common to both dialects here).
type Dialect struct {
	name       string
	positional bool // $1, $2 … rather than ?
	// MaxParams is the most bound parameters one statement may carry.
	MaxParams int
}

var (
	dialectPostgres = &Dialect{name: "postgresql", positional: true, MaxParams: 65535}
	dialectSQLite   = &Dialect{name: "sqlite", MaxParams: 32766}
)

func dialectFor(name string) *Dialect {
	if name == "sqlite" {
		return dialectSQLite
	}
	return dialectPostgres
}

// Name is "postgresql" or "sqlite".
func (d *Dialect) Name() string { return d.name }

// Placeholder returns the placeholder for the n-th (1-based) argument.
func (d *Dialect) Placeholder(n int) string {
	if d.positional {
		return "$" + strconv.Itoa(n)
	}
	return "?"
}

// Quote quotes an identifier; a dotted name (schema.table) is quoted part by part.
func (d *Dialect) Quote(ident string) string {
	parts := strings.Split(ident, ".")
	for i, p := range parts {
		parts[i] = `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
	}
	return strings.Join(parts, ".")
}

// Bind rewrites a statement's placeholders for the dialect and checks its arguments, as Exec and
// Query do: one Named argument for :name placeholders, or positional arguments.
func (d *Dialect) Bind(sql string, args []any) (string, []any, error) {
	return bindArgs(d, sql, args)
}

// OneStatement returns an *ArgumentError when sql holds more than one statement (a ";" outside
// literals and comments followed by more SQL): layers that pipeline statements, such as the
// session, send one statement per request.
func (d *Dialect) OneStatement(sql string) error {
	return oneStatement(sql, d.positional)
}

var (
	nullString  = reflect.TypeFor[sql.NullString]()
	nullInt64   = reflect.TypeFor[sql.NullInt64]()
	nullInt32   = reflect.TypeFor[sql.NullInt32]()
	nullFloat64 = reflect.TypeFor[sql.NullFloat64]()
	nullBool    = reflect.TypeFor[sql.NullBool]()
	nullTime    = reflect.TypeFor[sql.NullTime]()
	timeType    = reflect.TypeFor[time.Time]()
	rawJSON     = reflect.TypeFor[json.RawMessage]()
	uuidBytes   = reflect.TypeFor[[16]byte]()
	duration    = reflect.TypeFor[time.Duration]()
	prefix      = reflect.TypeFor[netip.Prefix]()
	addr        = reflect.TypeFor[netip.Addr]()
)

// pgtypeColumns are pgx's nullable types, by the SQL type each declares (PostgreSQL, SQLite).
var pgtypeColumns = map[reflect.Type][2]string{
	reflect.TypeFor[pgtype.Numeric]():     {"numeric", "text"}, // exact: SQLite's numeric affinity rounds to a double
	reflect.TypeFor[pgtype.UUID]():        {"uuid", "blob"},
	reflect.TypeFor[pgtype.Interval]():    {"interval", "text"},
	reflect.TypeFor[pgtype.Timestamptz](): {"timestamptz", "timestamp"},
	reflect.TypeFor[pgtype.Timestamp]():   {"timestamp", "timestamp"},
	reflect.TypeFor[pgtype.Date]():        {"date", "date"},
	reflect.TypeFor[pgtype.Text]():        {"text", "text"},
	reflect.TypeFor[pgtype.Int8]():        {"bigint", "integer"},
	reflect.TypeFor[pgtype.Int4]():        {"integer", "integer"},
	reflect.TypeFor[pgtype.Int2]():        {"smallint", "integer"},
	reflect.TypeFor[pgtype.Float8]():      {"double precision", "real"},
	reflect.TypeFor[pgtype.Bool]():        {"boolean", "boolean"},
}

// ColumnType returns the SQL type of a column holding Go type t (as CreateAll declares it), and
// whether NULL is allowed: a pointer, a nullable type, and a slice or a map (whose zero value, nil,
// is written as NULL) allow it.
func (d *Dialect) ColumnType(t reflect.Type) (string, bool, error) {
	pg := d == dialectPostgres
	nullable := false
	if t.Kind() == reflect.Pointer {
		t, nullable = t.Elem(), true
	}
	pick := func(pgType, liteType string) string {
		if pg {
			return pgType
		}
		return liteType
	}
	switch t {
	case nullString:
		return "text", true, nil
	case nullInt64:
		return "bigint", true, nil
	case nullInt32:
		return "integer", true, nil
	case nullFloat64:
		return pick("double precision", "real"), true, nil
	case nullBool:
		return "boolean", true, nil
	case nullTime:
		return pick("timestamptz", "timestamp"), true, nil
	case timeType:
		return pick("timestamptz", "timestamp"), nullable, nil
	case rawJSON:
		return pick("jsonb", "text"), true, nil
	case uuidBytes:
		return pick("uuid", "blob"), nullable, nil
	case duration:
		return pick("interval", "bigint"), nullable, nil
	case prefix, addr:
		return pick("inet", "text"), nullable, nil
	}
	if types, ok := pgtypeColumns[t]; ok {
		return pick(types[0], types[1]), true, nil
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int64, reflect.Uint32, reflect.Uint, reflect.Uint64:
		return "bigint", nullable, nil
	case reflect.Int32, reflect.Int16, reflect.Int8, reflect.Uint16, reflect.Uint8:
		return "integer", nullable, nil
	case reflect.Float64, reflect.Float32:
		return pick("double precision", "real"), nullable, nil
	case reflect.Bool:
		return "boolean", nullable, nil
	case reflect.String:
		return "text", nullable, nil
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return pick("bytea", "blob"), true, nil
		}
		elem, _, err := d.ColumnType(t.Elem())
		if err != nil || strings.HasSuffix(elem, "[]") {
			break
		}
		// SQLite has no arrays; its closest is text, which holds what the application encodes
		return pick(elem+"[]", "text"), true, nil
	case reflect.Array:
		if t.Len() == 16 && t.Elem().Kind() == reflect.Uint8 {
			return pick("uuid", "blob"), nullable, nil // a named type over [16]byte, as [16]byte
		}
	case reflect.Map:
		// maps and structs are stored as JSON documents
		return pick("jsonb", "text"), true, nil
	case reflect.Struct:
		return pick("jsonb", "text"), nullable, nil
	}
	return "", false, fmt.Errorf("no SQL type for Go type %s (use a basic type, time.Time, []byte, a pointer to one, or sql.Null*)", t)
}

// GeneratedKey is the column definition of a single integer primary key the server generates:
// typ is the column's type.
func (d *Dialect) GeneratedKey(typ string) string {
	if d == dialectSQLite {
		return "INTEGER PRIMARY KEY AUTOINCREMENT"
	}
	return typ + " GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
}

// Begin is the statement that opens a transaction at isolation level. SQLite's transactions always read one snapshot: it ignores the level. An unknown
// level is an error that names the allowed ones.
func (d *Dialect) Begin(level string) (string, error) {
	switch up := strings.ToUpper(level); up {
	case "READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE":
		if d == dialectSQLite {
			return "BEGIN", nil
		}
		return "BEGIN ISOLATION LEVEL " + up, nil
	}
	return "", fmt.Errorf("gosqla: unknown isolation level %q (allowed: READ COMMITTED, REPEATABLE READ, SERIALIZABLE)", level)
}
