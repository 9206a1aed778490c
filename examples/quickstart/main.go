// Command quickstart is gosqla's main example: it creates a small schema, loads a few thousand
// rows, runs a fan-out pipeline (errgroup workers querying through the engine, then a stage of
// sync-style code through RunSync) and prints a short report.
//
// It uses an embedded SQLite database in a temporary file; set DATABASE_URL to run it on
// PostgreSQL instead.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/gosqla/gosqla/asyncengine"
	"golang.org/x/sync/errgroup"
)

const (
	authors = 50
	books   = 4000
)

func main() {
	if err := run(context.Background(), os.Getenv("DATABASE_URL"), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, url string, out io.Writer) error {
	if url == "" {
		dir, err := os.MkdirTemp("", "gosqla-quickstart-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		url = "sqlite:///" + filepath.Join(dir, "quickstart.db")
	}
	e, err := asyncengine.New(url)
	if err != nil {
		return err
	}
	defer e.Close()
	fmt.Fprintf(out, "engine: %s (%s)\n", e.Config(), e.Dialect().Name())
	start := time.Now()

	// Schema and data, in one transaction.
	err = e.Begin(ctx, func(c *asyncengine.Conn) error {
		for _, stmt := range []string{
			"DROP TABLE IF EXISTS qs_books", "DROP TABLE IF EXISTS qs_authors",
			"CREATE TABLE qs_authors (id integer PRIMARY KEY, name text NOT NULL)",
			"CREATE TABLE qs_books (id integer PRIMARY KEY, author_id integer NOT NULL REFERENCES qs_authors(id), title text NOT NULL, pages integer NOT NULL)",
		} {
			if _, err := c.Exec(ctx, stmt); err != nil {
				return err
			}
		}
		for a := 1; a <= authors; a++ {
			if _, err := c.Exec(ctx, "INSERT INTO qs_authors (id, name) VALUES (:id, :name)",
				asyncengine.Named{"id": a, "name": fmt.Sprintf("author %d", a)}); err != nil {
				return err
			}
		}
		for b := 1; b <= books; b++ {
			if _, err := c.Exec(ctx, "INSERT INTO qs_books (id, author_id, title, pages) VALUES (:id, :author, :title, :pages)",
				asyncengine.Named{"id": b, "author": 1 + b%authors, "title": fmt.Sprintf("book %d", b), "pages": 50 + b%400}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	loaded := time.Since(start)

	// Stage 1: fan out over the authors, each errgroup worker querying through the engine.
	pages := make([]int64, authors+1)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for a := 1; a <= authors; a++ {
		g.Go(func() error {
			r, err := e.Query(gctx, "SELECT coalesce(sum(pages), 0) FROM qs_books WHERE author_id = :a", asyncengine.Named{"a": a})
			if err != nil {
				return err
			}
			return r.One(&pages[a])
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}

	// Stage 2: sync-style code (several blocking calls in a row) on the engine's workers, one
	// task per author: the workers bound how many hold a connection at once.
	var updated atomic.Int64
	futures := make([]*asyncengine.Future[int64], 0, authors)
	for a := 1; a <= authors; a++ {
		futures = append(futures, asyncengine.RunSync(ctx, e, func(ctx context.Context, c *asyncengine.Conn) (int64, error) {
			r, err := c.Query(ctx, "SELECT count(*) FROM qs_books WHERE author_id = :a AND pages > 200", asyncengine.Named{"a": a})
			if err != nil {
				return 0, err
			}
			var long int64
			if err := r.One(&long); err != nil {
				return 0, err
			}
			res, err := c.Exec(ctx, "UPDATE qs_authors SET name = :name WHERE id = :a",
				asyncengine.Named{"a": a, "name": fmt.Sprintf("author %d (%d pages, %d long books)", a, pages[a], long)})
			if err != nil {
				return 0, err
			}
			updated.Add(res.RowsAffected())
			return long, nil
		}))
	}
	longBooks, err := asyncengine.All(ctx, futures...)
	if err != nil {
		return err
	}
	var totalLong, totalPages int64
	for a := 1; a <= authors; a++ {
		totalLong += longBooks[a-1]
		totalPages += pages[a]
	}
	r, err := e.Query(ctx, "SELECT name FROM qs_authors WHERE id = 1")
	if err != nil {
		return err
	}
	first, _ := r.Scalar()

	st := e.Stats()
	ws := e.Workers().Stats()
	fmt.Fprintf(out, "loaded %d authors and %d books in %v\n", authors, books, loaded.Round(time.Millisecond))
	fmt.Fprintf(out, "fan-out: %d pages summed by %d queries; %d long books counted, %d authors updated by RunSync\n",
		totalPages, authors, totalLong, updated.Load())
	fmt.Fprintf(out, "sample: %v\n", first)
	fmt.Fprintf(out, "pool: size=%d checked_in=%d checked_out=%d overflow=%d connects=%d waits=%d timeouts=%d\n",
		st.Size, st.CheckedIn, st.CheckedOut, st.Overflow, st.Connects, st.Waits, st.Timeouts)
	fmt.Fprintf(out, "workers: size=%d ran=%d panics=%d\n", ws.Size, ws.Completed, ws.Panics)
	fmt.Fprintf(out, "total time: %v\n", time.Since(start).Round(time.Millisecond))
	return nil
}
