package asyncsession

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/internal/structmap"
)

// planFlush turns the session's changes into statements, one part per engine: INSERTs parents
// first (by the foreign-key graph), UPDATEs of the changed columns only, DELETEs children first.
// all=false plans pending inserts and deletes only, without scanning loaded objects for changes;
// r, unless zero, limits the scan to the objects of the tables a statement names.
// Called locked.
//
// An object whose parent's key the server generates waits for a later stage: more reports that
// the flush has another stage once this one's results are applied.
func (s *Session) planFlush(all bool, r reads) (parts []part, more bool, err error) {
	if s.objects.len() == 0 && len(s.pending) == 0 && len(s.deleted) == 0 {
		return nil, false, nil // nothing to flush: a session used for statements only
	}
	w, err := s.cascade(all && !r.some)
	if err != nil {
		w.restore()
		s.detach(w)
		return nil, false, err
	}
	inserts, later, err := stage(s.pending, w)
	if err != nil {
		w.restore()
		s.detach(w)
		return nil, false, err
	}
	lookups, seen := s.typeLookups(w, inserts, later)
	if len(lookups) > 0 {
		// the batch inserts wait for their tables' column types: this stage reads them, the
		// next one plans the flush again (the relationships' work is redone then)
		w.restore()
		return s.lookupParts(lookups), true, nil
	}
	inserts, later = s.early(inserts, later, w)
	s.awaitLinks(w)
	more = len(later) > 0
	for _, in := range w.waiting {
		// a row inserted ahead of its parent in a cycle: the next stage sets its key
		more = more || in.state != statePending
	}
	deletes := s.deleted
	var updates []*instance
	if all {
		s.candidates(r, func(in *instance) {
			// an expired object is compared with its last snapshot too: a change made after
			// Commit or Rollback is written, never dropped
			if in.state == statePersistent && len(in.changed()) > 0 {
				updates = append(updates, in)
			}
		})
	}
	if len(inserts) == 0 && len(deletes) == 0 && len(updates) == 0 && len(w.before) == 0 && len(w.after) == 0 {
		for _, l := range w.links {
			l.later()
		}
		return nil, more || len(w.links) > 0, nil
	}
	byEngine := map[*asyncengine.Engine]*flushPlan{}
	var engines []*asyncengine.Engine
	planFor := func(e *asyncengine.Engine) *flushPlan {
		fp, ok := byEngine[e]
		if !ok {
			fp = &flushPlan{e: e, d: e.Dialect(), gen: s.gen, snapshot: s.opts.snapshot, w: w, seenTypes: seen}
			byEngine[e] = fp
			engines = append(engines, e)
		}
		return fp
	}
	levels := levelsOf(inserts, deletes, updates)
	inserts = byLevel(inserts, levels, false)
	updates = byLevel(updates, levels, false)
	deletes = byLevel(deletes, levels, true)

	// UPDATEs that point no foreign key at a row go before the INSERTs, as within a table in a
	// unit of work: one that frees a unique value (a replaced one-to-one's old child, a changed
	// key) lets an INSERT of the same flush take it. The others may point at rows the INSERTs
	// write, and go after them.
	early, late := splitUpdates(updates)
	planUpdates := func(updates []*instance) {
		for len(updates) > 0 {
			// the updates of one model on one engine, which may go as one statement
			n := 1
			for n < len(updates) && updates[n].model == updates[0].model && s.engineOf(updates[n]) == s.engineOf(updates[0]) {
				n++
			}
			planFor(s.engineOf(updates[0])).updateRun(updates[:n:n])
			updates = updates[n:]
		}
	}
	planUpdates(early)
	run := 0 // where the run of inserts of one model that in is in ends
	for i, in := range inserts {
		for run <= i || run < len(inserts) && inserts[run].model == in.model {
			run++
		}
		fp := planFor(s.engineOf(in))
		if !fp.insert(in, run-i) {
			// its parents do not leave their keys after all: it waits for the next stage
			later = append(later, in)
			more = true
			continue
		}
		fp.inserted = append(fp.inserted, in)
	}
	more = s.linkRows(w.links, planFor) || more
	planUpdates(late)
	for _, x := range append(w.after, w.before...) {
		fp := planFor(x.e)
		fp.ops = append(fp.ops, func() error { fp.raw(x.stmt); return nil })
	}
	for _, in := range deletes {
		fp := planFor(s.engineOf(in))
		fp.deleted = append(fp.deleted, in)
		fp.delete(in)
	}
	// Planned changes leave the lists now: another request of the same round must not plan them
	// again. If the round fails, the session needs a Rollback, which expunges them.
	s.pending, s.deleted = later, nil
	for _, e := range engines {
		fp := byEngine[e]
		if err := fp.build(); err != nil {
			w.restore()
			return nil, false, err
		}
		undo := fp.undoer(s)
		parts = append(parts, part{b: s.boundFor(e), stmts: fp.stmts, apply: fp.apply, applyEach: fp.applyEach, undo: func() { undo(); w.restore() }, readsBack: fp.readsBack, failed: fp.failed, explain: fp.explain})
	}
	return parts, more, nil
}

