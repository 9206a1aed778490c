package asyncsession

import (
	"fmt"
	"strconv"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/internal/structmap"
)

// On PostgreSQL an object waiting for the key the server generates for its parent goes in the
// same pipeline as the parent's INSERT, instead of a later stage: a graph of new objects is saved
// in one round trip. The parents' batch INSERT leaves its keys, in the order of its rows, in a
// setting local to the transaction,
//
//	WITH p AS (INSERT INTO writers … RETURNING id)
//	SELECT p.* FROM p WHERE (SELECT set_config('gosqla.keys_1',
//		CASE WHEN count(*) = $3 THEN array_agg(p.id)::text ELSE '' END, true) FROM p) IS NOT NULL
//
// and the children's batch sends, for the foreign key, the position of each one's parent among
// those rows, which the server turns into the key:
//
//	INSERT INTO novels (writer_id, title) SELECT (SELECT current_setting('gosqla.keys_1')::bigint[])[u.c1], u.c2
//	FROM unnest($1::integer[], $2::text[]) AS u(c1, c2) RETURNING id
//
// The keys are read once per statement and indexed in constant time (fixed-width key types
// only). A parents' INSERT that returned another number of rows than it was sent (a trigger
// skipped one) leaves no keys: the children's INSERT fails on the empty setting, the
// transaction with it, and the flush reports the parents' count. The setting's name is the
// publishing statement's number within its flush, at most maxPublishers, so that a connection
// holds few of them; the CASE makes it empty, never stale, when the INSERT did not write every
// row.
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
	for _, in := range later {
		if !in.early {
			rest = append(rest, in)
			continue
		}
		now = append(now, in)
		for _, a := range w.waits(in) {
			if w.awaited == nil {
				w.awaited = map[*instance]bool{}
			}
			w.awaited[a.parent] = true
		}
	}
	return now, rest
}

// keying decides which waiting objects go early, with what it read of their tables.
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
	known  bool // its column types were read
	arrays bool // and every column can travel in an array
}

func (k *keying) table(e *asyncengine.Engine, m *structmap.Model) *keyedTable {
	for i := range k.tables {
		if t := &k.tables[i]; t.e == e && t.m == m {
			return t
		}
	}
	t := keyedTable{e: e, m: m}
	t.types, t.known = typesFor(e, e.Dialect().Quote(m.Table))
	if t.known {
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
	if !typedParams(e) || len(pm.PK) != 1 || k.levels[pm.Table] >= k.levels[cm.Table] {
		return false
	}
	child, parent := k.table(e, cm), k.table(e, pm)
	if !child.arrays || !parent.known {
		return false
	}
	key, col := parent.types.cols[pm.PK[0].Column], child.types.cols[fk.Column]
	return fixedWidthKeys[key.array] && col.array == key.array
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
		slot, ok := fp.slots[a.parent]
		if !ok {
			return nil, nil, false
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

// published wraps a batch INSERT … RETURNING so that it leaves its rows' keys (see above);
// n is the placeholder of the number of rows sent.
func published(d *asyncengine.Dialect, g *insertGroup, insert, n string) string {
	pk := "p." + d.Quote(g.m.PK[0].Column)
	return "WITH p AS (" + insert + ") SELECT p.* FROM p WHERE (SELECT set_config('" + keyedSetting(g.publisher) +
		"', CASE WHEN count(*) = " + n + "::bigint THEN array_agg(" + pk + ")::text ELSE '' END, true) FROM p) IS NOT NULL"
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

// countError is the failure of a batch INSERT whose result has another number of rows than it
// was sent (nil: none).
func countError(fp *flushPlan, g *insertGroup, r *asyncengine.Result) error {
	switch {
	case r.Len() == len(g.ins):
		return nil
	case g.guarded && r.Len() == 0:
		table := fp.d.Quote(g.m.Table)
		forgetTypes(fp.e, table)
		return fmt.Errorf("%w: the column types of %s changed since the engine read them (ALTER TABLE); nothing of the batch was written, and the next flush reads them again: roll back and save again", ErrTableChanged, table)
	}
	return fmt.Errorf("gosqla: INSERT into %s returned %d rows for %d objects", g.m.Table, r.Len(), len(g.ins))
}

// explain names the cause of a statement of the plan that failed on its parents' keys: a parents'
// INSERT that did not write every row it was sent left none. i is the failing statement.
func (fp *flushPlan) explain(i int, rs []*asyncengine.Result, err error) error {
	for _, g := range fp.insertGroups {
		if g.stmt != i {
			continue
		}
		for _, src := range g.srcs {
			if p := src.publisher; p.stmt < len(rs) {
				if cause := countError(fp, p, rs[p.stmt]); cause != nil {
					return fmt.Errorf("%w (the INSERT into %s that needed its keys failed: %w)", cause, g.m.Table, err)
				}
			}
		}
	}
	return err
}
