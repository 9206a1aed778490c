package asyncsession_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type Writer struct {
	ID    int64       `db:"id,pk,default"`
	Name  string      `db:"name"`
	Books []*Volume   `rel:"fk=writer_id,order=title,cascade=delete-orphan"`
	Bio   *WriterBio  `rel:"fk=writer_id"`
	Fans  []*Follower `rel:"fk=writer_id"`
}

func (Writer) TableName() string { return "writers" }

type Volume struct {
	ID       int64   `db:"id,pk,default"`
	WriterID int64   `db:"writer_id,fk=writers.id"`
	Title    string  `db:"title"`
	Writer   *Writer `rel:"fk=writer_id"`
	Tags     []*Tag  `rel:"through=volume_tags,fk=volume_id,ref=tag_id,order=name"`
}

func (Volume) TableName() string { return "volumes" }

type WriterBio struct {
	ID       int64  `db:"id,pk,default"`
	WriterID int64  `db:"writer_id,fk=writers.id,unique"`
	Text     string `db:"text"`
}

func (WriterBio) TableName() string { return "writer_bios" }

// Follower's key to its writer is nullable: removing one from a collection keeps its row.
type Follower struct {
	ID       int64  `db:"id,pk,default"`
	WriterID *int64 `db:"writer_id,fk=writers.id"`
	Name     string `db:"name"`
}

func (Follower) TableName() string { return "followers" }

type Tag struct {
	ID      int64     `db:"id,pk,default"`
	Name    string    `db:"name"`
	Volumes []*Volume `rel:"through=volume_tags,fk=tag_id,ref=volume_id"`
}

func (Tag) TableName() string { return "tags" }

type VolumeTag struct {
	VolumeID int64 `db:"volume_id,pk,fk=volumes.id"`
	TagID    int64 `db:"tag_id,pk,fk=tags.id"`
}

func (VolumeTag) TableName() string { return "volume_tags" }

// Staff refers to itself: a manager is a row of the same table.
type Staff struct {
	ID        int64    `db:"id,pk,default"`
	Name      string   `db:"name"`
	ManagerID *int64   `db:"manager_id,fk=staff.id"`
	Manager   *Staff   `rel:"fk=manager_id"`
	Reports   []*Staff `rel:"fk=manager_id,order=name"`
}

func (Staff) TableName() string { return "staff" }

func relSchema(t *testing.T, e *asyncengine.Engine) {
	t.Helper()
	require.NoError(t, asyncsession.CreateAll(enginetest.Context(t), e, Writer{}, Volume{}, WriterBio{}, Follower{}, Tag{}, VolumeTag{}, Staff{}))
}

func roundTrips(e *asyncengine.Engine) int64 { return e.Stats().RoundTrips }

// writerWithBooks creates the schema and saves a writer with books "b" and "d", "d" tagged tag.
func writerWithBooks(t *testing.T, e *asyncengine.Engine, tag string) *Writer {
	t.Helper()
	relSchema(t, e)
	w := &Writer{Name: "w", Books: []*Volume{{Title: "b"}, {Title: "d", Tags: []*Tag{{Name: tag}}}}}
	saved(t, e, w)
	return w
}

// saved adds objs in a session of their own and commits them.
func saved(t *testing.T, e *asyncengine.Engine, objs ...any) {
	t.Helper()
	s := newSession(t, e)
	require.NoError(t, s.Add(objs...))
	await(t, s.Commit(enginetest.Context(t)))
}

func TestSaveCascadeFillsKeys(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		relSchema(t, e)
		s := newSession(t, e)
		w := &Writer{Name: "Le Guin", Bio: &WriterBio{Text: "b"}}
		w.Books = []*Volume{{Title: "Earthsea"}, {Title: "Dispossessed"}}
		require.NoError(t, s.Add(w))
		await(t, s.Commit(enginetest.Context(t)))
		require.NotZero(t, w.ID)
		for _, b := range w.Books {
			assert.Equal(t, w.ID, b.WriterID)
			assert.Same(t, w, b.Writer, "back-reference set")
		}
		assert.Equal(t, w.ID, w.Bio.WriterID)
		assert.Equal(t, int64(2), count(t, e, "volumes"))

		// a fresh session reads them back: Related refuses before a load
		s2 := newSession(t, e)
		got := await(t, asyncsession.Get[Writer](enginetest.Context(t), s2, w.ID))
		_, err := asyncsession.Related[[]*Volume](s2, got, "Books")
		require.ErrorIs(t, err, asyncsession.ErrNotLoaded)
		await(t, asyncsession.Load(enginetest.Context(t), s2, got, "Books"))
		books, err := asyncsession.Related[[]*Volume](s2, got, "Books")
		require.NoError(t, err)
		require.Len(t, books, 2)
		assert.Equal(t, "Dispossessed", books[0].Title, "ordered by title")
		assert.Same(t, got, books[0].Writer)
		await(t, asyncsession.Load(enginetest.Context(t), s2, got, "Bio"))
		assert.Equal(t, "b", got.Bio.Text)
	})
}

func TestBackReferencesAgree(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		relSchema(t, e)
		s := newSession(t, e)
		a, b := &Writer{Name: "a"}, &Writer{Name: "b"}
		require.NoError(t, s.Add(a, b))
		await(t, s.Commit(enginetest.Context(t)))
		// appending to a collection and setting the many-to-one are the same at flush
		v1 := &Volume{Title: "one"}
		a.Books = append(a.Books, v1)
		v2 := &Volume{Title: "two", Writer: b}
		require.NoError(t, s.Add(v2))
		await(t, s.Flush(enginetest.Context(t)))
		assert.Equal(t, a.ID, v1.WriterID)
		assert.Equal(t, b.ID, v2.WriterID)
		assert.Contains(t, b.Books, v2, "the loaded collection follows the many-to-one")
		// moving a book by its many-to-one takes it out of the old collection
		v1.Writer = b
		await(t, s.Commit(enginetest.Context(t)))
		assert.Equal(t, b.ID, v1.WriterID)
		assert.NotContains(t, a.Books, v1)
		assert.Contains(t, b.Books, v1)
		r, err := e.Query(enginetest.Context(t), "SELECT count(*) FROM volumes WHERE writer_id = "+fmt.Sprint(b.ID))
		require.NoError(t, err)
		var n int64
		require.NoError(t, r.One(&n))
		assert.Equal(t, int64(2), n)

		// a new book in a's collection whose own many-to-one names b: nothing says which is meant
		v3 := &Volume{Title: "three", Writer: b}
		a.Books = append(a.Books, v3)
		_, err = s.Flush(enginetest.Context(t)).Await(enginetest.Context(t))
		require.ErrorIs(t, err, asyncsession.ErrConflictingParent)
		require.ErrorContains(t, err, "Volume in asyncsession_test.Writer.Books has Writer set to another")
		v3.Writer = a
		await(t, s.Commit(enginetest.Context(t)))
		assert.Equal(t, a.ID, v3.WriterID)
	})
}

