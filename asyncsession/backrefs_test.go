package asyncsession_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// a one-to-one's child whose many-to-one back-reference is set to nil: the commit
// writes NULL, as a many-to-one set to nil under a loaded collection does.
func TestOneToOneBackReferenceSetToNil(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		require.NoError(t, asyncsession.CreateAll(ctx, e, Householder{}, Profile2{}))
		saved(t, e, &Householder{Name: "ann", Profile: &Profile2{Bio: "b"}})
		s := newSession(t, e)
		h, err := asyncsession.From[Householder](s).Load("Profile", asyncsession.SelectIn).One(ctx).Await(ctx)
		require.NoError(t, err)
		p := h.Profile
		require.Same(t, h, p.Holder)
		p.Holder = nil
		await(t, s.Commit(ctx))
		assert.Nil(t, p.Holder, "the application's nil")
		assert.Nil(t, p.HolderID)
		assert.EqualValues(t, 0, countWhere(t, e, "profiles2", "holder_id IS NOT NULL"))
	})
}

// a book's many-to-one set to nil and the book appended to another loaded writer's
// collection in the same flush: it moves (as in SQLAlchemy), whatever the walk order.
func TestSetToNilAndAppendedElsewhereMoves(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		seedLibrary(t, e)
		fails := map[string]int{}
		for i := range 12 {
			s := newSession(t, e)
			ws, err := asyncsession.From[Writer](s).Filter("name", []string{"w1", "w2"}).OrderBy("name").All(ctx).Await(ctx)
			require.NoError(t, err)
			w1, w2 := ws[0], ws[1]
			if i%2 == 1 {
				w1, w2 = w2, w1
			}
			require.NotEmpty(t, w1.Books, "iteration %d", i)
			v := w1.Books[0]
			await(t, asyncsession.Load(ctx, s, v, "Writer"))
			v.Writer = nil
			w2.Books = append(w2.Books, v)
			_, err = s.Commit(ctx).Await(ctx)
			if err != nil {
				fails[err.Error()]++
				continue
			}
			assert.EqualValues(t, 1, countWhere(t, e, "volumes", fmt.Sprintf("id = %d AND writer_id = %d", v.ID, w2.ID)))
		}
		assert.Empty(t, fails)
	})
}

func TestReassignedAndAppendedMovesInEitherOrder(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		seedLibrary(t, e)
		fails := map[string]int{}
		for i := range 12 {
			s := newSession(t, e)
			ws, err := asyncsession.From[Writer](s).Filter("name", []string{"w1", "w2"}).OrderBy("name").All(ctx).Await(ctx)
			require.NoError(t, err)
			w1, w2 := ws[0], ws[1]
			if i%2 == 1 {
				w1, w2 = w2, w1
			}
			v := w1.Books[0]
			await(t, asyncsession.Load(ctx, s, v, "Writer"))
			v.Writer = w2
			w2.Books = append(w2.Books, v)
			_, err = s.Commit(ctx).Await(ctx)
			if err != nil {
				fails[err.Error()]++
				continue
			}
		}
		assert.Empty(t, fails)
	})
}

type OrProduct struct {
	Code  Sku       `db:"code,pk"`
	Name  string    `db:"name"`
	Lines []*OrLine `rel:"fk=product_code,order=id,cascade=delete-orphan"`
}

func (OrProduct) TableName() string { return "or_products" }

type OrLine struct {
	ID          int64  `db:"id,pk,default"`
	ProductCode string `db:"product_code,fk=or_products.code"`
}

func (OrLine) TableName() string { return "or_lines" }

// a line removed from a delete-orphan collection whose parent key is a named string type
// (Sku) and the child's key a plain string: the orphan is deleted (it was taken to have moved).
func TestOrphanOfANamedKeyType(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		require.NoError(t, asyncsession.CreateAll(ctx, e, OrProduct{}, OrLine{}))
		saved(t, e, &OrProduct{Code: "a", Name: "A", Lines: []*OrLine{{}, {}}})
		s := newSession(t, e)
		p := await(t, asyncsession.From[OrProduct](s).One(ctx))
		require.Len(t, p.Lines, 2)
		p.Lines = p.Lines[:1]
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 1, count(t, e, "or_lines"), "the orphan is deleted")
	})
}

