// Command report runs every benchmark of gosqla's bench package several times — gosqla and its
// peers on one throwaway PostgreSQL, the SQLAlchemy peer included — and writes BENCHMARKS.md
// (medians, ratios to the reference peer, the targets met or not) and benchmarks-fanout.svg.
//
//	go run ./bench/report            # 5 runs of each, writes BENCHMARKS.md in the module root
//	go run ./bench/report -count 1 -bench 'Fanout'
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

func main() {
	count := flag.Int("count", 5, "runs of each benchmark (medians are reported)")
	pattern := flag.String("bench", ".", "benchmarks to run (go test -bench)")
	from := flag.String("from", "", "render from the raw output of an earlier run (bench/results.txt) instead of running")
	flag.Parse()
	root, err := moduleRoot()
	if err != nil {
		log.Fatal(err)
	}
	start := time.Now()
	var results results
	var raw []byte
	if *from != "" {
		if raw, err = os.ReadFile(*from); err == nil {
			results, *count = parseAll(raw)
		}
	} else {
		results, raw, err = run(root, *pattern, *count)
	}
	if err != nil {
		log.Fatal(err)
	}
	var md bytes.Buffer
	write(&md, results, *count, time.Since(start))
	if err := os.WriteFile(filepath.Join(root, "BENCHMARKS.md"), md.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "benchmarks-fanout.svg"), []byte(chart(results)), 0o644); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bench", "results.txt"), raw, 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("wrote BENCHMARKS.md and benchmarks-fanout.svg in %v\n", time.Since(start).Round(time.Second))
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	return strings.TrimSpace(string(out)), err
}

// results: benchmark name → unit → values, one per run.
type results map[string]map[string][]float64

// run runs the benchmarks, printing a progress line per result, and parses their output.
func run(root, pattern string, count int) (results, []byte, error) {
	cmd := exec.Command("go", "test", "-run", "^$", "-bench", pattern, "-benchmem", "-count", strconv.Itoa(count), "-timeout", "60m", "./bench")
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	res := results{}
	var raw bytes.Buffer
	sc := bufio.NewScanner(io.TeeReader(out, &raw))
	for sc.Scan() {
		name, metrics, ok := parse(sc.Text())
		if !ok {
			continue
		}
		if res[name] == nil {
			res[name] = map[string][]float64{}
		}
		var parts []string
		for unit, v := range metrics {
			res[name][unit] = append(res[name][unit], v)
			if unit != "B/op" && unit != "allocs/op" {
				parts = append(parts, fmt.Sprintf("%s %s", human(v), unit))
			}
		}
		sort.Strings(parts)
		fmt.Printf("%-60s run %d/%d  %s\n", name, len(res[name]["ns/op"]), count, strings.Join(parts, ", "))
	}
	if err := cmd.Wait(); err != nil {
		return nil, nil, fmt.Errorf("go test -bench: %w", err)
	}
	return res, raw.Bytes(), nil
}

// parseAll reads the raw output of a run, and how many runs it holds.
func parseAll(raw []byte) (results, int) {
	res := results{}
	runs := 0
	for _, line := range strings.Split(string(raw), "\n") {
		name, metrics, ok := parse(line)
		if !ok {
			continue
		}
		if res[name] == nil {
			res[name] = map[string][]float64{}
		}
		for unit, v := range metrics {
			res[name][unit] = append(res[name][unit], v)
		}
		runs = max(runs, len(res[name]["ns/op"]))
	}
	return res, runs
}

// parse reads "BenchmarkX/y-2  N  v unit  v unit …".
func parse(line string) (string, map[string]float64, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
		return "", nil, false
	}
	name := f[0]
	if i := strings.LastIndex(name, "-"); i > 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			name = name[:i]
		}
	}
	m := map[string]float64{}
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return "", nil, false
		}
		m[f[i+1]] = v
	}
	return strings.TrimPrefix(name, "Benchmark"), m, true
}

func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (r results) get(name, unit string) float64 { return median(r[name][unit]) }

