// Package structmap maps Go structs to tables by their `db` tags and converts driver values into
// Go fields.
package structmap

import (
	"database/sql"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"
	"unicode"
)

// Field is one mapped column.
type Field struct {
	Name    string // Go field name
	Column  string
	Index   []int
	Type    reflect.Type
	PK      bool
	Default bool   // the server fills it when the Go value is zero (serial, DEFAULT …)
	FK      string // "table.column" it references, or ""
}

// Model is a mapped struct type.
type Model struct {
	Type     reflect.Type
	Table    string
	Fields   []*Field
	PK       []*Field
	byColumn map[string]*Field
}

// Column returns the field mapped to column name.
func (m *Model) Column(name string) *Field { return m.byColumn[name] }

// MappingError reports a type that cannot be mapped, naming what to fix.
type MappingError struct {
	Type   string
	Field  string
	Reason string
}

func (e *MappingError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("gosqla: cannot map %s.%s: %s", e.Type, e.Field, e.Reason)
	}
	return fmt.Sprintf("gosqla: cannot map %s: %s", e.Type, e.Reason)
}

// Tabler is implemented by models that name their table.
type Tabler interface{ TableName() string }

var cache sync.Map // reflect.Type → *Model or error

// Of returns the model of struct type t (or pointer to one). Results are cached per type.
func Of(t reflect.Type) (*Model, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if v, ok := cache.Load(t); ok {
		if err, isErr := v.(error); isErr {
			return nil, err
		}
		return v.(*Model), nil
	}
	m, err := build(t)
	if err != nil {
		cache.Store(t, err)
		return nil, err
	}
	actual, _ := cache.LoadOrStore(t, m)
	return actual.(*Model), nil
}

var timeType = reflect.TypeFor[time.Time]()

func build(t reflect.Type) (*Model, error) {
	if t.Kind() != reflect.Struct {
		return nil, &MappingError{Type: t.String(), Reason: "not a struct; map a struct type with `db` tags"}
	}
	m := &Model{Type: t, byColumn: map[string]*Field{}}
	if tn, ok := reflect.New(t).Interface().(Tabler); ok {
		m.Table = tn.TableName()
	} else {
		m.Table = SnakeCase(t.Name())
	}
	if err := collect(m, t, nil); err != nil {
		return nil, err
	}
	if len(m.Fields) == 0 {
		return nil, &MappingError{Type: t.String(), Reason: "no exported fields to map"}
	}
	return m, nil
}

func collect(m *Model, t reflect.Type, index []int) error {
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		idx := append(append([]int(nil), index...), i)
		tag, hasTag := sf.Tag.Lookup("db")
		if tag == "-" || !sf.IsExported() {
			continue
		}
		if sf.Anonymous && !hasTag && sf.Type.Kind() == reflect.Struct {
			if err := collect(m, sf.Type, idx); err != nil {
				return err
			}
			continue
		}
		parts := strings.Split(tag, ",")
		f := &Field{Name: sf.Name, Column: parts[0], Index: idx, Type: sf.Type}
		if f.Column == "" {
			f.Column = SnakeCase(sf.Name)
		}
		for _, opt := range parts[1:] {
			opt = strings.TrimSpace(opt)
			switch {
			case opt == "pk":
				f.PK = true
			case opt == "default" || opt == "auto" || opt == "generated":
				f.Default = true
			case strings.HasPrefix(opt, "fk="):
				ref := strings.TrimPrefix(opt, "fk=")
				if !strings.Contains(ref, ".") {
					return &MappingError{Type: t.String(), Field: sf.Name, Reason: fmt.Sprintf("fk=%q must name table.column", ref)}
				}
				f.FK = ref
			case opt == "":
			default:
				return &MappingError{Type: t.String(), Field: sf.Name, Reason: fmt.Sprintf("unknown tag option %q (allowed: pk, default, fk=table.column)", opt)}
			}
		}
		if _, dup := m.byColumn[f.Column]; dup {
			return &MappingError{Type: t.String(), Field: sf.Name, Reason: fmt.Sprintf("column %q is mapped twice", f.Column)}
		}
		m.Fields = append(m.Fields, f)
		m.byColumn[f.Column] = f
		if f.PK {
			m.PK = append(m.PK, f)
		}
	}
	return nil
}