// after Commit (objects expired) another transaction moves a book to another writer; the
// book queried again with its Writer loaded Joined: the relationship follows the row,
// and the next Commit does not write the old writer back.
func TestJoinedFollowsARowMovedAfterCommit(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		seedLibrary(t, e)
		s := newSession(t, e)
		v := await(t, asyncsession.From[Volume](s).Filter("title", "t1-0").Load("Writer", asyncsession.Joined).One(ctx))
		old := v.Writer
		require.Equal(t, "w1", old.Name)
		await(t, s.Commit(ctx))
		_, err := e.Exec(ctx, "UPDATE volumes SET writer_id = (SELECT id FROM writers WHERE name = 'w2') WHERE title = 't1-0'")
		require.NoError(t, err)
		v2 := await(t, asyncsession.From[Volume](s).Filter("title", "t1-0").Load("Writer", asyncsession.Joined).One(ctx))
		require.Same(t, v, v2)
		assert.Equal(t, "w2", v.Writer.Name, "the joined row's writer (WriterID=%d, Writer.ID=%d)", v.WriterID, v.Writer.ID)
		v.Title = "renamed"
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 1, countWhere(t, e, "volumes", "title = 'renamed' AND writer_id = (SELECT id FROM writers WHERE name = 'w2')"), "the other transaction's move is kept")
	})
}

type FrUser struct {
	ID       int64     `db:"id,pk,default"`
	Name     string    `db:"name"`
	Friends  []*FrUser `rel:"through=fr_friends,fk=user_id,ref=friend_id,order=name"`
	FriendOf []*FrUser `rel:"through=fr_friends,fk=friend_id,ref=user_id,order=name"`
}

func (FrUser) TableName() string { return "fr_users" }

type FrFriend struct {
	UserID   int64 `db:"user_id,pk,fk=fr_users.id"`
	FriendID int64 `db:"friend_id,pk,fk=fr_users.id"`
}

func (FrFriend) TableName() string { return "fr_friends" }

func TestSelfReferentialManyToManyBothSides(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		require.NoError(t, asyncsession.CreateAll(ctx, e, FrUser{}, FrFriend{}))
		// new on both sides, linked from both sides: one row
		s := newSession(t, e)
		a, b := &FrUser{Name: "a"}, &FrUser{Name: "b"}
		a.Friends = []*FrUser{b}
		b.FriendOf = []*FrUser{a}
		require.NoError(t, s.Add(a, b))
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 1, count(t, e, "fr_friends"))
		assert.Equal(t, []*FrUser{a}, b.FriendOf)
		// mutual friendship: a second row (b, a)
		b.Friends = append(b.Friends, a)
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 2, count(t, e, "fr_friends"))
		s2 := newSession(t, e)
		us := await(t, asyncsession.From[FrUser](s2).OrderBy("name").Load("Friends", asyncsession.SelectIn).Load("FriendOf", asyncsession.SelectIn).All(ctx))
		a2, b2 := us[0], us[1]
		require.Len(t, a2.Friends, 1)
		require.Len(t, a2.FriendOf, 1)
		// a unfriends b from a's side: b.FriendOf follows, b.Friends stays
		a2.Friends = nil
		await(t, s2.Flush(ctx))
		assert.Empty(t, b2.FriendOf)
		assert.Equal(t, []*FrUser{a2}, b2.Friends)
		await(t, s2.Commit(ctx))
		assert.EqualValues(t, 1, count(t, e, "fr_friends"))
		assert.EqualValues(t, 1, countWhere(t, e, "fr_friends", fmt.Sprintf("user_id = %d AND friend_id = %d", b2.ID, a2.ID)))
	})
}

// new volume and new tag linked from both sides, keys generated in the flush
func TestNewObjectsLinkedFromBothSides(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		relSchema(t, e)
		s := newSession(t, e)
		w := &Writer{Name: "w"}
		v := &Volume{Title: "v", Writer: w}
		tg := &Tag{Name: "t"}
		v.Tags = []*Tag{tg}
		tg.Volumes = []*Volume{v}
		require.NoError(t, s.Add(v, tg))
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 1, count(t, e, "volume_tags"))
		assert.Len(t, tg.Volumes, 1)
		assert.Len(t, v.Tags, 1)
	})
}

func TestManyToManyUndoAfterAFailedFlush(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		seedLibrary(t, e)
		s := newSession(t, e)
		v := await(t, asyncsession.From[Volume](s).Filter("title", "t2-1").One(ctx))
		fantasy := await(t, asyncsession.From[Tag](s).Filter("name", "fantasy").One(ctx))
		await(t, asyncsession.Load(ctx, s, fantasy, "Volumes"))
		w0 := await(t, asyncsession.From[Writer](s).Filter("name", "w0").One(ctx))
		v.Tags = append(v.Tags, fantasy)
		bad := &Writer{ID: w0.ID, Name: "dup"}
		require.NoError(t, s.Add(bad))
		_, err := s.Flush(ctx).Await(ctx)
		require.Error(t, err)
		assert.NotContains(t, fantasy.Volumes, v, "undo: the back-reference added by the walk is taken back")
		assert.Len(t, fantasy.Volumes, 5)
		await(t, s.Rollback(ctx))
		s.Expunge(bad)
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 1, countWhere(t, e, "volume_tags", fmt.Sprint("volume_id = ", v.ID)))
		assert.EqualValues(t, 6, countWhere(t, e, "volume_tags", fmt.Sprint("tag_id = ", fantasy.ID)))
	})
}