// stage splits the pending objects into those inserted now and those waiting for a parent's
// generated key. When every one waits on another (a cycle), one whose waiting keys can hold
// NULL goes first; the next stage sets its key with an UPDATE.
func stage(pending []*instance, w *relWork) (now, later []*instance, err error) {
	if len(w.waiting) > 0 {
		later = make([]*instance, 0, min(len(w.waiting), len(pending)))
	}
	now = make([]*instance, 0, len(pending)-cap(later))
	for _, in := range pending {
		if w.waits(in) != nil {
			later = append(later, in)
		} else {
			now = append(now, in)
		}
	}
	if len(now) > 0 || len(later) == 0 {
		return now, later, nil
	}
	for i, in := range later {
		ok := true
		for _, a := range w.waits(in) {
			ok = ok && nullable(a.fk)
		}
		if ok {
			return []*instance{in}, append(later[:i:i], later[i+1:]...), nil
		}
	}
	in := later[0]
	return nil, nil, &MappingError{Type: in.model.Type.String(), Field: w.waits(in)[0].fk.Name,
		Reason: "the objects' foreign keys form a cycle that cannot be ordered: make one of the keys in the cycle nullable (a pointer), so that its row is inserted first and its key set after"}
}

func without(list, done []*instance) []*instance {
	if len(done) == 0 {
		return list
	}
	gone := make(map[*instance]bool, len(done))
	for _, in := range done {
		gone[in] = true
	}
	out := list[:0:0]
	for _, in := range list {
		if !gone[in] {
			out = append(out, in)
		}
	}
	return out
}

// levelsOf ranks tables so that a table comes after every table it references.
func levelsOf(groups ...[]*instance) map[string]int {
	refs := map[string][]string{}
	var last *structmap.Model // objects come in runs of one model: one lookup per run
	for _, g := range groups {
		for _, in := range g {
			if in.model == last {
				continue
			}
			last = in.model
			t := in.model.Table
			if _, ok := refs[t]; ok {
				continue
			}
			refs[t] = nil
			for _, f := range in.model.Fields {
				if f.FK != "" {
					ref := f.FK[:strings.LastIndex(f.FK, ".")]
					if ref != t {
						refs[t] = append(refs[t], ref)
					}
				}
			}
		}
	}
	levels := map[string]int{}
	var level func(t string, depth int) int
	level = func(t string, depth int) int {
		if l, ok := levels[t]; ok {
			return l
		}
		l := 0
		if depth < 64 {
			for _, r := range refs[t] {
				if rl := level(r, depth+1) + 1; rl > l {
					l = rl
				}
			}
		}
		levels[t] = l
		return l
	}
	for t := range refs {
		level(t, 0)
	}
	return levels
}

// splitUpdates splits the objects to update, keeping their order, into those whose changes set
// no foreign key to a value (NULL is none) and the others.
func splitUpdates(ins []*instance) (early, late []*instance) {
	for i, in := range ins {
		if pointsAtRow(in) {
			if late == nil {
				early = append(make([]*instance, 0, len(ins)), ins[:i]...)
			}
			late = append(late, in)
		} else if late != nil {
			early = append(early, in)
		}
	}
	if late == nil {
		return ins, nil
	}
	return early, late
}