func TestOrphansAndNulledKeys(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		relSchema(t, e)
		s := newSession(t, e, asyncsession.ExpireOnCommit(false))
		w := &Writer{Name: "w", Books: []*Volume{{Title: "x"}, {Title: "y"}}, Fans: []*Follower{{Name: "f1"}, {Name: "f2"}}}
		require.NoError(t, s.Add(w))
		await(t, s.Commit(enginetest.Context(t)))
		w.Books = w.Books[:1] // delete-orphan: the row goes
		w.Fans = w.Fans[1:]   // the key is nulled: the row stays
		await(t, s.Commit(enginetest.Context(t)))
		assert.Equal(t, int64(1), count(t, e, "volumes"))
		assert.Equal(t, int64(2), count(t, e, "followers"))
		r, err := e.Query(enginetest.Context(t), "SELECT count(*) FROM followers WHERE writer_id IS NULL")
		require.NoError(t, err)
		var n int64
		require.NoError(t, r.One(&n))
		assert.Equal(t, int64(1), n)

		// deleting the parent cascades to its books (delete) and nulls its fans' key
		require.NoError(t, s.Delete(w))
		await(t, s.Commit(enginetest.Context(t)))
		assert.Equal(t, int64(0), count(t, e, "writers"))
		assert.Equal(t, int64(0), count(t, e, "volumes"))
		assert.Equal(t, int64(2), count(t, e, "followers"))
	})
}

func TestDeleteCascadeUnloaded(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		relSchema(t, e)
		s := newSession(t, e)
		w := &Writer{Name: "w", Books: []*Volume{{Title: "x"}, {Title: "y"}}}
		require.NoError(t, s.Add(w))
		await(t, s.Commit(enginetest.Context(t)))
		s2 := newSession(t, e)
		got := await(t, asyncsession.Get[Writer](enginetest.Context(t), s2, w.ID))
		require.NoError(t, s2.Delete(got))
		await(t, s2.Commit(enginetest.Context(t)))
		assert.Equal(t, int64(0), count(t, e, "volumes"))
	})
}

func TestManyToMany(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		relSchema(t, e)
		s := newSession(t, e)
		fantasy, classic := &Tag{Name: "fantasy"}, &Tag{Name: "classic"}
		v := &Volume{Title: "Earthsea", Writer: &Writer{Name: "Le Guin"}, Tags: []*Tag{fantasy, classic}}
		require.NoError(t, s.Add(v))
		await(t, s.Commit(enginetest.Context(t)))
		assert.Equal(t, int64(2), count(t, e, "volume_tags"))

		s2 := newSession(t, e)
		got := await(t, asyncsession.Get[Volume](enginetest.Context(t), s2, v.ID))
		await(t, asyncsession.Load(enginetest.Context(t), s2, got, "Tags"))
		require.Len(t, got.Tags, 2)
		assert.Equal(t, "classic", got.Tags[0].Name)
		got.Tags = got.Tags[1:]
		await(t, s2.Commit(enginetest.Context(t)))
		assert.Equal(t, int64(1), count(t, e, "volume_tags"))
		// the other side sees the link
		tag := await(t, asyncsession.Get[Tag](enginetest.Context(t), s2, fantasy.ID))
		await(t, asyncsession.Load(enginetest.Context(t), s2, tag, "Volumes"))
		require.Len(t, tag.Volumes, 1)
		assert.Equal(t, v.ID, tag.Volumes[0].ID)
	})
}

func TestSelfReferenceAndCycle(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		relSchema(t, e)
		s := newSession(t, e)
		boss := &Staff{Name: "boss"}
		mid := &Staff{Name: "mid", Manager: boss}
		low := &Staff{Name: "low", Manager: mid}
		require.NoError(t, s.Add(low))
		await(t, s.Commit(enginetest.Context(t)))
		require.NotNil(t, low.ManagerID)
		assert.Equal(t, mid.ID, *low.ManagerID)
		assert.Equal(t, boss.ID, *mid.ManagerID)
		assert.Nil(t, boss.ManagerID)
		assert.Equal(t, []*Staff{mid}, boss.Reports)

		// a cycle: each manages the other; one row goes in with NULL and is updated after
		x, y := &Staff{Name: "x"}, &Staff{Name: "y"}
		x.Manager, y.Manager = y, x
		require.NoError(t, s.Add(x))
		await(t, s.Commit(enginetest.Context(t)))
		require.NotNil(t, x.ManagerID)
		require.NotNil(t, y.ManagerID)
		assert.Equal(t, y.ID, *x.ManagerID)
		assert.Equal(t, x.ID, *y.ManagerID)
		s2 := newSession(t, e)
		gx := await(t, asyncsession.Get[Staff](enginetest.Context(t), s2, x.ID))
		require.NotNil(t, gx.ManagerID)
		assert.Equal(t, y.ID, *gx.ManagerID, "the post-update reached the database")
	})
}

