package asyncengine_test

import (
	"errors"
	"testing"

	sqldriver "database/sql/driver"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A NUL byte in the SQL makes the server answer 08P01 (protocol violation) and go on: it is the
// request's error, and neither its connection nor the rest of the pool is invalidated.
func TestProtocolViolationIsTheRequestsError(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t), "")
	ctx := enginetest.Context(t)
	idle, err := e.Connect(ctx)
	require.NoError(t, err)
	idleID := idle.ID()
	c, err := e.Connect(ctx)
	require.NoError(t, err)
	require.NoError(t, idle.Close())
	id := c.ID()

	_, err = c.Query(ctx, "SELECT 1 AS \"a\x00b\"")
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "08P01", pgErr.Code)
	var de *asyncengine.DisconnectError
	assert.False(t, errors.As(err, &de), "not reported as a lost connection: %v", err)
	assert.Equal(t, id, c.ID(), "the connection is kept")
	_, err = c.Query(ctx, "SELECT 1")
	require.NoError(t, err, "and still works")
	require.NoError(t, c.Close())
	assert.Zero(t, e.Stats().Invalidations)

	again, err := e.Connect(ctx)
	require.NoError(t, err)
	defer again.Close()
	assert.Contains(t, []uint64{id, idleID}, again.ID(), "the pool's connections were not discarded")
}

// panickingValuer panics when the driver encodes it, inside the driver call.
type panickingValuer struct{}

func (panickingValuer) Value() (sqldriver.Value, error) { panic("inside the driver") }

// A panic inside a driver call leaves the connection in an unknown state: it is invalidated, not
// returned to the pool as healthy.
func TestPanicInDriverCallInvalidatesTheConnection(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		e := newEngine(t, url, "")
		ctx := enginetest.Context(t)
		c, err := e.Connect(ctx)
		require.NoError(t, err)
		id := c.ID()
		_, err = c.Exec(ctx, "SELECT "+e.Dialect().Placeholder(1), panickingValuer{})
		var pe *asyncengine.PanicError
		require.ErrorAs(t, err, &pe)
		assert.Zero(t, c.ID(), "the connection was dropped")
		assert.EqualValues(t, 1, e.Stats().Invalidations)
		_, err = c.Query(ctx, "SELECT 1")
		require.NoError(t, err, "the Conn reconnects on its next use")
		assert.NotEqual(t, id, c.ID())
		require.NoError(t, c.Close())
	})
}
