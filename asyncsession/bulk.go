package asyncsession

import (
	"context"
	"fmt"
	"iter"
	"reflect"
	"slices"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/internal/structmap"
)

// Upsert inserts objs, updating the rows whose conflictCols (default: the primary key) already
// exist — INSERT … ON CONFLICT (…) DO UPDATE … RETURNING — and returns the resulting objects,
// merged into the identity map: a loaded object is overwritten with the row's state and
// returned; otherwise the object passed in becomes the session's object for that key.
func Upsert[T any](ctx context.Context, s *Session, objs []*T, conflictCols ...string) *asyncengine.Future[[]*T] {
	m, err := modelOf((*T)(nil))
	if err != nil {
		return failed[[]*T](err)
	}
	if len(objs) == 0 {
		return asyncengine.Ready[[]*T](nil, nil)
	}
	for i, obj := range objs {
		if obj == nil {
			return failed[[]*T](fmt.Errorf("gosqla: Upsert: element %d is a nil %T: %w", i, obj, ErrNilObject))
		}
	}
	if ctx, err = objectsShard(ctx, s, objs); err != nil {
		return failed[[]*T](err)
	}
	if len(conflictCols) == 0 {
		for _, f := range m.PK {
			conflictCols = append(conflictCols, f.Column)
		}
	}
	for _, c := range conflictCols {
		if m.Column(c) == nil {
			return failed[[]*T](&MappingError{Type: m.Type.String(), Reason: fmt.Sprintf("conflict column %q is not mapped", c)})
		}
	}
	t, err := s.oneTarget(ctx, m, "Upsert", "", nil)
	if err != nil {
		return failed[[]*T](err)
	}
	o, f, resolve := newOp[[]*T](ctx)
	o.engine = t.e
	o.autoflush = flushAll
	o.reads = readsTable(tableWord(m))
	d := o.engine.Dialect()
	// objects are grouped by the columns they set: a server-filled column left at zero is not
	// written, so an object without a generated key is inserted while one with it updates its row
	type batch struct {
		cols []*structmap.Field
		idx  []int // positions in objs
	}
	var batches []*batch
	var groups []*batch
	for i, obj := range objs {
		cols := insertColumns(newInstance(obj, m))
		var g *batch
		for _, x := range groups {
			if sameFields(x.cols, cols) {
				g = x
				break
			}
		}
		if g == nil {
			g = &batch{cols: cols}
			groups = append(groups, g)
		}
		chunk := d.MaxParams / max(len(cols), 1)
		if len(g.idx) == chunk {
			full := *g
			batches = append(batches, &full)
			g.idx = nil
		}
		g.idx = append(g.idx, i)
	}
	batches = append(batches, groups...)
	o.readsBack = true
	gen := 0
	// the objects this write claimed, and those of them that became the session's: the others
	// are let go of once it is over
	var claimed []int
	held := make([]bool, len(objs))
	fail := o.fail
	o.fail = func(err error) {
		letGoOf(s, objs, claimed, held)
		claimed = nil
		fail(err)
	}
	o.build = func(s *Session) ([]asyncengine.Statement, error) {
		var err error
		if claimed, err = claimAll(s, objs); err != nil {
			return nil, err
		}
		gen = s.gen // a savepoint begun later in the same round is not this write's
		stmts := make([]asyncengine.Statement, 0, len(batches))
		for _, b := range batches {
			rows := make([]reflect.Value, len(b.idx))
			for k, i := range b.idx {
				rows[k] = reflect.ValueOf(objs[i]).Elem()
			}
			sql, args := valuesSQL(d, m, b.cols, rows)
			stmts = append(stmts, asyncengine.Statement{SQL: sql + onConflict(d, m, b.cols, conflictCols) + returning(d, m), Args: args})
		}
		return stmts, nil
	}
	o.apply = func(s *Session, rs []*asyncengine.Result) error {
		out := make([]*T, len(objs))
		for n, r := range rs {
			b := batches[n]
			if r.Len() != len(b.idx) {
				return fmt.Errorf("gosqla: Upsert into %s returned %d rows for %d objects", m.Table, r.Len(), len(b.idx))
			}
			for k := range r.Len() {
				i := b.idx[k]
				in, err := s.mergeInto(m, r, k, objs[i], gen, t.name)
				if err != nil {
					return err
				}
				out[i] = in.ptr.(*T)
				held[i] = out[i] == objs[i]
			}
		}
		letGoOf(s, objs, claimed, held)
		claimed = nil
		resolve(out, nil)
		return nil
	}
	s.submit(o)
	return f
}

