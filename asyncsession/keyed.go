package asyncsession

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/internal/structmap"
)

// On PostgreSQL an object waiting for the key the server generates for its parent goes in the
// same pipeline as the parent's INSERT, instead of a later stage: a graph of new objects is saved
// in one round trip. Every INSERT of a flush checks that it wrote every row it was sent (checked),
// and the parents' batch INSERT then leaves its generated keys, in the order of its rows, in a
// setting local to the transaction,
//
//	WITH p AS (INSERT INTO writers … RETURNING id)
//	SELECT p.* FROM p WHERE (SELECT CASE WHEN count(*) = $3 THEN set_config('gosqla.keys_1',
//		array_agg(p.id)::text, true) IS NOT NULL ELSE ('gosqla: wrote ' || …)::boolean END FROM p)
//
// and the children's batch sends, for the foreign key, the position of each one's parent among
// those rows, which the server turns into the key:
//
//	INSERT INTO novels (writer_id, title) SELECT (SELECT current_setting('gosqla.keys_1')::bigint[])[u.c1], u.c2
//	FROM unnest($1::integer[], $2::text[]) AS u(c1, c2) RETURNING id
//
// The keys are read once per statement and indexed in constant time (fixed-width key types
// only). An INSERT that wrote another number of rows than it was sent (a trigger skipped one, or
// the table's column types changed) fails, with the transaction, before anything after it runs
// — a COMMIT in the same pipeline commits nothing — and the flush reports the count. The
// setting's name is the publishing statement's number within its flush, at most maxPublishers,
// so that a connection holds few of them.
//
// The rest waits for a later stage, as before: other dialects, a table whose column types were
// not read, a key of another type, a parent in the same table or another engine.

// keySource is a foreign key of a batch's rows filled by the server from the keys that the
// publishing INSERT numbered publisher left.
type keySource struct {
	fk        *structmap.Field
	publisher *insertGroup
	array     string // the SQL array type of the parent's key
}

// keySlot is where a parent's key is found: its batch, and its position there (from 1).
type keySlot struct {
	g   *insertGroup
	pos int
}

// maxPublishers bounds the batches of one flush that leave their keys, and so the settings a
// connection holds: rows whose parents' batch comes after those wait for the next stage.
const maxPublishers = 32

// keyedSetting names the setting the n-th publishing INSERT of a flush leaves its keys in.
func keyedSetting(n int) string { return "gosqla.keys_" + strconv.Itoa(n) }

// fixedWidthKeys are the key types whose array elements the server indexes in constant time.
var fixedWidthKeys = map[string]bool{"smallint[]": true, "integer[]": true, "bigint[]": true, "uuid[]": true}

// early moves from later to now the objects whose parents are all inserted now, in batches
// that can leave their keys for them (see above). Called locked.
func (s *Session) early(now, later []*instance, w *relWork) ([]*instance, []*instance) {
	if len(now) == 0 || len(later) == 0 {
		return now, later
	}
	k := keying{s: s, w: w, levels: levelsOf(now, later)}
	for changed := true; changed; {
		changed = false
		for _, in := range later {
			if !in.early && k.keyable(in) {
				in.early, changed = true, true
			}
		}
	}
	rest := later[:0:0]
	// a graph's children go early by the thousand: room for all of them at once
	now = slices.Grow(now, len(later))
	var last *instance // a parent's children come one after another
	for _, in := range later {
		if !in.early {
			rest = append(rest, in)
			continue
		}
		now = append(now, in)
		for _, a := range w.waits(in) {
			if a.parent != last {
				w.await(a.parent)
				last = a.parent
			}
		}
	}
	return now, rest
}

// await marks parent as one whose generated key objects inserted in the same pipeline wait for.
func (w *relWork) await(parent *instance) {
	if w.awaited == nil {
		w.awaited = map[*instance]bool{}
	}
	w.awaited[parent] = true
	if !slices.Contains(w.awaitedModels, parent.model) {
		w.awaitedModels = append(w.awaitedModels, parent.model)
	}
}

