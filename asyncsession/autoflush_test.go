package asyncsession_test

import (
	"context"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAutoflushSendsChangesBeforeAQueryReadingTheirTable(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		_, err := e.Exec(ctx, "INSERT INTO authors (id, name) VALUES (1, 'old'), (2, 'two')")
		require.NoError(t, err)
		s := newSession(t, e)
		all := await(t, asyncsession.Select[Author](ctx, s, "SELECT * FROM authors ORDER BY id"))
		require.Len(t, all, 2)
		name := func(ctx context.Context, sql string) any {
			r := await(t, s.Execute(ctx, sql))
			v, err := r.Scalar()
			require.NoError(t, err)
			return v
		}
		all[0].Name = "new"
		assert.Equal(t, "new", name(ctx, `SELECT name FROM AUTHORS WHERE id = 1`), "a differently cased table name is seen")
		all[0].Name = "newer"
		assert.Equal(t, "newer", name(ctx, `SELECT name FROM "authors" WHERE id = 1`), "a quoted table name is seen")
		mail := "a@x"
		all[1].Email = &mail
		assert.Equal(t, "a@x", name(ctx, "SELECT email FROM authors WHERE id = 2"), "a pointer field set is seen")

		all[0].Name = "hidden"
		off := asyncsession.NoAutoflush(ctx)
		assert.Equal(t, "newer", name(off, "SELECT name FROM authors WHERE id = 1"), "no autoflush under NoAutoflush")
		await(t, s.Flush(ctx))
		assert.Equal(t, "hidden", name(off, "SELECT name FROM authors WHERE id = 1"), "Flush still flushes")
	})
}
