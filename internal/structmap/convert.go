package structmap

import (
	"database/sql"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"
)

// ConvertError reports a column value that cannot be stored in its destination: the column, its
// database type, the Go type asked for, and what to use instead. It unwraps to the driver's error.
type ConvertError struct {
	Column string // the result column
	DBType string // the column's database type, "" when the driver does not report it
	To     string // the destination's Go type
	Null   bool   // the value was NULL
	Fix    string // what destination would hold the value
	Err    error  // the driver's (or database/sql's) reason
}

func (e *ConvertError) Error() string {
	typ := ""
	if e.DBType != "" {
		typ = " (" + e.DBType + ")"
	}
	msg := fmt.Sprintf("gosqla: cannot scan column %q%s into %s", e.Column, typ, e.To)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if e.Fix != "" {
		msg += "; " + e.Fix
	}
	return msg
}

func (e *ConvertError) Unwrap() error { return e.Err }

// FixFor says which destination holds a value of database type dbType that did not fit one of Go
// type to.
func FixFor(to reflect.Type, dbType string, null bool, pg bool) string {
	switch {
	case null && pg:
		return fmt.Sprintf("the value is NULL: scan into *%s, sql.Null[%s] or a pgtype type", to, to)
	case null:
		return fmt.Sprintf("the value is NULL: scan into *%s or sql.Null[%s]", to, to)
	}
	column := "every value of the column"
	if pg {
		column = "every " + sqlName(dbType) + " value"
	}
	switch to.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		switch sqlName(dbType) {
		case "numeric", "real", "double precision", "REAL", "NUMERIC":
			if pg {
				return fmt.Sprintf("scan into a type that holds %s: pgtype.Numeric or string (exact), float64 (rounded)", column)
			}
			return fmt.Sprintf("scan into a type that holds %s: float64 or string", column)
		}
		return fmt.Sprintf("scan into a type that holds %s: int64, a pointer to it, or string", column)
	case reflect.Float32, reflect.Float64:
		return fmt.Sprintf("scan into a type that holds %s: float64, string, or (numeric) pgtype.Numeric", column)
	}
	if pg {
		return fmt.Sprintf("scan into a type that holds %s: string, a pgtype type or any (the package documentation lists the types)", column)
	}
	return fmt.Sprintf("scan into a type that holds %s: string, []byte or any", column)
}

// sqlName spells PostgreSQL's internal type names as SQL does: int8 is bigint, not Go's int8.
func sqlName(dbType string) string {
	switch dbType {
	case "int8":
		return "bigint"
	case "int4":
		return "integer"
	case "int2":
		return "smallint"
	case "float8":
		return "double precision"
	case "float4":
		return "real"
	case "bool":
		return "boolean"
	}
	return dbType
}

var (
	errNull      = errors.New("NULL into a type that cannot hold NULL")
	timeType     = reflect.TypeFor[time.Time]()
	scannerType  = reflect.TypeFor[sql.Scanner]()
	timeLayouts  = []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999-07:00", "2006-01-02 15:04:05.999999999", "2006-01-02"}
	errNotNumber = errors.New("not a number")
)

// Assign stores a database/sql value into dest (a non-nil pointer) as database/sql's Scan does:
// an sql.Scanner decides for itself; NULL needs a pointer, an interface or a Scanner; integers are
// range checked and take no fractions; text converts to numbers only when it parses exactly. On
// error dest is unchanged.
func Assign(dest any, src any) error {
	if sc, ok := dest.(sql.Scanner); ok {
		return scanInto(sc, src)
	}
	dv := reflect.ValueOf(dest)
	if dv.Kind() != reflect.Pointer || dv.IsNil() {
		return fmt.Errorf("destination %T is not a non-nil pointer", dest)
	}
	return assign(dv.Elem(), src)
}

