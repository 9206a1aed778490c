package asyncsession

import (
	"fmt"
	"reflect"
	"slices"
	"sync/atomic"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/internal/structmap"
)

// relState is what the session knows of one relationship of one object.
type relState struct {
	loaded bool
	// partial: a collection of a persistent object that was never loaded, whose members are only
	// those the application added (written by a flush); the rows the database holds besides are
	// not among them, so it does not read as loaded (whole)
	partial bool
	ref     any   // a *T relationship's object as last loaded or flushed
	members []any // a collection as last loaded or flushed
	// insts are the members' instances when the last sync recorded them (syncMany), a cache
	// checked against instance.attached before use
	insts  []*instance
	header [2]uintptr
}

// header is what a cheap look at a relationship field sees change: its pointer, and a
// collection's length.
func header(fv reflect.Value) [2]uintptr {
	if fv.IsNil() {
		return [2]uintptr{}
	}
	if fv.Kind() == reflect.Slice {
		return [2]uintptr{fv.Pointer(), uintptr(fv.Len())}
	}
	return [2]uintptr{fv.Pointer()}
}

// relsMoved reports whether a relationship field of in differs from its state at the last sync
// by its header, or was set while not loaded.
func (in *instance) relsMoved() bool {
	rels, err := relationsOf(in.model)
	if err != nil {
		return true
	}
	for _, r := range rels {
		fv := r.field(in.v)
		st := in.rels[r]
		if st == nil {
			if !fv.IsNil() {
				return true
			}
			continue
		}
		if header(fv) != st.header {
			return true
		}
	}
	return false
}

func (in *instance) rel(r *relation) *relState {
	if in.rels == nil {
		in.rels = map[*relation]*relState{}
	}
	st := in.rels[r]
	if st == nil {
		st = &relState{}
		in.rels[r] = st
	}
	return st
}

// setLoaded records value as the loaded state of relationship r of in, and writes it to the field.
func (in *instance) setLoaded(r *relation, value reflect.Value) {
	r.field(in.v).Set(value)
	in.remember(r)
}

// setLoadedOne records child as the loaded *T relationship r of in; the child of a one-to-one
// whose many-to-one points back points at in, as a loaded collection's members do.
func (in *instance) setLoadedOne(r *relation, child *instance) {
	in.setLoaded(r, reflect.ValueOf(child.ptr))
	if r.kind != oneToOne {
		return
	}
	if b := r.backref(); b != nil {
		child.pointAt(b, in)
	}
}

// pointAt sets many-to-one b of in, the back-reference of a relationship of parent, to parent, as
// its loaded state.
func (in *instance) pointAt(b *relation, parent *instance) {
	b.field(in.v).Set(reflect.ValueOf(parent.ptr))
	in.remember(b)
}

// remember takes the relationship's current field as its loaded state.
func (in *instance) remember(r *relation) {
	st := in.rel(r)
	st.loaded, st.partial = true, false
	fv := r.field(in.v)
	st.header = header(fv)
	st.insts = nil
	if r.many() {
		// a fresh slice: a flush's undo keeps the old one
		st.members = make([]any, 0, fv.Len())
		for i := range fv.Len() {
			st.members = append(st.members, fv.Index(i).Interface())
		}
		return
	}
	st.ref = nil
	if !fv.IsNil() {
		st.ref = fv.Interface()
	}
}

// relKey names one relationship of one object.
type relKey struct {
	in *instance
	r  *relation
}

// relWork is what relationships add to one flush.
type relWork struct {
	// waiting holds the pending objects that must wait for a parent's generated key; each keeps
	// the foreign keys it waits to fill (instance.waitFor), valid while its waitIn is id
	waiting []*instance
	id      uint64
	// attached are the objects the walk brought into the session: a flush that fails leaves
	// them out again (detach)
	attached []*instance
	fks      []awaited // the array short waitFor lists are cut from
	// before are statements that precede the flush's DELETEs (children of deleted parents that
	// were never loaded, association rows); after are association INSERTs, after the INSERTs
	before, after []flushStmt
	// saved holds the relationship states the flush changed, as they were (nil: none), to be put
	// back when its pipeline is never sent
	saved map[relKey]savedRel
	// orphans are children removed from a delete-orphan collection, deleted once the walk is
	// over unless another parent's collection took them meanwhile
	orphans []orphan
	// fkWrites are the foreign keys the walk changed, put back with the relationships;
	// walkSetFK are the loaded objects among them
	fkWrites  []fkWrite
	walkSetFK map[*instance]bool
	// awaited are the parents whose generated keys objects inserted in the same pipeline
	// wait for (keyed.go), of the models awaitedModels (few)
	awaited       map[*instance]bool
	awaitedModels []*structmap.Model
	// links are association rows that wait for a key the flush generates (keyed.go)
	links []pendingLink
	// linked are the association rows the walk inserts or deletes: a many-to-many declared on
	// both models may name one row from each side; unlinked are the deletes among them, by
	// their place in before
	linked   map[associationRow]bool
	unlinked map[associationRow]int
	// oneParents are the parents that took a child as their one-to-one in this walk
	oneParents map[oneHeld]*instance
}

// associationRow names the insert or the delete of a row of an association table by the objects
// its two columns refer to, in the order of the columns' names.
type associationRow struct {
	through      string
	first, other *instance
	insert       bool
}

// firstTime reports whether the walk has not yet inserted (insert), or deleted, the row of
// association r linking owner (its fk column) and other (its ref column), and records it. A row
// deleted from one side and inserted from the other is both: the DELETEs go first.
func (w *relWork) firstTime(r *relation, owner, other *instance, insert bool) bool {
	row := rowOf(r, owner, other, insert)
	if w.linked[row] {
		return false
	}
	if w.linked == nil {
		w.linked = map[associationRow]bool{}
	}
	w.linked[row] = true
	return true
}

// rowOf names the insert, or the delete, of the row of association r linking owner and other.
func rowOf(r *relation, owner, other *instance, insert bool) associationRow {
	if r.refCol < r.fkCol {
		owner, other = other, owner
	}
	return associationRow{r.through, owner, other, insert}
}

// unlink records the DELETE of the row of association r linking owner and other, at place i of
// before.
func (w *relWork) unlink(r *relation, owner, other *instance, i int) {
	if w.unlinked == nil {
		w.unlinked = map[associationRow]int{}
	}
	w.unlinked[rowOf(r, owner, other, false)] = i
}

