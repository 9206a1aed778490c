// Package enginetest runs tests against a real, throwaway PostgreSQL, like net/http/httptest does
// for HTTP servers.
//
// Call Main from TestMain: the first test that asks for a database starts one cluster for the
// whole test binary (initdb and postgres from PATH or the distribution's PostgreSQL directory,
// run as the postgres user when the tests run as root), and Main stops it when the tests end.
// Each NewDatabase call gives a test its own database, dropped when the test ends. With
// DATABASE_URL set, databases are created on that server instead.
//
//	func TestMain(m *testing.M) { enginetest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		url := enginetest.NewDatabase(t)
//		e, _ := asyncengine.New(url)
//		…
//	}
//
// Context gives a test a context that ends with it; EachBackend runs a test once per driver
// (native pgx, pgx through database/sql, SQLite), each on a fresh database:
//
//	enginetest.EachBackend(t, func(t *testing.T, url string) {
//		e, _ := asyncengine.New(enginetest.WithQuery(url, "pool_size=2"))
//		_, err := e.Exec(enginetest.Context(t), "SELECT 1")
//		…
//	})
//
// Fault tests get a cluster of their own with NewCluster, which they may stop, restart or put
// behind a real PgBouncer in transaction pooling mode. NewReplication and SharedReplication start
// a primary with streaming standbys (replication.go).
//
// ENGINETEST_PG_BIN names the directory of the server binaries and ENGINETEST_PGBOUNCER the
// pgbouncer binary, where the search does not find the ones wanted. Without PgBouncer, its tests
// are skipped with a message saying what to install, except under CI (CI=true), where they fail.
// Missing PostgreSQL server binaries always fail the tests that need them, unless DATABASE_URL
// is set.
package enginetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is a PostgreSQL server the tests may use.
type Cluster struct {
	external string // DATABASE_URL: a server not ours to stop
	dir      string
	port     int
	bin      string
	cred     *syscall.Credential

	mu      sync.Mutex
	proc    *exec.Cmd
	exited  chan struct{}
	bouncer *Bouncer
	dbs     atomic.Int64

	settings []string // extra "-c name=value" server arguments, after the defaults (replication.go)
}

var (
	sharedOnce    sync.Once
	sharedCluster *Cluster
	sharedErr     error
)

// Main runs the tests and stops the shared cluster afterwards. Use it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	stopSharedReplication()
	if sharedCluster != nil {
		sharedCluster.shutdown()
	}
	os.Exit(code)
}

// Shared returns the test binary's cluster, starting it on first use.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	sharedOnce.Do(func() {
		if u := os.Getenv("DATABASE_URL"); u != "" {
			sharedCluster = &Cluster{external: u}
			return
		}
		sharedCluster, sharedErr = start()
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedCluster
}

// NewDatabase creates a database on the shared cluster for this test and returns its URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	return Shared(t).NewDatabase(t)
}

// NewCluster starts a cluster of the test's own, stopped when the test ends. Tests that stop or
// restart the server use one, so that they disturb no other test.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	c, err := start()
	if err != nil {
		t.Fatal(err)
		return nil
	}
	t.Cleanup(c.shutdown)
	return c
}

// findBin locates the server binaries: the directory ENGINETEST_PG_BIN names, else initdb on
// PATH, else the newest distribution directory.
func findBin() (string, error) {
	if dir := os.Getenv("ENGINETEST_PG_BIN"); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err != nil {
			return "", fmt.Errorf("enginetest: ENGINETEST_PG_BIN=%s has no initdb; %s", dir, installPostgres)
		}
		return dir, nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("enginetest: PostgreSQL server binaries (initdb, postgres) not found on PATH or under /usr/lib/postgresql/*/bin; %s", installPostgres)
}

const installPostgres = "install them (Debian/Ubuntu: apt-get install postgresql) or set DATABASE_URL to a server where the user may create databases"