func TestSetToNilOrphanUndoAndRetry(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		seedLibrary(t, e)
		s := newSession(t, e)
		w := await(t, asyncsession.From[Writer](s).Filter("name", "w1").One(ctx))
		w0 := await(t, asyncsession.From[Writer](s).Filter("name", "w0").One(ctx))
		gone := w.Books[1]
		await(t, asyncsession.Load(ctx, s, gone, "Writer"))
		gone.Writer = nil
		bad := &Writer{ID: w0.ID, Name: "dup"}
		require.NoError(t, s.Add(bad))
		_, err := s.Flush(ctx).Await(ctx)
		require.Error(t, err)
		assert.Len(t, w.Books, 3, "undo puts the child back in the collection")
		assert.Nil(t, gone.Writer, "the application's nil stays")
		await(t, s.Rollback(ctx))
		s.Expunge(bad)
		await(t, s.Commit(ctx))
		assert.Len(t, w.Books, 2)
		assert.EqualValues(t, 0, countWhere(t, e, "volumes", fmt.Sprint("id = ", gone.ID)))
	})
}

// Refresh after another transaction moved the book: the loaded many-to-one is not refreshed,
// and the next Commit writes the old writer back.
func TestRefreshFollowsARowMoved(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		seedLibrary(t, e)
		s := newSession(t, e)
		v := await(t, asyncsession.From[Volume](s).Filter("title", "t1-0").Load("Writer", asyncsession.SelectIn).One(ctx))
		require.Equal(t, "w1", v.Writer.Name)
		_, err := e.Exec(ctx, "UPDATE volumes SET writer_id = (SELECT id FROM writers WHERE name = 'w2') WHERE title = 't1-0'")
		require.NoError(t, err)
		await(t, s.Refresh(ctx, v))
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 1, countWhere(t, e, "volumes", "title = 't1-0' AND writer_id = (SELECT id FROM writers WHERE name = 'w2')"), "nothing changed in the session: the other transaction's move stays")
	})
}

func TestArrayFilterOnSQLite(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		require.NoError(t, asyncsession.CreateAll(ctx, e, Labelled{}))
		saved(t, e, &Labelled{Labels: []string{"x", "y"}}, &Labelled{Labels: []string{"y"}})
		s := newSession(t, e)
		n, err := asyncsession.From[Labelled](s).Filter("labels", []string{"x", "y"}).Count(ctx).Await(ctx)
		require.NoError(t, err)
		assert.EqualValues(t, 1, n)
	})
}

// After Commit, another transaction moves a book of a loaded collection to another writer; the
// book read again (Refresh, a query) leaves the old writer's loaded collection, whose next flush
// wrote the old key back into the row.
func TestStaleCollectionLetsAMovedRowGo(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		seedLibrary(t, e)
		for _, reread := range []string{"refresh", "query"} {
			s := newSession(t, e)
			w1 := await(t, asyncsession.From[Writer](s).Filter("name", "w1").One(ctx))
			require.NotEmpty(t, w1.Books)
			v := w1.Books[0]
			await(t, s.Commit(ctx))
			_, err := e.Exec(ctx, "UPDATE volumes SET writer_id = (SELECT id FROM writers WHERE name = 'w3') WHERE id = :id", asyncengine.Named{"id": v.ID})
			require.NoError(t, err)
			if reread == "refresh" {
				await(t, s.Refresh(ctx, v))
			} else {
				await(t, asyncsession.From[Volume](s).Filter("id", v.ID).One(ctx))
			}
			assert.NotContains(t, w1.Books, v, reread)
			w1.Name = "w1"
			await(t, s.Commit(ctx))
			assert.EqualValues(t, 1, countWhere(t, e, "volumes", fmt.Sprintf("id = %d AND writer_id = (SELECT id FROM writers WHERE name = 'w3')", v.ID)), "%s: the other transaction's move is kept", reread)
		}
	})
}

