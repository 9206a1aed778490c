package asyncsession_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
)

// Shelf, ShelfBook and ShelfLabel are a tree of relationships: a commit of many new shelves goes
// by parts on PostgreSQL.
type Shelf struct {
	ID    int64        `db:"id,pk,default"`
	Name  string       `db:"name"`
	Books []*ShelfBook `rel:"fk=shelf_id"`
	Label *ShelfLabel  `rel:"fk=shelf_id"`
}

func (Shelf) TableName() string { return "shelves" }

type ShelfBook struct {
	ID      int64  `db:"id,pk,default"`
	ShelfID int64  `db:"shelf_id,fk=shelves.id"`
	Title   string `db:"title,unique"`
	Shelf   *Shelf `rel:"fk=shelf_id"`
}

func (ShelfBook) TableName() string { return "shelf_books" }

type ShelfLabel struct {
	ID      int64  `db:"id,pk,default"`
	ShelfID int64  `db:"shelf_id,fk=shelves.id,unique"`
	Text    string `db:"text"`
}

func (ShelfLabel) TableName() string { return "shelf_labels" }

// pipelineSizes records the pipelines an engine sends: how many statements each started with, and
// how many results it ended with.
type pipelineSizes struct {
	mu           sync.Mutex
	started, end []int
}

func (p *pipelineSizes) TracePipelineStart(ctx context.Context, _ *asyncengine.Conn, d asyncengine.TracePipelineStartData) context.Context {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.started = append(p.started, len(d.Statements))
	return ctx
}

func (p *pipelineSizes) TracePipelineEnd(_ context.Context, _ *asyncengine.Conn, d asyncengine.TracePipelineEndData) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.end = append(p.end, d.Results)
}

func (p *pipelineSizes) TraceQueryStart(ctx context.Context, _ *asyncengine.Conn, _ asyncengine.TraceQueryStartData) context.Context {
	return ctx
}
func (p *pipelineSizes) TraceQueryEnd(context.Context, *asyncengine.Conn, asyncengine.TraceQueryEndData) {
}

// reset forgets what was recorded.
func (p *pipelineSizes) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.started, p.end = nil, nil
}

// shelfEngine opens an engine on url with the shelves' schema, tracing its pipelines, and
// commits a few shelves: the column types of their tables are read once per engine.
func shelfEngine(t *testing.T, url string) (*asyncengine.Engine, *pipelineSizes) {
	cfg, err := asyncengine.ParseConfig(enginetest.WithQuery(url, "pool_size=1&max_overflow=0"))
	require.NoError(t, err)
	tr := &pipelineSizes{}
	cfg.Tracer = tr
	e, err := asyncengine.NewWithConfig(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { e.Close() })
	ctx := enginetest.Context(t)
	require.NoError(t, asyncsession.CreateAll(ctx, e, Shelf{}, ShelfBook{}, ShelfLabel{}))
	s := newSession(t, e)
	require.NoError(t, s.Add(newShelf("warm", 2)))
	await(t, s.Commit(ctx))
	return e, tr
}

// newShelf is a shelf named name with n books and a label.
func newShelf(name string, n int) *Shelf {
	sh := &Shelf{Name: name, Label: &ShelfLabel{Text: "label " + name}}
	for k := range n {
		sh.Books = append(sh.Books, &ShelfBook{Title: fmt.Sprintf("%s/%d", name, k)})
	}
	return sh
}

// addShelves adds n new shelves of 3 books each to s and returns them.
func addShelves(t *testing.T, s *asyncsession.Session, n int) []*Shelf {
	shelves := make([]*Shelf, n)
	for i := range shelves {
		shelves[i] = newShelf(fmt.Sprint("shelf ", i), 3)
		require.NoError(t, s.Add(shelves[i]))
	}
	return shelves
}