func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// credential returns the postgres user's identity when running as root (the server refuses root).
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("enginetest: running as root, and there is no postgres user to run the server as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// Ports of clusters and PgBouncers come from a range below the kernel's ephemeral ports (so that
// no outgoing connection is ever given one) and are reserved across test binaries by a lock file
// held for the life of the process: a restarted server gets its port back, and two test binaries
// never choose the same one.
const portBase, portSpan = 20000, 10000

var (
	portsMu sync.Mutex
	ports   = map[int]*os.File{}
)

// reservePort picks a free port that no other test binary holds.
func reservePort() (int, error) {
	dir := filepath.Join(os.TempDir(), "gosqla-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return 0, err
	}
	for range 1000 {
		port := portBase + rand.IntN(portSpan)
		f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			return 0, err
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			f.Close()
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil { // some other program uses it
			f.Close()
			continue
		}
		l.Close()
		portsMu.Lock()
		ports[port] = f
		portsMu.Unlock()
		return port, nil
	}
	return 0, fmt.Errorf("enginetest: no free port in %d-%d", portBase, portBase+portSpan)
}

// releasePort gives a port back once its server is stopped for good.
func releasePort(port int) {
	portsMu.Lock()
	defer portsMu.Unlock()
	if f, ok := ports[port]; ok {
		f.Close()
		delete(ports, port)
	}
}

// removeWhenGone starts a watcher process that removes dir once this test binary has exited, so
// that a cluster's files do not outlive a test that panicked or timed out (neither runs Main's
// shutdown). The server itself dies with the binary (Pdeathsig).
func removeWhenGone(dir string) error {
	script := `while kill -0 "$1" 2>/dev/null; do sleep 0.5; done; sleep 1; rm -rf "$2"`
	cmd := exec.Command("/bin/sh", "-c", script, "sh", strconv.Itoa(os.Getpid()), dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("enginetest: starting the directory watcher: %w", err)
	}
	// nobody waits for the watcher: it must outlive this process; Release frees its resources
	return cmd.Process.Release()
}

func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	return cmd
}

// start makes and starts a cluster; settings are extra "-c name=value" server arguments.
func start(settings ...string) (*Cluster, error) {
	c, err := newCluster()
	if err != nil {
		return nil, err
	}
	c.settings = settings
	initdb := c.command("initdb", "-D", filepath.Join(c.dir, "data"), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(c.dir)
		return nil, fmt.Errorf("enginetest: initdb failed: %v\n%s", err, out)
	}
	if err := c.startServer(); err != nil {
		c.shutdown()
		return nil, err
	}
	return c, nil
}

