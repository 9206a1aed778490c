package asyncsession_test

import (
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type StringKey struct {
	Code string `db:"code,pk,default"`
	Name string `db:"name"`
}

type BytesKey struct {
	ID   [16]byte `db:"id,pk,default"`
	Name string   `db:"name"`
}

// A server-filled key CreateAll cannot give a default is a *MappingError naming the field, not a
// key column with no default that takes NULL keys or fails the first insert.
func TestCreateAllRefusesKeysWithoutGenerator(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		models := []any{StringKey{}}
		if e.Dialect().Name() == "sqlite" {
			models = append(models, BytesKey{}) // uuid on PostgreSQL has gen_random_uuid()
		}
		for _, m := range models {
			err := asyncsession.CreateAll(ctx, e, m)
			var me *asyncsession.MappingError
			require.ErrorAs(t, err, &me, "%T", m)
			assert.NotEmpty(t, me.Field)
			assert.Contains(t, err.Error(), "default")
		}
		if e.Dialect().Name() != "sqlite" {
			require.NoError(t, asyncsession.CreateAll(ctx, e, BytesKey{}))
			s := newSession(t, e)
			k := &BytesKey{Name: "a"}
			require.NoError(t, s.Add(k))
			await(t, s.Commit(ctx))
			assert.NotZero(t, k.ID, "the server generated the uuid")
		}
	})
}