// checkShelfRows checks the objects against the rows: every key filled, every book and label
// pointing at its own shelf, and the rows as the objects say.
func checkShelfRows(t *testing.T, e *asyncengine.Engine, shelves []*Shelf) {
	for _, sh := range shelves {
		require.NotZero(t, sh.ID)
		require.NotZero(t, sh.Label.ID)
		assert.Equal(t, sh.ID, sh.Label.ShelfID)
		for _, b := range sh.Books {
			require.NotZero(t, b.ID)
			require.Equal(t, sh.ID, b.ShelfID, "%s", b.Title)
			require.Same(t, sh, b.Shelf, "the walk points the book back at its shelf")
		}
	}
	n := int64(len(shelves))
	assert.EqualValues(t, n+1, count(t, e, "shelves"))
	assert.EqualValues(t, 3*n+2, count(t, e, "shelf_books"))
	assert.EqualValues(t, n+1, count(t, e, "shelf_labels"))
	// every book's title starts with its shelf's name, and every label's text ends with it
	assert.EqualValues(t, 3*n+2, countWhere(t, e, "shelf_books b JOIN shelves s ON s.id = b.shelf_id", "b.title LIKE s.name || '/%'"))
	assert.EqualValues(t, n+1, countWhere(t, e, "shelf_labels l JOIN shelves s ON s.id = l.shelf_id", "l.text = 'label ' || s.name"))
}

// A commit of 5 000 new shelves (with their books and labels) goes by parts on PostgreSQL: the
// pipeline leaves with the first part and takes the others as they are planned, in one round
// trip once its statements are prepared; every key reaches its objects and every row its
// parent. SQLite plans it whole, with the same outcome.
func TestCommitByParts(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		e, tr := shelfEngine(t, url)
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		// 100, 200, 400, 800, 1 600 and 1 900 shelves: statements the connection has not prepared
		// yet are prepared as they come (the parts before are read then, their keys stored), and
		// the parts after them are walked as before
		const n = 5000
		shelves := addShelves(t, s, n)
		await(t, s.Commit(ctx))
		checkShelfRows(t, e, shelves)
		if e.Dialect().Name() != "postgresql" {
			return
		}
		// once its statements are prepared, a commit by parts is one round trip
		s = newSession(t, e)
		for i := range 700 {
			require.NoError(t, s.Add(newShelf(fmt.Sprint("again ", i), 3)))
		}
		tr.reset()
		before := roundTrips(e)
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 1, roundTrips(e)-before, "one round trip")
		assert.EqualValues(t, 1+n+700, count(t, e, "shelves"))
		require.Len(t, tr.started, 1, "one pipeline")
		assert.Greater(t, tr.end[0], tr.started[0], "statements joined the pipeline after it left")
		assert.Less(t, tr.started[0], 10, "the first part is a few statements")
	}, "pgx", "sqlite")
}

// A statement of a later part that fails fails the commit with the server's error, and nothing
// is written: the parts before it ran in the same transaction. The objects get back what the
// parts before stored in them, and the session needs Rollback; after it, the same graph with the
// mistake mended commits.
func TestCommitByPartsFailsWhole(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		e, _ := shelfEngine(t, url)
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		shelves := addShelves(t, s, 700)
		last := shelves[699].Books[2]
		last.Title = shelves[0].Books[0].Title // the unique title of a book of the first part
		_, err := s.Commit(ctx).Await(ctx)
		require.Error(t, err)
		if e.Dialect().Name() == "postgresql" {
			var pgErr *pgconn.PgError
			require.ErrorAs(t, err, &pgErr, "%v", err)
			assert.Equal(t, "23505", pgErr.Code, "the unique violation")
		}
		assert.Zero(t, shelves[0].ID, "a key stored by an earlier part is taken back")
		assert.Zero(t, shelves[0].Books[0].ID)
		_, err = s.Flush(ctx).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrPendingRollback)
		await(t, s.Rollback(ctx))
		assert.EqualValues(t, 1, count(t, e, "shelves"), "nothing of the failed commit is written")

		s = newSession(t, e)
		last.Title = "mended"
		for _, sh := range shelves {
			require.NoError(t, s.Add(sh))
		}
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 701, count(t, e, "shelves"))
		assert.EqualValues(t, 2102, count(t, e, "shelf_books"))
	}, "pgx", "sqlite")
}

// An object reached from added objects of two parts would be written by both: the commit fails
// with ErrConflictingParent, and nothing is written once the session rolls back.
func TestCommitByPartsOneBookOnTwoShelves(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		e, _ := shelfEngine(t, url)
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		shelves := addShelves(t, s, 700)
		shelves[650].Books = append(shelves[650].Books, shelves[0].Books[0])
		_, err := s.Commit(ctx).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrConflictingParent)
		await(t, s.Rollback(ctx))
		assert.EqualValues(t, 1, count(t, e, "shelves"))
	}, "pgx", "sqlite")
}

