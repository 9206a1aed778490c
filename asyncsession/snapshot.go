package asyncsession

import (
	"bytes"
	"database/sql/driver"
	"encoding/json"
	"reflect"
	"time"
)

// snapshotOf records a field's value so that a change made in place is seen as a change: what
// a pointer, slice or map (or an interface holding one) refers to is copied one level down; a
// struct that refers outside itself is recorded as the value its Value method writes (a
// pgtype.Numeric, whose *big.Int can be set in place), or else as its JSON (a struct stored as
// JSON, with slices and maps inside). Anything else, and a struct neither writes, is the value
// itself.
func snapshotOf(v reflect.Value) any {
	if v.Kind() == reflect.Struct || v.Kind() == reflect.Array {
		if vr, ok := v.Interface().(driver.Valuer); ok {
			if dv, err := vr.Value(); err == nil {
				if b, isBytes := dv.([]byte); isBytes {
					dv = bytes.Clone(b)
				}
				return written{dv}
			}
		} else if b, err := json.Marshal(v.Interface()); err == nil {
			return marshaled(b)
		}
	}
	return copyOf(v)
}

// written is the snapshot of a field as the value its Value method wrote.
type written struct{ v driver.Value }

// marshaled is the snapshot of a struct field as its JSON.
type marshaled []byte

// copyOf copies what v refers to one level down: a slice's elements, a pointer's target, a
// map's entries, and those of a slice, pointer or map an interface holds.
func copyOf(v reflect.Value) any {
	switch {
	case v.Kind() == reflect.Interface && !v.IsNil():
		return copyOf(v.Elem())
	case v.Kind() == reflect.Slice && !v.IsNil():
		cp := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		reflect.Copy(cp, v)
		return cp.Interface()
	case v.Kind() == reflect.Pointer && !v.IsNil():
		// a write through the pointer (*obj.Email = "x") changes what it points to
		cp := reflect.New(v.Type().Elem())
		cp.Elem().Set(v.Elem())
		return cp.Interface()
	case v.Kind() == reflect.Map && !v.IsNil():
		cp := reflect.MakeMapWithSize(v.Type(), v.Len())
		for it := v.MapRange(); it.Next(); {
			cp.SetMapIndex(it.Key(), it.Value())
		}
		return cp.Interface()
	}
	return v.Interface()
}

// differs reports whether cur differs from its snapshot.
func differs(cur reflect.Value, snap any) bool {
	if m, ok := snap.(marshaled); ok {
		b, err := json.Marshal(cur.Interface())
		return err != nil || !bytes.Equal(b, m)
	}
	w, ok := snap.(written)
	if !ok {
		return !reflect.DeepEqual(cur.Interface(), snap)
	}
	dv, err := cur.Interface().(driver.Valuer).Value()
	if err != nil {
		return true // written, its error is the write's
	}
	switch a := dv.(type) {
	case []byte:
		b, ok := w.v.([]byte)
		return !ok || !bytes.Equal(a, b)
	case time.Time:
		b, ok := w.v.(time.Time)
		return !ok || !a.Equal(b) || a.Location() != b.Location()
	}
	return dv != w.v
}

// snapshotValued reports a snapshot that is a field's value as such (a statement argument, a
// value written back), not only what a comparison reads: a pointer, slice, map or interface.
func snapshotValued(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
		return true
	}
	return false
}
