package asyncsession

import (
	"context"
	"fmt"
	"iter"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/internal/structmap"
)

// ErrMultipleRows is matched by the error of One and OneOrNone when the query returns more than
// one row. It is the engine's: a caller matching asyncengine.ErrMultipleRows, as for ErrNoRows,
// matches it too.
var ErrMultipleRows = asyncengine.ErrMultipleRows

// Query builds a SELECT of whole objects of type T. Its methods return the query itself, so that
// calls chain; a mistake (a column T does not map, an unknown relationship) is kept and returned
// by the terminal call, before anything is sent. A Query is not safe for concurrent use while it
// is being built; its terminal calls may be issued many times.
//
//	books := asyncsession.From[Book](s).
//		Join("Author").Where("author.name = :name", asyncengine.Named{"name": "Le Guin"}).
//		OrderBy("title").Limit(10).All(ctx)
type Query[T any] struct {
	s      *Session
	m      *structmap.Model
	err    error
	joins  []*relation
	where  []string
	named  asyncengine.Named
	order  []string
	limit  int
	offset int
	lock   bool        // FOR UPDATE
	skip   bool        // SKIP LOCKED
	loads  []*loadStep // the paths given to Load
}

// From starts a query of the objects of type T in session s.
func From[T any](s *Session) *Query[T] {
	q := &Query[T]{s: s, limit: -1, named: asyncengine.Named{}}
	q.m, q.err = modelOf((*T)(nil))
	if q.err == nil {
		q.err = s.opts.bindErr // the session has no usable engine
	}
	return q
}

func (q *Query[T]) fail(err error) *Query[T] {
	if q.err == nil {
		q.err = err
	}
	return q
}

func (q *Query[T]) mapping(format string, args ...any) *Query[T] {
	name := "?"
	if q.m != nil {
		name = q.m.Type.String()
	}
	return q.fail(&MappingError{Type: name, Reason: fmt.Sprintf(format, args...)})
}

// Where adds a condition, joined to the others with AND. It is SQL: columns are written as the
// table names them (the joined relationships by their alias, see Join), and values are :name
// placeholders given in named.
//
// A name bound by an earlier Where keeps its value: binding it again to another value is an
// error, not a replacement of the value the earlier condition reads.
func (q *Query[T]) Where(cond string, named ...asyncengine.Named) *Query[T] {
	if strings.Contains(cond, "--") {
		// the line break ends a -- comment that ends the condition before the parenthesis
		cond += "\n"
	}
	q.where = append(q.where, "("+cond+")")
	for _, n := range named {
		for k, v := range n {
			if old, ok := q.named[k]; ok && !reflect.DeepEqual(old, v) {
				return q.fail(&asyncengine.ArgumentError{SQL: cond, Fix: fmt.Sprintf("Where binds :%s to %v, but an earlier condition of the query bound it to %v; give the two values names of their own", k, v, old)})
			}
			q.named[k] = v
		}
	}
	return q
}

// Filter adds the condition column = value; column is one T maps, or "Rel.column" for a
// relationship joined with Join. nil (a nil pointer, a driver.Valuer whose value is NULL) is
// IS NULL. A slice value matches any of its elements: = ANY of one array on PostgreSQL, however
// long the slice; an IN list elsewhere; an empty slice matches no row. A slice of the field's own
// type (a []string for a text[] column) is one value, compared with the array whole.
func (q *Query[T]) Filter(column string, value any) *Query[T] {
	ref, f, ok := q.field(column)
	if !ok {
		return q
	}
	if isNull(value) {
		q.where = append(q.where, ref+" IS NULL")
		return q
	}
	name := fmt.Sprintf("gosqla_%d", len(q.named))
	if v := reflect.ValueOf(value); v.Kind() == reflect.Slice && v.Type().Elem().Kind() != reflect.Uint8 && !sameKind(v.Type(), f.Type) {
		switch {
		case v.Len() == 0:
			q.where = append(q.where, "1 = 0")
			return q
		case q.dialect().Name() == "postgresql":
			q.where = append(q.where, ref+" = ANY(:"+name+")")
		default:
			q.where = append(q.where, ref+" IN (:"+name+")")
		}
		q.named[name] = value
		return q
	}
	q.named[name] = value
	q.where = append(q.where, ref+" = :"+name)
	return q
}

