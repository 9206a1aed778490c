package asyncsession

import (
	"bytes"
	"context"
	"reflect"
	"slices"
	"strings"
	"unsafe"

	"github.com/gosqla/gosqla/internal/structmap"
)

// Go cannot observe a field write, so finding the loaded objects a flush must UPDATE means
// comparing them with their snapshot. Two things keep that cheap as the session grows:
//
//   - an autoflush compares only the objects of the tables its statement names (every word of
//     the statement is taken as a possible table name, so nothing named is missed), found
//     through a per-table index instead of a walk over every object;
//   - each table's objects keep a byte copy of their struct as last loaded or flushed, side by
//     side: an object whose memory equals it is unchanged without a field-by-field comparison.
//     A field that refers to memory outside the struct (a pointer, slice, map or interface) can
//     change in place with the same bytes: an autoflush does not look there (comparing them
//     for every loaded object of a table made it ~20× slower), a full flush (Flush, Commit,
//     RunSync, savepoints) compares them by content.

// reads is what a request reads, for its autoflush: the tables named by a word of its statement,
// and one table it reads whatever the statement says. The zero value stands for every table.
type reads struct {
	sql   string
	table string
	some  bool // false: every table
}

// readsSQL is a statement's reads, with the table of the model it loads ("" for none).
func readsSQL(sql, table string) reads { return reads{sql: sql, table: table, some: true} }

// readsTable is a request that reads one table.
func readsTable(table string) reads { return reads{table: table, some: true} }

