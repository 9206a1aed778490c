package asyncsession_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// requireUniqueViolation checks that err carries the server's unique violation, matchable with
// errors.As, and is not reported as an earlier failure of the transaction.
func requireUniqueViolation(t *testing.T, err error) {
	t.Helper()
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "23505", pgErr.Code)
	assert.NotErrorIs(t, err, asyncsession.ErrPendingRollback, "the first error is the statement's own")
}

func TestServerErrorsKeepTheirCause(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t))
	ctx := ctxT(t)
	_, err := e.Exec(ctx, "INSERT INTO authors (id, name) VALUES (1, 'taken')")
	require.NoError(t, err)

	t.Run("first statement", func(t *testing.T) {
		s := newSession(t, e)
		_, err := s.Execute(ctx, "INSERT INTO authors (id, name) VALUES (1, 'dup')").Await(ctx)
		requireUniqueViolation(t, err)
		_, err = asyncsession.Get[Author](ctx, s, 1).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrPendingRollback)
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr, "a later request still reaches the cause")
		assert.Equal(t, "23505", pgErr.Code)
	})
	t.Run("flush", func(t *testing.T) {
		s := newSession(t, e)
		require.NoError(t, s.Add(&Author{ID: 1, Name: "dup"}))
		_, err := s.Flush(ctx).Await(ctx)
		requireUniqueViolation(t, err)
	})
	t.Run("commit", func(t *testing.T) {
		s := newSession(t, e)
		require.NoError(t, s.Add(&Author{ID: 1, Name: "dup"}))
		_, err := s.Commit(ctx).Await(ctx)
		requireUniqueViolation(t, err)
	})
	t.Run("savepoint", func(t *testing.T) {
		s := newSession(t, e)
		sp := await(t, s.BeginNested(ctx))
		require.NoError(t, s.Add(&Author{ID: 1, Name: "dup"}))
		_, err := sp.Commit(ctx).Await(ctx)
		requireUniqueViolation(t, err)
		await(t, sp.Rollback(ctx))
		await(t, s.Commit(ctx))
	})
	t.Run("pipelined", func(t *testing.T) {
		s := newSession(t, e)
		require.NoError(t, s.Add(&Author{ID: 1, Name: "dup"}))
		f1 := s.Flush(ctx)
		f2 := s.Execute(ctx, "SELECT 1")
		_, err := f1.Await(ctx)
		requireUniqueViolation(t, err)
		_, err = f2.Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrPendingRollback)
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr)
	})
}

func TestNilObjectsAreRejected(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := ctxT(t)
		s := newSession(t, e)
		require.ErrorIs(t, s.Add((*Author)(nil)), asyncsession.ErrNilObject)
		require.ErrorIs(t, s.Add(&Author{ID: 1, Name: "ok"}, (*Book)(nil)), asyncsession.ErrNilObject)
		require.ErrorIs(t, s.Delete((*Author)(nil)), asyncsession.ErrNilObject)
		_, err := asyncsession.Merge[Author](ctx, s, nil).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrNilObject)
		_, err = s.Refresh(ctx, (*Author)(nil)).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrNilObject)
		_, err = asyncsession.Upsert(ctx, s, []*Author{{ID: 2, Name: "b"}, nil}).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrNilObject)
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 1, count(t, e, "authors"), "the valid object added before the nil one is kept")

		_, err = asyncsession.InsertMany(ctx, s, []*Author{{ID: 3, Name: "c"}, nil}).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrNilObject)
		await(t, s.Rollback(ctx))
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 1, count(t, e, "authors"))
	})
}

func TestCallsAfterCloseFail(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := ctxT(t)
		s := asyncsession.New(e)
		a := &Author{ID: 1, Name: "a"}
		require.NoError(t, s.Add(a))
		await(t, s.Commit(ctx))
		_ = await(t, asyncsession.Get[Author](ctx, s, 1))
		require.NoError(t, s.Close())
		require.ErrorIs(t, s.Add(&Author{ID: 2, Name: "b"}), asyncsession.ErrSessionClosed)
		require.ErrorIs(t, s.Delete(a), asyncsession.ErrSessionClosed)
		_, err := asyncsession.Get[Author](ctx, s, 1).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrSessionClosed, "even a key the identity map holds")
		_, err = s.Commit(ctx).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrSessionClosed)
		require.NoError(t, s.Close(), "a second Close is harmless")
	})
}