// sameKind reports a value of a field's own type (under a pointer): a slice compared with an
// array column whole, not element by element.
func sameKind(v, field reflect.Type) bool {
	for field.Kind() == reflect.Pointer {
		field = field.Elem()
	}
	return v == field
}

// Join adds an INNER JOIN along relationship rel of T (its Go field name); its table is named by
// the relationship's name in snake case (Author → author) in Where, Filter and OrderBy.
func (q *Query[T]) Join(rel string) *Query[T] {
	if q.m == nil {
		return q
	}
	r, err := relationOf(q.m, rel)
	if err != nil {
		return q.fail(err)
	}
	q.joins = append(q.joins, r)
	return q
}

// OrderBy orders by columns of T (or "Rel.column" of a joined relationship), each optionally
// followed by " DESC" or " ASC".
func (q *Query[T]) OrderBy(columns ...string) *Query[T] {
	for _, c := range columns {
		col, dir, _ := strings.Cut(strings.TrimSpace(c), " ")
		dir = strings.ToUpper(strings.TrimSpace(dir))
		if dir != "" && dir != "ASC" && dir != "DESC" {
			return q.mapping("OrderBy(%q): the direction is ASC or DESC", c)
		}
		ref, ok := q.column(col)
		if !ok {
			return q
		}
		if dir != "" {
			ref += " " + dir
		}
		q.order = append(q.order, ref)
	}
	return q
}

// Clone returns a copy of the query, to build on apart: the methods change the query they are
// called on and return it, so a base query that two branches extend is cloned first.
func (q *Query[T]) Clone() *Query[T] {
	c := *q
	c.joins = slices.Clone(q.joins)
	c.where = slices.Clone(q.where)
	c.named = maps.Clone(q.named)
	c.order = slices.Clone(q.order)
	c.loads = cloneSteps(q.loads)
	return &c
}

// Limit returns at most n objects; a negative n removes the limit (as GORM's Limit(-1)).
func (q *Query[T]) Limit(n int) *Query[T] { q.limit = n; return q }

// Offset skips the first n rows; zero or a negative n skips none.
func (q *Query[T]) Offset(n int) *Query[T] { q.offset = n; return q }

// ForUpdate locks the selected rows until the transaction ends (PostgreSQL).
func (q *Query[T]) ForUpdate() *Query[T] { q.lock = true; return q }

// SkipLocked locks the selected rows, skipping those another transaction holds (PostgreSQL):
// the work-queue pattern.
func (q *Query[T]) SkipLocked() *Query[T] { q.lock, q.skip = true, true; return q }

// Load overrides how relationship rel is loaded with the objects: SelectIn, Joined or Lazy.
//
// rel may be a path of relationships joined by dots, "Books.Tags": how is the last step's
// strategy, and every step before it loads — as a Load of its own path says, else as its
// default, SelectIn when that is Lazy. A Joined step joins the query's own statement when the
// step above it is in it too (T itself, or a Joined step); below a SelectIn step it loads
// SelectIn, with the next query. Each SelectIn step below T's relationships is one more query,
// for the objects of that step of all the query's objects, sent once the step above has loaded.
func (q *Query[T]) Load(rel string, how Strategy) *Query[T] {
	if q.m == nil {
		return q
	}
	if how < Lazy || how > Joined {
		return q.fail(&MappingError{Type: q.m.Type.String(), Reason: fmt.Sprintf("Load(%q, %d): the strategy is Lazy, SelectIn or Joined", rel, how)})
	}
	path, err := relationPath(q.m, rel)
	if err != nil {
		return q.fail(err)
	}
	if last := path[len(path)-1]; how == Joined && last.many() {
		return q.fail(&MappingError{Type: last.owner.Type.String(), Field: last.name,
			Reason: fmt.Sprintf("Load(%q, Joined): a collection is loaded with SelectIn; Joined loads a *T relationship", rel)})
	}
	q.loads = addPath(q.loads, path, how)
	return q
}

