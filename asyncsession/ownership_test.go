package asyncsession_test

import (
	"runtime"
	"sync"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestObjectOfAnotherSession: an object one session holds is refused by another, which would
// insert it a second time; Expunge, Close and a session dropped without Close let it go.
func TestObjectOfAnotherSession(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		relSchema(t, e)
		a, b := newSession(t, e), newSession(t, e)

		w := &Writer{Name: "shared"}
		require.NoError(t, a.Add(w))
		err := b.Add(w)
		require.ErrorIs(t, err, asyncsession.ErrOtherSession)
		assert.Contains(t, err.Error(), "expunge it there")
		assert.False(t, b.Contains(w))
		require.NoError(t, a.Add(w), "adding it again to its own session does nothing")

		// reached through a relationship at the flush: the flush fails before it sends anything
		v := &Volume{Title: "held"}
		require.NoError(t, a.Add(v))
		require.NoError(t, b.Add(&Writer{Name: "other", Books: []*Volume{v}}))
		_, err = b.Commit(ctx).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrOtherSession)
		assert.False(t, b.Contains(v), "the refused object leaves the session that reached it")
		await(t, b.Rollback(ctx))
		assert.EqualValues(t, 0, count(t, e, "writers"))

		_, err = asyncsession.Upsert(ctx, b, []*Writer{w}).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrOtherSession)
		_, err = asyncsession.Merge(ctx, b, w).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrOtherSession, "Merge takes detached objects, not another session's")

		a.Expunge(v)
		require.NoError(t, b.Add(v), "an expunged object is free")
		await(t, a.Commit(ctx))
		assert.Equal(t, []string{"shared"}, writerNames(t, e))
		require.ErrorIs(t, b.Add(w), asyncsession.ErrOtherSession, "a committed object is still held")

		require.NoError(t, a.Close())
		require.NoError(t, b.Add(w), "a closed session holds nothing")
		assert.True(t, b.Contains(w))

		// a session dropped without Close: once collected, its objects are free
		x := &Writer{Name: "dropped"}
		func() {
			lost := asyncsession.New(e)
			require.NoError(t, lost.Add(x))
		}()
		var added error
		for range 10 {
			runtime.GC()
			if added = b.Add(x); added == nil {
				break
			}
		}
		require.NoError(t, added)
		await(t, b.Rollback(ctx))
	})
}

func writerNames(t *testing.T, e *asyncengine.Engine) []string {
	t.Helper()
	r, err := e.Query(enginetest.Context(t), "SELECT name FROM writers ORDER BY name")
	require.NoError(t, err)
	var names []string
	for i := range r.Len() {
		var n string
		require.NoError(t, r.ScanRow(i, &n))
		names = append(names, n)
	}
	return names
}

// TestObjectRaceBetweenSessions: sessions on many goroutines adding the same object: exactly one
// takes it.
func TestObjectRaceBetweenSessions(t *testing.T) {
	e := newEngine(t, "sqlite:///"+t.TempDir()+"/race.db")
	shared := &Writer{Name: "contended"}
	const n = 8
	errs := make(chan error, n)
	sessions := make([]*asyncsession.Session, n)
	for i := range sessions {
		sessions[i] = newSession(t, e)
	}
	var wg sync.WaitGroup
	for _, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if err := s.Add(&Writer{Name: "own"}); err != nil {
					errs <- err
					return
				}
			}
			errs <- s.Add(shared)
		}()
	}
	wg.Wait()
	close(errs)
	took := 0
	for err := range errs {
		if err == nil {
			took++
		} else {
			require.ErrorIs(t, err, asyncsession.ErrOtherSession)
		}
	}
	assert.Equal(t, 1, took)
}

// TestFlushesRaceForAnObject: two sessions' flushes reaching one new object through their
// parents at once: one claims it before reading or writing it, the other is refused before it
// touches it (the race detector watches), and one row is written.
func TestFlushesRaceForAnObject(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		relSchema(t, e)
		shared := &Volume{Title: "shared"}
		sessions := []*asyncsession.Session{newSession(t, e), newSession(t, e)}
		errs := make([]error, len(sessions))
		var wg sync.WaitGroup
		for i, s := range sessions {
			w := &Writer{Name: "writer", Books: []*Volume{shared}}
			require.NoError(t, s.Add(w))
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = s.Commit(ctx).Await(ctx)
			}()
		}
		wg.Wait()
		failures := 0
		for _, err := range errs {
			if err != nil {
				failures++
				require.ErrorIs(t, err, asyncsession.ErrOtherSession)
			}
		}
		assert.Equal(t, 1, failures)
		assert.EqualValues(t, 1, count(t, e, "volumes"))
	})
}