func TestFailingOptionReportedByEveryCall(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := ctxT(t)
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

func TestArgumentsRejectedBeforeSending(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := ctxT(t)
		s := newSession(t, e)
		_, err := s.Execute(ctx, "SELECT name FROM authors WHERE id = :id").Await(ctx)
		var ae *asyncengine.ArgumentError
		require.ErrorAs(t, err, &ae)
		assert.Equal(t, "id", ae.Missing)
		assert.ErrorIs(t, err, asyncengine.ErrInvalidArgument)
		assert.Contains(t, err.Error(), "Named")

		_, err = asyncsession.Select[Author](ctx, s, "SELECT * FROM authors WHERE id = :id", map[string]any{"id": 1}).Await(ctx)
		require.ErrorAs(t, err, &ae)
		assert.Contains(t, err.Error(), "asyncengine.Named")
		assert.NotContains(t, err.Error(), "placeholder(s)")

		// nothing was sent: the session is as usable as before
		require.NoError(t, s.Add(&Author{ID: 1, Name: "a"}))
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 1, count(t, e, "authors"))

		_, err = asyncsession.Get[Author](ctx, s, "one").Await(ctx)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "Author")
		assert.Contains(t, err.Error(), "id int64")
	})
}

func TestUpsertWritesEachObjectAsItSays(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := ctxT(t)
		s := newSession(t, e)
		first := await(t, asyncsession.Upsert(ctx, s, []*Author{{Name: "first"}}))
		id := first[0].ID
		require.NotZero(t, id)

		got := await(t, asyncsession.Upsert(ctx, s, []*Author{{Name: "new"}, {ID: id, Name: "v2"}}))
		require.Len(t, got, 2)
		assert.Equal(t, "new", got[0].Name)
		assert.NotEqual(t, id, got[0].ID)
		assert.Equal(t, id, got[1].ID)
		got = await(t, asyncsession.Upsert(ctx, s, []*Author{{ID: id, Name: "v3"}, {Name: "newer"}}))
		assert.Equal(t, id, got[0].ID)
		assert.NotZero(t, got[1].ID)
		await(t, s.Commit(ctx))

		assert.EqualValues(t, 3, count(t, e, "authors"), "an update is never inserted as a new row")
		r, err := e.Query(ctx, "SELECT name FROM authors WHERE id = "+fmt.Sprint(id))
		require.NoError(t, err)
		name, _ := r.Scalar()
		assert.Equal(t, "v3", name)
		r, err = e.Query(ctx, "SELECT count(*) FROM authors WHERE id = 0")
		require.NoError(t, err)
		n, _ := r.Scalar()
		assert.EqualValues(t, 0, n, "no row written with a zero key")
	})
}

func TestSelectLoadsOnlyWholeObjects(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := ctxT(t)
		_, err := e.Exec(ctx, "INSERT INTO authors (id, name, email) VALUES (1, 'a', 'a@x')")
		require.NoError(t, err)
		s := newSession(t, e)
		_, err = asyncsession.Select[Author](ctx, s, "SELECT id, name FROM authors").Await(ctx)
		var me *asyncsession.MappingError
		require.ErrorAs(t, err, &me)
		assert.Contains(t, err.Error(), "email")
		await(t, s.Rollback(ctx))

		_, err = asyncsession.Select[Author](ctx, s, "SELECT id, name, email, 1 AS extra FROM authors").Await(ctx)
		require.ErrorAs(t, err, &me)
		assert.Contains(t, err.Error(), "extra")
		await(t, s.Rollback(ctx))

		a := await(t, asyncsession.Get[Author](ctx, s, 1))
		require.NotNil(t, a)
		require.NotNil(t, a.Email, "no half-loaded object was left in the identity map")
		assert.Equal(t, "a@x", *a.Email)
	})
}