// mergeInto merges a row as the state of its key, overwriting a loaded object; when none is
// loaded, obj becomes the session's object for the key. Called locked.
func (s *Session) mergeInto(m *structmap.Model, r *asyncengine.Result, i int, obj any, gen int, shard string) (*instance, error) {
	in := newInstance(obj, m)
	if err := in.load(r, i); err != nil {
		return nil, err
	}
	in.shard = shard
	in.rekey()
	if loaded := s.identity.get(in.key()); loaded != nil {
		if loaded.ptr != obj {
			if err := loaded.load(r, i); err != nil {
				return nil, err
			}
		} else {
			loaded.takeSnapshot()
			loaded.expired = false
		}
		return loaded, nil
	}
	if prev, ok := s.objects.get(obj); ok { // a pending object upserted directly: in replaces it
		s.pending = without(s.pending, []*instance{prev})
		prev.attached = false
		in.owned, prev.owned = prev.owned, false
	} else if err := s.own(in); err != nil {
		return nil, err
	}
	delete(s.letGo, addressOf(in))
	in.state = statePersistent
	in.inserted(gen)
	s.register(in)
	return in, nil
}

// InsertMany inserts objs in bulk, outside the identity map — COPY on PostgreSQL, multi-row
// INSERTs sized to the parameter limit elsewhere — and returns the number of rows. Server-filled
// columns (`db:",default"`) are left to the server. A nil element fails the call before anything
// is sent.
func InsertMany[T any](ctx context.Context, s *Session, objs []*T) *asyncengine.Future[int64] {
	if i := slices.Index(objs, nil); i >= 0 {
		return failed[int64](nilElement(objs[i], i))
	}
	ctx, err := objectsShard(ctx, s, objs)
	if err != nil {
		return failed[int64](err)
	}
	return InsertSeq(ctx, s, slices.Values(objs))
}

// InsertSeq is InsertMany for a sequence, read once and as it is sent: a million rows take the
// memory of one page of them. Each object's fields are read when it is yielded, so the sequence
// may reuse one struct for every row (data a pointer or slice field refers to is read when its
// page is sent, and must not change before then). A nil element, found only once the rows before
// it were sent, fails the call and leaves the session pending rollback.
func InsertSeq[T any](ctx context.Context, s *Session, seq iter.Seq[*T]) *asyncengine.Future[int64] {
	m, err := modelOf((*T)(nil))
	if err != nil {
		return failed[int64](err)
	}
	var cols []*structmap.Field
	for _, f := range m.Fields {
		if !f.Default {
			cols = append(cols, f)
		}
	}
	t, err := s.oneTarget(ctx, m, "InsertMany or InsertSeq", "", nil)
	if err != nil {
		return failed[int64](err)
	}
	o, f, resolve := newOp[int64](ctx)
	o.engine = t.e
	names := make([]string, len(cols))
	for i, f := range cols {
		names[i] = f.Column
	}
	o.run = func(ctx context.Context, c *asyncengine.Conn) error {
		rows, seqErr := objectRows(cols, seq)
		n, err := c.CopyFrom(ctx, m.Table, names, rows)
		if *seqErr != nil {
			err = *seqErr
		}
		if err == nil {
			resolve(n, nil)
		}
		return err
	}
	s.submit(o)
	return f
}

// objectRows turns objects into rows of column values, copied as each object is yielded (an
// iterator may reuse one struct). The driver may read the rows on a goroutine of its own: the
// sequence is pulled here so that its panic comes back as an error instead of killing the
// process. The error the sequence caused is also left in *seqErr.
func objectRows[T any](cols []*structmap.Field, seq iter.Seq[*T]) (iter.Seq2[[]any, error], *error) {
	row := make([]any, len(cols))
	seqErr := new(error)
	rows := func(yield func([]any, error) bool) {
		next, stop := iter.Pull(seq)
		defer func() { _ = asyncengine.CatchPanic(func() error { stop(); return nil }) }()
		for i := 0; ; i++ {
			var obj *T
			var ok bool
			if err := asyncengine.CatchPanic(func() error { obj, ok = next(); return nil }); err != nil {
				*seqErr = err
			} else if ok && obj == nil {
				*seqErr = nilElement(obj, i)
			}
			if *seqErr != nil {
				yield(nil, *seqErr)
				return
			}
			if !ok {
				return
			}
			v := reflect.ValueOf(obj).Elem()
			for i, f := range cols {
				row[i] = f.Value(v)
			}
			if !yield(row, nil) {
				return
			}
		}
	}
	return rows, seqErr
}

func nilElement(obj any, i int) error {
	return fmt.Errorf("gosqla: InsertMany: element %d is a nil %T: %w", i, obj, ErrNilObject)
}
