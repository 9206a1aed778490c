package asyncsession_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pipelines records the SELECTs of every pipeline an engine sends, with their arguments: a
// pipeline is one round trip, on PostgreSQL and SQLite alike.
type pipelines struct {
	mu       sync.Mutex
	sent     [][]asyncengine.Statement
	inserted []asyncengine.Statement // the INSERTs, whatever pipeline they went in
	updated  []asyncengine.Statement // the UPDATEs, likewise
}

func (p *pipelines) TraceQueryStart(ctx context.Context, _ *asyncengine.Conn, _ asyncengine.TraceQueryStartData) context.Context {
	return ctx
}
func (p *pipelines) TraceQueryEnd(context.Context, *asyncengine.Conn, asyncengine.TraceQueryEndData) {
}
func (p *pipelines) TracePipelineStart(ctx context.Context, _ *asyncengine.Conn, d asyncengine.TracePipelineStartData) context.Context {
	var selects []asyncengine.Statement
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, st := range d.Statements {
		switch {
		case strings.HasPrefix(st.SQL, "SELECT"):
			selects = append(selects, st)
		case strings.Contains(st.SQL, "INSERT INTO"):
			p.inserted = append(p.inserted, st)
		case strings.Contains(st.SQL, "UPDATE "):
			p.updated = append(p.updated, st)
		}
	}
	if len(selects) > 0 {
		p.sent = append(p.sent, selects)
	}
	return ctx
}
func (p *pipelines) TracePipelineEnd(context.Context, *asyncengine.Conn, asyncengine.TracePipelineEndData) {
}

// mark is where the pipelines sent from now on start.
func (p *pipelines) mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sent)
}

// since returns the pipelines sent after mark, as their SELECTs.
func (p *pipelines) since(mark int) [][]asyncengine.Statement {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent[mark:]
}

// insertsInto takes the INSERTs into table recorded so far.
// updates returns the UPDATEs sent since the last call.
func (p *pipelines) updates() []asyncengine.Statement {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.updated
	p.updated = nil
	return out
}

func (p *pipelines) insertsInto(table string) []asyncengine.Statement {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []asyncengine.Statement
	for _, st := range p.inserted {
		if strings.Contains(st.SQL, "INSERT INTO "+table+" ") {
			out = append(out, st)
		}
	}
	p.inserted = nil
	return out
}

// levels counts the SELECTs of each pipeline sent after mark.
func (p *pipelines) levels(mark int) []int {
	var out []int
	for _, sts := range p.since(mark) {
		out = append(out, len(sts))
	}
	return out
}

// keys is the number of keys a selectin query was sent: one array on PostgreSQL, an IN list on
// SQLite.
func keys(st asyncengine.Statement) int {
	if len(st.Args) == 1 {
		if v := reflect.ValueOf(st.Args[0]); v.Kind() == reflect.Slice {
			return v.Len()
		}
	}
	return len(st.Args)
}

// eachTracedBackend is eachBackend with every pipeline recorded, arguments included.
func eachTracedBackend(t *testing.T, fn func(t *testing.T, e *asyncengine.Engine, p *pipelines)) {
	t.Helper()
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		cfg, err := asyncengine.ParseConfig(url)
		require.NoError(t, err)
		p := &pipelines{}
		cfg.Tracer, cfg.LogParameters = p, true
		e, err := asyncengine.NewWithConfig(cfg)
		require.NoError(t, err)
		t.Cleanup(func() { e.Close() })
		relSchema(t, e)
		fn(t, e, p)
	}, "pgx", "sqlite")
}

// seedShelves saves n writers w0… with two books each, and a writer with none; every book has the
// tag "common" and its writer's own tag, and the writers of even number a bio.
func seedShelves(t *testing.T, e *asyncengine.Engine, n int) {
	t.Helper()
	s := newSession(t, e)
	common := &Tag{Name: "common"}
	for i := range n {
		own := &Tag{Name: fmt.Sprintf("own%02d", i)}
		w := &Writer{Name: fmt.Sprintf("w%02d", i)}
		for j := range 2 {
			w.Books = append(w.Books, &Volume{Title: fmt.Sprintf("b%02d-%d", i, j), Tags: []*Tag{common, own}})
		}
		if i%2 == 0 {
			w.Bio = &WriterBio{Text: fmt.Sprint("bio of ", w.Name)}
		}
		require.NoError(t, s.Add(w))
	}
	require.NoError(t, s.Add(&Writer{Name: "zz empty"}))
	await(t, s.Commit(enginetest.Context(t)))
}