// strictInt refuses values above 100 when scanned: a column the server fills with more makes a
// result that cannot be read after the write was executed.
type strictInt int64

func (v *strictInt) Scan(src any) error {
	n, ok := src.(int64)
	if !ok || n > 100 {
		return fmt.Errorf("strictInt: %v out of range", src)
	}
	*v = strictInt(n)
	return nil
}

type Gauge struct {
	ID int64     `db:"id,pk"`
	V  strictInt `db:"v,default"`
}

func (Gauge) TableName() string { return "gauges" }

func TestFailureAfterExecutionLeavesPendingRollback(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := ctxT(t)
		_, err := e.Exec(ctx, "CREATE TABLE gauges (id bigint PRIMARY KEY, v bigint DEFAULT 1000)")
		require.NoError(t, err)
		s := newSession(t, e)
		_, err = asyncsession.Upsert(ctx, s, []*Gauge{{ID: 1}}).Await(ctx)
		require.ErrorContains(t, err, "out of range")
		_, err = s.Commit(ctx).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrPendingRollback, "the write the caller was told failed is not committed")
		await(t, s.Rollback(ctx))
		assert.EqualValues(t, 0, count(t, e, "gauges"))
	})
}

func TestRequestNeverSentMarksNothing(t *testing.T) {
	url := enginetest.NewDatabase(t)
	e := newEngine(t, url+"&pool_size=1&max_overflow=0&pool_timeout=0.2")
	ctx := ctxT(t)
	s := newSession(t, e)
	held, err := e.Connect(ctx)
	require.NoError(t, err)
	require.NoError(t, s.Add(&Author{ID: 1, Name: "a"}))
	_, err = s.Flush(ctx).Await(ctx)
	require.ErrorIs(t, err, asyncengine.ErrPoolTimeout)
	require.NoError(t, held.Close())

	got := await(t, asyncsession.Get[Author](ctx, s, 1))
	require.NotNil(t, got, "no phantom failed transaction; the pending insert was kept and flushed")
	await(t, s.Commit(ctx))
	assert.EqualValues(t, 1, count(t, e, "authors"))
}

func TestFirstRequestFailingAtPrepareReportsItsStatement(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t))
	ctx := ctxT(t)
	s := newSession(t, e)
	_, err := s.Execute(ctx, "SELECT * FROM no_such_table").Await(ctx)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "42P01", pgErr.Code)
	assert.NotErrorIs(t, err, asyncsession.ErrPendingRollback)
	// nothing ran: the session goes on without a Rollback
	require.NoError(t, s.Add(&Author{ID: 1, Name: "a"}))
	await(t, s.Commit(ctx))
	assert.EqualValues(t, 1, count(t, e, "authors"))
}

func TestMakerBeginWithCancelledContext(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t))
	m := asyncsession.NewMaker(e)
	ctx, cancel := context.WithCancel(ctxT(t))
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

// boomer panics when scanned: user code running on the session's goroutine.
type boomer int64

func (*boomer) Scan(any) error { panic("boom") }

type Boom struct {
	ID int64  `db:"id,pk"`
	V  boomer `db:"v"`
}

func (Boom) TableName() string { return "booms" }

func TestPanicInSessionFailsItsRequests(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := ctxT(t)
		_, err := e.Exec(ctx, "CREATE TABLE booms (id bigint PRIMARY KEY, v bigint)")
		require.NoError(t, err)
		_, err = e.Exec(ctx, "INSERT INTO booms VALUES (1, 1)")
		require.NoError(t, err)
		s := newSession(t, e)
		before := e.Stats().Invalidations
		_, err = asyncsession.Get[Boom](ctx, s, 1).Await(ctx)
		var pe *asyncengine.PanicError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, "boom", pe.Value)
		_, err = s.Execute(ctx, "SELECT 1").Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrPendingRollback, "the transaction was lost with the connection")
		assert.Greater(t, e.Stats().Invalidations, before, "the connection in use is not returned to the pool")
		await(t, s.Rollback(ctx))
		await(t, s.Execute(ctx, "SELECT 1"))
	})
}