// Loads issued together for many parents travel as one pipeline; LoadAll is one query.
func TestLazyLoadsPipelineAndSelectIn(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		relSchema(t, e)
		s := newSession(t, e)
		var ws []*Writer
		for i := range 50 {
			w := &Writer{Name: fmt.Sprint("w", i)}
			for j := range 3 {
				w.Books = append(w.Books, &Volume{Title: fmt.Sprint("b", j)})
			}
			ws = append(ws, w)
			require.NoError(t, s.Add(w))
		}
		await(t, s.Commit(enginetest.Context(t)))
		ids := make([]any, len(ws))
		for i, w := range ws {
			ids[i] = w.ID
		}

		s2 := newSession(t, e)
		got := await(t, asyncsession.Select[Writer](enginetest.Context(t), s2, "SELECT id, name FROM writers ORDER BY id"))
		loadBooksTogether(t, s2, got)
		for _, w := range got {
			require.Len(t, w.Books, 3)
		}

		s3 := newSession(t, e)
		got = await(t, asyncsession.Select[Writer](enginetest.Context(t), s3, "SELECT id, name FROM writers ORDER BY id"))
		await(t, asyncsession.LoadAll(enginetest.Context(t), s3, got, "Books"))
		for _, w := range got {
			require.Len(t, w.Books, 3)
			assert.Same(t, w, w.Books[0].Writer)
		}
		// many-to-one, in a session that has not loaded the writers
		s4 := newSession(t, e)
		books := await(t, asyncsession.Select[Volume](enginetest.Context(t), s4, "SELECT id, writer_id, title FROM volumes ORDER BY id"))
		await(t, asyncsession.LoadAll(enginetest.Context(t), s4, books, "Writer"))
		for _, b := range books {
			require.NotNil(t, b.Writer)
			assert.Equal(t, b.WriterID, b.Writer.ID)
		}
	})
}

type badKind struct {
	ID    int64    `db:"id,pk"`
	Books []Volume `rel:"fk=writer_id"`
}

type forgotRel struct {
	ID       int64   `db:"id,pk"`
	WriterID int64   `db:"writer_id,fk=writers.id"`
	Writer   *Writer // no rel tag
}

type badFK struct {
	ID    int64     `db:"id,pk"`
	Books []*Volume `rel:"fk=title"`
}

type badCycle struct {
	ID    int64     `db:"id,pk,default"`
	Other int64     `db:"other,fk=bad_cycle.id"`
	Next  *badCycle `rel:"fk=other"`
}

func (badCycle) TableName() string { return "bad_cycle" }

// Models whose keys, none nullable, reference each other: no order of INSERTs works.
type cycleA struct {
	ID  int64   `db:"id,pk,default"`
	BID int64   `db:"b_id,fk=cycle_b.id"`
	B   *cycleB `rel:"fk=b_id"`
}

func (cycleA) TableName() string { return "cycle_a" }

type cycleB struct {
	ID  int64   `db:"id,pk,default"`
	AID int64   `db:"a_id,fk=cycle_a.id"`
	A   *cycleA `rel:"fk=a_id"`
}

func (cycleB) TableName() string { return "cycle_b" }

// The same through a collection: a family's members reference it, and it references its head.
type family struct {
	ID      int64     `db:"id,pk,default"`
	HeadID  int64     `db:"head_id,fk=members.id"`
	Head    *member   `rel:"fk=head_id"`
	Members []*member `rel:"fk=family_id"`
}

func (family) TableName() string { return "families" }

type member struct {
	ID       int64 `db:"id,pk,default"`
	FamilyID int64 `db:"family_id,fk=families.id"`
}

func (member) TableName() string { return "members" }

// With the head's key nullable, the family goes in first and gets its head after.
type household struct {
	ID      int64       `db:"id,pk,default"`
	HeadID  *int64      `db:"head_id,fk=residents.id"`
	Head    *resident   `rel:"fk=head_id"`
	Members []*resident `rel:"fk=household_id"`
}

func (household) TableName() string { return "households" }

type resident struct {
	ID          int64 `db:"id,pk,default"`
	HouseholdID int64 `db:"household_id,fk=households.id"`
}

func (resident) TableName() string { return "residents" }

// A cycle of models through keys that cannot hold NULL is a MappingError at the first use of
// either model, before anything is sent.
func TestRelationshipModelCycle(t *testing.T) {
	e := newEngine(t, "sqlite://:memory:")
	var me *asyncsession.MappingError
	err := newSession(t, e).Add(&cycleA{})
	require.ErrorAs(t, err, &me)
	assert.Contains(t, err.Error(), "cycleA.BID → cycleB, cycleB.AID → cycleA form a cycle that cannot be ordered")
	err = newSession(t, e).Add(&cycleB{})
	require.ErrorAs(t, err, &me)
	assert.Contains(t, err.Error(), "cycleB.AID → cycleA, cycleA.BID → cycleB")
	err = newSession(t, e).Add(&family{})
	require.ErrorAs(t, err, &me)
	assert.Contains(t, err.Error(), "family.HeadID → member, member.FamilyID → family")

	// CreateAll adds the key that closes the cycle once both tables exist, and again does nothing
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		for range 2 {
			require.NoError(t, asyncsession.CreateAll(enginetest.Context(t), e, household{}, resident{}))
		}
		s := newSession(t, e)
		head := &resident{}
		h := &household{Head: head, Members: []*resident{head, {}}}
		require.NoError(t, s.Add(h))
		await(t, s.Commit(enginetest.Context(t)))
		require.NotNil(t, h.HeadID)
		assert.Equal(t, head.ID, *h.HeadID)
		assert.Equal(t, h.ID, head.HouseholdID)
		if e.Dialect().Name() != "sqlite" {
			_, err := e.Exec(enginetest.Context(t), "UPDATE households SET head_id = -1")
			var pgErr *pgconn.PgError
			require.ErrorAs(t, err, &pgErr)
			assert.Equal(t, "23503", pgErr.Code, "the key closing the cycle is enforced")
		}
	})
}

func TestRelationshipMappingErrors(t *testing.T) {
	e := newEngine(t, "sqlite://:memory:")
	s := newSession(t, e)
	var me *asyncsession.MappingError
	err := s.Add(&badKind{ID: 1})
	require.ErrorAs(t, err, &me)
	_, err = asyncsession.Get[badKind](enginetest.Context(t), s, 1).Await(enginetest.Context(t))
	require.ErrorAs(t, err, &me)
	assert.Contains(t, err.Error(), "[]*T")

	// at the first use of the model, before anything is sent
	s = newSession(t, e)
	err = s.Add(&badFK{ID: 1})
	require.ErrorAs(t, err, &me)
	me = nil
	require.ErrorAs(t, asyncsession.CreateAll(enginetest.Context(t), e, badFK{}), &me, "and by CreateAll")
	assert.Contains(t, err.Error(), "fk=title must be a column of asyncsession_test.Volume tagged fk=bad_fk.id")

	// a relationship whose rel tag was forgotten is not taken for a JSON column
	me = nil
	require.ErrorAs(t, s.Add(&forgotRel{ID: 1}), &me)
	assert.Contains(t, me.Error(), "Writer holds mapped objects")
	assert.Contains(t, me.Error(), "make it a *T or []*T tagged `rel:")

	w := &Writer{}
	_, err = asyncsession.Load(enginetest.Context(t), s, w, "Nope").Await(enginetest.Context(t))
	require.ErrorAs(t, err, &me)
	assert.Contains(t, err.Error(), `no relationship "Nope"`)

	require.NoError(t, asyncsession.CreateAll(enginetest.Context(t), e, badCycle{}))
	s = newSession(t, e)
	x, y := &badCycle{}, &badCycle{}
	x.Next, y.Next = y, x
	require.NoError(t, s.Add(x))
	_, err = s.Flush(enginetest.Context(t)).Await(enginetest.Context(t))
	require.ErrorAs(t, err, &me)
	assert.Contains(t, err.Error(), "cycle")
	assert.True(t, errors.As(err, &me))
}

