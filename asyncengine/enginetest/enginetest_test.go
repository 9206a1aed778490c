package enginetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// recorder is a testing.TB that records how a helper ended the test instead of ending it.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()                         {}
func (r *recorder) Fatal(args ...any)               { r.fatal = fmt.Sprint(args...) }
func (r *recorder) Fatalf(format string, a ...any)  { r.fatal = fmt.Sprintf(format, a...) }
func (r *recorder) Skipf(format string, a ...any)   { r.skip = fmt.Sprintf(format, a...) }
func (r *recorder) Cleanup(func())                  {}
func (r *recorder) Logf(format string, args ...any) {}

func TestMissingPgBouncerSkipsOutsideCIAndFailsUnderCI(t *testing.T) {
	t.Setenv("ENGINETEST_PGBOUNCER", filepath.Join(t.TempDir(), "no-such-pgbouncer"))
	c := &Cluster{} // never started: the binary is looked up first

	t.Setenv("CI", "")
	r := &recorder{TB: t}
	c.PgBouncer(r, "postgresql://postgres@127.0.0.1:1/db")
	if r.fatal != "" || !strings.Contains(r.skip, "apt-get install pgbouncer") {
		t.Fatalf("outside CI a missing PgBouncer must skip with what to install; skip=%q fatal=%q", r.skip, r.fatal)
	}

	t.Setenv("CI", "true")
	r = &recorder{TB: t}
	c.PgBouncer(r, "postgresql://postgres@127.0.0.1:1/db")
	if r.skip != "" || !strings.Contains(r.fatal, "apt-get install pgbouncer") {
		t.Fatalf("under CI a missing PgBouncer must fail with what to install; skip=%q fatal=%q", r.skip, r.fatal)
	}
}

func TestMissingServerBinariesFailWithTheInstallHint(t *testing.T) {
	t.Setenv("ENGINETEST_PG_BIN", t.TempDir())
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		r := &recorder{TB: t}
		NewCluster(r)
		if r.skip != "" || !strings.Contains(r.fatal, "apt-get install postgresql") || !strings.Contains(r.fatal, "DATABASE_URL") {
			t.Fatalf("CI=%q: missing server binaries must fail with the install hint; skip=%q fatal=%q", ci, r.skip, r.fatal)
		}
	}
}

func TestPreparedStatementsArePinnedOnVersionsThatKnowTheKey(t *testing.T) {
	for _, v := range []struct {
		major, minor int
		want         string
	}{{1, 18, ""}, {1, 20, ""}, {1, 21, "max_prepared_statements = 0\n"}, {1, 24, "max_prepared_statements = 0\n"}, {2, 0, "max_prepared_statements = 0\n"}} {
		if got := versionSettings(v.major, v.minor); got != v.want {
			t.Errorf("PgBouncer %d.%d: settings %q, want %q", v.major, v.minor, got, v.want)
		}
	}
	bin, err := findBouncer()
	if err != nil {
		t.Skipf("SKIPPED, PgBouncer is not installed: %v", err)
	}
	major, minor, err := bouncerVersion(bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("PgBouncer %d.%d here: extra settings %q", major, minor, versionSettings(major, minor))
}

func TestReservedPortsAreDistinctAndReleased(t *testing.T) {
	seen := map[int]bool{}
	for range 20 {
		p, err := reservePort()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d reserved twice", p)
		}
		seen[p] = true
	}
	for p := range seen {
		releasePort(p)
	}
	portsMu.Lock()
	defer portsMu.Unlock()
	if len(ports) != 0 {
		t.Fatalf("%d ports still held after release", len(ports))
	}
}

// TestMain doubles as the child process of TestClusterDirectoryIsRemovedAfterAPanic.
func TestMain(m *testing.M) {
	if dir := os.Getenv("ENGINETEST_CHILD_DIR"); dir != "" {
		if err := removeWhenGone(dir); err != nil {
			fmt.Println(err)
			os.Exit(3)
		}
		panic("a test binary that panics runs no shutdown")
	}
	Main(m) // stops the shared clusters the external tests (replication_test.go) start
}

func TestClusterDirectoryIsRemovedAfterAPanic(t *testing.T) {
	dir, err := os.MkdirTemp("", "gosqla-pg-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "postgres.log"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "ENGINETEST_CHILD_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "runs no shutdown") {
		t.Fatalf("the child was to panic: %v\n%s", err, out)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			os.RemoveAll(dir)
			t.Fatalf("%s still exists 15s after the process that made it died", dir)
		}
	}
}
