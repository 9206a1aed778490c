package asyncengine_test

import (
	"strings"
	"testing"

	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEchoHidesParameters: the echo log shows argument values, and server errors that may quote
// them, only with log_parameters=true; what it shows is capped in size.
func TestEchoHidesParameters(t *testing.T) {
	const value = "Arg-Marker-4711"
	for name, url := range map[string]string{"pgx": enginetest.NewDatabase(t), "stdlib": strings.Replace(enginetest.NewDatabase(t), "postgresql://", "postgresql+stdlib://", 1),
		"sqlite": "sqlite:///" + t.TempDir() + "/x.db"} {
		t.Run(name, func(t *testing.T) {
			ctx := enginetest.Context(t)
			e, log := loggedEngine(t, enginetest.WithQuery(url, "echo=true"))
			_, err := e.Exec(ctx, "CREATE TABLE u (email text UNIQUE, n int, note text)")
			require.NoError(t, err)
			_, err = e.Exec(ctx, "INSERT INTO u (email) VALUES ("+e.Dialect().Placeholder(1)+")", value)
			require.NoError(t, err)
			_, err = e.Exec(ctx, "INSERT INTO u (email) VALUES ("+e.Dialect().Placeholder(1)+")", value)
			require.Error(t, err)
			if name != "sqlite" {
				_, err = e.Exec(ctx, "INSERT INTO u (n) VALUES ("+e.Dialect().Placeholder(1)+"::int)", value)
				require.Error(t, err)
				assert.Contains(t, err.Error(), value, "the caller's error keeps the server's message")
				assert.Contains(t, log.String(), "SQLSTATE")
			}
			assert.NotContains(t, log.String(), value)
			assert.Contains(t, log.String(), "log_parameters=true")

			e, log = loggedEngine(t, enginetest.WithQuery(url, "echo=true&log_parameters=true"))
			_, err = e.Exec(ctx, "INSERT INTO u (email) VALUES ("+e.Dialect().Placeholder(1)+")", value)
			require.Error(t, err)
			assert.Contains(t, log.String(), value)
			big := strings.Repeat("x", 4<<20)
			_, err = e.Exec(ctx, "INSERT INTO u (note) VALUES ("+e.Dialect().Placeholder(1)+")", big)
			require.NoError(t, err)
			assert.Less(t, len(log.String()), 64<<10, "a 4 MB argument does not make a 4 MB log line")
			assert.Contains(t, log.String(), "more bytes")
			// a pointer argument (a nullable field) shows the value it sends, not its address
			n, none := int64(4242), (*int64)(nil)
			_, err = e.Exec(ctx, "INSERT INTO u (n, note) VALUES ("+e.Dialect().Placeholder(1)+", "+e.Dialect().Placeholder(2)+")", &n, none)
			require.NoError(t, err)
			assert.Contains(t, log.String(), "[4242 <nil>]")
		})
	}
}
