package asyncsession_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
)

// fillShelves adds n shelves with two boxes of two items each to a new session, and returns it
// with the shelves.
func fillShelves(t *testing.T, e *asyncengine.Engine, n int) (*asyncsession.Session, []*shelf) {
	s := newSession(t, e)
	var shelves []*shelf
	for i := range n {
		sh := &shelf{Name: fmt.Sprint("shelf ", i)}
		for range 2 {
			sh.Boxes = append(sh.Boxes, &box{Items: []*item{{Name: fmt.Sprint("item of ", i)}, {Name: "other"}}})
		}
		shelves = append(shelves, sh)
	}
	require.NoError(t, s.Add(shelves[0]), "one Add takes a graph")
	for _, sh := range shelves[1:] {
		require.NoError(t, s.Add(sh))
	}
	return s, shelves
}

// Three levels of new objects whose keys the server generates are saved in one round trip on
// PostgreSQL: each level's INSERT takes its parents' keys in the same pipeline, and every object
// holds what its row holds.
func TestGraphSavedInOnePipeline(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		require.NoError(t, asyncsession.CreateAll(ctx, e, shelf{}, box{}, item{}))
		s, _ := fillShelves(t, e, 3)
		await(t, s.Commit(ctx)) // the first reads the tables' column types

		s, shelves := fillShelves(t, e, 20)
		before := roundTrips(e)
		await(t, s.Commit(ctx))
		if e.Dialect().Name() == "postgresql" {
			assert.Equal(t, int64(1), roundTrips(e)-before, "BEGIN, three INSERTs and COMMIT in one pipeline")
		}
		for _, sh := range shelves {
			require.NotZero(t, sh.ID)
			for _, b := range sh.Boxes {
				assert.Equal(t, sh.ID, b.ShelfID)
				for _, it := range b.Items {
					assert.Equal(t, b.ID, it.BoxID)
				}
			}
		}
		// the rows agree, and so does a fresh read
		r, err := e.Query(ctx, "SELECT count(*) FROM items i JOIN boxes b ON b.id = i.box_id JOIN shelves s ON s.id = b.shelf_id WHERE i.name = 'item of ' || substr(s.name, 7)")
		require.NoError(t, err)
		var n int64
		require.NoError(t, r.One(&n))
		assert.Equal(t, int64(3*2+20*2), n, "every item under its own shelf")
		fresh := newSession(t, e)
		got := await(t, asyncsession.Get[box](ctx, fresh, shelves[7].Boxes[1].ID))
		assert.Equal(t, shelves[7].ID, got.ShelfID)

		// the objects are persistent: a change is an UPDATE of their rows
		shelves[3].Boxes[0].Items[0].Name = "renamed"
		await(t, s.Commit(ctx))
		assert.Equal(t, int64(1), countWhere(t, e, "items", "name = 'renamed'"))
	})
}

func countWhere(t *testing.T, e *asyncengine.Engine, table, where string) int64 {
	t.Helper()
	r, err := e.Query(enginetest.Context(t), "SELECT count(*) FROM "+table+" WHERE "+where)
	require.NoError(t, err)
	var n int64
	require.NoError(t, r.One(&n))
	return n
}