// column resolves "column" or "Rel.column" to its SQL, recording an error when it is not mapped.
func (q *Query[T]) column(name string) (string, bool) {
	ref, _, ok := q.field(name)
	return ref, ok
}

// field is column, with the field that maps the column.
func (q *Query[T]) field(name string) (string, *structmap.Field, bool) {
	if q.m == nil || q.err != nil {
		return "", nil, false
	}
	d := q.dialect()
	if rel, col, ok := strings.Cut(name, "."); ok {
		for _, r := range q.joins {
			if r.name == rel {
				f := r.target.Column(col)
				if f == nil {
					q.mapping("%s (joined as %s) has no column %q", r.target.Type, rel, col)
					return "", nil, false
				}
				return d.Quote(joinAlias(r)) + "." + d.Quote(col), f, true
			}
		}
		q.mapping("%q: join relationship %s first (Join)", name, rel)
		return "", nil, false
	}
	f := q.m.Column(name)
	if f == nil {
		q.mapping("no column %q (columns: %s)", name, strings.Join(columnsOf(q.m), ", "))
		return "", nil, false
	}
	return d.Quote(q.m.Table) + "." + d.Quote(name), f, true
}

func (q *Query[T]) dialect() *asyncengine.Dialect { return q.s.engineFor(q.m).Dialect() }

// steps are the relationships that load with the query's objects: each of T's by the strategy
// Load gave it or its default, and below them the paths given to Load.
func (q *Query[T]) steps() []*loadStep {
	rels, _ := relationsOf(q.m)
	steps := make([]*loadStep, len(rels))
	for i, r := range rels {
		steps[i] = &loadStep{r: r}
		if k := slices.IndexFunc(q.loads, func(st *loadStep) bool { return st.r == r }); k >= 0 {
			steps[i] = q.loads[k]
		}
	}
	return resolveSteps(steps, true)
}

// SQL returns the statement and its arguments, as All sends them (First adds LIMIT 1, One and
// OneOrNone LIMIT 2, within the query's own limit).
func (q *Query[T]) SQL() (string, []any, error) {
	return q.build(selectRows, q.limit)
}

// String is the statement and its arguments, for reading; a mistake reads as its error.
func (q *Query[T]) String() string {
	sql, args, err := q.SQL()
	if err != nil {
		return "error: " + err.Error()
	}
	return fmt.Sprintf("%s %v", sql, args)
}

type selectKind int

const (
	selectRows    selectKind = iota
	selectObjects            // the rows of T alone, without the relationships loaded Joined
	selectCount
	selectExists
)