// relinked takes back the DELETE of the row of association r linking owner and other, when the
// walk recorded one: the link removed from one side was made again from the other, and the row
// stays. It reports whether there was one.
func (w *relWork) relinked(r *relation, owner, other *instance) bool {
	row := rowOf(r, owner, other, false)
	i, ok := w.unlinked[row]
	if !ok {
		return false
	}
	w.before = slices.Delete(w.before, i, i+1)
	delete(w.unlinked, row)
	for k, j := range w.unlinked {
		if j > i {
			w.unlinked[k] = j - 1
		}
	}
	return true
}

// orphan is a child removed from parent's collection r.
type orphan struct {
	child, parent *instance
	r             *relation
	null          bool // its key is set NULL rather than it deleted (a one-to-one without delete-orphan)
}

// relWorks numbers the relWorks, so that an object's waitFor is known to be this flush's.
var relWorks atomic.Uint64

func newRelWork() *relWork { return &relWork{id: relWorks.Add(1)} }

// wait records that in waits for parent's generated key, to fill fk.
func (w *relWork) wait(in *instance, fk *structmap.Field, parent *instance) {
	a := awaited{fk, parent}
	if in.waitIn != w.id {
		in.waitIn = w.id
		in.early = false
		in.waitFor = in.waitFor[:0]
		w.waiting = append(w.waiting, in)
		if cap(in.waitFor) == 0 {
			// most objects wait for one key: their lists are cut from one shared array
			if len(w.fks) == cap(w.fks) {
				w.fks = make([]awaited, 0, 256)
			}
			w.fks = append(w.fks, a)
			in.waitFor = w.fks[len(w.fks)-1 : len(w.fks) : len(w.fks)]
			return
		}
	}
	in.waitFor = append(in.waitFor, a)
}

// awaited is a foreign key waiting for the generated key of the parent it names.
type awaited struct {
	fk     *structmap.Field
	parent *instance
}

// waits returns the foreign keys in waits to fill (nil: none).
func (w *relWork) waits(in *instance) []awaited {
	if in.waitIn != w.id {
		return nil
	}
	return in.waitFor
}

// keep saves the state of relationship r of in, and its field, before the flush changes them.
func (w *relWork) keep(in *instance, r *relation) {
	k := relKey{in, r}
	if _, ok := w.saved[k]; ok {
		return
	}
	if w.saved == nil {
		w.saved = map[relKey]savedRel{}
	}
	var old savedRel
	if st := in.rels[r]; st != nil {
		c := *st
		old.st = &c
	}
	old.field = r.field(in.v).Interface()
	w.saved[k] = old
}

// savedRel is a relationship as it was before a flush: its state (nil: none) and its field.
type savedRel struct {
	st    *relState
	field any // a *T or a []*T: typed, nil or not
}

// detach takes the objects a failed walk attached out of the session again, and lets go of
// them: another session may take them once the application has settled the failure. Called
// locked.
func (s *Session) detach(w *relWork) {
	if len(w.attached) == 0 {
		return
	}
	s.pending = without(s.pending, w.attached)
	for _, in := range w.attached {
		s.forget(in)
	}
}

// restore puts the saved relationship states and fields back, and the foreign keys written.
func (w *relWork) restore() { w.restoreWhere(nil) }

// restoreWhere is restore for the objects of, when of is not nil: a flush that failed on one
// engine takes back its own objects' relationships, not those of another engine's committed
// part.
func (w *relWork) restoreWhere(of func(*instance) bool) {
	for i := len(w.fkWrites) - 1; i >= 0; i-- {
		x := w.fkWrites[i]
		if of != nil && !of(x.in) {
			continue
		}
		fv := x.in.v.FieldByIndex(x.f.Index)
		if x.old == nil {
			fv.SetZero()
		} else {
			fv.Set(reflect.ValueOf(x.old).Convert(fv.Type()))
		}
	}
	for k, old := range w.saved {
		if of != nil && !of(k.in) {
			continue
		}
		if old.st == nil {
			delete(k.in.rels, k.r)
		} else {
			k.in.rels[k.r] = old.st
		}
		k.r.field(k.in.v).Set(reflect.ValueOf(old.field))
	}
}

type flushStmt struct {
	e    *asyncengine.Engine
	stmt asyncengine.Statement
	of   []*instance // the objects an association row links: dropped when one is deleted
}

// hasKey reports whether in's primary key is known (loaded, or set by the application).
func hasKey(in *instance) bool {
	return in.state != statePending || !in.model.PK[0].Default || !in.model.PK[0].IsZero(in.v)
}

func pkValue(in *instance) any { return in.model.PK[0].Value(in.v) }

// cascade walks the relationships of the session's objects before a flush: related objects not
// in the session are added (save-update), foreign keys are copied from parents whose key is
// known, back-references are kept in step, removed children are orphaned or deleted, and
// deleted parents take their cascades along. Called locked.
//
// all=false (an autoflush before a read) visits only the loaded objects whose relationship
// fields were reassigned, appended to or shortened since they were last synced: a collection
// element replaced in place is seen by the next Flush or Commit.
func (s *Session) cascade(all bool) (*relWork, error) {
	w := newRelWork()
	// an object added by the cascade is visited too
	var queue []*instance
	for _, in := range s.pending {
		if len(in.model.Rels) > 0 {
			queue = append(queue, in)
		}
	}
	for _, set := range s.byTable {
		if s.part > 0 {
			// a part of a flush by parts: the session held nothing but the objects added, and
			// those it holds now are earlier parts', walked by them (chunk.go)
			break
		}
		if len(set.ins) == 0 || len(set.ins[0].model.Rels) == 0 {
			continue
		}
		for _, in := range set.ins {
			if all || in.relsMoved() {
				queue = append(queue, in)
			}
		}
	}
	for _, in := range s.deleted {
		if err := s.cascadeDelete(in, w); err != nil {
			return w, err
		}
	}
	s.roomForChildren(queue, w)
	for len(queue) > 0 {
		in := queue[0]
		queue = queue[1:]
		if in.state == stateDeleted || !in.attached {
			continue
		}
		rels, err := relationsOf(in.model)
		if err != nil {
			return w, err
		}
		// a *T changed by the application wins over the collection it was in: *T first
		for _, many := range []bool{false, true} {
			for _, r := range rels {
				if r.many() != many || !active(in, r) {
					continue
				}
				w.keep(in, r)
				var added []*instance
				var err error
				if many {
					added, err = s.syncMany(in, r, w)
				} else {
					added, err = s.syncOne(in, r, w)
				}
				if err != nil {
					return w, err
				}
				for _, a := range added {
					if len(a.model.Rels) > 0 { // one without relationships has nothing to walk
						queue = append(queue, a)
					}
				}
			}
		}
	}
	if err := s.deleteOrphans(w); err != nil {
		return w, err
	}
	// an object deleted during the walk (an orphan) takes no association row
	links := w.links[:0]
	for _, l := range w.links {
		if l.owner.state != stateDeleted && l.other.state != stateDeleted && l.owner.attached && l.other.attached {
			links = append(links, l)
		}
	}
	w.links = links
	kept := w.after[:0]
	for _, x := range w.after {
		if !slices.ContainsFunc(x.of, func(in *instance) bool { return in.state == stateDeleted || !in.attached }) {
			kept = append(kept, x)
		}
	}
	w.after = kept
	return w, nil
}

