// Command report runs every benchmark of gosqla's bench package several times — gosqla and its
// peers on one throwaway PostgreSQL, the SQLAlchemy peer included — and writes BENCHMARKS.md
// (medians with their min–max spread, ratios to the reference peer, each variant against each
// target) and benchmarks-fanout.svg. The raw output of every run is kept as a new file under
// bench/results/ (named by the run's start time, never overwritten) and is committed with the
// page, which names it.
//
//	go run ./bench/report                  # 5 runs of each, writes BENCHMARKS.md in the module root
//	go run ./bench/report -count 1 -benchtime 1x -out /tmp/report   # a quick check of the tool
//	go run ./bench/report -from bench/results/<newest>.txt            # re-render the newest run
//
// A page is only ever rendered from the newest run: -from refuses an older file, so that a
// favourable run is never rendered over an unfavourable later one.
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
	count := flag.Int("count", 5, "runs of each benchmark (medians are reported, with min and max)")
	pattern := flag.String("bench", ".", "benchmarks to run (go test -bench)")
	benchtime := flag.String("benchtime", "", "go test -benchtime (e.g. 1x for a quick check of the tool; empty: go's default)")
	from := flag.String("from", "", "render from the raw output of the newest run under bench/results/ instead of running")
	out := flag.String("out", "", "directory for BENCHMARKS.md, benchmarks-fanout.svg and results/ (default: the module root, results in bench/results)")
	flag.Parse()
	root, err := moduleRoot()
	if err != nil {
		log.Fatal(err)
	}
	pageDir, resultsDir := root, filepath.Join(root, "bench", "results")
	if *out != "" {
		pageDir, resultsDir = *out, filepath.Join(*out, "results")
	}
	if err := os.MkdirAll(resultsDir, 0o755); err != nil {
		log.Fatal(err)
	}
	start := time.Now()
	var results results
	var rawPath string
	if *from != "" {
		rawPath = *from
		// the run is checked against the runs stored beside it: -out only says where the page goes
		if err := newestRun(filepath.Dir(rawPath), rawPath); err != nil {
			log.Fatal(err)
		}
		raw, err := os.ReadFile(rawPath)
		if err != nil {
			log.Fatal(err)
		}
		results, *count = parseAll(raw)
	} else {
		rawPath = filepath.Join(resultsDir, start.UTC().Format("2006-01-02T15-04-05Z")+".txt")
		var raw []byte
		results, raw, err = run(root, *pattern, *count, *benchtime)
		if err != nil {
			log.Fatal(err)
		}
		// O_EXCL: a run never replaces another run's results
		f, err := os.OpenFile(rawPath, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			log.Fatal(err)
		}
		if _, err := f.Write(raw); err != nil {
			log.Fatal(err)
		}
		if err := f.Close(); err != nil {
			log.Fatal(err)
		}
	}
	rel, err := filepath.Rel(pageDir, rawPath)
	if err != nil {
		rel = rawPath
	}
	var md bytes.Buffer
	write(&md, results, *count, time.Since(start), filepath.ToSlash(rel))
	if err := os.WriteFile(filepath.Join(pageDir, "BENCHMARKS.md"), md.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pageDir, "benchmarks-fanout.svg"), []byte(chart(results)), 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("wrote %s, benchmarks-fanout.svg and %s in %v\n", filepath.Join(pageDir, "BENCHMARKS.md"), rawPath, time.Since(start).Round(time.Second))
}

// newestRun checks that path is the newest run's raw output in dir (names sort by start time).
func newestRun(dir, path string) error {
	runs, _ := filepath.Glob(filepath.Join(dir, "*.txt"))
	if len(runs) == 0 {
		return fmt.Errorf("no runs under %s", dir)
	}
	sort.Strings(runs)
	newest := runs[len(runs)-1]
	a, errA := filepath.Abs(path)
	b, errB := filepath.Abs(newest)
	if errA != nil || errB != nil || a != b {
		return fmt.Errorf("%s is not the newest run (%s): a page is rendered only from the newest run, never from an earlier, perhaps more favourable one", path, newest)
	}
	return nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	return strings.TrimSpace(string(out)), err
}

// results: benchmark name → unit → values, one per run.
type results map[string]map[string][]float64

