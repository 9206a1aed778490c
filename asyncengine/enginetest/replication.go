package enginetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Replication is a primary with streaming standbys (PostgreSQL's own physical replication: each
// standby is a pg_basebackup -R copy of the primary running as a hot standby, so it serves reads).
//
// Tests that stop the primary or promote a standby start one of their own with NewReplication;
// tests that only read, pause or resume replay may share the test binary's with SharedReplication.
// Both need the local server binaries (initdb, postgres, pg_basebackup), DATABASE_URL or not.
type Replication struct {
	Primary  *Cluster
	Standbys []*Cluster
}

// ReplicationOptions shapes a replication set.
type ReplicationOptions struct {
	// Standbys is how many streaming standbys to start (default 1).
	Standbys int
	// Synchronous makes the primary wait, at COMMIT, until a standby has flushed the commit
	// (synchronous_standby_names = '*', synchronous_commit = on): an acknowledged write survives
	// the primary's loss. Without it replication is asynchronous.
	Synchronous bool
}

// replicationSettings are the primary's: the test clusters' full_page_writes=off would make a
// base backup unusable, and their synchronous_commit=off would hold a commit from the standbys
// until the WAL writer's next flush (wal_writer_delay), where PostgreSQL's default, kept here,
// sends it as the COMMIT returns (fsync stays off: a flush costs nothing).
var replicationSettings = []string{"-c", "full_page_writes=on", "-c", "synchronous_commit=on", "-c", "wal_level=replica",
	"-c", "max_wal_senders=10", "-c", "wal_keep_size=256MB", "-c", "hot_standby=on",
	"-c", "wal_retrieve_retry_interval=100ms"}

// NewReplication starts a primary and its standbys for this test; they are stopped when the test
// ends.
func NewReplication(t testing.TB, opts ReplicationOptions) *Replication {
	t.Helper()
	r, err := startReplication(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.shutdown)
	return r
}

var (
	sharedReplOnce sync.Once
	sharedRepl     *Replication
	sharedReplErr  error
)

// SharedReplication returns the test binary's replication set (a primary and two asynchronous
// standbys), starting it on first use; Main stops it. Tests sharing it must not stop or promote
// its servers, and should each use their own database (r.Primary.NewDatabase) and resume any
// replay they pause.
func SharedReplication(t testing.TB) *Replication {
	t.Helper()
	sharedReplOnce.Do(func() {
		sharedRepl, sharedReplErr = startReplication(ReplicationOptions{Standbys: 2})
	})
	if sharedReplErr != nil {
		t.Fatal(sharedReplErr)
	}
	return sharedRepl
}

func stopSharedReplication() {
	if sharedRepl != nil {
		sharedRepl.shutdown()
	}
}

func startReplication(opts ReplicationOptions) (*Replication, error) {
	if opts.Standbys <= 0 {
		opts.Standbys = 1
	}
	settings := replicationSettings
	if opts.Synchronous {
		settings = append(settings[:len(settings):len(settings)], "-c", "synchronous_standby_names=*", "-c", "synchronous_commit=on")
	}
	p, err := start(settings...)
	if err != nil {
		return nil, err
	}
	r := &Replication{Primary: p}
	if err := r.addStandbys(opts.Standbys); err != nil {
		r.shutdown()
		return nil, err
	}
	return r, nil
}

// addStandbys makes one base backup of the primary, copies it for each further standby (a copy
// costs far less than a second backup), and starts them all as streaming hot standbys.
func (r *Replication) addStandbys(n int) error {
	var first string
	for i := 1; i <= n; i++ {
		s, err := newCluster()
		if err != nil {
			return err
		}
		// the name is also the application_name its WAL receiver reports (pg_stat_replication)
		s.settings = append(append([]string(nil), replicationSettings...), "-c", "cluster_name=standby"+strconv.Itoa(i))
		data := filepath.Join(s.dir, "data")
		mk := s.command("pg_basebackup", "-D", data, "-h", "127.0.0.1", "-p", strconv.Itoa(r.Primary.port),
			"-U", "postgres", "-R", "-X", "stream", "-c", "fast", "--no-sync")
		if first != "" {
			mk = s.command("cp", "-a", first, data)
			mk.Path = "/bin/cp" // not a server binary
		}
		if out, err := mk.CombinedOutput(); err != nil {
			os.RemoveAll(s.dir)
			return fmt.Errorf("enginetest: making a standby: %s failed: %v\n%s", mk.Path, err, out)
		}
		if first == "" {
			first = data
		}
		r.Standbys = append(r.Standbys, s)
	}
	for _, s := range r.Standbys {
		if err := s.startServer(); err != nil {
			return err
		}
	}
	return nil
}

func (r *Replication) shutdown() {
	for _, s := range r.Standbys {
		s.shutdown()
	}
	r.Primary.shutdown()
}

// NewDatabase creates a database on the primary for this test, waits until every standby has it,
// and returns its name (URLs gives its URLs). It is dropped when the test ends.
func (r *Replication) NewDatabase(t testing.TB) string {
	t.Helper()
	db := DatabaseName(r.Primary.NewDatabase(t))
	r.CatchUp(t)
	return db
}

// URLs returns the URL of database db on the primary and on each standby.
func (r *Replication) URLs(db string) (primary string, standbys []string) {
	for _, s := range r.Standbys {
		standbys = append(standbys, s.URL(db))
	}
	return r.Primary.URL(db), standbys
}

// Port is the port the cluster listens on (127.0.0.1).
func (c *Cluster) Port() int { return c.port }

// query runs one admin query on the cluster's postgres database and scans its single row.
func (c *Cluster) query(ctx context.Context, sql string, dest ...any) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.QueryRow(ctx, sql).Scan(dest...)
}