// isAwaited reports a parent marked by await; most objects are of a model none of whose objects
// is, and are answered without a lookup.
func (w *relWork) isAwaited(in *instance) bool {
	return slices.Contains(w.awaitedModels, in.model) && w.awaited[in]
}

// awaitLinks marks the new objects of association rows as parents whose batches leave their
// keys, where their keys can travel so (linkRows sends the rows). Called locked.
func (s *Session) awaitLinks(w *relWork) {
	for _, l := range w.links {
		for _, in := range l.sides() {
			if hasKey(in) || in.state != statePending {
				continue
			}
			if _, ok := keyArrayOf(s.engineOf(in), in.model); !ok {
				continue
			}
			w.await(in)
		}
	}
}

// keying decides which waiting objects go early, with what it read of the children's tables.
type keying struct {
	s      *Session
	w      *relWork
	levels map[string]int
	tables []keyedTable // few: searched
	links  []keyLink
}

type keyedTable struct {
	e      *asyncengine.Engine
	m      *structmap.Model
	types  tableTypes
	arrays bool // its column types were read, and every column can travel in an array
}

func (k *keying) table(e *asyncengine.Engine, m *structmap.Model) *keyedTable {
	for i := range k.tables {
		if t := &k.tables[i]; t.e == e && t.m == m {
			return t
		}
	}
	t := keyedTable{e: e, m: m}
	var known bool
	if t.types, known = typesFor(e, e.Dialect().Quote(m.Table)); known {
		// every column can travel in an array, so any subset an INSERT sends can
		_, t.arrays = unnestable(t.types, m.Fields)
	}
	k.tables = append(k.tables, t)
	return &k.tables[len(k.tables)-1]
}

// keyable reports whether in's parents' keys can reach its INSERT in the same pipeline.
func (k *keying) keyable(in *instance) bool {
	e := k.s.engineOf(in)
	for _, a := range k.w.waits(in) {
		p := a.parent
		if p.state != statePending || k.w.waits(p) != nil && !p.early || k.s.engineOf(p) != e || !k.link(e, in.model, a.fk, p.model) {
			return false
		}
	}
	return true
}

// link reports whether the key of a parent of model pm can travel to foreign key fk of a child
// of model cm in the same pipeline on engine e, remembered for the flush.
func (k *keying) link(e *asyncengine.Engine, cm *structmap.Model, fk *structmap.Field, pm *structmap.Model) bool {
	for _, l := range k.links {
		if l.e == e && l.fk == fk && l.parent == pm {
			return l.ok
		}
	}
	ok := k.decide(e, cm, fk, pm)
	k.links = append(k.links, keyLink{e, fk, pm, ok})
	return ok
}

type keyLink struct {
	e      *asyncengine.Engine
	fk     *structmap.Field
	parent *structmap.Model
	ok     bool
}

func (k *keying) decide(e *asyncengine.Engine, cm *structmap.Model, fk *structmap.Field, pm *structmap.Model) bool {
	if k.levels[pm.Table] >= k.levels[cm.Table] {
		return false
	}
	key, ok := keyArrayOf(e, pm)
	child := k.table(e, cm)
	return ok && child.arrays && child.types.cols[fk.Column].array == key
}

// keyArrayOf returns the SQL array type of m's key on engine e, when a batch of m there can leave
// its keys: PostgreSQL with typed parameters, a table whose column types were read, and a
// single-column key of a fixed-width type.
func keyArrayOf(e *asyncengine.Engine, m *structmap.Model) (string, bool) {
	if !typedParams(e) || len(m.PK) != 1 {
		return "", false
	}
	types, ok := typesFor(e, e.Dialect().Quote(m.Table))
	if !ok {
		return "", false
	}
	array := types.cols[m.PK[0].Column].array
	return array, fixedWidthKeys[array]
}