// SnakeCase turns a Go name into a column or table name: AuthorID → author_id.
func SnakeCase(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		if unicode.IsUpper(r) {
			if i > 0 && (unicode.IsLower(rs[i-1]) || (i+1 < len(rs) && unicode.IsLower(rs[i+1]) && unicode.IsUpper(rs[i-1]))) {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// ConvertError reports a value that cannot be stored in a destination.
type ConvertError struct {
	Column string
	From   string
	To     string
}

func (e *ConvertError) Error() string {
	col := ""
	if e.Column != "" {
		col = fmt.Sprintf(" for column %q", e.Column)
	}
	return fmt.Sprintf("gosqla: cannot store %s into %s%s", e.From, e.To, col)
}

// Assign stores a driver value into dst (settable). NULL stores the zero value; a pointer
// destination gets nil for NULL.
func Assign(dst reflect.Value, src any) error {
	if dst.CanAddr() {
		if sc, ok := dst.Addr().Interface().(sql.Scanner); ok {
			return sc.Scan(src)
		}
	}
	if src == nil {
		dst.SetZero()
		return nil
	}
	if dst.Kind() == reflect.Pointer {
		v := reflect.New(dst.Type().Elem())
		if err := Assign(v.Elem(), src); err != nil {
			return err
		}
		dst.Set(v)
		return nil
	}
	sv := reflect.ValueOf(src)
	if dst.Kind() == reflect.Interface {
		dst.Set(sv)
		return nil
	}
	st := sv.Type()
	switch {
	case st.AssignableTo(dst.Type()):
		dst.Set(sv)
		return nil
	case dst.Kind() == reflect.String && st.Kind() == reflect.Slice && st.Elem().Kind() == reflect.Uint8:
		dst.SetString(string(sv.Bytes()))
		return nil
	case dst.Kind() == reflect.Slice && dst.Type().Elem().Kind() == reflect.Uint8 && st.Kind() == reflect.String:
		dst.SetBytes([]byte(sv.String()))
		return nil
	case dst.Kind() == reflect.Bool && isInt(st.Kind()):
		dst.SetBool(sv.Int() != 0)
		return nil
	case isNumber(dst.Kind()) && isNumber(st.Kind()):
		dst.Set(sv.Convert(dst.Type()))
		return nil
	case dst.Type() == timeType && st.Kind() == reflect.String:
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999-07:00", "2006-01-02 15:04:05.999999999", "2006-01-02"} {
			if t, err := time.Parse(layout, sv.String()); err == nil {
				dst.Set(reflect.ValueOf(t))
				return nil
			}
		}
	case st.ConvertibleTo(dst.Type()) && st.Kind() == dst.Kind():
		dst.Set(sv.Convert(dst.Type()))
		return nil
	}
	return &ConvertError{From: st.String(), To: dst.Type().String()}
}

func isInt(k reflect.Kind) bool { return k >= reflect.Int && k <= reflect.Uint64 }
func isNumber(k reflect.Kind) bool {
	return isInt(k) || k == reflect.Float32 || k == reflect.Float64
}

// Value returns the value of field f of struct v, as a driver argument: nil pointers are NULL.
func (f *Field) Value(v reflect.Value) any {
	fv := v.FieldByIndex(f.Index)
	if fv.Kind() == reflect.Pointer && fv.IsNil() {
		return nil
	}
	return fv.Interface()
}

// IsZero reports whether field f of v holds its zero value (a server default then applies).
func (f *Field) IsZero(v reflect.Value) bool { return v.FieldByIndex(f.Index).IsZero() }
