package bench

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
	_ "modernc.org/sqlite"
)

const syncTasks = 10_000

// syncTask is three sequential queries, the shape of sync-style code.
func syncTask(ctx context.Context, q func(ctx context.Context, sql string, args ...any) error, id int64) error {
	for _, sql := range []string{pointSelect, "SELECT count(*) FROM items WHERE id <= $1 AND id > $1 - 10", pointSelect} {
		if err := q(ctx, sql, id); err != nil {
			return err
		}
	}
	return nil
}

// acquireTimeout is the sync fan-out's wait for a connection, for both peers: shorter than a run
// takes, so that a waiter not served in time does time out and the count of timeouts means
// something.
const acquireTimeout = 100 * time.Millisecond

// BenchmarkSyncFanout: 10 000 tasks of 3 sequential queries, all started at once, with 15
// connections (pool 5 + overflow 10) and a 100 ms acquire timeout: gosqla's RunSync (default
// worker_queue) against naive goroutines on pgxpool.
func BenchmarkSyncFanout(b *testing.B) {
	url := database(b)
	b.Run("gosqla_runsync", func(b *testing.B) {
		e := engine(b, url, fmt.Sprintf("pool_size=5&max_overflow=10&pool_timeout=%gms", float64(acquireTimeout.Milliseconds())))
		var timeouts atomic.Int64
		var peak float64
		for i := 0; i < b.N; i++ {
			h := watchHeap()
			ctx := context.Background()
			futures := make([]*asyncengine.Future[struct{}], syncTasks)
			for t := range futures {
				futures[t] = asyncengine.RunSync(ctx, e, func(ctx context.Context, c *asyncengine.Conn) (struct{}, error) {
					return struct{}{}, syncTask(ctx, func(ctx context.Context, sql string, args ...any) error {
						_, err := c.Query(ctx, sql, args...)
						return err
					}, int64(t%rows+1))
				})
			}
			for _, f := range futures {
				if _, err := f.Await(ctx); err != nil {
					if errors.Is(err, asyncengine.ErrPoolTimeout) {
						timeouts.Add(1)
						continue
					}
					b.Fatal(err)
				}
			}
			peak = max(peak, h.grownMiB())
		}
		reportRate(b, syncTasks, "tasks/s")
		b.ReportMetric(float64(timeouts.Load())/float64(b.N), "timeouts/op")
		b.ReportMetric(peak, "peak-MiB")
	})
	b.Run("pgxpool_goroutines", func(b *testing.B) {
		p := pgxPool(b, url, 15)
		var timeouts atomic.Int64
		var peak float64
		for i := 0; i < b.N; i++ {
			h := watchHeap()
			var wg sync.WaitGroup
			for t := 0; t < syncTasks; t++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx, cancel := context.WithTimeout(context.Background(), acquireTimeout)
					defer cancel()
					c, err := p.Acquire(ctx)
					if err != nil {
						timeouts.Add(1)
						return
					}
					defer c.Release()
					err = syncTask(context.Background(), func(ctx context.Context, sql string, args ...any) error {
						rows, err := c.Query(ctx, sql, args...)
						if err != nil {
							return err
						}
						rows.Close()
						return rows.Err()
					}, int64(t%rows+1))
					if err != nil {
						b.Error(err)
					}
				}()
			}
			wg.Wait()
			peak = max(peak, h.grownMiB())
		}
		reportRate(b, syncTasks, "tasks/s")
		b.ReportMetric(float64(timeouts.Load())/float64(b.N), "timeouts/op")
		b.ReportMetric(peak, "peak-MiB")
	})
}

