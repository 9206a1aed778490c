package asyncengine

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
)

// WALPosition is a position in PostgreSQL's write-ahead log (an LSN, written "16/B374D848").
type WALPosition uint64

func (p WALPosition) String() string { return fmt.Sprintf("%X/%X", uint64(p)>>32, uint32(p)) }

// ParseWALPosition reads a position in PostgreSQL's text form ("16/B374D848").
func ParseWALPosition(s string) (WALPosition, error) {
	hi, lo, ok := strings.Cut(s, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, &ConfigError{Key: "WAL position", Value: s, Allowed: `PostgreSQL's LSN text form, two hexadecimal numbers such as "16/B374D848"`}
	}
	return WALPosition(h<<32 | l), nil
}

// ReadYourWrites carries the WAL position of a client's writes, so that its reads through a
// ReplicaSet see them: a read goes only to a replica that has replayed that far (waiting up to
// read_your_writes_wait), else to the primary. Writes made through the ReplicaSet with a context
// carrying it (WithReadYourWrites) advance it. Its Token is a string a service hands to the
// client's next request (a cookie, a header) to keep the guarantee across requests:
//
//	rw, err := asyncengine.NewReadYourWrites(req.Header.Get("X-Read-After"))
//	ctx = asyncengine.WithReadYourWrites(ctx, rw)
//	rs.Exec(ctx, "UPDATE …")                    // advances rw
//	rs.Query(ctx, "SELECT …")                   // sees the update
//	resp.Header().Set("X-Read-After", rw.Token())
//
// It is safe for concurrent use.
type ReadYourWrites struct {
	pos atomic.Uint64
}

// NewReadYourWrites starts from a token (Token's form; "" for a client that wrote nothing yet).
func NewReadYourWrites(token string) (*ReadYourWrites, error) {
	rw := &ReadYourWrites{}
	if token != "" {
		p, err := ParseWALPosition(token)
		if err != nil {
			return nil, err
		}
		rw.pos.Store(uint64(p))
	}
	return rw, nil
}

// Token is the position to hand to the next request; "" when nothing was written.
func (rw *ReadYourWrites) Token() string {
	if p := rw.Position(); p != 0 {
		return p.String()
	}
	return ""
}

// Position is the furthest position written.
func (rw *ReadYourWrites) Position() WALPosition { return WALPosition(rw.pos.Load()) }

// Observe advances the position to p if p is further.
func (rw *ReadYourWrites) Observe(p WALPosition) { advanceTo(&rw.pos, p) }

// advanceTo moves the position held in a forward to p, never back, however many goroutines
// advance it at once.
func advanceTo(a *atomic.Uint64, p WALPosition) {
	for {
		cur := a.Load()
		if uint64(p) <= cur || a.CompareAndSwap(cur, uint64(p)) {
			return
		}
	}
}

// CommitPositionSQL is the expression of the WAL position a ReadYourWrites records after a
// commit on the primary: the flush position, which a COMMIT has reached when it returns under
// synchronous_commit on, local or remote_* and which standbys receive at once; under
// synchronous_commit=off, the insert position, which they receive at the next WAL flush. (The
// insert position in general lies past records written after the commit, which standbys
// receive only at the WAL writer's next flush, up to wal_writer_delay later.) The setting is read
// after the COMMIT: for a transaction that ran SET LOCAL synchronous_commit = off it is the
// session's setting, the position recorded may lie before that transaction's commit, and a read
// may not see its writes. Such a transaction does not get read-your-writes.
const CommitPositionSQL = `(CASE WHEN current_setting('synchronous_commit') = 'off' THEN pg_current_wal_insert_lsn() ELSE pg_current_wal_flush_lsn() END)`

type rywKey struct{}

// WithReadYourWrites returns a context whose reads through a ReplicaSet see the writes rw
// records, and whose writes advance rw.
func WithReadYourWrites(ctx context.Context, rw *ReadYourWrites) context.Context {
	return context.WithValue(ctx, rywKey{}, rw)
}

// ReadYourWritesFrom returns the ReadYourWrites ctx carries, or nil.
func ReadYourWritesFrom(ctx context.Context) *ReadYourWrites {
	rw, _ := ctx.Value(rywKey{}).(*ReadYourWrites)
	return rw
}

type primaryKey struct{}

// WithPrimary returns a context whose reads through a ReplicaSet go to the primary (a read that
// calls a function with side effects, or one that must see the very latest data).
func WithPrimary(ctx context.Context) context.Context {
	return context.WithValue(ctx, primaryKey{}, true)
}

// PrimaryRequested reports whether ctx comes from WithPrimary.
func PrimaryRequested(ctx context.Context) bool {
	asked, _ := ctx.Value(primaryKey{}).(bool)
	return asked
}