// build writes the statement: SELECT of T's columns and those of the relationships loaded
// Joined, FROM T's table with its joins, WHERE, ORDER BY, LIMIT, OFFSET, FOR UPDATE.
// limit is the LIMIT to write (negative: none); scalar, when given, is the one column selected.
func (q *Query[T]) build(kind selectKind, limit int, scalar ...string) (string, []any, error) {
	if q.err != nil {
		return "", nil, q.err
	}
	d := q.dialect()
	if q.lock && d.Name() != "postgresql" {
		return "", nil, &MappingError{Type: q.m.Type.String(), Reason: "FOR UPDATE is PostgreSQL's; SQLite locks the whole database for a writing transaction"}
	}
	rows := kind == selectRows || kind == selectObjects
	if kind == selectExists && (limit < 0 || limit > 1) {
		limit = 1
	}
	// a count of a query that keeps some of its rows (a limit, an offset, a lock that skips
	// locked rows) counts the rows it keeps, as All returns them
	countKept := kind == selectCount && (limit >= 0 || q.offset > 0 || q.lock)
	var b strings.Builder
	b.WriteString("SELECT ")
	if countKept {
		b.WriteString("count(*) FROM (SELECT ")
	}
	var joined []joinedStep
	switch {
	case len(scalar) > 0:
		b.WriteString(scalar[0])
	case kind == selectCount && !countKept:
		b.WriteString("count(*)")
	case !rows:
		b.WriteString("1")
	default:
		for i, f := range q.m.Fields {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(d.Quote(q.m.Table) + "." + d.Quote(f.Column))
		}
		if kind == selectRows {
			joined = joinedSteps(q.steps())
		}
		for _, j := range joined {
			for _, f := range j.r.target.Fields {
				b.WriteString(", " + d.Quote(j.alias) + "." + d.Quote(f.Column) + " AS " + d.Quote(j.alias+"__"+f.Column))
			}
		}
	}
	table := d.Quote(q.m.Table)
	b.WriteString(" FROM " + table)
	// a join along a collection repeats an object once per member it joins: the objects it
	// selects are then chosen by key, so that Limit, Count and All count objects alike (but for
	// Scalars, which reads a value per joined row)
	byKey := len(scalar) == 0 && slices.ContainsFunc(q.joins, (*relation).many)
	// joins writes the joins (those along a *T relationship only, when !collections)
	joins := func(collections bool) {
		for _, r := range q.joins {
			if collections || !r.many() {
				b.WriteString(" JOIN ")
				joinOn(&b, d, r, q.m.Table, joinAlias(r))
			}
		}
	}
	where := func() {
		if len(q.where) > 0 {
			b.WriteString(" WHERE " + strings.Join(q.where, " AND "))
		}
	}
	// the objects chosen by key are joined to their *T relationships again, which repeat no
	// object, for an order by their columns
	joins(!byKey)
	for _, j := range joined {
		from := q.m.Table
		if j.parent >= 0 {
			from = joined[j.parent].alias
		}
		b.WriteString(" LEFT OUTER JOIN ")
		joinOn(&b, d, j.r, from, j.alias)
	}
	if byKey {
		if err := q.orderedByCollection(d); err != nil {
			return "", nil, err
		}
		key := make([]string, len(q.m.PK))
		for i, f := range q.m.PK {
			key[i] = table + "." + d.Quote(f.Column)
		}
		b.WriteString(" WHERE (" + strings.Join(key, ", ") + ") IN (SELECT " + strings.Join(key, ", ") + " FROM " + table)
		joins(true)
		where()
		b.WriteString(")")
	} else {
		where()
	}
	if rows || kind == selectExists || countKept {
		if len(q.order) > 0 {
			b.WriteString(" ORDER BY " + strings.Join(q.order, ", "))
		}
		if limit >= 0 {
			fmt.Fprintf(&b, " LIMIT %d", limit)
		} else if q.offset > 0 && d.Name() != "postgresql" {
			b.WriteString(" LIMIT -1") // SQLite takes OFFSET only after a LIMIT
		}
		if q.offset > 0 {
			fmt.Fprintf(&b, " OFFSET %d", q.offset)
		}
		if q.lock {
			b.WriteString(" FOR UPDATE")
			if len(q.joins) > 0 || len(joined) > 0 {
				// the rows of T, not those joined: a LEFT OUTER JOIN's nullable side cannot be
				// locked, and a joined relationship's rows are not what the caller asked to lock
				table := q.m.Table
				if i := strings.LastIndexByte(table, '.'); i >= 0 {
					table = table[i+1:]
				}
				b.WriteString(" OF " + d.Quote(table))
			}
			if q.skip {
				b.WriteString(" SKIP LOCKED")
			}
		}
	}
	if countKept {
		b.WriteString(") AS gosqla_kept")
	}
	sql := b.String()
	if err := d.OneStatement(sql); err != nil {
		return "", nil, err
	}
	return d.Bind(sql, []any{q.named})
}

// orderedByCollection refuses an order by a column of a collection the query joins: the objects
// it selects by key have one row each, and such a column has a value per member.
func (q *Query[T]) orderedByCollection(d *asyncengine.Dialect) error {
	for _, r := range q.joins {
		prefix := d.Quote(joinAlias(r)) + "."
		for _, o := range q.order {
			if r.many() && strings.HasPrefix(o, prefix) {
				return &MappingError{Type: q.m.Type.String(), Reason: fmt.Sprintf("OrderBy(%s): %s is a collection, whose column has a value per member, not one per object; order by a column of %s or of a *T relationship", o, r.name, q.m.Type)}
			}
		}
	}
	return nil
}

// joinAlias names a table joined with Join.
func joinAlias(r *relation) string { return structmap.SnakeCase(r.name) }

