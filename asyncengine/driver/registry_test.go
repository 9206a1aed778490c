package driver_test

import (
	"context"
	"testing"

	"github.com/gosqla/gosqla/asyncengine/driver"
	_ "github.com/gosqla/gosqla/asyncengine/internal/sqldriver" // registers sqlite
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRegister: a driver registered under a name of its own is found by that name; here it is a
// third-party wrapper that opens the built-in SQLite.
func TestRegister(t *testing.T) {
	sqlite, ok := driver.Lookup("sqlite")
	require.True(t, ok)
	driver.Register("wrapped-sqlite", func(cfg driver.Config) (driver.Connector, error) { return sqlite(cfg) })
	assert.Contains(t, driver.Drivers(), "wrapped-sqlite")
	assert.Panics(t, func() { driver.Register("wrapped-sqlite", sqlite) })
	assert.Panics(t, func() { driver.Register("nil", nil) })

	open, ok := driver.Lookup("wrapped-sqlite")
	require.True(t, ok)
	c, err := open(driver.Config{DSN: "file::memory:"})
	require.NoError(t, err)
	defer c.Close()
	conn, err := c.Connect(context.Background())
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.Ping(context.Background()))
	n, err := conn.Exec(context.Background(), "CREATE TABLE t (x int)", nil)
	require.NoError(t, err)
	assert.Zero(t, n)
}