// pointsAtRow reports a loaded object whose foreign key changed to a value since it was loaded
// or flushed.
func pointsAtRow(in *instance) bool {
	if in.snap == nil {
		return false
	}
	for i, f := range in.model.Fields {
		if f.FK != "" && in.fieldChanged(i) && !isNull(f.Value(in.v)) {
			return true
		}
	}
	return false
}

// byLevel returns a copy of ins in the order of their tables' levels (deepest first when desc),
// the objects of one table together within a level, in the order their tables first appear,
// and keeping the order of the objects of one table: a bucket sort, by table, the tables being
// few, with one lookup per run of objects of one model. Tables of one level refer to none of
// each other, so that grouping them by table only lets each table's rows go as one batch (a
// shelf's books and its label, walked shelf by shelf, would otherwise alternate); the rows of
// one table, which may refer to each other (two models of one table), keep their order.
func byLevel(ins []*instance, levels map[string]int, desc bool) []*instance {
	type bucket struct {
		level, at int
	}
	var tables []string // by bucket
	var buckets []bucket
	of := make([]int32, len(ins))
	var last *structmap.Model
	b := -1
	for i, in := range ins {
		if in.model != last {
			last = in.model
			if b = slices.Index(tables, last.Table); b < 0 {
				l := levels[last.Table]
				if desc {
					l = -l
				}
				b = len(tables)
				tables = append(tables, last.Table)
				buckets = append(buckets, bucket{level: l})
			}
		}
		of[i] = int32(b)
		buckets[b].at++ // counted here, turned into a start below
	}
	order := make([]int, len(buckets))
	for k := range order {
		order[k] = k
	}
	slices.SortStableFunc(order, func(x, y int) int { return buckets[x].level - buckets[y].level })
	at := 0
	for _, k := range order {
		n := buckets[k].at
		buckets[k].at = at
		at += n
	}
	out := make([]*instance, len(ins))
	for i, in := range ins {
		k := of[i]
		out[buckets[k].at] = in
		buckets[k].at++
	}
	return out
}

// flushPlan gathers one engine's share of a flush.
type flushPlan struct {
	e        *asyncengine.Engine
	d        *asyncengine.Dialect
	gen      int  // the savepoint generation when planned: a savepoint begun after it in the same round is not its own
	snapshot bool // the session's transactions are above READ COMMITTED: its batches count their rows (typesGuard)
	stmts    []asyncengine.Statement
	appliers []func(s *Session, rs []*asyncengine.Result) error // one per statement
	asRead                                                      // which of them run as results are read (readearly.go)

	insertGroups []*insertGroup
	ops          []func() error // statement builders, in order

	w                 *relWork
	slots             map[*instance]keySlot // where the awaited parents' keys are (keyed.go)
	lastParent        *instance             // the last parent keysOf looked up, at lastSlot
	lastSlot          keySlot
	publishers        int         // the batches that leave their keys, numbered from 1
	srcs              []keySource // keysOf's buffers
	pos               []int32
	heldKeys          []heldKey // by model: how held keys travel in association rows (few)
	readsBack         bool      // a server-filled value is read into a field it may not fit
	batched           []string  // the tables it inserts batches into, by the column types read for them
	updated           []updatedRows
	lookedUp          []string                   // the tables whose column types the plan reads (update.go)
	switched          []keySwitch                // the key changes it applied, which its failure takes back
	inserted, deleted []*instance                // taken off the session's lists
	restores          []func()                   // snapshot values replaced by the planned UPDATEs
	seenTypes         map[batchInsert]tableTypes // the column types the flush found known (typeLookups)
}

// undoer returns what puts the plan's changes back in the session when its pipeline was never
// run, so that the next flush sends them.
func (fp *flushPlan) undoer(s *Session) func() {
	return func() {
		s.pending = append(append([]*instance(nil), fp.inserted...), s.pending...)
		s.deleted = append(append([]*instance(nil), fp.deleted...), s.deleted...)
		for _, r := range fp.restores {
			r()
		}
	}
}