// related is Related that must succeed: the relationship is loaded.
func related[T any](t *testing.T, s *asyncsession.Session, obj any, name string) T {
	t.Helper()
	v, err := asyncsession.Related[T](s, obj, name)
	require.NoError(t, err)
	return v
}

// checkShelves checks that ws, seeded by seedShelves, have their books and the books' tags
// loaded, each tag one object however many books hold it.
func checkShelves(t *testing.T, s *asyncsession.Session, ws []*Writer) {
	t.Helper()
	var common *Tag
	for _, w := range ws {
		books := related[[]*Volume](t, s, w, "Books")
		if w.Name == "zz empty" {
			assert.Empty(t, books)
			continue
		}
		require.Len(t, books, 2)
		for _, b := range books {
			tags := related[[]*Tag](t, s, b, "Tags")
			require.Len(t, tags, 2)
			require.Equal(t, "common", tags[0].Name)
			if common == nil {
				common = tags[0]
			}
			assert.Same(t, common, tags[0], "a tag of many books is one object")
		}
		assert.Same(t, books[0].Tags[1], books[1].Tags[1], "the writer's own tag, on both books")
	}
	require.NotNil(t, common)
}

// A path loads level by level, one query per step for all the objects of the step above, each
// key once.
func TestNestedLoadPaths(t *testing.T) {
	eachTracedBackend(t, func(t *testing.T, e *asyncengine.Engine, p *pipelines) {
		const n = 20
		seedShelves(t, e, n)
		ctx := enginetest.Context(t)

		s := newSession(t, e)
		mark := p.mark()
		ws := await(t, asyncsession.From[Writer](s).Load("Books.Tags", asyncsession.SelectIn).OrderBy("name").All(ctx))
		require.Len(t, ws, n+1)
		checkShelves(t, s, ws)
		// the writers; their books and fans (collections load by default); the books' tags
		assert.Equal(t, []int{1, 2, 1}, p.levels(mark))
		assert.Equal(t, 2*n, keys(p.since(mark)[2][0]), "one key per book")
		_, err := asyncsession.Related[*WriterBio](s, ws[0], "Bio")
		require.ErrorIs(t, err, asyncsession.ErrNotLoaded, "off the path, Bio stays lazy")

		// three steps, back to the books through the tags: the shared tag's key is sent once
		s = newSession(t, e)
		mark = p.mark()
		ws = await(t, asyncsession.From[Writer](s).Load("Books.Tags.Volumes", asyncsession.SelectIn).OrderBy("name").All(ctx))
		checkShelves(t, s, ws)
		assert.Equal(t, []int{1, 2, 1, 1}, p.levels(mark))
		assert.Equal(t, n+1, keys(p.since(mark)[3][0]), "one key per tag")
		common := ws[0].Books[0].Tags[0]
		vs := related[[]*Volume](t, s, common, "Volumes")
		require.Len(t, vs, 2*n)
		assert.True(t, slices.Contains(vs, ws[n-1].Books[1]), "the books the writers hold, not copies")
		own := related[[]*Volume](t, s, ws[3].Books[0].Tags[1], "Volumes")
		assert.Equal(t, ws[3].Books, own)

		// from the tags: their books, the books' writers (many-to-one, lazy by default: a step
		// of the path loads all the same), the writers' bios (nil for odd writers)
		s = newSession(t, e)
		mark = p.mark()
		tags := await(t, asyncsession.From[Tag](s).Load("Volumes.Writer.Bio", asyncsession.SelectIn).OrderBy("name").All(ctx))
		require.Len(t, tags, n+1)
		assert.Equal(t, []int{1, 1, 1, 1}, p.levels(mark))
		assert.Equal(t, n, keys(p.since(mark)[2][0]), "one key per writer, not per book")
		require.Len(t, tags[0].Volumes, 2*n)
		for _, tag := range tags {
			for _, v := range tag.Volumes {
				w := related[*Writer](t, s, v, "Writer")
				require.NotNil(t, w)
				bio := related[*WriterBio](t, s, w, "Bio")
				var i int
				_, err := fmt.Sscanf(w.Name, "w%d", &i)
				require.NoError(t, err)
				if i%2 == 0 {
					require.NotNil(t, bio)
					assert.Equal(t, "bio of "+w.Name, bio.Text)
				} else {
					assert.Nil(t, bio)
				}
			}
		}
		assert.Same(t, tags[0].Volumes[0].Writer, tags[1].Volumes[1].Writer, "w00 through both of its tags")

		// LoadAll and Load take the same paths
		s = newSession(t, e)
		ws = await(t, asyncsession.Select[Writer](ctx, s, "SELECT * FROM writers ORDER BY name"))
		mark = p.mark()
		await(t, asyncsession.LoadAll(ctx, s, ws, "Books.Tags"))
		assert.Equal(t, []int{1, 1}, p.levels(mark))
		checkShelves(t, s, ws)
		s = newSession(t, e)
		w := await(t, asyncsession.From[Writer](s).Filter("name", "w05").Load("Books", asyncsession.Lazy).One(ctx))
		await(t, asyncsession.Load(ctx, s, w, "Books.Tags.Volumes.Writer"))
		checkShelves(t, s, []*Writer{w})
		assert.Len(t, related[[]*Volume](t, s, w.Books[0].Tags[0], "Volumes"), 2*n)
		assert.Same(t, w, w.Books[0].Tags[1].Volumes[0].Writer)

		// Load futures issued together: each level travels as one pipeline
		s = newSession(t, e)
		ws = await(t, asyncsession.Select[Writer](ctx, s, "SELECT * FROM writers ORDER BY name"))
		fs := make([]*asyncengine.Future[struct{}], len(ws))
		func() {
			hold := holdSession(t, s)
			defer hold()
			mark = p.mark()
			for i, w := range ws {
				fs[i] = asyncsession.Load(ctx, s, w, "Books.Tags")
			}
		}()
		_, err = asyncengine.All(ctx, fs...)
		require.NoError(t, err)
		checkShelves(t, s, ws)
		assert.Equal(t, []int{n + 1, n}, p.levels(mark), "the books of every writer, then the tags of the books of each")
	})
}

