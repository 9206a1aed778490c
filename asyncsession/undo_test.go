package asyncsession_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
)

// A flush that fails on one engine fails on all of them: the part that ran on another engine
// leaves its objects as it found them, so that after Rollback its changes are still written —
// whichever engine's part comes first.
func TestFailedFlushOverTwoEngines(t *testing.T) {
	for _, gone := range []string{"authors", "moments"} {
		t.Run(gone, func(t *testing.T) {
			ctx := enginetest.Context(t)
			e1, e2 := newEngine(t, enginetest.NewDatabase(t)), newEngine(t, enginetest.NewDatabase(t))
			_, err := e2.Exec(ctx, "CREATE TABLE moments (id bigserial PRIMARY KEY, at timestamp NOT NULL)")
			require.NoError(t, err)
			s := newSession(t, e1, asyncsession.Bind(Moment{}, e2))
			a, m := &Author{ID: 1, Name: "a"}, &Moment{ID: 1}
			require.NoError(t, s.Add(a, m))
			await(t, s.Commit(ctx))
			e := map[string]*asyncengine.Engine{"authors": e1, "moments": e2}[gone]
			_, err = e.Exec(ctx, "DELETE FROM "+gone)
			require.NoError(t, err)

			a.Name, m.At = "a2", time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
			_, err = s.Flush(ctx).Await(ctx)
			require.ErrorIs(t, err, asyncsession.ErrStaleObject)
			await(t, s.Rollback(ctx))
			if gone == "authors" {
				s.Expunge(a)
				await(t, s.Commit(ctx))
				assert.EqualValues(t, 1, count(t, e2, "moments WHERE at > '2000-01-01'"), "the other engine's change is written")
			} else {
				s.Expunge(m)
				await(t, s.Commit(ctx))
				assert.Equal(t, "a2", authorName(t, e1, 1), "the other engine's change is written")
			}
		})
	}
}

// A flush that travelled after a request whose results could not be stored (a Scan method that
// panicked) is not applied: without a COMMIT it leaves its objects as it found them, and after
// Rollback its changes are written; with the COMMIT in the same pipeline it is committed, and
// applied as committed.
func TestFlushAfterAFailedRead(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		boomRow(t, e)
		s := newSession(t, e)
		a := &Author{ID: 1, Name: "a"}
		require.NoError(t, s.Add(a))
		await(t, s.Commit(ctx))

		release := holdSession(t, s) // which flushes what is changed before
		a.Name = "a2"
		sel := asyncsession.Select[Boom](ctx, s, "SELECT * FROM booms")
		flush := s.Flush(ctx)
		release()
		_, err := sel.Await(ctx)
		require.Error(t, err)
		_, err = flush.Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrPendingRollback)
		await(t, s.Rollback(ctx))
		await(t, s.Commit(ctx))
		assert.Equal(t, "a2", authorName(t, e, 1), "the change the failed flush did not write is written")

		if e.Dialect().Name() != "postgresql" {
			return // on SQLite the COMMIT waits for the flush's results (readsBack)
		}
		release = holdSession(t, s)
		a.Name = "a3"
		n := &Author{ID: 2, Name: "n"}
		require.NoError(t, s.Add(n))
		sel = asyncsession.Select[Boom](ctx, s, "SELECT * FROM booms")
		commit := s.Commit(ctx)
		release()
		_, err = sel.Await(ctx)
		require.Error(t, err)
		_, err = commit.Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrCommitted)
		assert.Equal(t, "a3", authorName(t, e, 1))
		n.Name = "n2"
		await(t, s.Commit(ctx))
		assert.Equal(t, "n2", authorName(t, e, 2), "the committed object is the session's")
	})
}

// A key change applied before a later UPDATE of the same flush turns out stale (SQLite stores
// each result before it counts the next) is taken back with the flush: after Rollback the key
// change is still one to write.
func TestKeyChangeBeforeAStaleUpdate(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		s, a, b := twoAuthors(t, e)
		deleteAuthorRow(t, e, 2)

		a.ID, b.Name = 10, "b2"
		_, err := s.Commit(ctx).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrStaleObject)
		await(t, s.Rollback(ctx))
		s.Expunge(b)
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 1, count(t, e, "authors WHERE id = 10"))
		got, err := asyncsession.Get[Author](ctx, s, int64(10)).Await(ctx)
		require.NoError(t, err)
		assert.Same(t, a, got)
	})
}