// A many-to-one set to nil while the parent's delete-orphan collection is not loaded makes the
// child an orphan: it is deleted (the flush refused the NULL, advising the cascade it has).
func TestSetToNilUnderAnUnloadedOrphanCollection(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		seedLibrary(t, e)
		s := newSession(t, e)
		v := await(t, asyncsession.From[Volume](s).Filter("title", "t2-2").Load("Writer", asyncsession.Joined).One(ctx))
		require.NotNil(t, v.Writer)
		v.Writer = nil
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 0, countWhere(t, e, "volumes", "title = 't2-2'"))
	})
}

// A link removed from the loaded side and made again from the side not loaded, in one flush: the
// row stays, as both sides say (the DELETE went, the INSERT was taken for a repeat of it).
func TestUnlinkAndRelinkInOneFlush(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		seedLibrary(t, e)
		s := newSession(t, e)
		v := await(t, asyncsession.From[Volume](s).Filter("title", "t0-0").One(ctx))
		await(t, asyncsession.Load(ctx, s, v, "Tags"))
		require.Len(t, v.Tags, 1)
		tag := v.Tags[0]
		v.Tags = nil
		tag.Volumes = append(tag.Volumes, v) // Volumes is not loaded
		await(t, s.Commit(ctx))
		assert.Equal(t, []*Tag{tag}, v.Tags)
		assert.EqualValues(t, 1, countWhere(t, e, "volume_tags", fmt.Sprintf("volume_id = %d", v.ID)))
	})
}

// A link that exists already, made again through a collection not loaded, fails with the
// database's unique violation — on SQLite too, where it read as a COMMIT of unknown outcome.
func TestDuplicateLinkIsTheDatabasesError(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		seedLibrary(t, e)
		s := newSession(t, e)
		v := await(t, asyncsession.From[Volume](s).Filter("title", "t0-0").Load("Tags", asyncsession.Lazy).One(ctx))
		tag := await(t, asyncsession.From[Tag](s).Filter("name", "fantasy").Load("Volumes", asyncsession.Lazy).One(ctx))
		v.Tags = append(v.Tags, tag) // linked already; Tags is not loaded
		_, err := s.Commit(ctx).Await(ctx)
		require.Error(t, err)
		assert.NotErrorIs(t, err, asyncengine.ErrCommitUnknown)
		assert.Contains(t, strings.ToLower(err.Error()), "unique")
		await(t, s.Rollback(ctx))
		assert.EqualValues(t, 1, countWhere(t, e, "volume_tags", fmt.Sprintf("volume_id = %d", v.ID)))
	})
}

// A one-to-one's child pointed at another parent whose one-to-one is loaded: the new parent takes
// it and lets go of the child it held, the old parent lets go of it (the commit wrote nothing,
// and put the application's many-to-one back). Moved by the other side instead, C.Profile = the
// child of A, the child follows (it was written NULL). Two children swapped under a unique key
// fail with the unique violation, as the database has it, and nothing is written.
func TestOneToOneChildReparented(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		require.NoError(t, asyncsession.CreateAll(ctx, e, Householder{}, Profile2{}))
		saved(t, e, &Householder{Name: "a", Profile: &Profile2{Bio: "pa"}}, &Householder{Name: "b", Profile: &Profile2{Bio: "pb"}}, &Householder{Name: "c"})
		load := func(s *asyncsession.Session) (a, b, c *Householder) {
			hs := await(t, asyncsession.From[Householder](s).OrderBy("name").Load("Profile", asyncsession.SelectIn).All(ctx))
			return hs[0], hs[1], hs[2]
		}
		s := newSession(t, e)
		a, b, _ := load(s)
		pa, pb := a.Profile, b.Profile
		pa.Holder = b
		await(t, s.Commit(ctx))
		assert.Equal(t, b.ID, *pa.HolderID)
		assert.Nil(t, pb.HolderID)
		assert.Nil(t, pb.Holder)
		assert.Nil(t, a.Profile)
		assert.Same(t, pa, b.Profile)
		assert.EqualValues(t, 1, countWhere(t, e, "profiles2", "holder_id IS NULL AND bio = 'pb'"))

		s = newSession(t, e)
		_, b, c := load(s)
		moved := b.Profile
		c.Profile, b.Profile = moved, nil
		await(t, s.Commit(ctx))
		assert.Same(t, c, moved.Holder)
		assert.EqualValues(t, 1, countWhere(t, e, "profiles2", fmt.Sprintf("holder_id = %d AND bio = 'pa'", c.ID)))

		s = newSession(t, e)
		_, b, _ = load(s)
		require.NoError(t, s.Add(&Profile2{Bio: "pb2", HolderID: &b.ID}))
		await(t, s.Commit(ctx))
		s = newSession(t, e)
		_, b, c = load(s)
		b.Profile, c.Profile = c.Profile, b.Profile
		_, err := s.Commit(ctx).Await(ctx)
		require.Error(t, err)
		assert.Contains(t, strings.ToLower(err.Error()), "unique")
		assert.EqualValues(t, 1, countWhere(t, e, "profiles2", fmt.Sprintf("holder_id = %d AND bio = 'pa'", c.ID)))
	})
}

