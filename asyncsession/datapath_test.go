package asyncsession_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"log/slog"
	"math"
	"net/netip"
	"strconv"
	"sync"
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
		// a slice's or a map's zero value, nil, is written as NULL
		"id": "uuid/NO", "price": "numeric/NO", "total": "numeric/YES", "meta": "jsonb/YES", "tags": "_text/YES",
		"placed": "timestamptz/NO", "note": "text/YES", "ref": "text/NO", "wait": "interval/NO", "client": "inet/NO",
		"counters": "jsonb/YES",
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

type Priced struct {
	ID    int64          `db:"id,pk,default"`
	Price pgtype.Numeric `db:"price,type=numeric(12,2)"`
}

func (Priced) TableName() string { return "priced" }

// A numeric(12,2) column read into a pgtype.Numeric: SQLite stores a large value as a REAL whose
// shortest text has an exponent, which the decimal type does not read; the rows were unreadable.
func TestDecimalOfAREALColumn(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		require.NoError(t, asyncsession.CreateAll(ctx, e, Priced{}))
		texts := []string{"99999999.99", "1234567890.99", "0.01", "42.00"}
		s := newSession(t, e)
		for _, text := range texts {
			var n pgtype.Numeric
			require.NoError(t, n.Scan(text))
			require.NoError(t, s.Add(&Priced{Price: n}))
		}
		await(t, s.Commit(ctx))
		got := await(t, asyncsession.From[Priced](newSession(t, e)).OrderBy("id").All(ctx))
		require.Len(t, got, len(texts))
		for i, p := range got {
			f, err := p.Price.Float64Value()
			require.NoError(t, err)
			want, err := strconv.ParseFloat(texts[i], 64)
			require.NoError(t, err)
			assert.Equal(t, want, f.Float64, texts[i])
		}
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

type Mood string

// Qty is a named string type held in a numeric column.
type Qty string

// TypedCols holds a column of every type a batch insert sends as an array, in the Go types an
// application keeps them in.
type TypedCols struct {
	ID    int64           `db:"id,pk,default"`
	Label string          `db:"label"`
	Short string          `db:"short"`
	Fixed string          `db:"fixed"`
	Num   string          `db:"num"`
	Exact pgtype.Numeric  `db:"exact"`
	Float float64         `db:"float"`
	Real  float32         `db:"real"`
	Small int16           `db:"small"`
	Int   int32           `db:"int"`
	Big   int64           `db:"big"`
	UUID  [16]byte        `db:"uuid"`
	Doc   json.RawMessage `db:"doc"`
	Plain json.RawMessage `db:"plain"`
	Obj   map[string]any  `db:"obj"`
	At    time.Time       `db:"at"`
	Wall  time.Time       `db:"wall"`
	Day   time.Time       `db:"day"`
	Blob  []byte          `db:"blob"`
	Note  *string         `db:"note"`
	Count *int64          `db:"count"`
	Flag  bool            `db:"flag"`
	Maybe *bool           `db:"maybe"`
	Wait  time.Duration   `db:"wait"`
	Net   netip.Prefix    `db:"net"`
	Mood  Mood            `db:"mood"`
	Mood2 *string         `db:"mood2"`
	Code  string          `db:"code"`
	NullS sql.NullString  `db:"nulls"`
	NullT sql.NullTime    `db:"nullt"`
	Qty   Qty             `db:"qty"`
}

const typedColsDDL = `(id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, label text NOT NULL,
	short varchar(12) NOT NULL, fixed char(5) NOT NULL, num numeric(12,2) NOT NULL, exact numeric,
	float double precision NOT NULL, real real NOT NULL, small smallint NOT NULL, int integer NOT NULL,
	big bigint NOT NULL, uuid uuid NOT NULL, doc jsonb, plain json, obj jsonb, at timestamptz NOT NULL,
	wall timestamp NOT NULL, day date NOT NULL, blob bytea, note text, count bigint, flag boolean NOT NULL,
	maybe boolean, wait interval NOT NULL, net inet NOT NULL, mood mood NOT NULL, mood2 mood,
	code code NOT NULL, nulls text, nullt timestamptz, qty numeric(10,2) NOT NULL)`

type typedSingle struct{ TypedCols }

func (typedSingle) TableName() string { return "typed_single" }

type typedBatch struct{ TypedCols }

func (typedBatch) TableName() string { return "typed_batch" }

// ArrayCols holds columns a batch cannot send as arrays: array columns (unnest would flatten a
// two-dimensional one) and a non-string value for a type the database defines.
type ArrayCols struct {
	ID   int64     `db:"id,pk,default"`
	Name string    `db:"name"`
	Tags []string  `db:"tags"`
	IDs  []int64   `db:"ids"`
	Grid [][]int64 `db:"grid"`
	Pos  int64     `db:"pos"`
}

const arrayColsDDL = `(id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name text NOT NULL,
	tags text[], ids int8[], grid int8[], pos positive NOT NULL)`

type arraySingle struct{ ArrayCols }

func (arraySingle) TableName() string { return "array_single" }

type arrayBatch struct{ ArrayCols }

func (arrayBatch) TableName() string { return "array_batch" }

func typedRows() []TypedCols {
	str := func(s string) *string { return &s }
	i64 := func(n int64) *int64 { return &n }
	yes, no := true, false
	num := func(s string) pgtype.Numeric {
		var n pgtype.Numeric
		if err := n.Scan(s); err != nil {
			panic(err)
		}
		return n
	}
	berlin := time.FixedZone("CET", 3600)
	odd := []string{"", "NULL", "null", `a"b`, `back\slash`, "{braces}", "a,b", " lead", "trail ",
		"tab\tnew\nline", "üñíçødé ✓ 😀", "(1,2)", "'quote'", `{"x":1}`, "\\x00"}
	var rows []TypedCols
	for i, label := range odd {
		r := TypedCols{
			Label: label,
			Short: []string{"", "twelve chars", "x", "NULL"}[i%4],
			Fixed: []string{"ab", "", "abcde", " x", "ab  "}[i%5],
			Num:   []string{"19.90", "1e3", " 7.125 ", "-0.005", "0"}[i%5],
			Exact: []pgtype.Numeric{num("12345678901234567890.0123456789"), num("NaN"), num("-0.000001"), {}}[i%4],
			Float: []float64{0.1, math.Inf(1), math.NaN(), math.Copysign(0, -1), 5e-324, math.MaxFloat64, -1.5}[i%7],
			Real:  []float32{0.1, math.MaxFloat32, -3.25}[i%3],
			Small: []int16{math.MinInt16, 0, math.MaxInt16}[i%3],
			Int:   []int32{math.MinInt32, 7, math.MaxInt32}[i%3],
			Big:   []int64{math.MinInt64, 1, math.MaxInt64}[i%3],
			UUID:  [16]byte{byte(i), 0xde, 0xad, 0xbe, 0xef, 15: 0xff},
			Doc:   []json.RawMessage{json.RawMessage(`{"b": 1, "a": [1, 2.50]}`), nil, json.RawMessage(`null`), json.RawMessage(`"str\u00e9"`)}[i%4],
			Plain: []json.RawMessage{json.RawMessage(`{ "keep" :  "spaces", "keep": 2 }`), nil, json.RawMessage(`[1,  2]`)}[i%3],
			Obj:   []map[string]any{{"ключ": "значение", "n": 1.5}, nil, {}}[i%3],
			At:    time.Date(2024, 3, 4, 5, 6, 7, 123456789, berlin).Add(time.Duration(i) * time.Hour),
			Wall:  time.Date(1999, 12, 31, 23, 59, 59, 999999000, time.UTC),
			Day:   time.Date(2000+i, 2, 29-i%2, 0, 0, 0, 0, time.UTC),
			Blob:  [][]byte{nil, {}, {0, 1, 255, '\\', '"', '{'}}[i%3],
			Note:  []*string{nil, str(""), str("NULL"), str(label)}[i%4],
			Count: []*int64{nil, i64(0), i64(-42)}[i%3],
			Flag:  i%2 == 0,
			Maybe: []*bool{nil, &yes, &no}[i%3],
			Wait:  []time.Duration{90*time.Second + time.Microsecond, -time.Hour, 0, 1000 * time.Hour}[i%4],
			Net:   []netip.Prefix{netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("10.0.0.0/8")}[i%3],
			Mood:  []Mood{"happy", "sad", "with space"}[i%3],
			Mood2: []*string{nil, str("sad"), str("with space")}[i%3],
			Code:  []string{"A-1", "Ω", " spaced "}[i%3],
			NullS: []sql.NullString{{}, {String: "NULL", Valid: true}, {String: "", Valid: true}}[i%3],
			NullT: []sql.NullTime{{}, {Time: time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC), Valid: true}}[i%2],
			Qty:   []Qty{"1.50", "2", "-0.25", "12345678.125"}[i%4],
		}
		rows = append(rows, r)
	}
	return rows
}

