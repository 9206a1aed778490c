// Package asyncsession is gosqla's Session: a unit of work with an identity map, whose methods
// return futures and whose requests, issued together, travel to PostgreSQL as one pipeline.
//
// # Mapping
//
// Plain structs are mapped by `db` tags:
//
//	type Author struct {
//		ID    int64   `db:"id,pk,default"`                // primary key filled by the server
//		Name  string  `db:"name"`
//		Email *string `db:"email"`                        // NULL through a pointer or sql.Null*
//	}
//	type Book struct {
//		ID       int64 `db:"id,pk"`
//		AuthorID int64 `db:"author_id,fk=authors.id"`   // a foreign key
//	}
//	func (Author) TableName() string { return "authors" } // else the snake-cased type name
//
// Untagged exported fields map to their snake-cased name; `db:"-"` skips one. `default` marks a
// column the server fills when the Go value is zero (a generated key, a DEFAULT). The mapping is
// computed once per type. CreateAll and DropAll emit the DDL for PostgreSQL and SQLite in
// foreign-key order. An unmapped type, a struct without a primary key, an unknown tag option or a
// Go type with no SQL type is a *MappingError naming the field and what to fix.
//
// # Sessions and futures
//
// A Session works in memory — Add, Delete, Expunge, ExpungeAll — and through requests that return
// an *asyncengine.Future: Flush, Commit, Rollback, Refresh, Execute, BeginNested, RunSync, and the
// generic Get, Select, Merge, Upsert, InsertMany and InsertSeq. The first request opens a
// transaction (autobegin); Commit and Rollback end it and return the connection to the pool;
// Close rolls back what was not committed.
//
//	s := asyncsession.New(engine)
//	defer s.Close()
//	s.Add(&Author{Name: "Ann"})
//	a, err := asyncsession.Get[Author](ctx, s, 1).Await(ctx)
//	_, err = s.Commit(ctx).Await(ctx)
//
// # Ordering and pipelines
//
// A session is safe to share between goroutines, an errgroup's for instance. Its requests are
// queued and served in submission order by one goroutine, which exists only while requests wait:
// an idle session, or one that is never closed, holds none. A request submitted after another by
// the same goroutine sees that request's effects; requests of different goroutines are ordered as
// they reached the queue.
//
// On PostgreSQL, the requests queued while a round trip is in flight go out together as one
// pipeline over the session's connection, inside its transaction. With Isolation("REPEATABLE
// READ") every read of the transaction, a whole fan-out, sees one snapshot (PostgreSQL's default,
// READ COMMITTED, takes one per statement). BEGIN travels with the first pipeline and COMMIT with the last flush: a new session's
// Add and Commit is one round trip, and 100 Gets issued before any Await take a handful. On SQLite
// the requests of a pipeline run one after another in one call on a worker.
//
// Objects are plain structs: do not change one from another goroutine while a Flush or Commit
// that writes it is in flight.
//
// If a statement of a pipeline fails, its request gets the error and the requests after it in the
// same pipeline get ErrPendingRollback.
//
// # Identity map and unit of work
//
// The session holds one object per primary key. Get of a loaded key returns the same pointer
// without SQL; rows of Select and Execute-free loaders are merged into the map, returning the
// loaded object for a known key. At flush, INSERTs go parents first by the foreign-key graph,
// whatever order the objects were added in (rows of one table in multi-row INSERT … RETURNING,
// which brings generated keys and server defaults back); UPDATEs set only the columns that changed
// since load, by comparing a snapshot, and nothing is sent for unchanged objects; DELETEs go
// children first.
//
// Autoflush runs before Execute and Select. A Get that misses the map flushes pending inserts
// and deletes only: finding modified objects means comparing every loaded one, which would make a
// fan-out of Gets quadratic. Call Flush first when a Get must see such changes on the server.
//
// A failed flush — any failed statement of the transaction — leaves the session in
// pending-rollback state: every request but Rollback (or a savepoint's Rollback) returns
// ErrPendingRollback. Rollback expunges the objects added in the transaction, restores deleted
// ones and expires the rest.
//
// # Expiry
//
// Go cannot intercept field reads, so expiry is translated: after Commit (with ExpireOnCommit,
// the default) and after Rollback, loaded objects are marked expired — IsExpired tells — and the
// next Get, Select or Refresh that touches one reloads it in place, keeping its pointer. Until
// then its fields hold what they held.
//
// # Savepoints
//
// BeginNested flushes and starts a savepoint; its Commit releases it, its Rollback undoes the
// work since (expunging objects inserted since) and clears a failure that happened inside it.
//
// # Makers and scopes
//
// A Maker (sessionmaker) makes sessions with shared options: ExpireOnCommit, AutoFlush, Bind,
// Isolation.
// Maker.Begin runs a function with a session and commits on success, rolls back on an error or a
// panic; Maker.BeginRetry runs it again, on a new session, after a serialization failure, a
// deadlock or a connection lost before COMMIT (asyncengine.RetryPolicy). Go has no
// thread-locals: a request's context.Context is its scope. Maker.Scope returns a context carrying
// a new session and the function that removes it (closing the session); FromContext finds it;
// Maker.Middleware does this for every HTTP request.
//
// # Sync-style code, upserts and bulk loads
//
// Session.RunSync runs a function on one of the engine's workers with the session's own
// connection, inside its transaction, after a flush: its writes are visible to the session's later
// requests. Upsert runs INSERT … ON CONFLICT … DO UPDATE … RETURNING and merges the rows into the
// identity map, overwriting loaded state. InsertMany and InsertSeq load rows in bulk outside the
// identity map: COPY on PostgreSQL, multi-row INSERTs sized to the parameter limit on SQLite;
// InsertSeq reads its sequence as it sends, so a million rows need the memory of one page.
//
// # Binds
//
// Bind routes a mapped type to another engine, groundwork for replicas and split databases. Each
// engine gets its own connection and transaction in the session; Commit commits them one after
// another (not a two-phase commit). Execute, RunSync and savepoints use the session's own engine.
package asyncsession