// Round trips are counted on the wire, on one connection whose statements are prepared by a
// first run of the same shape.
func TestRelationshipRoundTrips(t *testing.T) {
	e := newEngine(t, enginetestURL(t))
	relSchema(t, e)
	save := func(n, books int) int64 {
		s := newSession(t, e)
		for i := range n {
			w := &Writer{Name: fmt.Sprint("w", i)}
			for j := range books {
				w.Books = append(w.Books, &Volume{Title: fmt.Sprint("b", j)})
			}
			require.NoError(t, s.Add(w))
		}
		before := roundTrips(e)
		await(t, s.Commit(enginetest.Context(t)))
		return roundTrips(e) - before
	}
	save(100, 10)
	// BEGIN, the writers leaving their keys, the books taking them, and COMMIT in one pipeline
	assert.Equal(t, int64(1), save(100, 10))
	// one writer: its table's types are read once, and then the same
	save(1, 10)
	assert.Equal(t, int64(1), save(1, 10))

	lazy := func() int64 {
		s := newSession(t, e)
		before := roundTrips(e)
		ws := await(t, asyncsession.Select[Writer](enginetest.Context(t), s, "SELECT id, name FROM writers ORDER BY id LIMIT 100"))
		loadBooksTogether(t, s, ws)
		await(t, s.Commit(enginetest.Context(t)))
		for _, w := range ws {
			require.Len(t, w.Books, 10)
		}
		return roundTrips(e) - before
	}
	lazy()
	// BEGIN and the SELECT; the hundred loads in one pipeline; COMMIT
	assert.Equal(t, int64(3), lazy())

	selectin := func() int64 {
		s := newSession(t, e)
		before := roundTrips(e)
		ws := await(t, asyncsession.Select[Writer](enginetest.Context(t), s, "SELECT id, name FROM writers ORDER BY id LIMIT 100"))
		await(t, asyncsession.LoadAll(enginetest.Context(t), s, ws, "Books"))
		await(t, s.Commit(enginetest.Context(t)))
		return roundTrips(e) - before
	}
	selectin()
	// BEGIN and the SELECT; one query for every writer's books; COMMIT
	assert.Equal(t, int64(3), selectin())
}

// enginetestURL is a PostgreSQL database with one pooled connection, whose prepared statements
// the round-trip counts rely on.
func enginetestURL(t *testing.T) string {
	return enginetest.WithQuery(enginetest.NewDatabase(t), "pool_size=1&max_overflow=0")
}

// A request that runs alone with the connection (RunSync, InsertMany) flushes the staged graph
// first.
func TestStagedFlushBeforeExclusive(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		relSchema(t, e)
		s := newSession(t, e)
		w := &Writer{Name: "w", Books: []*Volume{{Title: "x"}}}
		require.NoError(t, s.Add(w))
		await(t, s.RunSync(enginetest.Context(t), func(ctx context.Context, c *asyncengine.Conn) error {
			r, err := c.Query(ctx, "SELECT count(*) FROM volumes WHERE writer_id = "+fmt.Sprint(w.ID))
			if err != nil {
				return err
			}
			var n int64
			if err := r.One(&n); err != nil {
				return err
			}
			if n != 1 {
				return fmt.Errorf("%d volumes", n)
			}
			return nil
		}))
		assert.NotZero(t, w.Books[0].WriterID)
	})
}

// A flush whose pipeline never reached the server leaves the relationships as they were: the
// next flush sends the association rows and the orphan's delete again.
func TestUnsentFlushKeepsRelationshipChanges(t *testing.T) {
	e := newEngine(t, enginetestURL(t)+"&pool_timeout=0.2")
	relSchema(t, e)
	ctx := enginetest.Context(t)
	s := newSession(t, e, asyncsession.ExpireOnCommit(false))
	w := &Writer{Name: "w", Books: []*Volume{{Title: "x"}, {Title: "y"}}}
	require.NoError(t, s.Add(w))
	await(t, s.Commit(ctx))
	w.Books[0].Tags = append(w.Books[0].Tags, &Tag{Name: "gone"}) // on the orphan: no row
	w.Books[1].Tags = append(w.Books[1].Tags, &Tag{Name: "new"})
	w.Books = w.Books[1:]
	held, err := e.Connect(ctx)
	require.NoError(t, err)
	_, err = s.Flush(ctx).Await(ctx)
	require.ErrorIs(t, err, asyncengine.ErrPoolTimeout)
	require.NoError(t, held.Close())
	await(t, s.Commit(ctx))
	assert.Equal(t, int64(1), count(t, e, "volumes"), "the orphan was deleted")
	assert.Equal(t, int64(1), count(t, e, "volume_tags"), "the association row was written")
}

// loadBooksTogether issues a Load of every writer's books while the session is held, so that the
// loads travel to the server together, and waits for all of them.
func loadBooksTogether(t *testing.T, s *asyncsession.Session, ws []*Writer) {
	t.Helper()
	fs := make([]*asyncengine.Future[struct{}], len(ws))
	func() {
		hold := holdSession(t, s)
		defer hold()
		for i, w := range ws {
			fs[i] = asyncsession.Load(enginetest.Context(t), s, w, "Books")
		}
	}()
	_, err := asyncengine.All(enginetest.Context(t), fs...)
	require.NoError(t, err)
}

