package asyncsession

import (
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/gosqla/gosqla/internal/structmap"
)

// objectModel returns the mapping of obj, a non-nil pointer to a mapped struct.
func objectModel(obj any) (*structmap.Model, error) {
	if obj == nil {
		return nil, fmt.Errorf("gosqla: got nil; pass a pointer to an object: %w", ErrNilObject)
	}
	if v := reflect.ValueOf(obj); v.Kind() == reflect.Pointer && v.IsNil() {
		return nil, fmt.Errorf("gosqla: got a nil %T; pass a pointer to an object: %w", obj, ErrNilObject)
	}
	return modelOf(obj)
}

// modelOf returns the mapping of obj's type, which must be a pointer to a mapped struct.
func modelOf(obj any) (*structmap.Model, error) {
	t := reflect.TypeOf(obj)
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil, &MappingError{Type: fmt.Sprintf("%T", obj), Reason: "pass a pointer to a mapped struct"}
	}
	return usableModel(t)
}

// usableModel returns the mapping of t (a struct type, or a pointer to one) when the session can
// use it: it has a primary key and passes checkModel.
func usableModel(t reflect.Type) (*structmap.Model, error) {
	m, err := structmap.Of(t)
	if err != nil {
		return nil, err
	}
	if len(m.PK) == 0 {
		return nil, &MappingError{Type: m.Type.String(), Reason: "no primary key; tag one field `db:\"id,pk\"`"}
	}
	if err := checkModel(m); err != nil {
		return nil, err
	}
	return m, nil
}

var modelChecks sync.Map // reflect.Type → error (nil: the model can be used)

// checkModel runs, once per type, the checks of a model's first use, before anything is sent: its
// fields can be stored, its relationships resolve.
func checkModel(m *structmap.Model) error {
	if v, ok := modelChecks.Load(m.Type); ok {
		err, _ := v.(error)
		return err
	}
	err := unstorable(m)
	if err == nil {
		_, err = relationsOf(m)
	}
	modelChecks.Store(m.Type, err)
	return err
}

// unstorable returns a *MappingError for a field whose Go type no database stores (a channel, a
// function): found at the model's first use, not when a statement carrying it fails.
func unstorable(m *structmap.Model) error {
	for _, f := range m.Fields {
		t := f.Type
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch t.Kind() {
		case reflect.Chan, reflect.Func, reflect.UnsafePointer, reflect.Complex64, reflect.Complex128:
			return &MappingError{Type: m.Type.String(), Field: f.Name,
				Reason: fmt.Sprintf("no SQL type for Go type %s; map a basic type, time.Time, []byte, a slice, map or struct (JSON), or a type implementing driver.Valuer and sql.Scanner, or tag the field `db:\"-\"`", f.Type)}
		}
	}
	return nil
}

// wholeRows checks that a result's columns are exactly the model's: a row missing a column
// would sit in the identity map as if whole, and a column with no field would be lost.
func wholeRows(m *structmap.Model, columns []string) error {
	seen := make(map[string]bool, len(columns))
	for _, c := range columns {
		if m.Column(c) == nil {
			return &MappingError{Type: m.Type.String(), Reason: fmt.Sprintf("the query returns column %q, which no field maps; select only mapped columns, or read it with Execute", c)}
		}
		seen[c] = true
	}
	var missing []string
	for _, f := range m.Fields {
		if !seen[f.Column] {
			missing = append(missing, f.Column)
		}
	}
	if len(missing) > 0 {
		return &MappingError{Type: m.Type.String(), Reason: fmt.Sprintf("the query does not return column(s) %s: Select loads whole objects into the identity map; select every mapped column, or read partial rows with Execute", strings.Join(missing, ", "))}
	}
	return nil
}
