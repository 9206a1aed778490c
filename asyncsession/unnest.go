package asyncsession

import (
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"weak"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/internal/pgarrays"
	"github.com/gosqla/gosqla/internal/structmap"
)

// On PostgreSQL a flush inserts a batch of rows of one model as
//
//	INSERT INTO t (a, b) SELECT u.c1, u.c2 FROM unnest($1::bigint[], $2::text[]) AS u(c1, c2) RETURNING …
//
// with one array parameter per column: the statement is the same for any number of rows, so it
// is prepared once per connection, and the server plans two parameters instead of one per value.
// Each array is typed as the table's own column (read once per engine and table from the
// catalog), so that every element is encoded by the driver exactly as the same value sent alone
// into that column is:
//
//   - a string travels as text, as it does alone, and the column's type reads it (the array
//     element is cast to it: its input function); so does every string-kinded value (a named
//     string type, a pointer to either), which alone the driver sends as text to a type the
//     database defines (an enum, a domain) and converts itself for a built-in one, agreeing with
//     the type's input function on every value both accept;
//   - any other value travels in an array of the column's type (without its modifier: the
//     INSERT applies varchar(n), numeric(p,s) and the like as it does to a single value);
//   - a column the arrays cannot carry faithfully keeps the multi-row VALUES: array-typed columns
//     (unnest would flatten them), composite types, other values for types the database defines,
//     and interface-typed fields (whose values may differ in type from row to row).
//
// The returned rows are matched to the objects by position, as those of a multi-row VALUES
// are: PostgreSQL's INSERT returns its rows in the order the SELECT produced them, and unnest
// produces the arrays' elements in order. A count that differs (a trigger that skipped a row)
// fails the flush.

// columnType is what the catalog says of one column: the SQL type of the array a batch sends
// for it, and the type its text elements are cast to ("": none).
type columnType struct {
	array string
	cast  string // for text elements: the column's type, to which they are cast
	none  bool   // the column cannot travel in an array: the batch uses VALUES
	user  bool   // a type the database defines (OID past the built-in ones)
	oid   int64  // the column's type, as typesGuard checks it
}

// tableTypes are the column types of one table, by column name. A table the catalog does not
// know has none: its batches use VALUES (and fail as a single INSERT would).
type tableTypes struct {
	cols  map[string]columnType
	skips bool // an INSERT may write fewer rows than it is sent (skipsSQL)
	// snapshot: they were read in a transaction above READ COMMITTED, as the server's default
	// may make every transaction of the engine: the engine's batches count their rows
	// (typesGuard, aboveReadCommitted)
	snapshot bool
}

type typesKey struct {
	e     weak.Pointer[asyncengine.Engine]
	table string
}

// columnTypes caches tableTypes per engine and table; an entry goes when a batch insert into its
// table fails (the table may have changed) and is read again by the next batch.
var columnTypes sync.Map // typesKey → tableTypes

// catalogSQL reads the column types of one table, named as the INSERT names it, and whether an
// INSERT into it may write fewer rows than it is sent (skipsSQL). to_regclass answers NULL for a
// table that does not exist, without failing the transaction. The types are formatted without
// their modifier (format_type with -1 spells bpchar and "bit" so that they do not mean char(1)
// and bit(1)).
var catalogSQL = `SELECT a.attname::text, a.atttypid::int8, format_type(a.atttypid, -1), ` +
	`coalesce(format_type(nullif(t.typarray, 0), -1), ''), t.typcategory::text, t.typtype::text, ` +
	skipsSQL("to_regclass($1)") + `, current_setting('transaction_isolation') <> 'read committed' ` +
	`FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid ` +
	`WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`

// skipsSQL is true of the table rel when an INSERT into it may write fewer rows than it is sent
// without failing: one with a BEFORE INSERT row trigger (which may return NULL) or a rule, or
// one that is not a plain table (a view's INSTEAD OF trigger, a partition's own triggers, a
// foreign table). Batches into such a table count their rows as they run (checked).
func skipsSQL(rel string) string {
	return `(EXISTS (SELECT FROM pg_class c WHERE c.oid = ` + rel + ` AND (c.relkind <> 'r' OR c.relhasrules)) ` +
		`OR EXISTS (SELECT FROM pg_trigger g WHERE g.tgrelid = ` + rel + ` AND g.tgtype & 7 = 7))`
}