// TestAddOfALoadedObject: an object loaded by another session and added here is inserted again;
// the unique violation keeps the server's error and says to Merge.
func TestAddOfALoadedObject(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		relSchema(t, e)
		a := newSession(t, e)
		require.NoError(t, a.Add(&Writer{Name: "stored"}))
		await(t, a.Commit(ctx))
		loaded := await(t, asyncsession.From[Writer](a).First(ctx))
		require.NoError(t, a.Close())

		b := newSession(t, e)
		require.NoError(t, b.Add(loaded))
		_, err := b.Commit(ctx).Await(ctx)
		requireKeyTaken(t, e, err, "Merge it into this session")
		await(t, b.Rollback(ctx))
		merged := await(t, asyncsession.Merge(ctx, b, loaded))
		merged.Name = "renamed"
		await(t, b.Commit(ctx))
		assert.Equal(t, []string{"renamed"}, writerNames(t, e))
	})
}

// TestAddOfASavedObjectWithItsOwnKey: the same for keys the application sets, one column or
// several: the violation of the key says Add inserts, and to Merge or Upsert.
func TestAddOfASavedObjectWithItsOwnKey(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		require.NoError(t, asyncsession.CreateAll(ctx, e, Seat{}))
		a := newSession(t, e)
		seat := &Seat{Row: "a", Num: 1, Holder: "ann"}
		require.NoError(t, a.Add(seat))
		await(t, a.Commit(ctx))
		require.NoError(t, a.Close())

		b := newSession(t, e)
		require.NoError(t, b.Add(seat))
		_, err := b.Commit(ctx).Await(ctx)
		requireKeyTaken(t, e, err, "one of whose keys already has a row: Add inserts", "Merge it into this session", "Upsert it")
		await(t, b.Rollback(ctx))
	})
}

// requireKeyTaken checks that err is the server's violation of a primary key (its SQLSTATE
// reachable on PostgreSQL) with hints that say how it came about.
func requireKeyTaken(t *testing.T, e *asyncengine.Engine, err error, hints ...string) {
	t.Helper()
	require.Error(t, err)
	for _, h := range hints {
		assert.Contains(t, err.Error(), h)
	}
	if e.Dialect().Name() == "postgresql" {
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr)
		assert.Equal(t, "23505", pgErr.Code)
	}
}

// TestClaimsAcrossRollbackAndFailedWalks: a deleted object a rollback restores is still the
// session's; a walk refused part-way leaves the objects it had reached for others to take.
func TestClaimsAcrossRollbackAndFailedWalks(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		relSchema(t, e)
		a, b := newSession(t, e), newSession(t, e)
		w := &Writer{Name: "kept"}
		require.NoError(t, a.Add(w))
		await(t, a.Commit(ctx))
		require.NoError(t, a.Delete(w))
		await(t, a.Flush(ctx))
		await(t, a.Rollback(ctx))
		assert.True(t, a.Contains(w))
		require.ErrorIs(t, b.Add(w), asyncsession.ErrOtherSession, "restored by the rollback, still a's")

		held := &Volume{Title: "held", Writer: w}
		require.NoError(t, a.Add(held))
		reached := &Volume{Title: "reached first"}
		require.NoError(t, b.Add(&Writer{Name: "b", Books: []*Volume{reached, held}}))
		_, err := b.Flush(ctx).Await(ctx)
		require.ErrorIs(t, err, asyncsession.ErrOtherSession)
		assert.False(t, b.Contains(reached), "the failed walk leaves what it reached")
		require.NoError(t, a.Add(&Writer{Name: "a", Books: []*Volume{reached}}))
		await(t, a.Commit(ctx))
		await(t, b.Rollback(ctx))
	})
}

// An Upsert claims its objects while it runs, and lets go of those that do not become the
// session's: one whose key the session had loaded (the loaded object takes its row), and every
// one of a write that failed. Another session may then take them, as their pointers may be
// reused for new objects once the application drops them.
func TestUpsertLetsGoOfObjectsNotTaken(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		loaded := &Author{ID: 1, Name: "old"}
		require.NoError(t, s.Add(loaded))
		await(t, s.Flush(ctx))
		stale, fresh := &Author{ID: 1, Name: "new"}, &Author{ID: 2, Name: "two"}
		got := await(t, asyncsession.Upsert(ctx, s, []*Author{stale, fresh}))
		require.Same(t, loaded, got[0])
		require.Same(t, fresh, got[1])

		other := newSession(t, e)
		require.NoError(t, other.Add(stale), "the object whose row went to the loaded one is not the session's")
		require.ErrorIs(t, other.Add(fresh), asyncsession.ErrOtherSession, "the one it took is")

		// a write the server refuses (no unique constraint on name): its objects are let go of
		bad := &Author{ID: 3, Name: "three"}
		_, err := asyncsession.Upsert(ctx, s, []*Author{bad}, "name").Await(ctx)
		require.Error(t, err)
		require.NoError(t, other.Add(bad))
	})
}

