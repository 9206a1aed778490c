package enginetest

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Backends names the drivers EachBackend runs on: "pgx" (PostgreSQL through pgx's native
// connection), "stdlib" (PostgreSQL through pgx's database/sql adapter) and "sqlite" (the
// embedded SQLite).
var Backends = []string{"pgx", "stdlib", "sqlite"}

// Context returns a context for one test, cancelled when the test ends and after a minute at
// the most, so that a hung call fails the test instead of the whole binary.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// BackendURL returns the URL of a fresh database for one of Backends: a database of its own on
// the shared cluster for "pgx" and "stdlib", a file in the test's temporary directory for
// "sqlite".
func BackendURL(t testing.TB, backend string) string {
	t.Helper()
	switch backend {
	case "pgx":
		return NewDatabase(t)
	case "stdlib":
		return strings.Replace(NewDatabase(t), "postgresql://", "postgresql+stdlib://", 1)
	case "sqlite":
		return "sqlite:///" + filepath.Join(t.TempDir(), "test.db")
	}
	t.Fatalf("enginetest: unknown backend %q (one of %v)", backend, Backends)
	return ""
}

// EachBackend runs fn once per backend, each in a parallel subtest named after it with a fresh
// database: on every one of Backends, or on those named in only.
func EachBackend(t *testing.T, fn func(t *testing.T, url string), only ...string) {
	t.Helper()
	for _, name := range Backends {
		if len(only) > 0 && !slices.Contains(only, name) {
			continue
		}
		url := BackendURL(t, name)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, url)
		})
	}
}

// WithQuery appends URL query keys ("pool_size=2&echo=true") to url.
func WithQuery(url, query string) string {
	if query == "" {
		return url
	}
	if strings.Contains(url, "?") {
		return url + "&" + query
	}
	return url + "?" + query
}
