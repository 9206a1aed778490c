package asyncengine_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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

// 100 000 RunSync tasks submitted at once with the default worker_queue (65 536): while the
// first tasks hold every worker, the queue fills, the submitter waits for room (through its
// context) instead of failing, no task times out on the pool, and every future completes with
// its own value.
func TestRunSync100kWithDefaultQueue(t *testing.T) {
	verifyNoLeaks(t)
	e := newEngine(t, "sqlite:///"+filepath.Join(t.TempDir(), "q.db"), "pool_size=5&max_overflow=10&pool_timeout=5")
	ctx := enginetest.Context(t)
	const n = 100_000
	release := make(chan struct{})
	let := sync.OnceFunc(func() { close(release) })
	t.Cleanup(let)
	futures := make([]*asyncengine.Future[int], n)
	submitted := make(chan struct{})
	go func() {
		defer close(submitted)
		for i := range futures {
			futures[i] = asyncengine.RunSync(ctx, e, func(ctx context.Context, c *asyncengine.Conn) (int, error) {
				<-release
				return i, nil
			})
		}
	}()
	waitUntil(t, 30*time.Second, "the default worker queue to fill", func() bool { return e.Workers().Stats().Queued == 65536 })
	select {
	case <-submitted:
		t.Fatal("all tasks were submitted while the queue was full")
	default:
	}
	let()
	<-submitted
	got, err := asyncengine.All(ctx, futures...)
	require.NoError(t, err)
	for i, v := range got {
		if v != i {
			t.Fatalf("future %d resolved to %d", i, v)
		}
	}
	st := e.Stats()
	assert.Zero(t, st.Timeouts, "no task timed out on the pool")
	assert.Equal(t, 0, st.CheckedOut)
}
