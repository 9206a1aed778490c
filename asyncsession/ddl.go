package asyncsession

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/internal/structmap"
	"github.com/jackc/pgx/v5/pgtype"
)

// CreateAll creates the tables of models (struct values or pointers) that do not exist yet, parents
// before children, in one transaction.
func CreateAll(ctx context.Context, e *asyncengine.Engine, models ...any) error {
	ms, err := ordered(models)
	if err != nil {
		return err
	}
	stmts := make([]string, 0, len(ms))
	for _, m := range ms {
		stmt, err := createTable(e.Dialect(), m)
		if err != nil {
			return err
		}
		stmts = append(stmts, stmt)
		stmts = append(stmts, createIndexes(e.Dialect(), m)...)
	}
	return runDDL(ctx, e, stmts)
}

// DropAll drops the tables of models that exist, children before parents.
func DropAll(ctx context.Context, e *asyncengine.Engine, models ...any) error {
	ms, err := ordered(models)
	if err != nil {
		return err
	}
	stmts := make([]string, 0, len(ms))
	for i := len(ms) - 1; i >= 0; i-- {
		stmts = append(stmts, "DROP TABLE IF EXISTS "+e.Dialect().Quote(ms[i].Table))
	}
	return runDDL(ctx, e, stmts)
}

func runDDL(ctx context.Context, e *asyncengine.Engine, stmts []string) error {
	return e.Begin(ctx, func(c *asyncengine.Conn) error {
		for _, s := range stmts {
			if _, err := c.Exec(ctx, s); err != nil {
				return fmt.Errorf("%w\n  in: %s", err, s)
			}
		}
		return nil
	})
}

// ordered maps the models and sorts them parents first.
func ordered(models []any) ([]*structmap.Model, error) {
	var ms []*structmap.Model
	for _, x := range models {
		m, err := structmap.Of(reflect.TypeOf(x))
		if err != nil {
			return nil, err
		}
		if len(m.PK) == 0 {
			return nil, &MappingError{Type: m.Type.String(), Reason: "no primary key; tag one field `db:\"id,pk\"`"}
		}
		ms = append(ms, m)
	}
	var ins []*instance
	for _, m := range ms {
		ins = append(ins, &instance{model: m})
	}
	levels := levelsOf(ins)
	sort.SliceStable(ms, func(i, j int) bool { return levels[ms[i].Table] < levels[ms[j].Table] })
	return ms, nil
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
	reflect.TypeFor[pgtype.Numeric]():     {"numeric", "numeric"},
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

// createIndexes creates the indexes the model's `index` tags ask for.
func createIndexes(d *asyncengine.Dialect, m *structmap.Model) []string {
	var out []string
	for _, f := range m.Fields {
		if f.Indexed {
			out = append(out, "CREATE INDEX IF NOT EXISTS "+d.Quote(m.Table+"_"+f.Column+"_idx")+" ON "+d.Quote(m.Table)+" ("+d.Quote(f.Column)+")")
		}
	}
	return out
}

// columnType returns the SQL type of a Go type, and whether NULL is allowed.
func columnType(d *asyncengine.Dialect, t reflect.Type) (string, bool, error) {
	pg := d.Name() == "postgresql"
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
		return pick("jsonb", "text"), nullable, nil
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
			return pick("bytea", "blob"), nullable, nil
		}
		elem, _, err := columnType(d, t.Elem())
		if err != nil || strings.HasSuffix(elem, "[]") {
			break
		}
		// SQLite has no arrays; its closest is text, which holds what the application encodes
		return pick(elem+"[]", "text"), nullable, nil
	case reflect.Map, reflect.Struct:
		// maps and structs are stored as JSON documents
		return pick("jsonb", "text"), nullable, nil
	}
	return "", false, fmt.Errorf("no SQL type for Go type %s (use a basic type, time.Time, []byte, a pointer to one, or sql.Null*)", t)
}

func createTable(d *asyncengine.Dialect, m *structmap.Model) (string, error) {
	var defs []string
	singlePK := len(m.PK) == 1
	for _, f := range m.Fields {
		typ, nullable, err := columnType(d, f.Type)
		if f.SQLType != "" {
			typ, err = f.SQLType, nil
		}
		if err != nil {
			return "", &MappingError{Type: m.Type.String(), Field: f.Name, Reason: err.Error() + "; or name the type with a `type=` tag option"}
		}
		def := d.Quote(f.Column) + " "
		generatedKey := f.PK && singlePK && f.Default && (typ == "bigint" || typ == "integer")
		switch {
		case generatedKey && d.Name() == "sqlite":
			def += "INTEGER PRIMARY KEY AUTOINCREMENT"
		case generatedKey:
			def += typ + " GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
		default:
			def += typ
			if f.PK && singlePK {
				def += " PRIMARY KEY"
			} else if !nullable {
				def += " NOT NULL"
			}
			if f.Unique && !(f.PK && singlePK) {
				def += " UNIQUE"
			}
			if f.Default && (!f.PK || typ == "uuid") {
				def += " DEFAULT " + zeroDefault(typ)
			}
		}
		if f.FK != "" {
			dot := strings.LastIndex(f.FK, ".")
			def += " REFERENCES " + d.Quote(f.FK[:dot]) + " (" + d.Quote(f.FK[dot+1:]) + ")"
		}
		defs = append(defs, def)
	}
	if !singlePK {
		cols := make([]string, len(m.PK))
		for i, f := range m.PK {
			cols[i] = d.Quote(f.Column)
		}
		defs = append(defs, "PRIMARY KEY ("+strings.Join(cols, ", ")+")")
	}
	return "CREATE TABLE IF NOT EXISTS " + d.Quote(m.Table) + " (\n  " + strings.Join(defs, ",\n  ") + "\n)", nil
}

// zeroDefault is the server default of a column marked `default` that is not a generated key.
func zeroDefault(typ string) string {
	switch typ {
	case "text":
		return "''"
	case "boolean":
		return "false"
	case "timestamptz", "timestamp":
		return "CURRENT_TIMESTAMP"
	case "bytea", "blob":
		return "''"
	case "uuid":
		return "gen_random_uuid()"
	case "jsonb":
		return "'{}'"
	case "interval":
		return "'0'"
	}
	if strings.HasSuffix(typ, "[]") {
		return "'{}'"
	}
	return "0"
}
