package pgarrays

import (
	"math"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/require"
)

// The fast path writes, for every parameter type and format, the bytes the driver writes for the
// underlying slice, or leaves the value to the driver (whose errors stay its own).
func TestSameBytesAsTheDriver(t *testing.T) {
	typeOID := func(m *pgtype.Map, name string) uint32 {
		typ, ok := m.TypeForName(name)
		require.True(t, ok, name)
		return typ.OID
	}
	values := []struct{ fast, plain any }{
		{Int8s{1, -1, 0, math.MaxInt64, math.MinInt64}, []int64{1, -1, 0, math.MaxInt64, math.MinInt64}},
		{Int8s{}, []int64{}},
		{Int8s(nil), []int64(nil)},
		{Int8s{1 << 40}, []int64{1 << 40}}, // out of range for integer[]: the driver's error
		{Int4s{7, -7, math.MaxInt32, math.MinInt32}, []int32{7, -7, math.MaxInt32, math.MinInt32}},
		{Int4s{}, []int32{}},
		{Int4s(nil), []int32(nil)},
		{Texts{"a", "", "é ✓", "with \"quotes\", {braces} and \\"}, []string{"a", "", "é ✓", "with \"quotes\", {braces} and \\"}},
		{Texts{}, []string{}},
		{Texts(nil), []string(nil)},
		{Texts{"not a number"}, []string{"not a number"}},
		{Texts{"1"}, []string{"1"}},
	}
	for _, name := range []string{"_int8", "_int4", "_int2", "_text", "_varchar", "_numeric", "_json", "_uuid", "text", "int8"} {
		for _, format := range []int16{pgtype.BinaryFormatCode, pgtype.TextFormatCode} {
			for _, v := range values {
				fast, plain := pgtype.NewMap(), pgtype.NewMap()
				Install(fast)
				Install(fast) // once is enough: the second call does nothing
				oid := typeOID(plain, name)
				want, wantErr := plain.Encode(oid, format, v.plain, nil)
				got, gotErr := fast.Encode(oid, format, v.fast, nil)
				if wantErr != nil {
					require.Error(t, gotErr, "%s %d %v", name, format, v.fast)
					continue
				}
				require.NoError(t, gotErr, "%s %d %v", name, format, v.fast)
				require.Equal(t, want, got, "%s %d %v", name, format, v.fast)
				// a second encoding, from the plan the map keeps, and into a buffer with room
				got, gotErr = fast.Encode(oid, format, v.fast, make([]byte, 3, 64))
				require.NoError(t, gotErr)
				if want == nil {
					require.Nil(t, got)
				} else {
					require.Equal(t, append(make([]byte, 3), want...), got)
				}
			}
		}
	}
}

// Without Install the columns are the driver's slices.
func TestWithoutInstall(t *testing.T) {
	m := pgtype.NewMap()
	typ, _ := m.TypeForName("_int8")
	want, err := m.Encode(typ.OID, pgtype.BinaryFormatCode, []int64{1, 2}, nil)
	require.NoError(t, err)
	got, err := m.Encode(typ.OID, pgtype.BinaryFormatCode, Int8s{1, 2}, nil)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Len(t, m.TryWrapEncodePlanFuncs, len(pgtype.NewMap().TryWrapEncodePlanFuncs))
}

func BenchmarkEncode(b *testing.B) {
	texts := make([]string, 1000)
	for i := range texts {
		texts[i] = "novel title"
	}
	for _, fast := range []bool{false, true} {
		m := pgtype.NewMap()
		var v any = texts
		name := "driver"
		if fast {
			Install(m)
			v, name = Texts(texts), "fast"
		}
		typ, _ := m.TypeForName("_text")
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, 64<<10)
			for range b.N {
				if _, err := m.Encode(typ.OID, pgtype.BinaryFormatCode, v, buf[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