// New parents and persistent ones receive new children in one flush: those of new parents take
// their keys in the pipeline, the others are sent with theirs.
func TestGraphSavedWithKnownParents(t *testing.T) {
	e := newEngine(t, enginetestURL(t))
	ctx := enginetest.Context(t)
	relSchema(t, e)
	round := func(tag string) int64 {
		old := &Writer{Name: "old", Books: []*Volume{{Title: tag + "a"}}}
		saved(t, e, old)
		s := newSession(t, e)
		before := roundTrips(e) // the session's trips are counted when its connection returns
		w := await(t, asyncsession.Get[Writer](ctx, s, old.ID))
		await(t, asyncsession.Load(ctx, s, w, "Books"))
		w.Books = append(w.Books, &Volume{Title: tag + "b"})
		fresh := []*Writer{{Name: "n1", Books: []*Volume{{Title: tag + "c"}, {Title: tag + "d"}}}, {Name: "n2", Books: []*Volume{{Title: tag + "e"}}}}
		require.NoError(t, s.Add(fresh[0], fresh[1]))
		await(t, s.Commit(ctx))
		trips := roundTrips(e) - before
		for _, x := range append(fresh, w) {
			for _, b := range x.Books {
				assert.Equal(t, x.ID, b.WriterID, b.Title)
				assert.Equal(t, int64(1), countWhere(t, e, "volumes", fmt.Sprintf("title = '%s' AND writer_id = %d", b.Title, x.ID)))
			}
		}
		return trips
	}
	round("1") // prepares the statements of its shapes on the one connection
	assert.Equal(t, int64(3), round("2"), "the Get, the Load, and the Commit in one pipeline")
}

// A parents' INSERT that writes fewer rows than it was sent (a trigger skipped one) leaves its
// children no keys: the flush fails naming the count, the transaction is rolled back, nothing is
// written, and the driver's error stays reachable.
func TestGraphParentRowSkipped(t *testing.T) {
	e := newEngine(t, enginetestURL(t))
	ctx := enginetest.Context(t)
	relSchema(t, e)
	saved(t, e, &Writer{Name: "a", Books: []*Volume{{Title: "x"}}}, &Writer{Name: "b", Books: []*Volume{{Title: "y"}}})
	_, err := e.Exec(ctx, `CREATE FUNCTION skip_writer() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.name = 'skip' THEN RETURN NULL; END IF; RETURN NEW; END $$`)
	require.NoError(t, err)
	_, err = e.Exec(ctx, "CREATE TRIGGER skip_writer BEFORE INSERT ON writers FOR EACH ROW EXECUTE FUNCTION skip_writer()")
	require.NoError(t, err)

	s := newSession(t, e)
	ws := []*Writer{{Name: "c", Books: []*Volume{{Title: "c1"}}}, {Name: "skip", Books: []*Volume{{Title: "s1"}}}, {Name: "d", Books: []*Volume{{Title: "d1"}}}}
	require.NoError(t, s.Add(ws[0], ws[1], ws[2], &Tag{Name: "unrelated"}))
	_, err = s.Commit(ctx).Await(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "INSERT into writers wrote 2 of 3 rows")
	assert.ErrorIs(t, err, asyncsession.ErrRowsSkipped)
	var pe *pgconn.PgError
	assert.False(t, errors.As(err, &pe), "the check's own signal (an invalid boolean, 22P02) is not a server error to match: %v", err)
	await(t, s.Rollback(ctx))
	assert.Equal(t, int64(2), count(t, e, "writers"), "nothing was committed")
	assert.Equal(t, int64(2), count(t, e, "volumes"))
	assert.Equal(t, int64(0), count(t, e, "tags"))
	assert.Zero(t, ws[2].Books[0].WriterID, "no key was stored")
}

// A parents' table whose column types changed under the engine fails the flush with
// ErrTableChanged before any child is written, and the next one reads the types of every table
// again.
func TestGraphParentTableChanged(t *testing.T) {
	e := newEngine(t, enginetestURL(t))
	ctx := enginetest.Context(t)
	relSchema(t, e)
	batch := func() error {
		s := newSession(t, e)
		require.NoError(t, s.Add(&Writer{Name: "a", Books: []*Volume{{Title: "x"}}}, &Writer{Name: "b", Books: []*Volume{{Title: "y"}, {Title: "z"}}}))
		_, err := s.Commit(ctx).Await(ctx)
		return err
	}
	require.NoError(t, batch())
	// a migration of both tables fails one commit, not one per table
	_, err := e.Exec(ctx, "ALTER TABLE writers ALTER name TYPE varchar(100)")
	require.NoError(t, err)
	_, err = e.Exec(ctx, "ALTER TABLE volumes ALTER title TYPE varchar(100)")
	require.NoError(t, err)
	require.ErrorIs(t, batch(), asyncsession.ErrTableChanged)
	assert.Equal(t, int64(2), count(t, e, "writers"))
	assert.Equal(t, int64(3), count(t, e, "volumes"))
	require.NoError(t, batch(), "the types are read again")
	assert.Equal(t, int64(6), count(t, e, "volumes"))
}