// names reports whether the request may read table (a lower-cased word, see tableWord): every
// word of the statement is taken as a possible table name, so nothing named is missed.
func (r reads) names(table string) bool {
	if !r.some || r.table == table {
		return true
	}
	sql := r.sql
	start := -1
	for i := 0; i <= len(sql); i++ {
		if i < len(sql) && isWordByte(sql[i]) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 && strings.EqualFold(sql[start:i], table) {
			return true
		}
		start = -1
	}
	return false
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

// tableWord is the word a statement uses for a model's table: its last dotted part, lower-cased.
func tableWord(m *structmap.Model) string {
	t := m.Table
	if i := strings.LastIndexByte(t, '.'); i >= 0 {
		t = t[i+1:]
	}
	return strings.ToLower(t)
}

// candidates calls visit with the loaded objects an autoflush must compare field by field: those
// of the tables r names (every table for the zero reads) whose bytes differ from their snapshot's.
// Called locked.
func (s *Session) candidates(r reads, visit func(*instance)) {
	if !r.some {
		// every registered object is in its table's set; the others (pending) are not loaded
		for _, set := range s.byTable {
			for _, in := range set.ins {
				if !in.unchanged() {
					visit(in)
				}
			}
		}
		return
	}
	for table, set := range s.byTable {
		if r.names(table) {
			set.changed(visit)
		}
	}
}

// tableSet holds the registered objects of one table with their snapshot bytes side by side, so
// that finding the changed ones reads memory in order.
type tableSet struct {
	size uintptr
	ins  []*instance
	ptrs []unsafe.Pointer // the structs
	ok   []bool           // the snapshot bytes are known
	raws []byte           // len(ins) × size snapshot bytes
}

func (t *tableSet) raw(pos int32) []byte {
	return t.raws[uintptr(pos)*t.size : uintptr(pos+1)*t.size]
}

func (t *tableSet) changed(visit func(*instance)) {
	if len(t.ptrs) == 0 {
		return
	}
	size := t.size
	base := unsafe.Pointer(unsafe.SliceData(t.raws))
	// 8 bytes at a time, inline, when every struct and its copy are 8-byte aligned: this loop
	// runs once per loaded object of the table before each query that reads it
	words := size%8 == 0 && uintptr(base)%8 == 0
	for i, p := range t.ptrs {
		snap := unsafe.Add(base, uintptr(i)*size)
		same := t.ok[i]
		switch {
		case !same:
		case words && uintptr(p)%8 == 0:
			for off := uintptr(0); off < size; off += 8 {
				if *(*uint64)(unsafe.Add(snap, off)) != *(*uint64)(unsafe.Add(p, off)) {
					same = false
					break
				}
			}
		default:
			same = bytes.Equal(unsafe.Slice((*byte)(snap), size), unsafe.Slice((*byte)(p), size))
		}
		if !same {
			visit(t.ins[i])
		}
	}
}

// refsUnchanged compares the fields that can change in place with their snapshot.
func (in *instance) refsUnchanged() bool {
	for _, fi := range in.model.Refs {
		if in.fieldChanged(fi) {
			return false
		}
	}
	return true
}

// index adds a registered object to, or removes it from, its table's set. Called locked.
func (s *Session) index(in *instance, add bool) {
	if !add {
		if t := in.set; t != nil {
			last := len(t.ins) - 1
			moved := t.ins[last]
			t.ins[in.pos], t.ptrs[in.pos], t.ok[in.pos] = moved, t.ptrs[last], t.ok[last]
			copy(t.raw(in.pos), t.raw(int32(last)))
			moved.pos = in.pos
			// the vacated slot must not keep its object alive
			t.ins[last], t.ptrs[last] = nil, nil
			t.ins, t.ptrs, t.ok, t.raws = t.ins[:last], t.ptrs[:last], t.ok[:last], t.raws[:uintptr(last)*t.size]
			in.set = nil
		}
		return
	}
	if in.set != nil {
		return
	}
	t := s.tableSetOf(in.model)
	in.set, in.pos = t, int32(len(t.ins))
	t.ins = append(t.ins, in)
	t.ptrs = append(t.ptrs, in.addr)
	t.ok = append(t.ok, false)
	t.raws = append(t.raws, make([]byte, t.size)...)
	in.takeRaw()
}

// tableSetOf returns m's table set, created empty the first time. Called locked.
func (s *Session) tableSetOf(m *structmap.Model) *tableSet {
	// a batch registers its objects one by one, all of one model
	if s.lastSet.m == m && s.lastSet.t != nil {
		return s.lastSet.t
	}
	t := s.tableSetFor(m)
	s.lastSet.m, s.lastSet.t = m, t
	return t
}

// tableSetOfModel is a table set and a model of its table.
type tableSetOfModel struct {
	m *structmap.Model
	t *tableSet
}

func (s *Session) tableSetFor(m *structmap.Model) *tableSet {
	word := tableWord(m)
	t := s.byTable[word]
	if t == nil {
		if s.byTable == nil {
			s.byTable = map[string]*tableSet{}
		}
		t = &tableSet{size: m.Type.Size()}
		s.byTable[word] = t
	}
	return t
}

// reserve makes room for n more objects of m on shard in the identity map (grown once when it
// holds fewer than n) and in m's table set, before a batch of them is registered. Called locked.
func (s *Session) reserve(m *structmap.Model, shard string, n int) {
	if n > 8 {
		ints := len(m.PK) == 1 && m.PK[0].Type == reflect.TypeFor[int64]()
		s.identity.reserve(identityKey{t: m.Type, shard: shard}, n, ints)
	}
	t := s.tableSetOf(m)
	t.ins = slices.Grow(t.ins, n)
	t.ptrs = slices.Grow(t.ptrs, n)
	t.ok = slices.Grow(t.ok, n)
	t.raws = slices.Grow(t.raws, n*int(t.size))
}

// memory is the struct's own bytes, at most as many as its table's set compares.
func (in *instance) memory() []byte {
	return unsafe.Slice((*byte)(in.addr), min(in.set.size, in.model.Type.Size()))
}

// takeRaw records the struct's bytes as the state last loaded or flushed. A pointer, slice or
// map field is recorded as the reference, as the snapshot does. Two models of one table of
// different sizes are compared field by field.
func (in *instance) takeRaw() {
	if t := in.set; t != nil && t.size == in.model.Type.Size() {
		copy(t.raw(in.pos), in.memory())
		t.ok[in.pos] = true
	}
}

// forgetRaw makes the next comparison field by field.
func (in *instance) forgetRaw() {
	if in.set != nil {
		in.set.ok[in.pos] = false
	}
}

// unchanged reports cheaply, without false positives, that the object still holds its snapshot.
// false means "compare field by field".
func (in *instance) unchanged() bool {
	t := in.set
	return t != nil && t.ok[in.pos] && bytes.Equal(t.raw(in.pos), in.memory()) && in.refsUnchanged()
}

type noAutoflushKey struct{}

// NoAutoflush returns a context under which the session's requests do not autoflush, like
// SQLAlchemy's no_autoflush block: queries issued with it do not send pending changes first.
// Flush and Commit still flush.
func NoAutoflush(ctx context.Context) context.Context {
	return context.WithValue(ctx, noAutoflushKey{}, true)
}

func autoflushOff(ctx context.Context) bool {
	off, _ := ctx.Value(noAutoflushKey{}).(bool)
	return off
}
