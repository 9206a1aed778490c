package asyncsession_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Order holds PostgreSQL's richer types in the Go types an application keeps them in.
type Order struct {
	ID       [16]byte        `db:"id,pk"`
	Price    string          `db:"price,type=numeric(12,2)"`
	Total    pgtype.Numeric  `db:"total"`
	Meta     json.RawMessage `db:"meta"`
	Tags     []string        `db:"tags"`
	Placed   time.Time       `db:"placed"`
	Note     *string         `db:"note"`
	Ref      string          `db:"ref,unique,index"`
	Wait     time.Duration   `db:"wait"`
	Client   netip.Prefix    `db:"client"`
	Counters map[string]int  `db:"counters"`
}

func (Order) TableName() string { return "orders" }

// pgEngines returns an engine per PostgreSQL driver, each on a fresh database with Order's table.
func pgEngines(t *testing.T) map[string]*asyncengine.Engine {
	out := map[string]*asyncengine.Engine{}
	for _, name := range []string{"pgx", "stdlib"} {
		e := newEngine(t, enginetest.BackendURL(t, name))
		require.NoError(t, asyncsession.CreateAll(enginetest.Context(t), e, Order{}))
		out[name] = e
	}
	return out
}

func newOrder(i int, ref string) *Order {
	var total pgtype.Numeric
	_ = total.Scan("1234.5678")
	return &Order{
		ID:       [16]byte{byte(i), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
		Price:    "19.90",
		Total:    total,
		Meta:     json.RawMessage(`{"gift": true}`),
		Tags:     []string{"new", "priority"},
		Placed:   time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC),
		Ref:      ref,
		Wait:     90 * time.Second,
		Client:   netip.MustParsePrefix("192.0.2.7/32"),
		Counters: map[string]int{"views": 3},
	}
}

func assertOrder(t *testing.T, want, got *Order) {
	t.Helper()
	require.NotNil(t, got)
	assert.Equal(t, want.ID, got.ID)
	assert.Equal(t, want.Price, got.Price)
	wf, _ := want.Total.Float64Value()
	gf, _ := got.Total.Float64Value()
	assert.Equal(t, wf, gf)
	assert.JSONEq(t, string(want.Meta), string(got.Meta))
	assert.Equal(t, want.Tags, got.Tags)
	assert.True(t, want.Placed.Equal(got.Placed))
	assert.Equal(t, want.Note, got.Note)
	assert.Equal(t, want.Ref, got.Ref)
	assert.Equal(t, want.Wait, got.Wait)
	assert.Equal(t, want.Client, got.Client)
	assert.Equal(t, want.Counters, got.Counters)
}

// TestRichTypesRoundTrip writes PostgreSQL's types through Add/Commit, Upsert and InsertMany (COPY
// on the native driver) and reads them back through Get, Select and Stream, on both PostgreSQL
// drivers.
func TestRichTypesRoundTrip(t *testing.T) {
	for name, e := range pgEngines(t) {
		t.Run(name, func(t *testing.T) {
			ctx := enginetest.Context(t)
			s := newSession(t, e)
			o := newOrder(1, "A-1")
			require.NoError(t, s.Add(o))
			await(t, s.Commit(ctx))

			// a fresh session reads it from the database
			s2 := newSession(t, e)
			got := await(t, asyncsession.Get[Order](ctx, s2, o.ID))
			assertOrder(t, o, got)

			// an update of the array and the NULL column is seen as a change and written
			note := "leave at door"
			got.Note = &note
			got.Tags[0] = "old"
			await(t, s2.Commit(ctx))
			s3 := newSession(t, e)
			again := await(t, asyncsession.Get[Order](ctx, s3, o.ID))
			assert.Equal(t, &note, again.Note)
			assert.Equal(t, []string{"old", "priority"}, again.Tags)

			up := newOrder(1, "A-1")
			up.Price = "21.00"
			ups := await(t, asyncsession.Upsert(ctx, s3, []*Order{up, newOrder(2, "A-2")}))
			require.Len(t, ups, 2)
			assert.Equal(t, "21.00", ups[0].Price)
			await(t, s3.Commit(ctx))

			many := []*Order{newOrder(3, "B-3"), newOrder(4, "B-4")}
			n := await(t, asyncsession.InsertMany(ctx, s3, many))
			assert.Equal(t, int64(2), n)
			await(t, s3.Commit(ctx))

			all := await(t, asyncsession.Select[Order](ctx, newSession(t, e), "SELECT * FROM orders WHERE ref LIKE 'B-%' ORDER BY ref"))
			require.Len(t, all, 2)
			assertOrder(t, many[0], all[0])

			var streamed []*Order
			for o, err := range asyncsession.Stream[Order](ctx, newSession(t, e), "SELECT * FROM orders ORDER BY ref") {
				require.NoError(t, err)
				streamed = append(streamed, o)
			}
			require.Len(t, streamed, 4)
			assertOrder(t, many[1], streamed[3])
		})
	}
}