type uuidParent struct {
	ID       string       `db:"id,pk,default,type=uuid"`
	Name     string       `db:"name"`
	Children []*uuidChild `rel:"fk=parent_id"`
}

func (uuidParent) TableName() string { return "uuid_parents" }

type uuidChild struct {
	ID       int64  `db:"id,pk,default"`
	ParentID string `db:"parent_id,fk=uuid_parents.id,type=uuid"`
}

func (uuidChild) TableName() string { return "uuid_children" }

// narrowChild refers to a bigint key with an integer column: its key is not sent by position,
// and it waits for the next stage as before.
type narrowParent struct {
	ID       int64          `db:"id,pk,default"`
	Children []*narrowChild `rel:"fk=parent_id"`
}

func (narrowParent) TableName() string { return "narrow_parents" }

type narrowChild struct {
	ID       int64 `db:"id,pk,default"`
	ParentID int32 `db:"parent_id,fk=narrow_parents.id,type=integer"`
}

func (narrowChild) TableName() string { return "narrow_children" }

// Keys of uuid type travel in the pipeline too; a foreign key of another type than the key it
// refers to takes the staged way, with the same result.
func TestGraphKeyTypes(t *testing.T) {
	e := newEngine(t, enginetestURL(t))
	ctx := enginetest.Context(t)
	require.NoError(t, asyncsession.CreateAll(ctx, e, narrowParent{}, narrowChild{}))
	_, err := e.Exec(ctx, `CREATE TABLE uuid_parents (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text NOT NULL);
		CREATE TABLE uuid_children (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, parent_id uuid NOT NULL REFERENCES uuid_parents)`)
	require.NoError(t, err)
	for _, want := range []int64{0, 0, 1} { // the first reads the column types and prepares
		s := newSession(t, e)
		ps := []*uuidParent{{Name: "a", Children: []*uuidChild{{}, {}}}, {Name: "b", Children: []*uuidChild{{}}}}
		require.NoError(t, s.Add(ps[0], ps[1]))
		before := roundTrips(e)
		await(t, s.Commit(ctx))
		if want > 0 {
			assert.Equal(t, want, roundTrips(e)-before)
		}
		for _, p := range ps {
			require.Len(t, p.ID, 36)
			for _, c := range p.Children {
				assert.Equal(t, p.ID, c.ParentID)
				assert.Equal(t, int64(1), countWhere(t, e, "uuid_children", fmt.Sprintf("id = %d AND parent_id = '%s'", c.ID, p.ID)))
			}
		}
	}
	for i := range 3 {
		s := newSession(t, e)
		ps := []*narrowParent{{Children: []*narrowChild{{}, {}}}, {Children: []*narrowChild{{}}}}
		require.NoError(t, s.Add(ps[0], ps[1]))
		before := roundTrips(e)
		await(t, s.Commit(ctx))
		if i == 2 {
			assert.Equal(t, int64(2), roundTrips(e)-before, "the children wait for their parents' keys")
		}
		for _, p := range ps {
			for _, c := range p.Children {
				assert.Equal(t, p.ID, int64(c.ParentID))
			}
		}
	}
}

// bare sends no column: each is inserted alone (DEFAULT VALUES), a batch of its own.
type bare struct {
	ID   int64      `db:"id,pk,default"`
	Kids []*bareKid `rel:"fk=bare_id"`
}

func (bare) TableName() string { return "bares" }

type bareKid struct {
	ID     int64 `db:"id,pk,default"`
	BareID int64 `db:"bare_id,fk=bares.id"`
}

