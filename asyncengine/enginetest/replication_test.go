package enginetest_test

import (
	"context"
	"testing"
	"time"

	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// connect opens a plain pgx connection, closed when the test ends.
func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func exec(t *testing.T, url, sql string) {
	t.Helper()
	_, err := connect(t, url).Exec(context.Background(), sql)
	require.NoError(t, err)
}

func count(t *testing.T, url string) int {
	t.Helper()
	var n int
	require.NoError(t, connect(t, url).QueryRow(context.Background(), "SELECT count(*) FROM t").Scan(&n))
	return n
}

// The kit's whole life cycle: stream, lag on demand, catch up, lose the primary, promote.
func TestReplication(t *testing.T) {
	r := enginetest.NewReplication(t, enginetest.ReplicationOptions{Standbys: 2})
	db := r.NewDatabase(t)
	primary, standbys := r.URLs(db)
	require.False(t, r.Primary.InRecovery(t))
	require.True(t, r.Standbys[0].InRecovery(t))

	exec(t, primary, "CREATE TABLE t (id int)")
	exec(t, primary, "INSERT INTO t VALUES (1)")
	r.CatchUp(t)
	require.Equal(t, 1, count(t, standbys[0]))
	require.Equal(t, 1, count(t, standbys[1]))

	r.Standbys[0].PauseReplay(t)
	exec(t, primary, "INSERT INTO t VALUES (2)")
	r.Standbys[1].WaitReplay(t, r.Primary.WALPosition(t))
	require.Equal(t, 1, count(t, standbys[0]), "a paused standby serves reads as of the pause")
	require.Equal(t, 2, count(t, standbys[1]))
	r.Standbys[0].ResumeReplay(t)
	r.CatchUp(t)
	require.Equal(t, 2, count(t, standbys[0]))

	r.Primary.Stop(t)
	r.Standbys[0].Promote(t)
	require.False(t, r.Standbys[0].InRecovery(t))
	exec(t, standbys[0], "INSERT INTO t VALUES (3)")
	r.Standbys[1].Follow(t, r.Standbys[0])
	r.Standbys[1].WaitReplay(t, r.Standbys[0].WALPosition(t))
	require.Equal(t, 3, count(t, standbys[1]))
}
