package asyncsession

import (
	"cmp"
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/gosqla/gosqla/internal/structmap"
)

// loadStep is one step of the relationship paths a query or a load follows: relationship r,
// loaded how (zero until resolved: as the relationship's default), and the steps below it.
type loadStep struct {
	r    *relation
	how  Strategy
	next []*loadStep
}

// relationPath resolves path, relationship names joined by dots ("Books.Tags"), from model m: a
// step that names no relationship of its model is a *MappingError naming both, as is an empty
// step.
func relationPath(m *structmap.Model, path string) ([]*relation, error) {
	names := strings.Split(path, ".")
	if len(names) == 1 {
		r, err := relationOf(m, path)
		if err != nil {
			return nil, err
		}
		return []*relation{r}, nil
	}
	if slices.Contains(names, "") {
		return nil, &MappingError{Type: m.Type.String(),
			Reason: fmt.Sprintf("relationship path %q has an empty step; join relationship names with single dots, as in \"Books.Tags\"", path)}
	}
	rels := make([]*relation, 0, len(names))
	for _, name := range names {
		r, err := relationIn(m, name, path)
		if err != nil {
			return nil, err
		}
		rels = append(rels, r)
		m = r.target
	}
	return rels, nil
}

// addPath adds the steps of path below steps, the last loaded how, and returns steps; a step
// already there is shared, and a path given again sets its last step's strategy anew.
func addPath(steps []*loadStep, path []*relation, how Strategy) []*loadStep {
	i := slices.IndexFunc(steps, func(st *loadStep) bool { return st.r == path[0] })
	if i < 0 {
		i = len(steps)
		steps = append(steps, &loadStep{r: path[0]})
	}
	if len(path) == 1 {
		steps[i].how = how
	} else {
		steps[i].next = addPath(steps[i].next, path[1:], how)
	}
	return steps
}

// cloneSteps copies steps and the steps below them, which addPath changes in place.
func cloneSteps(steps []*loadStep) []*loadStep {
	if steps == nil {
		return nil
	}
	out := make([]*loadStep, len(steps))
	for i, st := range steps {
		c := *st
		c.next = cloneSteps(st.next)
		out[i] = &c
	}
	return out
}

// resolveSteps returns the steps that load, with their strategies: the one given, else the
// relationship's default. A step that steps below it go through is loaded (Lazy there reads as
// SelectIn), and a step joins only a statement its parent is in (joinable): a Joined step below a
// SelectIn one loads SelectIn, in the next query.
func resolveSteps(steps []*loadStep, joinable bool) []*loadStep {
	var out []*loadStep
	for _, st := range steps {
		how := cmp.Or(st.how, st.r.strategy)
		if how == Joined && !joinable {
			how = SelectIn
		}
		next := resolveSteps(st.next, how == Joined)
		if how == Lazy {
			if len(next) == 0 {
				continue
			}
			how = SelectIn
		}
		out = append(out, &loadStep{r: st.r, how: how, next: next})
	}
	return out
}

// pathLoad is the loading of relationship paths below some objects, step after step: a step's
// query is sent once the step above it has loaded, for all of that step's objects at once.
// done is called once, when every request has answered.
type pathLoad struct {
	ctx   context.Context
	again bool // read every step again, loaded or not (Reload)
	done  func(error)
	mu    sync.Mutex // a request may be refused outside the session's lock
	left  int
	err   error
}

// answered records a request's answer; each request's first answer counts (a panic on the
// session's goroutine refuses requests that had answered).
func (pl *pathLoad) answered(once *bool, err error) {
	pl.mu.Lock()
	if *once {
		pl.mu.Unlock()
		return
	}
	*once = true
	if err != nil && pl.err == nil {
		pl.err = err
	}
	pl.left--
	end, err := pl.left == 0, pl.err
	pl.mu.Unlock()
	if end {
		pl.done(err)
	}
}

// start returns ops, the requests of the first steps, and calls done now when there are none.
func (pl *pathLoad) start(ops []*op) []*op {
	if len(ops) == 0 {
		pl.done(nil)
	}
	return ops
}

func (pl *pathLoad) failed() bool {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return pl.err != nil
}

// follow returns the requests that load steps below parents, objects of the session: for a
// SelectIn step, one request per shard of the parents for all of them; for a Joined step, whose
// objects came with their parents' query, the requests of the steps below it. Called locked.
func (s *Session) follow(pl *pathLoad, steps []*loadStep, parents []any) []*op {
	var ops []*op
	for _, st := range steps {
		if st.how == Joined {
			ops = append(ops, s.follow(pl, st.next, s.related(parents, st.r))...)
			continue
		}
		if len(parents) == 0 {
			continue
		}
		shards, groups := s.byShard(parents)
		for i, group := range groups {
			ops = append(ops, s.stepOp(pl, st, group, shards[i], len(groups) > 1))
		}
	}
	return ops
}

// stepOp is the request that loads step st for owners objs of shard; once loaded, the requests of
// the steps below it are queued, ahead of later requests: those of one level travel together.
// named prefixes its error with the shard's name.
func (s *Session) stepOp(pl *pathLoad, st *loadStep, objs []any, shard string, named bool) *op {
	pl.mu.Lock()
	pl.left++
	pl.mu.Unlock()
	var once bool
	return loadOp(pl.ctx, st.r, objs, s.relTarget(st.r, shard), pl.again, func() {
		if len(st.next) > 0 && !pl.failed() {
			s.enqueue(s.follow(pl, st.next, s.related(objs, st.r))...)
		}
		pl.answered(&once, nil)
	}, func(err error) {
		if named {
			err = fmt.Errorf("shard %q: %w", shard, err)
		}
		pl.answered(&once, err)
	})
}

// related returns the objects that relationship r of owners holds, each once, leaving out those
// the session does not hold. Called locked.
func (s *Session) related(owners []any, r *relation) []any {
	var out []any
	seen := map[any]bool{}
	add := func(v reflect.Value) {
		if v.IsNil() {
			return
		}
		obj := v.Interface()
		if _, held := s.objects.get(obj); held && !seen[obj] {
			seen[obj] = true
			out = append(out, obj)
		}
	}
	for _, owner := range owners {
		in, ok := s.objects.get(owner)
		if !ok || in.model != r.owner {
			continue
		}
		fv := r.field(in.v)
		if !r.many() {
			add(fv)
			continue
		}
		for i := range fv.Len() {
			add(fv.Index(i))
		}
	}
	return out
}