// A child moved from one delete-orphan collection to another is moved, not deleted: its own
// association rows stay, whichever parent the flush walks first.
func TestOrphanMovedToAnotherParent(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		relSchema(t, e)
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		tags := []*Tag{{Name: "t1"}, {Name: "t2"}}
		a := &Writer{Name: "a", Books: []*Volume{{Title: "moved", Tags: tags}, {Title: "kept"}}}
		b := &Writer{Name: "b"}
		require.NoError(t, s.Add(a, b))
		await(t, s.Commit(ctx))
		for _, first := range []bool{true, false} {
			from, to := a, b
			if !first {
				from, to = b, a
			}
			v := from.Books[0]
			from.Books = from.Books[1:]
			to.Books = append([]*Volume{v}, to.Books...)
			await(t, s.Commit(ctx))
			s2 := newSession(t, e)
			got := await(t, asyncsession.Get[Volume](ctx, s2, v.ID))
			require.NotNil(t, got, "the moved book was deleted")
			assert.Equal(t, to.ID, got.WriterID)
			await(t, asyncsession.Load(ctx, s2, got, "Tags"))
			assert.Len(t, got.Tags, 2, "its association rows stay")
		}
		assert.Equal(t, int64(2), count(t, e, "volumes"))
	})
}

// A collection of a loaded object that was never loaded can be added to: a flush writes what was
// added, the rows the database holds stay, and the collection reads as not loaded until a load
// reads it whole, keeping what was added.
func TestAddingToUnloadedCollection(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		w := writerWithBooks(t, e, "fantasy")

		// added and flushed: not loaded, and a load reads every row, the added object among them
		s2 := newSession(t, e)
		got := await(t, asyncsession.Get[Writer](ctx, s2, w.ID))
		added := &Volume{Title: "a"}
		got.Books = append(got.Books, added)
		await(t, s2.Flush(ctx))
		_, err := asyncsession.Related[[]*Volume](s2, got, "Books")
		require.ErrorIs(t, err, asyncsession.ErrNotLoaded, "a collection only added to is not whole")
		await(t, asyncsession.Load(ctx, s2, got, "Books"))
		books, err := asyncsession.Related[[]*Volume](s2, got, "Books")
		require.NoError(t, err)
		require.Len(t, books, 3)
		assert.Same(t, added, books[0], "ordered by title, the added object itself")
		await(t, s2.Commit(ctx))
		assert.Equal(t, int64(3), count(t, e, "volumes"), "the rows held stay, and the added one")

		// added, not flushed, loaded under NoAutoflush: the added object stays, after the rows
		s3 := newSession(t, e)
		got = await(t, asyncsession.Get[Writer](ctx, s3, w.ID))
		late := &Volume{Title: "c"}
		got.Books = append(got.Books, late)
		await(t, asyncsession.Load(asyncsession.NoAutoflush(ctx), s3, got, "Books"))
		require.Len(t, got.Books, 4)
		assert.Same(t, late, got.Books[3])
		await(t, s3.Commit(ctx))
		assert.NotZero(t, late.ID)
		assert.Equal(t, got.ID, late.WriterID)
		assert.Equal(t, int64(4), count(t, e, "volumes"))

		// a many-to-many added to adds its link, keeping the others
		s4 := newSession(t, e)
		vol := await(t, asyncsession.Select[Volume](ctx, s4, "SELECT * FROM volumes WHERE title = 'd'"))[0]
		vol.Tags = append(vol.Tags, &Tag{Name: "classic"})
		await(t, s4.Commit(ctx))
		assert.Equal(t, int64(2), count(t, e, "volume_tags"))
		_, err = asyncsession.Related[[]*Tag](s4, vol, "Tags")
		require.ErrorIs(t, err, asyncsession.ErrNotLoaded)
		await(t, asyncsession.Load(ctx, s4, vol, "Tags"))
		require.Len(t, vol.Tags, 2)

		// deleting the writer after adding to its unloaded books deletes every book
		s5 := newSession(t, e)
		got = await(t, asyncsession.Get[Writer](ctx, s5, w.ID))
		got.Books = append(got.Books, &Volume{Title: "e"})
		await(t, s5.Flush(ctx))
		require.NoError(t, s5.Delete(got))
		await(t, s5.Commit(ctx))
		assert.Equal(t, int64(0), count(t, e, "volumes"))
		assert.Equal(t, int64(0), count(t, e, "writers"))
		assert.Equal(t, int64(0), count(t, e, "volume_tags"), "the link rows of the books never loaded went first")
		assert.Equal(t, int64(2), count(t, e, "tags"))
	})
}

// An object in the collections of two parents is refused at flush, in either order, whether the
// parents are new or loaded; taken out of one, it moves.
func TestChildInTwoCollections(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		relSchema(t, e)
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		v := &Volume{Title: "shared"}
		a, b := &Writer{Name: "a", Books: []*Volume{v}}, &Writer{Name: "b", Books: []*Volume{v}}
		require.NoError(t, s.Add(a, b))
		_, err := s.Flush(ctx).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrConflictingParent)
		require.ErrorContains(t, err, "is in asyncsession_test.Writer.Books of two")
		assert.Nil(t, v.Writer, "the failed flush changed no field")
		assert.Zero(t, v.WriterID)
		a.Books = nil
		await(t, s.Commit(ctx))
		assert.Equal(t, b.ID, v.WriterID)

		// loaded: moved from b to a, then back
		for _, names := range [][2]string{{"b", "a"}, {"a", "b"}} {
			s2 := newSession(t, e)
			ws := await(t, asyncsession.From[Writer](s2).Load("Books", asyncsession.SelectIn).OrderBy("name").All(ctx))
			byName := map[string]*Writer{ws[0].Name: ws[0], ws[1].Name: ws[1]}
			from, to := byName[names[0]], byName[names[1]]
			require.Len(t, from.Books, 1)
			moved := from.Books[0]
			to.Books = append(to.Books, moved)
			_, err = s2.Flush(ctx).Await(ctx)
			require.ErrorIs(t, err, asyncsession.ErrConflictingParent, "still in the books of %s", names[0])
			assert.Same(t, from, moved.Writer, "the failed flush changed no field")
			assert.Equal(t, from.ID, moved.WriterID)
			from.Books = nil
			await(t, s2.Commit(ctx))
			assert.Equal(t, to.ID, moved.WriterID, "moved, not deleted as an orphan")
			assert.Equal(t, int64(1), count(t, e, "volumes"))
		}
	})
}

