package asyncsession

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/internal/structmap"
)

type options struct {
	engine         *asyncengine.Engine
	expireOnCommit bool
	autoflush      bool
	binds          map[reflect.Type]*asyncengine.Engine
	bindErr        error
	begin          string    // the statement that opens a transaction
	shards         *sharding // set in a sharded session (shard.go)
	replicas       *asyncengine.ReplicaSet
	// snapshot: the transactions' isolation is above READ COMMITTED, so that their reads must be
	// theirs (a session with Replicas keeps them on the primary)
	snapshot bool
}

func defaultOptions(e *asyncengine.Engine) options {
	return options{engine: e, expireOnCommit: true, autoflush: true, begin: "BEGIN"}
}

// Isolation sets the isolation level of the session's transactions on PostgreSQL:
// "REPEATABLE READ" gives every read of the transaction — a whole pipelined fan-out — one
// snapshot; the default, READ COMMITTED, takes one per statement. SQLite's transactions always
// read one snapshot, and ignore it. An unknown level makes every call of the session fail
// with an error naming the allowed ones.
func Isolation(level string) Option {
	return func(o *options) {
		if o.engine == nil {
			return // the session is unusable already
		}
		begin, err := o.engine.Dialect().Begin(level)
		if err != nil {
			o.bindErr = err
			return
		}
		o.begin = begin
		o.snapshot = !strings.EqualFold(level, "READ COMMITTED")
	}
}

// Option configures a Session or a Maker.
type Option func(*options)

// ExpireOnCommit marks every loaded object expired after Commit (default true), so that the next
// Get, Select or Refresh that touches it reloads it from the database.
func ExpireOnCommit(on bool) Option { return func(o *options) { o.expireOnCommit = on } }

// AutoFlush flushes pending changes before Execute, Select, the query builder's terminals, Load
// and LoadAll, Upsert, RunSync, Stream, InsertMany and InsertSeq, and a Get that misses the
// identity map (default true).
func AutoFlush(on bool) Option { return func(o *options) { o.autoflush = on } }

// Bind routes the mapped type of model (a struct value or pointer) to engine e; types without a
// bind use the session's engine. Each engine gets its own connection and transaction; Commit
// commits them at once (not a two-phase commit: one may commit while another fails).
func Bind(model any, e *asyncengine.Engine) Option {
	return func(o *options) {
		m, err := structmap.Of(reflect.TypeOf(model))
		if err != nil {
			o.bindErr = err
			return
		}
		if o.binds == nil {
			o.binds = map[reflect.Type]*asyncengine.Engine{}
		}
		o.binds[m.Type] = e
	}
}

// Replicas sends the session's reads to the replicas of rs while its transaction has written
// nothing (see "Read replicas" in the package documentation). The session's engine must be
// rs.Primary(): asyncsession.New(rs.Primary(), asyncsession.Replicas(rs)). A sharded session
// refuses it.
func Replicas(rs *asyncengine.ReplicaSet) Option {
	return func(o *options) {
		var why string
		switch {
		case rs == nil:
			why = "a nil ReplicaSet"
		case o.shards != nil:
			why = "a sharded session cannot route reads to replicas"
		case o.engine != rs.Primary():
			why = "the session's engine is not the set's primary: asyncsession.New(rs.Primary(), asyncsession.Replicas(rs))"
		}
		if why != "" {
			o.bindErr = &asyncengine.ConfigError{Key: "replicas", Err: errors.New(why)}
			return
		}
		o.replicas = rs
	}
}

// Maker makes sessions with shared options, like SQLAlchemy's sessionmaker.
type Maker struct {
	e      *asyncengine.Engine
	shards *sharding // a Maker of sharded sessions
	opts   []Option
}

// NewMaker returns a Maker of sessions on e.
func NewMaker(e *asyncengine.Engine, opts ...Option) *Maker { return &Maker{e: e, opts: opts} }

// New returns a session; opts add to the Maker's.
func (m *Maker) New(opts ...Option) *Session {
	all := append(append([]Option(nil), m.opts...), opts...)
	if m.shards != nil {
		return NewSharded(m.shards.set, m.shards.chooser, all...)
	}
	return New(m.e, all...)
}

// Begin runs fn with a new session and commits it when fn returns nil; an error or a panic (returned
// as a *asyncengine.PanicError) rolls it back. The session is closed either way.
func (m *Maker) Begin(ctx context.Context, fn func(s *Session) error) (err error) {
	s := m.New()
	defer func() {
		if cerr := s.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	if err = asyncengine.CatchPanic(func() error { return fn(s) }); err != nil {
		// the caller's ctx may be what ended fn: the rollback gets a short context of its own
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
		defer cancel()
		if _, rbErr := s.Rollback(rctx).Await(rctx); rbErr != nil && !errors.Is(err, rbErr) {
			return fmt.Errorf("%w (and rollback failed: %w)", err, rbErr)
		}
		return err
	}
	_, err = s.Commit(ctx).Await(ctx)
	return err
}

// rollbackTimeout bounds the rollback of a failed Maker.Begin, which does not use the caller's
// context (it may be the reason of the failure).
const rollbackTimeout = 5 * time.Second

type contextKey struct{}

// WithSession returns a context that carries s: Go has no thread-locals, so a request's context
// is its scope.
func WithSession(ctx context.Context, s *Session) context.Context {
	return context.WithValue(ctx, contextKey{}, s)
}

// FromContext returns the session bound to ctx, or nil.
func FromContext(ctx context.Context) *Session {
	s, _ := ctx.Value(contextKey{}).(*Session)
	return s
}

// Scope makes a session for ctx's scope. Calling remove closes it (rolling back what was not
// committed), like SQLAlchemy's scoped_session.remove().
func (m *Maker) Scope(ctx context.Context) (scoped context.Context, remove func() error) {
	s := m.New()
	return WithSession(ctx, s), s.Close
}

// Middleware gives every HTTP request a session of its own, reachable with FromContext from the
// request's context, and closes it when the handler returns.
func (m *Maker) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, remove := m.Scope(r.Context())
		defer func() { _ = remove() }()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}
