package bench

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// BenchmarkCheckout: checkout + checkin of a warm pool.
func BenchmarkCheckout(b *testing.B) {
	url := database(b)
	ctx := context.Background()
	b.Run("gosqla", func(b *testing.B) { checkoutOn(b, engine(b, url, "pool_size=10&max_overflow=0"), false) })
	b.Run("pgxpool", func(b *testing.B) {
		p := pgxPool(b, url, 10)
		warm(b, 1, func(ctx context.Context) error { _, err := p.Exec(ctx, "SELECT 1"); return err })
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			c, err := p.Acquire(ctx)
			if err != nil {
				b.Fatal(err)
			}
			c.Release()
		}
	})
	b.Run("database_sql", func(b *testing.B) {
		db := sqlDB(b, "pgx", url, 10)
		warm(b, 1, func(ctx context.Context) error { _, err := db.ExecContext(ctx, "SELECT 1"); return err })
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			c, err := db.Conn(ctx)
			if err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	})
}

// BenchmarkPointSelect: one query by primary key, one goroutine.
func BenchmarkPointSelect(b *testing.B) {
	url := database(b)
	ctx := context.Background()
	check := func(b *testing.B, name string) {
		if name == "" {
			b.Fatal(errMismatch)
		}
	}
	b.Run("gosqla", func(b *testing.B) { pointSelectOn(b, engine(b, url, ""), false) })
	b.Run("pgx_conn", func(b *testing.B) {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close(ctx)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			var name string
			var price float64
			if err := conn.QueryRow(ctx, pointSelect, int64(i%rows+1)).Scan(&name, &price); err != nil {
				b.Fatal(err)
			}
			check(b, name)
		}
	})
	b.Run("pgxpool", func(b *testing.B) {
		p := pgxPool(b, url, 10)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			var name string
			var price float64
			if err := p.QueryRow(ctx, pointSelect, int64(i%rows+1)).Scan(&name, &price); err != nil {
				b.Fatal(err)
			}
			check(b, name)
		}
	})
	b.Run("database_sql", func(b *testing.B) {
		db := sqlDB(b, "pgx", url, 10)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			var name string
			var price float64
			if err := db.QueryRowContext(ctx, pointSelect, int64(i%rows+1)).Scan(&name, &price); err != nil {
				b.Fatal(err)
			}
			check(b, name)
		}
	})
}