// Reload reads a loaded relationship again, each step of a path, with what other transactions
// committed since; Load does not.
func TestReloadRelationship(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		w := writerWithBooks(t, e, "x")

		s2 := newSession(t, e)
		got := await(t, asyncsession.Get[Writer](ctx, s2, w.ID))
		await(t, asyncsession.Load(ctx, s2, got, "Books.Tags"))
		require.Len(t, got.Books, 2)
		first := got.Books[0]
		await(t, s2.Commit(ctx))

		// another session adds a book, and a tag to the loaded book "d"
		s3 := newSession(t, e)
		other := await(t, asyncsession.Get[Writer](ctx, s3, w.ID))
		other.Books = append(other.Books, &Volume{Title: "a"})
		d := await(t, asyncsession.Select[Volume](ctx, s3, "SELECT * FROM volumes WHERE title = 'd'"))[0]
		d.Tags = append(d.Tags, &Tag{Name: "y"})
		await(t, s3.Commit(ctx))

		before := roundTrips(e)
		await(t, asyncsession.Load(ctx, s2, got, "Books"))
		assert.Len(t, got.Books, 2, "Load keeps a loaded relationship")
		assert.Equal(t, before, roundTrips(e), "without a query")
		await(t, asyncsession.Reload(ctx, s2, got, "Books.Tags"))
		require.Len(t, got.Books, 3)
		assert.Equal(t, "a", got.Books[0].Title)
		assert.Same(t, first, got.Books[1], "the loaded object itself")
		require.Len(t, got.Books[2].Tags, 2, "each step read again")
		assert.Equal(t, "y", got.Books[2].Tags[1].Name)

		// rows another transaction removed leave the fields, and are not written back
		await(t, s2.Commit(ctx))
		_, err := e.Exec(ctx, "DELETE FROM volume_tags")
		require.NoError(t, err)
		await(t, asyncsession.Reload(ctx, s2, got, "Books.Tags"))
		assert.Empty(t, got.Books[2].Tags)
		await(t, s2.Commit(ctx))
		assert.Equal(t, int64(0), count(t, e, "volume_tags"))

		// unflushed changes are written first, then read back
		got.Books = got.Books[:2]
		await(t, asyncsession.Reload(ctx, s2, got, "Books"))
		assert.Len(t, got.Books, 2, "the removed book was deleted as an orphan, then the rest read")
		await(t, s2.Commit(ctx))
		assert.Equal(t, int64(2), count(t, e, "volumes"))

		// a new object has no rows to read
		fresh := &Writer{Name: "new", Books: []*Volume{{Title: "n"}}}
		require.NoError(t, s2.Add(fresh))
		await(t, asyncsession.ReloadAll(asyncsession.NoAutoflush(ctx), s2, []*Writer{fresh}, "Books"))
		assert.Len(t, fresh.Books, 1)
	})
}

// A load refused at planning (an object not in the session) still sends the autoflush it
// planned, on its context; the session stays usable.
func TestRefusedLoadSendsItsAutoflush(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		relSchema(t, e)
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		w := &Writer{Name: "w"}
		require.NoError(t, s.Add(w))
		await(t, s.Commit(ctx))
		require.NoError(t, s.Add(&Writer{Name: "pending"}))
		_, err := asyncsession.Load(ctx, s, &Writer{ID: w.ID}, "Books").Await(ctx)
		require.ErrorContains(t, err, "is not a asyncsession_test.Writer of this session")
		require.ErrorIs(t, err, asyncsession.ErrNotInSession)
		_, err = asyncsession.Related[[]*Volume](s, &Writer{ID: w.ID}, "Books")
		require.ErrorIs(t, err, asyncsession.ErrNotInSession)
		require.ErrorIs(t, s.Delete(&Writer{ID: w.ID}), asyncsession.ErrNotInSession)
		_, err = s.Flush(ctx).Await(ctx)
		require.NoError(t, err)
		await(t, s.Commit(ctx))
		assert.Equal(t, int64(2), count(t, e, "writers"))
	})
}

// A nil owner given to a load and a wrong type asked of Related are errors a caller can match.
func TestLoadMisuse(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		relSchema(t, e)
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		w := &Writer{Name: "w"}
		require.NoError(t, s.Add(w))
		await(t, s.Commit(ctx))
		_, err := asyncsession.ReloadAll(ctx, s, []*Writer{w, nil}, "Books").Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrNilObject)
		require.ErrorContains(t, err, "object 1 is nil")
		await(t, asyncsession.Load(ctx, s, w, "Books"))
		_, err = asyncsession.Related[[]*Writer](s, w, "Books")
		var me *asyncsession.MappingError
		require.ErrorAs(t, err, &me)
		require.ErrorContains(t, err, "call Related[[]*asyncsession_test.Volume]")
	})
}

// Three levels under cascade=delete, none loaded: deleting the top row deletes the rows below it
// by their keys, the lowest level first.
type shelf struct {
	ID    int64  `db:"id,pk,default"`
	Name  string `db:"name"`
	Boxes []*box `rel:"fk=shelf_id,cascade=delete"`
}

func (shelf) TableName() string { return "shelves" }

type box struct {
	ID      int64   `db:"id,pk,default"`
	ShelfID int64   `db:"shelf_id,fk=shelves.id"`
	Items   []*item `rel:"fk=box_id,cascade=delete"`
}

func (box) TableName() string { return "boxes" }

type item struct {
	ID    int64  `db:"id,pk,default"`
	BoxID int64  `db:"box_id,fk=boxes.id"`
	Name  string `db:"name"`
}

func (item) TableName() string { return "items" }

func TestDeleteCascadeUnloadedLevels(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		require.NoError(t, asyncsession.CreateAll(ctx, e, shelf{}, box{}, item{}))
		top := &shelf{Name: "top", Boxes: []*box{{Items: []*item{{Name: "a"}, {Name: "b"}}}, {Items: []*item{{Name: "c"}}}}}
		other := &shelf{Name: "other", Boxes: []*box{{Items: []*item{{Name: "d"}}}}}
		saved(t, e, top, other)

		s := newSession(t, e)
		got := await(t, asyncsession.Get[shelf](ctx, s, top.ID))
		require.NoError(t, s.Delete(got))
		await(t, s.Commit(ctx))
		assert.Equal(t, int64(1), count(t, e, "shelves"))
		assert.Equal(t, int64(1), count(t, e, "boxes"), "the other shelf's box stays")
		assert.Equal(t, int64(1), count(t, e, "items"), "the other shelf's item stays")
	})
}

