package asyncsession

import (
	"reflect"
	"slices"
	"strings"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/internal/structmap"
)

// A flush's UPDATEs set the columns that changed since the object was loaded or flushed, and
// each checks, as it runs, that it matched the object's row and no other (matchedOne). On
// PostgreSQL the objects of one model whose changes touch the same columns, and not their key,
// go as one statement, typed by the catalog as a batch INSERT is (unnest.go):
//
//	WITH u AS (UPDATE t AS r SET a = v.c1 FROM unnest($1::numeric[], $2::bigint[]) AS v(c1, c2)
//	    WHERE r.id = v.c2 AND <the types are as read> RETURNING 1)
//	SELECT CASE WHEN count(*) = $3 THEN true ELSE <fail> END FROM u
//
// so that a thousand changed objects cost the server one statement, not a thousand. Until the
// engine has read the table's column types (the first flush that updates it reads them in the
// same pipeline), and for a key change, one object or columns the arrays cannot carry, each
// object has its own UPDATE. A key change keeps its place among the model's UPDATEs: the objects
// before it and those after it are grouped apart.

// updateRun plans the UPDATEs of ins, changed objects of one model.
func (fp *flushPlan) updateRun(ins []*instance) {
	fp.ops = append(fp.ops, func() error {
		type group struct {
			changed []int
			ins     []*instance
		}
		var groups []*group
		plan := func() {
			for _, g := range groups {
				if len(g.ins) < 2 || !fp.updateBatch(g.ins, g.changed) {
					for _, in := range g.ins {
						fp.updateOne(in, g.changed)
					}
				}
			}
			groups = groups[:0]
		}
		for _, in := range ins {
			changed := in.changed()
			if len(changed) == 0 {
				continue
			}
			if changesKey(in.model, changed) {
				// a key change keeps its place: an UPDATE after it may refer to the new key, one
				// before it to the old
				plan()
				fp.updateOne(in, changed)
				continue
			}
			var g *group
			for _, o := range groups {
				if slices.Equal(o.changed, changed) {
					g = o
					break
				}
			}
			if g == nil {
				g = &group{changed: changed}
				groups = append(groups, g)
			}
			g.ins = append(g.ins, in)
		}
		plan()
		return nil
	})
}

// changesKey reports a change of a primary-key field.
func changesKey(m *structmap.Model, changed []int) bool {
	for _, fi := range changed {
		if slices.Contains(m.PK, m.Fields[fi]) {
			return true
		}
	}
	return false
}

// updateBatch plans the UPDATE of ins, objects of one model with the same changed fields and
// key fields unchanged, as one statement, and reports whether it could: the arrays need the
// table's column types, which a table not read yet has read in this pipeline, for the next flush.
func (fp *flushPlan) updateBatch(ins []*instance, changed []int) bool {
	if !typedParams(fp.e) {
		return false
	}
	m := ins[0].model
	table := fp.d.Quote(m.Table)
	types, ok := typesFor(fp.e, table)
	if !ok {
		fp.lookUp(table)
		return false
	}
	cols := make([]*structmap.Field, 0, len(changed)+len(m.PK))
	for _, fi := range changed {
		cols = append(cols, m.Fields[fi])
	}
	cols = append(cols, m.PK...)
	cts, ok := unnestable(types, cols)
	if !ok {
		return false
	}
	fp.batched = append(fp.batched, table)
	rows := make([]reflect.Value, len(ins))
	for i, in := range ins {
		rows[i] = in.v
	}
	args := make([]any, len(cols), len(cols)+1)
	names, arrays, values := unnestColumns(fp.d, "v", cols, cts, rows, args)
	var sets, keys, keyCols, sent []string
	for i, f := range cols {
		if i < len(changed) {
			sets = append(sets, fp.d.Quote(f.Column)+" = "+values[i])
		} else {
			keys = append(keys, "r."+fp.d.Quote(f.Column)+" = "+values[i])
			keyCols, sent = append(keyCols, "r."+fp.d.Quote(f.Column)), append(sent, values[i])
		}
	}
	args = append(args, len(ins))
	from := "unnest(" + strings.Join(arrays, ", ") + ") AS v(" + strings.Join(names, ", ") + ")"
	update := "UPDATE " + table + " AS r SET " + strings.Join(sets, ", ") + " FROM " + from +
		" WHERE " + strings.Join(keys, " AND ") + " AND " + typesCondition(fp.d, table, cols, cts, "")
	sql := matchedNaming(update, fp.d.Placeholder(len(args))+"::bigint", keyCols, sent, from)
	fp.updated = append(fp.updated, updatedRows{len(fp.stmts), ins})
	for _, in := range ins {
		fp.retake(in, changed)
	}
	fp.stmts = append(fp.stmts, asyncengine.Statement{SQL: sql, Args: args})
	fp.appliers = append(fp.appliers, func(*Session, []*asyncengine.Result) error { return nil })
	return true
}