// typesGuard is the condition of a batch INSERT into table (quoted) that the columns it writes
// still have the types their arrays were typed for, and, for a batch that does not count its
// rows (rel, the placeholder naming the table, is not ""), that the table still cannot skip
// one. Otherwise the INSERT fails, and the transaction with it, before it writes anything: it
// must not send values typed for the old columns, which the new ones could take silently
// changed (a timestamp read as a timestamptz in the session's zone), nor leave a skipped row
// uncounted.
//
// The types are those of the table's row type, which the server resolves as it plans the INSERT
// (and again when a change of the table invalidates its plan): as the INSERT sees the table, not
// as the transaction's snapshot does. Under REPEATABLE READ or SERIALIZABLE that snapshot may
// predate an ALTER TABLE committed before the INSERT took its lock; the catalog rows the skip
// check reads are the snapshot's, so it holds only under READ COMMITTED, where each statement's
// snapshot is taken after its locks: in a transaction above it, a batch that does not count its
// rows fails, and the next reads the table again and counts them (tableTypes.snapshot). The
// failure's text starts with changedMarker; the setting read into it keeps the planner from
// evaluating it before the condition.
func typesGuard(d *asyncengine.Dialect, table string, cols []*structmap.Field, types []columnType, rel string) string {
	return " WHERE " + typesCondition(d, table, cols, types, rel)
}

// typesCondition is typesGuard's condition.
func typesCondition(d *asyncengine.Dialect, table string, cols []*structmap.Field, types []columnType, rel string) string {
	conds := make([]string, 0, len(cols)+2)
	for i, f := range cols {
		conds = append(conds, "pg_typeof((NULL::"+table+")."+d.Quote(f.Column)+")::oid = "+strconv.FormatInt(types[i].oid, 10))
	}
	if rel != "" {
		conds = append(conds, "NOT "+skipsSQL("to_regclass("+rel+")"), "current_setting('transaction_isolation') = 'read committed'")
	}
	return `CASE WHEN ` + strings.Join(conds, " AND ") + ` THEN true ` +
		`ELSE ('` + changedMarker + ` (read ' || current_setting('transaction_isolation') || ')')::boolean END`
}

// changedMarker starts the text of the error a batch whose table changed raises.
const changedMarker = "gosqla: table changed"

// firstUserOID is the first OID of objects a database defines (PostgreSQL's FirstNormalObjectId).
const firstUserOID = 16384

func typesFor(e *asyncengine.Engine, table string) (tableTypes, bool) {
	t, ok := columnTypes.Load(typesKey{weak.Make(e), table})
	if !ok {
		return tableTypes{}, false
	}
	return t.(tableTypes), true
}

func forgetTypes(e *asyncengine.Engine, table string) {
	columnTypes.Delete(typesKey{weak.Make(e), table})
}

// storeTypes reads the catalog's answer for table. The entry leaves the cache with its engine.
func storeTypes(e *asyncengine.Engine, table string, r *asyncengine.Result) error {
	types := tableTypes{cols: make(map[string]columnType, r.Len())}
	for i := range r.Len() {
		var name, typ, array, category, kind string
		var oid int64
		if err := r.ScanRow(i, &name, &oid, &typ, &array, &category, &kind, &types.skips, &types.snapshot); err != nil {
			return err
		}
		types.cols[name] = columnType{
			array: array,
			cast:  typ,
			none:  array == "" || category == "A" || kind == "c" || kind == "p",
			user:  oid >= firstUserOID,
			oid:   oid,
		}
	}
	w := weak.Make(e)
	columnTypes.Store(typesKey{w, table}, types)
	seen, loaded := typedEngines.LoadOrStore(w, new(atomic.Bool))
	if types.snapshot {
		seen.(*atomic.Bool).Store(true)
	}
	if !loaded {
		runtime.AddCleanup(e, forgetEngine, w)
	}
	return nil
}

// typedEngines holds the engines with entries in columnTypes, which leave with their engine, and
// whether one of their catalog reads ran above READ COMMITTED: from then on every batch of the
// engine counts its rows (aboveReadCommitted), whatever the level of the transaction that reads
// a table again, so that sessions of different levels sharing an engine do not fail each other's
// batches in turn.
var typedEngines sync.Map // weak.Pointer[asyncengine.Engine] → *atomic.Bool

// aboveReadCommitted reports an engine a catalog read of which ran above READ COMMITTED.
func aboveReadCommitted(e *asyncengine.Engine) bool {
	seen, ok := typedEngines.Load(weak.Make(e))
	return ok && seen.(*atomic.Bool).Load()
}

func forgetEngine(w weak.Pointer[asyncengine.Engine]) {
	forgetTables(w)
	typedEngines.Delete(w)
}

// forgetTables drops the column types of every table of an engine: a migration that changed
// one table may have changed others, which the next batches then read again.
func forgetTables(w weak.Pointer[asyncengine.Engine]) {
	columnTypes.Range(func(k, _ any) bool {
		if k.(typesKey).e == w {
			columnTypes.Delete(k)
		}
		return true
	})
}

// batchInsert is a table a flush inserts a batch of rows into on one engine.
type batchInsert struct {
	e     *asyncengine.Engine
	table string
}

