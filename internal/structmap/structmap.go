// Package structmap maps Go structs to tables by their `db` tags and converts driver values into
// Go fields.
package structmap

import (
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
	Unique  bool   // `unique`: CreateAll adds a UNIQUE constraint
	Indexed bool   // `index`: CreateAll creates an index on the column
	SQLType string // `type=…` (the last option): the column type CreateAll declares, instead of one from the Go type
	Pos     int    // its position in its model's Fields
	Refers  bool   // its value refers to memory outside the struct (one of its model's Refs)
}

// Model is a mapped struct type.
type Model struct {
	Type   reflect.Type
	Table  string
	Fields []*Field
	PK     []*Field
	Rels   []*Rel // fields tagged `rel`: relationships, resolved by the session
	// Refs are the indexes into Fields of the fields whose values refer to memory outside the
	// struct (pointers, slices, maps, interfaces, and structs or arrays holding one): a copy of
	// the struct's bytes does not hold what they refer to. A time.Time is a value: its location
	// pointer names its zone.
	Refs     []int
	byColumn map[string]*Field
}

// Rel is a field that holds related objects rather than a column: its `rel` tag is read by the
// session, which resolves it against the related model.
type Rel struct {
	Name  string // Go field name
	Index []int
	Type  reflect.Type
	Tag   string
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
	for i, f := range m.Fields {
		if refersOutside(f.Type, 0) {
			m.Refs = append(m.Refs, i)
			f.Refers = true
		}
	}
	return m, nil
}

func refersOutside(t reflect.Type, depth int) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface, reflect.Chan, reflect.Func, reflect.UnsafePointer:
		return true
	case reflect.Array:
		return refersOutside(t.Elem(), depth+1)
	case reflect.Struct:
		if t == reflect.TypeFor[time.Time]() {
			return false
		}
		if depth > 8 {
			return true
		}
		for i := range t.NumField() {
			if refersOutside(t.Field(i).Type, depth+1) {
				return true
			}
		}
	}
	return false
}

func collect(m *Model, t reflect.Type, index []int) error {
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		idx := append(append([]int(nil), index...), i)
		tag, hasTag := sf.Tag.Lookup("db")
		if tag == "-" || !sf.IsExported() {
			continue
		}
		if rel, ok := sf.Tag.Lookup("rel"); ok {
			m.Rels = append(m.Rels, &Rel{Name: sf.Name, Index: idx, Type: sf.Type, Tag: rel})
			continue
		}
		if sf.Anonymous && !hasTag && sf.Type.Kind() == reflect.Struct {
			if err := collect(m, sf.Type, idx); err != nil {
				return err
			}
			continue
		}
		if !hasTag && holdsModel(sf.Type) {
			// most likely a relationship whose rel tag was forgotten: stored as a JSON column
			// it would be written silently, and never joined
			return &MappingError{Type: t.String(), Field: sf.Name, Reason: fmt.Sprintf("%s holds mapped objects (%s has db tags or a TableName method): make it a *T or []*T tagged `rel:\"fk=…\"` for a relationship, `db:\"-\"` to leave it out, or give it a `db` tag to store it in a column as JSON", sf.Name, sf.Type)}
		}
		parts := strings.Split(tag, ",")
		f := &Field{Name: sf.Name, Column: parts[0], Index: idx, Type: sf.Type}
		if f.Column == "" {
			f.Column = SnakeCase(sf.Name)
		}
		for k, opt := range parts[1:] {
			opt = strings.TrimSpace(opt)
			if strings.HasPrefix(opt, "type=") {
				// the last option: the type may hold commas, numeric(12,2)
				f.SQLType = strings.TrimPrefix(strings.TrimSpace(strings.Join(parts[k+1:], ",")), "type=")
				break
			}
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
			case opt == "unique":
				f.Unique = true
			case opt == "index":
				f.Indexed = true
			case opt == "":
			default:
				return &MappingError{Type: t.String(), Field: sf.Name, Reason: fmt.Sprintf("unknown tag option %q (allowed: pk, default, fk=table.column, unique, index, type=SQL type)", opt)}
			}
		}
		if _, dup := m.byColumn[f.Column]; dup {
			return &MappingError{Type: t.String(), Field: sf.Name, Reason: fmt.Sprintf("column %q is mapped twice", f.Column)}
		}
		f.Pos = len(m.Fields)
		m.Fields = append(m.Fields, f)
		m.byColumn[f.Column] = f
		if f.PK {
			m.PK = append(m.PK, f)
		}
	}
	return nil
}

// holdsModel reports a struct type mapped to a table, or a pointer or slice of them: one with
// `db` tags or a TableName method.
func holdsModel(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return false
	}
	if _, ok := reflect.New(t).Interface().(Tabler); ok {
		return true
	}
	for i := range t.NumField() {
		if _, ok := t.Field(i).Tag.Lookup("db"); ok {
			return true
		}
	}
	return false
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
