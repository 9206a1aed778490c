package asyncengine_test

import (
	"database/sql"
	"encoding/json"
	"errors"
	"math/big"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// typeCase reads one SQL expression into one destination: want is the value the destination must
// hold, or nil when the scan must fail with a *ConvertError (nullErr: because of a NULL).
type typeCase struct {
	expr    string
	dest    func() any // a pointer
	want    any
	nullErr bool
}

func ptr[T any](v T) *T { return &v }

var pgTypeCases = []typeCase{
	// numeric: exact types, lossless narrowing, refusal of a fraction into an integer
	{expr: "12.34::numeric", dest: func() any { return new(string) }, want: "12.34"},
	{expr: "12.34::numeric", dest: func() any { return new(float64) }, want: 12.34},
	{expr: "12::numeric", dest: func() any { return new(int64) }, want: int64(12)},
	{expr: "12.34::numeric", dest: func() any { return new(int64) }},
	{expr: "12.34::numeric", dest: func() any { return new(pgtype.Numeric) }, want: pgtype.Numeric{Int: bigInt(1234), Exp: -2, Valid: true}},
	// uuid
	{expr: "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid", dest: func() any { return new(string) }, want: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
	{expr: "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid", dest: func() any { return new([16]byte) },
		want: [16]byte{0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11}},
	{expr: "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid", dest: func() any { return new(pgtype.UUID) },
		want: pgtype.UUID{Bytes: [16]byte{0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11}, Valid: true}},
	// json and jsonb
	{expr: `'{"a":1}'::jsonb`, dest: func() any { return new([]byte) }, want: []byte(`{"a": 1}`)},
	{expr: `'{"a":1}'::jsonb`, dest: func() any { return new(json.RawMessage) }, want: json.RawMessage(`{"a": 1}`)},
	{expr: `'{"a":1}'::jsonb`, dest: func() any { return new(string) }, want: `{"a": 1}`},
	{expr: `'{"a":1}'::jsonb`, dest: func() any { return new(map[string]any) }, want: map[string]any{"a": float64(1)}},
	{expr: `'{"a":1}'::jsonb`, dest: func() any { return new(jsonDoc) }, want: jsonDoc{A: 1}},
	{expr: `'{"a":1}'::json`, dest: func() any { return new([]byte) }, want: []byte(`{"a":1}`)},
	{expr: `'{"a":1}'::json`, dest: func() any { return new(jsonDoc) }, want: jsonDoc{A: 1}},
	// arrays
	{expr: "ARRAY['x','y']::text[]", dest: func() any { return new([]string) }, want: []string{"x", "y"}},
	{expr: "ARRAY[1,2]::int4[]", dest: func() any { return new([]int32) }, want: []int32{1, 2}},
	{expr: "ARRAY[1,2]::int4[]", dest: func() any { return new([]int64) }, want: []int64{1, 2}},
	{expr: "ARRAY[1,NULL]::int4[]", dest: func() any { return new([]*int32) }, want: []*int32{ptr(int32(1)), nil}},
	{expr: "ARRAY[1,NULL]::int4[]", dest: func() any { return new([]int32) }},
	// network
	{expr: "'192.168.0.1/24'::inet", dest: func() any { return new(netip.Prefix) }, want: netip.MustParsePrefix("192.168.0.1/24")},
	{expr: "'10.0.0.0/8'::cidr", dest: func() any { return new(netip.Prefix) }, want: netip.MustParsePrefix("10.0.0.0/8")},
	{expr: "'10.0.0.0/8'::cidr", dest: func() any { return new(string) }}, // pgx reads cidr in binary, not into a string
	// interval
	{expr: "'1 hour 30 minutes'::interval", dest: func() any { return new(time.Duration) }, want: 90 * time.Minute},
	{expr: "'1 day'::interval", dest: func() any { return new(pgtype.Interval) }, want: pgtype.Interval{Days: 1, Valid: true}},
	// bytea
	{expr: `'\x0102ff'::bytea`, dest: func() any { return new([]byte) }, want: []byte{1, 2, 0xff}},
	// time
	{expr: "'2024-05-06 07:08:09.123456+00'::timestamptz", dest: func() any { return new(time.Time) }, want: time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC)},
	{expr: "'2024-05-06'::date", dest: func() any { return new(time.Time) }, want: time.Date(2024, 5, 6, 0, 0, 0, 0, time.UTC)},
	// bool and numbers
	{expr: "true", dest: func() any { return new(bool) }, want: true},
	{expr: "7::int2", dest: func() any { return new(int16) }, want: int16(7)},
	{expr: "300::int2", dest: func() any { return new(int8) }},
	{expr: "300::int4", dest: func() any { return new(int8) }},
	{expr: "300::int4", dest: func() any { return new(int64) }, want: int64(300)},
	{expr: "5000000000::int8", dest: func() any { return new(int64) }, want: int64(5000000000)},
	{expr: "5000000000::int8", dest: func() any { return new(int32) }},
	{expr: "1.5::float4", dest: func() any { return new(float32) }, want: float32(1.5)},
	{expr: "2.9::float8", dest: func() any { return new(float64) }, want: 2.9},
	{expr: "2.9::float8", dest: func() any { return new(int64) }},
	{expr: "'hello'::text", dest: func() any { return new(string) }, want: "hello"},
	{expr: "'hello'::text", dest: func() any { return new(any) }, want: "hello"},
	{expr: "42::int4", dest: func() any { return new(sql.NullInt64) }, want: sql.NullInt64{Int64: 42, Valid: true}},
	// NULL: refused by a non-pointer, accepted by a pointer, sql.Null* and pgtype.*
	{expr: "NULL::text", dest: func() any { return new(string) }, nullErr: true},
	{expr: "NULL::int4", dest: func() any { return new(int32) }, nullErr: true},
	{expr: "NULL::numeric", dest: func() any { return new(float64) }, nullErr: true},
	{expr: "NULL::text", dest: func() any { return new(*string) }, want: (*string)(nil)},
	{expr: "NULL::text", dest: func() any { return new(sql.NullString) }, want: sql.NullString{}},
	{expr: "NULL::numeric", dest: func() any { return new(pgtype.Numeric) }, want: pgtype.Numeric{}},
	{expr: "NULL::uuid", dest: func() any { return new(pgtype.UUID) }, want: pgtype.UUID{}},
	{expr: "NULL::int4", dest: func() any { return new(any) }, want: nil},
}

// assertSame compares values, instants by Equal.
func assertSame(t *testing.T, want, got any, name string) {
	t.Helper()
	if wt, ok := want.(time.Time); ok {
		gt, ok := got.(time.Time)
		assert.True(t, ok && wt.Equal(gt), "%s: want %v, got %v", name, want, got)
		return
	}
	assert.Equal(t, want, got, name)
}

type jsonDoc struct {
	A int `json:"a"`
}

func bigInt(n int64) *big.Int { return big.NewInt(n) }

// TestTypeMatrix reads every PostgreSQL type into the Go destinations pgx supports, through both
// PostgreSQL drivers, and checks that they hold the same values and refuse the same values.
func TestTypeMatrix(t *testing.T) {
	for _, drv := range []string{"pgx", "stdlib"} {
		t.Run(drv, func(t *testing.T) {
			t.Parallel()
			e := newEngine(t, enginetest.BackendURL(t, drv), "")
			ctx := enginetest.Context(t)
			for _, tc := range pgTypeCases {
				dest := tc.dest()
				name := tc.expr + " into " + reflect.TypeOf(dest).Elem().String()
				r, err := e.Query(ctx, "SELECT "+tc.expr+" AS v")
				require.NoError(t, err, name)
				err = r.One(dest)
				if tc.want == nil && reflect.TypeOf(dest).Elem().Kind() != reflect.Pointer && reflect.TypeOf(dest).Elem().Kind() != reflect.Interface {
					var ce *asyncengine.ConvertError
					require.ErrorAs(t, err, &ce, name)
					assert.Equal(t, "v", ce.Column, name)
					assert.NotEmpty(t, ce.DBType, name)
					assert.Equal(t, tc.nullErr, ce.Null, name)
					assert.Contains(t, err.Error(), ce.To, name)
					assert.True(t, reflect.ValueOf(dest).Elem().IsZero(), "%s: nothing stored on error", name)
					continue
				}
				require.NoError(t, err, name)
				assertSame(t, tc.want, reflect.ValueOf(dest).Elem().Interface(), name)
			}
		})
	}
}

// TestUntypedValuesAgree checks that Scalar (and so Rows and Mappings) hands back the same
// documented Go type per PostgreSQL type through both PostgreSQL drivers.
func TestUntypedValuesAgree(t *testing.T) {
	ctx := enginetest.Context(t)
	native := newEngine(t, enginetest.BackendURL(t, "pgx"), "")
	stdlib := newEngine(t, enginetest.BackendURL(t, "stdlib"), "")
	want := map[string]any{
		"12.34::numeric": pgtype.Numeric{Int: bigInt(1234), Exp: -2, Valid: true},
		"'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid": [16]byte{0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11},
		`'{"a":1}'::jsonb`:          map[string]any{"a": float64(1)},
		`'[1,2]'::json`:             []any{float64(1), float64(2)},
		"ARRAY['x','y']::text[]":    []any{"x", "y"},
		"ARRAY[1,2]::int4[]":        []any{int32(1), int32(2)},
		"'192.168.0.1/24'::inet":    netip.MustParsePrefix("192.168.0.1/24"),
		"'1 day 2 hours'::interval": pgtype.Interval{Days: 1, Microseconds: 2 * 3600 * 1e6, Valid: true},
		`'\x01'::bytea`:             []byte{1},
		"true":                      true,
		"7::int2":                   int16(7),
		"7::int4":                   int32(7),
		"7::int8":                   int64(7),
		"1.5::float4":               float32(1.5),
		"1.5::float8":               1.5,
		"'x'::text":                 "x",
		"'x'::varchar":              "x",
		"NULL::int4":                nil,
	}
	for expr, w := range want {
		for name, e := range map[string]*asyncengine.Engine{"pgx": native, "stdlib": stdlib} {
			r, err := e.Query(ctx, "SELECT "+expr)
			require.NoError(t, err)
			v, err := r.Scalar()
			require.NoError(t, err, "%s via %s", expr, name)
			assertSame(t, w, v, expr+" via "+name)
		}
	}
	// timestamptz comes back as the same instant through both
	var got []time.Time
	for _, e := range []*asyncengine.Engine{native, stdlib} {
		r, err := e.Query(ctx, "SELECT '2024-05-06 07:08:09+02'::timestamptz")
		require.NoError(t, err)
		v, err := r.Scalar()
		require.NoError(t, err)
		got = append(got, v.(time.Time))
	}
	assert.True(t, got[0].Equal(got[1]) && got[0].Equal(time.Date(2024, 5, 6, 5, 8, 9, 0, time.UTC)), "%v", got)
}

// TestSQLiteStrictScan reads SQLite's types with database/sql's strictness.
func TestSQLiteStrictScan(t *testing.T) {
	e := newEngine(t, enginetest.BackendURL(t, "sqlite"), "")
	ctx := enginetest.Context(t)
	cases := []typeCase{
		{expr: "7", dest: func() any { return new(int64) }, want: int64(7)},
		{expr: "7", dest: func() any { return new(int8) }, want: int8(7)},
		{expr: "300", dest: func() any { return new(int8) }},
		{expr: "2.9", dest: func() any { return new(int64) }},
		{expr: "2.9", dest: func() any { return new(float64) }, want: 2.9},
		{expr: "'x'", dest: func() any { return new(string) }, want: "x"},
		{expr: "'12'", dest: func() any { return new(int64) }, want: int64(12)},
		{expr: "'twelve'", dest: func() any { return new(int64) }},
		{expr: "x'0102'", dest: func() any { return new([]byte) }, want: []byte{1, 2}},
		{expr: "1", dest: func() any { return new(bool) }, want: true},
		{expr: "NULL", dest: func() any { return new(string) }, nullErr: true},
		{expr: "NULL", dest: func() any { return new(int64) }, nullErr: true},
		{expr: "NULL", dest: func() any { return new(*string) }, want: (*string)(nil)},
		{expr: "NULL", dest: func() any { return new(sql.NullInt64) }, want: sql.NullInt64{}},
	}
	for _, tc := range cases {
		dest := tc.dest()
		name := tc.expr + " into " + reflect.TypeOf(dest).Elem().String()
		r, err := e.Query(ctx, "SELECT "+tc.expr+" AS v")
		require.NoError(t, err, name)
		err = r.One(dest)
		if tc.want == nil && reflect.TypeOf(dest).Elem().Kind() != reflect.Pointer {
			var ce *asyncengine.ConvertError
			require.ErrorAs(t, err, &ce, name)
			assert.Equal(t, tc.nullErr, ce.Null, name)
			assert.True(t, reflect.ValueOf(dest).Elem().IsZero(), "%s: nothing stored on error", name)
			continue
		}
		require.NoError(t, err, name)
		assert.Equal(t, tc.want, reflect.ValueOf(dest).Elem().Interface(), name)
	}
}

// TestScanRowStoresNothingOnError checks that one failing column leaves every destination alone.
func TestScanRowStoresNothingOnError(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		e := newEngine(t, url, "")
		r, err := e.Query(enginetest.Context(t), "SELECT 1, 'x', NULL")
		require.NoError(t, err)
		a, b, c := int64(-1), "keep", "keep"
		err = r.One(&a, &b, &c)
		var ce *asyncengine.ConvertError
		require.ErrorAs(t, err, &ce)
		assert.True(t, ce.Null)
		assert.Equal(t, []any{int64(-1), "keep", "keep"}, []any{a, b, c})
		assert.Contains(t, err.Error(), "sql.Null")

		// the fix names the column's type as SQL spells it and a Go type that holds it
		r, err = e.Query(enginetest.Context(t), "SELECT CAST(100000 AS bigint), CAST(2.5 AS numeric)")
		require.NoError(t, err)
		var small int16
		var whole int64
		err = r.One(&small, &whole)
		require.ErrorAs(t, err, &ce)
		assert.Contains(t, ce.Fix, "int64")
		if e.Dialect().Name() == "postgresql" {
			assert.Contains(t, ce.Fix, "every bigint value")
		}
		err = r.One(&whole, &whole)
		require.ErrorAs(t, err, &ce)
		assert.Contains(t, ce.Fix, "string")
		assert.NotContains(t, ce.Fix, "wider integer")
	})
}

