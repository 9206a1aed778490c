package asyncsession_test

import (
	"context"
	"fmt"
	"iter"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// shardSet makes two shards, "east" and "west", each a database of its own with the relationship
// schema, on backend.
func shardSet(t *testing.T, backend string) (*asyncengine.ShardSet, map[string]*asyncengine.Engine) {
	t.Helper()
	engines := map[string]*asyncengine.Engine{}
	for _, name := range []string{"east", "west"} {
		e, err := asyncengine.New(enginetest.BackendURL(t, backend))
		require.NoError(t, err)
		relSchema(t, e)
		engines[name] = e
	}
	set, err := asyncengine.NewShardSet(engines)
	require.NoError(t, err)
	t.Cleanup(func() { set.Close() })
	return set, engines
}

// byName puts writers whose name starts before "N" on east, the others on west.
var byName = asyncsession.ShardChooser{
	Object: func(obj any) (string, error) {
		w, ok := obj.(*Writer)
		if !ok {
			return "", fmt.Errorf("no shard rule for %T", obj)
		}
		if strings.ToUpper(w.Name) < "N" {
			return "east", nil
		}
		return "west", nil
	},
}

// errOf is the error a future completes with.
func errOf[T any](f *asyncengine.Future[T]) error {
	_, err := f.Await(context.Background())
	return err
}

// streamErr is the first error a stream yields.
func streamErr[T any](seq iter.Seq2[T, error]) error {
	for _, err := range seq {
		if err != nil {
			return err
		}
	}
	return nil
}

func names(ws []*Writer) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.Name
	}
	return out
}

func TestShardedSession(t *testing.T) {
	for _, backend := range []string{"pgx", "sqlite"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			ctx := enginetest.Context(t)
			set, engines := shardSet(t, backend)
			s := asyncsession.NewSharded(set, byName)
			defer s.Close()

			// new objects go where the chooser says, their children along
			ann := &Writer{Name: "Ann", Books: []*Volume{{Title: "A1"}, {Title: "A2"}}}
			zed := &Writer{Name: "Zed", Books: []*Volume{{Title: "Z1"}}}
			require.NoError(t, s.Add(ann, zed))
			await(t, s.Commit(ctx))
			for shard, want := range map[string][2]int64{"east": {1, 2}, "west": {1, 1}} {
				assert.Equal(t, want[0], count(t, engines[shard], "writers"), shard)
				assert.Equal(t, want[1], count(t, engines[shard], "volumes"), shard)
			}
			// each shard generated key 1: the two writers are two objects, known by shard
			require.Equal(t, ann.ID, zed.ID)
			shard, ok := s.ShardOf(ann.Books[0])
			require.True(t, ok)
			require.Equal(t, "east", shard)

			s2 := asyncsession.NewSharded(set, byName)
			defer s2.Close()
			// without a Key chooser a Get searches every shard, in order: east holds key 1 first
			w := await(t, asyncsession.Get[Writer](ctx, s2, ann.ID))
			require.Equal(t, "Ann", w.Name)
			w = await(t, asyncsession.Get[Writer](asyncsession.OnShard(ctx, "west"), s2, zed.ID))
			require.Equal(t, "Zed", w.Name)
			require.Nil(t, await(t, asyncsession.Get[Writer](ctx, s2, int64(99))))

			// a Select runs on every shard and joins their rows in shard order
			all := await(t, asyncsession.Select[Writer](ctx, s2, "SELECT * FROM writers ORDER BY name"))
			require.Equal(t, []string{"Ann", "Zed"}, names(all))
			require.Same(t, w, all[1], "the identity map knows Zed by shard and key")
			// a relationship loads from its owner's shard
			await(t, asyncsession.LoadAll(ctx, s2, all, "Books"))
			require.Len(t, all[0].Books, 2)
			require.Equal(t, "Z1", all[1].Books[0].Title)

			// changes and deletes go to the object's shard
			all[1].Name = "Zoe"
			require.NoError(t, s2.Delete(all[0].Books[0]))
			all[0].Books = all[0].Books[1:]
			await(t, s2.Commit(ctx))
			r, err := engines["west"].Query(ctx, "SELECT name FROM writers")
			require.NoError(t, err)
			var name string
			require.NoError(t, r.One(&name))
			require.Equal(t, "Zoe", name)
			assert.Equal(t, int64(1), count(t, engines["east"], "volumes"))
			assert.Equal(t, int64(1), count(t, engines["west"], "volumes"))

			// a Key chooser narrows a Get; a Query chooser a Select
			keyed := byName
			keyed.Key = func(model reflect.Type, pk any) ([]string, error) {
				require.Equal(t, reflect.TypeFor[Writer](), model)
				return []string{"west"}, nil
			}
			keyed.Query = func(model reflect.Type, sql string, args []any) ([]string, error) {
				return []string{"east"}, nil
			}
			s3 := asyncsession.NewSharded(set, keyed)
			defer s3.Close()
			require.Equal(t, "Zoe", await(t, asyncsession.Get[Writer](ctx, s3, int64(1))).Name)
			require.Equal(t, []string{"Ann"}, names(await(t, asyncsession.Select[Writer](ctx, s3, "SELECT * FROM writers"))))
			// with one shard chosen, calls that run on one shard run there
			res := await(t, s3.Execute(ctx, "SELECT count(*) FROM volumes"))
			var n int64
			require.NoError(t, res.One(&n))
			require.Equal(t, int64(1), n)
			got := await(t, asyncsession.From[Writer](s3).All(ctx))
			require.Equal(t, []string{"Ann"}, names(got))
		})
	}
}

