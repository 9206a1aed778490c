package asyncsession_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"context"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBinds(t *testing.T) {
	ctx := enginetest.Context(t)
	main := newEngine(t, enginetest.NewDatabase(t))
	other := newEngine(t, enginetest.NewDatabase(t))
	_, err := other.Exec(ctx, "INSERT INTO authors (id, name) VALUES (7, 'other')")
	require.NoError(t, err)
	s := newSession(t, main, asyncsession.Bind(Book{}, other))
	require.NoError(t, s.Add(&Author{ID: 1, Name: "main"}, &Book{ID: 1, AuthorID: 7, Title: "other"}))
	await(t, s.Commit(ctx))
	assert.EqualValues(t, 1, count(t, main, "authors"))
	assert.EqualValues(t, 0, count(t, main, "books"))
	assert.EqualValues(t, 1, count(t, other, "books"), "Book rows go to the engine it is bound to")
	b := await(t, asyncsession.Get[Book](ctx, s, 1))
	require.NotNil(t, b)
	assert.Equal(t, "other", b.Title)
}

func TestMiddlewareScopesASessionPerRequest(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t))
	m := asyncsession.NewMaker(e)
	var seen []*asyncsession.Session
	h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := asyncsession.FromContext(r.Context())
		seen = append(seen, s)
		if err := s.Add(&Author{ID: int64(len(seen)), Name: r.URL.Query().Get("n")}); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		if _, err := s.Commit(r.Context()).Await(r.Context()); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		io.WriteString(w, "ok")
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, n := range []string{"x", "y"} {
		resp, err := http.Get(srv.URL + "?n=" + n)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, "ok", string(body))
	}
	require.Len(t, seen, 2)
	assert.NotSame(t, seen[0], seen[1])
	_, err := seen[0].Flush(enginetest.Context(t)).Await(enginetest.Context(t))
	assert.ErrorIs(t, err, asyncsession.ErrSessionClosed, "the request's session is closed after it")
	assert.EqualValues(t, 2, count(t, e, "authors"))
}

func TestRepeatableReadPipeline(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t))
	ctx := enginetest.Context(t)
	_, err := e.Exec(ctx, "INSERT INTO authors (id, name) VALUES (1, 'before'), (2, 'before')")
	require.NoError(t, err)
	s := newSession(t, e, asyncsession.Isolation("repeatable read"))
	a := await(t, asyncsession.Get[Author](ctx, s, 1))
	_, err = e.Exec(ctx, "UPDATE authors SET name = 'after'")
	require.NoError(t, err)
	b := await(t, asyncsession.Get[Author](ctx, s, 2))
	assert.Equal(t, "before", a.Name)
	assert.Equal(t, "before", b.Name, "every read of the transaction sees one snapshot")
	await(t, s.Commit(ctx))
	b = await(t, asyncsession.Get[Author](ctx, s, 2))
	assert.Equal(t, "after", b.Name)

	bad := asyncsession.New(e, asyncsession.Isolation("chaos"))
	defer bad.Close()
	assert.ErrorContains(t, bad.Add(&Author{ID: 3}), "isolation")
}

func TestFailingOptionReportedByEveryCall(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		s := newSession(t, e, asyncsession.Isolation("bogus"))
		_, err := asyncsession.Get[Author](ctx, s, 1).Await(ctx)
		require.ErrorContains(t, err, "isolation level")
		_, err = s.Execute(ctx, "SELECT 1").Await(ctx)
		require.ErrorContains(t, err, "isolation level")
		_, err = s.Commit(ctx).Await(ctx)
		require.ErrorContains(t, err, "isolation level")
		require.ErrorContains(t, s.Add(&Author{ID: 1}), "isolation level")
	})
}

func TestMakerBeginWithCancelledContext(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t))
	m := asyncsession.NewMaker(e)
	ctx, cancel := context.WithCancel(enginetest.Context(t))
	err := m.Begin(ctx, func(s *asyncsession.Session) error {
		if err := s.Add(&Author{ID: 1, Name: "a"}); err != nil {
			return err
		}
		if _, err := s.Flush(ctx).Await(ctx); err != nil {
			return err
		}
		cancel()
		return ctx.Err()
	})
	require.ErrorIs(t, err, context.Canceled)
	assert.NotContains(t, err.Error(), "rollback failed")
	assert.EqualValues(t, 0, count(t, e, "authors"))
}