type insertGroup struct {
	m    *structmap.Model
	cols []*structmap.Field
	ins  []*instance
	// srcs are the foreign keys the server fills from the keys of parents inserted in the same
	// pipeline; parents and pos hold, for each row and source, the parent and its position in
	// its batch (keyed.go)
	srcs    []keySource
	parents []*instance
	pos     []int32
	// publisher numbers a batch that leaves its keys for others (0: none), of SQL type keyArray
	publisher int
	keyArray  string
	stmt      int // its statement in the plan
}

// insert adds in to the plan's batches; false: in waits for a key that no batch of the plan
// leaves (keyed.go), and is left for the next stage. run counts the inserts of in's model from
// in on, which a new batch makes room for.
func (fp *flushPlan) insert(in *instance, run int) bool {
	srcs, pos, ok := fp.keysOf(in)
	if !ok {
		return false
	}
	g := fp.groupFor(in, srcs, run)
	g.ins = append(g.ins, in)
	if srcs != nil {
		for _, a := range fp.w.waits(in) {
			g.parents = append(g.parents, a.parent)
		}
		g.pos = append(g.pos, pos...)
	}
	if fp.w.isAwaited(in) {
		if g.publisher == 0 {
			if fp.publishers == maxPublishers {
				return true // its children wait for the next stage
			}
			fp.publishers++
			g.publisher = fp.publishers
			g.keyArray, _ = keyArrayOf(fp.e, g.m)
		}
		if fp.slots == nil {
			fp.slots = map[*instance]keySlot{}
		}
		fp.slots[in] = keySlot{g, len(g.ins)}
	}
	return true
}

// rowParams is the most parameters a batch's rows may take in one statement: a few are kept for
// the statement's own (the row count a batch that leaves its keys checks).
func rowParams(d *asyncengine.Dialect) int { return d.MaxParams - 8 }

// groupFor returns the batch in joins: the last one, when it is of the same model, columns and
// key sources and has room. A row that sends no column is inserted alone (DEFAULT VALUES).
func (fp *flushPlan) groupFor(in *instance, srcs []keySource, run int) *insertGroup {
	if n := len(fp.insertGroups); n > 0 {
		g := fp.insertGroups[n-1]
		if g.m == in.model && len(g.cols) > 0 && insertsColumns(in, g.cols) && slices.Equal(g.srcs, srcs) && (len(g.ins)+1)*len(g.cols) <= rowParams(fp.d) {
			return g
		}
	}
	cols := insertColumns(in)
	// an INSERT that cannot check its own row count (checked): a COMMIT waits until its rows
	// are counted
	fp.readsBack = fp.readsBack || mayNotFit(in.model, cols) || !checksCount(fp.d)
	g := &insertGroup{m: in.model, cols: cols, srcs: slices.Clone(srcs)}
	if len(cols) > 0 {
		rows := min(run, rowParams(fp.d)/len(cols))
		g.ins = make([]*instance, 0, rows)
		if len(srcs) > 0 {
			g.parents = make([]*instance, 0, rows*len(srcs))
			g.pos = make([]int32, 0, rows*len(srcs))
		}
	}
	fp.insertGroups = append(fp.insertGroups, g)
	fp.ops = append(fp.ops, func() error { return fp.buildInsert(g) })
	return g
}

// insertColumns are the mapped columns, less server-filled ones left at their zero value.
func insertColumns(in *instance) []*structmap.Field {
	cols := make([]*structmap.Field, 0, len(in.model.Fields))
	for _, f := range in.model.Fields {
		if f.Default && f.IsZero(in.v) {
			continue
		}
		cols = append(cols, f)
	}
	return cols
}

// insertsColumns reports whether cols are in's insertColumns.
func insertsColumns(in *instance, cols []*structmap.Field) bool {
	k := 0
	for _, f := range in.model.Fields {
		if f.Default && f.IsZero(in.v) {
			continue
		}
		if k == len(cols) || cols[k] != f {
			return false
		}
		k++
	}
	return k == len(cols)
}