// joinedStep is a step loaded by the query's own statement, with a LEFT OUTER JOIN: alias names
// its table, parent is the index of the joined step it hangs from (-1: the query's model).
type joinedStep struct {
	*loadStep
	alias  string
	parent int
}

// joinedSteps lists the Joined steps of steps and of the Joined steps below them, each before
// those below it: the order of their columns in the statement.
func joinedSteps(steps []*loadStep) []joinedStep {
	var out []joinedStep
	var walk func(steps []*loadStep, parent int, prefix string)
	walk = func(steps []*loadStep, parent int, prefix string) {
		for _, st := range steps {
			if st.how != Joined {
				continue
			}
			alias := prefix + "__" + structmap.SnakeCase(st.r.name)
			if parent < 0 {
				alias = "gosqla_" + structmap.SnakeCase(st.r.name)
			}
			if len(alias) > maxAlias {
				// PostgreSQL cuts a name at 63 bytes, where two long paths may meet: a number,
				// which no relationship's name starts with, names the step instead
				alias = "gosqla_" + strconv.Itoa(len(out)+1)
			}
			out = append(out, joinedStep{loadStep: st, alias: alias, parent: parent})
			walk(st.next, len(out)-1, alias)
		}
	}
	walk(steps, -1, "")
	return out
}

// maxAlias is the longest alias of a joined step: PostgreSQL's 63 bytes, less the "_link" of a
// many-to-many's association table.
const maxAlias = 63 - len("_link")

// joinOn writes "table AS alias ON …" for relationship r of the table from; a many-to-many
// joins its association table first, as alias_link.
func joinOn(b *strings.Builder, d *asyncengine.Dialect, r *relation, from, alias string) {
	a := d.Quote(alias)
	switch r.kind {
	case manyToOne:
		b.WriteString(d.Quote(r.target.Table) + " AS " + a + " ON " + a + "." + d.Quote(r.target.PK[0].Column) + " = " + d.Quote(from) + "." + d.Quote(r.fk.Column))
	case manyToMany:
		link := d.Quote(alias + "_link")
		b.WriteString(d.Quote(r.through) + " AS " + link + " ON " + link + "." + d.Quote(r.fkCol) + " = " + d.Quote(from) + "." + d.Quote(r.owner.PK[0].Column))
		b.WriteString(" JOIN " + d.Quote(r.target.Table) + " AS " + a + " ON " + a + "." + d.Quote(r.target.PK[0].Column) + " = " + link + "." + d.Quote(r.refCol))
	default:
		b.WriteString(d.Quote(r.target.Table) + " AS " + a + " ON " + a + "." + d.Quote(r.fk.Column) + " = " + d.Quote(from) + "." + d.Quote(r.owner.PK[0].Column))
	}
}

// run sends the query and hands its objects to done, after loading the relationships the query
// loads SelectIn (one more query per relationship, travelling together).
func run[T, R any](ctx context.Context, q *Query[T], limit int, done func([]*T) (R, error)) *asyncengine.Future[R] {
	if limit < 0 || (q.limit >= 0 && q.limit < limit) {
		limit = q.limit
	}
	sql, args, err := q.build(selectRows, limit)
	if err != nil {
		return failed[R](err)
	}
	s, m := q.s, q.m
	t, err := s.oneTarget(ctx, m, "a query of the builder", sql, args)
	if err != nil {
		return failed[R](err)
	}
	o, f, resolve := newOp[R](ctx)
	o.engine = t.e
	o.autoflush = flushAll
	o.reads = readsSQL(sql, tableWord(m))
	o.replicaOK = true
	steps := q.steps()
	joined := joinedSteps(steps)
	o.build = func(*Session) ([]asyncengine.Statement, error) {
		return []asyncengine.Statement{{SQL: sql, Args: args}}, nil
	}
	o.apply = func(s *Session, rs []*asyncengine.Result) error {
		out, err := s.mergeQuery(m, rs[0], joined, t.name)
		if err != nil {
			return err
		}
		objs := make([]*T, len(out))
		all := make([]any, len(out))
		for i, in := range out {
			objs[i], all[i] = in.ptr.(*T), in.ptr
		}
		pl := &pathLoad{ctx: ctx, done: func(err error) {
			if err != nil {
				var zero R
				resolve(zero, err)
				return
			}
			resolve(done(objs))
		}}
		// the relationships load with a query each, all queued ahead of later requests: they
		// travel together, in the next round trip, and the steps below them in the rounds after
		s.enqueue(pl.start(s.follow(pl, steps, all))...)
		return nil
	}
	s.submit(o)
	return f
}