// deleteOrphans deletes the children the walk removed from delete-orphan collections, with
// their cascades, but for those another collection took: whose key now names another parent,
// or waits for a new one's. Called locked.
func (s *Session) deleteOrphans(w *relWork) error {
	for _, o := range w.orphans {
		c := o.child
		if c.state == stateDeleted || c.waitIn == w.id && len(c.waitFor) > 0 {
			continue
		}
		if !sameKey(o.r.fk.Value(c.v), o.parent.model.PK[0], pkValue(o.parent)) {
			continue // moved: its key names its new parent
		}
		if o.null {
			if err := w.setFK(c, o.r.fk, nil); err != nil {
				return err
			}
			if b := o.r.backref(); b != nil && !b.many() && b.field(c.v).Interface() == o.parent.ptr {
				// its many-to-one back lets go of the parent too: kept, it would write the key
				// again at the next flush
				w.keep(c, b)
				b.field(c.v).SetZero()
				c.remember(b)
			}
			continue
		}
		s.markDeleted(c)
		if err := s.cascadeDelete(c, w); err != nil {
			return err
		}
	}
	return nil
}

// roomForChildren grows the objects map once for the collections of the new objects about to be
// walked, rather than by doubling as their children are attached one by one: a graph added in
// bulk. Called locked.
func (s *Session) roomForChildren(queue []*instance, w *relWork) {
	n := childrenOf(queue)
	if n < 1024 || n < s.objects.len() {
		return
	}
	s.objects.grow(n)
	s.pending = slices.Grow(s.pending, n)
	// the children of new parents are new, and wait for their parents' keys
	w.attached = slices.Grow(w.attached, n)
	w.waiting = slices.Grow(w.waiting, n)
	w.fks = make([]awaited, 0, n)
}

// childrenOf counts the members of the new objects' collections.
func childrenOf(ins []*instance) int {
	n := 0
	for _, in := range ins {
		if in.state != statePending {
			continue
		}
		rels, err := relationsOf(in.model)
		if err != nil {
			return n // the walk reports it
		}
		for _, r := range rels {
			if r.many() {
				n += r.field(in.v).Len()
			}
		}
	}
	return n
}

// newInstance is a new instance of obj, cut from a block the session allocates for many (a graph
// attaches thousands at once). Called locked.
func (s *Session) newInstance(obj any, m *structmap.Model) *instance {
	if len(s.block) == 0 {
		s.block = make([]instance, min(max(2*s.blockSize, 8), 256))
		s.blockSize = len(s.block)
	}
	in := &s.block[0]
	s.block = s.block[1:]
	in.bind(obj, m) // the block is zeroed
	return in
}

// attach returns the session's instance of obj, adding it as pending when it is new and undeleting
// it when it was marked deleted: Add, Merge's new copy and an object reached by a relationship all
// enter the session here. An object another session holds is refused (ErrOtherSession) before
// anything of it is read or written: the walk goes on into an object only once it is this
// session's. Called locked.
func (s *Session) attach(obj any, m *structmap.Model) (*instance, bool, error) {
	if in, ok := s.objects.get(obj); ok {
		if in.state == stateDeleted {
			in.state = statePersistent
			s.deleted = without(s.deleted, []*instance{in})
		}
		return in, false, nil
	}
	in := s.newInstance(obj, m)
	in.part = s.part
	if len(s.letGo) > 0 {
		delete(s.letGo, addressOf(in))
	}
	if err := s.own(in); err != nil {
		*in = instance{}
		return nil, false, err
	}
	in.state = statePending
	in.attached = true
	s.objects.set(obj, in)
	s.pending = append(s.pending, in)
	return in, true, nil
}

// attachAlong attaches obj, reached from in by relationship r: a new object goes to in's shard,
// and a known one must be on it. Called locked.
func (s *Session) attachAlong(in *instance, obj any, r *relation) (*instance, bool, error) {
	other, isNew, err := s.attach(obj, r.target)
	if err != nil {
		return nil, false, err
	}
	if s.part > 0 && r.kind != manyToOne && !isNew && other.part != s.part {
		// an object of the graph of an added object of another part (pending, or written by
		// it already), or an added object itself: the parts would write it twice (chunk.go).
		// A many-to-one of a part's tree refers back to its parent (chunkable), whose walk
		// checks it
		return nil, false, fmt.Errorf("%w: a %s in %s.%s is also reached from another %s added in the same flush; take it out of one of them",
			ErrConflictingParent, r.target.Type, in.model.Type, r.name, in.model.Type)
	}
	if in.shard == "" || !s.sharded(r.target) {
		return other, isNew, nil
	}
	if isNew {
		other.shard = in.shard
	} else if other.shard != in.shard {
		return other, isNew, fmt.Errorf("%w: %s.%s joins an object of shard %q to one of shard %q", ErrCrossShard, in.model.Type, r.name, in.shard, other.shard)
	}
	return other, isNew, nil
}

// active reports whether relationship r of in carries the application's intent: it was loaded,
// the object is new, or the field was set.
func active(in *instance, r *relation) bool {
	if in.state == statePending {
		return true
	}
	if st := in.rels[r]; st != nil && st.loaded {
		return true
	}
	fv := r.field(in.v)
	return !fv.IsNil() && (!r.many() || fv.Len() > 0)
}

// whole reports whether relationship r of in holds everything it refers to, as a read of it
// expects: it was loaded, the object is new, or a *T field was set. A collection of a persistent
// object that was never loaded holds at most what the application added to it (relState.partial).
func whole(in *instance, r *relation) bool {
	if in.state == statePending {
		return true
	}
	if st := in.rels[r]; st != nil && st.loaded {
		return !st.partial
	}
	return !r.many() && !r.field(in.v).IsNil()
}

