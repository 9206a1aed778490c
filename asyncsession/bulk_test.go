package asyncsession_test

import (
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A nil element of InsertMany's slice is refused before anything is sent: the transaction's
// earlier work is committed as if the call had not been made.
func TestInsertManyNilElementSendsNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := ctxT(t)
		s := newSession(t, e)
		require.NoError(t, s.Add(&Author{ID: 10, Name: "earlier"}))
		await(t, s.Flush(ctx))
		_, err := asyncsession.InsertMany(ctx, s, []*Author{{ID: 11, Name: "b"}, nil}).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrNilObject)
		assert.Contains(t, err.Error(), "element 1")
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 1, count(t, e, "authors"), "the earlier work is committed, nothing of the refused call")
	})
}