// mergeQuery merges a query's rows into the identity map, once per object in the order of their
// first row, with the relationships loaded Joined. Called locked.
func (s *Session) mergeQuery(m *structmap.Model, r *asyncengine.Result, joined []joinedStep, shard string) ([]*instance, error) {
	// every row is scanned before any is merged: a row that does not fit changes no object
	scanned, err := scanRows(m, r)
	if err != nil {
		return nil, err
	}
	sub, err := scanJoined(m, r, joined)
	if err != nil {
		return nil, err
	}
	var out []*instance
	seen := map[*instance]bool{}
	owners := make([]*instance, len(joined)) // the objects of the row being merged, by step
	cols := make([][]string, len(joined))
	for k, j := range joined {
		cols[k] = columnsOf(j.r.target)
	}
	for i := range r.Len() {
		in := s.mergeRow(m, scanned[i], r.Columns(), false, shard)
		if !seen[in] {
			seen[in] = true
			out = append(out, in)
		}
		for k, j := range joined {
			owner := in
			if j.parent >= 0 {
				owner = owners[j.parent]
			}
			owners[k] = nil
			// a relationship loaded already, or set by the application since, is left as it
			// is, as a selectin load leaves it: the row's object still merges, for the steps
			// below it
			keep := owner != nil && whole(owner, j.r)
			switch {
			case owner == nil: // below a relationship the row has not
			case !sub[i][k].IsValid():
				if !keep {
					owner.setLoaded(j.r, reflect.Zero(j.r.field(owner.v).Type()))
				}
			default:
				t := s.mergeRow(j.r.target, sub[i][k], cols[k], false, s.relTarget(j.r, owner.shard).name)
				if !keep {
					owner.setLoadedOne(j.r, t)
				}
				owners[k] = t
			}
		}
	}
	return out, nil
}

// scanJoined scans the objects of the joined steps of every row of r, which has the columns of m
// and then those of each step's model, in order: sub[i][k] is step k's object in row i (not
// valid where the row has none).
func scanJoined(m *structmap.Model, r *asyncengine.Result, joined []joinedStep) (sub [][]reflect.Value, err error) {
	if len(joined) == 0 {
		return nil, nil
	}
	rows := r.Rows()
	sub = make([][]reflect.Value, len(rows))
	dest := make([]any, len(r.Columns()))
	for i := range rows {
		sub[i] = make([]reflect.Value, len(joined))
		at := len(m.Fields)
		for k, j := range joined {
			target := j.r.target
			if rows[i][at+slices.Index(target.Fields, target.PK[0])] != nil {
				v := reflect.New(target.Type).Elem()
				clear(dest)
				for n, f := range target.Fields {
					dest[at+n] = v.FieldByIndex(f.Index).Addr().Interface()
				}
				if err := r.ScanRow(i, dest...); err != nil {
					return nil, err
				}
				sub[i][k] = v
			}
			at += len(target.Fields)
		}
	}
	return sub, nil
}

// columnsOf are m's column names, in the order of its fields.
func columnsOf(m *structmap.Model) []string {
	cols := make([]string, len(m.Fields))
	for i, f := range m.Fields {
		cols[i] = f.Column
	}
	return cols
}

// All returns the objects the query selects, merged into the identity map.
func (q *Query[T]) All(ctx context.Context) *asyncengine.Future[[]*T] {
	return run(ctx, q, -1, func(objs []*T) ([]*T, error) { return objs, nil })
}

// First returns the first object, or nil when the query selects none.
func (q *Query[T]) First(ctx context.Context) *asyncengine.Future[*T] {
	return run(ctx, q, 1, func(objs []*T) (*T, error) {
		if len(objs) == 0 {
			return nil, nil
		}
		return objs[0], nil
	})
}

