package asyncsession_test

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
)

// shelfOf is a new shelf with one box of n items named prefix 0, prefix 1, ….
func shelfOf(prefix string, n int) *shelf {
	b := &box{}
	for i := range n {
		b.Items = append(b.Items, &item{Name: fmt.Sprint(prefix, " ", i)})
	}
	return &shelf{Name: prefix, Boxes: []*box{b}}
}

// A batch larger than one INSERT carries goes as several in the same pipeline, the keys of each
// stored as its rows come back; the first INSERT's guard covers the others. A later one failing
// fails the commit as one INSERT would, and leaves nothing of it in the objects, the session (once
// rolled back) or the database: the objects can be added again.
func TestLargeBatchInSeveralInserts(t *testing.T) {
	eachTracedBackend(t, func(t *testing.T, e *asyncengine.Engine, p *pipelines) {
		ctx := enginetest.Context(t)
		pg := e.Dialect().Name() == "postgresql"
		require.NoError(t, asyncsession.CreateAll(ctx, e, shelf{}, box{}, item{}))
		_, err := e.Exec(ctx, "CREATE UNIQUE INDEX items_name ON items (name)")
		require.NoError(t, err)
		if pg {
			// a key the server alone may write: a retry must not send one left by a failure
			_, err = e.Exec(ctx, "ALTER TABLE items ALTER COLUMN id SET GENERATED ALWAYS")
			require.NoError(t, err)
		}
		s := newSession(t, e)
		require.NoError(t, s.Add(shelfOf("first", 1500)))
		await(t, s.Commit(ctx)) // reads the tables' column types, and prepares the INSERTs

		p.insertsInto(`"items"`)
		sh := shelfOf("big", 2500)
		require.NoError(t, s.Add(sh))
		before := roundTrips(e)
		await(t, s.Commit(ctx))
		if sent := p.insertsInto(`"items"`); pg {
			assert.Equal(t, int64(1), roundTrips(e)-before, "one pipeline")
			require.Len(t, sent, 3, "2 500 rows as three INSERTs")
			assert.Contains(t, sent[0].SQL, "pg_typeof", "the first is guarded")
			assert.NotContains(t, sent[1].SQL, "pg_typeof")
			assert.NotContains(t, sent[2].SQL, "pg_typeof")
		}
		items := sh.Boxes[0].Items
		ids := map[int64]bool{}
		for _, it := range items {
			require.NotZero(t, it.ID)
			assert.Equal(t, sh.Boxes[0].ID, it.BoxID)
			ids[it.ID] = true
		}
		assert.Len(t, ids, 2500, "every item has its own key")
		assert.EqualValues(t, 2500, count(t, e, fmt.Sprint("items WHERE box_id = ", sh.Boxes[0].ID)))
		got := await(t, asyncsession.Get[item](ctx, s, items[2499].ID))
		assert.Same(t, items[2499], got, "the last INSERT's objects are in the identity map")
		await(t, s.Commit(ctx))

		// the 2 201st name is taken: the third INSERT fails
		bad := shelfOf("bad", 2500)
		items = bad.Boxes[0].Items
		items[2200].Name = "big 7"
		require.NoError(t, s.Add(bad))
		_, err = s.Commit(ctx).Await(ctx)
		require.Error(t, err)
		if pg {
			var pgErr *pgconn.PgError
			require.ErrorAs(t, err, &pgErr)
			assert.Equal(t, "23505", pgErr.Code)
			// one pipeline: what its first INSERTs stored is taken back (SQLite saves each level
			// in a stage of its own, and the keys of the stages before stay, as after any
			// rolled-back flush)
			assert.Zero(t, bad.ID, "what the failed flush stored is taken back")
			assert.Zero(t, bad.Boxes[0].ID)
			for _, it := range items {
				require.Zero(t, it.ID)
				require.Zero(t, it.BoxID)
			}
		}
		await(t, s.Rollback(ctx))
		assert.False(t, s.Contains(bad))
		assert.False(t, s.Contains(items[0]), "stored before the failure, forgotten by the rollback")
		assert.False(t, s.Contains(items[2499]))
		assert.EqualValues(t, 4000, count(t, e, "items"))

		items[2200].Name = "bad 2200"
		require.NoError(t, s.Add(bad))
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 2500, count(t, e, fmt.Sprint("items WHERE box_id = ", bad.Boxes[0].ID)), "added again, every item is saved")
		for _, it := range items {
			assert.Equal(t, bad.Boxes[0].ID, it.BoxID)
		}
	})
}

// Only INSERTs are applied as they are read: a primary-key UPDATE waits for the pipeline's end,
// so that when a later statement of the flush fails, the object is still known by its old key and
// the rollback reloads it there, keeping the key change as one to write.
func TestUpdateAppliedAtTheEnd(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		ctx := enginetest.Context(t)
		e := newEngine(t, url)
		for _, q := range []string{
			"INSERT INTO authors (id, name) VALUES (1, 'one'), (2, 'two')",
			"INSERT INTO books (author_id, title, pages) VALUES (2, 'kept', 1)",
		} {
			_, err := e.Exec(ctx, q)
			require.NoError(t, err)
		}
		s := newSession(t, e)
		one := await(t, asyncsession.Get[Author](ctx, s, int64(1)))
		two := await(t, asyncsession.Get[Author](ctx, s, int64(2)))
		one.ID = 100
		require.NoError(t, s.Delete(two))
		_, err := s.Flush(ctx).Await(ctx)
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr, "the DELETE fails: a book refers to the author")
		assert.Equal(t, "23503", pgErr.Code)
		await(t, s.Rollback(ctx))
		got := await(t, asyncsession.Get[Author](ctx, s, int64(1)))
		assert.Same(t, one, got, "the object is still the session's for key 1")
		assert.EqualValues(t, 100, got.ID, "the change the failed flush did not write is still one to write")
	}, "pgx")
}