// keysOf returns where the parents in waits for find their keys in plan fp, and their positions
// there, in buffers of fp's that the next call reuses (nil: in waits for none). ok is false when
// a parent's batch leaves no keys: a parent that was itself left for the next stage, or one
// past the plan's maxPublishers.
func (fp *flushPlan) keysOf(in *instance) (srcs []keySource, pos []int32, ok bool) {
	waits := fp.w.waits(in)
	if len(waits) == 0 || !in.early {
		return nil, nil, true
	}
	fp.srcs, fp.pos = fp.srcs[:0], fp.pos[:0]
	for _, a := range waits {
		slot, ok := fp.lastSlot, a.parent == fp.lastParent
		if !ok {
			if slot, ok = fp.slots[a.parent]; !ok {
				return nil, nil, false
			}
			// a parent's children come one after another
			fp.lastParent, fp.lastSlot = a.parent, slot
		}
		fp.srcs = append(fp.srcs, keySource{fk: a.fk, publisher: slot.g, array: slot.g.keyArray})
		fp.pos = append(fp.pos, int32(slot.pos))
	}
	return fp.srcs, fp.pos, true
}

// keyExpr is the expression of a key source's column in a batch: the parent's key, found by the
// position in column c of the unnested arrays.
func keyExpr(src keySource, c string) string {
	return "(SELECT current_setting('" + keyedSetting(src.publisher.publisher) + "')::" + src.array + ")[" + c + "]"
}

// fillKeys writes into the objects of a keyed batch the keys its parents received, which the
// server wrote into their rows.
func fillKeys(g *insertGroup) error {
	ns := len(g.srcs)
	for r, in := range g.ins {
		for k, src := range g.srcs {
			p := g.parents[r*ns+k]
			fv, key := in.v.FieldByIndex(src.fk.Index), p.v.FieldByIndex(p.model.PK[0].Index)
			if fv.Type() == key.Type() {
				fv.Set(key)
				continue
			}
			if err := structmap.Assign(fv.Addr().Interface(), key.Interface()); err != nil {
				return fmt.Errorf("gosqla: storing the key of its parent in %s.%s: %w", in.model.Type, src.fk.Name, err)
			}
		}
	}
	return nil
}

// pendingLink is an association row of relationship r between owner and other (m, in owner's
// collection, whose state is st) of which one key at least is generated by the flush.
type pendingLink struct {
	e            *asyncengine.Engine
	r            *relation
	st           *relState
	owner, other *instance
	m            any
	// back is the other side's state, when the walk recorded the link there too (linkBack)
	back *relState
}

// sides are the objects the row links.
func (l pendingLink) sides() [2]*instance { return [2]*instance{l.owner, l.other} }

// later takes the row out of its collection's members: the next stage of the flush writes it.
func (l pendingLink) later() {
	l.st.members = slices.DeleteFunc(l.st.members, func(m any) bool { return m == l.m })
	if l.back != nil {
		l.back.members = slices.DeleteFunc(l.back.members, func(m any) bool { return m == l.owner.ptr })
	}
}

// linkSide is where one key of an association row comes from: a batch that leaves its keys, or
// the key the object holds (g nil), sent in an array of SQL type array.
type linkSide struct {
	g     *insertGroup
	array string
}

// linkGroup is the association rows of one relationship whose keys come from the same sides.
type linkGroup struct {
	r           *relation
	owner, dest linkSide
	rows        []pendingLink
}

