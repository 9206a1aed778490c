package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// python finds an interpreter with SQLAlchemy, asyncpg and psycopg2 (Debian's python3-sqlalchemy,
// python3-asyncpg, python3-psycopg2 install them for /usr/bin/python3).
func python(b *testing.B) string {
	for _, p := range []string{os.Getenv("GOSQLA_PYTHON"), "/usr/bin/python3", "python3"} {
		if p == "" {
			continue
		}
		if err := exec.Command(p, "-c", "import sqlalchemy, asyncpg, psycopg2").Run(); err == nil {
			return p
		}
	}
	b.Fatal("bench: no python3 with sqlalchemy, asyncpg and psycopg2; install Debian's python3-sqlalchemy python3-asyncpg python3-psycopg2 (or set GOSQLA_PYTHON)")
	return ""
}

// BenchmarkSQLAlchemy runs the fan-out and bulk workloads in SQLAlchemy asyncio (asyncpg) and
// SQLAlchemy Core sync (psycopg2) against the same server and data, and reports their rates.
func BenchmarkSQLAlchemy(b *testing.B) {
	py := python(b)
	url := database(b)
	script, err := filepath.Abs("sqlalchemy_peer.py")
	if err != nil {
		b.Fatal(err)
	}
	sums := map[string]float64{}
	for i := 0; i < b.N; i++ {
		out, err := exec.Command(py, script, url, fmt.Sprint(rows), fmt.Sprint(bulkRows), fmt.Sprint(connections), fmt.Sprint(fanoutLimit)).Output()
		if err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				b.Fatalf("%v\n%s", err, ee.Stderr)
			}
			b.Fatal(err)
		}
		var res map[string]any
		if err := json.Unmarshal(out, &res); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
		for k, v := range res {
			if f, ok := v.(float64); ok {
				sums[k] += f
			}
		}
	}
	for k, v := range sums {
		unit := strings.ReplaceAll(strings.TrimSuffix(k, "_per_s"), "_", "-") + "/s"
		b.ReportMetric(v/float64(b.N), unit)
	}
}
