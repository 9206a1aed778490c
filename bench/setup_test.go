package bench

import (
	"context"
	"database/sql"
	"fmt"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib"
)

func TestMain(m *testing.M) { enginetest.Main(m) }

const (
	rows        = 10_000 // rows in the items table, and point selects per fan-out
	connections = 10     // connections every fan-out peer may use
	fanoutLimit = 64     // goroutines in flight (errgroup limit)
	pointSelect = "SELECT name, price FROM items WHERE id = $1"
)

// Item is the mapped row of the items table.
type Item struct {
	ID    int64   `db:"id,pk"`
	Name  string  `db:"name"`
	Price float64 `db:"price"`
}

func (Item) TableName() string { return "items" }

// database creates a database with the items table filled, and returns its URL.
func database(b *testing.B) string {
	b.Helper()
	url := enginetest.NewDatabase(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, price double precision NOT NULL)"); err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO items SELECT i, 'item ' || i, i * 0.5 FROM generate_series(1, $1) i", rows); err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE items"); err != nil {
		b.Fatal(err)
	}
	return url
}

func engine(b *testing.B, url, query string) *asyncengine.Engine {
	b.Helper()
	e, err := asyncengine.New(enginetest.WithQuery(url, query))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	return e
}

func pgxPool(b *testing.B, url string, maxConns int) *pgxpool.Pool {
	b.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = int32(maxConns)
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.Close)
	return p
}

func sqlDB(b *testing.B, driver, dsn string, maxConns int) *sql.DB {
	b.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	b.Cleanup(func() { db.Close() })
	return db
}

// warm opens every connection of a pool before timing starts.
func warm(b *testing.B, n int, query func(ctx context.Context) error) {
	b.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				if err := query(context.Background()); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

// reportRate reports per-second throughput of n operations per iteration.
func reportRate(b *testing.B, n int, unit string) {
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), unit)
}

// heapPeak samples live heap bytes until stopped, and reports the peak growth over the start.
type heapPeak struct {
	start, peak atomic.Uint64
	stop, done  chan struct{}
}

func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func watchHeap() *heapPeak {
	h := &heapPeak{stop: make(chan struct{}), done: make(chan struct{})}
	h.start.Store(heapBytes())
	go func() {
		defer close(h.done)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			if v := heapBytes(); v > h.peak.Load() {
				h.peak.Store(v)
			}
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
		}
	}()
	return h
}

// grownMiB stops the sampler and returns the peak growth in MiB.
func (h *heapPeak) grownMiB() float64 {
	close(h.stop)
	<-h.done
	if h.peak.Load() < h.start.Load() {
		return 0
	}
	return float64(h.peak.Load()-h.start.Load()) / (1 << 20)
}

func ids(n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(i%rows + 1)
	}
	return out
}

var errMismatch = fmt.Errorf("bench: wrong row")
