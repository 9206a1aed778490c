package asyncsession_test

import (
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/stretchr/testify/require"
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
