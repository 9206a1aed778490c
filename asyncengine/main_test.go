package asyncengine_test

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	enginetest.Main(m)
}

func newEngine(t *testing.T, url string, query string) *asyncengine.Engine {
	t.Helper()
	e, err := asyncengine.New(enginetest.WithQuery(url, query))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close()) })
	return e
}

// verifyNoLeaks fails the test if a goroutine it started outlives it (and the cleanups
// registered after this call). The snapshot of what runs already is taken before the test body.
func verifyNoLeaks(t *testing.T) {
	enginetest.Shared(t) // the shared cluster's goroutines are the test binary's, started once
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		goleak.VerifyNone(t, ignore, goleak.IgnoreAnyFunction("database/sql.(*DB).connectionOpener"))
	})
}

// waitUntil polls cond until it holds, and fails the test if it does not within timeout. Call it
// from the test's goroutine.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", timeout, what)
		}
	}
}

// concurrently runs fn(i) for i in [0, n) on n goroutines and waits for them.
func concurrently(n int, fn func(i int)) {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(i)
		}()
	}
	wg.Wait()
}

// logBuffer collects log output from any goroutine.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// loggedEngine returns an engine for url whose log, at debug level, is collected in the buffer it
// returns.
func loggedEngine(t *testing.T, url string) (*asyncengine.Engine, *logBuffer) {
	t.Helper()
	cfg, err := asyncengine.ParseConfig(url)
	require.NoError(t, err)
	var log logBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e, err := asyncengine.NewWithConfig(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { e.Close() })
	return e, &log
}
