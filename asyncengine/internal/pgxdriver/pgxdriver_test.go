package pgxdriver

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// The classification the package doc promises, code by code: the server's own errors (those real
// servers send are also produced in the engine's fault tests) and the transport's.
func TestIsDisconnectClassification(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "08000"}, true},
		{&pgconn.PgError{Code: "08006"}, true},
		{&pgconn.PgError{Code: "08P01", SeverityUnlocalized: "FATAL"}, true},
		{&pgconn.PgError{Code: "08P01", SeverityUnlocalized: "ERROR"}, false}, // a refused request; the session goes on
		{&pgconn.PgError{Code: "08P01", Severity: "FATAL"}, true},             // PgBouncer: "server login has been failing"
		{&pgconn.PgError{Code: "57P01"}, true},                                // admin_shutdown: pg_terminate_backend
		{&pgconn.PgError{Code: "57P02"}, true},                                // crash_shutdown
		{&pgconn.PgError{Code: "57P03"}, true},                                // cannot_connect_now
		{&pgconn.PgError{Code: "57P04"}, false},
		{&pgconn.PgError{Code: "57014"}, false}, // query_canceled: the connection is fine
		{&pgconn.PgError{Code: "23505"}, false},
		{&pgconn.PgError{Code: "40001"}, false},
		{fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: "57P01"}), true},
		{io.EOF, true},
		{io.ErrUnexpectedEOF, true},
		{net.ErrClosed, true},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{fmt.Errorf("write: %w", syscall.EPIPE), true},
		{context.Canceled, false},
		{fmt.Errorf("query: %w", context.DeadlineExceeded), false},
		{fmt.Errorf("syntax"), false},
		{nil, false},
	} {
		if got := IsDisconnect(tc.err); got != tc.want {
			t.Errorf("IsDisconnect(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// The socket's counter is found beneath TLS too, so that bytes sent over an encrypted connection
// still make an error after them unsafe to retry (sslmode=prefer, the default, encrypts whenever
// the server can).
func TestCounterIsFoundBeneathTLS(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	cc := &countingConn{Conn: client}
	if counter(cc) != cc {
		t.Fatal("the plain socket's counter is not found")
	}
	if counter(tls.Client(cc, &tls.Config{InsecureSkipVerify: true})) != cc {
		t.Fatal("the counter beneath TLS is not found")
	}
	if counter(client) != nil {
		t.Fatal("a socket without a counter has one")
	}
}