// Rollback undoes flushed DELETEs and key changes in the reverse order of their flushes: an
// object whose key went to a deleted object's row key gives it back before that object returns.
func TestRollbackOfADeleteAndAKeyTakingItsPlace(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		s, a, d := twoAuthors(t, e)

		require.NoError(t, s.Delete(d))
		await(t, s.Flush(ctx))
		a.ID = 2
		await(t, s.Flush(ctx))
		await(t, s.Rollback(ctx))

		assert.EqualValues(t, 1, a.ID)
		assert.True(t, s.Contains(d), "the deleted object is back")
		got, err := asyncsession.Get[Author](ctx, s, int64(2)).Await(ctx)
		require.NoError(t, err)
		assert.Same(t, d, got)
		d.Name = "d2"
		await(t, s.Commit(ctx))
		assert.Equal(t, "d2", authorName(t, e, 2))

		// the other way round: a key change, then the DELETE of the same object
		a.ID = 10
		await(t, s.Flush(ctx))
		require.NoError(t, s.Delete(a))
		await(t, s.Flush(ctx))
		await(t, s.Rollback(ctx))
		assert.True(t, s.Contains(a))
		got, err = asyncsession.Get[Author](ctx, s, int64(1)).Await(ctx)
		require.NoError(t, err)
		assert.Same(t, a, got)
	})
}

type Node struct {
	ID       int64  `db:"id,pk"`
	ParentID *int64 `db:"parent_id"`
}

func (Node) TableName() string { return "nodes" }

// UPDATEs of one model keep their order around a key change: one after it may refer to the new
// key (here a parent's), so the objects changed alike on either side are not sent together.
func TestUpdatesKeepTheirPlaceAroundAKeyChange(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		for _, q := range []string{
			"CREATE TABLE nodes (id bigint PRIMARY KEY, parent_id bigint REFERENCES nodes (id))",
			"INSERT INTO nodes (id) VALUES (1), (2), (3), (5)",
		} {
			_, err := e.Exec(ctx, q)
			require.NoError(t, err)
		}
		s := newSession(t, e)
		ns, err := asyncsession.Select[Node](ctx, s, "SELECT * FROM nodes ORDER BY id = 2 DESC, id").Await(ctx)
		require.NoError(t, err)
		five, ten := int64(5), int64(10)
		ns[0].ParentID = &five // node 2
		ns[1].ID = 10          // node 1
		ns[2].ParentID = &ten  // node 3, under the key node 1 takes
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 1, count(t, e, "nodes WHERE id = 3 AND parent_id = 10"))
	})
}

// A request that travelled after the COMMIT of a pipeline in which another request's results
// could not be stored runs in the next transaction, which is then pending rollback: it is not
// told it succeeded.
func TestRequestAfterACommitWithAFailedRead(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		boomRow(t, e)
		s := newSession(t, e)
		release := holdSession(t, s)
		sel := asyncsession.Select[Boom](ctx, s, "SELECT * FROM booms")
		commit := s.Commit(ctx)
		insert := s.Execute(ctx, "INSERT INTO authors (id, name) VALUES (7, 'after')")
		release()
		_, err := sel.Await(ctx)
		require.Error(t, err)
		_, _ = commit.Await(ctx)
		_, err = insert.Await(ctx)
		require.Error(t, err, "its transaction rolls back")
		await(t, s.Rollback(ctx))
		assert.Zero(t, count(t, e, "authors WHERE id = 7"))
	})
}

// A commit over two engines that commits on one and fails on the other keeps, on the one that
// committed, the flush it committed applied — whatever the order of the engines in the pipeline.
func TestPartialCommitKeepsWhatCommitted(t *testing.T) {
	for _, momentsFirst := range []bool{true, false} {
		t.Run(fmt.Sprint("moments first ", momentsFirst), func(t *testing.T) {
			ctx := enginetest.Context(t)
			e1, e2 := newEngine(t, enginetest.NewDatabase(t)), newEngine(t, enginetest.NewDatabase(t))
			_, err := e2.Exec(ctx, "CREATE TABLE moments (id bigserial PRIMARY KEY, at timestamp NOT NULL)")
			require.NoError(t, err)
			s := newSession(t, e1, asyncsession.Bind(Moment{}, e2))
			m := &Moment{ID: 1}
			require.NoError(t, s.Add(m))
			await(t, s.Commit(ctx))
			_, err = e2.Exec(ctx, "DELETE FROM moments")
			require.NoError(t, err)

			n := &Author{Name: "n"}
			if momentsFirst {
				require.NoError(t, s.Add(&Moment{ID: 2}, n))
			} else {
				require.NoError(t, s.Add(n, &Moment{ID: 2}))
			}
			m.At = time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
			_, err = s.Commit(ctx).Await(ctx)
			var partial *asyncsession.PartialCommitError
			require.ErrorAs(t, err, &partial)
			require.NotZero(t, n.ID, "the committed author has its key")
			assert.EqualValues(t, 1, count(t, e1, "authors"))
			await(t, s.Rollback(ctx))
			assert.True(t, s.Contains(n), "the committed object stays in the session")
		})
	}
}