// Pebble is a model of four bytes: the allocator packs such objects two to an 8-byte word.
type Pebble struct {
	ID int32 `db:"id,pk"`
}

// TestNeighbouringObjectsInTwoSessions: objects side by side in memory (one array's elements,
// of 48 and of 4 bytes) belong to different sessions without either refusing the other; each
// object is refused by the session that does not hold it until its holder lets it go.
func TestNeighbouringObjectsInTwoSessions(t *testing.T) {
	e := newEngine(t, "sqlite:///"+t.TempDir()+"/neighbours.db")
	a, b := newSession(t, e), newSession(t, e)
	var writers [64]Writer
	var pebbles [64]Pebble
	for i := range writers {
		s := a
		if i%2 == 1 {
			s = b
		}
		require.NoError(t, s.Add(&writers[i]), "writer %d", i)
		require.NoError(t, s.Add(&pebbles[i]), "pebble %d", i)
	}
	for i := range writers {
		other := b
		if i%2 == 1 {
			other = a
		}
		require.ErrorIs(t, other.Add(&writers[i]), asyncsession.ErrOtherSession, "writer %d", i)
		require.ErrorIs(t, other.Add(&pebbles[i]), asyncsession.ErrOtherSession, "pebble %d", i)
	}
	for i := 0; i < len(writers); i += 2 {
		a.Expunge(&writers[i])
		a.Expunge(&pebbles[i])
		require.NoError(t, b.Add(&writers[i]), "an expunged writer is free")
		require.NoError(t, b.Add(&pebbles[i]), "an expunged pebble is free")
	}
	b.ExpungeAll()
	require.NoError(t, a.Add(&writers[1]), "ExpungeAll lets go of everything")
	require.NoError(t, a.Add(&pebbles[1]))
	require.NoError(t, b.Add(&writers[3]), "the emptied session claims again")
	require.ErrorIs(t, b.Add(&writers[1]), asyncsession.ErrOtherSession)
	require.NoError(t, a.Close())
	require.NoError(t, b.Add(&writers[1]), "a closed session holds nothing")
	require.NoError(t, b.Add(&pebbles[1]))
}

// Ring is a model whose first field is another model's struct: a Ring and its Stone share an
// address.
type Ring struct {
	Stone Stone  `db:"-"`
	ID    int64  `db:"id,pk"`
	Metal string `db:"metal"`
}

func (Ring) TableName() string { return "rings" }

type Stone struct {
	ID   int64  `db:"id,pk"`
	Kind string `db:"kind"`
}

func (Stone) TableName() string { return "stones" }

// TestObjectsAtOneAddress: a struct and its first field, both mapped, are two objects of the
// session: each is added, written and expunged on its own. Another session is refused both
// while either is held (the registry knows objects by their address).
func TestObjectsAtOneAddress(t *testing.T) {
	e := newEngine(t, "sqlite:///"+t.TempDir()+"/rings.db")
	ctx := enginetest.Context(t)
	require.NoError(t, asyncsession.CreateAll(ctx, e, Ring{}, Stone{}))
	s := newSession(t, e)
	r := &Ring{ID: 1, Metal: "gold", Stone: Stone{ID: 7, Kind: "ruby"}}
	require.NoError(t, s.Add(r))
	assert.False(t, s.Contains(&r.Stone), "the ring is added, not its stone")
	require.NoError(t, s.Add(&r.Stone))
	assert.True(t, s.Contains(r))
	assert.True(t, s.Contains(&r.Stone))
	await(t, s.Commit(ctx))
	assert.EqualValues(t, 1, count(t, e, "rings"))
	assert.EqualValues(t, 1, count(t, e, "stones"))

	r.Metal, r.Stone.Kind = "silver", "opal"
	s.Expunge(r)
	assert.False(t, s.Contains(r))
	assert.True(t, s.Contains(&r.Stone), "expunging the ring keeps its stone")
	await(t, s.Commit(ctx))
	assert.EqualValues(t, 1, countWhere(t, e, "stones", "kind = 'opal'"))
	assert.EqualValues(t, 0, countWhere(t, e, "rings", "metal = 'silver'"), "an expunged object is not written")
	other := newSession(t, e)
	require.ErrorIs(t, other.Add(&r.Stone), asyncsession.ErrOtherSession, "the stone is still held")
	require.ErrorIs(t, other.Add(r), asyncsession.ErrOtherSession, "claims are by address: the ring shares the held stone's")
	s.Expunge(&r.Stone)
	require.NoError(t, other.Add(r), "once neither is held, another session takes them")
	require.NoError(t, other.Add(&r.Stone))

	// a first field of fewer than 8 bytes, kept apart by the registry, in either order
	for _, innerFirst := range []bool{false, true} {
		a, b := newSession(t, e), newSession(t, e)
		c := &Clasp{Key: 1, Pin: Pebble{ID: 3}}
		first, second := any(c), any(&c.Pin)
		if innerFirst {
			first, second = second, first
		}
		require.NoError(t, a.Add(first))
		require.ErrorIs(t, b.Add(second), asyncsession.ErrOtherSession, "inner first: %v", innerFirst)
		require.NoError(t, a.Add(second))
		a.Expunge(first)
		require.ErrorIs(t, b.Add(first), asyncsession.ErrOtherSession, "the other is still held")
		a.Expunge(second)
		require.NoError(t, b.Add(first), "once neither is held, another session takes them")
		require.NoError(t, b.Add(second))
	}
}

