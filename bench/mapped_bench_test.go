package bench

import (
	"context"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/jackc/pgx/v5"
)

const mappedRows = 1000

// BenchmarkMappedRows reads 1000 rows into structs; allocs/row is the figure to compare.
func BenchmarkMappedRows(b *testing.B) {
	url := database(b)
	ctx := context.Background()
	query := "SELECT id, name, price FROM items WHERE id <= 1000"
	b.Run("gosqla_scanall", func(b *testing.B) {
		e := engine(b, url, "")
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			r, err := e.Query(ctx, query)
			if err != nil {
				b.Fatal(err)
			}
			items, err := asyncengine.ScanAll[Item](r)
			if err != nil || len(items) != mappedRows {
				b.Fatal(err, len(items))
			}
		}
	})
	b.Run("gosqla_session_select", func(b *testing.B) {
		e := engine(b, url, "")
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			s := asyncsession.New(e)
			items, err := asyncsession.Select[Item](ctx, s, query).Await(ctx)
			if err != nil || len(items) != mappedRows {
				b.Fatal(err, len(items))
			}
			s.Close()
		}
	})
	b.Run("pgx_collectrows", func(b *testing.B) {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close(ctx)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			rows, _ := conn.Query(ctx, query)
			items, err := pgx.CollectRows(rows, pgx.RowToStructByName[Item])
			if err != nil || len(items) != mappedRows {
				b.Fatal(err, len(items))
			}
		}
	})
}