// A flush in stages (SQLite inserts a parent's children in the stage after it) that fails in a
// later stage leaves the objects of the earlier ones as it found them: a change an earlier stage
// sent is written after Rollback.
func TestLaterStageFailure(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		relSchema(t, e)
		trigger := `CREATE TRIGGER no_bad BEFORE INSERT ON volumes WHEN NEW.title = 'bad' BEGIN SELECT RAISE(ABORT, 'bad title'); END`
		if e.Dialect().Name() == "postgresql" {
			_, err := e.Exec(ctx, `CREATE FUNCTION no_bad() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN IF NEW.title = 'bad' THEN RAISE EXCEPTION 'bad title'; END IF; RETURN NEW; END $$`)
			require.NoError(t, err)
			trigger = "CREATE TRIGGER no_bad BEFORE INSERT ON volumes FOR EACH ROW EXECUTE FUNCTION no_bad()"
		}
		_, err := e.Exec(ctx, trigger)
		require.NoError(t, err)
		s := newSession(t, e)
		a := &Writer{Name: "a"}
		require.NoError(t, s.Add(a))
		await(t, s.Commit(ctx))

		a.Name = "a2"
		require.NoError(t, s.Add(&Writer{Name: "w", Books: []*Volume{{Title: "bad"}}}))
		_, err = s.Commit(ctx).Await(ctx)
		require.ErrorContains(t, err, "bad title")
		await(t, s.Rollback(ctx))
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 1, count(t, e, "writers WHERE name = 'a2'"), "the change an earlier stage sent is written")
	})
}

// A flush stored at the end of its pipeline (not as its results were read: a request before it
// stopped that) and failed by its request's own results is taken back too: the key the server
// gave the new object goes with the failure.
func TestAutoflushOfAFailedReadTakenBack(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		boomRow(t, e)
		s := newSession(t, e)
		release := holdSession(t, s)
		first := s.Execute(asyncsession.NoAutoflush(ctx), "SELECT 1")
		n := &Author{Name: "n"}
		require.NoError(t, s.Add(n))
		sel := asyncsession.Select[Boom](ctx, s, "SELECT * FROM booms")
		release()
		await(t, first)
		_, err := sel.Await(ctx)
		require.Error(t, err)
		assert.Zero(t, n.ID, "the key of the failed flush is taken back")
		await(t, s.Rollback(ctx))
	})
}

// A flush that failed takes back what its walk changed in relationships: a child appended to a
// loaded parent's collection as the back-reference of its many-to-one is taken out again, here
// of an object another session loaded, whose own commit must not then write the rejected child.
func TestFailedFlushTakesBackReferences(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		writerWithBooks(t, e, "t")
		s1 := newSession(t, e)
		w, err := asyncsession.From[Writer](s1).Filter("name", "w").Load("Books", asyncsession.SelectIn).One(ctx).Await(ctx)
		require.NoError(t, err)
		require.Len(t, w.Books, 2)

		// s2 reaches the writer through the new volume: it takes it for a new row, whose key is
		// taken, and the flush fails
		s2 := newSession(t, e)
		require.NoError(t, s2.Add(&Volume{Title: "from s2", Writer: w}))
		_, err = s2.Commit(ctx).Await(ctx)
		require.Error(t, err)
		assert.Len(t, w.Books, 2, "the back-reference is taken back with the failed flush")
		await(t, s2.Rollback(ctx))
		require.NoError(t, s2.Close())

		await(t, s1.Commit(ctx))
		assert.EqualValues(t, 2, count(t, e, "volumes"), "the rejected volume is not written by the other session")
	})
}
