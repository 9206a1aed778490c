package asyncsession_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
)

// A REPEATABLE READ transaction whose snapshot was taken before a column's type changed still
// inserts under the new type: the batch's guard must see the table as the INSERT does, not as the
// snapshot does, or the values typed for the old column are taken silently converted.
func TestBatchTypeChangedAfterSnapshot(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t))
	ctx := enginetest.Context(t)
	_, err := e.Exec(ctx, "CREATE TABLE moments (id bigserial PRIMARY KEY, at timestamp NOT NULL)")
	require.NoError(t, err)
	kolkata := time.FixedZone("IST", 5*3600+1800)
	at := time.Date(2020, 6, 1, 12, 0, 0, 0, kolkata)
	s := newSession(t, e, asyncsession.Isolation("REPEATABLE READ"))
	add := func() error {
		require.NoError(t, s.Add(&Moment{At: at}, &Moment{At: at}))
		_, err := s.Commit(ctx).Await(ctx)
		return err
	}
	require.NoError(t, add(), "the engine reads the table's types")

	// the transaction's snapshot is taken before the ALTER commits
	_, err = s.Execute(ctx, "SELECT 1").Await(ctx)
	require.NoError(t, err)
	_, err = e.Exec(ctx, "ALTER TABLE moments ALTER at TYPE timestamptz USING at AT TIME ZONE 'UTC'")
	require.NoError(t, err)
	_, err = e.Exec(ctx, "DELETE FROM moments")
	require.NoError(t, err)

	err = add()
	require.ErrorIs(t, err, asyncsession.ErrTableChanged)
	await(t, s.Rollback(ctx))
	assert.EqualValues(t, 0, count(t, e, "moments"), "nothing of the batch was written")
	require.NoError(t, add(), "the types are read again")
	assertInstants(t, e, at, 2)
}

func assertInstants(t *testing.T, e *asyncengine.Engine, at time.Time, n int) {
	t.Helper()
	r, err := e.Query(enginetest.Context(t), "SELECT at FROM moments")
	require.NoError(t, err)
	require.Equal(t, n, r.Len())
	for i := range r.Len() {
		var got time.Time
		require.NoError(t, r.ScanRow(i, &got))
		assert.True(t, got.Equal(at), "stored %v, want the instant %v", got, at)
	}
}

// A trigger that skips rows, created after a REPEATABLE READ transaction took its snapshot, is
// not in the catalog rows that transaction reads: its batches count their rows instead, so that
// the skipped row fails the statement and nothing of the transaction is committed. The session
// knows the level from Isolation, or learns it from the transaction its engine read the table's
// types in (the database's default); a transaction raised above READ COMMITTED behind its back
// (SET TRANSACTION) fails its batch with ErrTableChanged, and the next one counts.
func TestTriggerAddedAfterSnapshot(t *testing.T) {
	for _, c := range []struct {
		name     string
		opts     []asyncsession.Option
		setup    string // run as the transaction's first statement
		database bool   // the database's default level is REPEATABLE READ
	}{
		{name: "isolation", opts: []asyncsession.Option{asyncsession.Isolation("REPEATABLE READ")}},
		{name: "database default", database: true},
		{name: "set transaction", setup: "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"},
	} {
		t.Run(c.name, func(t *testing.T) {
			url := enginetest.NewDatabase(t)
			ddl := newEngine(t, url)
			ctx := enginetest.Context(t)
			relSchema(t, ddl)
			if c.database {
				_, err := ddl.Exec(ctx, `DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET default_transaction_isolation = %L', current_database(), 'repeatable read'); END $$`)
				require.NoError(t, err)
			}
			eng := newEngine(t, url)
			s := newSession(t, eng, c.opts...)
			// begin takes the transaction's snapshot: the first statement after BEGIN
			begin := func() {
				sql := "SELECT 1"
				if c.setup != "" {
					sql = c.setup
				}
				_, err := s.Execute(ctx, sql).Await(ctx)
				require.NoError(t, err)
			}
			save := func(titles ...string) error {
				w := &Writer{Name: "w"}
				for _, title := range titles {
					w.Books = append(w.Books, &Volume{Title: title})
				}
				require.NoError(t, s.Add(w, &Writer{Name: "v", Books: []*Volume{{Title: "v1"}}}))
				_, err := s.Commit(ctx).Await(ctx)
				if err != nil {
					await(t, s.Rollback(ctx))
				}
				return err
			}
			require.NoError(t, save("a", "b"), "the engine reads the table's types")
			_, err := ddl.Exec(ctx, `CREATE FUNCTION skip_volume() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN IF NEW.title = 'skip' THEN RETURN NULL; END IF; RETURN NEW; END $$`)
			require.NoError(t, err)

			begin()
			_, err = ddl.Exec(ctx, "CREATE TRIGGER skip_volume BEFORE INSERT ON volumes FOR EACH ROW EXECUTE FUNCTION skip_volume()")
			require.NoError(t, err)
			err = save("c", "skip")
			if c.setup != "" {
				require.ErrorIs(t, err, asyncsession.ErrTableChanged)
				assert.Contains(t, err.Error(), "repeatable read")
				assert.EqualValues(t, 2, count(t, ddl, "writers"), "nothing was committed")
				begin()
				err = save("c", "skip")
			}
			require.ErrorIs(t, err, asyncsession.ErrRowsSkipped)
			assert.Contains(t, err.Error(), "INSERT into volumes wrote 2 of 3 rows")
			assert.EqualValues(t, 2, count(t, ddl, "writers"), "nothing was committed")
			assert.EqualValues(t, 3, count(t, ddl, "volumes"))

			begin()
			require.NoError(t, save("c", "d"))
			assert.EqualValues(t, 6, count(t, ddl, "volumes"))

			if c.database {
				// what the engine learnt holds for its other sessions, whose first flush reads
				// no catalog
				s = newSession(t, eng)
				begin()
				require.ErrorIs(t, save("e", "skip"), asyncsession.ErrRowsSkipped)
				assert.EqualValues(t, 6, count(t, ddl, "volumes"), "nothing was committed")
			}
		})
	}
}
