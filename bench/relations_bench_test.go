package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/jackc/pgx/v5"
)

// linkDelay is the latency of the slow link: every server→client chunk arrives this much later
// than it was sent, so that each round trip costs it once.
const linkDelay = 5 * time.Millisecond

// Writer and Novel are the author/book schema of the relationship benchmarks.
type Writer struct {
	ID     int64    `db:"id,pk,default"`
	Name   string   `db:"name"`
	Novels []*Novel `rel:"fk=writer_id"`
}

func (Writer) TableName() string { return "writers" }

type Novel struct {
	ID       int64  `db:"id,pk,default"`
	WriterID int64  `db:"writer_id,fk=writers.id,index"`
	Title    string `db:"title"`
}

func (Novel) TableName() string { return "novels" }

const (
	relWriters = 1000
	relNovels  = 10 // per writer
)

// slowLink is a TCP proxy in front of the server that delays what the server sends by linkDelay:
// a latency, not a throttle (chunks keep their order and are not slowed by each other).
type slowLink struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

func newSlowLink(b *testing.B, target string) *slowLink {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	l := &slowLink{ln: ln, target: target}
	l.wg.Add(1)
	go l.accept()
	b.Cleanup(l.close)
	return l
}

func (l *slowLink) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", l.target)
		if err != nil {
			c.Close()
			continue
		}
		l.mu.Lock()
		l.conns = append(l.conns, c, s)
		l.mu.Unlock()
		l.wg.Add(2)
		go func() { defer l.wg.Done(); _, _ = io.Copy(s, c); s.Close() }()
		go func() { defer l.wg.Done(); delayed(c, s); c.Close() }()
	}
}

type chunk struct {
	at   time.Time
	data []byte
}

// delayed copies src to dst, each chunk linkDelay after it was read. The queue bounds what the
// link holds in flight.
func delayed(dst io.Writer, src io.Reader) {
	q := make(chan chunk, 256)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ch := range q {
			time.Sleep(time.Until(ch.at.Add(linkDelay)))
			if _, err := dst.Write(ch.data); err != nil {
				for range q {
				}
				return
			}
		}
	}()
	for {
		buf := make([]byte, 32<<10)
		n, err := src.Read(buf)
		if n > 0 {
			q <- chunk{time.Now(), buf[:n]}
		}
		if err != nil {
			break
		}
	}
	close(q)
	wg.Wait()
}

func (l *slowLink) close() {
	l.ln.Close()
	l.mu.Lock()
	for _, c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// viaSlowLink returns url with its host replaced by a slow link to it.
func viaSlowLink(b *testing.B, raw string) string {
	b.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		b.Fatal(err)
	}
	l := newSlowLink(b, u.Host)
	u.Host = l.ln.Addr().String()
	return u.String()
}

// relDatabase creates the writers and novels, filled, and returns the URL of a slow link to it.
func relDatabase(b *testing.B) (direct, slow string) {
	b.Helper()
	direct = database(b)
	ctx := context.Background()
	e := engine(b, direct, "")
	if err := asyncsession.CreateAll(ctx, e, Writer{}, Novel{}); err != nil {
		b.Fatal(err)
	}
	if _, err := e.Exec(ctx, "INSERT INTO writers (name) SELECT 'writer ' || i FROM generate_series(1, $1) i", relWriters); err != nil {
		b.Fatal(err)
	}
	if _, err := e.Exec(ctx, "INSERT INTO novels (writer_id, title) SELECT w.id, 'novel ' || n FROM writers w, generate_series(1, $1) n", relNovels); err != nil {
		b.Fatal(err)
	}
	if _, err := e.Exec(ctx, "ANALYZE"); err != nil {
		b.Fatal(err)
	}
	return direct, viaSlowLink(b, direct)
}

// timed runs op once to prepare its statements on the engine's one connection, then b.N times,
// reporting the round trips per run that the engine saw on the wire.
func timed(b *testing.B, e *asyncengine.Engine, op func()) {
	op()
	b.ResetTimer()
	before := e.Stats().RoundTrips
	for i := 0; i < b.N; i++ {
		op()
	}
	b.ReportMetric(float64(e.Stats().RoundTrips-before)/float64(b.N), "roundtrips/op")
}