// syncOne brings a *T relationship of an active object into the unit of work.
func (s *Session) syncOne(in *instance, r *relation, w *relWork) ([]*instance, error) {
	var added []*instance
	fv := r.field(in.v)
	st := in.rel(r)
	var cur any
	if !fv.IsNil() {
		cur = fv.Interface()
	}
	if cur == nil {
		if st.ref != nil && r.kind == manyToOne {
			if err := s.leaveParent(in, r, st.ref, w); err != nil {
				return nil, err
			}
		}
		if st.ref != nil && r.kind == oneToOne {
			if err := s.orphanOne(in, st.ref, nil, r, w); err != nil {
				return nil, err
			}
		}
		st.ref, st.loaded = nil, true
		return nil, nil
	}
	if cur == st.ref && s.passed(cur) {
		return nil, nil // unchanged since the last sync, to an object expunged or deleted
	}
	if r.kind == oneToOne && cur == st.ref {
		if child, ok := s.objects.get(cur); ok && leftOne(in, child, r) {
			// the application set the child's many-to-one back to nil: the one-to-one lets go
			return nil, oneLetGo(in, r, child, w)
		}
	}
	if r.kind == manyToOne && cur == st.ref && st.loaded {
		if p, ok := s.objects.get(cur); ok && hasKey(p) && w.columnMoved(in, r.fk, r.target.PK[0], pkValue(p)) {
			// the application moved the object by its column: the relationship follows to the
			// parent the column names when the session has it, and is left to load again when
			// not; the loaded collections follow
			next := s.objectByKey(r.target, r.fk.Value(in.v), in.shard)
			var to any
			if next != nil {
				to = next.ptr
			}
			s.moveMember(in, r, cur, to, w)
			followColumn(in, r, next, w)
			return nil, nil
		}
	}
	other, isNew, err := s.attachAlong(in, cur, r)
	if err != nil {
		return nil, err
	}
	if isNew {
		added = append(added, other)
		w.attached = append(w.attached, other) // kept should the walk fail after it
	}
	changed := st.ref != cur
	switch r.kind {
	case manyToOne:
		if !hasKey(other) {
			w.wait(in, r.fk, other)
		} else if err := w.setFK(in, r.fk, pkValue(other)); err != nil {
			return nil, err
		}
		if changed {
			s.moveMember(in, r, st.ref, cur, w)
			if err := s.moveOne(in, r, st.ref, cur, w); err != nil {
				return nil, err
			}
		}
	case oneToOne:
		if changed {
			if was := s.heldElsewhere(in, other, r); was != nil || w.heldInWalk(in, other, r) {
				return nil, fmt.Errorf("%w: a %s is %s.%s of two %ss; set it to nil in the one it leaves",
					ErrConflictingParent, other.model.Type, in.model.Type, r.name, in.model.Type)
			}
			if b := r.backref(); b != nil && other.state == statePending {
				// a new child whose many-to-one, never synced, names another parent
				if ref := b.field(other.v); !ref.IsNil() && ref.Interface() != in.ptr {
					if bst := other.rels[b]; bst == nil || !bst.loaded {
						return nil, fmt.Errorf("%w: a %s in %s.%s has %s set to another %s; set both to the same parent",
							ErrConflictingParent, other.model.Type, in.model.Type, r.name, b.name, in.model.Type)
					}
				}
			}
		}
		if changed && st.ref != nil {
			// the child it replaces lets go of the parent, before the new one takes it
			if err := s.orphanOne(in, st.ref, other, r, w); err != nil {
				return nil, err
			}
		}
		if !hasKey(in) {
			w.wait(other, r.fk, in)
		} else if err := w.setFK(other, r.fk, pkValue(in)); err != nil {
			return nil, err
		}
		if b := r.backref(); b != nil {
			pointBack(in, b, other, w)
		}
	}
	st.ref, st.loaded = cur, true
	return added, nil
}

// columnsReloaded lets go of the loaded many-to-ones of in, whose columns were just read again,
// that the application left as they were and that no longer name the parent they hold: another
// transaction moved the row. The relationship is left to load again (nil, and Related says
// ErrNotLoaded); kept, the next flush would write the old parent's key back. Called locked.
func (s *Session) columnsReloaded(in *instance) {
	if len(in.rels) == 0 {
		return
	}
	rels, _ := relationsOf(in.model)
	for _, r := range rels {
		st := in.rels[r]
		if r.kind != manyToOne || st == nil || !st.loaded {
			continue
		}
		fv := r.field(in.v)
		var cur any
		if !fv.IsNil() {
			cur = fv.Interface()
		}
		if cur != st.ref {
			continue // the application's change, written by the next flush
		}
		fk := r.fk.Value(in.v)
		p := s.objects.of(st.ref)
		if st.ref == nil {
			if k, _ := refKey(fk, r.target.PK[0]); k == nil {
				continue
			}
		} else if p != nil && hasKey(p) && sameKey(fk, r.target.PK[0], pkValue(p)) {
			continue
		}
		fv.Set(reflect.Zero(fv.Type()))
		delete(in.rels, r)
		if p != nil {
			// the old parent's loaded collection (or one-to-one) lets it go too: kept, its next
			// flush would write its key back into the row
			s.forgetMember(p, r, in)
		}
	}
}

// forgetMember takes in out of the loaded collection, or the one-to-one, of p whose child's
// many-to-one is r, as the row says, outside a flush.
func (s *Session) forgetMember(p *instance, r *relation, in *instance) {
	w := newRelWork() // nothing to undo: no flush
	if one := r.oneToOneBack(); one != nil && letGoOne(p, one, in, w) {
		return
	}
	if b := r.backref(); b != nil {
		dropMember(p, b, in, w)
	}
}

// leaveParent writes a many-to-one r of in that the application set to nil, away from parent,
// which it referred to until now. When parent's collection (r's back-reference) is loaded, in
// leaves it, as a removal from the collection does: its key is set NULL, or it is deleted when the
// collection deletes orphans; otherwise its key is set NULL.
func (s *Session) leaveParent(in *instance, r *relation, parent any, w *relWork) error {
	p, ok := s.objects.get(parent)
	if !ok {
		return w.setFK(in, r.fk, nil)
	}
	if one := r.oneToOneBack(); one != nil && letGoOne(p, one, in, w) {
		// the parent's one-to-one lets go of it, as of a child replaced
		return removed(in, p, one, w)
	}
	b := r.backref()
	switch {
	case b != nil && s.holds(parent, b, in.ptr):
		s.moveMember(in, r, parent, nil, w)
		return removed(in, p, b, w)
	case b != nil && b.orphan:
		// a collection not loaded that deletes its orphans: the child is one
		return removed(in, p, b, w)
	}
	return w.setFK(in, r.fk, nil)
}

