package asyncengine

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBindArgs(t *testing.T) {
	sql, args, err := bindArgs(dialectPostgres, "SELECT :a, :b::int, ':c', \":d\", $$ :e $$, :a -- :f\n /* :g */ FROM t", []any{Named{"a": 1, "b": 2}})
	require.NoError(t, err)
	assert.Equal(t, "SELECT $1, $2::int, ':c', \":d\", $$ :e $$, $1 -- :f\n /* :g */ FROM t", sql)
	assert.Equal(t, []any{1, 2}, args)

	sql, args, err = bindArgs(dialectSQLite, "SELECT :a, :b, :a", []any{Named{"a": 1, "b": 2}})
	require.NoError(t, err)
	assert.Equal(t, "SELECT ?, ?, ?", sql)
	assert.Equal(t, []any{1, 2, 1}, args)

	_, _, err = bindArgs(dialectPostgres, "SELECT :a, :missing", []any{Named{"a": 1}})
	var ae *ArgumentError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "missing", ae.Missing)
	assert.ErrorIs(t, err, ErrInvalidArgument)
	assert.Contains(t, err.Error(), `"missing"`)

	_, _, err = bindArgs(dialectPostgres, "SELECT $1, $2", []any{1})
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, 2, ae.Want)
	_, _, err = bindArgs(dialectSQLite, "SELECT ?", []any{1, 2})
	require.ErrorIs(t, err, ErrInvalidArgument)
	_, _, err = bindArgs(dialectPostgres, "SELECT '{}'::jsonb ? 'k'", nil)
	require.NoError(t, err, "? is an operator in PostgreSQL")
}

func FuzzScanSQL(f *testing.F) {
	for _, s := range []string{"SELECT :a", "$$x$$", "'it''s'", "/* :x", "$tag$ :x $tag$", "::int", "$1 ?"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		out, _, err := bindArgs(dialectPostgres, sql, []any{Named{}})
		if err == nil && out != sql {
			t.Fatalf("rewrote %q to %q without arguments", sql, out)
		}
	})
}