// Clasp's first field is a Pebble, a model of four bytes.
type Clasp struct {
	Pin Pebble `db:"-"`
	Key int64  `db:"key,pk"`
}

// Trio is a model of 12 bytes on a 4-byte boundary.
type Trio struct {
	ID   int32 `db:"id,pk"`
	A, B int32 `db:"-"`
}

// Bundle lays a Pebble and a Trio side by side: the Trio starts 4 bytes in, in the Pebble's
// 8-byte word.
type Bundle struct {
	P Pebble
	T Trio
}

// Holder's Trio starts 4 bytes in too, a field of another model.
type Holder struct {
	ID int32 `db:"id,pk"`
	In Trio  `db:"-"`
}

// TestObjectsSharingAWord: objects that share an 8-byte word without overlapping belong to
// different sessions; an object inside another, off its start, is claimed on its own.
func TestObjectsSharingAWord(t *testing.T) {
	e := newEngine(t, "sqlite:///"+t.TempDir()+"/words.db")
	a, b := newSession(t, e), newSession(t, e)
	var x Bundle
	require.NoError(t, a.Add(&x.T))
	require.NoError(t, b.Add(&x.P), "the Pebble is not the Trio")
	require.ErrorIs(t, b.Add(&x.T), asyncsession.ErrOtherSession)
	require.ErrorIs(t, a.Add(&x.P), asyncsession.ErrOtherSession)

	h := &Holder{ID: 1}
	require.NoError(t, a.Add(h))
	require.NoError(t, a.Add(&h.In))
	a.Expunge(h)
	require.ErrorIs(t, b.Add(&h.In), asyncsession.ErrOtherSession, "the Trio is still held")
	require.NoError(t, b.Add(h), "the Holder is not")
}

// TestObjectsAtOneAddressAcrossWrites: the struct and first field of TestObjectsAtOneAddress
// through an upsert and a flushed DELETE: each is let go of exactly when it leaves the session.
func TestObjectsAtOneAddressAcrossWrites(t *testing.T) {
	e := newEngine(t, "sqlite:///"+t.TempDir()+"/rings2.db")
	ctx := enginetest.Context(t)
	require.NoError(t, asyncsession.CreateAll(ctx, e, Ring{}, Stone{}))

	// the ring waits aside while its stone holds the address, then is upserted
	s, other := newSession(t, e), newSession(t, e)
	r := &Ring{ID: 1, Metal: "gold", Stone: Stone{ID: 7, Kind: "ruby"}}
	require.NoError(t, s.Add(&r.Stone))
	require.NoError(t, s.Add(r))
	s.Expunge(&r.Stone)
	_, err := asyncsession.Upsert(asyncsession.NoAutoflush(ctx), s, []*Ring{r}).Await(ctx)
	require.NoError(t, err)
	s.Expunge(r)
	assert.False(t, s.Contains(r))
	require.NoError(t, other.Add(r), "the expunged ring is free")
	await(t, s.Rollback(ctx))
	other.Expunge(r)

	// a stone whose DELETE is flushed keeps the claim the ring shared
	s2, other2 := newSession(t, e), newSession(t, e)
	r2 := &Ring{ID: 2, Metal: "tin", Stone: Stone{ID: 8, Kind: "jet"}}
	require.NoError(t, s2.Add(r2))
	require.NoError(t, s2.Add(&r2.Stone))
	await(t, s2.Commit(ctx))
	require.NoError(t, s2.Delete(&r2.Stone))
	await(t, s2.Flush(ctx))
	s2.Expunge(r2)
	require.ErrorIs(t, other2.Add(&r2.Stone), asyncsession.ErrOtherSession, "its DELETE is not committed")
	await(t, s2.Rollback(ctx))
	assert.True(t, s2.Contains(&r2.Stone))
	assert.False(t, other2.Contains(&r2.Stone))
}