func (bareKid) TableName() string { return "bare_kids" }

// A flush leaves the keys of a bounded number of parent batches: the children of the rest wait
// for the next stage, and every one is saved under its own parent.
func TestGraphManyParentBatches(t *testing.T) {
	e := newEngine(t, enginetestURL(t))
	ctx := enginetest.Context(t)
	require.NoError(t, asyncsession.CreateAll(ctx, e, bare{}, bareKid{}))
	for i := range 3 {
		s := newSession(t, e)
		var bs []*bare
		for range 40 {
			bs = append(bs, &bare{Kids: []*bareKid{{}, {}}})
		}
		for _, b := range bs {
			require.NoError(t, s.Add(b))
		}
		before := roundTrips(e)
		await(t, s.Commit(ctx))
		if i == 2 {
			assert.Equal(t, int64(2), roundTrips(e)-before, "the children of the last 8 parents go in a second stage")
		}
		for _, b := range bs {
			for _, k := range b.Kids {
				assert.Equal(t, b.ID, k.BareID)
			}
		}
	}
	assert.Equal(t, int64(3*40*2), countWhere(t, e, "bare_kids k JOIN bares b ON b.id = k.bare_id", "true"))
}

// Objects that send no column are each one row (a batch of them once inserted one row for all).
func TestRowsWithoutColumns(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		require.NoError(t, asyncsession.CreateAll(ctx, e, bare{}, bareKid{}))
		s := newSession(t, e)
		bs := []*bare{{}, {}, {}}
		require.NoError(t, s.Add(bs[0], bs[1], bs[2]))
		await(t, s.Commit(ctx))
		assert.Equal(t, int64(3), count(t, e, "bares"))
		assert.NotEqual(t, bs[0].ID, bs[1].ID)
		assert.NotEqual(t, bs[1].ID, bs[2].ID)
	})
}

// Association rows between new objects, and between new and persistent ones, take the generated
// keys in the same pipeline: a graph with a many-to-many is one round trip too, written once
// whichever side's collection holds the other.
func TestGraphLinksInOnePipeline(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		relSchema(t, e)
		old := &Tag{Name: "old"}
		saved(t, e, old)
		round := func(tag string) int64 {
			s := newSession(t, e)
			before := roundTrips(e)
			known := await(t, asyncsession.Get[Tag](ctx, s, old.ID))
			shared := &Tag{Name: tag + "shared"}
			w := &Writer{Name: tag, Books: []*Volume{
				{Title: tag + "1", Tags: []*Tag{shared, known}},
				{Title: tag + "2", Tags: []*Tag{shared, {Name: tag + "own"}}},
			}}
			other := &Tag{Name: tag + "back", Volumes: []*Volume{w.Books[0]}} // the link from the other side
			require.NoError(t, s.Add(w, other))
			await(t, s.Commit(ctx))
			trips := roundTrips(e) - before
			fresh := newSession(t, e)
			for _, b := range w.Books {
				got := await(t, asyncsession.Get[Volume](ctx, fresh, b.ID))
				await(t, asyncsession.Load(ctx, fresh, got, "Tags"))
				var names []string
				for _, x := range got.Tags {
					names = append(names, x.Name)
				}
				want := map[string][]string{tag + "1": {tag + "back", tag + "shared", "old"}, tag + "2": {tag + "own", tag + "shared"}}[b.Title]
				assert.Equal(t, want, names, b.Title)
			}
			fresh.Close()
			return trips
		}
		round("a")
		round("b")
		if trips := round("c"); e.Dialect().Name() == "postgresql" {
			assert.Equal(t, int64(2), trips, "the Get, and the Commit in one pipeline")
		}
		assert.Equal(t, int64(3*5), count(t, e, "volume_tags"))
	})
}