// BenchmarkNPlusOne loads the novels of 1 000 writers over a link that adds 5 ms to every round
// trip: one query per writer over pgxpool (the N+1 as usually written), lazy Load futures issued
// before awaiting them, and selectin (the builder's default for collections).
func BenchmarkNPlusOne(b *testing.B) {
	_, slow := relDatabase(b)
	ctx := context.Background()
	e := engine(b, slow, "pool_size=1&max_overflow=0")
	check := func(ws []*Writer) {
		if len(ws) != relWriters {
			b.Fatalf("%d writers", len(ws))
		}
		for _, w := range ws {
			if len(w.Novels) != relNovels {
				b.Fatalf("writer %d has %d novels", w.ID, len(w.Novels))
			}
		}
	}
	b.Run("pgxpool_query_per_writer", func(b *testing.B) {
		p := pgxPool(b, slow, 1)
		for i := 0; i < b.N; i++ {
			rows, _ := p.Query(ctx, "SELECT id, name FROM writers ORDER BY id")
			ws, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Writer, error) {
				w := &Writer{}
				return w, r.Scan(&w.ID, &w.Name)
			})
			if err != nil {
				b.Fatal(err)
			}
			for _, w := range ws {
				rows, _ := p.Query(ctx, "SELECT id, writer_id, title FROM novels WHERE writer_id = $1 ORDER BY id", w.ID)
				w.Novels, err = pgx.CollectRows(rows, pgx.RowToAddrOfStructByPos[Novel])
				if err != nil {
					b.Fatal(err)
				}
			}
			check(ws)
		}
	})
	b.Run("gosqla_lazy_futures", func(b *testing.B) {
		timed(b, e, func() {
			s := asyncsession.New(e)
			ws, err := asyncsession.From[Writer](s).Load("Novels", asyncsession.Lazy).OrderBy("id").All(ctx).Await(ctx)
			if err != nil {
				b.Fatal(err)
			}
			fs := make([]*asyncengine.Future[struct{}], len(ws))
			for k, w := range ws {
				fs[k] = asyncsession.Load(ctx, s, w, "Novels")
			}
			if _, err := asyncengine.All(ctx, fs...); err != nil {
				b.Fatal(err)
			}
			check(ws)
			s.Close()
		})
	})
	b.Run("gosqla_selectin", func(b *testing.B) {
		timed(b, e, func() {
			s := asyncsession.New(e)
			ws, err := asyncsession.From[Writer](s).OrderBy("id").All(ctx).Await(ctx)
			if err != nil {
				b.Fatal(err)
			}
			check(ws)
			s.Close()
		})
	})
}

// BenchmarkSaveGraph saves 1 000 writers with 10 novels each, keys generated by the server, in
// one transaction over the slow link: the session's Commit against pgx code that inserts the
// writers with RETURNING and copies the novels in. Both grow the same tables, whose inserts slow
// as they grow and as the server's background work comes and goes: "paired" runs the two
// alternately, call by call, and its ratio is the one to read.
func BenchmarkSaveGraph(b *testing.B) {
	_, slow := relDatabase(b)
	ctx := context.Background()
	e := engine(b, slow, "pool_size=1&max_overflow=0")
	conn, err := pgx.Connect(ctx, slow)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close(ctx) })
	session, copied := saveGraph(e), saveGraphCopy(conn)
	b.Run("gosqla_commit", func(b *testing.B) {
		timed(b, e, func() {
			if err := session(0); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("pgx_returning_copy", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if err := copied(i); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("paired", func(b *testing.B) {
		paired(b, "pgx", "gosqla", copied, session)
	})
}

// saveGraph adds the writers and their novels to a new session and commits it.
func saveGraph(e *asyncengine.Engine) func(int) error {
	ctx := context.Background()
	return func(int) error {
		s := asyncsession.New(e)
		defer s.Close()
		for w := range relWriters {
			wr := &Writer{Name: fmt.Sprint("new ", w)}
			for n := range relNovels {
				wr.Novels = append(wr.Novels, &Novel{Title: fmt.Sprint("novel ", n)})
			}
			if err := s.Add(wr); err != nil {
				return err
			}
		}
		_, err := s.Commit(ctx).Await(ctx)
		return err
	}
}

// saveGraphCopy is saveGraph written with pgx alone: the writers inserted with RETURNING, then
// their novels copied in with the returned keys.
func saveGraphCopy(conn *pgx.Conn) func(int) error {
	ctx := context.Background()
	return func(int) error {
		names := make([]string, relWriters)
		for w := range names {
			names[w] = fmt.Sprint("new ", w)
		}
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			rows, _ := tx.Query(ctx, "INSERT INTO writers (name) SELECT unnest($1::text[]) RETURNING id", names)
			ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
			if err != nil {
				return err
			}
			if len(ids) != relWriters {
				return errors.New("short RETURNING")
			}
			novels := make([][]any, 0, relWriters*relNovels)
			for _, id := range ids {
				for n := range relNovels {
					novels = append(novels, []any{id, fmt.Sprint("novel ", n)})
				}
			}
			_, err = tx.CopyFrom(ctx, pgx.Identifier{"novels"}, []string{"writer_id", "title"}, pgx.CopyFromRows(novels))
			return err
		})
	}
}