// Relationships loaded already are not loaded again, and the steps below them still load.
func TestNestedLoadKeepsLoaded(t *testing.T) {
	eachTracedBackend(t, func(t *testing.T, e *asyncengine.Engine, p *pipelines) {
		seedShelves(t, e, 4)
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		ws := await(t, asyncsession.From[Writer](s).OrderBy("name").All(ctx))
		first := ws[0].Books[0]
		mark := p.mark()
		await(t, asyncsession.LoadAll(ctx, s, ws, "Books.Tags"))
		assert.Equal(t, []int{1}, p.levels(mark), "the books were loaded: only their tags are")
		assert.Same(t, first, ws[0].Books[0])
		checkShelves(t, s, ws)

		mark = p.mark()
		await(t, asyncsession.Load(ctx, s, ws[1], "Books.Tags"))
		await(t, asyncsession.From[Writer](s).Load("Books.Tags", asyncsession.SelectIn).All(ctx))
		assert.Equal(t, []int{1}, p.levels(mark), "the query's own SELECT, nothing below")
	})
}

// Paths through an empty collection and a nil many-to-one stop there; the other objects of the
// level load.
func TestNestedLoadEmptyAndNil(t *testing.T) {
	eachTracedBackend(t, func(t *testing.T, e *asyncengine.Engine, p *pipelines) {
		seedShelves(t, e, 2)
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		mark := p.mark()
		ws := await(t, asyncsession.From[Writer](s).Filter("name", "zz empty").Load("Books.Tags.Volumes", asyncsession.SelectIn).All(ctx))
		require.Len(t, ws, 1)
		assert.Empty(t, related[[]*Volume](t, s, ws[0], "Books"))
		assert.Equal(t, []int{1, 2}, p.levels(mark), "no book: no query for tags")

		// a nil many-to-one in the middle: the boss has no manager
		s = newSession(t, e)
		boss := &Staff{Name: "boss"}
		mid := &Staff{Name: "mid", Manager: boss}
		low := &Staff{Name: "low", Manager: mid}
		require.NoError(t, s.Add(low))
		await(t, s.Commit(ctx))
		for _, how := range []asyncsession.Strategy{asyncsession.SelectIn, asyncsession.Joined} {
			s := newSession(t, e)
			mark := p.mark()
			q := asyncsession.From[Staff](s).Load("Manager", how).Load("Manager.Manager", how).
				Load("Manager.Manager.Reports", asyncsession.SelectIn).Load("Reports", asyncsession.Lazy).OrderBy("name")
			all := await(t, q.All(ctx))
			require.Len(t, all, 3)
			byName := map[string]*Staff{}
			for _, x := range all {
				byName[x.Name] = x
			}
			b, m, l := byName["boss"], byName["mid"], byName["low"]
			assert.Nil(t, related[*Staff](t, s, b, "Manager"), how)
			assert.Same(t, b, related[*Staff](t, s, m, "Manager"))
			assert.Same(t, m, related[*Staff](t, s, l, "Manager"))
			_, err := asyncsession.Related[[]*Staff](s, m, "Reports")
			require.ErrorIs(t, err, asyncsession.ErrNotLoaded, "mid is no manager's manager")
			assert.Equal(t, []*Staff{m}, related[[]*Staff](t, s, b, "Reports"), "boss is low's manager's manager")
			// the managers are in the identity map (SelectIn) or the query's statement (Joined):
			// only the reports of the one manager's manager are queried
			assert.Equal(t, []int{1, 1}, p.levels(mark), how)
			if how == asyncsession.Joined {
				assert.Equal(t, 2, strings.Count(q.String(), "LEFT OUTER JOIN"))
			}
		}
	})
}

