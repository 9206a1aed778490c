// Package asyncengine is gosqla's engine: connection pools with SQLAlchemy's semantics, a driver
// layer over pgx (non-blocking, pipelined) and database/sql (blocking, run on bounded workers),
// transactions, results, futures and a bounded worker pool for sync-style code.
//
// # Layers
//
// Data flows one way, and no package imports one above it:
//
//	asyncsession                 Session, identity map, unit of work; imports asyncengine
//	asyncengine                  Engine, Config, pools, Conn, Tx, Result, Dialect, Future, Workers
//	asyncengine/driver           the driver SPI (Connector, Conn, Result, Rows) and its registry
//	asyncengine/internal/...     the built-in drivers: pgxdriver (pgx native and pgx's
//	                             database/sql adapter), sqldriver (SQLite); they import driver,
//	                             never asyncengine
//
// The engine reaches a driver only through package driver: each built-in driver registers an
// OpenFunc under its name ("pgx", "stdlib", "sqlite") when its package is loaded, Config.Driver
// names one, and its OpenFunc builds a driver.Connector from a driver.Config, parsing the
// connection string once. A third-party driver registers itself the same way. The pools
// (pool.go: what every pool class shares; queuepool.go, pgxpool.go: one class each) are handed
// their connector, hooks, logger and worker call at construction and never reach back into the
// Engine. Package enginetest, for tests, imports neither asyncengine nor a driver.
//
// # Engines and URLs
//
// An Engine is created from a URL and connects lazily:
//
//	e, err := asyncengine.New("postgresql://app:secret@localhost/app?pool_size=10&pool_pre_ping=true")
//	defer e.Close()
//
// The scheme picks the dialect and driver: postgresql:// (or postgres://, postgresql+pgx://) is
// pgx's native connection; postgresql+stdlib:// is pgx through database/sql; sqlite:///path.db
// (relative), sqlite:////abs/path.db and sqlite:// (in memory) are the embedded SQLite of
// modernc.org/sqlite. A PostgreSQL keyword/value string ("host=db1,db2 dbname=app pool_size=10",
// or "" for everything from PG* variables) selects the native pgx driver. Query keys (keywords)
// named like create_engine's arguments configure the engine; every other key (sslmode,
// application_name, options, service, …) reaches the driver byte for byte as written, so a
// PostgreSQL string means what pgx's ParseConfig makes of it: several hosts, PG* environment
// variables, service and password files.
//
// A bad value, an unknown scheme or Config.Driver, a key within a small edit distance of a gosqla
// key ("max_overflw": did you mean max_overflow?), pgxpool's keys (pool_max_conns: did you mean
// pool_size / max_overflow?), a key SQLite does not know and an unencoded '@' in a URL's user
// information are each a *ConfigError (errors.Is(err, ErrInvalidConfig)) that names the key and
// what to do. pgx's default_query_exec_mode is statement_cache under pgx's names; both with
// different meanings is an error. ParseConfig returns a Config to adjust — hooks, a Logger —
// before NewWithConfig; both validate it with the same rules.
//
// No password (the URL's, password=, sslpassword=) appears in an error, in echo's lines, in
// Config.String, or when a Config is printed with %v, %+v or %#v, whatever the input.
// Config.DSN, the driver's string, holds it.
//
// # Drivers
//
// Config.Driver names a driver registered with package driver's Register: DriverPgx,
// DriverStdlib and DriverSQLite are built in, each built by its package's one constructor from
// the connection string, which it parses once. A third-party driver implements driver.Connector
// and registers an OpenFunc under its name, as with database/sql.
//
// # Connections, transactions and results
//
// Engine.Exec and Engine.Query check a connection out for one statement. Engine.Connect checks one
// out for longer; Conn.Close returns it. Engine.Begin runs a function in a transaction that
// commits on nil and rolls back on an error or a panic (returned as *PanicError). Conn.Begin and
// Conn.BeginNested (SAVEPOINT) give a *Tx to commit or roll back; while one is open, a statement
// that would begin or end the transaction behind it (COMMIT, ROLLBACK, BEGIN…, sent through Exec,
// Query, Pipeline or the pgx view) is an *ArgumentError, not sent. A statement that fails inside a
// transaction leaves it pending rollback on every driver, as PostgreSQL does: each later call
// returns ErrPendingRollback naming the failure, and Commit rolls back and returns it — also on
// SQLite, which would otherwise commit the rest. Rolling back a savepoint around the failure goes
// on with the transaction; a call refused before anything was sent (an *ArgumentError) changes
// nothing. A connection lost after COMMIT was sent leaves the outcome unknown: Tx.Commit and
// Engine.Begin return a *CommitUnknownError (ErrCommitUnknown, wrapping the *DisconnectError), never
// a plain disconnect a caller could take for "not committed".
//
// A Conn, like every Go driver connection, is for one goroutine at a time. Two goroutines using
// one Conn at once are detected: the second call returns ErrConcurrentUse, the first is not
// disturbed, and the protocol stream is never corrupted.
//
// Results are read in full (Engine.Query, Conn.Query) or streamed (Engine.Stream, Conn.Stream,
// or Conn.Cursor for code that pulls one row at a time and closes the cursor itself).
// A buffered Result keeps each value as the driver read it and scans it on demand straight into
// the destination with the driver's own type system: Result.One and Result.ScanRow (into
// pointers), ScanAll / ScanOne into structs by their `db` tags, Row.Scan and ScanEach for a
// stream. On PostgreSQL that is pgx's type map, whichever of the two drivers runs the query, so a
// destination reads the same value through postgresql:// and postgresql+stdlib://; on SQLite it
// is database/sql's Scan rules. A value its destination cannot hold — NULL into a non-pointer, a
// number out of the destination's range, a fraction into an integer — is a *ConvertError naming
// the column, its database type, the Go type and what to use instead (a pointer, sql.Null[T], a
// pgtype type); nothing is stored then. Nothing is silently zeroed or truncated, with the
// conversions that approximate by design (marked † below): an interval into
// time.Duration counts a month as 30 days ('1 mon 2 days' reads as 768h; read pgtype.Interval
// to keep months apart), a double into float32 is rounded to the nearest float32 (1e300 becomes
// +Inf; read float64), a numeric into float64 is rounded to the nearest float64 (read
// pgtype.Numeric or string for the exact value), and an integer into a float rounds beyond its
// exact range (2^24 for float32, 2^53 for float64: 16777217 reads as 16777216 into float32), on
// SQLite as on PostgreSQL. A struct that
// cannot be mapped is a *MappingError. A buffered result is scanned with a type map of its own
// after its connection went back to the pool: types registered on a pgx connection only (enums,
// composites via pgx's RegisterType) read as text there; stream them to use the connection's map.
//
// Destinations pgx reads each PostgreSQL type into include (pgx's documentation has the full list;
// every type also reads into a pointer to one of these, into sql.Null[T], into its pgtype type,
// into an sql.Scanner and into any):
//
//	PostgreSQL          Go destinations                               untyped (Scalar, Rows, Values, Mappings)
//	boolean             bool                                          bool
//	smallint            int16, wider ints (narrower range checked)    int16
//	integer             int32, int64, int (range checked)             int32
//	bigint              int64 (range checked into narrower)           int64
//	real, double        float32†, float64 (no fraction into an int)   float32, float64
//	numeric             pgtype.Numeric, string, float64†, int64 when  pgtype.Numeric
//	                    the value is whole
//	text, varchar       string, []byte                                string
//	bytea               []byte                                        []byte
//	uuid                [16]byte, string, pgtype.UUID                 [16]byte
//	json, jsonb         []byte, json.RawMessage, string, a struct,    the decoded JSON (map[string]any,
//	                    a map (decoded with encoding/json)            []any, string, float64, bool)
//	text[], int4[] …    []string, []int32, []int64, []*int32 (NULL    []any
//	                    elements), pgtype.FlatArray[T]
//	inet, cidr          netip.Prefix                                  netip.Prefix
//	interval            time.Duration†, pgtype.Interval               pgtype.Interval
//	timestamptz         time.Time                                     time.Time (local time zone)
//	timestamp, date     time.Time                                     time.Time (UTC)
//
// The untyped values are pgx's own (its Rows.Values), the same through both PostgreSQL drivers.
// On SQLite they are what the driver returns: int64, float64, string, []byte, time.Time, nil.
//
// Writing takes every Go type pgx encodes, through Exec, Query, Named, Conn.Pipeline,
// Conn.CopyFrom and the session: a string or float64 for numeric, a string or [16]byte for
// uuid, []byte, json.RawMessage, a struct or a map for json and jsonb, slices for arrays,
// netip.Prefix for inet, time.Duration for interval, in every statement_cache mode. A value that
// cannot be encoded fails before anything runs, with an *ArgumentError (ErrInvalidArgument) that
// wraps the driver's error (in a pipeline, as the failing statement's error inside the
// *PipelineError, never as a COMMIT of unknown outcome); an open transaction goes on. A number
// its parameter's type cannot hold (an int64 beyond an integer column's range) is such an error
// with statement_cache=describe or prepare, whose fix says so; without the parameter's type the
// server refuses it. One
// exception is pgx's: with statement_cache=describe or prepare, a pipeline whose failing statement
// comes after others loses its connection (pgx closes it; nothing ran), and with it an open
// transaction.
//
// SQLite has no arrays, JSON or network types: there, an argument with a text form (netip.Prefix,
// netip.Addr: MarshalText) is stored as that text, and other slices (but []byte), arrays, maps
// and structs (but time.Time) as JSON text; reading a text column back into such a destination
// decodes it the same way (UnmarshalText, else encoding/json), so the model CreateAll declares
// (text columns on SQLite) is written and read alike on both databases. time.Duration is stored
// as its nanoseconds.
//
// Conn.Stream and Engine.Stream yield rows as they arrive (iter.Seq2[*Row, error]) without
// holding the result: a million rows take the memory of one. Ending the loop early discards the
// rest and frees the connection: outside a transaction, on PostgreSQL's native driver, a result
// with more than a few dozen rows left is cancelled on the server instead of read to its end;
// inside a transaction (where a cancel would abort it) and on other drivers the rest is read and
// discarded. Cancelling ctx stops the query. ScanEach maps a stream to structs.
//
// Conn.Pipeline sends several statements in one round trip (one worker call on a blocking
// driver) and reports a failing statement's index through a *PipelineError; Conn.PipelineEach
// also hands each statement's result to a function as soon as it is read, while the server runs
// the statements after it (drivers implement driver.EachPipeliner for that); Conn.PipelineStream
// takes the statements in batches, each sent as soon as it is handed over, so that the server
// runs the first ones while the caller works out the next (driver.StreamPipeliner: the native
// driver, with statements it prepares once per connection; other drivers and statement_cache
// modes collect the batches first); Conn.CopyFrom loads
// rows in bulk (COPY on the native PostgreSQL driver, multi-row INSERTs elsewhere). The session is
// built on them.
//
// # Parameters
//
// Arguments are positional in the dialect's style ($1 on PostgreSQL, ? on SQLite), or one Named
// map for :name placeholders, rewritten per dialect. String literals (escape strings E'…' with
// their backslash escapes too, continued across lines as PostgreSQL continues them), quoted
// identifiers, comments (/* */ nesting on PostgreSQL, not on SQLite), dollar-quoted bodies and
// ::casts are left alone; names and dollar-quote tags may hold non-ASCII letters. A slice bound
// to a name after IN expands to one placeholder per element; the same name elsewhere (= ANY(:ids))
// is the one array; a positional placeholder ($1, or ? on SQLite) among Named values is refused.
// A statement with more parameters than the dialect takes (65 535 on
// PostgreSQL, whose protocol counts them in 16 bits) is refused before it is sent, with the fix:
// send a long list as one array. A statement whose placeholders and
// arguments disagree fails before anything is sent, with an *ArgumentError naming the missing key
// or the counts: a :name with no arguments at all, and a plain map[string]any where Named was
// meant, name the parameter and the fix (asyncengine.Named{...}); a Named key the statement does
// not use (often a misspelt one) is refused too, named. Dialect.OneStatement refuses a
// string holding several statements, as the session does for every request.
//
// # Futures and workers
//
// Future (future.go), Workers and Go (workers.go) and Group (group.go) are not about databases,
// but they stay in this package, one file each: every session method returns an
// *asyncengine.Future, RunSync and every blocking driver call run on the engine's Workers, and a
// nested call is recognised by the context a task of those Workers was given. One import then
// serves a program that uses the engine, and futures and workers from elsewhere cannot be mixed
// up with the engine's.
//
// Future[T] is a value that completes later: Await(ctx) waits for it, Done() is closed when it
// completes, All awaits several. Workers is a bounded pool: N goroutines and a bounded queue;
// submitting to a full queue waits and gives up when ctx ends; a panicking task completes with a
// *PanicError carrying its stack (in Stack: its message is one line naming the panic and the
// function that raised it); Close waits for running tasks. CatchPanic is that rule for any
// function: hooks, transaction callbacks and worker tasks all run through it. Its size defaults to the pool's
// capacity (pool_size + max_overflow).
//
// RunSync runs a function with a checked-out Conn on a worker and returns its future. Because the
// workers are no more than the connections, a fan-out of any width — 100 000 tasks of blocking,
// sync-style code — waits in the worker queue instead of timing out on the pool.
//
// Go runs a function on the workers without a connection: use it for CPU-only stages (parsing,
// transforms), so that they do not hold a connection writers need. A task whose context ended
// before a worker took it never runs. Go and RunSync called with the context a task of the same
// workers was given run inline on the caller's worker (a nested RunSync uses its caller's
// connection): nothing waits for capacity its own caller holds. A Connect with that context while
// the pool is exhausted fails at once with ErrNestedCheckout — pass the Conn down instead.
//
// Group is errgroup on the workers: the first error cancels the group's context, tasks not yet
// started then never run, and Wait returns only when every started task has finished, so none is
// left holding a connection. SetLimit bounds the tasks one stage has queued or running at once:
// giving each stage of a pipeline a limit, with the limits summing to no more than the workers,
// reserves capacity for every stage.
//
// Sizing: workers bound the sync-style tasks running at once and pool_size + max_overflow the
// connections. Keep workers no larger than the pool's capacity (the default) when most tasks
// use RunSync; run CPU-only stages with Go on a Workers of their own (NewWorkers) or under a
// Group limit, so that they cannot starve the tasks that hold connections.
//
// A Future holds its result until it is awaited and dropped: issuing 100 000 futures before
// awaiting any keeps 100 000 results in memory. Bound the futures in flight — a Group with
// SetLimit, errgroup.SetLimit, or awaiting in batches — when results are large (see
// examples/fanout).
//
// Every call of a blocking driver (database/sql: SQLite, postgresql+stdlib) runs on the workers
// too. A call made while every worker is busy runs beside them: it holds a connection, so such
// calls are bounded by the pool, and it must not wait behind RunSync tasks that may be waiting for
// that connection (WorkerStats.Direct counts them).
//
// # Pooling
//
// The pool behaves as SQLAlchemy's QueuePool: pool_size connections are kept idle; up to
// max_overflow more may be open and are closed when returned; a checkout that finds neither waits
// up to pool_timeout, first come first served, and then fails with ErrPoolTimeout and the text
// "QueuePool limit of size 5 overflow 10 reached, connection timed out, timeout 30.00s". A failed
// connect gives its slot back; a waiter whose ctx ends leaves nothing behind. Stats reports Size,
// CheckedIn, CheckedOut, Overflow (negative while fewer than pool_size are open, as in SQLAlchemy)
// and Waiting, with counters of connects, closes, invalidations, timeouts, waits and wait time,
// leaks and round trips. The keys, with their defaults:
//
//	pool_size=5             idle connections kept; 0 = no limit
//	max_overflow=10         connections beyond pool_size; -1 = no limit
//	pool_timeout=30         longest a checkout takes, waiting and connecting included ("250ms"
//	                        or seconds); a server that never answers costs this, not forever
//	connect_timeout         pgx's key: when given, it bounds each connection attempt instead
//	pool_recycle=-1         replace a connection older than this at checkout; -1 = never
//	pool_pre_ping=false     check liveness at checkout (never on a fresh connection; an empty
//	                        statement, never a prepared one) and reconnect transparently
//	pool_use_lifo=false     reuse the most recently returned connection first
//	pool_reset_on_return=rollback   rollback | commit | none, only when a transaction is open
//	poolclass=queue         queue | null (open per checkout) | static (one connection, taken in
//	                        turns) | assertion (one connection; a second checkout is an error, with
//	                        where the first happened when pool_debug=true) | pgxpool
//	pool_debug=false        record checkout stacks for leak and assertion reports
//	workers=0               worker goroutines; 0 = the pool's capacity (64 when unlimited)
//	worker_queue=65536      tasks that may wait for a worker
//	statement_cache=prepare prepare | describe | none | describe_exec | simple (PostgreSQL; see
//	                        PgBouncer); pgx's default_query_exec_mode says the same
//	cancel_grace=0          on a cancelled ctx, ask the server to cancel and wait this long
//	                        before closing the connection; 0 closes it at once
//	echo=false              log SQL and pool events at debug level
//	log_parameters=false    echo also logs argument values and server error text
//
// An in-memory SQLite URL defaults to poolclass=static: every connection to ":memory:" is a
// database of its own. A SQLite URL defaults to _time_format=sqlite ("2006-01-02
// 15:04:05.999999999-07:00"), in which every time.Time — one with only a UTC offset, from
// time.Parse or JSON, too — is read back as the same instant; set _time_format to choose another.
// StaticPool hands its one connection to one checkout at a time (Go's
// goroutines would otherwise race on it). poolclass=pgxpool backs the engine with a
// *pgxpool.Pool, keeping pool_timeout, pre-ping, pool-wide invalidation, hooks and Stats on top;
// NewFromPgxPool wraps a pool the caller already has.
//
// Dispose closes the idle connections and lets the checked-out ones close when they come back.
// A Conn garbage-collected while checked out is reported through the Logger (with the stack of its
// checkout when pool_debug=true) and its slot recovered.
//
// # Disconnects and cancellation
//
// A driver error that means the connection is gone — pgx's closed connection, EOF, SQLSTATE class
// 08, 57P01–57P03; database/sql's driver.ErrBadConn — invalidates that connection and marks every
// pooled connection created before it stale: a lost server fails only the statements already in
// flight on its connections, and a request that starts after the first failure gets a fresh
// connection. The caller gets a *DisconnectError. Outside a transaction the Conn reconnects
// on its next use; inside one every call returns ErrPendingRollback until Rollback. A protocol
// violation the server reports at ERROR severity (08P01, e.g. a NUL byte in the SQL) is the
// request's error: the server goes on, and nothing is invalidated (PgBouncer, which sends no
// unlocalized severity, is read by its severity: its FATAL 08P01 errors end the connection). A
// checkout that cannot open a connection because the server is unreachable, starting, shutting
// down or not accepting connections fails with a *ServerUnavailableError, matched by
// ErrServerUnavailable, the driver's error inside; a refused login is not one. A panic inside a driver call
// (a COPY source, Conn.Do's function) comes back as a *PanicError and discards that connection,
// whose protocol state is unknown.
//
// A context cancelled mid-query makes pgx close the connection; the pool notices and never hands
// it to the next caller. With cancel_grace the driver sends the server a cancel request instead,
// and the connection survives if the server answers within the grace period.
//
// # Events
//
// Config's hook fields are the pool events: OnConnect, OnFirstConnect (exactly once per pool,
// even when many goroutines connect first at once), OnCheckout (an error rejects the connection,
// which is replaced), OnCheckin, OnReset, OnInvalidate, OnClose. OnConnect, OnFirstConnect and
// OnCheckout run for a caller: an error or a panic in one fails the operation it belongs to and
// leaks no slot. OnCheckin, OnReset, OnInvalidate and OnClose are notifications with no caller to
// fail: a panic in one is recovered, logged at warn level through Config.Logger (slog.Default()
// when nil), and the pool goes on.
//
// # Tracing
//
// Config.Tracer receives the start and end of each statement (Exec, Query, Stream, and the pgx
// view's calls), in the shape of pgx's tracers: TraceQueryStart returns the context the
// statement runs under, TraceQueryEnd receives it with the outcome. A tracer that also implements
// CheckoutTracer, ConnectTracer, PipelineTracer (a pipeline with its statements: the session's
// pipelined rounds), CopyFromTracer or TxTracer (Begin/BeginNested to Commit/Rollback) receives
// those events too (checkouts not when it implements CheckoutTraceSwitch and turns them off). The
// SQL is given as sent; arguments only with log_parameters=true. With no tracer, and for an event
// the tracer does not take, each event costs one nil comparison. A tracer observes: a panic in
// one of its methods is recovered and logged at warn level (Config.Logger, else slog.Default)
// with its stack, and the traced call goes on — with the context it had, when a start method
// panicked — on whatever goroutine it runs. Package gosqlaotel is a tracer for OpenTelemetry.
//
// # Statistics
//
// Engine.Stats returns the pool's gauges and counters (SQLAlchemy's size, checked in and out,
// overflow and waiting; connects, invalidations, timeouts, waits and wait time, round trips) and
// MaxOpen; PoolStats.DBStats gives them in database/sql's sql.DBStats shape. Workers().Stats
// gives the worker queue depth (Queued) and busy workers (Running).
//
// # Interop: pgx and database/sql
//
// Conn.Pgx and Tx.Pgx return a PgxConn whose Exec, Query, QueryRow, CopyFrom and SendBatch have
// pgx's signatures (pgconn.CommandTag, pgx.Rows, pgx.Row, pgx.BatchResults): it satisfies the
// DBTX interface sqlc generates for pgx/v5, :copyfrom and :batch queries included, so generated
// queries, pgx.CollectRows and scany's pgxscan run on gosqla connections and transactions. Query
// and SendBatch read their whole results before returning, so the connection is free again at
// once; a batch's queued callbacks run when its results are closed, and a batch that would
// begin a transaction is refused. It needs the native PostgreSQL driver; other engines get ErrNotPgx. Conn.RawPgx
// hands a function the *pgx.Conn itself, under the connection's guard. Package sqlview opens a
// *sql.DB whose connections are checked out of the engine.
//
// # PgBouncer
//
// In transaction pooling mode PgBouncer gives each transaction any server connection, so a
// statement prepared on one is missing on the next ("prepared statement … does not exist" or
// "already exists"). The default statement_cache=prepare prepares statements by name: do not use
// it behind PgBouncer in transaction mode. statement_cache=describe caches only descriptions and
// runs unnamed statements; statement_cache=none runs every statement unnamed. Both work through
// PgBouncer under concurrent load (tested against a real PgBouncer). Prefer describe: without a
// description (none, simple) a parameter takes the type of its Go value and the server converts
// it to the column's, so a time.Time into a timestamp (without time zone) column is stored as
// the session's TimeZone reads the instant, where describe and prepare store the value's own
// wall clock; UTC times, or timestamptz columns, are stored alike in every mode. A value pgx
// encodes only for a known column type is sent as the text PostgreSQL holds for it: a [16]byte
// (a pointer to one, a named type over one) as a uuid, a slice of them as a uuid[], a struct or
// a map as JSON, encoded as describe encodes them, so a uuid or json/jsonb column stores the
// same in every mode. Any other such value (a slice of structs, a func) is refused with an
// *ArgumentError naming the argument: use describe, or pass the value's text as a string.
//
// # Echo
//
// echo=true, or Config.Echo with a Logger, logs SQL (statement, argument count, time) and pool
// events (connect, checkout, checkin, reset, invalidate, close) at debug level. Passwords are
// redacted wherever a connection string is printed, Config.String included. Argument values, and
// the text of a failed statement's error (server errors quote values: `invalid input syntax for
// type integer: "…"`, a unique violation's detail), are logged only with log_parameters=true;
// without it a failed statement logs its SQLSTATE. Each logged value, statement and error is
// capped at 1 KiB, and at most 32 arguments are logged.
//
// # Retried transactions
//
// Engine.Begin never retries. Engine.BeginRetry runs fn again under a RetryPolicy (bounded
// attempts, full-jitter exponential backoff) when an attempt failed with nothing committed: a
// serialization failure (40001), a deadlock (40P01), or a connection lost or refused before
// COMMIT was sent. A connection lost after COMMIT was sent leaves the outcome unknown: that is a
// *CommitUnknownError (ErrCommitUnknown), never retried. Running out of attempts is a *RetryError
// wrapping the last failure. Engine.Retry applies a policy to any attempt function.
//
// # Replicas and failover
//
// A ReplicaSet (NewReplicaSet, replicas=host:port,…) is a primary and its streaming standbys,
// each with its own pool: reads outside a transaction go to a healthy replica chosen by
// replica_routing (round_robin, random, least_busy), everything else and reads marked with
// WithPrimary to the primary; a failing replica stays out for replica_retry; with none healthy
// reads go to the primary, or fail with ErrNoReplica under replica_fallback=error. A context
// carrying a *ReadYourWrites sees its own writes: reads go only to a replica whose replay position
// has reached the WAL position recorded after the writes, waiting up to read_your_writes_wait,
// else to the primary; its Token carries the guarantee to a client's next request.
// max_replica_lag skips replicas that are further behind. Members are checked at first use
// (roles, database, user); a mismatch is a *ReplicaSetError for every operation from then on.
// Code that runs its own reads on the engine ReadEngine returned reports a failed one with
// ReportFailure, which takes a lost replica out of routing as the set's own reads do.
//
// Failover is pgx's: a multi-host URL with target_session_attrs (any, read-write, read-only,
// primary, standby, prefer-standby) connects to the first host that qualifies; when the primary
// is lost the pool drops the old connections and the next checkout finds the new primary. Only
// synchronous replication guarantees that writes acknowledged before the switch survive it.
//
// # Shards
//
// A ShardSet holds engines by shard name: Shard finds one (an unknown name is an
// *UnknownShardError), OnShards and QueryAll run on several shards at once, each on its own
// goroutine and connection. Transactions are shard-local; nothing is atomic across shards.
//
// # Testing
//
// Package enginetest starts a throwaway PostgreSQL per test binary, gives each test a database of
// its own, can put a real PgBouncer in front and can terminate backends or restart the server;
// NewReplication and SharedReplication start a primary with streaming standbys. Its Context,
// EachBackend (a parallel subtest per driver: pgx, stdlib, sqlite), BackendURL and WithQuery are
// the helpers gosqla's own tests use.
package asyncengine
