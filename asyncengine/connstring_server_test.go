package asyncengine_test

import (
	"net/url"
	"strings"
	"testing"

	"context"
	"os"
	"path/filepath"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDriverSettingsReachTheServer: encoded spaces in driver keys arrive as spaces, on both
// PostgreSQL drivers and in keyword/value form.
func TestDriverSettingsReachTheServer(t *testing.T) {
	pg := enginetest.NewDatabase(t)
	u, err := url.Parse(pg)
	require.NoError(t, err)
	kv := "host=" + u.Hostname() + " port=" + u.Port() + " user=" + u.User.Username() + " dbname=" + strings.Trim(u.Path, "/") +
		" sslmode=disable application_name='nightly etl' options='-c search_path=etl,public' pool_size=2"
	for name, s := range map[string]string{
		"pgx":           enginetest.WithQuery(pg, "application_name=nightly%20etl&options=-c%20search_path%3Detl,public&pool_size=2"),
		"stdlib":        strings.Replace(enginetest.WithQuery(pg, "application_name=nightly%20etl&options=-c%20search_path%3Detl,public"), "postgresql://", "postgresql+stdlib://", 1),
		"keyword/value": kv,
	} {
		t.Run(name, func(t *testing.T) {
			e, err := asyncengine.New(s)
			require.NoError(t, err)
			defer e.Close()
			r, err := e.Query(enginetest.Context(t), "SELECT current_setting('application_name'), current_setting('search_path')")
			require.NoError(t, err)
			var app, path string
			require.NoError(t, r.One(&app, &path))
			assert.Equal(t, "nightly etl", app)
			assert.Equal(t, "etl,public", path)
		})
	}
}

// TestDefaultQueryExecModeIsHonoured: pgx's own key is the statement cache policy, so the simple
// protocol prepares nothing on the server.
func TestDefaultQueryExecModeIsHonoured(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t), "default_query_exec_mode=simple_protocol")
	assert.Equal(t, asyncengine.CacheSimple, e.Config().StatementCache)
	c, err := e.Connect(enginetest.Context(t))
	require.NoError(t, err)
	defer c.Close()
	for i := 0; i < 3; i++ {
		_, err = c.Exec(enginetest.Context(t), "SELECT $1::int", i)
		require.NoError(t, err)
	}
	r, err := c.Query(enginetest.Context(t), "SELECT count(*) FROM pg_prepared_statements")
	require.NoError(t, err)
	n, err := r.Scalar()
	require.NoError(t, err)
	assert.EqualValues(t, 0, n)
}

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
