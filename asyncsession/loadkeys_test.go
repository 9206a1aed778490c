package asyncsession_test

import (
	"database/sql"
	"reflect"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type NfParent struct {
	ID       int64      `db:"id,pk,default"`
	Name     string     `db:"name"`
	Children []*NfChild `rel:"fk=parent_id,order=id"`
}

func (NfParent) TableName() string { return "nf_parents" }

// a nullable key held in sql.NullInt64, a driver.Valuer
type NfChild struct {
	ID       int64         `db:"id,pk,default"`
	ParentID sql.NullInt64 `db:"parent_id,fk=nf_parents.id"`
	Parent   *NfParent     `rel:"fk=parent_id"`
}

func (NfChild) TableName() string { return "nf_children" }

func nfSeed(t *testing.T, e *asyncengine.Engine) {
	ctx := enginetest.Context(t)
	require.NoError(t, asyncsession.CreateAll(ctx, e, NfParent{}, NfChild{}))
	_, err := e.Exec(ctx, "INSERT INTO nf_parents (id, name) VALUES (1, 'a'), (2, 'b')")
	require.NoError(t, err)
	_, err = e.Exec(ctx, "INSERT INTO nf_children (id, parent_id) VALUES (1, 1), (2, 1), (3, 2), (4, NULL)")
	require.NoError(t, err)
}

func TestCollectionByNullableKey(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		nfSeed(t, e)
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		ps := await(t, asyncsession.From[NfParent](s).OrderBy("id").All(ctx))
		require.Len(t, ps, 2)
		assert.Len(t, ps[0].Children, 2)
		assert.Len(t, ps[1].Children, 1)
	})
}

func TestManyToOneByNullableKeySelectIn(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		nfSeed(t, e)
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		cs, err := asyncsession.From[NfChild](s).OrderBy("id").Load("Parent", asyncsession.SelectIn).All(ctx).Await(ctx)
		require.NoError(t, err)
		require.Len(t, cs, 4)
		assert.Equal(t, "a", cs[0].Parent.Name)
		assert.Nil(t, cs[3].Parent)
	})
}

func TestManyToOneByNullableKeyJoined(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		nfSeed(t, e)
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		cs, err := asyncsession.From[NfChild](s).OrderBy("id").Load("Parent", asyncsession.Joined).All(ctx).Await(ctx)
		require.NoError(t, err)
		require.Len(t, cs, 4)
		assert.Equal(t, "a", cs[0].Parent.Name)
		assert.Nil(t, cs[3].Parent)
	})
}

type Sku string

type TkProduct struct {
	Code  Sku       `db:"code,pk"`
	Name  string    `db:"name"`
	Lines []*TkLine `rel:"fk=product_code,order=id"`
}

func (TkProduct) TableName() string { return "tk_products" }

type TkLine struct {
	ID          int64      `db:"id,pk,default"`
	ProductCode string     `db:"product_code,fk=tk_products.code"`
	Product     *TkProduct `rel:"fk=product_code"`
}

func (TkLine) TableName() string { return "tk_lines" }

// A text key of a named string type, referenced by a plain string column.
func TestKeyOfANamedType(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		require.NoError(t, asyncsession.CreateAll(ctx, e, TkProduct{}, TkLine{}))
		_, err := e.Exec(ctx, "INSERT INTO tk_products (code, name) VALUES ('a', 'A'), ('b', 'B')")
		require.NoError(t, err)
		_, err = e.Exec(ctx, "INSERT INTO tk_lines (id, product_code) VALUES (1, 'a'), (2, 'a'), (3, 'b')")
		require.NoError(t, err)
		s := newSession(t, e)
		ps := await(t, asyncsession.From[TkProduct](s).OrderBy("code").All(ctx))
		require.Len(t, ps, 2)
		assert.Len(t, ps[0].Lines, 2)
		assert.Len(t, ps[1].Lines, 1)
		s2 := newSession(t, e)
		ls, err := asyncsession.From[TkLine](s2).OrderBy("id").Load("Product", asyncsession.SelectIn).All(ctx).Await(ctx)
		require.NoError(t, err)
		require.Len(t, ls, 3)
		assert.Equal(t, "A", ls[0].Product.Name)
	})
}

type PgUParent struct {
	ID       pgtype.UUID `db:"id,pk"`
	Name     string      `db:"name"`
	Children []*PgUChild `rel:"fk=parent_id"`
}

func (PgUParent) TableName() string { return "pgu_parents" }

type PgUChild struct {
	ID       int64       `db:"id,pk,default"`
	ParentID pgtype.UUID `db:"parent_id,fk=pgu_parents.id"`
	Parent   *PgUParent  `rel:"fk=parent_id"`
}

func (PgUChild) TableName() string { return "pgu_children" }

func TestLoadByPgtypeUUIDKeys(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		p1 := &PgUParent{ID: pgtype.UUID{Bytes: [16]byte{1, 15: 1}, Valid: true}, Name: "a", Children: []*PgUChild{{}, {}}}
		p2 := &PgUParent{ID: pgtype.UUID{Bytes: [16]byte{2, 15: 2}, Valid: true}, Name: "b", Children: []*PgUChild{{}}}
		loadsByKey[PgUParent, PgUChild](t, e, p1, p2, []pgtype.UUID{p1.ID, p2.ID})
	})
}

// loadsByKey saves p1 and p2, whose children are two and one, and loads them back: the
// collections, the children's parents by each strategy, and Filter by keys.
func loadsByKey[P, C, K any](t *testing.T, e *asyncengine.Engine, p1, p2 *P, keys []K) {
	ctx := enginetest.Context(t)
	require.NoError(t, asyncsession.CreateAll(ctx, e, *p1, *new(C)))
	saved(t, e, p1, p2)
	s := newSession(t, e)
	ps := await(t, asyncsession.From[P](s).OrderBy("name").All(ctx))
	require.Len(t, ps, 2)
	for i, want := range []int{2, 1} {
		kids, err := asyncsession.Related[[]*C](s, ps[i], "Children")
		require.NoError(t, err)
		assert.Len(t, kids, want)
	}
	for _, how := range []asyncsession.Strategy{asyncsession.SelectIn, asyncsession.Joined} {
		cs := await(t, asyncsession.From[C](newSession(t, e)).Load("Parent", how).All(ctx))
		require.Len(t, cs, 3)
		for _, c := range cs {
			require.NotNil(t, reflect.ValueOf(c).Elem().FieldByName("Parent").Interface(), "strategy %d", how)
		}
	}
	assert.Equal(t, int64(2), await(t, asyncsession.From[P](s).Filter("id", keys).Count(ctx)))
}

type BkParent struct {
	ID       [16]byte   `db:"id,pk,type=uuid"`
	Name     string     `db:"name"`
	Children []*BkChild `rel:"fk=parent_id"`
}

func (BkParent) TableName() string { return "bk_parents" }

type BkChild struct {
	ID       int64     `db:"id,pk,default"`
	ParentID *[16]byte `db:"parent_id,fk=bk_parents.id,type=uuid"`
	Parent   *BkParent `rel:"fk=parent_id"`
}

func (BkChild) TableName() string { return "bk_children" }

func TestLoadByUUIDBytesKeys(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		p1 := &BkParent{ID: [16]byte{1, 15: 1}, Name: "a", Children: []*BkChild{{}, {}}}
		p2 := &BkParent{ID: [16]byte{2, 15: 2}, Name: "b", Children: []*BkChild{{}}}
		loadsByKey[BkParent, BkChild](t, e, p1, p2, [][16]byte{p1.ID, p2.ID})
	})
}
