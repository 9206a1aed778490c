package asyncengine

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/gosqla/gosqla/asyncengine/driver"

	"github.com/gosqla/gosqla/internal/structmap"
)

// MappingError reports a struct type that cannot be mapped to columns, naming the field and what
// to fix (ScanAll, ScanOne, and the session's mapping).
type MappingError = structmap.MappingError

// ConvertError reports a column value that cannot be stored in its destination (Result.One,
// ScanAll, the session's loads).
type ConvertError = structmap.ConvertError

var (
	// ErrPoolTimeout is matched by the error a checkout returns when no connection became free
	// within pool_timeout.
	ErrPoolTimeout = errors.New("gosqla: pool timeout")
	// ErrPoolClosed is returned by a checkout from an engine that was closed.
	ErrPoolClosed = errors.New("gosqla: pool is closed")
	// ErrConcurrentUse is returned when a Conn or Tx is used by a second goroutine while a call on
	// it is still running. The running call is unaffected.
	ErrConcurrentUse = errors.New("gosqla: connection used concurrently by two goroutines; a Conn is not goroutine-safe — check out one per goroutine or use a Session")
	// ErrNoRows is returned by Result.One and Result.Scalar when the result has no row.
	ErrNoRows = errors.New("gosqla: no rows in result")
	// ErrMultipleRows is returned by Result.One when the result has more than one row.
	ErrMultipleRows = errors.New("gosqla: more than one row in result")
	// ErrPendingRollback is returned by a transaction (or session) whose statement failed or whose
	// connection was lost: only Rollback is allowed until then.
	ErrPendingRollback = errors.New("gosqla: transaction failed and must be rolled back before further use")
	// ErrConnClosed is returned by a Conn or Tx used after Close, Commit or Rollback.
	ErrConnClosed = errors.New("gosqla: connection is closed")
	// ErrTxDone is returned by a Tx used after Commit or Rollback.
	ErrTxDone = errors.New("gosqla: transaction has already been committed or rolled back")
	// ErrInvalidConfig is matched by every *ConfigError.
	ErrInvalidConfig = errors.New("gosqla: invalid configuration")
	// ErrInvalidArgument is matched by every *ArgumentError.
	ErrInvalidArgument = errors.New("gosqla: invalid statement arguments")
	// ErrWorkersClosed is returned by Workers after Close.
	ErrWorkersClosed = errors.New("gosqla: workers are closed")
	// ErrNestedCheckout is returned by a Connect made inside RunSync (with the context RunSync
	// passed) while the pool is exhausted: it would wait for the connection its own caller holds.
	ErrNestedCheckout = errors.New("gosqla: connection checked out inside RunSync while the pool is exhausted would wait for the one its caller holds; use the Conn RunSync passed, or make pool_size + max_overflow larger than workers")
	// ErrAlreadyCheckedOut is returned by the assertion pool on a second checkout.
	ErrAlreadyCheckedOut = errors.New("gosqla: connection is already checked out")
)

// ConfigError reports a bad URL or configuration value.
type ConfigError struct {
	Key     string // the URL key or config field, empty for the URL as a whole
	Value   string
	Allowed string // what would be accepted
	Err     error  // the parse error, if any
}

func (e *ConfigError) Error() string {
	msg := "gosqla: invalid configuration"
	if e.Key != "" && e.Value == "" {
		msg += ": " + e.Key // an unknown key's value is not repeated: it may be a misspelt secret
	} else if e.Key != "" {
		msg += fmt.Sprintf(": %s=%q", e.Key, e.Value)
	} else if e.Value != "" {
		msg += fmt.Sprintf(": %q", e.Value)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if e.Allowed != "" {
		msg += " (allowed: " + e.Allowed + ")"
	}
	return msg
}

func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }
func (e *ConfigError) Unwrap() error        { return e.Err }

// ArgumentError reports statement arguments that do not match the statement's placeholders, or an
// argument the driver cannot encode. It is returned before anything runs: an open transaction
// goes on.
type ArgumentError struct {
	SQL     string
	Missing string // a named parameter with no value
	Want    int    // placeholders in the statement
	Got     int    // arguments given
	Fix     string // what to change, when the arguments have the wrong shape
	Err     error  // the driver's error, for an argument it could not encode
}

func (e *ArgumentError) Error() string {
	if e.Fix != "" {
		if e.Missing != "" {
			return fmt.Sprintf("gosqla: statement uses :%s but has no value for it: %s", e.Missing, e.Fix)
		}
		return "gosqla: " + e.Fix
	}
	if e.Missing != "" {
		return fmt.Sprintf("gosqla: statement uses :%s but the Named arguments have no key %q", e.Missing, e.Missing)
	}
	return fmt.Sprintf("gosqla: statement has %d placeholder(s) but %d argument(s) were given", e.Want, e.Got)
}

func (e *ArgumentError) Is(target error) bool { return target == ErrInvalidArgument }
func (e *ArgumentError) Unwrap() error        { return e.Err }

