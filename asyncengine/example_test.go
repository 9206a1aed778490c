package asyncengine_test

import (
	"context"
	"fmt"

	"github.com/gosqla/gosqla/asyncengine"
)

func Example() {
	ctx := context.Background()
	e, err := asyncengine.New("sqlite://")
	if err != nil {
		panic(err)
	}
	defer e.Close()
	_, err = e.Exec(ctx, "CREATE TABLE users (id integer PRIMARY KEY, name text)")
	if err != nil {
		panic(err)
	}
	err = e.Begin(ctx, func(c *asyncengine.Conn) error {
		for i, name := range []string{"ada", "grace"} {
			if _, err := c.Exec(ctx, "INSERT INTO users VALUES (:id, :name)", asyncengine.Named{"id": i + 1, "name": name}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		panic(err)
	}
	r, err := e.Query(ctx, "SELECT id, name FROM users ORDER BY id")
	if err != nil {
		panic(err)
	}
	type user struct {
		ID   int    `db:"id"`
		Name string `db:"name"`
	}
	users, err := asyncengine.ScanAll[user](r)
	if err != nil {
		panic(err)
	}
	fmt.Println(users)
	// Output: [{1 ada} {2 grace}]
}

func ExampleRunSync() {
	ctx := context.Background()
	e, err := asyncengine.New("sqlite://")
	if err != nil {
		panic(err)
	}
	defer e.Close()
	// Sync-style code runs on the engine's workers, as many at once as the pool has connections.
	futures := make([]*asyncengine.Future[int64], 5)
	for i := range futures {
		futures[i] = asyncengine.RunSync(ctx, e, func(ctx context.Context, c *asyncengine.Conn) (int64, error) {
			r, err := c.Query(ctx, "SELECT :n * :n", asyncengine.Named{"n": i})
			if err != nil {
				return 0, err
			}
			var sq int64
			return sq, r.One(&sq)
		})
	}
	squares, err := asyncengine.All(ctx, futures...)
	fmt.Println(squares, err)
	// Output: [0 1 4 9 16] <nil>
}

func ExampleParseConfig() {
	cfg, err := asyncengine.ParseConfig("postgresql://app:secret@db.internal/app?pool_size=20&pool_pre_ping=true&sslmode=require")
	if err != nil {
		panic(err)
	}
	fmt.Println(cfg.PoolSize, cfg.MaxOverflow, cfg.PoolPrePing, cfg.PoolTimeout)
	fmt.Println(cfg)
	_, err = asyncengine.ParseConfig("postgresql://db/app?pool_size=-3")
	fmt.Println(err)
	// Output:
	// 20 10 true 30s
	// postgresql://app:xxxxx@db.internal/app?sslmode=require
	// gosqla: invalid configuration: pool_size="-3" (allowed: an integer >= 0 (0 = no limit))
}
