package asyncsession

import (
	"math"
	"math/big"
	"reflect"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/assert"
)

// TestSnapshotOfStructs: a struct holding a NaN is not a change against its own snapshot; a
// numeric's *big.Int and a slice inside a struct set in place are.
func TestSnapshotOfStructs(t *testing.T) {
	points := pgtype.Array[float64]{Elements: []float64{1, math.NaN()}, Dims: []pgtype.ArrayDimension{{Length: 2, LowerBound: 1}}, Valid: true}
	v := reflect.ValueOf(&points).Elem()
	assert.False(t, differs(v, snapshotOf(v)), "a NaN is no change")

	n := pgtype.Numeric{Int: big.NewInt(1000), Exp: -2, Valid: true}
	nv := reflect.ValueOf(&n).Elem()
	snap := snapshotOf(nv)
	assert.False(t, differs(nv, snap))
	n.Int.SetInt64(12345)
	assert.True(t, differs(nv, snap), "a *big.Int set in place")

	type audit struct{ By []string }
	a := audit{By: []string{"ann"}}
	av := reflect.ValueOf(&a).Elem()
	snap = snapshotOf(av)
	assert.False(t, differs(av, snap))
	a.By[0] = "bob"
	assert.True(t, differs(av, snap), "a slice inside a struct set in place")
}
