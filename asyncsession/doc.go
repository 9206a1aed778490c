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
// foreign-key order. A `default` primary key gets a generated default when it is a single integer
// key (an identity column; INTEGER PRIMARY KEY AUTOINCREMENT on SQLite) or a uuid on PostgreSQL
// (gen_random_uuid()); any other `default` key (a string, a [16]byte on SQLite, part of a
// composite key) is a *MappingError from CreateAll unless a `type=` names its column type. An unmapped type, a struct without a primary key, an unknown tag option or a
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
// they reached the queue. The objects the session holds are the application's: a goroutine that
// changes one while others flush or query through the same session (an autoflush reads every
// object it holds) races with them. Build an object whole before Add, and change held objects
// from one goroutine at a time, or between the others' Awaits.
//
// On PostgreSQL, the requests queued while a round trip is in flight go out together as one
// pipeline over the session's connection, inside its transaction. With Isolation("REPEATABLE
// READ") every read of the transaction, a whole fan-out, sees one snapshot (PostgreSQL's default,
// READ COMMITTED, takes one per statement). BEGIN travels with the first pipeline and COMMIT with the last flush: a new session's
// Add and Commit is one round trip (two the first time a connection meets the INSERT, which is
// described first unless statement_cache=none), and 100 Gets issued before any Await take a handful.
// One exception keeps failed writes out of the database: when the pipeline stores values the
// server returned into a field not every value fits (a server-filled column read into a field
// other than int64, int, string, time.Time or [16]byte, or an Upsert), COMMIT is sent in the next
// round trip, once those values are stored, so that one that does not fit fails the transaction
// instead of following its COMMIT. On SQLite
// the requests of a pipeline run one after another in one call on a worker, and a Commit that
// inserts sends its COMMIT in a second call, once the rows inserted are counted (an INSERT there
// cannot check its own count, as it does on PostgreSQL: see the relationships section).
//
// Objects are plain structs: do not change one from another goroutine while a Flush or Commit
// that writes it is in flight.
//
// If a statement of a pipeline fails, its request gets the error and the requests after it in the
// same pipeline get ErrPendingRollback.
//
// # Errors
//
// A server error keeps its cause: errors.As(err, &pgErr) finds the *pgconn.PgError (a unique
// violation, 23505, for a 409 Conflict) whether it surfaced at a first statement, a flush, a
// commit or a savepoint, and the request that caused it gets it unprefixed. Requests refused
// afterwards match ErrPendingRollback with errors.Is and the cause with errors.As. Any failure
// inside the session's transaction — a statement, or a result that could not be read after the
// server executed it — leaves the session pending rollback, so a write the caller was told
// failed is never committed: the request that planned the failing statement (a Flush or Commit
// whose flush it was) gets the error, the requests after it ErrPendingRollback. Should a read
// travelling in the same pipeline as a COMMIT fail to store its row, the Commit's error matches
// ErrCommitted: the transaction was committed. A request that never reached the server (no connection within
// pool_timeout; on PostgreSQL, a statement refused at prepare time before the session's
// transaction began) changes nothing: no failed transaction, and the changes its flush carried
// are sent by the next one. Arguments are checked before
// anything is sent (an *asyncengine.ArgumentError), and a request carries one statement.
//
// An object belongs to one session at a time. A session claims an object when it is added (or
// given to Upsert), and an object reached through a relationship when a flush reaches it; Add,
// Upsert, Merge and a flush refuse an object another open session has claimed, with
// ErrOtherSession, before reading or writing it (a refused flush sends nothing and leaves what it
// had reached). Expunge, ExpungeAll and Close let objects go, as
// does a session dropped without Close once it is collected. Objects a session loaded are not
// claimed: close that session and Merge one to carry it into another. Claims are by address: a
// struct and its first field, both mapped and both added, are two objects of the session, and
// another session is refused either while the first holds one of them.
//
// Expunge and Delete do not cascade along relationships, and a relationship that still refers to
// an expunged or deleted object, unchanged since the last flush, does not bring it back: Delete
// wins over a loaded collection that still holds the object. An object inserted in a transaction
// that rolls back leaves the session, and a collection still holding it inserts it again.
//
// A nil object (Add, Delete, Merge, Refresh, an element of Upsert or InsertMany) fails with
// ErrNilObject; every call after Close but Close itself fails with ErrSessionClosed, and a
// failing option such as Isolation("bogus") is reported by every call. A Scan method that panics
// as a request's results are stored fails that request with an *asyncengine.PanicError, as a
// value that does not fit would: the pipeline was read to its end, so the connection stays, an
// open transaction is pending rollback, and a COMMIT that travelled in the same pipeline ran
// (Commit's error matches ErrCommitted). Any other panic on the session's goroutine (a
// panicking InsertSeq sequence) fails the requests it was serving with an
// *asyncengine.PanicError; the session's connections are discarded and, if a transaction was
// open, the session is pending rollback.
//
// A request's context governs only itself: requests that travel in one pipeline send it under a
// context that ends only when all of theirs have (one that never ends keeps it going).
//
// # Identity map and unit of work
//
// The session holds one object per primary key. Get of a loaded key returns the same pointer
// without SQL; rows of Select and Execute-free loaders are merged into the map, returning the
// loaded object for a known key. At flush, INSERTs go parents first by the foreign-key graph,
// whatever order the objects were added in (rows of one table in one INSERT … RETURNING the key
// and the columns the INSERT leaves to the server: generated keys and server defaults; a column
// it sent is not read back, so what a trigger stores there shows when the object reloads);
// UPDATEs set only the columns that changed
// since load, by comparing a snapshot, and nothing is sent for unchanged objects; DELETEs go
// children first. Each UPDATE checks, as it runs, that it matched the object's row and no other:
// one whose row another transaction deleted (or whose key it changed) since the object was loaded
// fails with ErrStaleObject, and nothing of the transaction commits — on PostgreSQL the check
// is part of the statement (WITH u AS (UPDATE … RETURNING 1) SELECT … FROM u), so a COMMIT in
// the same pipeline commits nothing; on SQLite the COMMIT waits until the UPDATE's rows are
// counted. (A table whose UPDATE a DO INSTEAD rule rewrites needs the rule to have a RETURNING
// clause.) A DELETE of a row already gone is not an error: the row is gone, as asked. A row
// another transaction only updated still matches (there is no version column: use REPEATABLE
// READ or FOR UPDATE to be told of it). A flush sends the UPDATEs that set no foreign key to a
// value, then its INSERTs, then the other UPDATEs (which may point at the new rows), then its
// DELETEs: a unique value an UPDATE frees (a renamed key, a replaced one-to-one's old child set
// NULL) is taken by an INSERT of the same flush, but a key a DELETE frees is taken in a later
// flush only (delete, Flush, then add the row that takes it). On
// PostgreSQL, with statement descriptions (statement_cache prepare, describe or describe_exec),
// the objects of one model whose changes touch the same columns, and not their key, go as one
// statement (UPDATE t AS r SET a = v.c1 FROM unnest($1::…[], $2::bigint[]) AS v(c1,
// c2) WHERE r.id = v.c2), typed and guarded as a batch INSERT is (below), which fails with
// ErrStaleObject unless it matched every row (its message names up to ten keys that matched
// none: "no row for key 7, 9"; a key of several columns as a row, "(a,1)"); the first flush that updates a table whose column
// types the engine has not read sends one UPDATE per object and reads them in the same pipeline.
//
// On PostgreSQL the rows of such an INSERT travel as one array per column (INSERT … SELECT FROM
// unnest($1::bigint[], $2::text[], …)): one statement, prepared once, for any number of rows, and
// two parameters for the server to plan instead of one per value. The arrays take the table's own
// column types, read from the catalog once per engine and table (the first batch into a table
// costs one round trip more), so that every value is stored as it would be alone: strings travel
// as text and are read by the column's type, other values are encoded by the driver for the
// column's type. Array and composite columns, non-string values for a type the database defines,
// interface-typed fields, SQLite and statement_cache=none or simple keep the multi-row VALUES.
// The returned rows are matched to the objects in order, as with VALUES. A batch of more than
// 1 000 rows whose keys no other row of the flush waits for goes as several INSERTs of 1 000 in
// the same pipeline, and each one's keys and snapshots are stored as its rows are read, while the
// server writes the next ones (a flush stopped by a later failure is then rolled back as any
// failed flush: what was stored is forgotten with it). Each batch checks, as
// it runs, that the column types it writes are still those read, as the INSERT itself sees them
// (a REPEATABLE READ transaction whose snapshot predates the change included), and that the
// table still cannot skip rows, see above: after an ALTER TABLE … TYPE or a CREATE TRIGGER it
// writes nothing and fails
// with ErrTableChanged (the transaction is then rolled back), and a
// batch that fails makes the next one read the table's types again, so such a change fails one
// batch, not more, and never stores a value typed for the old column. Statements prepared before
// such a migration (the multi-row VALUES and every other prepared statement) keep the parameter
// types they were prepared with, as prepared statements do: after changing a column's type under
// a running program, start its connections afresh (Engine.Dispose).
//
// Autoflush runs before Execute, Select, the query builder's terminals, Load and LoadAll, Upsert,
// and the calls that take the connection (RunSync, Stream, InsertMany, InsertSeq). Go cannot observe a field write, so a
// modified object is found by comparing it with its snapshot; to keep that cheap in a large
// session, an autoflush compares only the objects of the tables its statement names (any word of
// the statement counts, case-insensitively, so a named table is never missed), and each table
// keeps its objects' bytes as last loaded or flushed side by side, so that an unchanged object
// costs a memory comparison. A statement that reads a table only through a view or a function
// does not name it: call Flush first. Flush, Commit, RunSync and savepoints compare every
// object. A Get that misses the map flushes pending inserts and deletes only. NoAutoflush(ctx)
// turns autoflush off for the requests made with that context, like SQLAlchemy's no_autoflush.
// An autoflush compares an object's own bytes only: a change made through a pointer, slice or
// map field (*obj.Email = "x", obj.Tags[0] = "y") leaves them as they were and is sent by the
// next Flush, Commit, RunSync or savepoint, which compare those fields by content. Before a
// query that must see such a change, assign a new value (obj.Email = &x) or call Flush.
//
// Select loads whole objects: a query that leaves out a mapped column, or returns a column no
// field maps, fails with a *MappingError (read partial rows with Execute). A Select (or a From
// query) is all or nothing: when one row cannot be read, no object of the identity map is
// changed by the others. Upsert writes every
// mapped column except server-default (`default`) ones left at their zero value: Go cannot tell
// a field never set from one set to zero, so a zero field without `default` overwrites its
// column. It groups its objects by those columns — a server-filled key left at zero is inserted
// by the server, a set one updates its row — and returns them in the order given. Merge copies
// the same fields onto the loaded object: a `default` field left at zero keeps the loaded value.
// It merges the objects the given one reaches through its relationship fields too (a set *T, a
// non-nil []*T), with the same requests, and points the merged objects' relationship fields at
// one another; it adds members to a collection and never removes one (see Merge).
//
// A failed flush — any failed statement of the transaction — leaves the session in
// pending-rollback state: every request but Rollback (or a savepoint's Rollback) returns
// ErrPendingRollback. Rollback expunges the objects added in the transaction, restores deleted
// ones — also those whose DELETE was flushed, back in the session and expired — and expires the
// rest; an object whose primary key a flushed UPDATE changed gets its old key back, in its fields
// and in the identity map, as its row has it again. Flushed DELETEs and key changes are undone in
// the reverse order of their flushes, so that a key moved through others, or into a deleted
// object's key, comes back in turn (a savepoint's Rollback undoes those since it). What flushes
// of the transaction wrote is discarded with it: the reload reads the rows back. A flush that
// failed — a statement of it, in any of its stages, on any of the session's engines, or the
// storing of its results or of the request it flushed for — leaves its objects as it found them
// (the keys and defaults the server filled in are taken back, those the caller gave kept): a field change it carried
// is still a change, which the reload keeps and the next flush sends again (change it back, or
// Refresh the object, to drop it). A flush that travelled with a COMMIT the server ran is
// committed, and applied as such, whatever else in its pipeline failed (a partial commit over
// several engines included); a request queued after that COMMIT runs in the next transaction,
// which the failure leaves pending rollback.
// An expunged object keeps the fields its flush filled (a generated key, a foreign key
// copied from its parent), although the rows are gone: to save the same data again, add fresh
// objects, or zero those fields first (a server-filled key given a value is written as given).
//
// # Relationships and loading
//
// A field tagged `rel` holds related objects instead of a column: a *T for one object, a []*T for
// a collection. Its options: fk=column names the foreign key, found on whichever side references
// the other (on the owner: many-to-one; on the target: one-to-one, or one-to-many for a []*T);
// through=table with ref=column makes a many-to-many, fk and ref being the association table's
// columns referencing the owner and the target (declared on both models, fk and ref swapped, the
// two sides are one link: a link made or removed from either side is one row, and the other
// side's loaded collection follows); order=col[ desc][|col] orders a collection;
// cascade=delete or cascade=delete-orphan (which includes delete); load=lazy|selectin|joined sets
// the default strategy.
//
//	type Author struct {
//		ID    int64   `db:"id,pk,default"`
//		Books []*Book `rel:"fk=author_id,order=title,cascade=delete-orphan"`
//	}
//	type Book struct {
//		ID       int64   `db:"id,pk,default"`
//		AuthorID int64   `db:"author_id,fk=authors.id"`
//		Author   *Author `rel:"fk=author_id"`
//		Tags     []*Tag  `rel:"through=book_tags,fk=book_id,ref=tag_id"`
//	}
//
// Relationships are resolved at a model's first use (Add, Get, From, …): an unknown option, a
// field that is neither *T nor []*T, an fk that is not a column referencing the other side's key,
// a delete-orphan on something else than a collection or a one-to-one is a *MappingError naming the fix, returned
// before anything is sent. Relationships join on a single-column primary key.
//
// At flush, objects reachable from added ones are added (save-update cascade); a child receives its
// parent's key, generated or not; a book appended to author.Books and a book whose Author is set
// mean the same thing, and the loaded collections and back-references follow (a many-to-one the
// application reassigned wins over the collection the object was in, whichever of the two the
// flush meets first; one set to nil takes the object out of its parent's loaded collection, or
// its parent's one-to-one, as a removal from it does: its key set NULL, or the object deleted
// when the relationship deletes orphans (a *T never loaded reads nil, so setting it to nil
// changes nothing: set the key column to nil, or load the relationship first); an object in one parent's
// collection whose many-to-one, never synced by the session, names another parent is
// ErrConflictingParent at flush, nothing written and no field changed; so is an object in the
// collections of two parents, when it has the many-to-one back — without one, the last collection
// walked wins: to move a child between two loaded collections, set its many-to-one, or remove it
// from the old collection as well). A one-to-one's child that declares the many-to-one back (Profile.Author beside
// Author.Profile) points at its parent once the one-to-one is flushed or loaded, by any strategy,
// as a loaded collection's members do; pointed at another parent whose one-to-one is loaded, it
// replaces the child that parent held (NULL, or deleted as an orphan), and its old parent lets
// go of it. Two children swapped between parents under a unique key fail with the database's
// unique violation: set one to nil and flush, then set the other. A foreign key the application sets by its column (book.AuthorID = 7, or nil)
// wins over loaded relationships that still join the object to its old parent: the column is
// written, the old parent's loaded collection lets the child go — neither the NULL nor the
// delete-orphan that a removal from it writes — and when the session holds the parent the column
// names, the child joins its loaded collection and the many-to-one points at it; otherwise the
// many-to-one is left to load again (nil, and Related says ErrNotLoaded). A relationship the
// application changed in the same flush (the child appended to another loaded collection, or its
// *T set) wins over the column. A one-to-one child
// moved to another parent (x.Passport = y.Passport; y.Passport = nil) goes to it, whatever the
// order the walk meets them; left in both, it is ErrConflictingParent. A child whose parent's key the server generates takes it in the same pipeline on
// PostgreSQL: the parents' batch INSERT leaves its keys, in the order of its rows, in a setting
// local to the transaction (gosqla.keys_1, _2, …; at most 32 batches of a flush do), and the
// children's batch sends each one's parent's position among them, which the server turns into the
// key — saving authors with their books, and their books' chapters, is one round trip (BEGIN, the
// INSERTs parents first, COMMIT), and the objects hold the keys after it. A Flush or Commit of
// many new objects of one model (more than 200 added, with what they reach) in a session that
// holds nothing else goes by parts on PostgreSQL: the pipeline leaves as soon as the first 100
// and their graphs are planned, and takes each next part (twice as many as the one before) as
// the session plans it, while the server writes the parts before — the same statements, one
// round trip and one transaction, with the server at work from the first part on instead of
// waiting for the whole plan. A graph goes by parts only where the parts cannot depend on each
// other: from the model added, one-to-many and one-to-one relationships reach every model once
// (a tree; a many-to-one only back to the parent it was reached from), no many-to-many, and no
// column refers to a table of the tree but the key the parent fills; anything else is planned
// whole, as is every flush on SQLite, the first flush into a table (its column types are read
// first), and a flush whose first part needs a later stage (see below: the rest then follows in
// stages, planned whole). An object reached from added objects of two parts (a book
// in the collections of two new authors, with no many-to-one back to say which) fails the flush
// with ErrConflictingParent, where a flush planned whole lets the last collection walked win.
// A failure in a later part — a statement the server refuses, or a part that cannot be planned
// (that ErrConflictingParent, a nil element) — fails the flush as a failure anywhere in its
// pipeline does, once the parts before it are read: the session needs Rollback, the transaction
// rolls back with those parts, and their objects get back what the parts stored in them. (A
// flush planned whole refuses such a mistake before sending anything, and needs no Rollback.)
// Objects added by another goroutine while a flush goes by parts wait for the next flush. Association rows of a
// many-to-many whose keys the flush generates go in the same pipeline (one INSERT per
// relationship, after the batches whose keys they take). No INSERT of a flush on PostgreSQL
// writes fewer rows than it was sent without failing: one into a table that can skip rows (a
// BEFORE INSERT row trigger, which may return NULL, a rule, a view, a partitioned or foreign
// table) counts them as it runs, and one that did not write them all (a trigger that skipped a
// row) fails with its transaction before anything after it runs, so that a COMMIT in the same
// pipeline commits nothing, and the flush's error names the count (on SQLite the COMMIT waits
// until the rows are counted). A batch into a plain table without such a trigger checks instead,
// with its column types, that none was created since the engine read the table (ErrTableChanged,
// below). The catalog a REPEATABLE READ or SERIALIZABLE transaction reads is its snapshot's, which
// may predate a trigger created before the INSERT took its lock: in such a transaction every
// batch counts its rows — the session's Isolation says so, or the engine learns it from the
// transaction it read the table in (a database whose default level is above READ COMMITTED);
// a transaction raised above it behind the session's back (SET TRANSACTION) fails its batch with
// ErrTableChanged, and the next batch counts. The rest waits for the parents' keys in a later stage of the flush, a round trip each: on SQLite,
// rows of the parents' own table (self-referential rows, one stage per level), a foreign key of
// another type than the key it names, a key that is not an integer or uuid, and the tables whose
// column types the engine has not read yet (the first flush into a table reads them). Rows whose
// keys form a cycle go in with one nullable key NULL and get it by an UPDATE in the next stage. A cycle with no nullable key is a *MappingError: between models
// whose relationships declare the keys (A's key references B, B's references A) at the first use of
// either, naming the keys; between rows of one model (x's parent is y, y's is x) at the flush that
// meets it. A key tagged fk= with no relationship over it is the database's to enforce. Removing a
// child from a loaded collection, or replacing or clearing a loaded one-to-one, sets the old
// child's key NULL (a non-nullable key is a *MappingError asking for a pointer or
// delete-orphan), or deletes it with cascade=delete-orphan. Deleting a parent
// deletes its loaded children with cascade=delete (those never loaded with one DELETE by key, after
// their association rows and, level by level, their own children under cascade=delete), removes its
// association rows, and otherwise sets its loaded children's key NULL; children never loaded
// without cascade=delete are the database's to handle (ON DELETE in the schema), or its foreign key
// refuses the delete. An autoflush before a read checks relationship fields by their header
// (pointer, length); Flush and Commit walk every collection element.
//
// Loading: a relationship is never read silently as empty. Related[T](s, obj, "Books") returns
// the field, or an error matching ErrNotLoaded. Load(ctx, s, obj, "Books") is a future: loads
// issued together, for many objects, travel as one pipeline, so the N+1 pattern costs one round
// trip. LoadAll(ctx, s, objs, "Books") loads all with one query (= ANY($1) on PostgreSQL, an IN
// list on SQLite). A loaded relationship is not loaded again; objects stay loaded after an
// expiry, their relationships as they were. Reload and ReloadAll read one again (every step of a
// path), after the autoflush, with what other transactions committed since; the objects already
// in the session keep their state (Refresh reads an object's columns again).
//
// A collection of a loaded object that was never loaded may still be added to (author.Books =
// append(author.Books, book)): the flush writes what was added — the book's key, an association
// row — and removes nothing, since the session does not know the other rows. The collection then
// holds only what was added, so it still reads as not loaded: Related returns ErrNotLoaded, and a
// Load reads it whole, the added objects among the rows. An object added but not flushed yet (a
// load under NoAutoflush) stays in the collection after the loaded rows, and the next flush
// writes it. Deleting the parent deletes the added children and, with cascade=delete, the rows
// never loaded with one DELETE by key. Assigning a *T relationship sets it whole.
//
// The name may be a path of relationships joined by dots: LoadAll(ctx, s, authors, "Books.Tags")
// loads the authors' books, then the tags of all those books with one more query — one query per
// step for all the objects of the step above, each of them once: a tag of many books is one
// object, and its key is sent once by a step below it. A step loaded already is not loaded
// again, and the steps below it still load for its objects. A step needs the keys the step above
// it loaded: a path of d steps takes d round trips, whatever the number of objects; Load futures
// for many objects issued together send each step as one pipeline. A step naming no relationship
// of its model, or an empty step ("Books..Tags"), is a *MappingError naming the model and the
// step, returned before anything is sent.
//
// # Queries
//
// From[T](s) builds a SELECT of whole objects: Where("title LIKE :p", asyncengine.Named{…}) takes
// SQL with :named values (a slice after IN expands; a name bound again by a later Where must keep
// its value); Filter(column, value) is column = value, IS NULL for nil (a nil pointer, a NULL
// sql.Null*), and for a slice = ANY of one array on PostgreSQL (any length) or IN elsewhere (an
// empty slice matches nothing); Join("Author") joins along a relationship, named by the relationship in snake
// case in conditions ("author.name", or Filter("Author.name", …)); OrderBy("title DESC"), Limit,
// Offset, ForUpdate and SkipLocked (PostgreSQL). A join along a collection (Join("Tags")) repeats
// an object once per member it joins, so such a query selects its objects by key (WHERE id IN
// (SELECT id FROM … JOIN … WHERE …)): All, Limit, Offset, Count and Exists count objects alike,
// Scalars reads a value per joined row, OrderBy a column of a *T relationship joined too works,
// and OrderBy a column of the collection is a *MappingError. Terminal calls return futures: All,
// First, One (ErrNoRows, ErrMultipleRows), OneOrNone, Count, Exists, Scalars[V](ctx, q, column),
// and Stream (whole objects, outside the identity map; no relationship loads). Count and Exists
// answer for the objects All would return: within Limit, after Offset, without the rows
// SkipLocked skips (they lock what they find, as All does).
// The methods change the query they are called on and return it (as GORM's do, unlike
// SQLAlchemy's select): Clone a base query before two branches extend it. String shows the SQL
// and arguments that will be sent. A column the model does not map, or an
// unknown relationship, fails before anything is sent.
//
// The strategies apply to the builder's objects: SelectIn (the default for collections) adds one
// query per relationship for all the objects, the queries of all relationships travelling
// together right after the main one; Joined (for a *T) loads it in the same query with a LEFT
// OUTER JOIN, each key merged once into the identity map; Lazy leaves it to Load. Query.Load
// overrides the default per query. An object read again (expired after Commit, or Refresh)
// whose foreign key another transaction changed lets go of the loaded many-to-one that no longer
// matches it, to load again. A relationship the session holds loaded already, or that the
// application set since the last flush, is left as it is by every strategy (a query does not put
// back the parent an unflushed change replaced). A foreign key matches the key it references
// whatever Go types hold the two: a sql.NullInt64 or *int32 column finds an int64 key, a string
// a `type Sku string` key. Get and Select with hand-written SQL load no relationship.
//
// Query.Load takes paths too: From[Author](s).Load("Books.Tags", SelectIn) loads each author's
// books, then every book's tags. The strategy given is the last step's; a step before it loads as
// a Load of its own path says, else by its default, and SelectIn when that is Lazy, since the path
// goes through it. The defaults apply to T's relationships only: below them, only the paths given
// load. A Joined step joins the query's own statement when the step above it is there too (T, or
// a Joined step): From[Book](s).Load("Author", Joined).Load("Author.Bio", Joined) is one statement
// with two LEFT OUTER JOINs, the second joined to the first. Below a SelectIn step, Joined loads SelectIn,
// with the next query, as a selectin query joins nothing. The SelectIn steps of one level travel
// together, each level one round trip after the one above: From[Author](s).Load("Books.Tags",
// SelectIn) takes three (authors, books, tags), for any number of authors. Joined on a collection
// at any step is a *MappingError, as is an unknown or empty step.
//
// # Expiry
//
// Go cannot intercept field reads, so expiry is translated: after Commit (with ExpireOnCommit,
// the default) and after Rollback, loaded objects are marked expired — IsExpired tells — and the
// next Get, Select or Refresh that touches one reloads it in place, keeping its pointer. Until
// then its fields hold what they held. A field changed on an expired object is not lost: the
// next flush compares it with the object's last loaded or flushed state and writes it, and a
// reload by Get or Select keeps it (Refresh discards it, as it discards any unflushed change).
//
// # Savepoints
//
// BeginNested flushes and starts a savepoint; its Commit releases it, its Rollback undoes the
// work since (expunging objects inserted since, restoring those deleted since) and clears a
// failure that happened inside it. Objects inserted before it — by its own flush too — stay.
//
// # Makers and scopes
//
// A Maker (sessionmaker) makes sessions with shared options: ExpireOnCommit, AutoFlush, Bind,
// Isolation.
// Maker.Begin runs a function with a session and commits on success, rolls back on an error or a
// panic; the rollback uses a short context of its own, since the caller's may be what failed.
// Maker.BeginRetry runs it again, on a new session, after a serialization failure, a
// deadlock or a connection lost before COMMIT (asyncengine.RetryPolicy). Go has no
// thread-locals: a request's context.Context is its scope. Maker.Scope returns a context carrying
// a new session and the function that removes it (closing the session); FromContext finds it;
// Maker.Middleware does this for every HTTP request.
//
// # Sync-style code, upserts and bulk loads
//
// Session.RunSync runs a function on one of the engine's workers with the session's own
// connection, inside its transaction, after a flush: its writes are visible to the session's later
// requests. The connection is the session's again only once the function has returned, even when
// the caller's context ended first. Upsert runs INSERT … ON CONFLICT … DO UPDATE … RETURNING and merges the rows into the
// identity map, overwriting loaded state. InsertMany and InsertSeq load rows in bulk outside the
// identity map: COPY on PostgreSQL, multi-row INSERTs sized to the parameter limit on SQLite;
// InsertSeq reads its sequence as it sends, so a million rows need the memory of one page. A nil
// element of InsertMany's slice is refused before anything is sent; one yielded by InsertSeq's
// sequence aborts the rows already sent and leaves the session pending rollback.
//
// # Types and streaming
//
// Mapped fields are read by the driver's own type system (the table in the asyncengine package
// documentation): a uuid key as [16]byte or string, numeric as pgtype.Numeric, string or float64,
// jsonb as json.RawMessage, a struct or a map, arrays as slices, inet as netip.Prefix, interval
// as time.Duration. A NULL into a field that cannot hold it, or a value out of its range, fails
// the request with a *ConvertError naming the column; the object is left as it was. A flush
// compares by content what a field refers to — one level down a pointer, a slice, a map or an
// interface, and a struct holding such as the value its Value method writes (a pgtype.Numeric
// whose *big.Int was set in place) or else as its JSON — so a change made in place is written;
// an autoflush before a query looks at the struct's own bytes only. CreateAll declares the
// matching column types, with the `unique`, `index` and (last) `type=` tag options.
//
// Stream[T] runs a query in the session's transaction (after an autoflush) and yields objects as
// the rows arrive, outside the identity map, so a large result is never held. Like Select, it
// refuses rows that leave out a mapped column (a *MappingError), so no object has zero fields
// the row did not fill. The session serves
// its other requests once the loop ends: the loop body must not wait for one of them.
//
// # Binds
//
// Bind routes a mapped type to another engine, groundwork for replicas and split databases. Each
// engine gets its own connection and transaction in the session; Commit commits them at once
// (not a two-phase commit: one may commit while another fails). Execute, RunSync and savepoints
// use the session's own engine.
//
// # Replicas
//
// New(rs.Primary(), Replicas(rs)) makes a session that routes each call over a ReplicaSet, as
// the set's own Query does:
//
//   - Reads — Get, Select, Load and LoadAll, Refresh, the query builder's terminals, an Execute
//     whose statement neither writes nor locks rows — go to one replica while the session's
//     transaction has written nothing. The session keeps that replica until it commits or rolls
//     back (its reads move only forward in time), and runs them outside any transaction: each
//     statement reads its own snapshot. A session whose Isolation is REPEATABLE READ or
//     SERIALIZABLE keeps every read in its transaction on the primary, where the server checks
//     its writes against its reads. At READ COMMITTED a value read to compute a write may be
//     older than the primary's: read it with WithPrimary, or lock it (ForUpdate), in the
//     transaction.
//   - A write (a flush, its autoflush included), a locking read (FOR UPDATE, FOR SHARE), a read
//     whose context comes from asyncengine.WithPrimary, RunSync, Stream and BeginNested go to the
//     primary, and open the session's transaction there: every call after them goes to the
//     primary, which holds the session's uncommitted writes, until Commit or Rollback.
//   - Read-your-writes: each Commit records the WAL position it reached (in its own pipeline, no
//     extra round trip), and the session's reads after it — also those queued before the
//     Commit's future is awaited — go to a replica that has replayed it, waiting up to
//     read_your_writes_wait, else to the primary, outside the transaction as on a replica, and
//     the next reads ask the set again. A read whose context carries an
//     asyncengine.ReadYourWrites waits for that position too, and a Commit with such a context
//     advances it; Session.ReadYourWrites is the session's own record, whose Token a service
//     hands to the client's next request.
//   - Failures: a read that fails on a replica fails alone — the session's transaction on the
//     primary is untouched, and reads pipelined after it are sent again. When the replica is gone
//     (a lost connection), the set takes it out of routing for replica_retry and the read is sent
//     once more, to another replica or by the set's fallback. Under replica_fallback=error with no
//     replica healthy, reads fail with asyncengine.ErrNoReplica.
//
// Without Replicas a session works on its one engine: a read-only session can run on
// rs.ReadEngine(ctx), and a writing session on rs.Primary() whose Commit carries a
// ReadYourWrites in its context advances it all the same.
//
// # Shards
//
// NewSharded makes a session over the engines of an asyncengine.ShardSet. A ShardChooser names
// the shard of each new object (Object), the shards that may hold a key (Key, for Get and Merge)
// and those a query runs on (Query, for Select); OnShard(ctx, names...) overrides them for one
// call. Objects reached by a relationship follow their owner's shard, and relationships load
// from it. The identity map knows objects by shard and key. A request on several shards runs on
// all of them at once, one pipeline each: a Get takes the first shard in the chooser's order that
// holds the row, a Select joins the shards' rows in shard order. Calls that run on one shard
// (Execute, the query builder, RunSync, Stream, Upsert, InsertMany, InsertSeq) need one shard
// chosen, else they fail with ErrOneShard; BeginNested is refused. Each shard has its own
// transaction and there is no atomicity across shards.
package asyncsession