// letGoOne sets one-to-one r of p to nil when it holds child, and reports whether it did.
func letGoOne(p *instance, r *relation, child *instance, w *relWork) bool {
	if fv := r.field(p.v); fv.IsNil() || fv.Interface() != child.ptr {
		return false
	}
	w.keep(p, r)
	r.field(p.v).SetZero()
	p.remember(r)
	return true
}

// oneLetGo lets child go of one-to-one r of in, whose many-to-one back the application set to
// nil: both sides are remembered as they are now, and the child is removed (NULL, or deleted).
func oneLetGo(in *instance, r *relation, child *instance, w *relWork) error {
	letGoOne(in, r, child, w)
	b := r.backref()
	w.keep(child, b)
	child.remember(b)
	return removed(child, in, r, w)
}

// leftOne reports whether child, held by in's one-to-one r, had its many-to-one back pointing at
// in, and the application set it to nil since.
func leftOne(in, child *instance, r *relation) bool {
	b := r.backref()
	if b == nil {
		return false
	}
	bst := child.rels[b]
	return bst != nil && bst.loaded && bst.ref == in.ptr && b.field(child.v).IsNil()
}

// removed lets child go of collection r of parent, which no longer holds it: it is deleted as
// an orphan when r deletes orphans, else its key is set NULL.
func removed(child, parent *instance, r *relation, w *relWork) error {
	if r.orphan {
		w.orphans = append(w.orphans, orphan{child: child, parent: parent, r: r})
		return nil
	}
	if err := w.setFK(child, r.fk, nil); err != nil {
		return fmt.Errorf("gosqla: %s was removed from %s.%s: %w", child.model.Type, parent.model.Type, r.name, err)
	}
	return nil
}

// pointBack sets many-to-one b of child, the back-reference of in's one-to-one, to in, unless the
// application pointed it at another parent since the last sync: one that still names the parent
// it was loaded with follows the one-to-one that took the child.
func pointBack(in *instance, b *relation, child *instance, w *relWork) {
	if ref := b.field(child.v); !ref.IsNil() && ref.Interface() != in.ptr {
		if bst := child.rels[b]; bst == nil || !bst.loaded || bst.ref != ref.Interface() {
			return
		}
	}
	w.keep(child, b)
	child.pointAt(b, in)
}

// orphanOne lets ref, the child one-to-one r of in held until now, go once the walk is over,
// unless another parent took it meanwhile: its key is set NULL, or it is deleted when r deletes
// orphans. A key that cannot be NULL is refused now. Nothing is let go of when ref is not the
// session's, is deleted, or is the child taking its place (next).
func (s *Session) orphanOne(in *instance, ref any, next *instance, r *relation, w *relWork) error {
	old, ok := s.objects.get(ref)
	if !ok || old == next || old.state == stateDeleted {
		return nil
	}
	if !r.orphan && !nullable(r.fk) {
		return w.setFK(old, r.fk, nil) // the MappingError asking for a pointer or delete-orphan
	}
	w.orphans = append(w.orphans, orphan{child: old, parent: in, r: r, null: !r.orphan})
	return nil
}

// objectByKey is the session's object of model m whose key is key (a foreign key's value,
// converted to the key's type), or nil. Called locked.
func (s *Session) objectByKey(m *structmap.Model, key any, shard string) *instance {
	if len(m.PK) != 1 {
		return nil
	}
	key, ok := refKey(key, m.PK[0])
	if key == nil || !ok {
		return nil
	}
	in := s.identity.get(identityKey{t: m.Type, pk: key, shard: shard})
	if in == nil || !in.attached || in.state == stateDeleted {
		return nil
	}
	return in
}

// heldElsewhere reports the loaded parent other than in whose one-to-one r still holds child,
// which its foreign key named when loaded: a child taken from it must be let go of there too.
// Called locked.
func (s *Session) heldElsewhere(in, child *instance, r *relation) *instance {
	if child.state != statePersistent || child.snap == nil {
		return nil
	}
	i := fieldIndex(child.model, r.fk)
	was := s.objectByKey(r.owner, child.snapshotArg(i), child.shard)
	if was == nil || was == in {
		return nil
	}
	if st := was.rels[r]; st == nil || !st.loaded {
		return nil
	}
	if fv := r.field(was.v); fv.IsNil() || fv.Interface() != child.ptr {
		return nil
	}
	return was
}

// heldInWalk reports a child that another parent walked by this flush took as its one-to-one r
// and still holds, and records in as the child's parent otherwise: two new parents given one new
// child, which no snapshot shows (heldElsewhere).
func (w *relWork) heldInWalk(in, child *instance, r *relation) bool {
	k := oneHeld{child, r}
	if was, ok := w.oneParents[k]; ok && was != in {
		if fv := r.field(was.v); !fv.IsNil() && fv.Interface() == child.ptr {
			return true
		}
	}
	if w.oneParents == nil {
		w.oneParents = map[oneHeld]*instance{}
	}
	w.oneParents[k] = in
	return false
}

// oneHeld is a child of a one-to-one relationship.
type oneHeld struct {
	child *instance
	r     *relation
}

// moveOne keeps the one-to-ones of a child's old and new parent in step with its changed
// many-to-one r, when the parents declare one (Author.Profile, for Profile.Author): the old parent
// lets go of it, and the new one, new or with the one-to-one loaded, takes it, letting go of the
// child it held (its key NULL, or deleted when the one-to-one deletes orphans).
func (s *Session) moveOne(child *instance, r *relation, from, to any, w *relWork) error {
	one := r.oneToOneBack()
	if one == nil {
		return nil
	}
	if p, ok := s.objects.get(from); ok && from != nil {
		letGoOne(p, one, child, w)
	}
	q, ok := s.objects.get(to)
	if !ok || to == nil || q.state != statePending && (q.rels[one] == nil || !q.rels[one].loaded) {
		return nil
	}
	fv := one.field(q.v)
	var held any
	if !fv.IsNil() {
		if held = fv.Interface(); held == child.ptr {
			return nil
		}
	}
	w.keep(q, one)
	fv.Set(reflect.ValueOf(child.ptr))
	q.remember(one)
	if held == nil {
		return nil
	}
	return s.orphanOne(q, held, child, one, w)
}

// moveMember keeps the loaded collections of a child's old and new parent in step with a
// changed many-to-one.
func (s *Session) moveMember(child *instance, r *relation, from, to any, w *relWork) {
	b := r.backref()
	if b == nil {
		return
	}
	if p, ok := s.objects.get(from); ok && from != nil {
		dropMember(p, b, child, w)
	}
	if p, ok := s.objects.get(to); ok {
		addMember(p, b, child, w)
	}
}