// A Commit whose INSERT writes fewer rows than it was sent (a trigger skipped one) commits
// nothing, though the COMMIT follows in the same pipeline, and says so; the session goes on after
// Rollback.
func TestSkippedRowCommitsNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		relSchema(t, e)
		trigger := `CREATE TRIGGER skip_tag BEFORE INSERT ON tags FOR EACH ROW WHEN (NEW.name = 'skip') BEGIN SELECT RAISE(IGNORE); END`
		if e.Dialect().Name() == "postgresql" {
			_, err := e.Exec(ctx, `CREATE FUNCTION skip_tag() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN IF NEW.name = 'skip' THEN RETURN NULL; END IF; RETURN NEW; END $$`)
			require.NoError(t, err)
			trigger = "CREATE TRIGGER skip_tag BEFORE INSERT ON tags FOR EACH ROW EXECUTE FUNCTION skip_tag()"
		}
		_, err := e.Exec(ctx, trigger)
		require.NoError(t, err)
		for _, tags := range [][]*Tag{{{Name: "skip"}}, {{Name: "a"}, {Name: "skip"}, {Name: "b"}}} {
			s := newSession(t, e)
			for _, x := range tags {
				require.NoError(t, s.Add(x))
			}
			_, err = s.Commit(ctx).Await(ctx)
			require.Error(t, err)
			assert.Contains(t, err.Error(), fmt.Sprintf("INSERT into tags wrote %d of %d rows", len(tags)-1, len(tags)))
			assert.ErrorIs(t, err, asyncsession.ErrRowsSkipped)
			assert.NotErrorIs(t, err, asyncsession.ErrCommitted)
			assert.Equal(t, int64(0), count(t, e, "tags"), "nothing was committed")
			await(t, s.Rollback(ctx))
			require.NoError(t, s.Add(&Tag{Name: "after"}))
			await(t, s.Commit(ctx))
			_, err = e.Exec(ctx, "DELETE FROM tags")
			require.NoError(t, err)
		}
	})
}

// A batch into a table that cannot skip rows does not count them; a trigger that could skip one,
// created after the engine read the table, fails the next batch with ErrTableChanged before it
// writes anything, and the batch after it counts its rows.
func TestTriggerAddedAfterTypesRead(t *testing.T) {
	e := newEngine(t, enginetestURL(t))
	ctx := enginetest.Context(t)
	relSchema(t, e)
	save := func(names ...string) error {
		s := newSession(t, e)
		w := &Writer{Name: "w"}
		for _, n := range names {
			w.Books = append(w.Books, &Volume{Title: n})
		}
		require.NoError(t, s.Add(w, &Writer{Name: "v", Books: []*Volume{{Title: "v1"}}}))
		_, err := s.Commit(ctx).Await(ctx)
		if err != nil {
			await(t, s.Rollback(ctx))
		}
		return err
	}
	require.NoError(t, save("a", "b"))
	_, err := e.Exec(ctx, `CREATE FUNCTION skip_volume() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.title = 'skip' THEN RETURN NULL; END IF; RETURN NEW; END $$`)
	require.NoError(t, err)
	_, err = e.Exec(ctx, "CREATE TRIGGER skip_volume BEFORE INSERT ON volumes FOR EACH ROW EXECUTE FUNCTION skip_volume()")
	require.NoError(t, err)

	err = save("c", "skip")
	require.ErrorIs(t, err, asyncsession.ErrTableChanged)
	assert.Contains(t, err.Error(), `triggers of "volumes" changed`)
	assert.Equal(t, int64(2), count(t, e, "writers"), "nothing was committed")
	assert.Equal(t, int64(3), count(t, e, "volumes"))

	err = save("c", "skip")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "INSERT into volumes wrote 2 of 3 rows")
	assert.Equal(t, int64(2), count(t, e, "writers"), "nothing was committed")

	require.NoError(t, save("c", "d"))
	assert.Equal(t, int64(6), count(t, e, "volumes"))

	_, err = e.Exec(ctx, "DROP TRIGGER skip_volume ON volumes")
	require.NoError(t, err)
	require.NoError(t, save("e"), "a table whose triggers went is still counted, as read")
}