// run runs the benchmarks, printing a progress line per result, and parses their output.
func run(root, pattern string, count int, benchtime string) (results, []byte, error) {
	args := []string{"test", "-run", "^$", "-bench", pattern, "-benchmem", "-count", strconv.Itoa(count), "-timeout", "60m"}
	if benchtime != "" {
		args = append(args, "-benchtime", benchtime)
	}
	cmd := exec.Command("go", append(args, "./bench")...)
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

// spread is the median of a result with its range over the runs: "27.1k (25.0k–28.3k)".
func (r results) spread(name, unit string) string {
	vs := r[name][unit]
	if len(vs) == 0 {
		return "not measured"
	}
	lo, hi := vs[0], vs[0]
	for _, v := range vs {
		lo, hi = min(lo, v), max(hi, v)
	}
	if len(vs) == 1 {
		return human(vs[0]) + " (1 run)"
	}
	return fmt.Sprintf("%s (%s–%s)", human(median(vs)), human(lo), human(hi))
}

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

// ratio is a/b, or "–" when either was not measured.
func ratio(a, b float64) string {
	if a == 0 || b == 0 {
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

// table writes one workload's table: per peer the median of unit with its min–max spread, and
// its ratio to the reference row, named by its benchmark and unit, "Checkout/pgxpool ns/op" (a
// missing reference is a bug of this tool, not a "–" in the page).
func table(w io.Writer, r results, unit string, higherIsBetter bool, refName string, rows []row) {
	refPeer, refV := "", 0.0
	for _, x := range rows {
		if x.name+" "+x.unit == refName {
			refPeer, refV = x.peer, r.get(x.name, x.unit)
		}
	}
	if refPeer == "" {
		log.Fatalf("report: table of %s names reference %s, which none of its rows is", unit, refName)
	}
	fmt.Fprintf(w, "| peer | %s: median (min–max) | ratio to %s |\n| --- | ---: | ---: |\n", unit, refPeer)
	for _, x := range rows {
		rt := ratio(r.get(x.name, x.unit), refV)
		if !higherIsBetter {
			rt += " (time)"
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", x.peer, r.spread(x.name, x.unit), rt)
	}
	fmt.Fprintln(w)
}

// atLeast reports, per row, a target met when the row's median is at least bound times ref
// (a throughput against a reference peer's).
func atLeast(target func(name, variant, result string, ok bool), name string, r results, rows []row, ref, bound float64) {
	for _, x := range rows {
		v := r.get(x.name, x.unit)
		target(name, x.peer, ratio(v, ref), ref > 0 && v/ref >= bound)
	}
}

// within reports, per row, a target met when the row's median is at most bound times ref (a
// time against a reference peer's).
func within(target func(name, variant, result string, ok bool), name string, r results, rows []row, ref, bound float64) {
	for _, x := range rows {
		v := r.get(x.name, x.unit)
		target(name, x.peer, ratio(v, ref)+" of its time", ref > 0 && v/ref <= bound)
	}
}

// spreads writes a table of one unit's median with its min–max spread per row, under a header
// of two columns: what the rows are, and what the unit measures.
func spreads(w io.Writer, r results, header, unit string, rows []row) {
	fmt.Fprintf(w, "%s\n| --- | ---: |\n", header)
	for _, x := range rows {
		fmt.Fprintf(w, "| %s | %s |\n", x.peer, r.spread(x.name, unit))
	}
	fmt.Fprintln(w)
}

// section writes a heading of the page and the paragraph below it, if any.
func section(w io.Writer, heading string, paragraph ...string) {
	fmt.Fprintf(w, "## %s\n\n", heading)
	for _, l := range paragraph {
		fmt.Fprintln(w, l)
	}
	if len(paragraph) > 0 {
		fmt.Fprintln(w)
	}
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

func write(w io.Writer, r results, count int, took time.Duration, rawPath string) {
	fmt.Fprintf(w, `# Benchmarks

Reproduce everything on this page with one command (it needs PostgreSQL's server binaries, and
Debian's python3-sqlalchemy, python3-asyncpg and python3-psycopg2 for the SQLAlchemy peer):

    go run ./bench/report

It runs every suite of `+"`bench/`"+` %d times (`+"`go test -bench . -count %d ./bench`"+`) on one throwaway
PostgreSQL, prints a progress line per run, and writes this page, `+"`benchmarks-fanout.svg`"+` and the raw
output of the run as a new file under `+"`bench/results/`"+`. This page is rendered from
`+"`%s`"+`, committed with it. Tables show the median of the runs with their min–max spread;
ratios compare medians with the reference peer of the same run. A page is only rendered from the
newest run. %s

The database and the benchmark share the machine's cores, so ratios move by ±10–20%% between runs;
the spreads show by how much.

`, count, count, rawPath, ranOn(took))

	section(w, "Targets",
		"Every variant is reported against each target; a target counts as met only where the row says so.",
	)
	fmt.Fprintln(w, "| target | variant | result | |")
	fmt.Fprintln(w, "| --- | --- | --- | --- |")
	target := func(name, variant, result string, ok bool) {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", name, variant, result, verdict(ok))
	}
	co, cp := r.get("Checkout/gosqla", "ns/op"), r.get("Checkout/pgxpool", "ns/op")
	ca, cpa := r.get("Checkout/gosqla", "allocs/op"), r.get("Checkout/pgxpool", "allocs/op")
	target("checkout + checkin no slower than pgxpool", "Engine.Connect + Close", fmt.Sprintf("%.0f ns vs %.0f ns (%s)", co, cp, ratio(co, cp)), cp > 0 && co <= cp)
	target("… and no more allocations", "Engine.Connect + Close", fmt.Sprintf("%.0f vs %.0f allocs/op", ca, cpa), ca <= cpa)
	for _, ref := range []row{{"raw pgx.Conn", "PointSelect/pgx_conn", "ns/op"}, {"pgxpool", "PointSelect/pgxpool", "ns/op"}} {
		within(target, "point select within 1.03× of raw pgx", r, []row{{"Engine.Query vs " + ref.peer, "PointSelect/gosqla", "ns/op"}}, r.get(ref.name, ref.unit), 1.03)
	}
	fanouts := []row{
		{"session futures", "Fanout/gosqla_session_futures", "queries/s"},
		{"sessions shared by an errgroup", "Fanout/gosqla_session", "queries/s"},
		{"engine, one query per goroutine", "Fanout/gosqla_engine", "queries/s"},
	}
	atLeast(target, "fan-out ≥ 2.5× pgxpool", r, fanouts, r.get("Fanout/pgxpool", "queries/s"), 2.5)
	atLeast(target, "pipelined fan-out ≥ 1.0× hand-written pgx.Batch", r, fanouts[:2], r.get("Fanout/pgx_batch", "queries/s"), 1.0)
	atLeast(target, "fan-out ≥ 10× SQLAlchemy asyncio", r, fanouts, r.get("SQLAlchemy", "asyncio-fanout-queries/s"), 10)
	tb, tp := r.get("TPCB/pgx_batch", "tps"), r.get("TPCB/pgxpool_per_statement", "tps")
	tf := r.get("TPCB/pgxpool_beginfunc", "tps")
	for _, x := range []row{{"session, five futures before Commit", "TPCB/gosqla_session_futures", "tps"}, {"Engine.Begin, one statement per round trip", "TPCB/gosqla_engine_begin", "tps"}} {
		atLeast(target, "TPC-B-like ≥ 1.5× pgxpool one statement per round trip", r, []row{x}, tp, 1.5)
		atLeast(target, "TPC-B-like ≥ 0.9× hand-written pgx.Batch", r, []row{x}, tb, 0.9)
		atLeast(target, "TPC-B-like ≥ 1.0× pgxpool BeginFunc", r, []row{x}, tf, 1.0)
	}
	for _, x := range []struct{ peer, name, ref string }{
		{"point select: Engine.Query vs pgx.Conn", "PointSelect/gosqla", "PointSelect/pgx_conn"},
		{"mapped row: ScanAll vs pgx.CollectRows", "MappedRows/gosqla_scanall", "MappedRows/pgx_collectrows"},
		{"mapped row: session Select vs pgx.CollectRows", "MappedRows/gosqla_session_select", "MappedRows/pgx_collectrows"},
	} {
		a, ref := r.get(x.name, "allocs/row"), r.get(x.ref, "allocs/row")
		if a == 0 {
			a, ref = r.get(x.name, "allocs/op"), r.get(x.ref, "allocs/op")
		}
		target("allocations reported (lower than before the data-path change: 20 per point select, 6.8 per ScanAll row, 13.9 per session row)", x.peer, fmt.Sprintf("%.3g vs %.3g", a, ref), a > 0)
	}
	for _, x := range []row{{"engine stream", "StreamMillion/gosqla_engine_stream", ""}, {"session stream", "StreamMillion/gosqla_session_stream", ""}} {
		v := r.get(x.name, "heap-growth-MiB")
		target("a million-row read grows the heap by a few MiB (≤ 16)", x.peer, fmt.Sprintf("%.1f MiB (buffered: %.0f MiB)", v, r.get("StreamMillion/gosqla_buffered_scanall", "heap-growth-MiB")), len(r[x.name]["heap-growth-MiB"]) > 0 && v <= 16)
	}
	within(target, "autoflush: 300 selects with 20 000 loaded objects ≤ 3× an empty session", r, []row{
		{"20 000 objects of the table the query reads", "Autoflush/same_table", "ns/select"},
		{"20 000 objects of another table", "Autoflush/other_table", "ns/select"},
	}, r.get("Autoflush/empty", "ns/select"), 3)
	im, cf := r.get("BulkInsert", "insertmany-rows/s"), r.get("BulkInsert", "copyfrom-rows/s")
	target("InsertMany ≥ 0.9× pgx CopyFrom", "InsertMany (COPY)", ratio(im, cf), cf > 0 && im/cf >= 0.9)
	st, nt := r.get("SyncFanout/gosqla_runsync", "timeouts/op"), r.get("SyncFanout/pgxpool_goroutines", "timeouts/op")
	rt, rm := r.get("RunSyncQueue", "timeouts/op"), r.get("RunSyncQueue", "peak-MiB")
	syncRan := len(r["SyncFanout/gosqla_runsync"]["timeouts/op"]) > 0
	target("RunSync fan-out: zero pool timeouts", "10 000 tasks", fmt.Sprintf("%.0f (naive goroutines on pgxpool, same timeout: %.0f)", st, nt), syncRan && st == 0)
	target("… also with 100 000 tasks", "default worker_queue", fmt.Sprintf("%.0f", rt), len(r["RunSyncQueue"]["timeouts/op"]) > 0 && rt == 0)
	target("… heap grows ≤ 64 MiB with 100 000 tasks queued", "default worker_queue", fmt.Sprintf("%.1f MiB", rm), rm > 0 && rm <= 64)
	ot, sv := r.get("Paired/point_select/otel_vs_off", "otel/off"), r.get("Paired/point_select/sqlview_vs_pgx_stdlib", "sqlview/pgx_stdlib")
	target("point select traced into OpenTelemetry (no-op exporter) ≤ 1.05× untraced", "gosqlaotel, paired call by call", ratio(ot, 1), ot > 0 && ot <= 1.05)
	target("point select through the sqlview *sql.DB within 1.10× of database/sql over pgx", "paired call by call", ratio(sv, 1), sv > 0 && sv <= 1.10)
	np, nl, ns := r.get("NPlusOne/pgxpool_query_per_writer", "ns/op"), r.get("NPlusOne/gosqla_lazy_futures", "ns/op"), r.get("NPlusOne/gosqla_selectin", "ns/op")
	nlt, nst := r.get("NPlusOne/gosqla_lazy_futures", "roundtrips/op"), r.get("NPlusOne/gosqla_selectin", "roundtrips/op")
	gc, gp, gct := r.get("SaveGraph/gosqla_commit", "ns/op"), r.get("SaveGraph/pgx_returning_copy", "ns/op"), r.get("SaveGraph/gosqla_commit", "roundtrips/op")
	target("books of 1 000 authors, lazy futures: ≤ 3 round trips, ≥ 5× one query per author (5 ms link)", "Load futures", fmt.Sprintf("%.0f round trips (with the authors' query and the rollback), %s", nlt, ratio(np, nl)), nlt > 0 && nlt-1 <= 3 && nl > 0 && np/nl >= 5)
	target("… selectin: ≤ 2 queries, ≥ 5× one query per author", "LoadAll / builder", fmt.Sprintf("%.0f round trips (2 queries and the rollback), %s", nst, ratio(np, ns)), nst > 0 && nst-1 <= 2 && ns > 0 && np/ns >= 5)
	// the paired run alternates the two call by call, which the tables' growth and the server's
	// background work cannot tilt; the separate runs' ratio stands in when it is missing
	saved := r.get("SaveGraph/paired", "gosqla/pgx")
	savedText := fmt.Sprintf("%.0f round trips, %.2f× pgx's time (paired, median of runs: %s)", gct, saved, r.spread("SaveGraph/paired", "gosqla/pgx"))
	if saved == 0 && gc > 0 && gp > 0 {
		saved, savedText = gc/gp, fmt.Sprintf("%.0f round trips, %s of pgx's time", gct, ratio(gc, gp))
	}
	target("saving 1 000 authors × 10 books: ≤ 4 round trips, no slower than pgx RETURNING + COPY", "one Commit", savedText, gct > 0 && gct <= 4 && saved > 0 && saved <= 1)
	s1, s2 := r.get("ShardedFanout/one_shard", "ns/op"), r.get("ShardedFanout/two_shards", "ns/op")
	target("10 000 Gets over 2 shards ≥ 1.6× one shard alone (5 ms link)", "sharded session, pipelines at once", ratio(s1, s2), s2 > 0 && s1/s2 >= 1.6)
	fmt.Fprintln(w)

	section(w, "TPC-B-like: pgbench's built-in transaction, scale 10, 10 clients, 10 connections",
		"Five statements between BEGIN and COMMIT (three UPDATEs, a SELECT, an INSERT), random accounts,",
		"tellers and branches as pgbench draws them; pgbench itself runs the same script on the same server.",
	)
	table(w, r, "tps", true, "TPCB/pgx_batch tps", []row{
		{"gosqla session, five futures before Commit", "TPCB/gosqla_session_futures", "tps"},
		{"gosqla Engine.Begin, one statement per round trip", "TPCB/gosqla_engine_begin", "tps"},
		{"pgxpool, one statement per round trip", "TPCB/pgxpool_per_statement", "tps"},
		{"pgxpool BeginFunc", "TPCB/pgxpool_beginfunc", "tps"},
		{"hand-written pgx.Batch", "TPCB/pgx_batch", "tps"},
		{"pgbench -M prepared", "TPCB/pgbench_prepared", "tps"},
		{"pgbench, pipeline mode", "TPCB/pgbench_pipeline", "tps"},
		{"SQLAlchemy asyncio (asyncpg)", "TPCB/sqlalchemy_asyncio", "tps"},
	})
	fmt.Fprintf(w, "Allocations per transaction: session %.0f, Engine.Begin %.0f, pgxpool per statement %.0f, BeginFunc %.0f, pgx.Batch %.0f.\n\n",
		r.get("TPCB/gosqla_session_futures", "allocs/op"), r.get("TPCB/gosqla_engine_begin", "allocs/op"),
		r.get("TPCB/pgxpool_per_statement", "allocs/op"), r.get("TPCB/pgxpool_beginfunc", "allocs/op"), r.get("TPCB/pgx_batch", "allocs/op"))

	section(w, "Mapped rows and streaming")
	spreads(w, r, "| peer | allocations per row: median (min–max) |", "allocs/row", []row{{"gosqla ScanAll", "MappedRows/gosqla_scanall", ""}, {"gosqla session Select", "MappedRows/gosqla_session_select", ""}, {"pgx.CollectRows(RowToStructByName)", "MappedRows/pgx_collectrows", ""}})
	spreads(w, r, "| reading a million rows | heap growth, MiB: median (min–max) |", "heap-growth-MiB", []row{{"Engine.Stream", "StreamMillion/gosqla_engine_stream", ""}, {"session Stream", "StreamMillion/gosqla_session_stream", ""}, {"buffered Query + ScanAll", "StreamMillion/gosqla_buffered_scanall", ""}})

	section(w, "Autoflush: 300 one-row selects in a session holding 20 000 unmodified objects")
	table(w, r, "ns/select", false, "Autoflush/empty ns/select", []row{
		{"empty session", "Autoflush/empty", "ns/select"},
		{"objects of the table the query reads", "Autoflush/same_table", "ns/select"},
		{"objects of another table", "Autoflush/other_table", "ns/select"},
	})

	section(w, "Checkout + checkin (warm pool, one goroutine)")
	table(w, r, "ns/op", false, "Checkout/pgxpool ns/op", []row{{"gosqla Engine.Connect + Close", "Checkout/gosqla", "ns/op"}, {"pgxpool", "Checkout/pgxpool", "ns/op"}, {"database/sql Conn", "Checkout/database_sql", "ns/op"}})
	fmt.Fprintf(w, "Allocations per checkout: gosqla %.0f, pgxpool %.0f, database/sql %.0f.\n\n", ca, cpa, r.get("Checkout/database_sql", "allocs/op"))

	section(w, "Point select (one query by primary key, one goroutine)")
	table(w, r, "ns/op", false, "PointSelect/pgx_conn ns/op", []row{{"gosqla Engine.Query", "PointSelect/gosqla", "ns/op"}, {"pgx.Conn", "PointSelect/pgx_conn", "ns/op"}, {"pgxpool", "PointSelect/pgxpool", "ns/op"}, {"database/sql", "PointSelect/database_sql", "ns/op"}})

	section(w, "Fan-out: 10 000 point selects, at most 64 in flight, 10 connections",
		"Every peer keeps at most 64 queries in flight: the errgroup peers through its limit, the futures",
		"and pgx.Batch peers by sending each connection's share in windows of 64 / 10 = 6.",
	)
	table(w, r, "queries/s", true, "Fanout/pgxpool queries/s", []row{
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

	section(w, "Sync-style fan-out: 10 000 tasks of 3 sequential queries, 15 connections, 100 ms acquire timeout",
		"Both peers wait at most 100 ms for a connection, less than a run takes, so a waiter that is",
		"not served in time does time out. gosqla runs with the default `worker_queue` (65 536).",
	)
	fmt.Fprintln(w, "| peer | tasks/s: median (min–max) | pool timeouts per run: median (min–max) | run time | peak heap growth |\n| --- | ---: | ---: | ---: | ---: |")
	for _, x := range []row{{"gosqla RunSync (pool 5 + 10)", "SyncFanout/gosqla_runsync", ""}, {"goroutines on pgxpool (15)", "SyncFanout/pgxpool_goroutines", ""}} {
		runTime := "–"
		if v := r.get(x.name, "tasks/s"); v > 0 {
			runTime = fmt.Sprintf("%.0f ms", 10_000/v*1000)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %.1f MiB |\n", x.peer, r.spread(x.name, "tasks/s"), r.spread(x.name, "timeouts/op"), runTime, r.get(x.name, "peak-MiB"))
	}
	fmt.Fprintf(w, "\n100 000 RunSync tasks queued at once on a pool of 5 + 10 with the default `worker_queue` (65 536;\n"+
		"the submitter waits for room beyond it): %s tasks/s, %.0f timeouts, heap grew by %.1f MiB.\n\n",
		r.spread("RunSyncQueue", "tasks/s"), rt, rm)

	section(w, "Bulk insert: 100 000 rows",
		"Every iteration runs all three Go peers, each into a freshly created table and timed on its own,",
		"in an order that rotates from one iteration and one run to the next: no peer inherits another's",
		"dead rows or always goes first.",
	)
	table(w, r, "rows/s", true, "BulkInsert copyfrom-rows/s", []row{
		{"gosqla InsertMany (COPY)", "BulkInsert", "insertmany-rows/s"},
		{"pgx CopyFrom", "BulkInsert", "copyfrom-rows/s"},
		{"pgx multi-row INSERT (pages of 1 000)", "BulkInsert", "multirow-rows/s"},
		{"SQLAlchemy asyncio executemany", "SQLAlchemy", "asyncio-bulk-rows/s"},
		{"SQLAlchemy Core sync executemany", "SQLAlchemy", "core-sync-bulk-rows/s"},
	})

	section(w, "Unit of work: flushing 1 000 modified objects")
	table(w, r, "objects/s", true, "UnitOfWork/pgx_batch objects/s", []row{{"gosqla Session.Flush", "UnitOfWork/gosqla_flush", "objects/s"}, {"pgx.Batch of the same UPDATEs", "UnitOfWork/pgx_batch", "objects/s"}})

	section(w, "Relationships over a link with 5 ms per round trip",
		"Loading the books of 1 000 authors (10 each), one session and one connection per peer:",
	)
	table(w, r, "ns/op", false, "NPlusOne/pgxpool_query_per_writer ns/op", []row{
		{"pgxpool, one query per author", "NPlusOne/pgxpool_query_per_writer", "ns/op"},
		{"gosqla Load futures issued before Await", "NPlusOne/gosqla_lazy_futures", "ns/op"},
		{"gosqla selectin (From[Author].All)", "NPlusOne/gosqla_selectin", "ns/op"},
	})
	fmt.Fprintln(w, "Saving 1 000 authors with 10 books each, keys generated by the server, in one transaction:")
	fmt.Fprintln(w)
	saves := []row{
		{"gosqla Add + Commit", "SaveGraph/gosqla_commit", "ns/op"},
		{"pgx RETURNING + COPY", "SaveGraph/pgx_returning_copy", "ns/op"},
	}
	if r.get("SaveGraph/paired", "ns/gosqla") > 0 { // results from before the paired run lack it
		saves = append(saves, row{"gosqla, paired with pgx call by call", "SaveGraph/paired", "ns/gosqla"},
			row{"pgx, paired with gosqla call by call", "SaveGraph/paired", "ns/pgx"})
	}
	table(w, r, "ns/op", false, "SaveGraph/pgx_returning_copy ns/op", saves)
	fmt.Fprintln(w, "10 000 Gets on a sharded session, issued before any Await, one connection per shard:")
	fmt.Fprintln(w)
	table(w, r, "ns/op", false, "ShardedFanout/one_shard ns/op", []row{
		{"every row on one shard", "ShardedFanout/one_shard", "ns/op"},
		{"rows split over two shards, both pipelines at once", "ShardedFanout/two_shards", "ns/op"},
	})

	section(w, "SQLite: the fan-out on the embedded default")
	table(w, r, "queries/s", true, "SQLiteFanout/database_sql queries/s", []row{{"gosqla engine", "SQLiteFanout/gosqla_engine", "queries/s"}, {"database/sql directly", "SQLiteFanout/database_sql", "queries/s"}})

	section(w, "Tracing and the database/sql view (paired, call by call)")
	fmt.Fprintln(w, "| comparison | ns per call | ratio (median of runs) |\n| --- | ---: | ---: |")
	for _, x := range []struct{ label, name, a, b string }{
		{"checkout: gosqlaotel vs no tracer", "Paired/checkout/otel_vs_off", "off", "otel"},
		{"point select: gosqlaotel vs no tracer", "Paired/point_select/otel_vs_off", "off", "otel"},
		{"point select: the same span directly on the SDK, batch processor, vs no tracer (the SDK's floor)", "Paired/point_select/sdk_vs_off", "off", "sdk"},
		{"point select: the same span directly on the SDK, synchronous processor, vs no tracer", "Paired/point_select/sdk_sync_vs_off", "off", "sdk_sync"},
		{"point select: gosqlaotel vs the same span directly on the SDK", "Paired/point_select/otel_vs_sdk", "sdk", "otel"},
		{"point select: sqlview vs database/sql over pgx", "Paired/point_select/sqlview_vs_pgx_stdlib", "pgx_stdlib", "sqlview"},
	} {
		fmt.Fprintf(w, "| %s | %s vs %s | %.3f× |\n", x.label, human(r.get(x.name, "ns/"+x.b)), human(r.get(x.name, "ns/"+x.a)), r.get(x.name, x.b+"/"+x.a))
	}
	fmt.Fprintf(w, "\nOne statement span through gosqlaotel and the SDK, without a database: %s ns (batch processor); the same span started directly on the SDK: %s ns.\n\n",
		human(r.get("TracerCost/batch", "ns/op")), human(r.get("TracerCost/sdk_batch", "ns/op")))
	notes(w)
}

func notes(w io.Writer) {
	root, _ := moduleRoot()
	b, err := os.ReadFile(filepath.Join(root, "bench", "report", "notes.md"))
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
