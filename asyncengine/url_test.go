package asyncengine_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every URL form the README lists opens the driver it names and reaches the database.
func TestURLForms(t *testing.T) {
	verifyNoLeaks(t)
	pg := enginetest.NewDatabase(t)
	ctx := enginetest.Context(t)
	for _, tc := range []struct{ url, dialect string }{
		{pg, "postgresql"},
		{strings.Replace(pg, "postgresql://", "postgres://", 1), "postgresql"},
		{strings.Replace(pg, "postgresql://", "postgresql+pgx://", 1), "postgresql"},
		{strings.Replace(pg, "postgresql://", "postgresql+stdlib://", 1), "postgresql"},
		{"sqlite:///" + filepath.Join(t.TempDir(), "abs.db"), "sqlite"},
		{"sqlite://", "sqlite"},
	} {
		e := newEngine(t, tc.url, "")
		assert.Equal(t, tc.dialect, e.Dialect().Name(), tc.url)
		r, err := e.Query(ctx, "SELECT 40 + 2")
		require.NoError(t, err, tc.url)
		v, err := r.Scalar()
		require.NoError(t, err)
		assert.EqualValues(t, 42, v, tc.url)
		if tc.dialect == "postgresql" {
			r, err = e.Query(ctx, "SELECT current_database()")
			require.NoError(t, err)
			db, _ := r.Scalar()
			assert.Equal(t, enginetest.DatabaseName(pg), db, tc.url)
		}
	}
}

// sqlite:///name.db is relative to the working directory, sqlite:////abs/name.db absolute.
func TestSQLiteRelativePath(t *testing.T) {
	verifyNoLeaks(t)
	dir := t.TempDir()
	t.Chdir(dir)
	e, err := asyncengine.New("sqlite:///relative.db")
	require.NoError(t, err)
	_, err = e.Exec(context.Background(), "CREATE TABLE here (x integer)")
	require.NoError(t, err)
	require.NoError(t, e.Close())
	_, err = os.Stat(filepath.Join(dir, "relative.db"))
	require.NoError(t, err, "the file is created in the working directory")
	_, err = os.Stat("/relative.db")
	assert.True(t, os.IsNotExist(err), "not at the root")
}