func TestPanicInBulkSequenceInvalidatesTheConnection(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t))
	ctx := ctxT(t)
	s := newSession(t, e)
	before := e.Stats().Invalidations
	seq := func(yield func(*Author) bool) {
		yield(&Author{ID: 1, Name: "a"})
		panic("bad sequence")
	}
	_, err := asyncsession.InsertSeq(ctx, s, seq).Await(ctx)
	var pe *asyncengine.PanicError
	require.ErrorAs(t, err, &pe)
	assert.Greater(t, e.Stats().Invalidations, before, "a connection left mid-COPY is not reused")
	await(t, s.Rollback(ctx))
	await(t, s.Execute(ctx, "SELECT 1"))
	assert.EqualValues(t, 0, count(t, e, "authors"))
}

func TestCancellationAffectsOnlyItsRequest(t *testing.T) {
	url := enginetest.NewDatabase(t)
	e := newEngine(t, url)
	ctx := ctxT(t)
	s := newSession(t, e)
	// hold the session's goroutine so that the two requests below queue and travel together
	release := holdSession(t, s)
	long := s.Execute(context.Background(), "SELECT pg_sleep(1), 'marker_long'")
	short, cancel := context.WithCancel(ctx)
	other := s.Execute(short, "SELECT 1")
	release()
	// wait until the pipeline carrying both requests is on the server, then cancel one of them
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := e.Query(ctx, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%marker_long%' AND pid <> pg_backend_pid()")
		require.NoError(t, err)
		n, _ := r.Scalar()
		if n.(int64) > 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the pipeline never reached the server")
	}
	cancel()
	_, err := long.Await(ctx)
	require.NoError(t, err, "a request whose context never ends is not cancelled by another's")
	_, _ = other.Await(ctx)
}

func TestSessionRunSyncReleasesAfterItsFunction(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := ctxT(t)
		s := newSession(t, e)
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		inner := make(chan error, 1)
		f := s.RunSync(short, func(_ context.Context, c *asyncengine.Conn) error {
			<-short.Done() // outlives its caller's context
			_, err := c.Exec(context.Background(), "INSERT INTO authors (id, name) VALUES (1, 'sync')")
			inner <- err
			return err
		})
		_, _ = f.Await(short)
		await(t, s.Commit(ctx))
		require.NoError(t, <-inner, "the connection stayed the function's until it returned")
		assert.EqualValues(t, 1, count(t, e, "authors"))
	})
}

func TestErrorsNameWhatToFix(t *testing.T) {
	err := fmt.Errorf("x: %w", asyncsession.ErrNilObject)
	assert.True(t, errors.Is(err, asyncsession.ErrNilObject))
	assert.True(t, strings.Contains(asyncsession.ErrNilObject.Error(), "nil"))
}

func TestExecuteRunsOneStatementPerCall(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := ctxT(t)
		s := newSession(t, e)
		for _, sql := range []string{"SAVEPOINT x; DROP TABLE books", "SELECT 1; DROP TABLE books", "SELECT 1; -- c\n DROP TABLE books"} {
			_, err := s.Execute(ctx, sql).Await(ctx)
			var ae *asyncengine.ArgumentError
			require.ErrorAs(t, err, &ae, sql)
			assert.Contains(t, err.Error(), "one per call")
		}
		_, err := asyncsession.Select[Author](ctx, s, "SELECT * FROM authors; DROP TABLE books").Await(ctx)
		require.ErrorIs(t, err, asyncengine.ErrInvalidArgument)
		await(t, s.Execute(ctx, "SELECT ';' AS a; -- a trailing semicolon and comment are one statement"))
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 0, count(t, e, "books"), "the table is still there")
	})
}

