package bench

import (
	"context"
	"reflect"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncsession"
)

// BenchmarkShardedFanout issues 10 000 Gets on a sharded session before awaiting any, over links
// that add 5 ms to every round trip: with every row on one shard, and with the rows split over
// two shards (odd keys on one, even on the other), whose pipelines run at once.
func BenchmarkShardedFanout(b *testing.B) {
	ctx := context.Background()
	shard := func(b *testing.B, keep string) *asyncengine.Engine {
		direct := database(b)
		if keep != "" {
			e := engine(b, direct, "")
			if _, err := e.Exec(ctx, "DELETE FROM items WHERE NOT ("+keep+")"); err != nil {
				b.Fatal(err)
			}
			if _, err := e.Exec(ctx, "VACUUM ANALYZE items"); err != nil {
				b.Fatal(err)
			}
		}
		return engine(b, viaSlowLink(b, direct), "pool_size=1&max_overflow=0")
	}
	run := func(b *testing.B, shards map[string]*asyncengine.Engine, shardOf func(id int64) string) {
		set, err := asyncengine.NewShardSet(shards)
		if err != nil {
			b.Fatal(err)
		}
		chooser := asyncsession.ShardChooser{
			Object: func(obj any) (string, error) { return shardOf(obj.(*Item).ID), nil },
			Key: func(_ reflect.Type, pk any) ([]string, error) {
				return []string{shardOf(pk.(int64))}, nil
			},
		}
		keys := ids(rows)
		op := func() {
			s := asyncsession.NewSharded(set, chooser)
			defer s.Close()
			fs := make([]*asyncengine.Future[*Item], len(keys))
			for i, id := range keys {
				fs[i] = asyncsession.Get[Item](ctx, s, id)
			}
			items, err := asyncengine.All(ctx, fs...)
			if err != nil {
				b.Fatal(err)
			}
			for i, it := range items {
				if it == nil || it.ID != keys[i] {
					b.Fatalf("get %d: %+v", keys[i], it)
				}
			}
		}
		op() // prepares the statement on each shard's connection
		roundTrips := func() (n int64) {
			for _, e := range shards {
				n += e.Stats().RoundTrips
			}
			return n
		}
		before := roundTrips()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			op()
		}
		b.ReportMetric(float64(roundTrips()-before)/float64(b.N), "roundtrips/op")
	}
	b.Run("one_shard", func(b *testing.B) {
		run(b, map[string]*asyncengine.Engine{"all": shard(b, "")}, func(int64) string { return "all" })
	})
	b.Run("two_shards", func(b *testing.B) {
		shards := map[string]*asyncengine.Engine{"odd": shard(b, "id % 2 = 1"), "even": shard(b, "id % 2 = 0")}
		run(b, shards, func(id int64) string {
			if id%2 == 1 {
				return "odd"
			}
			return "even"
		})
	})
}
