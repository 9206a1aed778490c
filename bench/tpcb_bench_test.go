package bench

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The TPC-B-like transaction of pgbench's built-in script, at scale 10, from 10 clients over 10
// connections.
const (
	tpcbScale   = 10
	tpcbClients = 10
	tpcbUpdAcc  = "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2"
	tpcbSelAcc  = "SELECT abalance FROM pgbench_accounts WHERE aid = $1"
	tpcbUpdTel  = "UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2"
	tpcbUpdBra  = "UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2"
	tpcbInsHis  = "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)"
)

// tpcbArgs are one transaction's random account, branch, teller and delta, as pgbench draws them.
type tpcbArgs struct{ aid, bid, tid, delta int64 }

func drawTPCB(r *rand.Rand) tpcbArgs {
	return tpcbArgs{
		aid:   r.Int64N(100000*tpcbScale) + 1,
		bid:   r.Int64N(tpcbScale) + 1,
		tid:   r.Int64N(10*tpcbScale) + 1,
		delta: r.Int64N(10001) - 5000,
	}
}

// tpcbDatabase initializes pgbench's tables at scale 10 in a fresh database.
func tpcbDatabase(b *testing.B) string {
	b.Helper()
	url := database(b)
	out, err := exec.Command("pgbench", "-i", "-q", "-s", strconv.Itoa(tpcbScale), url).CombinedOutput()
	if err != nil {
		b.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	return url
}

// runClients runs b.N transactions from tpcbClients goroutines and reports transactions per
// second, and for an engine the round trips per transaction.
func runClients(b *testing.B, e *asyncengine.Engine, txn func(ctx context.Context, r *rand.Rand) error) {
	b.Helper()
	ctx := context.Background()
	// warm every connection and statement cache
	var wg sync.WaitGroup
	for c := range tpcbClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(c), 7))
			for range 20 {
				if err := txn(ctx, r); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var left atomic.Int64
	left.Store(int64(b.N))
	var trips int64
	if e != nil {
		trips = e.Stats().RoundTrips
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for c := range tpcbClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(c), 11))
			for left.Add(-1) >= 0 {
				if err := txn(ctx, r); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tps")
	if e != nil {
		b.ReportMetric(float64(e.Stats().RoundTrips-trips)/float64(b.N), "round-trips/op")
	}
}

// BenchmarkTPCB runs pgbench's TPC-B-like transaction through gosqla, pgx and SQLAlchemy asyncio,
// and pgbench itself, against the same database.
func BenchmarkTPCB(b *testing.B) {
	url := tpcbDatabase(b)

	b.Run("gosqla_session_futures", func(b *testing.B) {
		e := engine(b, url, fmt.Sprintf("pool_size=%d&max_overflow=0", tpcbClients))
		sessions := make(chan *asyncsession.Session, tpcbClients)
		for range tpcbClients {
			s := asyncsession.New(e)
			b.Cleanup(func() { s.Close() })
			sessions <- s
		}
		runClients(b, e, func(ctx context.Context, r *rand.Rand) error {
			s := <-sessions
			defer func() { sessions <- s }()
			a := drawTPCB(r)
			s.Execute(ctx, tpcbUpdAcc, a.delta, a.aid)
			sel := s.Execute(ctx, tpcbSelAcc, a.aid)
			s.Execute(ctx, tpcbUpdTel, a.delta, a.tid)
			s.Execute(ctx, tpcbUpdBra, a.delta, a.bid)
			s.Execute(ctx, tpcbInsHis, a.tid, a.bid, a.aid, a.delta)
			if _, err := s.Commit(ctx).Await(ctx); err != nil {
				return err
			}
			res, err := sel.Await(ctx)
			if err != nil {
				return err
			}
			var balance int64
			return res.One(&balance)
		})
	})

	b.Run("gosqla_engine_begin", func(b *testing.B) {
		e := engine(b, url, fmt.Sprintf("pool_size=%d&max_overflow=0", tpcbClients))
		runClients(b, e, func(ctx context.Context, r *rand.Rand) error {
			a := drawTPCB(r)
			return e.Begin(ctx, func(c *asyncengine.Conn) error {
				if _, err := c.Exec(ctx, tpcbUpdAcc, a.delta, a.aid); err != nil {
					return err
				}
				res, err := c.Query(ctx, tpcbSelAcc, a.aid)
				if err != nil {
					return err
				}
				var balance int64
				if err := res.One(&balance); err != nil {
					return err
				}
				if _, err := c.Exec(ctx, tpcbUpdTel, a.delta, a.tid); err != nil {
					return err
				}
				if _, err := c.Exec(ctx, tpcbUpdBra, a.delta, a.bid); err != nil {
					return err
				}
				_, err = c.Exec(ctx, tpcbInsHis, a.tid, a.bid, a.aid, a.delta)
				return err
			})
		})
	})

	pgxTx := func(ctx context.Context, tx pgx.Tx, a tpcbArgs) error {
		if _, err := tx.Exec(ctx, tpcbUpdAcc, a.delta, a.aid); err != nil {
			return err
		}
		var balance int64
		if err := tx.QueryRow(ctx, tpcbSelAcc, a.aid).Scan(&balance); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, tpcbUpdTel, a.delta, a.tid); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, tpcbUpdBra, a.delta, a.bid); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, tpcbInsHis, a.tid, a.bid, a.aid, a.delta)
		return err
	}

	b.Run("pgxpool_per_statement", func(b *testing.B) {
		p := pgxPool(b, url, tpcbClients)
		runClients(b, nil, func(ctx context.Context, r *rand.Rand) error {
			a := drawTPCB(r)
			tx, err := p.Begin(ctx)
			if err != nil {
				return err
			}
			if err := pgxTx(ctx, tx, a); err != nil {
				_ = tx.Rollback(ctx)
				return err
			}
			return tx.Commit(ctx)
		})
	})

	b.Run("pgxpool_beginfunc", func(b *testing.B) {
		p := pgxPool(b, url, tpcbClients)
		runClients(b, nil, func(ctx context.Context, r *rand.Rand) error {
			a := drawTPCB(r)
			return pgx.BeginFunc(ctx, p, func(tx pgx.Tx) error { return pgxTx(ctx, tx, a) })
		})
	})

	b.Run("pgx_batch", func(b *testing.B) {
		p := pgxPool(b, url, tpcbClients)
		runClients(b, nil, func(ctx context.Context, r *rand.Rand) error {
			a := drawTPCB(r)
			return tpcbBatch(ctx, p, a)
		})
	})

	b.Run("pgbench_prepared", func(b *testing.B) { pgbench(b, url, "-M", "prepared", "-b", "tpcb-like") })

	b.Run("pgbench_pipeline", func(b *testing.B) {
		script := filepath.Join(b.TempDir(), "tpcb-pipeline.sql")
		if err := os.WriteFile(script, []byte(tpcbPipelineScript), 0o644); err != nil {
			b.Fatal(err)
		}
		pgbench(b, url, "-M", "prepared", "-f", script)
	})

	b.Run("sqlalchemy_asyncio", func(b *testing.B) {
		py := python(b)
		peer, err := filepath.Abs("tpcb_sqlalchemy_peer.py")
		if err != nil {
			b.Fatal(err)
		}
		// one timed run whatever b.N: the peer measures its own rate
		out, err := exec.Command(py, peer, url, strconv.Itoa(tpcbScale), strconv.Itoa(tpcbClients), fmt.Sprint(tpcbSeconds().Seconds())).Output()
		if err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				b.Fatalf("%v\n%s", err, ee.Stderr)
			}
			b.Fatal(err)
		}
		var res map[string]float64
		if err := json.Unmarshal(out, &res); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
		b.ReportMetric(res["asyncio_tps"], "tps")
	})
}

