package asyncengine_test

import (
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gosqla/gosqla/asyncengine"
)

// A named type over [16]byte is a uuid, as [16]byte is: writes take it as one.
type accountID [16]byte

// CreateAll's column types: a named uuid type, and nil-able types allowing NULL.
func TestColumnTypes(t *testing.T) {
	e, err := asyncengine.New("sqlite://:memory:")
	require.NoError(t, err)
	defer e.Close()
	// no connection is opened before the first use
	p, err := asyncengine.New("postgresql://nobody@127.0.0.1:1/none")
	require.NoError(t, err)
	defer p.Close()
	pg := p.Dialect()
	for _, c := range []struct {
		v        any
		typ      string
		nullable bool
	}{
		{[16]byte{}, "uuid", false},
		{accountID{}, "uuid", false},
		{(*accountID)(nil), "uuid", true},
		{[]string(nil), "text[]", true},
		{map[string]int(nil), "jsonb", true},
		{struct{ A int }{}, "jsonb", false},
		{[]byte(nil), "bytea", true},
	} {
		typ, nullable, err := pg.ColumnType(reflect.TypeOf(c.v))
		require.NoError(t, err, "%T", c.v)
		assert.Equal(t, c.typ, typ, "%T", c.v)
		assert.Equal(t, c.nullable, nullable, "%T", c.v)
	}
	typ, _, err := e.Dialect().ColumnType(reflect.TypeFor[accountID]())
	require.NoError(t, err)
	assert.Equal(t, "blob", typ, "SQLite's closest")
}
