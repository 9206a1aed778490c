package asyncsession

import (
	"errors"
	"reflect"
	"slices"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/internal/structmap"
)

// A flush's INSERTs are applied as their results are read — keys and server defaults stored in
// the objects, which enter the identity map — while the server still runs the statements after
// them: a batch of more than statementRows rows goes as several INSERTs, so that storing the
// first rows' keys overlaps writing the next ones. finish applies the rest, in order, as before.
// When a statement after them fails, what was stored is taken back from the objects (unstore),
// so that a failed flush leaves them as it found them, as one applied at the end would: an
// object added again inserts afresh, and a column the server generates is not sent a stale
// value.

// asRead is a flush plan's side of it.
type asRead struct {
	readEarly []bool // by statement: an INSERT, which may be applied as it is read
	applied   int    // the appliers run
	applyErr  error  // the error one of them returned
	stored    []storedBatch
}

// storedBatch is what an INSERT applied as read stored in the objects of g: the fields the server
// filled (read back, not sent), and the foreign keys filled from the parents' keys, with the
// values they held before that were not zero.
type storedBatch struct {
	g      *insertGroup
	fields []*structmap.Field
	held   []heldValue
}

type heldValue struct {
	in *instance
	f  *structmap.Field
	v  reflect.Value
}

// mayReadEarly marks statement i as an INSERT whose result may be applied as it is read.
func (fp *flushPlan) mayReadEarly(i int) {
	if len(fp.readEarly) <= i {
		fp.readEarly = append(fp.readEarly, make([]bool, i+1-len(fp.readEarly))...)
	}
	fp.readEarly[i] = true
}

// storing records, as g's INSERT is applied, what unstore needs to take back should the flush
// fail after all (a later statement, a later stage). Called locked.
func (fp *flushPlan) storing(g *insertGroup, fields []*structmap.Field) {
	// the key is read back too when the INSERT sent it: a value the caller gave stays
	b := storedBatch{g: g}
	for _, f := range fields {
		if !slices.Contains(g.cols, f) {
			b.fields = append(b.fields, f)
		}
	}
	for _, in := range g.ins {
		for _, src := range g.srcs {
			if fv := in.v.FieldByIndex(src.fk.Index); !fv.IsZero() {
				b.held = append(b.held, heldValue{in, src.fk, copyValue(fv)})
			}
		}
	}
	fp.stored = append(fp.stored, b)
}

// unstore takes back what the INSERTs applied as read stored in their objects: the fields the
// server filled were zero before (an INSERT sends every other one), and the foreign keys get the
// values they held. Called locked.
func (fp *flushPlan) unstore() {
	for _, b := range slices.Backward(fp.stored) {
		for _, in := range b.g.ins {
			for _, f := range b.fields {
				in.v.FieldByIndex(f.Index).SetZero()
			}
			for _, src := range b.g.srcs {
				in.v.FieldByIndex(src.fk.Index).SetZero()
			}
		}
		for _, h := range b.held {
			h.in.v.FieldByIndex(h.f.Index).Set(h.v)
		}
	}
	fp.stored = nil
}

// apply applies the results the plan's statements returned, from the first that applyEach did
// not apply, or returns the error that stopped applyEach.
func (fp *flushPlan) apply(s *Session, rs []*asyncengine.Result) error {
	if fp.applyErr != nil {
		return fp.applyErr
	}
	for ; fp.applied < len(fp.appliers); fp.applied++ {
		if err := fp.appliers[fp.applied](s, rs[fp.applied:fp.applied+1]); err != nil {
			fp.applyErr = err
			return err
		}
	}
	return nil
}

// applyEach applies statement i's result as it is read, the statements before it applied, when
// it is an INSERT; errNotNow stops applying the plan's results as they are read. Called locked.
func (fp *flushPlan) applyEach(s *Session, i int, r *asyncengine.Result) error {
	switch {
	case fp.applyErr != nil:
		return fp.applyErr
	case i != fp.applied || i >= len(fp.readEarly) || !fp.readEarly[i]:
		return errNotNow
	}
	// a panic is this applier's failure, as at the end (finish): the rest of the pipeline is read
	err := asyncengine.CatchPanic(func() error { return fp.appliers[i](s, []*asyncengine.Result{r}) })
	if err != nil {
		fp.applyErr = err
		return err
	}
	fp.applied++
	return nil
}

// errNotNow stops applying a plan's results as they are read: the rest are applied by finish.
var errNotNow = errors.New("gosqla: applied once the pipeline is read")

// readEarly returns what applies a flush's INSERTs as their results are read, or nil when no
// part of the round has any. It takes the parts in order, as finish does, and stops at the first
// statement that must wait for the pipeline's end: a request's answer, anything else finish
// applies, any statement of a flush but an INSERT.
func (s *Session) readEarly(all *[]part) func(int, *asyncengine.Result) {
	if s.chunking == nil && !slices.ContainsFunc(*all, func(p part) bool { return p.applyEach != nil }) {
		return nil
	}
	k, stopped := 0, false
	return func(i int, r *asyncengine.Result) {
		parts := *all // a chunked flush adds parts as the pipeline sends them
		for !stopped && k < len(parts) && i >= parts[k].offset+len(parts[k].stmts) {
			// a part passed over has nothing to apply, or had every result applied here
			stopped = parts[k].applyEach == nil && (parts[k].o != nil || parts[k].apply != nil)
			k++
		}
		if stopped || k == len(parts) {
			return
		}
		p := &parts[k]
		if p.applyEach == nil {
			stopped = p.o != nil || p.apply != nil
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		stopped = p.applyEach(s, i-p.offset, r) != nil
	}
}