func TestAutoflushSendsChangesBeforeAQueryReadingTheirTable(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := ctxT(t)
		_, err := e.Exec(ctx, "INSERT INTO authors (id, name) VALUES (1, 'old'), (2, 'two')")
		require.NoError(t, err)
		s := newSession(t, e)
		all := await(t, asyncsession.Select[Author](ctx, s, "SELECT * FROM authors ORDER BY id"))
		require.Len(t, all, 2)
		name := func(ctx context.Context, sql string) any {
			r := await(t, s.Execute(ctx, sql))
			v, err := r.Scalar()
			require.NoError(t, err)
			return v
		}
		all[0].Name = "new"
		assert.Equal(t, "new", name(ctx, `SELECT name FROM AUTHORS WHERE id = 1`), "a differently cased table name is seen")
		all[0].Name = "newer"
		assert.Equal(t, "newer", name(ctx, `SELECT name FROM "authors" WHERE id = 1`), "a quoted table name is seen")
		mail := "a@x"
		all[1].Email = &mail
		assert.Equal(t, "a@x", name(ctx, "SELECT email FROM authors WHERE id = 2"), "a pointer field set is seen")

		all[0].Name = "hidden"
		off := asyncsession.NoAutoflush(ctx)
		assert.Equal(t, "newer", name(off, "SELECT name FROM authors WHERE id = 1"), "no autoflush under NoAutoflush")
		await(t, s.Flush(ctx))
		assert.Equal(t, "hidden", name(off, "SELECT name FROM authors WHERE id = 1"), "Flush still flushes")
	})
}

// A statement refused at prepare time inside an open transaction ran nothing: the autoflush
// planned before it did not run either, and the request gets its own statement's error.
func TestPrepareFailureInsideATransaction(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t))
	ctx := ctxT(t)
	_, err := e.Exec(ctx, "INSERT INTO authors (id, name) VALUES (1, 'old')")
	require.NoError(t, err)
	s := newSession(t, e)
	a := await(t, asyncsession.Get[Author](ctx, s, 1))
	a.Name = "changed"
	_, err = s.Execute(ctx, "SELECT name FROM authors JOIN no_such_table USING (id)").Await(ctx)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "42P01", pgErr.Code)
	assert.NotErrorIs(t, err, asyncsession.ErrPendingRollback)
	_, err = s.Commit(ctx).Await(ctx)
	require.ErrorIs(t, err, asyncsession.ErrPendingRollback, "the server aborted the transaction")
	await(t, s.Rollback(ctx))
}

func TestUnsentFlushKeepsUpdates(t *testing.T) {
	url := enginetest.NewDatabase(t)
	e := newEngine(t, url+"&pool_size=1&max_overflow=0&pool_timeout=0.2")
	ctx := ctxT(t)
	_, err := e.Exec(ctx, "INSERT INTO authors (id, name) VALUES (1, 'old')")
	require.NoError(t, err)
	s := newSession(t, e, asyncsession.ExpireOnCommit(false))
	a := await(t, asyncsession.Get[Author](ctx, s, 1))
	await(t, s.Commit(ctx))
	a.Name = "changed"
	held, err := e.Connect(ctx)
	require.NoError(t, err)
	_, err = s.Flush(ctx).Await(ctx)
	require.ErrorIs(t, err, asyncengine.ErrPoolTimeout)
	require.NoError(t, held.Close())
	await(t, s.Commit(ctx))
	r, err := e.Query(ctx, "SELECT name FROM authors WHERE id = 1")
	require.NoError(t, err)
	n, _ := r.Scalar()
	assert.Equal(t, "changed", n, "the update planned for the flush that never ran is sent by the next one")
}