// A foreign key the application sets by its column is written, although a loaded relationship
// still joins the object to its old parent: the column wins, the many-to-one is left to load
// again, and the old parent's loaded collection lets the child go without the NULL or the
// delete a removal from it writes.
func TestForeignKeySetByColumnWins(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		w := writerWithBooks(t, e, "t")
		other := &Writer{Name: "other", Fans: []*Follower{{Name: "f"}}}
		saved(t, e, other)

		// the many-to-one is loaded
		s := newSession(t, e)
		v, err := asyncsession.From[Volume](s).Filter("title", "b").Load("Writer", asyncsession.Joined).One(ctx).Await(ctx)
		require.NoError(t, err)
		require.NotNil(t, v.Writer)
		v.WriterID = other.ID
		await(t, s.Commit(ctx))
		assert.Equal(t, other.ID, v.WriterID)
		assert.Nil(t, v.Writer, "the relationship no longer says where it belongs")
		_, err = asyncsession.Related[*Writer](s, v, "Writer")
		assert.ErrorIs(t, err, asyncsession.ErrNotLoaded)
		assert.EqualValues(t, 1, countWhere(t, e, "volumes", fmt.Sprint("writer_id = ", other.ID)))

		// the parent's collection is loaded (delete-orphan)
		s = newSession(t, e)
		got, err := asyncsession.From[Writer](s).Filter("id", w.ID).Load("Books", asyncsession.SelectIn).One(ctx).Await(ctx)
		require.NoError(t, err)
		require.Len(t, got.Books, 1)
		d := got.Books[0]
		d.WriterID = other.ID
		await(t, s.Commit(ctx))
		assert.Empty(t, got.Books, "moved out of the collection")
		assert.EqualValues(t, 2, countWhere(t, e, "volumes", fmt.Sprint("writer_id = ", other.ID)), "moved, not deleted")

		// a nullable key set to NULL by its column, the collection loaded
		s = newSession(t, e)
		o, err := asyncsession.From[Writer](s).Filter("id", other.ID).Load("Fans", asyncsession.SelectIn).One(ctx).Await(ctx)
		require.NoError(t, err)
		require.Len(t, o.Fans, 1)
		o.Fans[0].WriterID = nil
		await(t, s.Commit(ctx))
		assert.Empty(t, o.Fans)
		assert.EqualValues(t, 1, count(t, e, "followers"))
		assert.EqualValues(t, 0, countWhere(t, e, "followers", fmt.Sprint("writer_id = ", other.ID)))
	})
}

// Citizen holds one passport; the passport's key to it is nullable and unique.
type Citizen struct {
	ID       int64     `db:"id,pk,default"`
	Name     string    `db:"name"`
	Passport *Passport `rel:"fk=citizen_id"`
	Card     *IDCard   `rel:"fk=citizen_id,cascade=delete-orphan"`
}

func (Citizen) TableName() string { return "citizens" }

type Passport struct {
	ID        int64  `db:"id,pk,default"`
	CitizenID *int64 `db:"citizen_id,fk=citizens.id,unique"`
	Number    string `db:"number"`
}

func (Passport) TableName() string { return "passports" }

// IDCard's key to its citizen cannot be NULL: a replaced card is deleted (delete-orphan).
type IDCard struct {
	ID        int64  `db:"id,pk,default"`
	CitizenID int64  `db:"citizen_id,fk=citizens.id"`
	Number    string `db:"number"`
}

func (IDCard) TableName() string { return "id_cards" }

// Replacing a loaded one-to-one lets the old child go: its key is set NULL before the new child
// takes the (unique) key in the same flush, or, with delete-orphan, it is deleted.
func TestReplaceOneToOne(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		require.NoError(t, asyncsession.CreateAll(ctx, e, Citizen{}, Passport{}, IDCard{}))
		saved(t, e, &Citizen{Name: "c", Passport: &Passport{Number: "old"}, Card: &IDCard{Number: "old"}})

		s := newSession(t, e)
		c, err := asyncsession.From[Citizen](s).Load("Passport", asyncsession.SelectIn).Load("Card", asyncsession.SelectIn).One(ctx).Await(ctx)
		require.NoError(t, err)
		old := c.Passport
		c.Passport = &Passport{Number: "new"}
		c.Card = &IDCard{Number: "new"}
		await(t, s.Commit(ctx))
		assert.Nil(t, old.CitizenID, "the old passport let go")
		assert.EqualValues(t, 1, countWhere(t, e, "passports", fmt.Sprintf("citizen_id = %d AND number = 'new'", c.ID)))
		assert.EqualValues(t, 1, countWhere(t, e, "passports", "citizen_id IS NULL AND number = 'old'"))
		assert.EqualValues(t, 1, count(t, e, "id_cards"), "the old card is deleted")
		assert.EqualValues(t, 1, countWhere(t, e, "id_cards", "number = 'new'"))

		s = newSession(t, e)
		c, err = asyncsession.From[Citizen](s).Load("Passport", asyncsession.SelectIn).One(ctx).Await(ctx)
		require.NoError(t, err)
		assert.Equal(t, "new", c.Passport.Number, "one passport joins the citizen")
	})
}

