package asyncsession

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/internal/structmap"
)

func selectColumns(d *asyncengine.Dialect, m *structmap.Model) string {
	cols := make([]string, len(m.Fields))
	for i, f := range m.Fields {
		cols[i] = d.Quote(f.Column)
	}
	return "SELECT " + strings.Join(cols, ", ") + " FROM " + d.Quote(m.Table)
}

type statementKey struct {
	d *asyncengine.Dialect
	m *structmap.Model
}

var selectByPKCache sync.Map // statementKey → string

// selectByPK reads one row by its primary key. The statement is built once per model and dialect.
func selectByPK(d *asyncengine.Dialect, m *structmap.Model) string {
	key := statementKey{d, m}
	if s, ok := selectByPKCache.Load(key); ok {
		return s.(string)
	}
	var b strings.Builder
	b.WriteString(selectColumns(d, m))
	wherePK(&b, d, m, nil, make([]any, len(m.PK)))
	selectByPKCache.Store(key, b.String())
	return b.String()
}

// Get returns the object of type T with primary key pk (a value, or a []any for a composite key):

func returning(d *asyncengine.Dialect, m *structmap.Model) string {
	return returningBut(d, m, nil)
}

// returningBut is the RETURNING clause of an INSERT that sends the columns sent: the primary key
// and the columns the server fills. A value the object sent is not read back — a trigger storing
// what its field cannot hold would otherwise fail the flush after the row was written; the
// object shows the stored value once it expires and reloads.
func returningBut(d *asyncengine.Dialect, m *structmap.Model, sent []*structmap.Field) string {
	names := make([]string, 0, len(m.Fields))
	for _, f := range m.Fields {
		if f.PK || !slices.Contains(sent, f) {
			names = append(names, d.Quote(f.Column))
		}
	}
	return " RETURNING " + strings.Join(names, ", ")
}

// insertInto writes "INSERT INTO t (cols".
func insertInto(b *strings.Builder, d *asyncengine.Dialect, m *structmap.Model, cols []*structmap.Field) {
	b.WriteString("INSERT INTO ")
	b.WriteString(d.Quote(m.Table))
	b.WriteString(" (")
	for i, f := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(d.Quote(f.Column))
	}
}

// valuesSQL writes "INSERT INTO t (cols) VALUES (…), (…)" for rows, and its arguments.
func valuesSQL(d *asyncengine.Dialect, m *structmap.Model, cols []*structmap.Field, rows []reflect.Value) (string, []any) {
	var b strings.Builder
	insertInto(&b, d, m, cols)
	if len(cols) == 0 {
		b.WriteString(") DEFAULT VALUES")
		return strings.Replace(b.String(), " ()", "", 1), nil
	}
	b.WriteString(") VALUES ")
	args := make([]any, 0, len(rows)*len(cols))
	for r, v := range rows {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for i, f := range cols {
			if i > 0 {
				b.WriteString(", ")
			}
			args = append(args, f.Value(v))
			b.WriteString(d.Placeholder(len(args)))
		}
		b.WriteByte(')')
	}
	return b.String(), args
}

// wherePK writes " WHERE pk = … AND …", numbering its placeholders after args, and returns args
// followed by key.
func wherePK(b *strings.Builder, d *asyncengine.Dialect, m *structmap.Model, args, key []any) []any {
	b.WriteString(" WHERE ")
	for i, f := range m.PK {
		if i > 0 {
			b.WriteString(" AND ")
		}
		args = append(args, key[i])
		b.WriteString(d.Quote(f.Column) + " = " + d.Placeholder(len(args)))
	}
	return args
}