// newCluster prepares a cluster's directory (owned by the server's user) and port; the data
// directory is still to be made.
func newCluster() (*Cluster, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "gosqla-pg-")
	if err != nil {
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	if err := removeWhenGone(dir); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c := &Cluster{dir: dir, bin: bin, cred: cred}
	if c.port, err = reservePort(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

// startServer runs postgres as a child that dies with the test binary, and waits until it
// accepts connections.
func (c *Cluster) startServer() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil {
		return nil
	}
	cmd := c.command("postgres", "-D", filepath.Join(c.dir, "data"), "-p", strconv.Itoa(c.port),
		"-h", "127.0.0.1", "-k", c.dir, "-F",
		"-c", "max_connections=400", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "shared_buffers=64MB", "-c", "log_min_messages=fatal")
	cmd.Args = append(cmd.Args, c.settings...)
	logf, err := os.OpenFile(filepath.Join(c.dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("enginetest: starting postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	c.proc, c.exited = cmd, exited
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(c.dir, "postgres.log"))
			c.proc = nil
			return fmt.Errorf("enginetest: postgres exited at start:\n%s", log)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("enginetest: postgres did not accept connections within 30s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stopServer shuts the server down (fast shutdown: sessions are terminated).
func (c *Cluster) stopServer() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil {
		return
	}
	stopProcess(c.proc, c.exited, 20*time.Second)
	c.proc = nil
}

// stopProcess asks a server process to shut down (SIGINT: a fast shutdown for PostgreSQL and
// PgBouncer alike), kills it if it has not exited within grace, and waits until it has.
func stopProcess(cmd *exec.Cmd, exited <-chan struct{}, grace time.Duration) {
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-exited
	}
}

func (c *Cluster) shutdown() {
	if c.external != "" {
		return
	}
	if c.bouncer != nil {
		c.bouncer.stop()
	}
	c.stopServer()
	releasePort(c.port)
	os.RemoveAll(c.dir)
}

// URL returns the URL of database db on this cluster.
func (c *Cluster) URL(db string) string {
	if c.external != "" {
		u, err := url.Parse(c.external)
		if err != nil {
			return c.external
		}
		u.Path = "/" + db
		return u.String()
	}
	// connect_timeout: a checkout's wait is bounded by pool_timeout, connecting included, unless
	// connect_timeout bounds connecting; tests with short pool timeouts are about waiting for a
	// slot, not about how fast a loaded machine forks a backend
	return fmt.Sprintf("postgresql://postgres@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=30", c.port, db)
}

func (c *Cluster) admin(ctx context.Context, sql string, args ...any) error {
	adminDB := "postgres"
	if c.external != "" {
		if u, err := url.Parse(c.external); err == nil && strings.Trim(u.Path, "/") != "" {
			adminDB = strings.Trim(u.Path, "/")
		}
	}
	conn, err := pgx.Connect(ctx, c.URL(adminDB))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

// NewDatabase creates an empty database for the test and drops it when the test ends.
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("gosqla_%d_%d", os.Getpid(), c.dbs.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.admin(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("enginetest: creating database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = c.admin(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return c.URL(name)
}

// DatabaseName returns the database named in a URL.
func DatabaseName(dbURL string) string {
	u, err := url.Parse(strings.Replace(dbURL, "+stdlib", "", 1))
	if err != nil {
		return ""
	}
	return strings.Trim(u.Path, "/")
}

// TerminateBackends ends every server process connected to the database of dbURL with
// pg_terminate_backend, and waits until they are gone. It returns how many there were.
func (c *Cluster) TerminateBackends(t testing.TB, dbURL string) int {
	t.Helper()
	db := DatabaseName(dbURL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatalf("enginetest: %v", err)
	}
	defer conn.Close(context.Background())
	var pids []int32
	rows, err := conn.Query(ctx, `SELECT pid FROM (SELECT pid FROM pg_stat_activity
		WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend' OFFSET 0) s
		WHERE pg_terminate_backend(pid)`, db)
	if err == nil {
		pids, err = pgx.CollectRows(rows, pgx.RowTo[int32])
	}
	if err != nil {
		t.Fatalf("enginetest: terminating backends: %v", err)
	}
	// wait for those processes to exit (new ones may connect meanwhile: they are not waited for)
	for ctx.Err() == nil {
		var left int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)`, pids).Scan(&left); err != nil || left == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return len(pids)
}

// Backends counts the client connections to the database of dbURL.
func (c *Cluster) Backends(t testing.TB, dbURL string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := c.CountBackends(ctx, dbURL)
	if err != nil {
		t.Fatalf("enginetest: %v", err)
	}
	return n
}

// CountBackends is Backends for goroutines other than the test's, which must not end the test.
func (c *Cluster) CountBackends(ctx context.Context, dbURL string) (int, error) {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var n int
	err = conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'`,
		DatabaseName(dbURL)).Scan(&n)
	return n, err
}

func (c *Cluster) ours(t testing.TB) {
	t.Helper()
	if c.external != "" {
		t.Fatalf("enginetest: the server of DATABASE_URL cannot be stopped by tests; use NewCluster")
	}
}

// Stop shuts the server down; Start brings it back on the same port.
func (c *Cluster) Stop(t testing.TB) {
	t.Helper()
	c.ours(t)
	c.stopServer()
}

// Start starts a stopped server.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	c.ours(t)
	if err := c.startServer(); err != nil {
		t.Fatal(err)
	}
}

// Restart stops the server and starts it again.
func (c *Cluster) Restart(t testing.TB) {
	t.Helper()
	c.Stop(t)
	c.Start(t)
}