// ErrServerUnavailable is matched by the error of a checkout that could not open a connection
// because the server is down, restarting, shutting down, or not accepting connections (in a
// failover, say): a *ServerUnavailableError; and by a *DisconnectError whose connection the
// server ended for such a reason (a PgBouncer that cannot log in to its server). Worth retrying
// later; a refused login (a wrong password, an unknown database) is not such an error.
var ErrServerUnavailable = errors.New("gosqla: server unavailable")

// ServerUnavailableError reports a connection that could not be opened because the server is
// unreachable or not accepting connections. The driver's error is Err.
type ServerUnavailableError struct {
	Err error
}

func (e *ServerUnavailableError) Error() string {
	return fmt.Sprintf("gosqla: server unavailable, no connection could be opened: %v", e.Err)
}
func (e *ServerUnavailableError) Is(target error) bool { return target == ErrServerUnavailable }
func (e *ServerUnavailableError) Unwrap() error        { return e.Err }

// DisconnectError reports that the connection was lost (or the server is shutting down). The
// connection was invalidated — it will not be reused — and every pooled connection older than it
// was marked stale.
type DisconnectError struct {
	ConnID uint64
	Err    error
}

func (e *DisconnectError) Error() string {
	return fmt.Sprintf("gosqla: connection %d lost and invalidated: %v", e.ConnID, e.Err)
}
func (e *DisconnectError) Unwrap() error { return e.Err }

// Is matches ErrServerUnavailable when the server ended the connection because it cannot serve
// one now: starting up or shutting down (57P03), or a PgBouncer whose logins to the server fail.
func (e *DisconnectError) Is(target error) bool {
	if target != ErrServerUnavailable {
		return false
	}
	var coded interface{ SQLState() string }
	if !errors.As(e.Err, &coded) {
		return false
	}
	msg := e.Err.Error()
	return coded.SQLState() == "57P03" ||
		coded.SQLState() == "08P01" && (strings.Contains(msg, "server login has been failing") || strings.Contains(msg, "cannot connect to server"))
}

// PoolTimeoutError is returned when no connection became free within pool_timeout. Its text is
// the one SQLAlchemy users know, so that it can be searched.
type PoolTimeoutError struct {
	Size     int
	Overflow int
	Timeout  float64 // seconds
}

func (e *PoolTimeoutError) Error() string {
	return fmt.Sprintf("QueuePool limit of size %d overflow %d reached, connection timed out, timeout %.2fs", e.Size, e.Overflow, e.Timeout)
}
func (e *PoolTimeoutError) Is(target error) bool { return target == ErrPoolTimeout }

// CatchPanic runs fn and returns a panic in it as a *PanicError with the stack where it happened:
// no panic of user code (hooks, tasks, transaction callbacks) escapes the library.
func CatchPanic(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = panicError(r)
		}
	}()
	return fn()
}

func panicError(r any) error { return &PanicError{Value: r, Stack: debug.Stack()} }

// reachedServer reports whether a failed driver call may have run something on the server: not a
// request refused before it was sent (an argument that could not be encoded, a connection
// already closed), which leaves an open transaction as it was.
func reachedServer(err error) bool {
	var unsent interface{ SafeToRetry() bool }
	var pipe *driver.PipelineError
	switch {
	case errors.As(err, &unsent) && unsent.SafeToRetry(),
		errors.As(err, &pipe) && pipe.NotExecuted:
		return false
	}
	return true
}

// catchDriverPanic is CatchPanic for a driver call, without a closure per call.
func catchDriverPanic[A, R any](ctx context.Context, dc driver.Conn, a A, fn func(context.Context, driver.Conn, A) (R, error)) (r R, err error) {
	defer func() {
		if rec := recover(); rec != nil {
			err = panicError(rec)
		}
	}()
	return fn(ctx, dc, a)
}

// PanicError is a panic recovered from user code (a worker task, a hook, a Begin callback),
// returned as an error with the stack where it happened. Its message is one line, naming the
// panic and the function that raised it, so that it can be logged or returned as is; the whole
// stack is in Stack.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string {
	if at := panickedAt(e.Stack); at != "" {
		return fmt.Sprintf("gosqla: panic: %v (in %s)", e.Value, at)
	}
	return fmt.Sprintf("gosqla: panic: %v", e.Value)
}

// panickedAt is the frame of stack that raised the panic, as "function (file:line)": the first
// frame below the call to panic outside the runtime (which raises index and nil errors), or ""
// when stack has none.
func panickedAt(stack []byte) string {
	// a goroutine's trace is a function line, then a tab and its file:line +offset
	lines := strings.Split(string(stack), "\n")
	for i := range lines {
		if !strings.HasPrefix(lines[i], "panic(") {
			continue
		}
		for j := i + 2; j+1 < len(lines); j += 2 {
			fn, file := lines[j], strings.TrimSpace(lines[j+1])
			if strings.HasPrefix(fn, "runtime.") {
				continue
			}
			if k := strings.LastIndexByte(fn, '('); k > 0 {
				fn = fn[:k]
			}
			if k := strings.LastIndex(file, " +0x"); k > 0 {
				file = file[:k]
			}
			return fn + " (" + file + ")"
		}
		return ""
	}
	return ""
}

// Unwrap returns the panic value when it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}