func arrayRows() []ArrayCols {
	return []ArrayCols{
		{Name: "a", Tags: []string{"x", "NULL", `q"uote`}, IDs: []int64{1, 2}, Grid: [][]int64{{1, 2}, {3, 4}}, Pos: 1},
		{Name: "b", Tags: nil, IDs: []int64{}, Grid: nil, Pos: 2},
		{Name: "c", Tags: []string{}, IDs: nil, Grid: [][]int64{{5}}, Pos: 3},
	}
}

// echoEngine is an engine on url whose statements are logged to the returned function's text.
func echoEngine(t *testing.T, url string) (*asyncengine.Engine, func() string) {
	t.Helper()
	cfg, err := asyncengine.ParseConfig(url)
	require.NoError(t, err)
	var buf bytes.Buffer
	var mu sync.Mutex
	cfg.Echo = true
	cfg.Logger = slog.New(slog.NewTextHandler(lockedWriter{&buf, &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e, err := asyncengine.NewWithConfig(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { e.Close() })
	return e, func() string {
		mu.Lock()
		defer mu.Unlock()
		s := buf.String()
		buf.Reset()
		return s
	}
}

// A batch insert on PostgreSQL sends one array per column (unnest). TestBatchInsertTypes writes
// the same rows one per flush (a single-row INSERT) and all in one flush, on both PostgreSQL
// drivers and with statements prepared and described, and finds every column stored alike: text
// with odd characters, varchar(n), char(n), numeric(p,s) from strings that need parsing and
// rounding, exact and special numerics and floats, every integer width, uuid, jsonb, json (kept
// as written), bytea, NULLs in nullable columns, timestamps, dates, intervals, inet, an enum
// (from a named string type and a *string), a domain, and a named string type in a numeric
// column. A batch whose columns cannot travel as arrays (array columns, one of them
// two-dimensional, and an integer for a domain) keeps the multi-row VALUES and stores the same as
// well. The generated keys go back to their objects.
func TestBatchInsertTypes(t *testing.T) {
	for _, tc := range []struct{ drv, cache string }{{"pgx", "prepare"}, {"pgx", "describe"}, {"stdlib", "prepare"}} {
		t.Run(tc.drv+"_"+tc.cache, func(t *testing.T) {
			ctx := enginetest.Context(t)
			e, log := echoEngine(t, enginetest.WithQuery(enginetest.BackendURL(t, tc.drv), "statement_cache="+tc.cache))
			for _, ddl := range []string{
				"CREATE TYPE mood AS ENUM ('happy', 'sad', 'with space')",
				"CREATE DOMAIN code AS text CHECK (VALUE <> 'bad')",
				"CREATE DOMAIN positive AS bigint CHECK (VALUE > 0)",
				"CREATE TABLE typed_single " + typedColsDDL,
				"CREATE TABLE typed_batch " + typedColsDDL,
				"CREATE TABLE array_single " + arrayColsDDL,
				"CREATE TABLE array_batch " + arrayColsDDL,
			} {
				_, err := e.Exec(ctx, ddl)
				require.NoError(t, err)
			}

			s := newSession(t, e)
			for _, r := range typedRows() {
				require.NoError(t, s.Add(&typedSingle{r}))
				await(t, s.Flush(ctx))
			}
			for _, r := range arrayRows() {
				require.NoError(t, s.Add(&arraySingle{r}))
				await(t, s.Flush(ctx))
			}
			await(t, s.Commit(ctx))
			assert.NotContains(t, log(), "unnest(", "a single row is inserted with VALUES")

			var typed []*typedBatch
			for _, r := range typedRows() {
				typed = append(typed, &typedBatch{r})
				require.NoError(t, s.Add(typed[len(typed)-1]))
			}
			var arrays []*arrayBatch
			for _, r := range arrayRows() {
				arrays = append(arrays, &arrayBatch{r})
				require.NoError(t, s.Add(arrays[len(arrays)-1]))
			}
			await(t, s.Commit(ctx))
			sent := log()
			assert.Contains(t, sent, `INSERT INTO \"typed_batch\"`)
			assert.Contains(t, sent, "unnest(", "a batch travels as arrays")
			assert.Regexp(t, `INSERT INTO \\"array_batch\\" \(.*\) VALUES \(`, sent, "array columns keep VALUES")

			for _, table := range []string{"typed", "array"} {
				single := textRows(t, e, table+"_single")
				batch := textRows(t, e, table+"_batch")
				require.NotEmpty(t, single)
				assert.Equal(t, single, batch, "%s: a batch stores what single rows store", table)
			}
			for i, o := range typed {
				assert.EqualValues(t, i+1, o.ID, "the keys return to their objects in order")
			}
			for i, o := range arrays {
				assert.EqualValues(t, i+1, o.ID)
			}
			// the objects read back as written
			got := await(t, asyncsession.Get[typedBatch](ctx, newSession(t, e), typed[4].ID))
			require.NotNil(t, got)
			assert.Equal(t, typed[4].Label, got.Label)
			assert.Equal(t, typed[4].Blob, got.Blob)
		})
	}
}

// textRows returns every row of table in its text form, by key.
func textRows(t *testing.T, e *asyncengine.Engine, table string) []string {
	t.Helper()
	r, err := e.Query(enginetest.Context(t), "SELECT ROW(t.*)::text FROM "+table+" t ORDER BY id")
	require.NoError(t, err)
	out := make([]string, r.Len())
	for i := range out {
		require.NoError(t, r.ScanRow(i, &out[i]))
	}
	return out
}

// On SQLite, and on PostgreSQL without described parameters (statement_cache=none), a batch is
// a multi-row VALUES, as it always was.
func TestBatchInsertValuesElsewhere(t *testing.T) {
	for name, url := range map[string]func(t *testing.T) string{
		"sqlite": func(t *testing.T) string { return "sqlite:///" + t.TempDir() + "/b.db" },
		"pgx_none": func(t *testing.T) string {
			return enginetest.WithQuery(enginetest.NewDatabase(t), "statement_cache=none")
		},
	} {
		t.Run(name, func(t *testing.T) {
			e, log := echoEngine(t, url(t))
			ctx := enginetest.Context(t)
			require.NoError(t, asyncsession.CreateAll(ctx, e, Author{}))
			s := newSession(t, e)
			note := "n"
			as := []*Author{{Name: "a"}, {Name: `b"'`, Email: &note}, {Name: ""}}
			for _, a := range as {
				require.NoError(t, s.Add(a))
			}
			await(t, s.Commit(ctx))
			sent := log()
			assert.NotContains(t, sent, "unnest")
			assert.Regexp(t, `VALUES \(\S+, \S+\), \(\S+, \S+\), \(\S+, \S+\)`, sent)
			for i, a := range as {
				assert.EqualValues(t, i+1, a.ID)
			}
		})
	}
}

type Feeling struct {
	ID   int64  `db:"id,pk,default"`
	Mood string `db:"mood"`
}

func (Feeling) TableName() string { return "feelings" }

// The column types a batch is sent as are read again after a batch insert into the table
// failed: a column whose type changed under a running engine fails one batch, not the next.
func TestBatchInsertTypesReadAgain(t *testing.T) {
	e := newEngine(t, enginetestURL(t))
	ctx := enginetest.Context(t)
	_, err := e.Exec(ctx, "CREATE TABLE feelings (id bigserial PRIMARY KEY, mood text NOT NULL)")
	require.NoError(t, err)
	batch := func() error {
		s := newSession(t, e)
		require.NoError(t, s.Add(&Feeling{Mood: "happy"}, &Feeling{Mood: "sad"}))
		_, err := s.Commit(ctx).Await(ctx)
		return err
	}
	require.NoError(t, batch())
	for _, ddl := range []string{
		"CREATE TYPE feeling AS ENUM ('happy', 'sad')",
		"ALTER TABLE feelings ALTER mood TYPE feeling USING mood::feeling",
	} {
		_, err := e.Exec(ctx, ddl)
		require.NoError(t, err)
	}
	err = batch()
	require.Error(t, err, "the types read before the change send the moods as text")
	assert.Contains(t, err.Error(), "type feeling")
	require.NoError(t, batch(), "the types are read again")
	assert.EqualValues(t, 4, count(t, e, "feelings"))
}

type Moment struct {
	ID int64     `db:"id,pk,default"`
	At time.Time `db:"at"`
}

func (Moment) TableName() string { return "moments" }

// A column whose type changes under a running engine (timestamp to timestamptz, which would take
// the old typing's values silently shifted by the session's zone) fails the next batch with
// ErrTableChanged and writes nothing of it; the batch after the rollback writes the right instants.
func TestBatchInsertTableChanged(t *testing.T) {
	e := newEngine(t, enginetestURL(t))
	ctx := enginetest.Context(t)
	_, err := e.Exec(ctx, "CREATE TABLE moments (id bigserial PRIMARY KEY, at timestamp NOT NULL)")
	require.NoError(t, err)
	kolkata := time.FixedZone("IST", 5*3600+1800)
	at := time.Date(2020, 6, 1, 12, 0, 0, 0, kolkata)
	s := newSession(t, e)
	batch := func() error {
		require.NoError(t, s.Add(&Moment{At: at}, &Moment{At: at}))
		_, err := s.Commit(ctx).Await(ctx)
		return err
	}
	require.NoError(t, batch())
	_, err = e.Exec(ctx, "ALTER TABLE moments ALTER at TYPE timestamptz USING at AT TIME ZONE 'UTC'")
	require.NoError(t, err)
	_, err = e.Exec(ctx, "DELETE FROM moments")
	require.NoError(t, err)

	err = batch()
	require.ErrorIs(t, err, asyncsession.ErrTableChanged)
	await(t, s.Rollback(ctx))
	assert.EqualValues(t, 0, count(t, e, "moments"), "nothing of the batch was written")
	require.NoError(t, batch(), "the types are read again")
	assertInstants(t, e, at, 2)
}