// A Joined step chains in the query's statement below T or a Joined step, and a SelectIn step
// below it loads for the joined objects; below a SelectIn step, Joined loads SelectIn.
func TestNestedLoadJoined(t *testing.T) {
	eachTracedBackend(t, func(t *testing.T, e *asyncengine.Engine, p *pipelines) {
		seedShelves(t, e, 4)
		ctx := enginetest.Context(t)
		check := func(s *asyncsession.Session, vs []*Volume) {
			t.Helper()
			require.Len(t, vs, 8)
			for _, v := range vs {
				w := related[*Writer](t, s, v, "Writer")
				bio := related[*WriterBio](t, s, w, "Bio")
				if w.Name == "w00" || w.Name == "w02" {
					require.NotNil(t, bio)
					assert.Equal(t, w.ID, bio.WriterID)
				} else {
					assert.Nil(t, bio)
				}
			}
			assert.Same(t, vs[0].Writer, vs[1].Writer)
		}

		// Joined then SelectIn: the bios of the joined writers, each once, with the tags
		s := newSession(t, e)
		q := asyncsession.From[Volume](s).Load("Writer", asyncsession.Joined).Load("Writer.Bio", asyncsession.SelectIn).OrderBy("title")
		assert.Equal(t, 1, strings.Count(q.String(), "LEFT OUTER JOIN"))
		mark := p.mark()
		vs := await(t, q.All(ctx))
		check(s, vs)
		assert.Equal(t, []int{1, 2}, p.levels(mark))
		for _, st := range p.since(mark)[1] {
			if strings.Contains(st.SQL, "writer_bios") {
				assert.Equal(t, 4, keys(st), "one key per writer")
			}
		}

		// Joined then Joined: one statement
		s = newSession(t, e)
		q = asyncsession.From[Volume](s).Load("Writer", asyncsession.Joined).Load("Writer.Bio", asyncsession.Joined).Load("Tags", asyncsession.Lazy).OrderBy("title")
		assert.Equal(t, 2, strings.Count(q.String(), "LEFT OUTER JOIN"), q.String())
		mark = p.mark()
		vs = await(t, q.All(ctx))
		check(s, vs)
		assert.Equal(t, []int{1}, p.levels(mark))

		// Joined below a SelectIn step (Writer's default, Lazy, reads as SelectIn on a path)
		s = newSession(t, e)
		q = asyncsession.From[Volume](s).Load("Writer.Bio", asyncsession.Joined).Load("Tags", asyncsession.Lazy).OrderBy("title")
		assert.NotContains(t, q.String(), "LEFT OUTER JOIN")
		mark = p.mark()
		vs = await(t, q.All(ctx))
		check(s, vs)
		assert.Equal(t, []int{1, 1, 1}, p.levels(mark))

		// a step given again takes the strategy given last; a Lazy last step loads nothing
		s = newSession(t, e)
		q = asyncsession.From[Volume](s).Load("Writer.Bio", asyncsession.SelectIn).Load("Writer.Bio", asyncsession.Lazy).Load("Tags", asyncsession.Lazy)
		mark = p.mark()
		vs = await(t, q.All(ctx))
		assert.Equal(t, []int{1}, p.levels(mark))
		_, err := asyncsession.Related[*Writer](s, vs[0], "Writer")
		require.ErrorIs(t, err, asyncsession.ErrNotLoaded)
	})
}

