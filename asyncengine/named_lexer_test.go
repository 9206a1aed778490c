package asyncengine_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// PostgreSQL's block comments nest: ":x" below is inside the comment.
func TestNamedInNestedComment(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t), "")
	ctx := enginetest.Context(t)
	sql := "SELECT :v::int AS v /* outer /* inner */ still a comment :x */"
	_, err := e.Exec(ctx, "SELECT 1 /* a /* b */ :x */") // the server takes it as is
	require.NoError(t, err)
	r, err := e.Query(ctx, sql, asyncengine.Named{"v": 1})
	require.NoError(t, err, "the :x is commented out")
	assert.Equal(t, 1, r.Len())
}

// A dollar-quote tag may hold non-ASCII letters (PostgreSQL's dolq_start is [A-Za-z\200-\377_]).
func TestNamedInUnicodeDollarQuote(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t), "")
	ctx := enginetest.Context(t)
	r, err := e.Query(ctx, "SELECT $é$ :x $é$ AS a, :v::text AS b", asyncengine.Named{"v": "y"})
	require.NoError(t, err)
	row := r.Rows()[0]
	assert.Equal(t, " :x ", row[0])
	assert.Equal(t, "y", row[1])
}

// An escape string continued on the next line stays an escape string.
func TestNamedInContinuedEscapeString(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t), "")
	ctx := enginetest.Context(t)
	sql := "SELECT E'a'\n'\\' :x' AS a, :v::text AS b"
	r, err := e.Query(ctx, sql, asyncengine.Named{"v": "y"})
	require.NoError(t, err)
	row := r.Rows()[0]
	assert.Equal(t, "a' :x", row[0])
	assert.Equal(t, "y", row[1])
}

// One name bound both as an IN list and as a value (an array for = ANY).
func TestNamedListAndValue(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t), "")
	sql, args, err := e.Dialect().Bind("SELECT 1 WHERE 2 = ANY(:ids) AND 3 IN (:ids)", []any{asyncengine.Named{"ids": []int64{2, 3}}})
	require.NoError(t, err)
	assert.Equal(t, "SELECT 1 WHERE 2 = ANY($1) AND 3 IN ($2, $3)", sql)
	assert.Equal(t, []any{[]int64{2, 3}, int64(2), int64(3)}, args)
	ctx := enginetest.Context(t)
	r, err := e.Query(ctx, "SELECT 1 WHERE 2 = ANY(:ids) AND 3 IN (:ids)", asyncengine.Named{"ids": []int64{2, 3}})
	require.NoError(t, err)
	assert.Equal(t, 1, r.Len())
	r, err = e.Query(ctx, "SELECT 1 WHERE 3 IN (:ids) AND 2 = ANY(:ids)", asyncengine.Named{"ids": []int64{2, 3}})
	require.NoError(t, err)
	assert.Equal(t, 1, r.Len())
}

// When the name inside the literal is also bound, the literal's text is rewritten.
func TestNamedInsideLiteralsIsLeftAlone(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t), "")
	ctx := enginetest.Context(t)
	for _, sql := range []string{"SELECT $é$ :v $é$ AS a, :v::text AS b", "SELECT E'a'\n'\\' :v' AS a, :v::text AS b"} {
		r, err := e.Query(ctx, sql, asyncengine.Named{"v": "y"})
		require.NoError(t, err, sql)
		row := r.Rows()[0]
		assert.Contains(t, row[0], ":v", sql)
		assert.Equal(t, "y", row[1], sql)
	}
}

// A multi-statement string the server runs as two, not refused.
func TestOneStatementAfterUnicodeName(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t), "")
	err := e.Dialect().OneStatement("SELECT 1 AS é$$; SELECT 2; --$$")
	require.Error(t, err)
}

// SQLite quotes identifiers in brackets too.
func TestNamedBesideSQLiteBrackets(t *testing.T) {
	e := newEngine(t, "sqlite:///"+t.TempDir()+"/x.db", "")
	ctx := enginetest.Context(t)
	r, err := e.Query(ctx, "SELECT 1 AS [a:b], :v AS c", asyncengine.Named{"v": 2})
	require.NoError(t, err)
	assert.Equal(t, []string{"a:b", "c"}, r.Columns())
}

// A name with a non-ASCII letter.
func TestNamedUnicodeName(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t), "")
	sql, args, err := e.Dialect().Bind("SELECT :naïve", []any{asyncengine.Named{"naïve": 1}})
	require.NoError(t, err)
	assert.Equal(t, "SELECT $1", sql)
	assert.Equal(t, []any{1}, args)
	_, _, err = e.Dialect().Bind("SELECT :naïve", []any{asyncengine.Named{"na": 1}})
	require.Error(t, err, "binds :na and leaves ïve behind")
}

// More parameters than the protocol carries are refused before anything is sent: pgx wrote the
// message and the connection broke.
func TestTooManyParameters(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t), "")
	ctx := enginetest.Context(t)
	ids := make([]int64, 70000)
	for i := range ids {
		ids[i] = int64(i)
	}
	_, err := e.Query(ctx, "SELECT 1 WHERE 1 IN (:ids)", asyncengine.Named{"ids": ids})
	var ae *asyncengine.ArgumentError
	require.ErrorAs(t, err, &ae)
	assert.Contains(t, err.Error(), "70000 parameters, more than the 65535")
	var b strings.Builder
	args := make([]any, len(ids))
	for i := range ids {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("$" + strconv.Itoa(i+1))
		args[i] = ids[i]
	}
	_, err = e.Query(ctx, "SELECT 1 WHERE 1 IN ("+b.String()+")", args...)
	require.ErrorAs(t, err, &ae)
	r, err := e.Query(ctx, "SELECT 1 WHERE 1 = ANY(:ids)", asyncengine.Named{"ids": ids})
	require.NoError(t, err)
	assert.Equal(t, 1, r.Len())
	assert.Zero(t, e.Stats().Invalidations)
}