// Misuse of a sharded session is an error that says what to change, and nothing is written.
func TestShardedSessionMisuse(t *testing.T) {
	t.Parallel()
	ctx := enginetest.Context(t)
	set, engines := shardSet(t, "pgx")

	bad := asyncsession.ShardChooser{Object: func(any) (string, error) { return "north", nil }}
	s := asyncsession.NewSharded(set, bad)
	defer s.Close()
	ann := &Writer{Name: "Ann"}
	err := s.Add(ann)
	require.ErrorIs(t, err, asyncengine.ErrUnknownShard)
	require.ErrorContains(t, err, `"north" (the set holds: east, west)`)
	require.False(t, s.Contains(ann), "refused: not added")

	// a session on no set fails every call with its configuration error
	none := asyncsession.NewSharded(nil, byName)
	defer none.Close()
	writers := []*Writer{{Name: "Al"}}
	for what, err := range map[string]error{
		"Get":        errOf(asyncsession.Get[Writer](ctx, none, 1)),
		"Select":     errOf(asyncsession.Select[Writer](ctx, none, "SELECT * FROM writers")),
		"Execute":    errOf(none.Execute(ctx, "SELECT 1")),
		"builder":    errOf(asyncsession.From[Writer](none).All(ctx)),
		"Upsert":     errOf(asyncsession.Upsert(ctx, none, writers)),
		"InsertMany": errOf(asyncsession.InsertMany(ctx, none, writers)),
		"RunSync":    errOf(none.RunSync(ctx, func(context.Context, *asyncengine.Conn) error { return nil })),
		"Stream":     streamErr(asyncsession.Stream[Writer](ctx, none, "SELECT * FROM writers")),
		"Add":        none.Add(&Writer{Name: "Bo"}),
	} {
		require.ErrorIs(t, err, asyncengine.ErrInvalidConfig, what)
	}

	panicky := asyncsession.ShardChooser{Object: func(any) (string, error) { panic("chooser bug") }}
	s = asyncsession.NewSharded(set, panicky)
	defer s.Close()
	var pe *asyncengine.PanicError
	require.ErrorAs(t, s.Add(&Writer{Name: "Ann"}), &pe)

	s = asyncsession.NewSharded(set, asyncsession.ShardChooser{}) // reads only
	defer s.Close()
	w, err := asyncsession.Get[Writer](ctx, s, 1).Await(ctx)
	require.NoError(t, err)
	require.Nil(t, w)
	err = s.Add(&Writer{Name: "Ann"})
	require.ErrorIs(t, err, asyncengine.ErrInvalidConfig)
	require.ErrorContains(t, err, "no Object function")

	s = asyncsession.NewSharded(set, byName)
	defer s.Close()
	// calls that run on one shard need one
	_, err = s.Execute(ctx, "SELECT 1").Await(ctx)
	require.ErrorIs(t, err, asyncsession.ErrOneShard)
	require.ErrorContains(t, err, "OnShard")
	_, err = asyncsession.From[Writer](s).All(ctx).Await(ctx)
	require.ErrorIs(t, err, asyncsession.ErrOneShard)
	_, err = asyncsession.InsertMany(ctx, s, []*Writer{{Name: "Al"}, {Name: "Xu"}}).Await(ctx)
	require.ErrorIs(t, err, asyncsession.ErrOneShard, "the objects name two shards")
	require.ErrorContains(t, err, "[east west]")
	_, err = s.BeginNested(ctx).Await(ctx)
	require.ErrorContains(t, err, "sharded session")
	_, err = asyncsession.Get[Writer](asyncsession.OnShard(ctx, "south"), s, 1).Await(ctx)
	require.ErrorIs(t, err, asyncengine.ErrUnknownShard)
	n, err := asyncsession.InsertMany(asyncsession.OnShard(ctx, "west"), s, []*Writer{{Name: "Bo"}}).Await(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	n, err = asyncsession.InsertMany(ctx, s, []*Writer{{Name: "Xu"}}).Await(ctx) // Object names west
	require.NoError(t, err)
	require.Equal(t, int64(1), n)

	// a relationship cannot join objects of two shards
	ann = &Writer{Name: "Ann"}
	zed := &Writer{Name: "Zed"}
	require.NoError(t, s.Add(ann, zed))
	await(t, s.Commit(ctx))
	zed.Books = []*Volume{{Title: "Z"}}
	ann.Books = zed.Books
	_, err = s.Commit(ctx).Await(ctx)
	require.ErrorIs(t, err, asyncsession.ErrCrossShard)
	_, err = s.Rollback(ctx).Await(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(0), count(t, engines["east"], "volumes"))
	assert.Equal(t, int64(0), count(t, engines["west"], "volumes"))
	assert.Equal(t, int64(3), count(t, engines["west"], "writers"), "Bo, Xu and Zed")
}

// A request on several shards runs on all of them at once: both shards' statements are seen
// waiting on a lock at the same time, which a shard-after-shard send never shows.
func TestShardedSessionRunsShardsAtOnce(t *testing.T) {
	t.Parallel()
	ctx := enginetest.Context(t)
	set, engines := shardSet(t, "pgx")
	var dbs []string
	for _, name := range []string{"east", "west"} {
		_, err := engines[name].Exec(ctx, "INSERT INTO writers (name) VALUES ('w')")
		require.NoError(t, err)
		r, err := engines[name].Query(ctx, "SELECT current_database()")
		require.NoError(t, err)
		var db string
		require.NoError(t, r.One(&db))
		dbs = append(dbs, db)
	}
	// another transaction on each shard holds the row the session's query locks
	var holders []*asyncengine.Tx
	for _, name := range []string{"east", "west"} {
		c, err := engines[name].Connect(ctx)
		require.NoError(t, err)
		defer c.Close()
		tx, err := c.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
		_, err = tx.Exec(ctx, "SELECT * FROM writers FOR UPDATE")
		require.NoError(t, err)
		holders = append(holders, tx)
	}
	s := asyncsession.NewSharded(set, byName)
	defer s.Close()
	f := asyncsession.Select[Writer](ctx, s, "SELECT * FROM writers FOR UPDATE")

	waiting := func() int64 {
		r, err := engines["east"].Query(ctx, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = ANY($1)", dbs)
		require.NoError(t, err)
		var n int64
		require.NoError(t, r.One(&n))
		return n
	}
	deadline := time.Now().Add(20 * time.Second)
	for waiting() < 2 {
		require.True(t, time.Now().Before(deadline), "the shards' statements never waited at the same time")
		time.Sleep(10 * time.Millisecond)
	}
	for _, tx := range holders {
		require.NoError(t, tx.Rollback(ctx))
	}
	got, err := f.Await(ctx)
	require.NoError(t, err)
	require.Len(t, got, 2)
}

// A commit that succeeds on one shard and fails on another says which, and the rollback that
// follows keeps the committed shard's objects; a shard whose connection was lost rolls back
// without reconnecting.
func TestShardedSessionPartialCommitAndLostShard(t *testing.T) {
	t.Parallel()
	ctx := enginetest.Context(t)
	set, engines := shardSet(t, "pgx")
	_, err := engines["west"].Exec(ctx, `CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$`)
	require.NoError(t, err)
	_, err = engines["west"].Exec(ctx, `CREATE CONSTRAINT TRIGGER refuse AFTER INSERT ON writers DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse()`)
	require.NoError(t, err)

	s := asyncsession.NewSharded(set, byName)
	defer s.Close()
	ann, zed := &Writer{Name: "Ann"}, &Writer{Name: "Zed"}
	require.NoError(t, s.Add(ann, zed))
	_, err = s.Commit(ctx).Await(ctx)
	require.ErrorIs(t, err, asyncsession.ErrPartialCommit)
	var pe *asyncsession.PartialCommitError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, []string{"east"}, pe.Committed)
	require.Contains(t, pe.Failed, "west")
	require.ErrorContains(t, err, "refused at commit")
	_, err = s.Execute(asyncsession.OnShard(ctx, "east"), "SELECT 1").Await(ctx)
	require.ErrorIs(t, err, asyncsession.ErrPendingRollback, "the session needs a Rollback")
	await(t, s.Rollback(ctx))
	require.True(t, s.Contains(ann), "committed on east: kept")
	require.False(t, s.Contains(zed), "rolled back on west: expunged")
	require.Equal(t, int64(1), count(t, engines["east"], "writers"))
	require.Equal(t, int64(0), count(t, engines["west"], "writers"))
	require.Same(t, ann, await(t, asyncsession.Get[Writer](asyncsession.OnShard(ctx, "east"), s, ann.ID)))

	// west's connection dies inside the transaction, and west accepts no new connection
	await(t, asyncsession.Select[Writer](ctx, s, "SELECT * FROM writers"))
	r, err := engines["west"].Query(ctx, "SELECT current_database()")
	require.NoError(t, err)
	var west string
	require.NoError(t, r.One(&west))
	_, err = engines["east"].Exec(ctx, fmt.Sprintf("ALTER DATABASE %q ALLOW_CONNECTIONS false", west))
	require.NoError(t, err)
	defer func() {
		_, err := engines["east"].Exec(context.WithoutCancel(ctx), fmt.Sprintf("ALTER DATABASE %q ALLOW_CONNECTIONS true", west))
		require.NoError(t, err)
	}()
	_, err = engines["east"].Exec(ctx, "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = $1", west)
	require.NoError(t, err)
	_, err = asyncsession.Select[Writer](ctx, s, "SELECT * FROM writers").Await(ctx)
	var de *asyncengine.DisconnectError
	require.ErrorAs(t, err, &de)
	await(t, s.Rollback(ctx)) // nothing is sent to west, whose transaction is gone
	got := await(t, asyncsession.Select[Writer](asyncsession.OnShard(ctx, "east"), s, "SELECT * FROM writers"))
	require.Equal(t, []string{"Ann"}, names(got))
}

// Merge, Upsert, Refresh and RunSync follow the shards, and a Maker makes sharded sessions. The
// chooser may call the session: it is never called under the session's lock.
func TestShardedSessionMergeUpsertMaker(t *testing.T) {
	t.Parallel()
	ctx := enginetest.Context(t)
	set, engines := shardSet(t, "pgx")
	var s *asyncsession.Session
	var asked int
	chooser := byName
	chooser.Object = func(obj any) (string, error) {
		asked++
		s.Contains(obj) // takes the session's lock
		return byName.Object(obj)
	}
	maker := asyncsession.NewShardedMaker(set, chooser)
	s = maker.New()
	defer s.Close()

	// no shard holds key 7: Merge adds a copy, on the shard the chooser names
	yu := &Writer{ID: 7, Name: "Yu"}
	merged := await(t, asyncsession.Merge(ctx, s, yu))
	require.NotSame(t, yu, merged)
	require.Positive(t, asked)
	shard, ok := s.ShardOf(merged)
	require.True(t, ok)
	require.Equal(t, "west", shard)
	// Upsert goes where the chooser puts every object
	up := await(t, asyncsession.Upsert(ctx, s, []*Writer{{ID: 8, Name: "Al"}}))
	shard, _ = s.ShardOf(up[0])
	require.Equal(t, "east", shard)
	await(t, s.Commit(ctx))
	assert.Equal(t, int64(1), count(t, engines["west"], "writers"))
	assert.Equal(t, int64(1), count(t, engines["east"], "writers"))

	// Merge onto a row a shard holds copies onto the loaded object
	merged = await(t, asyncsession.Merge(ctx, s, &Writer{ID: 7, Name: "Yuki"}))
	shard, _ = s.ShardOf(merged)
	require.Equal(t, "west", shard)
	await(t, s.Commit(ctx))
	// Refresh reads the object's own shard; RunSync runs on the shard OnShard names
	_, err := engines["west"].Exec(ctx, "UPDATE writers SET name = 'Yoko' WHERE id = 7")
	require.NoError(t, err)
	await(t, s.Refresh(ctx, merged))
	require.Equal(t, "Yoko", merged.Name)
	var db string
	await(t, s.RunSync(asyncsession.OnShard(ctx, "east"), func(ctx context.Context, c *asyncengine.Conn) error {
		r, err := c.Query(ctx, "SELECT name FROM writers")
		if err != nil {
			return err
		}
		return r.One(&db)
	}))
	require.Equal(t, "Al", db)

	// Maker.Begin commits on the shards
	require.NoError(t, maker.Begin(ctx, func(s *asyncsession.Session) error {
		return s.Add(&Writer{Name: "Bea"}, &Writer{Name: "Zia"})
	}))
	assert.Equal(t, int64(2), count(t, engines["west"], "writers"))
	assert.Equal(t, int64(2), count(t, engines["east"], "writers"))
}

// A sharded session needs every shard of one dialect: otherwise every call fails, saying which.
func TestShardedSessionMixedDialects(t *testing.T) {
	t.Parallel()
	ctx := enginetest.Context(t)
	pg, err := asyncengine.New(enginetest.BackendURL(t, "pgx"))
	require.NoError(t, err)
	lite, err := asyncengine.New(enginetest.BackendURL(t, "sqlite"))
	require.NoError(t, err)
	set, err := asyncengine.NewShardSet(map[string]*asyncengine.Engine{"a": pg, "b": lite})
	require.NoError(t, err)
	defer set.Close()
	s := asyncsession.NewSharded(set, byName)
	defer s.Close()
	_, err = asyncsession.Select[Writer](ctx, s, "SELECT * FROM writers").Await(ctx)
	require.ErrorIs(t, err, asyncengine.ErrInvalidConfig)
	require.ErrorContains(t, err, "one dialect")
	_, err = s.Execute(asyncsession.OnShard(ctx, "a"), "SELECT 1").Await(ctx)
	require.ErrorIs(t, err, asyncengine.ErrInvalidConfig)
}

// A batch of new rows travels as arrays on whichever shard it goes to, with the column types
// read on that shard.
func TestShardedSessionBatchInsertsAsArrays(t *testing.T) {
	t.Parallel()
	ctx := enginetest.Context(t)
	engines := map[string]*asyncengine.Engine{}
	logs := map[string]func() string{}
	for _, name := range []string{"east", "west"} {
		e, log := echoEngine(t, enginetest.BackendURL(t, "pgx"))
		relSchema(t, e)
		engines[name], logs[name] = e, log
	}
	set, err := asyncengine.NewShardSet(engines)
	require.NoError(t, err)
	s := asyncsession.NewSharded(set, byName)
	defer s.Close()
	logs["west"]()
	require.NoError(t, s.Add(&Writer{Name: "Xu"}, &Writer{Name: "Yu"}, &Writer{Name: "Zed"}))
	await(t, s.Commit(ctx))
	assert.Contains(t, logs["west"](), "unnest(", "the batch on west travels as arrays")
	assert.Equal(t, int64(3), count(t, engines["west"], "writers"))
	assert.Equal(t, int64(0), count(t, engines["east"], "writers"))
}

// A sharded Stream asks the Query chooser with the statement as sent (named arguments made
// positional), and streams from the shard it names.
func TestShardedStream(t *testing.T) {
	t.Parallel()
	ctx := enginetest.Context(t)
	set, engines := shardSet(t, "pgx")
	_, err := engines["west"].Exec(ctx, "INSERT INTO writers (name) VALUES ('Zed'), ('Zoe')")
	require.NoError(t, err)
	var seen string
	chooser := byName
	chooser.Query = func(_ reflect.Type, sql string, args []any) ([]string, error) {
		seen = sql
		return []string{"west"}, nil
	}
	s := asyncsession.NewSharded(set, chooser)
	defer s.Close()
	var got []string
	for w, err := range asyncsession.Stream[Writer](ctx, s, "SELECT * FROM writers WHERE name LIKE :p ORDER BY name", asyncengine.Named{"p": "Z%"}) {
		require.NoError(t, err)
		got = append(got, w.Name)
	}
	require.Equal(t, []string{"Zed", "Zoe"}, got)
	require.Contains(t, seen, "$1")
}