// mayNotFit reports a server-filled column (a mapped one the INSERT leaves out) read back into a
// field that not every value of its column fits; int64, int, string, time.Time and [16]byte take
// what generated keys and the usual defaults hold.
func mayNotFit(m *structmap.Model, cols []*structmap.Field) bool {
	if len(cols) == len(m.Fields) {
		return false
	}
	for _, f := range m.Fields {
		if !f.Default || slices.Contains(cols, f) {
			continue
		}
		switch f.Type {
		case reflect.TypeFor[int64](), reflect.TypeFor[int](), reflect.TypeFor[string](), reflect.TypeFor[time.Time](), reflect.TypeFor[[16]byte]():
		default:
			return true
		}
	}
	return false
}

func sameFields(a, b []*structmap.Field) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (fp *flushPlan) buildInsert(g *insertGroup) error {
	cols, types, guarded := fp.batchTypes(g)
	// a batch whose table cannot skip rows is guarded against its starting to, and need not
	// count them, but for a transaction whose snapshot may not show a trigger created since
	// (typesGuard); one that publishes its keys counts them as it leaves them
	check := checksCount(fp.d) && (!guarded || types.skips || g.publisher > 0 || fp.snapshot || aboveReadCommitted(fp.e))
	if !guarded && len(g.srcs) > 0 {
		return fmt.Errorf("gosqla: internal error: the INSERT into %s needs its parents' keys and cannot send arrays", g.m.Table)
	}
	if !guarded || g.publisher > 0 || len(g.ins) <= statementRows {
		fp.insertStatement(g, cols, types, guarded, guarded, check, len(g.ins))
		return nil
	}
	// the batch goes as several INSERTs, whose results are applied as they are read while the
	// server writes the next rows (readEarly); one that publishes its keys stays whole
	g.stmt = -1
	for lo := 0; lo < len(g.ins); lo += statementRows {
		part := g.rows(lo, min(lo+statementRows, len(g.ins)))
		fp.insertGroups = append(fp.insertGroups, part)
		// room for the whole batch is made once, as its first part is stored; the first part's
		// guard covers the others (unnestSQL)
		reserve := 0
		if lo == 0 {
			reserve = len(g.ins)
		}
		fp.insertStatement(part, cols, types, guarded, lo == 0, check, reserve)
	}
	return nil
}

// statementRows is the most rows a batch sends in one INSERT on PostgreSQL, unless it leaves its
// keys for others: a larger one goes as several, so that the first rows' keys are stored while
// the server writes the rest.
const statementRows = 1000

// rows is rows lo to hi of g, as a batch of their own.
func (g *insertGroup) rows(lo, hi int) *insertGroup {
	part := *g
	ns := len(g.srcs)
	part.ins = g.ins[lo:hi:hi]
	if ns > 0 {
		part.parents, part.pos = g.parents[lo*ns:hi*ns:hi*ns], g.pos[lo*ns:hi*ns:hi*ns]
	}
	return &part
}

// insertStatement adds g's INSERT to the plan, and what applies its result: cols and types are
// how its rows travel as arrays when arrays (unnest.go), guard whether it checks the table is as
// read, check whether it counts its rows, reserve the objects to make room for in the session
// before they are stored.
func (fp *flushPlan) insertStatement(g *insertGroup, cols []columnType, types tableTypes, arrays, guard, check bool, reserve int) {
	rows := make([]reflect.Value, len(g.ins))
	for i, in := range g.ins {
		rows[i] = in.v
	}
	var sql string
	var args []any
	if arrays {
		sql, args = unnestSQL(fp.d, g, cols, guard, check, rows)
	} else {
		sql, args = valuesSQL(fp.d, g.m, g.cols, rows)
	}
	sql += returningBut(fp.d, g.m, g.cols)
	if check {
		args = append(args, len(g.ins))
		sql = checked(fp.d, g, sql, fp.d.Placeholder(len(args)))
	}
	g.stmt = len(fp.stmts)
	fp.stmts = append(fp.stmts, asyncengine.Statement{SQL: sql, Args: args})
	fp.mayReadEarly(g.stmt)
	ins := g.ins
	fp.appliers = append(fp.appliers, func(s *Session, rs []*asyncengine.Result) error {
		r := rs[0]
		if err := fp.countError(g, r); err != nil {
			return err
		}
		fields := fieldsOf(g.m, r.Columns())
		fp.storing(g, fields)
		if err := fillKeys(g); err != nil {
			return err
		}
		if reserve > 0 {
			s.reserve(g.m, ins[0].shard, reserve)
		}
		sc := newRowScanner(g.m, r)
		// the new objects' snapshots are cut from one array
		snaps := reflect.MakeSlice(reflect.SliceOf(g.m.Type), len(ins), len(ins))
		for i, in := range ins {
			row, err := sc.scan(i)
			if err != nil {
				return err
			}
			in.storeIn(row, fields, snaps.Index(i))
			in.rekey()
			in.state = statePersistent
			in.inserted(fp.gen)
			s.register(in)
		}
		return nil
	})
}

