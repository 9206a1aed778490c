// Package pgarrays sends the columns of a batch of rows as PostgreSQL arrays without encoding them
// element by element through the driver's generic array path, which boxes every element in an
// interface and plans its encoding: for a batch of thousands of rows that was most of the time
// spent before its pipeline left.
//
// The values are the driver's own: the slices keep their underlying types, and on a type map
// without Install (or for a parameter type or format the fast path does not know) the driver
// encodes them as it encodes any []int64 or []string. With Install, the first encoding of each
// parameter type is done both ways: the driver's own encoding of a one-element sample decides
// whether the parameter is one this package writes (binary format, the element type it writes),
// and anything else is left to the driver.
package pgarrays

import (
	"encoding/binary"
	"slices"

	"github.com/jackc/pgx/v5/pgtype"
)

// Int8s is a column of bigint values.
type Int8s []int64

// Int4s is a column of integer values.
type Int4s []int32

// Texts is a column of text values.
type Texts []string

// Element type OIDs the fast path writes.
const (
	int8OID = 20
	int4OID = 23
	textOID = 25
)

// Plain is the underlying slice of one of the package's columns (ok), for a path that encodes
// values by their types without the parameter's (an untyped parameter has no array type to
// write, and the driver finds none for a named slice type).
func Plain(v any) (plain any, ok bool) {
	switch v := v.(type) {
	case Int8s:
		return []int64(v), true
	case Int4s:
		return []int32(v), true
	case Texts:
		return []string(v), true
	}
	return v, false
}

// Install lets m encode Int8s, Int4s and Texts on the fast path; calling it again on the same map
// does nothing.
func Install(m *pgtype.Map) {
	if len(m.TryWrapEncodePlanFuncs) > 0 {
		if wrapper, _, _ := m.TryWrapEncodePlanFuncs[0](Int4s(nil)); isPlan(wrapper) {
			return
		}
	}
	m.TryWrapEncodePlanFuncs = append([]pgtype.TryWrapEncodePlanFunc{tryWrap}, m.TryWrapEncodePlanFuncs...)
}

func isPlan(w pgtype.WrappedEncodePlanNextSetter) bool {
	_, ok := w.(*plan)
	return ok
}

// tryWrap is consulted when the parameter type's codec has no plan for the value (the driver's
// array codec takes only its own array interface): the driver plans the underlying slice as
// next, and the fast plan stands in front of it.
func tryWrap(value any) (pgtype.WrappedEncodePlanNextSetter, any, bool) {
	plain, ok := Plain(value)
	if !ok {
		return nil, nil, false
	}
	var sample any
	switch value.(type) {
	case Int8s:
		sample = Int8s{-2}
	case Int4s:
		sample = Int4s{-2}
	case Texts:
		sample = Texts{"é"}
	}
	return &plan{sample: sample}, plain, true
}

// plan encodes one of the package's columns, or hands it to next, the driver's own plan for the
// underlying slice, when next does not write what the fast path writes.
type plan struct {
	next   pgtype.EncodePlan
	sample any // one of the package's columns
	fast   bool
}

// SetNext takes the driver's plan and decides, from its encoding of the sample, whether the fast
// path writes the same bytes: a one-dimensional binary array of the fast path's element type,
// whose sample element is written as the fast path writes it.
func (p *plan) SetNext(next pgtype.EncodePlan) {
	p.next = next
	plain, _ := Plain(p.sample)
	got, err := next.Encode(plain, nil)
	if err != nil {
		return
	}
	want, _ := appendFast(nil, p.sample)
	p.fast = string(got) == string(want)
}

func (p *plan) Encode(value any, buf []byte) ([]byte, error) {
	if p.fast {
		if out, ok := appendFast(buf, value); ok {
			return out, nil
		}
	}
	plain, _ := Plain(value)
	return p.next.Encode(plain, buf)
}

// appendFast writes one of the package's columns as a binary array; a nil one (NULL) is not
// written (ok false).
func appendFast(buf []byte, value any) ([]byte, bool) {
	switch v := value.(type) {
	case Int8s:
		if v != nil {
			return appendInts(buf, int8OID, 8, v), true
		}
	case Int4s:
		if v != nil {
			return appendInts(buf, int4OID, 4, v), true
		}
	case Texts:
		if v != nil {
			return appendTexts(buf, v), true
		}
	}
	return buf, false
}

// header writes a one-dimensional array's header: one dimension of n elements from 1, no NULLs.
func header(buf []byte, elem uint32, n int) []byte {
	buf = binary.BigEndian.AppendUint32(buf, 1)
	buf = binary.BigEndian.AppendUint32(buf, 0)
	buf = binary.BigEndian.AppendUint32(buf, elem)
	buf = binary.BigEndian.AppendUint32(buf, uint32(n))
	return binary.BigEndian.AppendUint32(buf, 1)
}

// appendInts writes integers of size bytes, whose element type is elem.
func appendInts[T int32 | int64](buf []byte, elem uint32, size int, v []T) []byte {
	buf = header(buf, elem, len(v))
	buf = slices.Grow(buf, (4+size)*len(v))
	for _, x := range v {
		buf = binary.BigEndian.AppendUint32(buf, uint32(size))
		if size == 8 {
			buf = binary.BigEndian.AppendUint64(buf, uint64(x))
		} else {
			buf = binary.BigEndian.AppendUint32(buf, uint32(x))
		}
	}
	return buf
}

func appendTexts(buf []byte, v []string) []byte {
	buf = header(buf, textOID, len(v))
	n := 4 * len(v)
	for _, s := range v {
		n += len(s)
	}
	buf = slices.Grow(buf, n)
	for _, s := range v {
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(s)))
		buf = append(buf, s...)
	}
	return buf
}