func human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

func ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	pg := "PostgreSQL (version unknown)"
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if p, err := exec.LookPath("postgres"); err == nil {
		bins = append([]string{p}, bins...)
	}
	for _, p := range bins {
		if out, err := exec.Command(p, "--version").Output(); err == nil {
			pg = strings.TrimSpace(string(out))
			break
		}
	}
	return fmt.Sprintf("%s, %d cores, %s/%s, %s, %s", cpu, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), pg)
}

type row struct {
	peer, name, unit string
}

// table writes one workload's table: per peer the median of unit, and its ratio to ref.
func table(w io.Writer, r results, unit string, higherIsBetter bool, ref string, rows []row) {
	fmt.Fprintf(w, "| peer | %s (median) | ratio to %s |\n| --- | ---: | ---: |\n", unit, ref)
	refV := 0.0
	for _, x := range rows {
		if x.peer == ref {
			refV = r.get(x.name, x.unit)
		}
	}
	for _, x := range rows {
		v := r.get(x.name, x.unit)
		rt := ratio(v, refV)
		if !higherIsBetter {
			rt = ratio(v, refV) + " (time)"
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", x.peer, human(v), rt)
	}
	fmt.Fprintln(w)
}

func verdict(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**not met**"
}

// ranOn says how long the run took (unknown when rendering an earlier run's output) and where.
func ranOn(took time.Duration) string {
	if took < time.Minute {
		return "Measured on: " + machine() + "."
	}
	return fmt.Sprintf("This run took %v on: %s.", took.Round(time.Second), machine())
}

func write(w io.Writer, r results, count int, took time.Duration) {
	fmt.Fprintf(w, `# Benchmarks

Reproduce everything on this page with one command (it needs PostgreSQL's server binaries, and
Debian's python3-sqlalchemy, python3-asyncpg and python3-psycopg2 for the SQLAlchemy peer):

    go run ./bench/report

It runs every suite of `+"`bench/`"+` %d times (`+"`go test -bench . -count %d ./bench`"+`) on one throwaway
PostgreSQL, prints a progress line per run, and writes this page, `+"`benchmarks-fanout.svg`"+` and the raw
output (`+"`bench/results.txt`"+`, not committed). Tables show medians; ratios compare with the reference
peer in the same run. %s

The database and the benchmark share the machine's cores, so ratios move by ±10–20%% between runs;
read them as such.

`, count, count, ranOn(took))

	fmt.Fprintln(w, "## Targets")
	fmt.Fprintln(w)
	co, cp := r.get("Checkout/gosqla", "ns/op"), r.get("Checkout/pgxpool", "ns/op")
	ca, cpa := r.get("Checkout/gosqla", "allocs/op"), r.get("Checkout/pgxpool", "allocs/op")
	ps, pp := r.get("PointSelect/gosqla", "ns/op"), r.get("PointSelect/pgx_conn", "ns/op")
	sf, se := r.get("Fanout/gosqla_session_futures", "queries/s"), r.get("Fanout/gosqla_session", "queries/s")
	fp, fb := r.get("Fanout/pgxpool", "queries/s"), r.get("Fanout/pgx_batch", "queries/s")
	sa := r.get("SQLAlchemy", "asyncio-fanout-queries/s")
	im, cf := r.get("BulkInsert/gosqla_insertmany", "rows/s"), r.get("BulkInsert/pgx_copyfrom", "rows/s")
	rt, rm := r.get("RunSyncQueue", "timeouts/op"), r.get("RunSyncQueue", "peak-MiB")
	st := r.get("SyncFanout/gosqla_runsync", "timeouts/op")
	fmt.Fprintln(w, "| target | result | |")
	fmt.Fprintln(w, "| --- | --- | --- |")
	fmt.Fprintf(w, "| checkout + checkin no slower than pgxpool | %.0f ns vs %.0f ns (%s) | %s |\n", co, cp, ratio(co, cp), verdict(co <= cp))
	fmt.Fprintf(w, "| … and no more allocations | %.0f vs %.0f allocs/op | %s |\n", ca, cpa, verdict(ca <= cpa))
	fmt.Fprintf(w, "| point select within 1.10× of raw pgx | %s of pgx's time | %s |\n", ratio(ps, pp), verdict(pp > 0 && ps/pp <= 1.10))
	fmt.Fprintf(w, "| pipelined session fan-out ≥ 2.5× pgxpool | futures: %s; errgroup sharing sessions: %s | %s |\n", ratio(sf, fp), ratio(se, fp), verdict(fp > 0 && sf/fp >= 2.5))
	fmt.Fprintf(w, "| … and ≥ 0.8× hand-written pgx.Batch | futures: %s | %s |\n", ratio(sf, fb), verdict(fb > 0 && sf/fb >= 0.8))
	fmt.Fprintf(w, "| ≥ 10× SQLAlchemy asyncio on the fan-out | futures: %s; errgroup: %s | %s |\n", ratio(sf, sa), ratio(se, sa), verdict(sa > 0 && sf/sa >= 10))
	fmt.Fprintf(w, "| InsertMany ≥ 0.9× pgx CopyFrom | %s | %s |\n", ratio(im, cf), verdict(cf > 0 && im/cf >= 0.9))
	fmt.Fprintf(w, "| RunSync fan-out: zero pool timeouts | %.0f with 10 000 tasks, %.0f with 100 000 | %s |\n", st, rt, verdict(st == 0 && rt == 0))
	fmt.Fprintf(w, "| … heap grows ≤ 64 MiB with 100 000 tasks queued | %.1f MiB | %s |\n", rm, verdict(rm > 0 && rm <= 64))
	np, nl, ns := r.get("NPlusOne/pgxpool_query_per_writer", "ns/op"), r.get("NPlusOne/gosqla_lazy_futures", "ns/op"), r.get("NPlusOne/gosqla_selectin", "ns/op")
	nlt, nst := r.get("NPlusOne/gosqla_lazy_futures", "roundtrips/op"), r.get("NPlusOne/gosqla_selectin", "roundtrips/op")
	gc, gp, gct := r.get("SaveGraph/gosqla_commit", "ns/op"), r.get("SaveGraph/pgx_returning_copy", "ns/op"), r.get("SaveGraph/gosqla_commit", "roundtrips/op")
	fmt.Fprintf(w, "| books of 1 000 authors, lazy futures: ≤ 3 round trips, ≥ 5× one query per author (5 ms link) | %.0f round trips (with the authors' query and the rollback), %s | %s |\n", nlt, ratio(np, nl), verdict(nlt > 0 && nlt-1 <= 3 && nl > 0 && np/nl >= 5))
	fmt.Fprintf(w, "| … selectin: ≤ 2 queries, ≥ 5× one query per author | %.0f round trips (2 queries and the rollback), %s | %s |\n", nst, ratio(np, ns), verdict(nst > 0 && nst-1 <= 2 && ns > 0 && np/ns >= 5))
	fmt.Fprintf(w, "| saving 1 000 authors × 10 books: ≤ 4 round trips, no slower than pgx RETURNING + COPY | %.0f round trips, %s of pgx's time | %s |\n\n", gct, ratio(gc, gp), verdict(gct > 0 && gct <= 4 && gp > 0 && gc <= gp))

	fmt.Fprintln(w, "## Checkout + checkin (warm pool, one goroutine)")
	fmt.Fprintln(w)
	table(w, r, "ns/op", false, "pgxpool", []row{{"gosqla Engine.Connect + Close", "Checkout/gosqla", "ns/op"}, {"pgxpool", "Checkout/pgxpool", "ns/op"}, {"database/sql Conn", "Checkout/database_sql", "ns/op"}})
	fmt.Fprintf(w, "Allocations per checkout: gosqla %.0f, pgxpool %.0f, database/sql %.0f.\n\n", ca, cpa, r.get("Checkout/database_sql", "allocs/op"))

	fmt.Fprintln(w, "## Point select (one query by primary key, one goroutine)")
	fmt.Fprintln(w)
	table(w, r, "ns/op", false, "pgx.Conn", []row{{"gosqla Engine.Query", "PointSelect/gosqla", "ns/op"}, {"pgx.Conn", "PointSelect/pgx_conn", "ns/op"}, {"pgxpool", "PointSelect/pgxpool", "ns/op"}, {"database/sql", "PointSelect/database_sql", "ns/op"}})

	fmt.Fprintln(w, "## Fan-out: 10 000 point selects, errgroup limit 64, 10 connections")
	fmt.Fprintln(w)
	table(w, r, "queries/s", true, "pgxpool", []row{
		{"gosqla engine, one query per goroutine", "Fanout/gosqla_engine", "queries/s"},
		{"gosqla sessions shared by the errgroup (pipelined)", "Fanout/gosqla_session", "queries/s"},
		{"gosqla sessions, futures issued before Await (pipelined)", "Fanout/gosqla_session_futures", "queries/s"},
		{"pgxpool", "Fanout/pgxpool", "queries/s"},
		{"hand-written pgx.Batch per connection", "Fanout/pgx_batch", "queries/s"},
		{"database/sql", "Fanout/database_sql", "queries/s"},
		{"SQLAlchemy asyncio (asyncpg)", "SQLAlchemy", "asyncio-fanout-queries/s"},
		{"SQLAlchemy Core sync (psycopg2, 10 threads)", "SQLAlchemy", "core-sync-fanout-queries/s"},
	})
	fmt.Fprintln(w, "Throughput against concurrency (errgroup limit), same workload:")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "![fan-out throughput against concurrency](benchmarks-fanout.svg)")
	fmt.Fprintln(w)

	fmt.Fprintln(w, "## Sync-style fan-out: 10 000 tasks of 3 sequential queries, 15 connections, 1 s acquire timeout")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| peer | tasks/s | pool timeouts | peak heap growth |\n| --- | ---: | ---: | ---: |")
	for _, x := range []row{{"gosqla RunSync (pool 5 + 10)", "SyncFanout/gosqla_runsync", ""}, {"goroutines on pgxpool (15)", "SyncFanout/pgxpool_goroutines", ""}} {
		fmt.Fprintf(w, "| %s | %s | %.0f | %.1f MiB |\n", x.peer, human(r.get(x.name, "tasks/s")), r.get(x.name, "timeouts/op"), r.get(x.name, "peak-MiB"))
	}
	fmt.Fprintf(w, "\n100 000 RunSync tasks queued at once on a pool of 5 + 10: %s tasks/s, %.0f timeouts, heap grew by %.1f MiB.\n\n",
		human(r.get("RunSyncQueue", "tasks/s")), rt, rm)

	fmt.Fprintln(w, "## Bulk insert: 100 000 rows")
	fmt.Fprintln(w)
	table(w, r, "rows/s", true, "pgx CopyFrom", []row{
		{"gosqla InsertMany (COPY)", "BulkInsert/gosqla_insertmany", "rows/s"},
		{"pgx CopyFrom", "BulkInsert/pgx_copyfrom", "rows/s"},
		{"pgx multi-row INSERT (pages of 1 000)", "BulkInsert/pgx_multirow_insert", "rows/s"},
		{"SQLAlchemy asyncio executemany", "SQLAlchemy", "asyncio-bulk-rows/s"},
		{"SQLAlchemy Core sync executemany", "SQLAlchemy", "core-sync-bulk-rows/s"},
	})

	fmt.Fprintln(w, "## Unit of work: flushing 1 000 modified objects")
	fmt.Fprintln(w)
	table(w, r, "objects/s", true, "pgx.Batch", []row{{"gosqla Session.Flush", "UnitOfWork/gosqla_flush", "objects/s"}, {"pgx.Batch of the same UPDATEs", "UnitOfWork/pgx_batch", "objects/s"}})

	fmt.Fprintln(w, "## Relationships over a link with 5 ms per round trip")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Loading the books of 1 000 authors (10 each), one session and one connection per peer:")
	fmt.Fprintln(w)
	table(w, r, "ns/op", false, "pgxpool, one query per author", []row{
		{"pgxpool, one query per author", "NPlusOne/pgxpool_query_per_writer", "ns/op"},
		{"gosqla Load futures issued before Await", "NPlusOne/gosqla_lazy_futures", "ns/op"},
		{"gosqla selectin (From[Author].All)", "NPlusOne/gosqla_selectin", "ns/op"},
	})
	fmt.Fprintln(w, "Saving 1 000 authors with 10 books each, keys generated by the server, in one transaction:")
	fmt.Fprintln(w)
	table(w, r, "ns/op", false, "pgx RETURNING + COPY", []row{
		{"gosqla Add + Commit", "SaveGraph/gosqla_commit", "ns/op"},
		{"pgx RETURNING + COPY", "SaveGraph/pgx_returning_copy", "ns/op"},
	})

	fmt.Fprintln(w, "## SQLite: the fan-out on the embedded default")
	fmt.Fprintln(w)
	table(w, r, "queries/s", true, "database/sql", []row{{"gosqla engine", "SQLiteFanout/gosqla_engine", "queries/s"}, {"database/sql directly", "SQLiteFanout/database_sql", "queries/s"}})
	notes(w)
}

