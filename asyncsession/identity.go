package asyncsession

import (
	"encoding/hex"
	"fmt"
	"reflect"
	"strings"
	"unsafe"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/internal/structmap"
)

type state uint8

const (
	statePending    state = iota // added, not yet inserted
	statePersistent              // in the database and the identity map
	stateDeleted                 // marked for deletion, not yet flushed
)

// identityKey identifies one row: the mapped type, its primary key, and in a sharded session its
// shard.
type identityKey struct {
	t     reflect.Type
	pk    any // the key's Go value (one column), or a string of all of them
	shard string
}

// pkValues returns the primary-key values of struct v, as statement arguments.
func pkValues(m *structmap.Model, v reflect.Value) []any {
	args := make([]any, len(m.PK))
	for i, f := range m.PK {
		args[i] = f.Value(v)
	}
	return args
}

// instance is what the session knows of one mapped object.
type instance struct {
	ptr   any            // the *T the user holds
	v     reflect.Value  // the struct itself
	addr  unsafe.Pointer // its address, as v.Addr() computes it each time
	model *structmap.Model
	pk    any // its key's value in the identity map (identityKey.pk), with its model and shard
	// snap is a copy of the struct as last loaded or flushed (nil: none taken), of the model's
	// type so that the collector sees what it refers to; deep holds, for each slice, pointer and
	// map field, a copy of what it referred to then (snapshotOf), so that a change made in place
	// is seen (nil for models without such fields)
	snap unsafe.Pointer
	deep []any
	set  *tableSet // its table's set while registered, with its snapshot bytes (autoflush.go)
	pos  int32     // its place in set
	// part: the part of a flush by parts whose walk attached it (chunk.go); 0 outside one
	part int32
	// insertedIn is 1 + the savepoint generation it was inserted in while that transaction is
	// open, 0 otherwise: a rollback to generation gen expunges it when insertedIn > gen
	insertedIn int32
	rels       map[*relation]*relState
	// waitFor are the foreign keys it waits to fill with parents' generated keys, in the flush
	// whose relWork's id is waitIn (cascade.go)
	waitFor []awaited
	waitIn  uint64
	state   state
	// early: it waits, but goes in the same pipeline as its parents, which publish their keys
	// (keyed.go); valid while waitIn is the flush's
	early   bool
	expired bool
	// attached: it is the session's instance of ptr (in objects); forget and ExpungeAll clear it
	attached bool
	owned    bool   // the owners registry holds it as the session's (ownership.go)
	shard    string // the shard holding its row, in a sharded session
}

func newInstance(ptr any, m *structmap.Model) *instance {
	in := &instance{}
	in.bind(ptr, m)
	return in
}

// bind makes a zero instance that of ptr, a *T of model m. Field by field: assigning a whole
// struct would pass every pointer word of it through the collector's write barrier.
func (in *instance) bind(ptr any, m *structmap.Model) {
	pv := reflect.ValueOf(ptr)
	in.ptr, in.v, in.addr, in.model = ptr, pv.Elem(), pv.UnsafePointer(), m
}

// inserted records that the object's INSERT ran in savepoint generation gen of the open
// transaction.
func (in *instance) inserted(gen int) { in.insertedIn = int32(gen + 1) }

// insertedSince reports an object inserted in the open transaction at or after savepoint
// generation gen: a rollback to gen undoes its INSERT.
func (in *instance) insertedSince(gen int) bool { return int(in.insertedIn) > gen }

// rekey takes the identity key from the object's current primary-key fields.
func (in *instance) rekey() { in.pk = keyOf(in.model, in.v).pk }

// key is in's key in the identity map.
func (in *instance) key() identityKey {
	return identityKey{t: in.model.Type, pk: in.pk, shard: in.shard}
}

// keyOf computes the identity key from the object's current primary-key fields.
func keyOf(m *structmap.Model, v reflect.Value) identityKey {
	if len(m.PK) == 1 {
		return identityKey{t: m.Type, pk: v.FieldByIndex(m.PK[0].Index).Interface()}
	}
	parts := make([]any, len(m.PK))
	for i, f := range m.PK {
		parts[i] = v.FieldByIndex(f.Index).Interface()
	}
	return identityKey{t: m.Type, pk: fmt.Sprintf("%#v", parts)}
}

// parseUUID reads a uuid's text form (with or without hyphens, braces or a urn:uuid: prefix).
func parseUUID(s string) ([16]byte, error) {
	var u [16]byte
	s = strings.TrimPrefix(strings.Trim(s, "{}"), "urn:uuid:")
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != 16 {
		return u, fmt.Errorf("%q is not a uuid", s)
	}
	copy(u[:], b)
	return u, nil
}

