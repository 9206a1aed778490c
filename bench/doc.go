// Package bench holds gosqla's benchmarks: each suite runs gosqla side by side with its peers —
// raw pgx, pgxpool, hand-written pgx.Batch, database/sql and SQLAlchemy — on the same throwaway
// PostgreSQL and data, in one run. `go run ./bench/report` runs them all and writes BENCHMARKS.md.
package bench