// dropMember takes child out of collection r of p, when r is loaded and holds it.
func dropMember(p *instance, r *relation, child *instance, w *relWork) {
	if p.rels[r] == nil || !p.rels[r].loaded || !holdsMember(r.field(p.v), child) {
		return
	}
	w.keep(p, r)
	setWithout(r.field(p.v), child)
	p.remember(r)
}

// holdsMember reports whether collection fv holds child.
func holdsMember(fv reflect.Value, child *instance) bool {
	for i := range fv.Len() {
		if fv.Index(i).Interface() == child.ptr {
			return true
		}
	}
	return false
}

// setWithout sets collection fv to a new slice of its members but child.
func setWithout(fv reflect.Value, child *instance) {
	out := reflect.MakeSlice(fv.Type(), 0, fv.Len())
	for i := range fv.Len() {
		if fv.Index(i).Interface() != child.ptr {
			out = reflect.Append(out, fv.Index(i))
		}
	}
	fv.Set(out)
}

// linkBack adds in to many-to-many r of p, the other side of a link in made, when p is new or r
// loaded: to its field, and to the members the session synced, alone — the field's other members
// are still the application's to link. It returns p's state when it added in to its members.
func linkBack(p *instance, r *relation, in *instance, w *relWork) *relState {
	if p.state != statePending && (p.rels[r] == nil || !p.rels[r].loaded) {
		return nil
	}
	w.keep(p, r)
	st := p.rel(r)
	var added *relState
	if !slices.Contains(st.members, in.ptr) {
		st.members = append(slices.Clip(st.members), in.ptr) // a new slice: undo keeps the old
		st.insts = nil
		added = st
	}
	if fv := r.field(p.v); !holdsMember(fv, in) {
		fv.Set(reflect.Append(fv, reflect.ValueOf(in.ptr)))
	}
	return added
}

// syncedLink reports whether many-to-many r of p, loaded, held in at its last sync.
func syncedLink(p *instance, r *relation, in *instance) bool {
	st := p.rels[r]
	return st != nil && st.loaded && slices.Contains(st.members, in.ptr)
}

// unlinkBack takes in out of many-to-many r of p, the other side of a link in removed, when r is
// loaded: out of its field and of the members the session synced.
func unlinkBack(p *instance, r *relation, in *instance, w *relWork) {
	if p.rels[r] == nil || !p.rels[r].loaded {
		return
	}
	w.keep(p, r)
	st := p.rels[r]
	st.members = slices.DeleteFunc(slices.Clone(st.members), func(m any) bool { return m == in.ptr })
	st.insts = nil
	if fv := r.field(p.v); holdsMember(fv, in) {
		setWithout(fv, in)
	}
}

// addMember appends child to collection r of p, when p is new or r is loaded, and child is not
// in it.
func addMember(p *instance, r *relation, child *instance, w *relWork) {
	if p.state != statePending && (p.rels[r] == nil || !p.rels[r].loaded) {
		return
	}
	fv := r.field(p.v)
	for i := range fv.Len() {
		if fv.Index(i).Interface() == child.ptr {
			return
		}
	}
	w.keep(p, r)
	fv.Set(reflect.Append(fv, reflect.ValueOf(child.ptr)))
	p.remember(r)
}

// holds reports whether collection r of parent, as the session knows it whole or as added to,
// holds child.
func (s *Session) holds(parent any, r *relation, child any) bool {
	p, ok := s.objects.get(parent)
	if !ok || p.state == stateDeleted || (p.state != statePending && (p.rels[r] == nil || !p.rels[r].loaded)) {
		return false
	}
	fv := r.field(p.v)
	for i := range fv.Len() {
		if fv.Index(i).Interface() == child {
			return true
		}
	}
	return false
}