// One returns the only object: no row is ErrNoRows, more than one ErrMultipleRows.
func (q *Query[T]) One(ctx context.Context) *asyncengine.Future[*T] {
	return run(ctx, q, 2, func(objs []*T) (*T, error) {
		switch len(objs) {
		case 0:
			return nil, fmt.Errorf("gosqla: One: %w", asyncengine.ErrNoRows)
		case 1:
			return objs[0], nil
		}
		return nil, fmt.Errorf("gosqla: One: %w", ErrMultipleRows)
	})
}

// OneOrNone returns the only object, or nil when there is none; more than one is ErrMultipleRows.
func (q *Query[T]) OneOrNone(ctx context.Context) *asyncengine.Future[*T] {
	return run(ctx, q, 2, func(objs []*T) (*T, error) {
		switch len(objs) {
		case 0:
			return nil, nil
		case 1:
			return objs[0], nil
		}
		return nil, fmt.Errorf("gosqla: OneOrNone: %w", ErrMultipleRows)
	})
}

// Count returns the number of objects the query selects, as All would return them: within its
// limit, after its offset, and without the rows SkipLocked skips (which it locks, as All does).
func (q *Query[T]) Count(ctx context.Context) *asyncengine.Future[int64] {
	return scalarQuery(ctx, q, selectCount, "", func(r *asyncengine.Result) (int64, error) {
		var n int64
		return n, r.One(&n)
	})
}

// Exists reports whether the query selects at least one object (after its offset, within its
// limit; with ForUpdate or SkipLocked, the first one it finds is locked).
func (q *Query[T]) Exists(ctx context.Context) *asyncengine.Future[bool] {
	return scalarQuery(ctx, q, selectExists, "", func(r *asyncengine.Result) (bool, error) {
		return r.Len() > 0, nil
	})
}

// Scalars returns one column of the objects the query selects — column of T, or "Rel.column" of a
// joined relationship — as values of type V, without loading objects.
func Scalars[V, T any](ctx context.Context, q *Query[T], column string) *asyncengine.Future[[]V] {
	ref, ok := q.column(column)
	if !ok {
		return failed[[]V](q.err)
	}
	return scalarQuery(ctx, q, selectRows, ref, func(r *asyncengine.Result) ([]V, error) {
		out := make([]V, r.Len())
		for i := range out {
			if err := r.ScanRow(i, &out[i]); err != nil {
				return nil, err
			}
		}
		return out, nil
	})
}

func scalarQuery[T, R any](ctx context.Context, q *Query[T], kind selectKind, column string, read func(*asyncengine.Result) (R, error)) *asyncengine.Future[R] {
	var sql string
	var args []any
	var err error
	if column != "" {
		sql, args, err = q.build(kind, q.limit, column)
	} else {
		sql, args, err = q.build(kind, q.limit)
	}
	if err != nil {
		return failed[R](err)
	}
	t, err := q.s.oneTarget(ctx, q.m, "a query of the builder", sql, args)
	if err != nil {
		return failed[R](err)
	}
	o, f, resolve := newOp[R](ctx)
	o.engine = t.e
	o.autoflush = flushAll
	o.reads = readsSQL(sql, tableWord(q.m))
	o.replicaOK = true
	o.build = func(*Session) ([]asyncengine.Statement, error) {
		return []asyncengine.Statement{{SQL: sql, Args: args}}, nil
	}
	o.apply = func(_ *Session, rs []*asyncengine.Result) error {
		v, err := read(rs[0])
		if err != nil {
			return err
		}
		resolve(v, nil)
		return nil
	}
	q.s.submit(o)
	return f
}

// Stream yields the objects as their rows arrive, outside the identity map, as Stream does; the
// query's relationships are not loaded.
func (q *Query[T]) Stream(ctx context.Context) iter.Seq2[*T, error] {
	sql, args, err := q.build(selectObjects, q.limit)
	if err != nil {
		return func(yield func(*T, error) bool) { yield(nil, err) }
	}
	return Stream[T](ctx, q.s, sql, args...)
}