// A bad path is a *MappingError naming the model and the step, before anything is sent.
func TestNestedLoadErrors(t *testing.T) {
	eachTracedBackend(t, func(t *testing.T, e *asyncengine.Engine, p *pipelines) {
		seedShelves(t, e, 1)
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		ws := await(t, asyncsession.Select[Writer](ctx, s, "SELECT * FROM writers"))
		mark, before := p.mark(), roundTrips(e)
		fails := func(f *asyncengine.Future[struct{}], want ...string) {
			t.Helper()
			_, err := f.Await(ctx)
			var me *asyncsession.MappingError
			require.ErrorAs(t, err, &me)
			for _, w := range want {
				assert.Contains(t, err.Error(), w)
			}
		}
		query := func(q *asyncsession.Query[Writer]) *asyncengine.Future[struct{}] {
			_, err := q.All(ctx).Await(ctx)
			return asyncengine.Ready(struct{}{}, err)
		}
		unknown := []string{"asyncsession_test.Volume", `no relationship "Tagz" (in path "Books.Tagz")`, "relationships: Writer, Tags"}
		fails(query(asyncsession.From[Writer](s).Load("Books.Tagz", asyncsession.SelectIn)), unknown...)
		fails(asyncsession.LoadAll(ctx, s, ws, "Books.Tagz"), unknown...)
		fails(asyncsession.Load(ctx, s, ws[0], "Books.Tagz"), unknown...)
		fails(asyncsession.Load(ctx, s, ws[0], "Bookz.Tags"), "asyncsession_test.Writer", `no relationship "Bookz" (in path "Bookz.Tags")`)
		fails(asyncsession.LoadAll(ctx, s, ws, "Bio.Writer"), "asyncsession_test.WriterBio", `no relationship "Writer"`)
		for _, path := range []string{"Books..Tags", ".Books", "Books.", "."} {
			fails(asyncsession.LoadAll(ctx, s, ws, path), "asyncsession_test.Writer", fmt.Sprintf("path %q has an empty step", path))
			fails(query(asyncsession.From[Writer](s).Load(path, asyncsession.SelectIn)), "empty step")
		}
		fails(query(asyncsession.From[Writer](s).Load("Books.Tags", asyncsession.Joined)), "asyncsession_test.Volume.Tags", `Load("Books.Tags", Joined)`, "collection")
		fails(query(asyncsession.From[Writer](s).Load("Books.Writer.Books", asyncsession.Joined)), "asyncsession_test.Writer.Books")
		fails(query(asyncsession.From[Writer](s).Load("Books", 0)), `Load("Books", 0): the strategy is Lazy, SelectIn or Joined`)
		_, err := asyncsession.Related[[]*Tag](s, ws[0], "Books.Tags")
		require.ErrorContains(t, err, `"Books.Tags" is a path: this call takes one relationship name`)
		assert.Empty(t, p.levels(mark), "nothing was sent")
		assert.Equal(t, before, roundTrips(e))
	})
}