// A many-to-one set to nil while its parent's collection is loaded takes the child out of the
// collection and writes NULL: the walk of the collection put the parent back, and the commit
// wrote nothing. Each order of loading (the parent first, the child first) is tried.
func TestManyToOneSetToNilLeavesTheCollection(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		staffChain(t, e)
		ctx := enginetest.Context(t)
		for _, parentFirst := range []bool{true, false} {
			s := newSession(t, e)
			var boss, mid *Staff
			if parentFirst {
				boss = await(t, asyncsession.Get[Staff](ctx, s, int64(1)))
				await(t, asyncsession.Load(ctx, s, boss, "Reports"))
				mid = boss.Reports[0]
			} else {
				mid = await(t, asyncsession.From[Staff](s).Filter("name", "mid").Load("Manager", asyncsession.SelectIn).One(ctx))
				boss = mid.Manager
				await(t, asyncsession.Load(ctx, s, boss, "Reports"))
			}
			require.Equal(t, "mid", mid.Name)
			mid.Manager = nil
			await(t, s.Commit(ctx))
			assert.Nil(t, mid.Manager, "parent first: %v", parentFirst)
			assert.Empty(t, boss.Reports, "parent first: %v", parentFirst)
			assert.EqualValues(t, 0, countWhere(t, e, "staff", "manager_id = 1"), "parent first: %v", parentFirst)
			_, err := e.Exec(ctx, "UPDATE staff SET manager_id = 1 WHERE id = 2")
			require.NoError(t, err)
		}
	})
}

// Through a delete-orphan collection, the child set to nil is an orphan: it is deleted, as a
// removal from the collection deletes it (its key cannot hold NULL).
func TestManyToOneSetToNilOrphansTheChild(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		seedLibrary(t, e)
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		w := await(t, asyncsession.From[Writer](s).Filter("name", "w1").One(ctx))
		require.Len(t, w.Books, 3)
		gone := w.Books[1]
		gone.Writer = nil
		await(t, s.Commit(ctx))
		assert.Len(t, w.Books, 2)
		assert.NotContains(t, w.Books, gone)
		assert.EqualValues(t, 0, countWhere(t, e, "volumes", "title = 't1-1'"))
		assert.EqualValues(t, 2, countWhere(t, e, "volumes", "title LIKE 't1-%'"))
	})
}

// A many-to-many declared on both models: a link made from both sides is one row (it failed the
// commit with the association's unique violation), a link made or removed from one side shows
// in the other side's loaded collection, as a one-to-many's back-reference does.
func TestManyToManyFromBothSides(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		seedLibrary(t, e)
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		v := await(t, asyncsession.From[Volume](s).Filter("title", "t2-1").One(ctx))
		fantasy := await(t, asyncsession.From[Tag](s).Filter("name", "fantasy").One(ctx))
		await(t, asyncsession.Load(ctx, s, fantasy, "Volumes"))
		require.Empty(t, v.Tags)
		require.Len(t, fantasy.Volumes, 5)

		v.Tags = append(v.Tags, fantasy)
		fantasy.Volumes = append(fantasy.Volumes, v)
		await(t, s.Commit(ctx))
		assert.EqualValues(t, 1, countWhere(t, e, "volume_tags", "volume_id = "+strconv.FormatInt(v.ID, 10)))

		w := await(t, asyncsession.From[Volume](s).Filter("title", "t3-1").One(ctx))
		w.Tags = append(w.Tags, fantasy)
		await(t, s.Flush(ctx))
		assert.Contains(t, fantasy.Volumes, w, "the other side follows")
		assert.Len(t, fantasy.Volumes, 7)

		v.Tags = nil
		await(t, s.Commit(ctx))
		assert.NotContains(t, fantasy.Volumes, v, "the other side follows")
		assert.EqualValues(t, 0, countWhere(t, e, "volume_tags", "volume_id = "+strconv.FormatInt(v.ID, 10)))
		assert.EqualValues(t, 6, countWhere(t, e, "volume_tags", "tag_id = "+strconv.FormatInt(fantasy.ID, 10)))
	})
}