// An engine RunSync nested in the session's RunSync runs inline with the session's connection,
// inside its transaction, even when the pool has nothing left.
func TestNestedRunSyncInSessionRunSync(t *testing.T) {
	url := enginetest.NewDatabase(t)
	e := newEngine(t, url+"&pool_size=1&max_overflow=0&workers=1")
	ctx := ctxT(t)
	s := newSession(t, e)
	require.NoError(t, s.Add(&Author{ID: 1, Name: "a"}))
	wait, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err := s.RunSync(wait, func(ctx context.Context, c *asyncengine.Conn) error {
		n, err := asyncengine.RunSync(ctx, e, func(ctx context.Context, inner *asyncengine.Conn) (int64, error) {
			r, err := inner.Query(ctx, "SELECT count(*) FROM authors")
			if err != nil {
				return 0, err
			}
			var n int64
			return n, r.One(&n)
		}).Await(ctx)
		if n != 1 {
			return fmt.Errorf("the nested call saw %d authors, not the session's flushed one", n)
		}
		return err
	}).Await(wait)
	require.NoError(t, err)
}

// A Commit issued with a write whose returned row cannot be stored waits for that result: the
// write the caller was told failed is not committed. A read that fails in the same pipeline as a
// COMMIT cannot stop it: Commit's error matches ErrCommitted.
func TestCommitInTheSamePipelineAsALateFailure(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := ctxT(t)
		_, err := e.Exec(ctx, "CREATE TABLE gauges (id bigint PRIMARY KEY, v bigint DEFAULT 1000)")
		require.NoError(t, err)
		s := newSession(t, e)
		release := holdSession(t, s)
		up := asyncsession.Upsert(ctx, s, []*Gauge{{ID: 1}})
		commit := s.Commit(ctx)
		release()
		_, err = up.Await(ctx)
		require.ErrorContains(t, err, "out of range")
		_, err = commit.Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrPendingRollback)
		require.ErrorContains(t, err, "out of range")
		await(t, s.Rollback(ctx))
		assert.Zero(t, count(t, e, "gauges"), "the failed Upsert is not committed")

		_, err = e.Exec(ctx, "INSERT INTO gauges (id) VALUES (2)")
		require.NoError(t, err)
		require.NoError(t, s.Add(&Author{ID: 1, Name: "a"}))
		release = holdSession(t, s)
		sel := asyncsession.Select[Gauge](ctx, s, "SELECT * FROM gauges")
		commit = s.Commit(ctx)
		release()
		_, err = sel.Await(ctx)
		require.ErrorContains(t, err, "out of range")
		_, err = commit.Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrCommitted)
		require.ErrorContains(t, err, "out of range")
		assert.EqualValues(t, 1, count(t, e, "authors"))
	})
}

// holdSession keeps the session's goroutine busy until release is called, so that the requests
// made meanwhile queue and travel together in the next pipeline.
func holdSession(t *testing.T, s *asyncsession.Session) (release func()) {
	started, done := make(chan struct{}), make(chan struct{})
	blocker := s.RunSync(ctxT(t), func(context.Context, *asyncengine.Conn) error {
		close(started)
		<-done
		return nil
	})
	<-started
	return func() {
		close(done)
		await(t, blocker)
	}
}

type UUIDKeyed struct {
	ID   [16]byte `db:"id,pk,type=uuid"`
	Name string   `db:"name"`
}

// Add(nil) is ErrNilObject; a [16]byte key takes the uuid's text form; a wrong key type says
// which type to pass.
func TestKeyAndNilMisuses(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t))
	ctx := ctxT(t)
	require.NoError(t, asyncsession.CreateAll(ctx, e, UUIDKeyed{}))
	s := newSession(t, e)
	require.ErrorIs(t, s.Add(nil), asyncsession.ErrNilObject)
	id := [16]byte{0x12, 0x34, 0x56, 0x78, 0x12, 0x34, 0x12, 0x34, 0x12, 0x34, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc}
	require.NoError(t, s.Add(&UUIDKeyed{ID: id, Name: "u"}))
	await(t, s.Commit(ctx))
	got := await(t, asyncsession.Get[UUIDKeyed](ctx, newSession(t, e), "12345678-1234-1234-1234-123456789abc"))
	require.NotNil(t, got)
	assert.Equal(t, id, got.ID)
	_, err := asyncsession.Get[Author](ctx, s, struct{}{}).Await(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "pass the key as int64")
}
