package enginetest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Bouncer is a real PgBouncer in transaction pooling mode in front of a cluster.
type Bouncer struct {
	port   int
	proc   *exec.Cmd
	exited chan struct{}
	// ini is pgbouncer.ini with %d for the server's port; dir holds it
	ini, dir string
	cred     *syscall.Credential
}

// PgBouncer puts a PgBouncer (pool_mode=transaction) in front of the cluster, once per cluster,
// and returns the URL of dbURL's database through it. It needs the pgbouncer binary (Debian:
// apt-get install pgbouncer): without it the test is skipped, or fails under CI (CI=true).
func (c *Cluster) PgBouncer(t testing.TB, dbURL string) string {
	t.Helper()
	bin, err := findBouncer()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI=true: PgBouncer tests must run)", err)
		} else {
			t.Skipf("SKIPPED, PgBouncer is not installed: %v", err)
		}
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bouncer == nil {
		b, err := c.startBouncer(bin)
		if err != nil {
			t.Fatal(err)
			return ""
		}
		c.bouncer = b
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = "127.0.0.1:" + strconv.Itoa(c.bouncer.port)
	return u.String()
}

// PgBouncer is Shared(t).PgBouncer(t, dbURL).
func PgBouncer(t testing.TB, dbURL string) string {
	t.Helper()
	return Shared(t).PgBouncer(t, dbURL)
}

// findBouncer locates pgbouncer: the binary ENGINETEST_PGBOUNCER names, else on PATH or in sbin.
func findBouncer() (string, error) {
	candidates := []string{"pgbouncer", "/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer"}
	if p := os.Getenv("ENGINETEST_PGBOUNCER"); p != "" {
		candidates = []string{p}
	}
	for _, p := range candidates {
		if path, err := exec.LookPath(p); err == nil {
			return path, nil
		}
	}
	return "", fmt.Errorf("enginetest: pgbouncer not found (looked for %s); install it (Debian/Ubuntu: apt-get install pgbouncer) or set ENGINETEST_PGBOUNCER to its path",
		strings.Join(candidates, ", "))
}

// bouncerVersion returns the major and minor version pgbouncer --version reports.
func bouncerVersion(bin string) (major, minor int, err error) {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return 0, 0, fmt.Errorf("enginetest: %s --version: %w", bin, err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	if _, err := fmt.Sscanf(first, "PgBouncer %d.%d", &major, &minor); err != nil {
		return 0, 0, fmt.Errorf("enginetest: cannot read the version in %q: %w", first, err)
	}
	return major, minor, nil
}

// versionSettings pins what changed between PgBouncer versions, so that the tests mean the same
// on each: 1.21 added protocol-level prepared statements (on by default from 1.24); they are kept
// off. Versions before 1.21 refuse the key as unknown, and have no such support anyway.
func versionSettings(major, minor int) string {
	if major > 1 || major == 1 && minor >= 21 {
		return "max_prepared_statements = 0\n"
	}
	return ""
}

func (c *Cluster) startBouncer(bin string) (*Bouncer, error) {
	if c.external != "" {
		return nil, fmt.Errorf("enginetest: PgBouncer needs a cluster of the tests' own, not DATABASE_URL's server; use NewCluster")
	}
	major, minor, err := bouncerVersion(bin)
	if err != nil {
		return nil, err
	}
	port, err := reservePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(c.dir, "pgbouncer")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// server_login_retry: after a failed login to the server, PgBouncer waits this long before
	// trying again (15 s by default); a failover test moves it to the new primary at once
	ini := `[databases]
* = host=127.0.0.1 port=%d
[pgbouncer]
listen_addr = 127.0.0.1
unix_socket_dir =
auth_type = trust
pool_mode = transaction
max_client_conn = 2000
default_pool_size = 20
ignore_startup_parameters = extra_float_digits,options
admin_users = postgres
server_login_retry = 1
` + fmt.Sprintf("listen_port = %d\nauth_file = %s\nlogfile = %s\n%s", port, filepath.Join(dir, "users.txt"), filepath.Join(dir, "pgbouncer.log"), versionSettings(major, minor))
	b := &Bouncer{port: port, exited: make(chan struct{}), ini: ini, dir: dir, cred: c.cred}
	if err := b.write("users.txt", `"postgres" ""`+"\n"); err != nil {
		return nil, err
	}
	if err := b.write("pgbouncer.ini", fmt.Sprintf(ini, c.port)); err != nil {
		return nil, err
	}
	if c.cred != nil {
		_ = os.Chown(dir, int(c.cred.Uid), int(c.cred.Gid))
	}
	cmd := exec.Command(bin, filepath.Join(dir, "pgbouncer.ini"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("enginetest: starting pgbouncer: %w", err)
	}
	b.proc = cmd
	// the process is waited for by the goroutine below, which ends when it exits; stop waits for that
	go func() { _ = cmd.Wait(); close(b.exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			conn.Close()
			return b, nil
		}
		select {
		case <-b.exited:
			releasePort(port)
			log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
			return nil, fmt.Errorf("enginetest: pgbouncer exited: %s\n%s", out.String(), log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.stop()
			return nil, fmt.Errorf("enginetest: pgbouncer did not listen within 10s")
		}
	}
}

// write writes a file of the bouncer's directory, owned by the server's user.
func (b *Bouncer) write(name, body string) error {
	path := filepath.Join(b.dir, name)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		return err
	}
	if b.cred != nil {
		_ = os.Chown(path, int(b.cred.Uid), int(b.cred.Gid))
	}
	return nil
}

// MoveBouncer points the cluster's PgBouncer at another server, as an HA manager does after a
// failover: it rewrites the configuration and has PgBouncer reload it (RELOAD on its admin
// console, which returns once the new configuration is in force). Connections of clients stay
// open; server connections to the old server are closed as they are released.
func (c *Cluster) MoveBouncer(t testing.TB, to *Cluster) {
	t.Helper()
	c.mu.Lock()
	b := c.bouncer
	c.mu.Unlock()
	if b == nil {
		t.Fatal("enginetest: MoveBouncer before PgBouncer")
	}
	if err := b.write("pgbouncer.ini", fmt.Sprintf(b.ini, to.port)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(fmt.Sprintf("postgresql://postgres@127.0.0.1:%d/pgbouncer?sslmode=disable&default_query_exec_mode=simple_protocol", b.port))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("enginetest: PgBouncer's admin console: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "RELOAD"); err != nil {
		t.Fatalf("enginetest: PgBouncer RELOAD: %v", err)
	}
}

func (b *Bouncer) stop() {
	stopProcess(b.proc, b.exited, 5*time.Second)
	releasePort(b.port)
}