// tpcbBatch is the hand-written pgx program: the whole transaction, BEGIN to COMMIT, as one batch.
func tpcbBatch(ctx context.Context, p *pgxpool.Pool, a tpcbArgs) error {
	var batch pgx.Batch
	batch.Queue("BEGIN")
	batch.Queue(tpcbUpdAcc, a.delta, a.aid)
	batch.Queue(tpcbSelAcc, a.aid)
	batch.Queue(tpcbUpdTel, a.delta, a.tid)
	batch.Queue(tpcbUpdBra, a.delta, a.bid)
	batch.Queue(tpcbInsHis, a.tid, a.bid, a.aid, a.delta)
	batch.Queue("COMMIT")
	br := p.SendBatch(ctx, &batch)
	for range 2 {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return err
		}
	}
	var balance int64
	if err := br.QueryRow().Scan(&balance); err != nil {
		br.Close()
		return err
	}
	for range 4 {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return err
		}
	}
	return br.Close()
}

// tpcbPipelineScript is pgbench's built-in tpcb-like script in pipeline mode.
const tpcbPipelineScript = `\set aid random(1, 100000 * :scale)
\set bid random(1, 1 * :scale)
\set tid random(1, 10 * :scale)
\set delta random(-5000, 5000)
\startpipeline
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;
UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);
END;
\endpipeline
`

// tpcbSeconds is how long each run of an external peer lasts: GOSQLA_TPCB_SECONDS, else one
// second when benchmarks run once (-benchtime=1x, as CI does), else five.
func tpcbSeconds() time.Duration {
	if s, err := strconv.ParseFloat(os.Getenv("GOSQLA_TPCB_SECONDS"), 64); err == nil && s > 0 {
		return time.Duration(s * float64(time.Second))
	}
	if f := flag.Lookup("test.benchtime"); f != nil && f.Value.String() == "1x" {
		return time.Second
	}
	return 5 * time.Second
}

var tpsLine = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)

// pgbench runs pgbench itself with 10 clients and reports its rate.
func pgbench(b *testing.B, url string, args ...string) {
	b.Helper()
	// one timed run whatever b.N: pgbench measures its own rate
	secs := max(int(tpcbSeconds().Seconds()), 1)
	cmd := append([]string{"-n", "-c", strconv.Itoa(tpcbClients), "-j", "2", "-T", strconv.Itoa(secs)}, args...)
	out, err := exec.Command("pgbench", append(cmd, url)...).CombinedOutput()
	if err != nil {
		b.Fatalf("pgbench: %v\n%s", err, out)
	}
	m := tpsLine.FindSubmatch(out)
	if m == nil {
		b.Fatalf("pgbench printed no rate:\n%s", out)
	}
	tps, _ := strconv.ParseFloat(string(m[1]), 64)
	b.ReportMetric(tps, "tps")
}