// uuidText is x, a key's value for a field of type t, with a uuid's text read as the 16 bytes
// of a [16]byte key.
func uuidText(x any, t reflect.Type) (any, error) {
	if s, ok := x.(string); ok && t == uuidBytesType {
		return parseUUID(s)
	}
	return x, nil
}

var uuidBytesType = reflect.TypeFor[[16]byte]()

// keyFor converts a primary-key value given by the caller into the identity key, by storing it
// in a field of the key's own type (so 7, int64(7) and "7" for a string key all agree).
func keyFor(m *structmap.Model, pk any) (identityKey, reflect.Value, error) {
	v := reflect.New(m.Type).Elem()
	vals, ok := pk.([]any)
	if len(m.PK) == 1 || !ok {
		vals = []any{pk}
	}
	if len(vals) != len(m.PK) {
		if len(m.PK) > 1 && !ok {
			return identityKey{}, v, fmt.Errorf("gosqla: %s has a primary key of %d columns; pass them as a []any in the key's column order", m.Type, len(m.PK))
		}
		return identityKey{}, v, fmt.Errorf("gosqla: %s has a primary key of %d column(s); got %d value(s)", m.Type, len(m.PK), len(vals))
	}
	for i, f := range m.PK {
		if vals[i] == nil {
			return identityKey{}, v, fmt.Errorf("gosqla: the value of %s is nil; a key has no NULL in it", f.Column)
		}
		if rv := reflect.ValueOf(vals[i]); rv.Kind() == reflect.Pointer && rv.Type() != f.Type {
			return identityKey{}, v, fmt.Errorf("gosqla: the value of %s is a %T; pass the value (%s), not a pointer to it", f.Column, vals[i], f.Type)
		}
		var err error
		if vals[i], err = uuidText(vals[i], f.Type); err != nil {
			return identityKey{}, v, fmt.Errorf("gosqla: the value of %s: %w; pass a uuid's text or its 16 bytes", f.Column, err)
		}
		if err := structmap.Assign(v.FieldByIndex(f.Index).Addr().Interface(), vals[i]); err != nil {
			return identityKey{}, v, &asyncengine.ConvertError{Column: f.Column, To: f.Type.String(), Err: err,
				Fix: fmt.Sprintf("pass the key as %s", f.Type)}
		}
	}
	return keyOf(m, v), v, nil
}

// takeSnapshot records the object's fields as last loaded or flushed, in a copy of its own
// (allocated the first time).
func (in *instance) takeSnapshot() {
	if in.snap == nil {
		in.snap = reflect.New(in.model.Type).UnsafePointer()
	}
	in.retake()
}

// takeSnapshotIn is takeSnapshot for an object without one, whose copy is at, an element of a
// slice allocated for a batch of objects.
func (in *instance) takeSnapshotIn(at reflect.Value) {
	if in.snap == nil {
		in.snap = at.Addr().UnsafePointer()
	}
	in.retake()
}

func (in *instance) retake() {
	in.snapshotValue().Set(in.v)
	for _, i := range in.model.Refs {
		f := in.model.Fields[i]
		if in.deep == nil {
			in.deep = make([]any, len(in.model.Fields))
		}
		in.deep[i] = snapshotOf(in.v.FieldByIndex(f.Index))
	}
	in.takeRaw()
}

// snapshotValue is the copy of the struct as last loaded or flushed.
func (in *instance) snapshotValue() reflect.Value {
	return reflect.NewAt(in.model.Type, in.snap).Elem()
}

// fieldSnapshot is the value of one field as last loaded or flushed, as an update or a rollback
// puts it back: the copy of the struct's field, and for a field that can change in place, the
// copy of what it referred to.
type fieldSnapshot struct {
	v    reflect.Value
	deep any
}

// snapshotOfField returns a copy of field i's snapshot.
func (in *instance) snapshotOfField(i int) fieldSnapshot {
	fs := fieldSnapshot{v: copyValue(in.snapshotValue().FieldByIndex(in.model.Fields[i].Index))}
	if in.deep != nil {
		fs.deep = in.deep[i]
	}
	return fs
}

// setSnapshotOfField puts back field i's snapshot.
func (in *instance) setSnapshotOfField(i int, fs fieldSnapshot) {
	in.snapshotValue().FieldByIndex(in.model.Fields[i].Index).Set(fs.v)
	if in.deep != nil {
		in.deep[i] = fs.deep
	}
}