func onConflict(d *asyncengine.Dialect, m *structmap.Model, cols []*structmap.Field, conflict []string) string {
	quoted := make([]string, len(conflict))
	for i, c := range conflict {
		quoted[i] = d.Quote(c)
	}
	var sets []string
	for _, f := range cols {
		if !slices.Contains(conflict, f.Column) {
			sets = append(sets, d.Quote(f.Column)+" = EXCLUDED."+d.Quote(f.Column))
		}
	}
	if len(sets) == 0 {
		// nothing to update: touch the key so that RETURNING still yields the row
		sets = append(sets, quoted[0]+" = EXCLUDED."+quoted[0])
	}
	return " ON CONFLICT (" + strings.Join(quoted, ", ") + ") DO UPDATE SET " + strings.Join(sets, ", ")
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

// createTable is m's CREATE TABLE. On PostgreSQL a foreign key to a table that later reports is
// created after m (tables whose keys form a cycle) is left out of it and returned as a statement
// that adds it once that table exists, and does nothing when the key is already there.
func createTable(d *asyncengine.Dialect, m *structmap.Model, later func(table string) bool) (string, []string, error) {
	var defs, keys []string
	singlePK := len(m.PK) == 1
	for _, f := range m.Fields {
		typ, nullable, err := d.ColumnType(f.Type)
		if f.SQLType != "" {
			typ, err = f.SQLType, nil
		}
		if err != nil {
			return "", nil, &MappingError{Type: m.Type.String(), Field: f.Name, Reason: err.Error() + "; or name the type with a `type=` tag option"}
		}
		def := d.Quote(f.Column) + " "
		generatedKey := f.PK && singlePK && f.Default && (typ == "bigint" || typ == "integer")
		if f.PK && f.Default && !generatedKey && typ != "uuid" && f.SQLType == "" {
			// a key column with no default would take NULL keys (SQLite) or fail the first insert
			return "", nil, &MappingError{Type: m.Type.String(), Field: f.Name, Reason: fmt.Sprintf("CreateAll can give a server-generated (`default`) primary key a default only for a single integer key (or a uuid on PostgreSQL), not for %s: generate the key in Go and drop `default`, name a type that carries its own default with `type=`, or create the table yourself", typ)}
		}
		switch {
		case generatedKey:
			def += d.GeneratedKey(typ)
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
			refs := " REFERENCES " + d.Quote(f.FK[:dot]) + " (" + d.Quote(f.FK[dot+1:]) + ")"
			if d.Name() == "postgresql" && later(f.FK[:dot]) {
				keys = append(keys, "DO $$ BEGIN ALTER TABLE "+d.Quote(m.Table)+" ADD CONSTRAINT "+
					d.Quote(m.Table+"_"+f.Column+"_fkey")+" FOREIGN KEY ("+d.Quote(f.Column)+")"+refs+
					"; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
			} else {
				def += refs
			}
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
	return "CREATE TABLE IF NOT EXISTS " + d.Quote(m.Table) + " (\n  " + strings.Join(defs, ",\n  ") + "\n)", keys, nil
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

// updateSQL sets the fields of v at positions changed (in m.Fields) on the row whose key is key.
func updateSQL(d *asyncengine.Dialect, m *structmap.Model, changed []int, v reflect.Value, key []any) (string, []any) {
	var b strings.Builder
	b.WriteString("UPDATE " + d.Quote(m.Table) + " SET ")
	var args []any
	for i, fi := range changed {
		f := m.Fields[fi]
		if i > 0 {
			b.WriteString(", ")
		}
		args = append(args, f.Value(v))
		b.WriteString(d.Quote(f.Column) + " = " + d.Placeholder(len(args)))
	}
	args = wherePK(&b, d, m, args, key)
	return b.String(), args
}

// deleteSQL deletes the row whose key is key.
func deleteSQL(d *asyncengine.Dialect, m *structmap.Model, key []any) (string, []any) {
	var b strings.Builder
	b.WriteString("DELETE FROM " + d.Quote(m.Table))
	args := wherePK(&b, d, m, nil, key)
	return b.String(), args
}

func dropTable(d *asyncengine.Dialect, m *structmap.Model) string {
	return "DROP TABLE IF EXISTS " + d.Quote(m.Table)
}

// Transaction control of the session's transaction and its savepoints; BEGIN is the dialect's
// (it carries the isolation level).
const (
	commitSQL   = "COMMIT"
	rollbackSQL = "ROLLBACK"
)

// commitStmts and rollbackStmts end a transaction; every round shares them (a pipeline copies
// its parts' statements and never writes to them).
var (
	commitStmts   = []asyncengine.Statement{{SQL: commitSQL}}
	rollbackStmts = []asyncengine.Statement{{SQL: rollbackSQL}}
	// commitObserveStmts commits and reads the WAL position the commit reached, for a
	// ReadYourWrites; a standby (a session reading from a replica) answers NULL
	commitObserveStmts = []asyncengine.Statement{{SQL: commitSQL},
		{SQL: "SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE " + asyncengine.CommitPositionSQL + "::text END"}}
)

func savepointSQL(name string) string  { return "SAVEPOINT " + name }
func releaseSQL(name string) string    { return "RELEASE SAVEPOINT " + name }
func rollbackToSQL(name string) string { return "ROLLBACK TO SAVEPOINT " + name }

// associationInsert links an owner and a target of a many-to-many relationship.
func associationInsert(d *asyncengine.Dialect, r *relation) string {
	return "INSERT INTO " + d.Quote(r.through) + " (" + d.Quote(r.fkCol) + ", " + d.Quote(r.refCol) + ") VALUES (" + d.Placeholder(1) + ", " + d.Placeholder(2) + ")"
}

// associationDelete unlinks an owner and a target of a many-to-many relationship.
func associationDelete(d *asyncengine.Dialect, r *relation) string {
	return "DELETE FROM " + d.Quote(r.through) + " WHERE " + d.Quote(r.fkCol) + " = " + d.Placeholder(1) + " AND " + d.Quote(r.refCol) + " = " + d.Placeholder(2)
}

// associationDeleteAll unlinks an owner from every target of a many-to-many relationship.
func associationDeleteAll(d *asyncengine.Dialect, r *relation) string {
	return "DELETE FROM " + d.Quote(r.through) + " WHERE " + d.Quote(r.fkCol) + " = " + d.Placeholder(1)
}

// deleteByFK deletes the targets of a one-to-many or one-to-one relationship of one owner.
func deleteByFK(d *asyncengine.Dialect, r *relation) []string {
	return deleteWhere(d, r.target, d.Quote(r.fk.Column)+" = "+d.Placeholder(1), map[*structmap.Model]bool{r.owner: true})
}

// deleteWhere returns the statements that delete the rows of m that where selects and, first,
// what goes with them: their association rows, and their own children under cascade=delete,
// level by level. A model met again on the way (rows of one table referring to each other) ends
// the walk there: the database's constraints say what is left.
func deleteWhere(d *asyncengine.Dialect, m *structmap.Model, where string, seen map[*structmap.Model]bool) []string {
	var out []string
	if rels, err := relationsOf(m); err == nil && !seen[m] {
		seen[m] = true
		keys := "(SELECT " + d.Quote(m.PK[0].Column) + " FROM " + d.Quote(m.Table) + " WHERE " + where + ")"
		for _, r := range rels {
			switch {
			case r.kind == manyToMany:
				out = append(out, "DELETE FROM "+d.Quote(r.through)+" WHERE "+d.Quote(r.fkCol)+" IN "+keys)
			case r.kind != manyToOne && r.cascadeDelete:
				out = append(out, deleteWhere(d, r.target, d.Quote(r.fk.Column)+" IN "+keys, seen)...)
			}
		}
		delete(seen, m)
	}
	return append(out, "DELETE FROM "+d.Quote(m.Table)+" WHERE "+where)
}

// keysIn writes "col = $1" for one key, "col = ANY($1)" for several on PostgreSQL (the keys
// travel as one array), or an IN list elsewhere; it returns the arguments.
func keysIn(b *strings.Builder, d *asyncengine.Dialect, col string, keys []any, elem reflect.Type) []any {
	b.WriteString(col)
	switch {
	case len(keys) == 1:
		b.WriteString(" = " + d.Placeholder(1))
		return keys
	case d.Name() == "postgresql":
		arr := reflect.MakeSlice(reflect.SliceOf(elem), len(keys), len(keys))
		for i, k := range keys {
			arr.Index(i).Set(reflect.ValueOf(k).Convert(elem))
		}
		b.WriteString(" = ANY(" + d.Placeholder(1) + ")")
		return []any{arr.Interface()}
	}
	b.WriteString(" IN (")
	for i := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(d.Placeholder(i + 1))
	}
	b.WriteString(")")
	return keys
}

// relatedSQL selects the targets of relationship r for the owners' keys (for manyToOne: the
// targets' own keys). A many-to-many query returns the owner's key first, as column "gosqla_owner".
func relatedSQL(d *asyncengine.Dialect, r *relation, keys []any) (string, []any) {
	var b strings.Builder
	cols := make([]string, len(r.target.Fields))
	for i, f := range r.target.Fields {
		cols[i] = "t." + d.Quote(f.Column)
	}
	b.WriteString("SELECT ")
	var args []any
	switch r.kind {
	case manyToMany:
		b.WriteString("a." + d.Quote(r.fkCol) + " AS gosqla_owner, " + strings.Join(cols, ", "))
		b.WriteString(" FROM " + d.Quote(r.target.Table) + " t JOIN " + d.Quote(r.through) + " a ON a." + d.Quote(r.refCol) + " = t." + d.Quote(r.target.PK[0].Column) + " WHERE ")
		args = keysIn(&b, d, "a."+d.Quote(r.fkCol), keys, r.owner.PK[0].Type)
	case manyToOne:
		b.WriteString(strings.Join(cols, ", ") + " FROM " + d.Quote(r.target.Table) + " t WHERE ")
		args = keysIn(&b, d, "t."+d.Quote(r.target.PK[0].Column), keys, r.target.PK[0].Type)
	default:
		b.WriteString(strings.Join(cols, ", ") + " FROM " + d.Quote(r.target.Table) + " t WHERE ")
		args = keysIn(&b, d, "t."+d.Quote(r.fk.Column), keys, r.owner.PK[0].Type)
	}
	order := r.order
	if len(order) == 0 && r.many() {
		order = []string{r.target.PK[0].Column}
	}
	for i, o := range order {
		if i == 0 {
			b.WriteString(" ORDER BY ")
		} else {
			b.WriteString(", ")
		}
		col, desc, _ := strings.Cut(o, " ")
		b.WriteString("t." + d.Quote(col))
		if desc != "" {
			b.WriteString(" " + desc)
		}
	}
	return b.String(), args
}
