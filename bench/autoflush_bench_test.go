package bench

import (
	"context"
	"testing"

	"github.com/gosqla/gosqla/asyncsession"
)

// Row is a mapped row of the rows table, with a pointer field: autoflush must see a write
// through it.
type Row struct {
	ID   int64   `db:"id,pk"`
	Name string  `db:"name"`
	Note *string `db:"note"`
}

func (Row) TableName() string { return "rows" }

const (
	autoflushLoaded  = 20_000 // unmodified objects held by the session
	autoflushSelects = 300    // one-row selects per iteration
)

// BenchmarkAutoflush measures what autoflush costs a one-row Select as the session holds more
// unmodified objects: of the table the query reads (same_table) and of another (other_table).
// Compare the ns/select of the loaded cases with empty: the target is at most 3×.
func BenchmarkAutoflush(b *testing.B) {
	url := database(b)
	e := engine(b, url, "")
	ctx := context.Background()
	if _, err := e.Exec(ctx, "CREATE TABLE rows (id bigint PRIMARY KEY, name text NOT NULL, note text)"); err != nil {
		b.Fatal(err)
	}
	if _, err := e.Exec(ctx, "INSERT INTO rows SELECT i, 'row ' || i, 'note' FROM generate_series(1, $1) i", autoflushLoaded); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name, load string
	}{
		{"empty", ""},
		{"same_table", "SELECT * FROM rows"},
		{"other_table", "SELECT * FROM rows"},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := asyncsession.New(e, asyncsession.ExpireOnCommit(false))
			defer s.Close()
			if c.load != "" {
				loaded, err := asyncsession.Select[Row](ctx, s, c.load).Await(ctx)
				if err != nil || len(loaded) != autoflushLoaded {
					b.Fatal(len(loaded), err)
				}
			}
			query := func(i int) error {
				if c.name == "other_table" {
					_, err := asyncsession.Select[Item](ctx, s, "SELECT * FROM items WHERE id = $1", int64(i%rows+1)).Await(ctx)
					return err
				}
				_, err := asyncsession.Select[Row](ctx, s, "SELECT * FROM rows WHERE id = $1", int64(i%autoflushLoaded+1)).Await(ctx)
				return err
			}
			b.ResetTimer()
			for range b.N {
				for i := range autoflushSelects {
					if err := query(i); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*autoflushSelects), "ns/select")
		})
	}
}
