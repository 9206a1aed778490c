package bench

import (
	"context"
	"iter"
	"runtime"
	"runtime/metrics"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncsession"
)

const (
	millionRows  = 1_000_000
	millionQuery = "SELECT i AS id, 'item ' || i AS name, i * 0.5 AS price FROM generate_series(1, 1000000) i"
)

// heapGrowth samples the live heap while a read runs and reports its largest growth over the heap
// at the start, in MiB.
type heapGrowth struct {
	sample [1]metrics.Sample
	base   uint64
	peak   uint64
}

func newHeapGrowth() *heapGrowth {
	runtime.GC()
	h := &heapGrowth{sample: [1]metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}}
	metrics.Read(h.sample[:])
	h.base = h.sample[0].Value.Uint64()
	h.peak = h.base
	return h
}

func (h *heapGrowth) observe() {
	metrics.Read(h.sample[:])
	h.peak = max(h.peak, h.sample[0].Value.Uint64())
}

func (h *heapGrowth) report(b *testing.B) {
	b.ReportMetric(float64(h.peak-h.base)/(1<<20), "heap-growth-MiB")
}

// readMillion reads the million rows of millionQuery from seq, sampling the heap every 50 000
// rows, and fails the benchmark on an error, a row without its key or a row count off.
func readMillion[T any](b *testing.B, h *heapGrowth, seq iter.Seq2[T, error], id func(T) int64) {
	n := 0
	for item, err := range seq {
		if err != nil || id(item) == 0 {
			b.Fatal(err)
		}
		if n++; n%50_000 == 0 {
			h.observe()
		}
	}
	if n != millionRows {
		b.Fatal(n)
	}
}

// BenchmarkStreamMillion reads a million rows into structs: streamed (engine and session) the heap
// grows by a few MiB; buffered, by the size of the result.
func BenchmarkStreamMillion(b *testing.B) {
	url := database(b)
	ctx := context.Background()
	b.Run("gosqla_engine_stream", func(b *testing.B) {
		e := engine(b, url, "")
		h := newHeapGrowth()
		b.ResetTimer()
		for range b.N {
			readMillion(b, h, asyncengine.ScanEach[Item](e.Stream(ctx, millionQuery)), func(item Item) int64 { return item.ID })
		}
		h.report(b)
	})
	b.Run("gosqla_session_stream", func(b *testing.B) {
		e := engine(b, url, "")
		h := newHeapGrowth()
		b.ResetTimer()
		for range b.N {
			s := asyncsession.New(e)
			readMillion(b, h, asyncsession.Stream[Item](ctx, s, millionQuery), func(item *Item) int64 { return item.ID })
			s.Close()
		}
		h.report(b)
	})
	b.Run("gosqla_buffered_scanall", func(b *testing.B) {
		e := engine(b, url, "")
		h := newHeapGrowth()
		b.ResetTimer()
		for range b.N {
			r, err := e.Query(ctx, millionQuery)
			if err != nil {
				b.Fatal(err)
			}
			h.observe()
			items, err := asyncengine.ScanAll[Item](r)
			if err != nil || len(items) != millionRows {
				b.Fatal(err)
			}
			h.observe()
		}
		h.report(b)
	})
}