// Round trips on the wire: one per level of a path, whatever the number of objects.
func TestNestedLoadRoundTrips(t *testing.T) {
	e := newEngine(t, enginetestURL(t))
	relSchema(t, e)
	seedShelves(t, e, 50)
	ctx := enginetest.Context(t)
	trips := func(path string, limit int) int64 {
		s := newSession(t, e)
		before := roundTrips(e)
		ws := await(t, asyncsession.From[Writer](s).Load(path, asyncsession.SelectIn).OrderBy("name").Limit(limit).All(ctx))
		require.Len(t, ws, limit)
		await(t, s.Commit(ctx))
		return roundTrips(e) - before
	}
	for _, c := range []struct {
		path  string
		limit int
		want  int64 // BEGIN and the writers; Books and Fans; a round trip per step below; COMMIT
	}{
		{"Books", 50, 3}, {"Books.Tags", 50, 4}, {"Books.Tags.Volumes", 50, 5},
		{"Books", 3, 3}, {"Books.Tags", 3, 4}, {"Books.Tags.Volumes", 3, 5},
		// the first 50 writers are in the identity map: their books' Writer needs no query
		{"Books.Tags.Volumes.Writer", 50, 5}, {"Books.Tags.Volumes.Writer.Bio", 50, 6},
		{"Books.Tags.Volumes.Writer", 3, 6}, {"Books.Tags.Volumes.Writer.Bio", 3, 7},
	} {
		trips(c.path, c.limit) // prepares the statements
		assert.Equal(t, c.want, trips(c.path, c.limit), "%s, %d writers", c.path, c.limit)
	}
}

// In a sharded session each step loads from its owners' shard.
func TestNestedLoadSharded(t *testing.T) {
	for _, backend := range []string{"pgx", "sqlite"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			ctx := enginetest.Context(t)
			set, _ := shardSet(t, backend)
			s := asyncsession.NewSharded(set, byName)
			defer s.Close()
			for _, name := range []string{"Ann", "Bob", "Yan", "Zed"} {
				tag := &Tag{Name: "by " + name}
				w := &Writer{Name: name, Books: []*Volume{{Title: name + "1", Tags: []*Tag{tag}}, {Title: name + "2", Tags: []*Tag{tag}}}}
				require.NoError(t, s.Add(w))
			}
			await(t, s.Commit(ctx))

			check := func(s *asyncsession.Session, ws []*Writer) {
				t.Helper()
				for _, w := range ws {
					shard, _ := s.ShardOf(w)
					books := related[[]*Volume](t, s, w, "Books")
					require.Len(t, books, 2)
					tags := related[[]*Tag](t, s, books[1], "Tags")
					require.Len(t, tags, 1)
					assert.Equal(t, "by "+w.Name, tags[0].Name)
					assert.Same(t, tags[0], books[0].Tags[0])
					tagShard, _ := s.ShardOf(tags[0])
					assert.Equal(t, shard, tagShard)
					assert.Same(t, w, related[[]*Volume](t, s, tags[0], "Volumes")[0].Writer)
				}
			}
			s2 := asyncsession.NewSharded(set, byName)
			defer s2.Close()
			ws := await(t, asyncsession.Select[Writer](ctx, s2, "SELECT * FROM writers ORDER BY name"))
			require.Equal(t, []string{"Ann", "Bob", "Yan", "Zed"}, names(ws))
			await(t, asyncsession.LoadAll(ctx, s2, ws, "Books.Tags.Volumes.Writer"))
			check(s2, ws)

			s3 := asyncsession.NewSharded(set, byName)
			defer s3.Close()
			west := await(t, asyncsession.From[Writer](s3).Load("Books.Tags.Volumes.Writer", asyncsession.SelectIn).OrderBy("name").All(asyncsession.OnShard(ctx, "west")))
			require.Equal(t, []string{"Yan", "Zed"}, names(west))
			check(s3, west)
		})
	}
}