// BenchmarkRunSyncQueue: 100 000 RunSync tasks queued at once on a pool of 5+10 with the default
// worker_queue (65 536: beyond it the submitter waits for room): no timeouts, and the heap grows
// by the queue, not by a goroutine per task.
func BenchmarkRunSyncQueue(b *testing.B) {
	url := database(b)
	e := engine(b, url, "pool_size=5&max_overflow=10&pool_timeout=5")
	const tasks = 100_000
	var timeouts int64
	var peak float64
	for i := 0; i < b.N; i++ {
		h := watchHeap()
		ctx := context.Background()
		futures := make([]*asyncengine.Future[int], tasks)
		for t := range futures {
			futures[t] = asyncengine.RunSync(ctx, e, func(ctx context.Context, c *asyncengine.Conn) (int, error) {
				_, err := c.Exec(ctx, "SELECT 1")
				return t, err
			})
		}
		for _, f := range futures {
			if _, err := f.Await(ctx); err != nil {
				if errors.Is(err, asyncengine.ErrPoolTimeout) {
					timeouts++
					continue
				}
				b.Fatal(err)
			}
		}
		peak = max(peak, h.grownMiB())
	}
	reportRate(b, tasks, "tasks/s")
	b.ReportMetric(float64(timeouts)/float64(b.N), "timeouts/op")
	b.ReportMetric(peak, "peak-MiB")
}

const bulkRows = 100_000

// BulkItem is a row of bulk_items, the table every bulk-insert iteration creates afresh.
type BulkItem Item

func (BulkItem) TableName() string { return "bulk_items" }

func bulkItems() []*BulkItem {
	out := make([]*BulkItem, bulkRows)
	for i := range out {
		out[i] = &BulkItem{ID: int64(i + 1), Name: fmt.Sprintf("bulk %d", i), Price: float64(i)}
	}
	return out
}

// bulkRuns counts the calls of BenchmarkBulkInsert in this process, to rotate the order of its
// peers from one call to the next.
var bulkRuns int

// BenchmarkBulkInsert: 100 000 rows through InsertMany, pgx CopyFrom, and multi-row INSERTs, all
// three in every iteration, each timed on its own and reported as its own rows/s. Each peer
// inserts into a bulk_items table created for it (not timed), so that none inserts into a table
// bloated by another's rows; the order of the peers rotates from one iteration, and one run, to
// the next.
func BenchmarkBulkInsert(b *testing.B) {
	url := database(b)
	items := bulkItems()
	ctx := context.Background()
	e := engine(b, url, "")
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	fresh := func() {
		for _, sql := range []string{"DROP TABLE IF EXISTS bulk_items", "CREATE TABLE bulk_items (LIKE items INCLUDING ALL)"} {
			if _, err := e.Exec(ctx, sql); err != nil {
				b.Fatal(err)
			}
		}
	}
	peers := []struct {
		unit string
		run  func() (int64, error)
	}{
		{"insertmany-rows/s", func() (int64, error) {
			s := asyncsession.New(e)
			defer s.Close()
			n, err := asyncsession.InsertMany(ctx, s, items).Await(ctx)
			if err == nil {
				_, err = s.Commit(ctx).Await(ctx)
			}
			return n, err
		}},
		{"copyfrom-rows/s", func() (int64, error) {
			return conn.CopyFrom(ctx, pgx.Identifier{"bulk_items"}, []string{"id", "name", "price"},
				pgx.CopyFromSlice(len(items), func(i int) ([]any, error) {
					return []any{items[i].ID, items[i].Name, items[i].Price}, nil
				}))
		}},
		{"multirow-rows/s", func() (int64, error) {
			const page = 1000
			var total int64
			for start := 0; start < len(items); start += page {
				var sb strings.Builder
				sb.WriteString("INSERT INTO bulk_items (id, name, price) VALUES ")
				args := make([]any, 0, page*3)
				for k, it := range items[start : start+page] {
					if k > 0 {
						sb.WriteString(", ")
					}
					fmt.Fprintf(&sb, "($%d, $%d, $%d)", len(args)+1, len(args)+2, len(args)+3)
					args = append(args, it.ID, it.Name, it.Price)
				}
				tag, err := conn.Exec(ctx, sb.String(), args...)
				if err != nil {
					return total, err
				}
				total += tag.RowsAffected()
			}
			return total, nil
		}},
	}
	spent := make([]time.Duration, len(peers))
	shift := bulkRuns
	bulkRuns++
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := range peers {
			j := (k + shift + i) % len(peers)
			b.StopTimer()
			fresh()
			b.StartTimer()
			start := time.Now()
			n, err := peers[j].run()
			spent[j] += time.Since(start)
			if err != nil || n != bulkRows {
				b.Fatal(peers[j].unit, err, n)
			}
		}
	}
	for j, p := range peers {
		b.ReportMetric(float64(bulkRows)*float64(b.N)/spent[j].Seconds(), p.unit)
	}
}

