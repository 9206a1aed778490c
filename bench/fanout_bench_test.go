package bench

import (
	"context"
	"fmt"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
)

// fanout runs one point select per id through an errgroup of limit goroutines.
func fanout(ctx context.Context, limit int, query func(ctx context.Context, id int64) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	for _, id := range ids(rows) {
		g.Go(func() error { return query(gctx, id) })
	}
	return g.Wait()
}

// fanoutPeers are the fan-out workloads, by name, for a database URL and a goroutine limit.
func fanoutPeers(b *testing.B, url string) map[string]func(ctx context.Context, limit int) error {
	e := engine(b, url, fmt.Sprintf("pool_size=%d&max_overflow=0&pool_use_lifo=true", connections))
	p := pgxPool(b, url, connections)
	db := sqlDB(b, "pgx", url, connections)
	warm(b, connections, func(ctx context.Context) error { _, err := e.Query(ctx, "SELECT 1"); return err })
	warm(b, connections, func(ctx context.Context) error { _, err := p.Exec(ctx, "SELECT 1"); return err })
	warm(b, connections, func(ctx context.Context) error { _, err := db.ExecContext(ctx, "SELECT 1"); return err })
	return map[string]func(ctx context.Context, limit int) error{
		"gosqla_engine": func(ctx context.Context, limit int) error {
			return fanout(ctx, limit, func(ctx context.Context, id int64) error {
				r, err := e.Query(ctx, pointSelect, id)
				if err != nil {
					return err
				}
				var name string
				var price float64
				return r.One(&name, &price)
			})
		},
		// one session per connection, shared by the goroutines of the group: each goroutine
		// awaits its own Get, and the Gets queued meanwhile travel as one pipeline
		"gosqla_session": func(ctx context.Context, limit int) error {
			sessions := make([]*asyncsession.Session, connections)
			for i := range sessions {
				sessions[i] = asyncsession.New(e)
				defer sessions[i].Close()
			}
			return fanout(ctx, limit, func(ctx context.Context, id int64) error {
				it, err := asyncsession.Get[Item](ctx, sessions[id%connections], id).Await(ctx)
				if err == nil && it == nil {
					err = errMismatch
				}
				return err
			})
		},
		// the futures style: each connection's session issues its share of Gets before awaiting
		// them, in windows that keep at most limit queries in flight over all connections
		"gosqla_session_futures": func(ctx context.Context, limit int) error {
			window := max(1, limit/connections)
			g, gctx := errgroup.WithContext(ctx)
			for c := 0; c < connections; c++ {
				g.Go(func() error {
					s := asyncsession.New(e)
					defer s.Close()
					futures := make([]*asyncengine.Future[*Item], 0, window)
					want := make([]int64, 0, window)
					for first := int64(c + 1); first <= rows; {
						futures, want = futures[:0], want[:0]
						for id := first; id <= rows && len(futures) < window; id += connections {
							futures = append(futures, asyncsession.Get[Item](gctx, s, id))
							want = append(want, id)
						}
						first = want[len(want)-1] + connections
						got, err := asyncengine.All(gctx, futures...)
						if err != nil {
							return err
						}
						for i, it := range got {
							if it == nil || it.ID != want[i] {
								return errMismatch
							}
						}
					}
					return nil
				})
			}
			return g.Wait()
		},
		"pgxpool": func(ctx context.Context, limit int) error {
			return fanout(ctx, limit, func(ctx context.Context, id int64) error {
				var name string
				var price float64
				return p.QueryRow(ctx, pointSelect, id).Scan(&name, &price)
			})
		},
		// hand-written: each connection sends its share as pgx.Batches, in the same windows as
		// the futures peer
		"pgx_batch": func(ctx context.Context, limit int) error {
			window := max(1, limit/connections)
			g, gctx := errgroup.WithContext(ctx)
			for c := 0; c < connections; c++ {
				g.Go(func() error {
					type row struct {
						name  string
						price float64
					}
					out := make([]row, 0, window)
					conn, err := p.Acquire(gctx)
					if err != nil {
						return err
					}
					defer conn.Release()
					for first := int64(c + 1); first <= rows; first += int64(window * connections) {
						var batch pgx.Batch
						out = out[:0]
						for id, k := first, 0; id <= rows && k < window; id, k = id+connections, k+1 {
							batch.Queue(pointSelect, id).QueryRow(func(r pgx.Row) error {
								var x row
								err := r.Scan(&x.name, &x.price)
								out = append(out, x)
								return err
							})
						}
						if err := conn.SendBatch(gctx, &batch).Close(); err != nil {
							return err
						}
					}
					return nil
				})
			}
			return g.Wait()
		},
		"database_sql": func(ctx context.Context, limit int) error {
			return fanout(ctx, limit, func(ctx context.Context, id int64) error {
				var name string
				var price float64
				return db.QueryRowContext(ctx, pointSelect, id).Scan(&name, &price)
			})
		},
	}
}

var fanoutOrder = []string{"gosqla_engine", "gosqla_session", "gosqla_session_futures", "pgxpool", "pgx_batch", "database_sql"}

// BenchmarkFanout: 10 000 point selects by id, at most 64 in flight, over 10 connections.
func BenchmarkFanout(b *testing.B) {
	peers := fanoutPeers(b, database(b))
	ctx := context.Background()
	for _, name := range fanoutOrder {
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if err := peers[name](ctx, fanoutLimit); err != nil {
					b.Fatal(err)
				}
			}
			reportRate(b, rows, "queries/s")
		})
	}
}

// BenchmarkFanoutConcurrency is the fan-out at several goroutine limits: the chart of
// BENCHMARKS.md.
func BenchmarkFanoutConcurrency(b *testing.B) {
	peers := fanoutPeers(b, database(b))
	ctx := context.Background()
	for _, limit := range []int{1, 4, 16, 64, 256} {
		for _, name := range []string{"gosqla_engine", "gosqla_session", "pgxpool", "database_sql"} {
			b.Run(fmt.Sprintf("%s/limit=%d", name, limit), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					if err := peers[name](ctx, limit); err != nil {
						b.Fatal(err)
					}
				}
				reportRate(b, rows, "queries/s")
			})
		}
	}
}
