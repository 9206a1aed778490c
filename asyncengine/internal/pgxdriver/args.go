package pgxdriver

import (
	"encoding/json"
	"fmt"
	"reflect"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/gosqla/gosqla/asyncengine/driver"
	"github.com/gosqla/gosqla/asyncengine/internal/argmap"
	"github.com/gosqla/gosqla/internal/pgarrays"
)

// untypedParams reports the execution modes that send parameters without asking the server for
// their types (statement_cache=none, simple): pgx then encodes every value as text of no type
// (OID 0), and the server gives it the type its place in the statement calls for.
func untypedParams(mode pgx.QueryExecMode) bool {
	return mode == pgx.QueryExecModeExec || mode == pgx.QueryExecModeSimpleProtocol
}

// textArgs readies args for a statement whose parameter types the server is not asked for.
// pgx finds a text encoding of no type for most values, and those are left as they are (a
// []byte stays bytea). A value whose encoding pgx takes from the column's type alone is written
// as the text PostgreSQL holds for it, encoded by m's own codecs as a described statement would
// encode it: a [16]byte (a pointer to one, a named type over one) as a uuid, a slice of them as
// a uuid[], a struct or a map as json. The server reads that text into the column's type, so a
// uuid or a json/jsonb column stores what statement_cache=describe stores. Any other such value
// is refused, naming the argument and the way out, before anything is sent.
func textArgs(m *pgtype.Map, args []any) ([]any, error) {
	if len(args) > 0 && isOption(args[0]) {
		// pgx's per-query options (a QueryExecMode, pgx.NamedArgs, …) lead the arguments and
		// are pgx's to read; a rewriter's arguments are encoded by pgx as they are
		return args, nil
	}
	return argmap.Map(args, func(i int, a any) (any, bool, error) {
		v, changed, err := textArg(m, a)
		if err != nil {
			return nil, false, fmt.Errorf("argument $%d: %w", i+1, err)
		}
		return v, changed, nil
	})
}

// isOption reports the values pgx reads as options of a query rather than as its arguments.
func isOption(a any) bool {
	switch a.(type) {
	case pgx.QueryExecMode, pgx.QueryRewriter, pgx.QueryResultFormats, pgx.QueryResultFormatsByOID:
		return true
	}
	return false
}

var byteType = reflect.TypeFor[byte]()

// isUUIDBytes reports the types pgx writes as a uuid given the column's type: [16]byte and the
// named types over it.
func isUUIDBytes(t reflect.Type) bool {
	return t.Kind() == reflect.Array && t.Len() == 16 && t.Elem() == byteType
}

// deref is the type a pointer type points to, through every level; t itself when no pointer.
func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// textArg is a value pgx can encode without a type: a itself (changed false), or a's text (see
// textArgs).
func textArg(m *pgtype.Map, a any) (v any, changed bool, err error) {
	switch a.(type) {
	case nil, string, []byte, int64, int32, int, int16, float64, float32, bool, time.Time, json.RawMessage:
		return a, false, nil // the common cases, without a look at the type map
	}
	if plain, ok := pgarrays.Plain(a); ok {
		return plain, true, nil
	}
	rv := reflect.ValueOf(a)
	switch rv.Kind() {
	case reflect.Chan, reflect.Func, reflect.Map, reflect.Pointer, reflect.UnsafePointer, reflect.Interface, reflect.Slice:
		if rv.IsNil() {
			return a, false, nil // pgx writes NULL for it, as in every mode
		}
	}
	if m.PlanEncode(0, pgtype.TextFormatCode, a) != nil {
		return a, false, nil
	}
	t := deref(rv.Type())
	var oid uint32
	switch {
	case isUUIDBytes(t):
		oid = pgtype.UUIDOID
	case (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && isUUIDBytes(deref(t.Elem())):
		oid = pgtype.UUIDArrayOID // the keys a session's loads compare with = ANY($1)
	case t.Kind() == reflect.Struct, t.Kind() == reflect.Map:
		oid = pgtype.JSONBOID
	default:
		return nil, false, &untypedError{value: a}
	}
	b, err := m.Encode(oid, pgtype.TextFormatCode, a, nil)
	if err != nil {
		name := "json"
		if oid != pgtype.JSONBOID {
			name = "uuid"
		}
		return nil, false, &untypedError{value: a, as: name, err: err}
	}
	if b == nil {
		return nil, true, nil // a pointer to a nil pointer: NULL, as pgx writes it
	}
	return string(b), true, nil
}

// untypedError is an argument with no text form of its own: without the parameter's type
// (statement_cache=none, simple) its meaning cannot be chosen, or the text of the type it was
// taken for (a struct or map as json) could not be made.
type untypedError struct {
	value any
	as    string // the type it was taken for, when its text could not be made
	err   error
}

func (e *untypedError) Error() string {
	if e.err != nil {
		return fmt.Sprintf("%T cannot be written as %s: %v", e.value, e.as, e.err)
	}
	return fmt.Sprintf("%T has no text form pgx can choose without the parameter's type, which statement_cache=none and simple do not ask the server for", e.value)
}

func (e *untypedError) Unwrap() error { return e.err }

// untypedArgs is textArgs, its refusal the driver's *driver.EncodeError saying what to do.
func untypedArgs(m *pgtype.Map, args []any) ([]any, error) {
	args, err := textArgs(m, args)
	if err != nil {
		return nil, &driver.EncodeError{Err: err, Fix: "use statement_cache=describe, or pass the value's text as a string"}
	}
	return args, nil
}