// syncMany brings a collection relationship of an active object into the unit of work.
func (s *Session) syncMany(in *instance, r *relation, w *relWork) ([]*instance, error) {
	var added []*instance
	fv := r.field(in.v)
	st := in.rel(r)
	partial := st.partial || (!st.loaded && in.state == statePersistent)
	// same: the collection holds what it held at the last sync, in order (the usual case once
	// synced): no member was removed, and the children's instances are those recorded then
	same := r.kind != manyToMany && len(st.members) == fv.Len()
	for i := 0; same && i < len(st.members); i++ {
		same = st.members[i] == fv.Index(i).Interface()
	}
	known := same && len(st.insts) == len(st.members)
	children := st.insts
	if !known {
		children = make([]*instance, 0, fv.Len())
		if len(st.members) == 0 {
			added = make([]*instance, 0, fv.Len()) // never synced: its members are usually new
		}
	}
	// otherwise the members now, to find those removed since the last sync (and association rows)
	var now map[any]bool
	if !same && (len(st.members) > 0 || r.kind == manyToMany) {
		now = make(map[any]bool, fv.Len())
	}
	// wasMember reports a member of the collection at the last sync
	var was map[any]bool
	wasMember := func(m any) bool {
		if same || len(st.members) == 0 {
			return same
		}
		if was == nil {
			was = memberSet(st.members)
		}
		return was[m]
	}
	b := r.backref()
	// positions of members leaving the collection: moved to another parent by their column, or
	// nulled, whose many-to-one the application set to nil
	var leaving []int
	var nulled map[*instance]bool
	// the parent's key, read once for all its children
	var key any
	keyKnown := hasKey(in)
	if keyKnown && r.kind != manyToMany {
		key = pkValue(in)
	}
	for i := range fv.Len() {
		cur := fv.Index(i).Interface()
		if fv.Index(i).IsNil() {
			return nil, fmt.Errorf("gosqla: %s.%s holds a nil element at %d: %w", in.model.Type, r.name, i, ErrNilObject)
		}
		if now != nil {
			now[cur] = true
		}
		var child *instance
		if known && children[i].attached && children[i].state != stateDeleted {
			child = children[i]
		} else if wasMember(cur) && s.passed(cur) {
			// a member since the last sync that was expunged or deleted since: Delete wins over
			// the collection that still holds it, and an expunged object is not the session's
			continue
		} else {
			var isNew bool
			var err error
			if child, isNew, err = s.attachAlong(in, cur, r); err != nil {
				return nil, err
			}
			if isNew {
				added = append(added, child)
				w.attached = append(w.attached, child)
			}
			if known {
				children[i] = child
			} else {
				children = append(children, child)
			}
		}
		if r.kind == manyToMany {
			continue
		}
		if keyKnown && wasMember(cur) && w.columnMoved(child, r.fk, in.model.PK[0], key) {
			// moved to another parent by its column: out of this collection, without the
			// NULL or the delete a removal writes
			leaving = append(leaving, i)
			continue
		}
		if b != nil {
			// a child whose own many-to-one was changed to another parent follows that
			bst := child.rels[b]
			ref := b.field(child.v)
			var cur any
			if !ref.IsNil() {
				cur = ref.Interface()
			}
			if cur == nil && bst != nil && bst.loaded && bst.ref == in.ptr {
				// the application set the child's many-to-one to nil since the last sync: that
				// takes it out of this collection, as a removal does
				leaving = append(leaving, i)
				if nulled == nil {
					nulled = map[*instance]bool{}
				}
				nulled[child] = true
				continue
			}
			if cur != nil && cur != in.ptr {
				if bst != nil && bst.loaded && cur != bst.ref {
					continue
				}
				if bst == nil || !bst.loaded {
					return nil, fmt.Errorf("%w: a %s in %s.%s has %s set to another %s; set both to the same parent",
						ErrConflictingParent, child.model.Type, in.model.Type, r.name, b.name, in.model.Type)
				}
				// its parent so far still holds it: the child is in two collections
				if s.holds(cur, r, child.ptr) {
					return nil, fmt.Errorf("%w: a %s is in %s.%s of two %ss; remove it from one of them",
						ErrConflictingParent, child.model.Type, in.model.Type, r.name, in.model.Type)
				}
			}
			if bst != nil && bst.loaded && bst.ref != nil && bst.ref != in.ptr {
				// the application pointed the child at this parent, or set it to nil and put it
				// in this collection: it leaves the loaded collection of the parent it named
				// before, whichever of the two collections the walk meets first
				if old, ok := s.objects.get(bst.ref); ok {
					dropMember(old, r, child, w)
				}
			}
			w.keep(child, b)
			child.pointAt(b, in)
		}
		if !keyKnown {
			w.wait(child, r.fk, in)
		} else if err := w.setFK(child, r.fk, key); err != nil {
			return nil, err
		}
	}
	if r.kind == manyToMany {
		err := s.syncAssociation(in, r, st, now, w)
		st.partial = partial
		return added, err
	}
	if len(leaving) > 0 {
		var err error
		children, err = dropAt(fv, children, leaving, func(child *instance) error {
			if !nulled[child] {
				s.followMoved(in, r, child, w)
				return nil
			}
			w.keep(child, b)
			child.remember(b)
			return removed(child, in, r, w)
		})
		if err != nil {
			return nil, err
		}
	}
	for _, old := range st.members {
		if same {
			break // nothing was removed
		}
		if now[old] {
			continue
		}
		child, ok := s.objects.get(old)
		if !ok || child.state == stateDeleted {
			continue
		}
		if b != nil {
			if ref := b.field(child.v); !ref.IsNil() && ref.Interface() != in.ptr {
				continue // moved to another parent
			}
			w.keep(child, b)
			b.field(child.v).Set(reflect.Zero(b.field(child.v).Type()))
			child.remember(b)
		}
		if err := removed(child, in, r, w); err != nil {
			return nil, err
		}
	}
	in.remember(r)
	st.insts, st.partial = children, partial
	return added, nil
}

// dropAt takes the children at positions at (ascending) out of collection fv and children (its
// instances, in order), handing each to leave; the first error stops the calls to leave, and the
// children are out of the collection either way.
func dropAt(fv reflect.Value, children []*instance, at []int, leave func(*instance) error) ([]*instance, error) {
	out := reflect.MakeSlice(fv.Type(), 0, fv.Len()-len(at))
	kept := make([]*instance, 0, len(children)-len(at))
	var err error
	k := 0
	for i := range fv.Len() {
		if k < len(at) && at[k] == i {
			k++
			if err == nil {
				err = leave(children[i])
			}
			continue
		}
		out = reflect.Append(out, fv.Index(i))
		kept = append(kept, children[i])
	}
	fv.Set(out)
	return kept, err
}

// followMoved adds child, which its column moved out of collection r of in, to the collection of
// the parent the column names when the session holds it, and points its many-to-one there.
func (s *Session) followMoved(in *instance, r *relation, child *instance, w *relWork) {
	next := s.objectByKey(in.model, r.fk.Value(child.v), child.shard)
	if next != nil {
		addMember(next, r, child, w)
	}
	if b := r.backref(); b != nil {
		if ref := b.field(child.v); !ref.IsNil() && ref.Interface() == in.ptr {
			followColumn(child, b, next, w)
		}
	}
}

// followColumn points many-to-one r of child, whose column moved it, at next, the parent the
// column names, or leaves it to load again when the session does not hold that parent (nil).
func followColumn(child *instance, r *relation, next *instance, w *relWork) {
	w.keep(child, r)
	fv, st := r.field(child.v), child.rel(r)
	if next == nil {
		fv.SetZero()
		st.ref, st.loaded = nil, false
		return
	}
	fv.Set(reflect.ValueOf(next.ptr))
	st.ref, st.loaded = next.ptr, true
}

// syncAssociation plans the association rows added to and removed from a many-to-many
// collection. A pair whose keys are not known yet waits for the next stage of the flush.
func (s *Session) syncAssociation(in *instance, r *relation, st *relState, now map[any]bool, w *relWork) error {
	e := s.engineOf(in)
	d := e.Dialect()
	was := memberSet(st.members)
	kept := st.members[:0:0]
	b := r.backref()
	for _, m := range st.members {
		if now[m] {
			kept = append(kept, m)
			continue
		}
		other := s.objects.of(m)
		if other == nil {
			continue
		}
		if b != nil {
			unlinkBack(other, b, in, w)
		}
		if w.firstTime(r, in, other, false) {
			w.unlink(r, in, other, len(w.before))
			w.before = append(w.before, flushStmt{e, asyncengine.Statement{SQL: associationDelete(d, r), Args: []any{pkValue(in), pkValue(other)}}, nil})
		}
	}
	fv := r.field(in.v)
	for i := range fv.Len() {
		m := fv.Index(i).Interface()
		if was[m] {
			continue
		}
		other := s.objects.of(m)
		kept = append(kept, m)
		// the other side synced the link already: its row is there (a link removed from that
		// side and made again from this one in the same flush stays)
		exists := b != nil && syncedLink(other, b, in)
		var back *relState
		if b != nil {
			back = linkBack(other, b, in, w)
		}
		if exists || !w.firstTime(r, in, other, true) || w.relinked(r, in, other) {
			continue // linked from the other side too, or its row stays
		}
		if !hasKey(in) || !hasKey(other) {
			// a key the server generates in this flush: the row takes it in the same pipeline,
			// or waits for the next stage (keyed.go)
			w.links = append(w.links, pendingLink{e: e, r: r, st: st, owner: in, other: other, m: m, back: back})
			continue
		}
		w.after = append(w.after, flushStmt{e, asyncengine.Statement{SQL: associationInsert(d, r), Args: []any{pkValue(in), pkValue(other)}}, []*instance{in, other}})
	}
	st.members, st.loaded = kept, true
	return nil
}