// retakeField takes field i's current value as its snapshot.
func (in *instance) retakeField(i int) {
	cur := in.v.FieldByIndex(in.model.Fields[i].Index)
	in.snapshotValue().FieldByIndex(in.model.Fields[i].Index).Set(cur)
	if in.deep != nil && in.model.Fields[i].Refers {
		in.deep[i] = snapshotOf(cur)
	}
}

// snapshotArg is field i's value as last loaded or flushed, as a statement argument.
func (in *instance) snapshotArg(i int) any {
	f := in.model.Fields[i]
	if in.deep != nil && f.Refers && snapshotValued(f.Type) {
		return in.deep[i]
	}
	return in.snapshotValue().FieldByIndex(f.Index).Interface()
}

// fieldChanged reports whether field i differs from its snapshot.
func (in *instance) fieldChanged(i int) bool {
	f := in.model.Fields[i]
	cur := in.v.FieldByIndex(f.Index)
	if in.deep != nil && f.Refers {
		return differs(cur, in.deep[i])
	}
	return !equal(cur, in.snapshotValue().FieldByIndex(f.Index))
}

// changed returns the fields whose value differs from the snapshot.
func (in *instance) changed() []int {
	var out []int
	for i := range in.model.Fields {
		if in.fieldChanged(i) {
			out = append(out, i)
		}
	}
	return out
}

// equal compares a field with its snapshot: with == where the type allows (a pointer or an
// interface field compares what it refers to).
func equal(cur, old reflect.Value) bool {
	if cur.Comparable() {
		if k := cur.Kind(); k != reflect.Pointer && k != reflect.Interface {
			return cur.Equal(old)
		}
	}
	return reflect.DeepEqual(cur.Interface(), old.Interface())
}

// scanRow scans row i of r into a fresh struct of m's type, columns by their `db` tags (columns
// without a field are ignored). A value that does not fit its field fails the whole row.
func scanRow(m *structmap.Model, r *asyncengine.Result, i int) (reflect.Value, error) {
	return scanFields(m, r, i, m.Column)
}

// scanFields scans row i of r into a fresh struct of m's type, each column into the field that
// fieldOf names (none: the column is skipped).
func scanFields(m *structmap.Model, r *asyncengine.Result, i int, fieldOf func(column string) *structmap.Field) (reflect.Value, error) {
	// one row: the struct and its destinations are made here, without a scanner to hold them
	tmp := reflect.New(m.Type).Elem()
	dest := make([]any, len(r.Columns()))
	for j, c := range r.Columns() {
		if f := fieldOf(c); f != nil {
			dest[j] = tmp.FieldByIndex(f.Index).Addr().Interface()
		}
	}
	if err := r.ScanRow(i, dest...); err != nil {
		return reflect.Value{}, err
	}
	return tmp, nil
}

// rowScanner scans rows of one result into one struct of a model's type, reused from row to row:
// for rows whose fields are copied out before the next is scanned.
type rowScanner struct {
	tmp  reflect.Value
	dest []any
	r    *asyncengine.Result
}

func newRowScanner(m *structmap.Model, r *asyncengine.Result) *rowScanner {
	sc := &rowScanner{tmp: reflect.New(m.Type).Elem(), r: r}
	cols := r.Columns()
	sc.dest = make([]any, len(cols))
	for j, c := range cols {
		if f := m.Column(c); f != nil {
			sc.dest[j] = sc.tmp.FieldByIndex(f.Index).Addr().Interface()
		}
	}
	return sc
}

// scan reads row i into the scanner's struct, zeroed first, and returns it: the previous row's
// slices and maps (now its object's) are not scanned into again.
func (sc *rowScanner) scan(i int) (reflect.Value, error) {
	sc.tmp.SetZero()
	if err := sc.r.ScanRow(i, sc.dest...); err != nil {
		return reflect.Value{}, err
	}
	return sc.tmp, nil
}

// store copies the mapped fields of row (scanned from columns) into the instance and takes a
// snapshot.
func (in *instance) store(row reflect.Value, columns []string) {
	for _, c := range columns {
		if f := in.model.Column(c); f != nil {
			in.v.FieldByIndex(f.Index).Set(row.FieldByIndex(f.Index))
		}
	}
	in.takeSnapshot()
	in.expired = false
}

// storeIn is store for an object without a snapshot, whose snapshot is at (takeSnapshotIn), of
// the fields of a row's columns (fieldsOf).
func (in *instance) storeIn(row reflect.Value, fields []*structmap.Field, at reflect.Value) {
	for _, f := range fields {
		in.v.FieldByIndex(f.Index).Set(row.FieldByIndex(f.Index))
	}
	in.takeSnapshotIn(at)
	in.expired = false
}