// Crate and CrateItem are a collection without a back-reference: nothing on the item says which
// crate it is in.
type Crate struct {
	ID    int64        `db:"id,pk,default"`
	Name  string       `db:"name"`
	Items []*CrateItem `rel:"fk=crate_id"`
}

func (Crate) TableName() string { return "crates" }

type CrateItem struct {
	ID      int64  `db:"id,pk,default"`
	CrateID int64  `db:"crate_id,fk=crates.id"`
	Name    string `db:"name"`
}

func (CrateItem) TableName() string { return "crate_items" }

// An item in the collections of two crates of different parts, with no back-reference to tell:
// the commit fails with ErrConflictingParent on PostgreSQL rather than write the item with the
// first crate's key and leave it in the second one's collection.
func TestCommitByPartsOneItemInTwoCrates(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		e := newEngine(t, url)
		ctx := enginetest.Context(t)
		require.NoError(t, asyncsession.CreateAll(ctx, e, Crate{}, CrateItem{}))
		s := newSession(t, e)
		require.NoError(t, s.Add(&Crate{Name: "warm", Items: []*CrateItem{{Name: "w"}}}))
		await(t, s.Commit(ctx))
		s = newSession(t, e)
		crates := make([]*Crate, 700)
		for i := range crates {
			crates[i] = &Crate{Name: fmt.Sprint(i), Items: []*CrateItem{{Name: fmt.Sprint(i)}}}
			require.NoError(t, s.Add(crates[i]))
		}
		crates[650].Items = append(crates[650].Items, crates[0].Items[0])
		_, err := s.Commit(ctx).Await(ctx)
		if e.Dialect().Name() != "postgresql" {
			// planned whole, the last collection the walk meets wins, as before
			require.NoError(t, err)
			return
		}
		require.ErrorIs(t, err, asyncsession.ErrConflictingParent)
		// the parts before it were sent: the flush failed with them, as with a statement that
		// failed, and took back what they stored
		assert.Zero(t, crates[0].ID)
		assert.Zero(t, crates[0].Items[0].ID)
		_, err = s.Flush(ctx).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrPendingRollback)
		await(t, s.Rollback(ctx))
		s.ExpungeAll()
		require.NoError(t, s.Add(&Crate{Name: "after"}))
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 2, count(t, e, "crates"), "nothing of the failed commit is written")
	}, "pgx", "sqlite")
}

// RefNode refers to another node by value: a graph of them is not split into parts (a part would
// insert a row whose parent a later part writes), and commits whole.
type RefNode struct {
	ID       int64  `db:"id,pk"`
	ParentID *int64 `db:"parent_id,fk=ref_nodes.id"`
	Name     string `db:"name"`
}

func (RefNode) TableName() string { return "ref_nodes" }

func TestCommitByValueReferencesWhole(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		e := newEngine(t, url)
		ctx := enginetest.Context(t)
		require.NoError(t, asyncsession.CreateAll(ctx, e, RefNode{}))
		s := newSession(t, e)
		const n = 700
		for i := range n {
			node := &RefNode{ID: int64(i + 1), Name: fmt.Sprint(i)}
			if i < n-1 {
				parent := int64(n) // the last one added, in the last part were it split
				node.ParentID = &parent
			}
			require.NoError(t, s.Add(node))
		}
		await(t, s.Commit(ctx))
		assert.EqualValues(t, n, count(t, e, "ref_nodes"))
		assert.EqualValues(t, n-1, countWhere(t, e, "ref_nodes", fmt.Sprintf("parent_id = %d", n)))
	}, "pgx", "sqlite")
}

// QNode names its table with its schema in its foreign key: a graph of them refers by value to a
// row of its own table all the same, and commits whole.
type QNode struct {
	ID       int64  `db:"id,pk"`
	ParentID *int64 `db:"parent_id,fk=public.qnodes.id"`
}

func (QNode) TableName() string { return "qnodes" }

func TestCommitByValueReferencesWithSchemaWhole(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		e := newEngine(t, url)
		ctx := enginetest.Context(t)
		require.NoError(t, asyncsession.CreateAll(ctx, e, QNode{}))
		s := newSession(t, e)
		const n = 700
		last := int64(n)
		for i := range n {
			node := &QNode{ID: int64(i + 1)}
			if i < n-1 {
				node.ParentID = &last
			}
			require.NoError(t, s.Add(node))
		}
		await(t, s.Commit(ctx))
		assert.EqualValues(t, n, count(t, e, "qnodes"))
	}, "pgx")
}