func notes(w io.Writer) {
	b, err := os.ReadFile(filepath.Join("bench", "report", "notes.md"))
	if err == nil {
		w.Write(b)
	}
}

// chart draws throughput against concurrency for the fan-out, one line per peer.
func chart(r results) string {
	limits := []int{1, 4, 16, 64, 256}
	peers := []struct{ name, label, color string }{
		{"gosqla_session", "gosqla session (pipelined)", "#d62728"},
		{"gosqla_engine", "gosqla engine", "#ff7f0e"},
		{"pgxpool", "pgxpool", "#1f77b4"},
		{"database_sql", "database/sql", "#2ca02c"},
	}
	const W, H, left, right, top, bottom = 700, 360, 70, 220, 30, 50
	maxV := 1.0
	for _, p := range peers {
		for _, l := range limits {
			maxV = max(maxV, r.get(fmt.Sprintf("FanoutConcurrency/%s/limit=%d", p.name, l), "queries/s"))
		}
	}
	x := func(i int) float64 { return left + float64(i)*float64(W-left-right)/float64(len(limits)-1) }
	y := func(v float64) float64 { return float64(H-bottom) - v/maxV*float64(H-top-bottom) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", W, H)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", W, H)
	fmt.Fprintf(&b, `<text x="%d" y="18" font-size="14">Fan-out: 10 000 point selects over 10 connections</text>`+"\n", left)
	for k := 0; k <= 4; k++ {
		v := maxV * float64(k) / 4
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n",
			left, W-right, y(v), y(v), left-6, y(v)+4, human(v))
	}
	for i, l := range limits {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%d</text>`+"\n", x(i), H-bottom+18, l)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">goroutines in flight (errgroup limit)</text>`+"\n", (left+W-right)/2, H-10)
	fmt.Fprintf(&b, `<text x="14" y="%d" transform="rotate(-90 14 %d)" text-anchor="middle">queries/s</text>`+"\n", (top+H-bottom)/2, (top+H-bottom)/2)
	for pi, p := range peers {
		var pts []string
		for i, l := range limits {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(r.get(fmt.Sprintf("FanoutConcurrency/%s/limit=%d", p.name, l), "queries/s"))))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", p.color, strings.Join(pts, " "))
		ly := top + 20 + pi*20
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="2"/><text x="%d" y="%d">%s</text>`+"\n",
			W-right+10, W-right+30, ly, ly, p.color, W-right+36, ly+4, p.label)
	}
	b.WriteString("</svg>\n")
	return b.String()
}