// fieldsOf returns m's fields of columns, those without one left out.
func fieldsOf(m *structmap.Model, columns []string) []*structmap.Field {
	out := make([]*structmap.Field, 0, len(columns))
	for _, c := range columns {
		if f := m.Column(c); f != nil {
			out = append(out, f)
		}
	}
	return out
}

// copyValue is a copy of v that later changes to v's place do not touch.
func copyValue(v reflect.Value) reflect.Value {
	c := reflect.New(v.Type()).Elem()
	c.Set(v)
	return c
}

// reload stores a row in an expired object, keeping the fields changed since its last load or
// flush: they differ from the new snapshot, so the next flush still writes them.
func (in *instance) reload(row reflect.Value, columns []string) {
	edits := in.changed()
	kept := make([]reflect.Value, len(edits))
	for k, fi := range edits {
		kept[k] = copyValue(in.v.FieldByIndex(in.model.Fields[fi].Index))
	}
	in.store(row, columns)
	for k, fi := range edits {
		in.v.FieldByIndex(in.model.Fields[fi].Index).Set(kept[k])
	}
}

// load stores row i of r into the instance; on error the object is unchanged.
func (in *instance) load(r *asyncengine.Result, i int) error {
	row, err := scanRow(in.model, r, i)
	if err != nil {
		return err
	}
	in.store(row, r.Columns())
	return nil
}

// merge returns the identity-map object for row i of r: the loaded one, refreshed when expired or
// when overwrite is set, or a new one registered in the map.
func (s *Session) merge(m *structmap.Model, r *asyncengine.Result, i int, overwrite bool, shard string) (*instance, error) {
	row, err := scanRow(m, r, i)
	if err != nil {
		return nil, err
	}
	return s.mergeRow(m, row, r.Columns(), overwrite, shard), nil
}

// mergeRow is merge for a row of shard already scanned from columns.
func (s *Session) mergeRow(m *structmap.Model, row reflect.Value, columns []string, overwrite bool, shard string) *instance {
	key := keyOf(m, row)
	key.shard = shard
	if in := s.identity.get(key); in != nil {
		switch {
		case overwrite:
			in.store(row, columns)
			s.columnsReloaded(in)
		case in.expired:
			in.reload(row, columns)
			s.columnsReloaded(in)
		}
		return in
	}
	in := newInstance(row.Addr().Interface(), m)
	in.takeSnapshot()
	in.pk = key.pk
	in.shard = shard
	in.state = statePersistent
	s.register(in)
	return in
}

func (s *Session) register(in *instance) {
	s.identity.set(in.key(), in)
	if !in.attached { // an attached instance is in objects already
		s.objects.set(in.ptr, in)
		in.attached = true
	}
	s.index(in, true)
}

// forget removes in from the session and lets go of its claim on the object. Called locked.
func (s *Session) forget(in *instance) {
	s.unregister(in)
	s.disown(in)
}

// unregister removes in from the session's maps and sets, keeping its claim on the object (a
// flushed DELETE: a rollback restores it). Called locked.
func (s *Session) unregister(in *instance) {
	if s.identity.get(in.key()) == in {
		s.identity.drop(in.key())
	}
	if s.objects.of(in.ptr) == in {
		s.objects.drop(in.ptr)
	}
	in.attached = false
	s.index(in, false)
}

// loadAll merges every row of r into the identity map and returns their objects. Every row is
// scanned before any is merged: a row that does not fit changes no object.
func loadAll[T any](s *Session, m *structmap.Model, r *asyncengine.Result, overwrite bool, shard string) ([]*T, error) {
	rows, err := scanRows(m, r)
	if err != nil {
		return nil, err
	}
	out := make([]*T, 0, r.Len())
	for _, row := range rows {
		out = append(out, s.mergeRow(m, row, r.Columns(), overwrite, shard).ptr.(*T))
	}
	return out, nil
}

// scanRows scans every row of r into fresh structs of m's type.
func scanRows(m *structmap.Model, r *asyncengine.Result) ([]reflect.Value, error) {
	rows := make([]reflect.Value, r.Len())
	for i := range rows {
		row, err := scanRow(m, r, i)
		if err != nil {
			return nil, err
		}
		rows[i] = row
	}
	return rows, nil
}

// keyError says which model's primary key a Get was given a wrong value for.
func keyError(m *structmap.Model, pk any, err error) error {
	want := make([]string, len(m.PK))
	for i, f := range m.PK {
		want[i] = f.Column + " " + f.Type.String()
	}
	return fmt.Errorf("gosqla: %v (%T) is not a primary key of %s, whose key is (%s): %w", pk, pk, m.Type, strings.Join(want, ", "), err)
}
