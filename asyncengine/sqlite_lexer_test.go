package asyncengine_test

import (
	"path/filepath"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sqliteEngine(t *testing.T) *asyncengine.Engine {
	return newEngine(t, "sqlite:///"+filepath.Join(t.TempDir(), "r.db"), "")
}

// SQLite's block comments do not nest: the text after "*/" is a second statement, which
// the one-statement guard of a SQLite Query must refuse (it did before a228c1c/2f81c79).
func TestSQLiteCommentsDoNotNest(t *testing.T) {
	e := sqliteEngine(t)
	ctx := enginetest.Context(t)
	_, err := e.Exec(ctx, "CREATE TABLE t (id integer)")
	require.NoError(t, err)
	_, err = e.Exec(ctx, "INSERT INTO t VALUES (1), (2)")
	require.NoError(t, err)
	_, qerr := e.Query(ctx, "SELECT 1 AS x; /* /* */ DELETE FROM t")
	r, err := e.Query(ctx, "SELECT count(*) FROM t")
	require.NoError(t, err)
	var n int64
	require.NoError(t, r.One(&n))
	assert.Error(t, qerr, "two statements")
	assert.EqualValues(t, 2, n, "the hidden DELETE ran")
}

// a :name after a SQLite comment holding "/*" is a placeholder.
func TestSQLiteNamedAfterACommentHoldingAnOpening(t *testing.T) {
	e := sqliteEngine(t)
	ctx := enginetest.Context(t)
	r, err := e.Query(ctx, "SELECT /* see /* */ :v AS v", asyncengine.Named{"v": 7})
	require.NoError(t, err)
	var n int64
	require.NoError(t, r.One(&n))
	assert.EqualValues(t, 7, n)
}

// SQLite's $1 among Named values was bound to the first named value.
func TestSQLiteDollarAmongNamed(t *testing.T) {
	e := sqliteEngine(t)
	ctx := enginetest.Context(t)
	_, err := e.Query(ctx, "SELECT :a AS a, $1 AS b", asyncengine.Named{"a": 1})
	var ae *asyncengine.ArgumentError
	require.ErrorAs(t, err, &ae, "an unbound $1 is refused as ?NNN is")
	assert.Contains(t, err.Error(), "positional placeholder $1")
}