// TestNullIntoFieldFails refuses a NULL read into a field that cannot hold it, naming the column,
// and leaves the object as it was.
func TestNullIntoFieldFails(t *testing.T) {
	e := pgEngines(t)["pgx"]
	ctx := enginetest.Context(t)
	_, err := e.Exec(ctx, `INSERT INTO orders (id, price, total, meta, tags, placed, ref, wait, client, counters)
		VALUES ('00000000-0000-0000-0000-000000000001', 1, 1, '{}', '{}', now(), 'N', '1s', '10.0.0.1', '{}')`)
	require.NoError(t, err)
	s := newSession(t, e)
	o, err := asyncsession.Get[Order](ctx, s, [16]byte{15: 1}).Await(ctx)
	require.NoError(t, err)
	assert.Equal(t, "1.00", o.Price)
	_, err = asyncsession.Select[Order](ctx, s, "SELECT id, NULL::text AS price, total, meta, tags, placed, note, ref, wait, client, counters FROM orders").Await(ctx)
	var ce *asyncengine.ConvertError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "price", ce.Column)
	assert.True(t, ce.Null)
	assert.Contains(t, err.Error(), "*string")
	assert.Equal(t, "1.00", o.Price, "the loaded object is unchanged")
}

// TestSessionStream streams in the session's transaction, sees its unflushed changes (autoflush),
// stops early and honours cancellation.
func TestSessionStream(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		for i := range 50 {
			require.NoError(t, s.Add(&Author{Name: "a" + string(rune('A'+i%26))}))
		}
		n := 0
		for a, err := range asyncsession.Stream[Author](ctx, s, "SELECT * FROM authors ORDER BY id") {
			require.NoError(t, err)
			require.NotZero(t, a.ID)
			n++
			if n == 10 {
				break
			}
		}
		assert.Equal(t, 10, n)
		// the session still works after the early exit, in the same transaction
		assert.Equal(t, int64(50), int64(len(await(t, asyncsession.Select[Author](ctx, s, "SELECT * FROM authors")))))
		await(t, s.Commit(ctx))

		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var last error
		for _, err := range asyncsession.Stream[Author](cctx, s, "SELECT * FROM authors") {
			cancel()
			last = err
		}
		require.ErrorIs(t, last, context.Canceled)
		await(t, s.Rollback(ctx))
		assert.Len(t, await(t, asyncsession.Select[Author](ctx, s, "SELECT * FROM authors")), 50)
	})
}

// TestCreateAllTypes checks the column types CreateAll declares from field types and tags.
func TestCreateAllTypes(t *testing.T) {
	e := pgEngines(t)["pgx"]
	ctx := enginetest.Context(t)
	r, err := e.Query(ctx, `SELECT column_name, udt_name, is_nullable FROM information_schema.columns WHERE table_name = 'orders' ORDER BY column_name`)
	require.NoError(t, err)
	got := map[string]string{}
	for i := range r.Len() {
		var name, udt, nullable string
		require.NoError(t, r.ScanRow(i, &name, &udt, &nullable))
		got[name] = udt + "/" + nullable
	}
	assert.Equal(t, map[string]string{
		"id": "uuid/NO", "price": "numeric/NO", "total": "numeric/YES", "meta": "jsonb/NO", "tags": "_text/NO",
		"placed": "timestamptz/NO", "note": "text/YES", "ref": "text/NO", "wait": "interval/NO", "client": "inet/NO",
		"counters": "jsonb/NO",
	}, got)
	r, err = e.Query(ctx, `SELECT indexdef FROM pg_indexes WHERE tablename = 'orders' AND indexname = 'orders_ref_idx'`)
	require.NoError(t, err)
	assert.Equal(t, 1, r.Len(), "the index tag creates an index")
	r, err = e.Query(ctx, `SELECT indexdef FROM pg_indexes WHERE tablename = 'orders' AND indexdef LIKE 'CREATE UNIQUE INDEX%(ref)'`)
	require.NoError(t, err)
	assert.Equal(t, 1, r.Len(), "the unique tag adds a UNIQUE constraint")

	lite := newEngine(t, "sqlite:///"+t.TempDir()+"/o.db")
	require.NoError(t, asyncsession.CreateAll(ctx, lite, Order{}), "SQLite gets its closest types")
}

type Rich struct {
	ID     int64            `db:"id,pk"`
	Tags   []string         `db:"tags"`
	Net    netip.Prefix     `db:"net"`
	Counts map[string]int64 `db:"counts"`
	Doc    RichDoc          `db:"doc"`
}

type RichDoc struct {
	A string `json:"a"`
	B []int  `json:"b"`
}

