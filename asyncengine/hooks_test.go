package asyncengine_test

import (
	"errors"
	"log/slog"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPanickingNotificationsAreReported: OnCheckin, OnReset, OnInvalidate and OnClose have no
// caller to fail; a panic in one is logged at warn level (echo off) and the pool goes on.
func TestPanickingNotificationsAreReported(t *testing.T) {
	for name, url := range map[string]string{"pgx": enginetest.NewDatabase(t), "sqlite": "sqlite:///" + t.TempDir() + "/x.db"} {
		t.Run(name, func(t *testing.T) {
			cfg, err := asyncengine.ParseConfig(enginetest.WithQuery(url, "pool_size=1&max_overflow=0"))
			require.NoError(t, err)
			var log logBuffer
			cfg.Logger = slog.New(slog.NewTextHandler(&log, nil))
			cfg.OnCheckin = func(uint64) { panic("checkin boom") }
			cfg.OnReset = func(uint64, asyncengine.ResetMode) { panic("reset boom") }
			cfg.OnInvalidate = func(uint64, error) { panic("invalidate boom") }
			cfg.OnClose = func(uint64) { panic("close boom") }
			e, err := asyncengine.NewWithConfig(cfg)
			require.NoError(t, err)
			defer e.Close()

			ctx := enginetest.Context(t)
			c, err := e.Connect(ctx)
			require.NoError(t, err)
			tx, err := c.Begin(ctx)
			require.NoError(t, err)
			_ = tx
			require.NoError(t, c.Close(), "checkin and reset panics do not fail Close")
			c, err = e.Connect(ctx)
			require.NoError(t, err, "the connection went back to the pool")
			c.Invalidate(errors.New("app says so"))
			require.NoError(t, c.Close())
			_, err = e.Exec(ctx, "SELECT 1")
			require.NoError(t, err)
			for _, hook := range []string{"OnCheckin", "OnReset", "OnInvalidate", "OnClose"} {
				assert.Contains(t, log.String(), "gosqla: "+hook+" hook panicked", hook)
			}
			assert.Contains(t, log.String(), "level=WARN")
			assert.Contains(t, log.String(), "checkin boom")
		})
	}
}