// Leaf and Branch are two models of one table whose rows refer to each other: the flush keeps
// the order of the rows of the table, whatever their models.
type Leaf struct {
	ID       int64  `db:"id,pk"`
	ParentID *int64 `db:"parent_id,fk=twigs.id"`
	Kind     string `db:"kind"`
}

func (Leaf) TableName() string { return "twigs" }

type Branch struct {
	ID       int64  `db:"id,pk"`
	ParentID *int64 `db:"parent_id,fk=twigs.id"`
	Kind     string `db:"kind"`
}

func (Branch) TableName() string { return "twigs" }

func TestTwoModelsOfOneTableKeepTheirOrder(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		require.NoError(t, asyncsession.CreateAll(ctx, e, Leaf{}))
		s := newSession(t, e)
		two := int64(2)
		require.NoError(t, s.Add(&Leaf{ID: 1, Kind: "leaf"}))
		require.NoError(t, s.Add(&Branch{ID: 2, Kind: "branch"}))
		require.NoError(t, s.Add(&Leaf{ID: 3, ParentID: &two, Kind: "leaf"}))
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 3, count(t, e, "twigs"))
	})
}

// Wide has fifteen columns to insert, one of them an array: 65 535 / 15 rows fill a statement's
// parameters exactly, and a batch that leaves its keys for its children takes one more.
type Wide struct {
	ID   int64      `db:"id,pk,default"`
	A    string     `db:"ca"`
	B    string     `db:"cb"`
	C    string     `db:"cc"`
	D    string     `db:"cd"`
	E    string     `db:"ce"`
	F    string     `db:"cf"`
	G    string     `db:"cg"`
	H    string     `db:"ch"`
	I    string     `db:"ci"`
	J    string     `db:"cj"`
	K    string     `db:"ck"`
	L    string     `db:"cl"`
	M    string     `db:"cm"`
	N    string     `db:"cn"`
	Tags []string   `db:"tags"`
	Kids []*WideKid `rel:"fk=wide_id"`
}

func (Wide) TableName() string { return "wides" }

type WideKid struct {
	ID     int64  `db:"id,pk,default"`
	WideID int64  `db:"wide_id,fk=wides.id"`
	Name   string `db:"name"`
}

func (WideKid) TableName() string { return "wide_kids" }

// A batch whose rows fill a statement's parameters, and which leaves its keys for its children,
// goes as statements that fit: the commit writes every row.
func TestBatchAtTheParameterLimit(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		e := newEngine(t, url)
		ctx := enginetest.Context(t)
		require.NoError(t, asyncsession.CreateAll(ctx, e, Wide{}, WideKid{}))
		s := newSession(t, e)
		n := 65535 / 15
		for i := range n {
			require.NoError(t, s.Add(&Wide{A: fmt.Sprint(i), Tags: []string{"t"}, Kids: []*WideKid{{Name: fmt.Sprint(i)}}}))
		}
		await(t, s.Commit(ctx))
		assert.EqualValues(t, n, count(t, e, "wides"))
		assert.EqualValues(t, n, countWhere(t, e, "wide_kids", "name = (SELECT ca FROM wides WHERE wides.id = wide_kids.wide_id)"))
	}, "pgx")
}

// One new profile given to two new householders, or to one while its many-to-one names the
// other: ErrConflictingParent, as for a collection's member, and nothing written.
func TestOneNewChildOfTwoNewParents(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		require.NoError(t, asyncsession.CreateAll(ctx, e, Householder{}, Profile2{}))
		s := newSession(t, e)
		p := &Profile2{Bio: "shared"}
		require.NoError(t, s.Add(&Householder{Name: "a", Profile: p}, &Householder{Name: "b", Profile: p}))
		_, err := s.Commit(ctx).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrConflictingParent)

		s = newSession(t, e)
		a := &Householder{Name: "a"}
		q := &Profile2{Bio: "named", Holder: a}
		require.NoError(t, s.Add(a, &Householder{Name: "b", Profile: q}))
		_, err = s.Commit(ctx).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrConflictingParent)
		assert.EqualValues(t, 0, count(t, e, "householders"))
	})
}