// A loaded one-to-one child moved to another loaded parent goes there, whichever parent the walk
// meets first; one left in both is ErrConflictingParent.
func TestMoveOneToOne(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		require.NoError(t, asyncsession.CreateAll(ctx, e, Citizen{}, Passport{}, IDCard{}))
		saved(t, e, &Citizen{Name: "x", Passport: &Passport{Number: "px"}}, &Citizen{Name: "y", Passport: &Passport{Number: "py"}})
		for _, first := range []string{"x", "y"} {
			s := newSession(t, e)
			cs, err := asyncsession.From[Citizen](s).Load("Passport", asyncsession.SelectIn).OrderBy("name").All(ctx).Await(ctx)
			require.NoError(t, err)
			x, y := cs[0], cs[1]
			if first == "y" {
				x, y = y, x
			}
			taken, old := y.Passport, x.Passport
			x.Passport, y.Passport = taken, nil
			await(t, s.Commit(ctx))
			require.NotNil(t, taken.CitizenID)
			assert.Equal(t, x.ID, *taken.CitizenID, "the passport moved to %s", x.Name)
			assert.Nil(t, old.CitizenID, "the one it replaced let go")
			assert.EqualValues(t, 1, countWhere(t, e, "passports", fmt.Sprintf("citizen_id = %d", x.ID)))
			assert.EqualValues(t, 0, countWhere(t, e, "passports", fmt.Sprintf("citizen_id = %d", y.ID)))
			// give y a passport back for the next round
			s = newSession(t, e)
			got := await(t, asyncsession.Get[Citizen](ctx, s, y.ID))
			got.Passport = &Passport{Number: "p" + y.Name}
			require.NoError(t, s.Add(got))
			await(t, s.Commit(ctx))
		}

		s := newSession(t, e)
		cs, err := asyncsession.From[Citizen](s).Load("Passport", asyncsession.SelectIn).OrderBy("name").All(ctx).Await(ctx)
		require.NoError(t, err)
		cs[0].Passport = cs[1].Passport // left in y too
		_, err = s.Commit(ctx).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrConflictingParent)
	})
}

// A child moved by its column joins its new parent's loaded collection, and its many-to-one
// follows, when the session holds the new parent.
func TestColumnMoveJoinsTheNewParent(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		writerWithBooks(t, e, "t")
		saved(t, e, &Writer{Name: "other", Books: []*Volume{{Title: "o"}}})
		s := newSession(t, e)
		ws, err := asyncsession.From[Writer](s).Load("Books", asyncsession.SelectIn).OrderBy("name").All(ctx).Await(ctx)
		require.NoError(t, err)
		other, w := ws[0], ws[1]
		require.Len(t, w.Books, 2)
		moved := w.Books[0]
		moved.WriterID = other.ID
		await(t, s.Commit(ctx))
		assert.Len(t, w.Books, 1)
		require.Len(t, other.Books, 2)
		assert.Contains(t, other.Books, moved)
		books, err := asyncsession.Related[[]*Volume](s, other, "Books")
		require.NoError(t, err)
		assert.Len(t, books, 2)

		// and back, with the many-to-one loaded: it follows the column
		_, err = asyncsession.Load(ctx, s, moved, "Writer").Await(ctx)
		require.NoError(t, err)
		require.Same(t, other, moved.Writer)
		moved.WriterID = w.ID
		await(t, s.Commit(ctx))
		assert.Same(t, w, moved.Writer)
		assert.Len(t, w.Books, 2)
		assert.Len(t, other.Books, 1)
		assert.EqualValues(t, 2, countWhere(t, e, "volumes", fmt.Sprintf("writer_id = %d", w.ID)))
	})
}

// Bio is a one-to-one under delete-orphan whose key is unique: the new child's INSERT meets the
// old child's row, whose DELETE runs after it; the error says so.
type Bio struct {
	ID       int64 `db:"id,pk,default"`
	AuthorID int64 `db:"author_id,fk=bio_authors.id,unique"`
}

type BioAuthor struct {
	ID  int64 `db:"id,pk,default"`
	Bio *Bio  `rel:"fk=author_id,cascade=delete-orphan"`
}

func (BioAuthor) TableName() string { return "bio_authors" }

func TestReplaceUniqueOneToOneNeedsAFlush(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		require.NoError(t, asyncsession.CreateAll(ctx, e, BioAuthor{}, Bio{}))
		saved(t, e, &BioAuthor{Bio: &Bio{}})
		s := newSession(t, e)
		a, err := asyncsession.From[BioAuthor](s).Load("Bio", asyncsession.SelectIn).One(ctx).Await(ctx)
		require.NoError(t, err)
		nb := &Bio{}
		a.Bio = nb
		_, err = s.Commit(ctx).Await(ctx)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "free for the next flush only")
		await(t, s.Rollback(ctx))

		// as the error says: clear, flush, then add
		s.Expunge(nb)
		a.Bio = nil
		await(t, s.Flush(ctx))
		a.Bio = nb
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 1, count(t, e, "bio"))
	})
}

type Householder struct {
	ID      int64     `db:"id,pk,default"`
	Name    string    `db:"name"`
	Profile *Profile2 `rel:"fk=holder_id"`
}

func (Householder) TableName() string { return "householders" }

type Profile2 struct {
	ID       int64        `db:"id,pk,default"`
	HolderID *int64       `db:"holder_id,fk=householders.id,unique"`
	Holder   *Householder `rel:"fk=holder_id"`
	Bio      string       `db:"bio"`
}

func (Profile2) TableName() string { return "profiles2" }

// A one-to-one's child declaring the many-to-one back points at its parent once the one-to-one is
// flushed or loaded, as a collection's members do; one the application pointed elsewhere is left
// as it is.
func TestOneToOneBackReference(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		require.NoError(t, asyncsession.CreateAll(ctx, e, Householder{}, Profile2{}))
		s := newSession(t, e)
		h := &Householder{Name: "ann", Profile: &Profile2{Bio: "b"}}
		require.NoError(t, s.Add(h))
		_, err := s.Commit(ctx).Await(ctx)
		require.NoError(t, err)
		require.Same(t, h, h.Profile.Holder, "flushed")
		require.Equal(t, h.ID, *h.Profile.HolderID)

		for _, strategy := range []asyncsession.Strategy{asyncsession.SelectIn, asyncsession.Joined} {
			s2 := newSession(t, e)
			got, err := asyncsession.From[Householder](s2).Load("Profile", strategy).One(ctx).Await(ctx)
			require.NoError(t, err)
			require.NotNil(t, got.Profile)
			require.Same(t, got, got.Profile.Holder, "loaded (%v)", strategy)
			// nothing to write: the back-reference is what the row says
			_, err = s2.Commit(ctx).Await(ctx)
			require.NoError(t, err)
		}
		s3 := newSession(t, e)
		got, err := asyncsession.From[Householder](s3).One(ctx).Await(ctx)
		require.NoError(t, err)
		_, err = asyncsession.Load(ctx, s3, got, "Profile").Await(ctx)
		require.NoError(t, err)
		require.Same(t, got, got.Profile.Holder, "loaded lazily")
	})
}