func (c *Cluster) mustQuery(t testing.TB, sql string, dest ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.query(ctx, sql, dest...); err != nil {
		t.Fatalf("enginetest: %s: %v", sql, err)
	}
}

// Promote makes a standby a primary (pg_promote) and waits until it accepts writes.
func (c *Cluster) Promote(t testing.TB) {
	t.Helper()
	var ok bool
	c.mustQuery(t, "SELECT pg_promote(wait => true, wait_seconds => 30)", &ok)
	if !ok {
		t.Fatalf("enginetest: promotion did not finish within 30s")
	}
}

// Follow points a standby at another primary (after a promotion); it goes on replaying from the
// new primary's timeline.
func (c *Cluster) Follow(t testing.TB, primary *Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres", primary.port)
	if err := c.admin(ctx, "ALTER SYSTEM SET primary_conninfo = '"+conn+"'"); err != nil {
		t.Fatalf("enginetest: %v", err)
	}
	var ok bool
	c.mustQuery(t, "SELECT pg_reload_conf()", &ok)
}

// InRecovery reports whether the server is a standby.
func (c *Cluster) InRecovery(t testing.TB) bool {
	t.Helper()
	var in bool
	c.mustQuery(t, "SELECT pg_is_in_recovery()", &in)
	return in
}

// PauseReplay stops a standby from applying WAL (pg_wal_replay_pause): it goes on receiving it
// but serves reads as of the pause, which creates replication lag on demand. ResumeReplay ends
// it. PauseReplay waits until replay has actually stopped.
func (c *Cluster) PauseReplay(t testing.TB) {
	t.Helper()
	var s string
	c.mustQuery(t, "SELECT pg_wal_replay_pause()::text", &s)
	c.waitFor(t, "replay to pause", "SELECT pg_get_wal_replay_pause_state() = 'paused'")
}

// ResumeReplay lets a paused standby apply WAL again.
func (c *Cluster) ResumeReplay(t testing.TB) {
	t.Helper()
	var s string
	c.mustQuery(t, "SELECT pg_wal_replay_resume()::text", &s)
}

// waitFor polls a query returning one boolean until it is true, for up to 30s.
func (c *Cluster) waitFor(t testing.TB, what, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatalf("enginetest: waiting for %s: %v", what, err)
	}
	defer conn.Close(context.Background())
	for {
		var done bool
		if err := conn.QueryRow(ctx, sql, args...).Scan(&done); err != nil {
			t.Fatalf("enginetest: waiting for %s: %v", what, err)
		}
		if done {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// WALPosition is the primary's current WAL insert position (pg_current_wal_insert_lsn: past every
// commit made so far, flushed or not), as text
// ("0/3000148"); on a standby, the last position it replayed (pg_last_wal_replay_lsn).
func (c *Cluster) WALPosition(t testing.TB) string {
	t.Helper()
	var lsn string
	c.mustQuery(t, "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_insert_lsn() END)::text", &lsn)
	return lsn
}

// WaitReplay waits until the standby has replayed the WAL up to position lsn.
func (c *Cluster) WaitReplay(t testing.TB, lsn string) {
	t.Helper()
	c.waitFor(t, "replay to reach "+lsn, "SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)", lsn)
}

// CatchUp waits until every running standby has replayed all the WAL the primary has written.
func (r *Replication) CatchUp(t testing.TB) {
	t.Helper()
	lsn := r.Primary.WALPosition(t)
	for _, s := range r.Standbys {
		s.WaitReplay(t, lsn)
	}
}
