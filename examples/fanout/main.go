// Command fanout is a bounded pipeline over one session: list ids, Get each through the
// session's futures (pipelined into a few round trips on PostgreSQL) from an errgroup with a
// limit, score each on the engine's workers (an asyncengine.Group with a limit, no connection
// held), Upsert the results, Commit. It prints timings and round trips.
//
// It uses an embedded SQLite database in a temporary file; set DATABASE_URL to run it on
// PostgreSQL.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncsession"
	"golang.org/x/sync/errgroup"
)

type Product struct {
	ID    int64   `db:"id,pk"`
	Name  string  `db:"name"`
	Price float64 `db:"price"`
}

func (Product) TableName() string { return "fanout_products" }

type Score struct {
	ProductID int64   `db:"product_id,pk,fk=fanout_products.id"`
	Score     float64 `db:"score"`
	Note      string  `db:"note"`
}

func (Score) TableName() string { return "fanout_scores" }

const products = 2000

func main() {
	if err := run(context.Background(), os.Getenv("DATABASE_URL"), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, url string, out io.Writer) error {
	if url == "" {
		dir, err := os.MkdirTemp("", "gosqla-fanout-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		url = "sqlite:///" + filepath.Join(dir, "fanout.db")
	}
	e, err := asyncengine.New(url)
	if err != nil {
		return err
	}
	defer e.Close()
	if err := asyncsession.DropAll(ctx, e, Score{}, Product{}); err != nil {
		return err
	}
	if err := asyncsession.CreateAll(ctx, e, Product{}, Score{}); err != nil {
		return err
	}
	seed := make([]*Product, products)
	for i := range seed {
		seed[i] = &Product{ID: int64(i + 1), Name: fmt.Sprintf("product %d", i+1), Price: float64(1 + i%97)}
	}
	maker := asyncsession.NewMaker(e)
	if err := maker.Begin(ctx, func(s *asyncsession.Session) error {
		_, err := asyncsession.InsertMany(ctx, s, seed).Await(ctx)
		return err
	}); err != nil {
		return err
	}

	start := time.Now()
	tripsBefore := e.Stats().RoundTrips
	s := maker.New()
	defer s.Close()

	// Stage 1: list the ids.
	r, err := s.Execute(ctx, "SELECT id FROM fanout_products ORDER BY id").Await(ctx)
	if err != nil {
		return err
	}
	ids := make([]int64, r.Len())
	for i := range ids {
		if err := r.ScanRow(i, &ids[i]); err != nil {
			return err
		}
	}
	listed := time.Since(start)

	// Stage 2: every goroutine of the group awaits its own Get; the session sends the Gets that
	// queue up meanwhile as one pipeline.
	loaded := make([]*Product, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(64)
	for i, id := range ids {
		g.Go(func() error {
			p, err := asyncsession.Get[Product](gctx, s, id).Await(gctx)
			loaded[i] = p
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	got := time.Since(start) - listed

	// Stage 3: the average comes from the session's connection, inside its transaction; the
	// scoring is CPU-only work, run on the engine's workers without holding a connection, at most
	// 8 tasks at once. The limit is what bounds memory too: a future or a task keeps its result
	// until it is awaited.
	var avg float64
	_, err = s.RunSync(ctx, func(ctx context.Context, c *asyncengine.Conn) error {
		r, err := c.Query(ctx, "SELECT avg(price) FROM fanout_products")
		if err != nil {
			return err
		}
		return r.One(&avg)
	}).Await(ctx)
	if err != nil {
		return err
	}
	scores := make([]*Score, len(loaded))
	stage, _ := asyncengine.NewGroup(ctx, e.Workers())
	stage.SetLimit(8)
	for i, p := range loaded {
		stage.Go(func(context.Context) error {
			scores[i] = &Score{ProductID: p.ID, Score: p.Price / avg, Note: "priced vs average"}
			return nil
		})
	}
	if err := stage.Wait(); err != nil {
		return err
	}
	enriched := time.Since(start) - listed - got

	// Stage 4: upsert the scores and commit.
	if _, err := asyncsession.Upsert(ctx, s, scores).Await(ctx); err != nil {
		return err
	}
	if _, err := s.Commit(ctx).Await(ctx); err != nil {
		return err
	}
	if err := s.Close(); err != nil {
		return err
	}
	total := time.Since(start)
	trips := e.Stats().RoundTrips - tripsBefore

	fmt.Fprintf(out, "engine: %s\n", e.Config())
	fmt.Fprintf(out, "list %d ids: %v\n", len(ids), listed.Round(time.Microsecond))
	fmt.Fprintf(out, "get %d products through one session's futures: %v\n", len(loaded), got.Round(time.Microsecond))
	fmt.Fprintf(out, "score on the workers: %v\n", enriched.Round(time.Microsecond))
	fmt.Fprintf(out, "upsert %d scores and commit: %v\n", len(scores), (total - listed - got - enriched).Round(time.Microsecond))
	if e.Dialect().Name() == "postgresql" {
		fmt.Fprintf(out, "round trips to PostgreSQL: %d (for %d Gets)\n", trips, len(ids))
	} else {
		fmt.Fprintf(out, "round trips: not counted on SQLite (embedded, no network)\n")
	}
	fmt.Fprintf(out, "total: %v\n", total.Round(time.Microsecond))
	return nil
}