func assign(dst reflect.Value, src any) error {
	if reflect.PointerTo(dst.Type()).Implements(scannerType) {
		v := reflect.New(dst.Type())
		if err := scanInto(v.Interface().(sql.Scanner), src); err != nil {
			return err
		}
		dst.Set(v.Elem())
		return nil
	}
	if src == nil {
		switch dst.Kind() {
		case reflect.Pointer, reflect.Interface, reflect.Slice, reflect.Map:
			dst.SetZero()
			return nil
		}
		return errNull
	}
	if dst.Kind() == reflect.Pointer {
		v := reflect.New(dst.Type().Elem())
		if err := assign(v.Elem(), src); err != nil {
			return err
		}
		dst.Set(v)
		return nil
	}
	sv := reflect.ValueOf(src)
	if dst.Kind() == reflect.Interface {
		if !sv.Type().AssignableTo(dst.Type()) {
			return fmt.Errorf("%T does not implement %s", src, dst.Type())
		}
		dst.Set(sv)
		return nil
	}
	if b, ok := src.([]byte); ok && dst.Kind() == reflect.Slice && dst.Type().Elem().Kind() == reflect.Uint8 {
		dst.SetBytes(append([]byte(nil), b...))
		return nil
	}
	if sv.Type().AssignableTo(dst.Type()) {
		dst.Set(sv)
		return nil
	}
	switch dst.Kind() {
	case reflect.String:
		s, ok := asText(src)
		if !ok {
			break
		}
		dst.SetString(s)
		return nil
	case reflect.Slice:
		if dst.Type().Elem().Kind() != reflect.Uint8 {
			break
		}
		s, ok := asText(src)
		if !ok {
			break
		}
		dst.SetBytes([]byte(s))
		return nil
	case reflect.Bool:
		switch x := src.(type) {
		case int64:
			if x == 0 || x == 1 {
				dst.SetBool(x == 1)
				return nil
			}
			return fmt.Errorf("%d is not a boolean (0 or 1)", x)
		case string, []byte:
			s, _ := asText(x)
			b, err := strconv.ParseBool(s)
			if err != nil {
				return err
			}
			dst.SetBool(b)
			return nil
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := asInt(src)
		if err != nil {
			return err
		}
		if dst.OverflowInt(n) {
			return fmt.Errorf("%d is out of range for %s", n, dst.Type())
		}
		dst.SetInt(n)
		return nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := asInt(src)
		if err != nil {
			return err
		}
		if n < 0 || dst.OverflowUint(uint64(n)) {
			return fmt.Errorf("%d is out of range for %s", n, dst.Type())
		}
		dst.SetUint(uint64(n))
		return nil
	case reflect.Float32, reflect.Float64:
		f, err := asFloat(src)
		if err != nil {
			return err
		}
		if dst.OverflowFloat(f) {
			return fmt.Errorf("%g is out of range for %s", f, dst.Type())
		}
		dst.SetFloat(f)
		return nil
	case reflect.Array:
		// a fixed-size byte array (a uuid's [16]byte) is stored as a blob of its bytes
		if b, ok := src.([]byte); ok && dst.Type().Elem().Kind() == reflect.Uint8 {
			if len(b) != dst.Len() {
				return fmt.Errorf("a %d-byte value does not fit %s", len(b), dst.Type())
			}
			reflect.Copy(dst, reflect.ValueOf(b))
			return nil
		}
	case reflect.Struct:
		if dst.Type() != timeType {
			break
		}
		if s, ok := asText(src); ok {
			for _, layout := range timeLayouts {
				if t, err := time.Parse(layout, s); err == nil {
					dst.Set(reflect.ValueOf(t))
					return nil
				}
			}
		}
	}
	if s, ok := asText(src); ok {
		// what SQLite's arguments were encoded as (asyncengine's sqldriver): a text form, or JSON
		tmp := reflect.New(dst.Type())
		if u, ok := tmp.Interface().(encoding.TextUnmarshaler); ok {
			if err := u.UnmarshalText([]byte(s)); err != nil {
				return err
			}
			dst.Set(tmp.Elem())
			return nil
		}
		switch dst.Kind() {
		case reflect.Slice, reflect.Map, reflect.Struct, reflect.Array:
			if err := json.Unmarshal([]byte(s), tmp.Interface()); err != nil {
				return err
			}
			dst.Set(tmp.Elem())
			return nil
		}
	}
	if st := sv.Type(); st.Kind() == dst.Kind() && st.ConvertibleTo(dst.Type()) {
		dst.Set(sv.Convert(dst.Type()))
		return nil
	}
	return fmt.Errorf("unsupported conversion from %T", src)
}

// scanInto is sc.Scan(src), given src's text form when the scanner takes text only (a decimal or
// uuid type reading SQLite's number or blob).
func scanInto(sc sql.Scanner, src any) error {
	err := sc.Scan(src)
	if err == nil {
		return nil
	}
	if _, isText := src.(string); !isText {
		if s, ok := asText(src); ok && sc.Scan(s) == nil {
			return nil
		}
	}
	if f, isFloat := src.(float64); isFloat && sc.Scan(strconv.FormatFloat(f, 'f', -1, 64)) == nil {
		// a decimal type that reads no exponent: SQLite's REAL 99999999.99 is 9.999999999e+07
		// in its shortest form
		return nil
	}
	return err
}

func asText(src any) (string, bool) {
	switch x := src.(type) {
	case string:
		return x, true
	case []byte:
		return string(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	case time.Time:
		return x.Format(time.RFC3339Nano), true
	}
	return "", false
}

func asInt(src any) (int64, error) {
	switch x := src.(type) {
	case int64:
		return x, nil
	case float64:
		if x != math.Trunc(x) || x < math.MinInt64 || x >= math.MaxInt64 {
			return 0, fmt.Errorf("%g is not an integer in range", x)
		}
		return int64(x), nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case string, []byte:
		s, _ := asText(x)
		return strconv.ParseInt(s, 10, 64)
	}
	sv := reflect.ValueOf(src)
	switch {
	case sv.CanInt():
		return sv.Int(), nil
	case sv.CanUint() && sv.Uint() <= math.MaxInt64:
		return int64(sv.Uint()), nil
	}
	return 0, fmt.Errorf("%T: %w", src, errNotNumber)
}

func asFloat(src any) (float64, error) {
	switch x := src.(type) {
	case float64:
		return x, nil
	case int64:
		return float64(x), nil
	case string, []byte:
		s, _ := asText(x)
		return strconv.ParseFloat(s, 64)
	}
	sv := reflect.ValueOf(src)
	switch {
	case sv.CanFloat():
		return sv.Float(), nil
	case sv.CanInt():
		return float64(sv.Int()), nil
	}
	return 0, fmt.Errorf("%T: %w", src, errNotNumber)
}
