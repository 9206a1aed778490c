package asyncsession

import (
	"reflect"
	"strings"
	"sync"
	"unsafe"

	"github.com/gosqla/gosqla/internal/structmap"
)

// snapshotOf copies a field's value so that a change made in place is seen as a change: through
// a pointer (*obj.Email = "x"), to an element of a slice or a key of a map, or inside a struct
// that holds one (a pgtype.Numeric's *big.Int set in place, a JSON column's nested slice). The
// copy shares nothing the value can change in place, unexported fields included.
func snapshotOf(v reflect.Value) any {
	cp := reflect.New(v.Type()).Elem()
	budget := snapshotBudget
	deepCopy(cp, v, &budget)
	return cp.Interface()
}

// snapshotBudget bounds the values one snapshot copies: a graph of pointers larger than that
// (or one that refers back to itself) is shared past it, and compared by the pointers it holds.
const snapshotBudget = 1 << 14

// deepCopy sets dst, settable and of src's type, to a copy of src (see snapshotOf). A
// unique.Handle is shared: what it points to never changes, and a value is known by the handle
// itself (a netip.Addr's zone), which a copy would not be.
func deepCopy(dst, src reflect.Value, budget *int) {
	if *budget <= 0 || !refersOutside(src.Type()) || isHandle(src.Type()) {
		dst.Set(src)
		return
	}
	*budget--
	switch src.Kind() {
	case reflect.Pointer:
		if !src.IsNil() {
			p := reflect.New(src.Type().Elem())
			deepCopy(p.Elem(), src.Elem(), budget)
			dst.Set(p)
		}
	case reflect.Slice:
		if !src.IsNil() {
			s := reflect.MakeSlice(src.Type(), src.Len(), src.Len())
			copyElems(s, src, budget)
			dst.Set(s)
		}
	case reflect.Array:
		copyElems(dst, src, budget)
	case reflect.Map:
		if !src.IsNil() {
			m := reflect.MakeMapWithSize(src.Type(), src.Len())
			for it := src.MapRange(); it.Next(); {
				v := reflect.New(src.Type().Elem()).Elem()
				deepCopy(v, it.Value(), budget)
				m.SetMapIndex(it.Key(), v)
			}
			dst.Set(m)
		}
	case reflect.Interface:
		if !src.IsNil() {
			e := src.Elem()
			v := reflect.New(e.Type()).Elem()
			deepCopy(v, e, budget)
			dst.Set(v)
		}
	case reflect.Struct:
		if !src.CanAddr() {
			tmp := reflect.New(src.Type()).Elem()
			tmp.Set(src)
			src = tmp
		}
		dst.Set(src) // every field, unexported ones too; those that refer outside are copied below
		for i := range src.NumField() {
			sf, df := src.Field(i), dst.Field(i)
			if !refersOutside(sf.Type()) {
				continue
			}
			if !sf.CanInterface() {
				// an unexported field (a big.Int's words): reached through its address
				sf = reflect.NewAt(sf.Type(), unsafe.Pointer(sf.UnsafeAddr())).Elem()
				df = reflect.NewAt(df.Type(), unsafe.Pointer(df.UnsafeAddr())).Elem()
			}
			deepCopy(df, sf, budget)
		}
	default:
		// channels and functions are shared
		dst.Set(src)
	}
}

// isHandle reports a unique.Handle[T].
func isHandle(t reflect.Type) bool {
	return t.PkgPath() == "unique" && strings.HasPrefix(t.Name(), "Handle[")
}

// copyElems copies the elements of src, a slice or an array, into dst of the same length.
func copyElems(dst, src reflect.Value, budget *int) {
	if !refersOutside(src.Type().Elem()) {
		reflect.Copy(dst, src)
		return
	}
	for i := range src.Len() {
		deepCopy(dst.Index(i), src.Index(i), budget)
	}
}

var refersCache sync.Map // reflect.Type → bool

// refersOutside is structmap.RefersOutside, remembered by type.
func refersOutside(t reflect.Type) bool {
	if v, ok := refersCache.Load(t); ok {
		return v.(bool)
	}
	r := structmap.RefersOutside(t)
	refersCache.Store(t, r)
	return r
}