// lookUp reads table's column types in the plan's pipeline, once, for the flushes after it.
func (fp *flushPlan) lookUp(table string) {
	if slices.Contains(fp.lookedUp, table) {
		return
	}
	fp.lookedUp = append(fp.lookedUp, table)
	e := fp.e
	fp.stmts = append(fp.stmts, asyncengine.Statement{SQL: catalogSQL, Args: []any{table}})
	fp.appliers = append(fp.appliers, func(_ *Session, rs []*asyncengine.Result) error {
		return storeTypes(e, table, rs[0])
	})
}

// retake takes the values an UPDATE sends as in's snapshot now, so that a later request of the
// same round does not send them again, and records how a failed flush gives the old ones back.
// It returns the snapshots of the changed fields before.
func (fp *flushPlan) retake(in *instance, changed []int) []fieldSnapshot {
	old := make([]fieldSnapshot, len(changed))
	for k, fi := range changed {
		old[k] = in.snapshotOfField(fi)
		in.retakeField(fi)
	}
	in.takeRaw()
	fp.restores = append(fp.restores, func() {
		for k, fi := range changed {
			in.setSnapshotOfField(fi, old[k])
		}
		in.forgetRaw()
	})
	return old
}

// updateOne plans the UPDATE of one object's changed fields; the key moves in the identity map
// once the row has.
func (fp *flushPlan) updateOne(in *instance, changed []int) {
	sql, args := updateSQL(fp.d, in.model, changed, in.v, loadedPK(in))
	if checksCount(fp.d) {
		sql = matched(sql, "1")
	} else {
		sql += " RETURNING 1"
		fp.readsBack = true // the COMMIT waits until its row is counted
	}
	stmt := len(fp.stmts)
	fp.updated = append(fp.updated, updatedRows{stmt, []*instance{in}})
	old := fp.retake(in, changed)
	var keyFields []int // the changed key fields, and their snapshots: keySwitch
	var keySnaps []fieldSnapshot
	for k, fi := range changed {
		if slices.Contains(in.model.PK, in.model.Fields[fi]) {
			keyFields, keySnaps = append(keyFields, fi), append(keySnaps, old[k])
		}
	}
	fp.stmts = append(fp.stmts, asyncengine.Statement{SQL: sql, Args: args})
	fp.appliers = append(fp.appliers, func(s *Session, rs []*asyncengine.Result) error {
		if n := rs[0].Len(); !checksCount(fp.d) && n != 1 {
			return fp.staleError(stmt, n, nil)
		}
		if len(keyFields) > 0 {
			key := in.key()
			in.rekey()
			if key != in.key() {
				s.identity.drop(key)
				s.identity.set(in.key(), in)
				s.undoSeq++
				k := keySwitch{in: in, old: key, fields: keyFields, snaps: keySnaps, gen: fp.gen, seq: s.undoSeq}
				s.rekeyed = append(s.rekeyed, k)
				fp.switched = append(fp.switched, k)
			}
		}
		return nil
	})
}

// unswitch takes back a key change a flush applied before a later statement of it failed: the
// object keeps the key of its row in the identity map, and its field the change, still to write.
// Called locked.
func (s *Session) unswitch(k keySwitch) {
	in := k.in
	if s.identity.get(in.key()) == in {
		s.identity.drop(in.key())
	}
	in.pk = k.old.pk
	if s.identity.get(in.key()) == nil {
		s.identity.set(in.key(), in)
	}
	s.rekeyed = slices.DeleteFunc(s.rekeyed, func(x keySwitch) bool { return x.seq == k.seq })
}