// TestWriteTypes writes the Go types users hold into PostgreSQL's types through Exec and Named,
// on both PostgreSQL drivers, and reads them back.
func TestWriteTypes(t *testing.T) {
	for _, drv := range []string{"pgx", "stdlib"} {
		t.Run(drv, func(t *testing.T) {
			e := newEngine(t, enginetest.BackendURL(t, drv), "")
			ctx := enginetest.Context(t)
			_, err := e.Exec(ctx, `CREATE SCHEMA `+drv+`; SET search_path = `+drv)
			require.NoError(t, err)
			_, err = e.Exec(ctx, `CREATE TABLE w (n numeric, u uuid, j jsonb, tags text[], ids int8[], ip inet, d interval, b bytea, ts timestamptz)`)
			require.NoError(t, err)
			u := [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
			ts := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
			_, err = e.Exec(ctx, `INSERT INTO w VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
				"12.50", u, jsonDoc{A: 3}, []string{"a", "b"}, []int64{1, 2}, netip.MustParsePrefix("10.1.2.3/32"), 90*time.Minute, []byte{7}, ts)
			require.NoError(t, err)
			_, err = e.Exec(ctx, `INSERT INTO w VALUES (:n, :u, :j, :tags, NULL, NULL, NULL, NULL, NULL)`,
				asyncengine.Named{"n": 1.25, "u": "01020304-0506-0708-090a-0b0c0d0e0f10", "j": json.RawMessage(`{"a":4}`), "tags": []string{}})
			require.NoError(t, err)
			_, err = e.Exec(ctx, `INSERT INTO w (j) VALUES ($1)`, map[string]any{"a": 5})
			require.NoError(t, err)
			r, err := e.Query(ctx, `SELECT n::text, u::text, j->>'a', tags, ip::text, d, b, ts FROM w WHERE ip IS NOT NULL`)
			require.NoError(t, err)
			var n, us, ja, ip string
			var tags []string
			var d time.Duration
			var b []byte
			var gotTS time.Time
			require.NoError(t, r.One(&n, &us, &ja, &tags, &ip, &d, &b, &gotTS))
			assert.Equal(t, []any{"12.50", "01020304-0506-0708-090a-0b0c0d0e0f10", "3", []string{"a", "b"}, "10.1.2.3/32", 90 * time.Minute, []byte{7}},
				[]any{n, us, ja, tags, ip, d, b})
			assert.True(t, ts.Equal(gotTS))
			r, err = e.Query(ctx, `SELECT n::text, u::text, j->>'a' FROM w WHERE ip IS NULL AND n IS NOT NULL`)
			require.NoError(t, err)
			require.NoError(t, r.One(&n, &us, &ja))
			assert.Equal(t, []string{"1.25", "01020304-0506-0708-090a-0b0c0d0e0f10", "4"}, []string{n, us, ja})
			var five int
			r, err = e.Query(ctx, `SELECT (j->>'a')::int FROM w WHERE n IS NULL`)
			require.NoError(t, err)
			require.NoError(t, r.One(&five))
			assert.Equal(t, 5, five)
			_, err = e.Exec(ctx, `INSERT INTO w (n) VALUES ($1)`, make(chan int))
			require.Error(t, err, "a value that cannot be encoded")
			assert.False(t, errors.Is(err, asyncengine.ErrNoRows))
		})
	}
}