// The model CreateAll declares is stored and read back alike on both backends: on SQLite slices,
// maps and structs travel as JSON text and netip values as their text form.
func TestSameModelOnBothBackends(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		require.NoError(t, asyncsession.CreateAll(ctx, e, Rich{}))
		in := &Rich{ID: 1, Tags: []string{"a", "b"}, Net: netip.MustParsePrefix("10.0.0.0/8"),
			Counts: map[string]int64{"x": 1}, Doc: RichDoc{A: "z", B: []int{1, 2}}}
		s := newSession(t, e)
		require.NoError(t, s.Add(in))
		await(t, s.Commit(ctx))
		_, err := e.Exec(ctx, "UPDATE rich SET doc = :d WHERE id = 1", asyncengine.Named{"d": RichDoc{A: "exec"}})
		require.NoError(t, err)
		got := await(t, asyncsession.Get[Rich](ctx, newSession(t, e), int64(1)))
		require.NotNil(t, got)
		in.Doc = RichDoc{A: "exec"}
		assert.Equal(t, in, got)
	})
}

type Exact struct {
	ID    int64          `db:"id,pk,default"`
	UUID  [16]byte       `db:"uuid"`
	Price pgtype.Numeric `db:"price"`
}

func (Exact) TableName() string { return "exact" }

// A [16]byte and a pgtype.Numeric field CreateAll declares come back as written on both
// backends, through the session and through Query: on SQLite as a 16-byte blob and as text.
func TestByteArrayAndNumericRoundTrip(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		require.NoError(t, asyncsession.CreateAll(ctx, e, Exact{}))
		var price pgtype.Numeric
		require.NoError(t, price.Scan("12345678901234567890.0123456789"))
		in := &Exact{UUID: [16]byte{0xde, 0xad, 0xbe, 0xef, 15: 1}, Price: price}
		s := newSession(t, e)
		require.NoError(t, s.Add(in))
		await(t, s.Commit(ctx))

		got := await(t, asyncsession.Get[Exact](ctx, newSession(t, e), in.ID))
		require.NotNil(t, got)
		assert.Equal(t, in.UUID, got.UUID)
		text, err := got.Price.Value()
		require.NoError(t, err)
		assert.Equal(t, "12345678901234567890.0123456789", text)

		res, err := e.Query(ctx, "SELECT uuid FROM exact")
		require.NoError(t, err)
		var u [16]byte
		require.NoError(t, res.One(&u))
		assert.Equal(t, in.UUID, u)
	})
}

// A trigger that stores a value the object's field cannot hold does not fail a Commit after the
// row is written: a column the INSERT sent is not read back, and the object shows the stored
// value — here, an error naming the column — when it reloads.
func TestTriggerChangedColumnIsNotReadBack(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t))
	ctx := enginetest.Context(t)
	for _, sql := range []string{
		"CREATE TABLE small (id bigserial PRIMARY KEY, n bigint NOT NULL)",
		"CREATE FUNCTION widen() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.n := 100000; RETURN NEW; END $$",
		"CREATE TRIGGER widen BEFORE INSERT ON small FOR EACH ROW EXECUTE FUNCTION widen()",
	} {
		_, err := e.Exec(ctx, sql)
		require.NoError(t, err)
	}
	s := newSession(t, e)
	obj := &Small{N: 1}
	require.NoError(t, s.Add(obj))
	await(t, s.Commit(ctx))
	assert.EqualValues(t, 1, count(t, e, "small"), "told committed, and committed")
	assert.NotZero(t, obj.ID, "the generated key is read back")
	_, err := asyncsession.Get[Small](ctx, s, obj.ID).Await(ctx)
	var ce *asyncengine.ConvertError
	require.ErrorAs(t, err, &ce, "the expired object reloads what the table holds")
	assert.Equal(t, "n", ce.Column)
}

type Small struct {
	ID int64 `db:"id,pk,default"`
	N  int16 `db:"n"`
}

func (Small) TableName() string { return "small" }

type Stamp struct {
	ID int64     `db:"id,pk"`
	At time.Time `db:"at"`
}

// A time.Time carrying only a UTC offset (time.Parse of RFC 3339, JSON) is read back as the same
// instant on both backends.
func TestTimeWithOffsetRoundTrips(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		require.NoError(t, asyncsession.CreateAll(ctx, e, Stamp{}))
		at, err := time.Parse(time.RFC3339, "2026-03-04T05:06:07+01:00")
		require.NoError(t, err)
		s := newSession(t, e)
		require.NoError(t, s.Add(&Stamp{ID: 1, At: at}))
		await(t, s.Commit(ctx))
		got := await(t, asyncsession.Get[Stamp](ctx, newSession(t, e), int64(1)))
		require.NotNil(t, got)
		assert.True(t, got.At.Equal(at), "%v read back as %v", at, got.At)
	})
}
