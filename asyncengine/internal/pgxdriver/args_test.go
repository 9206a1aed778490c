package pgxdriver

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

type rowID [16]byte

type doc struct {
	A int `json:"a"`
}

// Without parameter types, the values pgx encodes itself pass untouched (the same slice when
// none changes); a uuid's bytes and a json document become the text the server reads into
// their column, as a described statement would encode them; the rest is refused by argument.
func TestTextArgs(t *testing.T) {
	m := pgtype.NewMap()
	u := [16]byte{0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11}
	const ut = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"

	kept := []any{nil, "s", []byte{1, 2}, int64(3), json.RawMessage(`{}`), []string{"a"}, (*[16]byte)(nil), map[string]any(nil), (*doc)(nil), pgtype.UUID{Bytes: u, Valid: true}}
	got, err := textArgs(m, kept)
	if err != nil {
		t.Fatal(err)
	}
	if &got[0] != &kept[0] {
		t.Errorf("arguments pgx encodes are passed as they are, got a copy: %#v", got)
	}

	uu := u
	id := rowID(u)
	pp := &uu
	var nilPtr *[16]byte
	for _, tc := range []struct {
		arg  any
		want any
	}{
		{u, ut},
		{&uu, ut},
		{id, ut},
		{&id, ut},
		{&pp, ut},
		{&nilPtr, nil},
		{doc{A: 1}, `{"a":1}`},
		{&doc{A: 2}, `{"a":2}`},
		{map[string]any{"k": []int{1}}, `{"k":[1]}`},
		{map[string]any{}, `{}`},
		{[][16]byte{u, u}, "{" + ut + "," + ut + "}"},
		{[]*rowID{&id, nil}, "{" + ut + ",NULL}"},
		{[]rowID{}, "{}"},
	} {
		got, err := textArgs(m, []any{"x", tc.arg})
		if err != nil {
			t.Errorf("%T: %v", tc.arg, err)
			continue
		}
		if got[0] != "x" || got[1] != tc.want {
			t.Errorf("%#v: got %#v, want %#v", tc.arg, got[1], tc.want)
		}
	}

	// pgx's own per-query options are pgx's to read
	named := pgx.NamedArgs{"u": u}
	got, err = textArgs(m, []any{named})
	if err != nil || len(got) != 1 {
		t.Errorf("NamedArgs: %v %v", got, err)
	}

	for _, bad := range []any{make(chan int), struct{ F func() }{}, [4]byte{}} {
		_, err := textArgs(m, []any{"x", bad})
		var ue *untypedError
		if !errors.As(err, &ue) {
			t.Errorf("%T: want an *untypedError, got %v", bad, err)
			continue
		}
		if msg := err.Error(); msg[:len("argument $2: ")] != "argument $2: " {
			t.Errorf("%T: the error names the argument: %q", bad, msg)
		}
	}
}
