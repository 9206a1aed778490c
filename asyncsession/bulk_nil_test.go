package asyncsession_test

import (
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A nil element of InsertMany's slice is refused before anything is sent: the transaction's
// earlier work is committed as if the call had not been made.
func TestInsertManyNilElementSendsNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
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

// Tagged has a server-default column besides its key.
type Tagged struct {
	ID   int64  `db:"id,pk"`
	Name string `db:"name"`
	Note string `db:"note,default"`
}

func (Tagged) TableName() string { return "tagged" }

// Upsert writes every mapped column except server-default ones left at zero; Merge copies the
// same columns onto the loaded object, so a default column it was not given keeps its value.
func TestUpsertAndMergeLeaveUnsetDefaultColumns(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		_, err := e.Exec(ctx, "CREATE TABLE tagged (id bigint PRIMARY KEY, name text NOT NULL DEFAULT '', note text NOT NULL DEFAULT 'n/a')")
		require.NoError(t, err)
		_, err = e.Exec(ctx, "INSERT INTO tagged (id, name, note) VALUES (1, 'a', 'kept'), (2, 'b', 'kept')")
		require.NoError(t, err)
		row := func(id int64) (name, note string) {
			r, err := e.Query(ctx, "SELECT name, note FROM tagged WHERE id = :id", asyncengine.Named{"id": id})
			require.NoError(t, err)
			require.NoError(t, r.ScanRow(0, &name, &note))
			return name, note
		}

		s := newSession(t, e)
		m := await(t, asyncsession.Merge(ctx, s, &Tagged{ID: 1, Name: "merged"}))
		assert.Equal(t, "kept", m.Note, "a default column left at zero is not copied")
		up := await(t, asyncsession.Upsert(ctx, s, []*Tagged{{ID: 2}}))
		assert.Equal(t, "kept", up[0].Note)
		await(t, s.Commit(ctx))
		name, note := row(1)
		assert.Equal(t, []string{"merged", "kept"}, []string{name, note})
		name, note = row(2)
		assert.Equal(t, []string{"", "kept"}, []string{name, note}, "a column without default is written, zero or not")
	})
}