// linkRows plans the association rows whose keys the flush generates: one INSERT per
// relationship and sides, after the batches that leave those keys. A row whose generated key no
// batch of the plan leaves is taken out of its collection's members: the next stage writes it,
// and more reports so. Called locked, after the plan's INSERTs.
func (s *Session) linkRows(links []pendingLink, planOf func(*asyncengine.Engine) *flushPlan) (more bool) {
	var groups []*linkGroup
	var plans []*flushPlan
	for _, l := range links {
		fp := planOf(l.e)
		owner, ok1 := fp.linkSide(l.owner)
		dest, ok2 := fp.linkSide(l.other)
		if !ok1 || !ok2 {
			l.later()
			more = true
			continue
		}
		k := slices.IndexFunc(groups, func(g *linkGroup) bool { return g.r == l.r && g.owner == owner && g.dest == dest })
		if k < 0 {
			groups = append(groups, &linkGroup{r: l.r, owner: owner, dest: dest})
			plans = append(plans, fp)
			k = len(groups) - 1
		}
		groups[k].rows = append(groups[k].rows, l)
	}
	for k, g := range groups {
		fp := plans[k]
		fp.ops = append(fp.ops, func() error { fp.insertLinks(g); return nil })
	}
	return more
}

// linkSide returns where in's key comes from in plan fp: false when the plan cannot send it.
func (fp *flushPlan) linkSide(in *instance) (linkSide, bool) {
	if slot, ok := fp.slots[in]; ok {
		return linkSide{g: slot.g, array: slot.g.keyArray}, true
	}
	if !hasKey(in) {
		return linkSide{}, false
	}
	for _, k := range fp.heldKeys {
		if k.m == in.model {
			return k.side, k.ok
		}
	}
	k := heldKey{m: in.model}
	k.side, k.ok = fp.heldKeySide(in.model)
	fp.heldKeys = append(fp.heldKeys, k)
	return k.side, k.ok
}

// heldKey is how the keys that objects of m hold travel in the plan's association rows.
type heldKey struct {
	m    *structmap.Model
	side linkSide
	ok   bool
}

func (fp *flushPlan) heldKeySide(m *structmap.Model) (linkSide, bool) {
	if !typedParams(fp.e) || len(m.PK) != 1 {
		return linkSide{}, false
	}
	if _, known := typesFor(fp.e, fp.d.Quote(m.Table)); known {
		array, ok := keyArrayOf(fp.e, m)
		return linkSide{array: array}, ok
	}
	// a table the engine has not read: an integer key travels as bigint, which the association
	// column takes as it takes the key sent alone
	switch m.PK[0].Type.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return linkSide{array: "bigint[]"}, true
	}
	return linkSide{}, false
}

// insertLinks adds the INSERT of g's association rows to the plan.
func (fp *flushPlan) insertLinks(g *linkGroup) {
	side := func(sd linkSide, placeholder, c string, of func(pendingLink) *instance) (expr, array string, arg any) {
		if sd.g == nil {
			keys := make([]reflect.Value, len(g.rows))
			for i, l := range g.rows {
				keys[i] = of(l).v
			}
			return c, placeholder + "::" + sd.array, column(of(g.rows[0]).model.PK[0], sd.array, keys)
		}
		pos := make([]int32, len(g.rows))
		for i, l := range g.rows {
			pos[i] = int32(fp.slots[of(l)].pos)
		}
		return keyExpr(keySource{publisher: sd.g, array: sd.array}, c), placeholder + "::integer[]", pos
	}
	e1, a1, arg1 := side(g.owner, fp.d.Placeholder(1), "u.c1", func(l pendingLink) *instance { return l.owner })
	e2, a2, arg2 := side(g.dest, fp.d.Placeholder(2), "u.c2", func(l pendingLink) *instance { return l.other })
	sql := "INSERT INTO " + fp.d.Quote(g.r.through) + " (" + fp.d.Quote(g.r.fkCol) + ", " + fp.d.Quote(g.r.refCol) + ") SELECT " +
		e1 + ", " + e2 + " FROM unnest(" + a1 + ", " + a2 + ") AS u(c1, c2)"
	fp.stmts = append(fp.stmts, asyncengine.Statement{SQL: sql, Args: []any{arg1, arg2}})
	fp.appliers = append(fp.appliers, func(*Session, []*asyncengine.Result) error { return nil })
}
