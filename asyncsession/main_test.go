package asyncsession_test

import (
	"context"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"
)

func TestMain(m *testing.M) {
	enginetest.Main(m)
}

type Author struct {
	ID    int64   `db:"id,pk,default"`
	Name  string  `db:"name"`
	Email *string `db:"email"`
}

func (Author) TableName() string { return "authors" }

type Book struct {
	ID       int64  `db:"id,pk,default"`
	AuthorID int64  `db:"author_id,fk=authors.id"`
	Title    string `db:"title"`
	Pages    int    `db:"pages"`
}

func (Book) TableName() string { return "books" }

// eachBackend runs fn on PostgreSQL (native driver) and on SQLite, with the schema created.
func eachBackend(t *testing.T, fn func(t *testing.T, e *asyncengine.Engine)) {
	t.Helper()
	enginetest.EachBackend(t, func(t *testing.T, url string) { fn(t, newEngine(t, url)) }, "pgx", "sqlite")
}

func newEngine(t *testing.T, url string) *asyncengine.Engine {
	t.Helper()
	e, err := asyncengine.New(url)
	require.NoError(t, err)
	t.Cleanup(func() { e.Close() })
	require.NoError(t, asyncsession.CreateAll(enginetest.Context(t), e, Book{}, Author{}))
	return e
}

func await[T any](t *testing.T, f *asyncengine.Future[T]) T {
	t.Helper()
	v, err := f.Await(enginetest.Context(t))
	require.NoError(t, err)
	return v
}

func newSession(t *testing.T, e *asyncengine.Engine, opts ...asyncsession.Option) *asyncsession.Session {
	s := asyncsession.New(e, opts...)
	t.Cleanup(func() { s.Close() })
	return s
}

func count(t *testing.T, e *asyncengine.Engine, table string) int64 {
	t.Helper()
	r, err := e.Query(enginetest.Context(t), "SELECT count(*) FROM "+table)
	require.NoError(t, err)
	var n int64
	require.NoError(t, r.One(&n))
	return n
}

// concurrentKeys runs fn on workers goroutines at once, each calling it for its own each keys in
// turn (the i-th key of worker w is w*1000+i+1), and returns the first error.
func concurrentKeys(ctx context.Context, workers, each int, fn func(ctx context.Context, i int, id int64) error) error {
	g, gctx := errgroup.WithContext(ctx)
	for w := 0; w < workers; w++ {
		g.Go(func() error {
			for i := 0; i < each; i++ {
				if err := fn(gctx, i, int64(w*1000+i+1)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}