// typeLookups returns, for the PostgreSQL engines of a flush, the catalog reads its batch inserts
// need before they can be planned: one statement per engine and table of which at least two rows
// are to be inserted there, or whose rows are parents that objects of later wait for (keyed.go),
// and whose column types are not known yet; and the types of those tables that are known, which
// the flush keeps should another session's failed flush forget them before it is built.
func (s *Session) typeLookups(w *relWork, now, later []*instance) (out []batchInsert, seen map[batchInsert]tableTypes) {
	type count struct {
		m     *structmap.Model
		shard string
		n     int
	}
	var counts []count // few models and shards: a list, searched from the last one counted
	lookup := func(in *instance) {
		e := s.engineOf(in)
		if !typedParams(e) {
			return
		}
		table := e.Dialect().Quote(in.model.Table)
		t, ok := typesFor(e, table)
		switch {
		case ok:
			// kept for the flush: another session's failed flush may forget them meanwhile
			if seen == nil {
				seen = map[batchInsert]tableTypes{}
			}
			seen[batchInsert{e, table}] = t
		case !containsBatch(out, e, table):
			out = append(out, batchInsert{e, table})
		}
	}
	for _, g := range [][]*instance{now, later} {
		for _, in := range g {
			k := len(counts) - 1
			for k >= 0 && (counts[k].m != in.model || counts[k].shard != in.shard) {
				k--
			}
			if k < 0 {
				counts = append(counts, count{m: in.model, shard: in.shard})
				k = len(counts) - 1
			} else if k != len(counts)-1 {
				counts[k], counts[len(counts)-1] = counts[len(counts)-1], counts[k]
				k = len(counts) - 1
			}
			counts[k].n++
			if counts[k].n == 2 {
				lookup(in)
			}
		}
	}
	var linked, parents []*structmap.Model // the models of links' sides and of parents looked up: few
	for _, l := range w.links {
		for _, in := range l.sides() {
			if !hasKey(in) && !slices.Contains(linked, in.model) {
				linked = append(linked, in.model)
				lookup(in)
			}
		}
	}
	for _, in := range later {
		for _, a := range w.waits(in) {
			if m := a.parent.model; m != in.model && !slices.Contains(parents, m) {
				parents = append(parents, m)
				lookup(a.parent)
				lookup(in)
			}
		}
	}
	return out, seen
}

func containsBatch(list []batchInsert, e *asyncengine.Engine, table string) bool {
	for _, b := range list {
		if b.e == e && b.table == table {
			return true
		}
	}
	return false
}

// lookupParts are the parts of a flush stage that only reads column types, one per engine: the
// flush plans its changes in the next stage, once they are known.
func (s *Session) lookupParts(lookups []batchInsert) []part {
	var parts []part
	for len(lookups) > 0 {
		e := lookups[0].e
		var tables []string
		rest := lookups[:0:0]
		for _, l := range lookups {
			if l.e == e {
				tables = append(tables, l.table)
			} else {
				rest = append(rest, l)
			}
		}
		lookups = rest
		stmts := make([]asyncengine.Statement, len(tables))
		for i, t := range tables {
			stmts[i] = asyncengine.Statement{SQL: catalogSQL, Args: []any{t}}
		}
		parts = append(parts, part{b: s.boundFor(e), stmts: stmts, apply: func(_ *Session, rs []*asyncengine.Result) error {
			for i, t := range tables {
				if err := storeTypes(e, t, rs[i]); err != nil {
					return err
				}
			}
			return nil
		}})
	}
	return parts
}

// typedParams reports an engine whose statements' parameters take the types the server gives
// them (PostgreSQL with statements prepared or described): the arrays are encoded as arrays of
// the columns' types. Without a description (statement_cache=none or simple) the driver guesses a
// parameter's type from its Go type; batches keep the multi-row VALUES there.
func typedParams(e *asyncengine.Engine) bool {
	if e.Dialect().Name() != "postgresql" {
		return false
	}
	switch e.Config().StatementCache {
	case asyncengine.CachePrepare, asyncengine.CacheDescribe, asyncengine.CacheDescribeExec, "":
		return true
	}
	return false
}

// unnestable reports whether every column of a batch can travel as an array, and the types to
// send them as.
func unnestable(types tableTypes, cols []*structmap.Field) ([]columnType, bool) {
	if len(cols) == 0 {
		return nil, false
	}
	out := make([]columnType, len(cols))
	for i, f := range cols {
		ct, ok := types.cols[f.Column]
		if !ok || ct.none || f.Type.Kind() == reflect.Interface {
			return nil, false
		}
		switch {
		case stringKinded(f.Type):
			ct.array = "text[]"
			if ct.cast == "text" {
				ct.cast = ""
			}
		case ct.user:
			return nil, false
		default:
			ct.cast = ""
		}
		out[i] = ct
	}
	return out, true
}

