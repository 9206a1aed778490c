package asyncengine_test

import (
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hungServer accepts TCP connections and never answers. It returns its address.
func hungServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// TestHungServerCheckoutIsBounded: a server that accepts and never answers costs a checkout
// pool_timeout, not forever, on both PostgreSQL drivers; connect_timeout, when given, is the bound
// of an attempt instead.
func TestHungServerCheckoutIsBounded(t *testing.T) {
	addr := hungServer(t)
	for _, scheme := range []string{"postgresql", "postgresql+stdlib"} {
		t.Run(scheme, func(t *testing.T) {
			e := newEngine(t, scheme+"://u@"+addr+"/db?sslmode=disable", "pool_timeout=0.3&pool_size=1&max_overflow=0")
			start := time.Now()
			_, err := e.Connect(enginetest.Context(t)) // no deadline of its own
			require.Error(t, err)
			assert.ErrorIs(t, err, asyncengine.ErrPoolTimeout)
			assert.Contains(t, err.Error(), "connect_timeout")
			assert.Less(t, time.Since(start), 3*time.Second)
			assert.Equal(t, 0, e.Stats().CheckedOut, "the slot is free again")

			e = newEngine(t, scheme+"://u@"+addr+"/db?sslmode=disable", "pool_timeout=0.1&connect_timeout=1")
			start = time.Now()
			_, err = e.Connect(enginetest.Context(t))
			require.Error(t, err)
			assert.GreaterOrEqual(t, time.Since(start), 900*time.Millisecond, "connect_timeout, not pool_timeout, bounds the attempt")
			assert.Less(t, time.Since(start), 5*time.Second)
		})
	}
}

// TestHungServerPgxpoolClass: behind poolclass=pgxpool the checkout is bounded by pool_timeout too.
func TestHungServerPgxpoolClass(t *testing.T) {
	e := newEngine(t, "postgresql://u@"+hungServer(t)+"/db?sslmode=disable", "pool_timeout=0.3&poolclass=pgxpool")
	start := time.Now()
	_, err := e.Connect(enginetest.Context(t))
	require.ErrorIs(t, err, asyncengine.ErrPoolTimeout)
	assert.Less(t, time.Since(start), 3*time.Second)
}

// TestWaitAndConnectShareThePoolTimeout: a checkout that waited for a slot and then connects to a
// hung server gives up pool_timeout after it started.
func TestWaitAndConnectShareThePoolTimeout(t *testing.T) {
	addr := hungServer(t)
	e := newEngine(t, "postgresql://u@"+addr+"/db?sslmode=disable", "pool_timeout=1&pool_size=1&max_overflow=0")
	first := make(chan error, 1)
	go func() {
		_, err := e.Connect(enginetest.Context(t))
		first <- err
	}()
	require.Eventually(t, func() bool { return e.Stats().CheckedOut == 1 }, 5*time.Second, time.Millisecond)
	start := time.Now()
	_, err := e.Connect(enginetest.Context(t)) // waits for the first attempt's slot, then connects in it
	require.ErrorIs(t, err, asyncengine.ErrPoolTimeout)
	assert.Less(t, time.Since(start), 1500*time.Millisecond)
	require.ErrorIs(t, <-first, asyncengine.ErrPoolTimeout)
}

// TestSQLiteOpenErrorNamesThePath: a database file that cannot be opened is named in the error.
func TestSQLiteOpenErrorNamesThePath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no such dir", "app.db")
	e := newEngine(t, "sqlite:///"+path, "")
	_, err := e.Connect(enginetest.Context(t))
	require.Error(t, err)
	assert.Contains(t, err.Error(), path)
}

// TestUnknownDriverIsAConfigError: a Config naming no registered driver opens nothing.
func TestUnknownDriverIsAConfigError(t *testing.T) {
	cfg, err := asyncengine.ParseConfig("sqlite://")
	require.NoError(t, err)
	cfg.Driver = "sqlserver"
	_, err = asyncengine.NewWithConfig(cfg)
	var ce *asyncengine.ConfigError
	require.True(t, errors.As(err, &ce), "%v", err)
	assert.True(t, strings.Contains(err.Error(), "sqlserver"))
}

// A server that refuses connections is ErrServerUnavailable, the driver's error kept; a login the
// server refuses is not.
func TestServerUnavailable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := ln.Addr().String()
	require.NoError(t, ln.Close())
	good := enginetest.NewDatabase(t)
	for _, scheme := range []string{"postgresql", "postgresql+pgx", "postgresql+stdlib"} {
		t.Run(scheme, func(t *testing.T) {
			e := newEngine(t, scheme+"://u@"+dead+"/db?sslmode=disable", "connect_timeout=2")
			_, err := e.Connect(enginetest.Context(t))
			require.ErrorIs(t, err, asyncengine.ErrServerUnavailable)
			var su *asyncengine.ServerUnavailableError
			require.ErrorAs(t, err, &su)
			require.ErrorIs(t, err, syscall.ECONNREFUSED, "the driver's error stays reachable")
			require.True(t, e.Retryable(err))

			e = newEngine(t, strings.Replace(good, "postgresql://", scheme+"://", 1), "")
			c, err := e.Connect(enginetest.Context(t))
			require.NoError(t, err)
			require.NoError(t, c.Close())
		})
	}
	e := newEngine(t, enginetest.WithQuery(strings.Replace(good, "/"+enginetest.DatabaseName(good), "/no_such_database", 1), ""), "")
	_, err = e.Connect(enginetest.Context(t))
	require.Error(t, err)
	require.NotErrorIs(t, err, asyncengine.ErrServerUnavailable, "a refused login is the server's answer")

	// a connection the server ended because it cannot serve one now
	for err, want := range map[*pgconn.PgError]bool{
		{Code: "57P03", Message: "the database system is shutting down"}:                                true,
		{Code: "08P01", Message: "server login has been failing, try again later (server_login_retry)"}: true,
		{Code: "57P01", Message: "terminating connection due to administrator command"}:                 false,
		{Code: "08P01", Message: "invalid message format"}:                                              false,
	} {
		lost := &asyncengine.DisconnectError{Err: err}
		require.Equal(t, want, errors.Is(lost, asyncengine.ErrServerUnavailable), err.Message)
	}
}