// BenchmarkUnitOfWork: flushing 1 000 modified objects, against a hand-written pgx.Batch of the
// same UPDATEs. Loading is not timed.
func BenchmarkUnitOfWork(b *testing.B) {
	url := database(b)
	ctx := context.Background()
	e := engine(b, url, "")
	const n = 1000
	b.Run("gosqla_flush", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			s := asyncsession.New(e)
			items, err := asyncsession.Select[Item](ctx, s, "SELECT * FROM items WHERE id <= $1", n).Await(ctx)
			if err != nil {
				b.Fatal(err)
			}
			for _, it := range items {
				it.Price += 1
			}
			b.StartTimer()
			if _, err := s.Flush(ctx).Await(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			s.Close()
			b.StartTimer()
		}
		reportRate(b, n, "objects/s")
	})
	b.Run("pgx_batch", func(b *testing.B) {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close(ctx)
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			tx, err := conn.Begin(ctx)
			if err != nil {
				b.Fatal(err)
			}
			rows, err := tx.Query(ctx, "SELECT id, name, price FROM items WHERE id <= $1", n)
			if err != nil {
				b.Fatal(err)
			}
			items, err := pgx.CollectRows(rows, pgx.RowToAddrOfStructByPos[Item])
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			var batch pgx.Batch
			for _, it := range items {
				batch.Queue(`UPDATE "items" SET "price" = $1 WHERE "id" = $2`, it.Price+1, it.ID)
			}
			if err := tx.SendBatch(ctx, &batch).Close(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			tx.Rollback(ctx)
			b.StartTimer()
		}
		reportRate(b, n, "objects/s")
	})
}

// BenchmarkSQLiteFanout: the fan-out on the embedded default, against database/sql directly.
func BenchmarkSQLiteFanout(b *testing.B) {
	path := filepath.Join(b.TempDir(), "bench.db")
	ctx := context.Background()
	e := engine(b, "sqlite:///"+path, "")
	if _, err := e.Exec(ctx, "CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL, price real NOT NULL)"); err != nil {
		b.Fatal(err)
	}
	if _, err := e.Exec(ctx, "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ?) INSERT INTO items SELECT i, 'item ' || i, i * 0.5 FROM s", rows); err != nil {
		b.Fatal(err)
	}
	const q = "SELECT name, price FROM items WHERE id = ?"
	run := func(b *testing.B, query func(ctx context.Context, id int64) error) {
		for i := 0; i < b.N; i++ {
			g, gctx := errgroup.WithContext(ctx)
			g.SetLimit(fanoutLimit)
			for _, id := range ids(rows) {
				g.Go(func() error { return query(gctx, id) })
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b, rows, "queries/s")
	}
	b.Run("gosqla_engine", func(b *testing.B) {
		run(b, func(ctx context.Context, id int64) error {
			r, err := e.Query(ctx, q, id)
			if err != nil {
				return err
			}
			var name string
			var price float64
			return r.One(&name, &price)
		})
	})
	b.Run("database_sql", func(b *testing.B) {
		db := sqlDB(b, "sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)", 15)
		run(b, func(ctx context.Context, id int64) error {
			var name string
			var price float64
			return db.QueryRowContext(ctx, q, id).Scan(&name, &price)
		})
	})
}