// letPass records that the session let in's object go: expunged, or its row deleted. Called
// locked.
func (s *Session) letPass(in *instance) {
	if s.letGo == nil {
		s.letGo = map[uintptr]struct{}{}
	}
	s.letGo[addressOf(in)] = struct{}{}
}

// memberSet is the set of a collection's members.
func memberSet(members []any) map[any]bool {
	set := make(map[any]bool, len(members))
	for _, m := range members {
		set[m] = true
	}
	return set
}

// passed reports an object expunged, deleted by a flush, or marked deleted: a relationship that
// refers to it unchanged does not bring it back. Called locked.
func (s *Session) passed(obj any) bool {
	if in, ok := s.objects.get(obj); ok {
		return in.state == stateDeleted
	}
	_, ok := s.letGo[objectAddress(obj)]
	return ok
}

// addressOf is the address of in's object, by which the registry and letGo know it.
func addressOf(in *instance) uintptr { return uintptr(in.addr) }

func (s *Session) markDeleted(in *instance) {
	switch in.state {
	case statePending:
		s.pending = without(s.pending, []*instance{in})
		s.forget(in)
	case statePersistent:
		in.state = stateDeleted
		s.deleted = append(s.deleted, in)
	}
}

// cascadeDelete takes the loaded children of a deleted object along (cascade=delete), deletes
// the rows of children never loaded with one statement, removes association rows, and nulls
// the key of children that stay. Called locked.
func (s *Session) cascadeDelete(in *instance, w *relWork) error {
	rels, err := relationsOf(in.model)
	if err != nil {
		return err
	}
	e := s.engineOf(in)
	d := e.Dialect()
	// the children the session does not hold are deleted by their key after the statements of
	// those it holds, which delete their own children first
	var byFK []*relation
	for _, r := range rels {
		switch r.kind {
		case manyToMany:
			w.before = append(w.before, flushStmt{e, asyncengine.Statement{SQL: associationDeleteAll(d, r), Args: []any{pkValue(in)}}, nil})
			continue
		case manyToOne:
			continue
		}
		var children []any
		st := in.rels[r]
		known := st != nil && st.loaded // all the children, or those added (partial)
		loaded := known && !st.partial
		if known {
			fv := r.field(in.v)
			if r.many() {
				for i := range fv.Len() {
					children = append(children, fv.Index(i).Interface())
				}
			} else if !fv.IsNil() {
				children = append(children, fv.Interface())
			}
		}
		if r.cascadeDelete && !loaded {
			byFK = append(byFK, r)
		}
		for _, c := range children {
			child, ok := s.objects.get(c)
			if !ok || child.state == stateDeleted {
				continue
			}
			if r.cascadeDelete {
				s.markDeleted(child)
				if err := s.cascadeDelete(child, w); err != nil {
					return err
				}
				continue
			}
			if err := w.setFK(child, r.fk, nil); err != nil {
				return fmt.Errorf("gosqla: deleting a %s leaves its %s without a parent (tag the relationship cascade=delete to delete them with it): %w", in.model.Type, r.target.Type, err)
			}
		}
	}
	for _, r := range byFK {
		te := s.relTarget(r, in.shard).e
		for _, sql := range deleteByFK(te.Dialect(), r) {
			w.before = append(w.before, flushStmt{te, asyncengine.Statement{SQL: sql, Args: []any{pkValue(in)}}, nil})
		}
	}
	return nil
}

// setFK writes a foreign-key value (nil: NULL) into in's field f, for the flush w plans: a field
// it changes is put back if the flush is not sent (restore).
func (w *relWork) setFK(in *instance, f *structmap.Field, v any) error {
	fv := in.v.FieldByIndex(f.Index)
	if v == nil {
		if !nullable(f) {
			return &MappingError{Type: in.model.Type.String(), Field: f.Name, Reason: fmt.Sprintf("%s cannot hold NULL; declare it as *%s or a sql.Null type, or tag the relationship cascade=delete-orphan", f.Column, f.Type)}
		}
		if !fv.IsZero() {
			w.saveFK(in, f, fv)
			fv.SetZero()
		}
		return nil
	}
	if fv.Kind() != reflect.Pointer && reflect.TypeOf(v) == fv.Type() {
		if nv := reflect.ValueOf(v); !fv.Comparable() || !fv.Equal(nv) {
			w.saveFK(in, f, fv)
			fv.Set(nv)
		}
		return nil
	}
	if fv.Kind() == reflect.Pointer && !fv.IsNil() && fv.Elem().Interface() == v {
		return nil
	}
	w.saveFK(in, f, fv)
	return structmap.Assign(fv.Addr().Interface(), v)
}

// saveFK records foreign key f of in as it is, before setFK writes it.
func (w *relWork) saveFK(in *instance, f *structmap.Field, fv reflect.Value) {
	w.fkWrites = append(w.fkWrites, fkWrite{in: in, f: f, old: copyOf(fv)})
	if in.state != statePending {
		if w.walkSetFK == nil {
			w.walkSetFK = map[*instance]bool{}
		}
		w.walkSetFK[in] = true
	}
}

// columnMoved reports a loaded object whose foreign key f the application set since it was
// loaded or flushed (not this walk) to another value than parentKey, a value of the parent's key
// field pk: the column it wrote wins
// over a loaded relationship that still joins it to the parent of that key, which is then out
// of date.
func (w *relWork) columnMoved(in *instance, f, pk *structmap.Field, parentKey any) bool {
	if in.state != statePersistent || in.snap == nil || w.walkSetFK[in] {
		return false
	}
	i := fieldIndex(in.model, f)
	return i >= 0 && in.fieldChanged(i) && !sameKey(f.Value(in.v), pk, parentKey)
}

// fkWrite is a foreign-key field as it was before a flush's cascade wrote it.
type fkWrite struct {
	in  *instance
	f   *structmap.Field
	old any // copyOf the field
}

// nullable reports whether field f can hold NULL.
func nullable(f *structmap.Field) bool {
	switch f.Type.Kind() {
	case reflect.Pointer, reflect.Interface:
		return true
	}
	_, ok := reflect.New(f.Type).Interface().(interface{ Scan(any) error })
	return ok
}