var (
	stringType = reflect.TypeFor[string]()
	int64Type  = reflect.TypeFor[int64]()
)

func stringKinded(t reflect.Type) bool {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.String
}

// unnestSQL writes the INSERT of rows as one array per column, guarded by the types of the
// columns it writes (and, unless the INSERT is checked, by the table's not skipping rows), and
// its arguments. Without guard it is left out: for the second and later INSERTs of a batch sent
// as several, which the first one's guard covers — the table's lock, taken by the first, keeps
// its columns and triggers as they are until the transaction ends.
func unnestSQL(d *asyncengine.Dialect, g *insertGroup, types []columnType, guard, checked bool, rows []reflect.Value) (string, []any) {
	var b strings.Builder
	insertInto(&b, d, g.m, g.cols)
	// a foreign key filled from a parent of the flush travels as the parent's position, and the
	// server puts the parent's key in its place
	args := make([]any, len(g.cols), len(g.cols)+2)
	keyed := make([]int, len(g.srcs))
	for k, src := range g.srcs {
		if keyed[k] = slices.Index(g.cols, src.fk); keyed[k] >= 0 {
			args[keyed[k]] = positions(g, k)
		}
	}
	names, arrays, selected := unnestColumns(d, "u", g.cols, types, rows, args)
	for k, src := range g.srcs {
		i := keyed[k]
		if i < 0 {
			continue
		}
		selected[i] = keyExpr(src, "u."+names[i])
		arrays[i] = d.Placeholder(i+1) + "::integer[]"
	}
	b.WriteString(") SELECT " + strings.Join(selected, ", ") + " FROM unnest(" + strings.Join(arrays, ", ") + ") AS u(" + strings.Join(names, ", ") + ")")
	if !guard {
		return b.String(), args
	}
	table := d.Quote(g.m.Table)
	if checked {
		b.WriteString(typesGuard(d, table, g.cols, types, ""))
		return b.String(), args
	}
	b.WriteString(typesGuard(d, table, g.cols, types, d.Placeholder(len(g.cols)+1)+"::text"))
	return b.String(), append(args, table)
}

// unnestColumns are the parts of a statement that reads rows as one array per column (cols, of
// types): the columns' names in the unnest alias (c1, c2, …), their arrays ($1::bigint[], …),
// the values to use (alias.c1, cast to the column's type where text travels); and it fills in
// the arrays' arguments args has none for yet.
func unnestColumns(d *asyncengine.Dialect, alias string, cols []*structmap.Field, types []columnType, rows []reflect.Value, args []any) (names, arrays, values []string) {
	names, arrays, values = make([]string, len(cols)), make([]string, len(cols)), make([]string, len(cols))
	for i, f := range cols {
		names[i] = "c" + strconv.Itoa(i+1)
		arrays[i] = d.Placeholder(i+1) + "::" + types[i].array
		values[i] = alias + "." + names[i]
		if types[i].cast != "" {
			values[i] += "::" + types[i].cast
		}
		if args[i] == nil {
			args[i] = column(f, types[i].array, rows)
		}
	}
	return names, arrays, values
}

// positions are the positions of the rows' parents for key source k of a keyed batch.
func positions(g *insertGroup, k int) pgarrays.Int4s {
	ns := len(g.srcs)
	out := make([]int32, len(g.ins))
	for r := range out {
		out[r] = g.pos[r*ns+k]
	}
	return out
}

// column gathers field f of every row into one slice for an array of SQL type array: a slice of
// the field's type, so that the driver plans the elements' encoding once (int64 for bigint[] and
// string for text[] as pgarrays' columns, which it writes without work per element; for another
// array the driver's own slice, whose conversion errors name no type of ours), or, for a pointer,
// the values Field.Value gives (nil for a nil pointer, as a single INSERT sends it).
func column(f *structmap.Field, array string, rows []reflect.Value) any {
	switch {
	case f.Type == int64Type:
		ints := each(rows, func(v reflect.Value) int64 { return v.FieldByIndex(f.Index).Int() })
		if array == "bigint[]" {
			return pgarrays.Int8s(ints)
		}
		return ints
	case f.Type == stringType:
		texts := each(rows, func(v reflect.Value) string { return v.FieldByIndex(f.Index).String() })
		if array == "text[]" {
			return pgarrays.Texts(texts)
		}
		return texts
	case f.Type.Kind() == reflect.Pointer:
		return each(rows, f.Value)
	}
	out := reflect.MakeSlice(reflect.SliceOf(f.Type), len(rows), len(rows))
	for i, v := range rows {
		out.Index(i).Set(v.FieldByIndex(f.Index))
	}
	return out.Interface()
}

// each is get of every row.
func each[E any](rows []reflect.Value, get func(reflect.Value) E) []E {
	out := make([]E, len(rows))
	for i, v := range rows {
		out[i] = get(v)
	}
	return out
}