// batchTypes returns the column types g's rows travel as when they go as one array per column
// (unnest.go): a batch of two or more rows on PostgreSQL, of a table whose types are known.
func (fp *flushPlan) batchTypes(g *insertGroup) ([]columnType, tableTypes, bool) {
	if len(g.ins) < 2 && len(g.srcs) == 0 || !typedParams(fp.e) {
		return nil, tableTypes{}, false
	}
	table := fp.d.Quote(g.m.Table)
	types, ok := typesFor(fp.e, table)
	if !ok {
		// forgotten since the flush looked them up (another session's failed flush into the
		// table): the ones it saw then
		types, ok = fp.seenTypes[batchInsert{fp.e, table}]
	}
	if !ok {
		return nil, tableTypes{}, false
	}
	fp.batched = append(fp.batched, table)
	cols, ok := unnestable(types, g.cols)
	return cols, types, ok
}

// failed forgets the column types of the tables the plan inserted batches into, after one of its
// statements failed: the table may have changed since they were read; takes back from its
// objects what was stored in them as its first results were read; and gives the objects it
// updated their snapshots back, so that what it did not write stays a change to write (a key the
// failed UPDATE sent must not become the key the next one looks for).
func (fp *flushPlan) failed(s *Session) {
	for _, t := range fp.batched {
		forgetTypes(fp.e, t)
	}
	fp.unstore()
	for _, r := range slices.Backward(fp.restores) {
		r()
	}
	fp.restores = nil
	for _, k := range slices.Backward(fp.switched) {
		s.unswitch(k)
	}
	fp.switched = nil
	// the walk's changes to relationships (a back-reference appended to a parent's collection,
	// a foreign key copied from a parent) are taken back too: a later flush would otherwise
	// write them as the application's own
	fp.w.restoreWhere(func(in *instance) bool { return s.engineOf(in) == fp.e })
}

// loadedPK is the primary key as last loaded or flushed: a changed key still finds its row.
func loadedPK(in *instance) []any {
	key := make([]any, len(in.model.PK))
	for i, f := range in.model.PK {
		key[i] = in.snapshotArg(fieldIndex(in.model, f))
	}
	return key
}

// fieldIndex is f's position in m's Fields, -1 when f is not m's.
func fieldIndex(m *structmap.Model, f *structmap.Field) int {
	if f.Pos < len(m.Fields) && m.Fields[f.Pos] == f {
		return f.Pos
	}
	return -1
}

func (fp *flushPlan) delete(in *instance) {
	fp.ops = append(fp.ops, func() error {
		sql, args := deleteSQL(fp.d, in.model, loadedPK(in))
		fp.stmts = append(fp.stmts, asyncengine.Statement{SQL: sql, Args: args})
		fp.appliers = append(fp.appliers, func(s *Session, rs []*asyncengine.Result) error {
			s.unregister(in) // the claim stays while a rollback may restore it
			s.letPass(in)
			s.undoSeq++
			s.gone = append(s.gone, goneObject{in: in, gen: fp.gen, seq: s.undoSeq}) // Rollback restores it
			return nil
		})
		return nil
	})
}

// raw adds a statement whose result the session does not read.
func (fp *flushPlan) raw(st asyncengine.Statement) {
	fp.stmts = append(fp.stmts, st)
	fp.appliers = append(fp.appliers, func(*Session, []*asyncengine.Result) error { return nil })
}

func (fp *flushPlan) build() error {
	for _, op := range fp.ops {
		if err := op(); err != nil {
			return err
		}
	}
	return nil
}
