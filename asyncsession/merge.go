package asyncsession

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/internal/structmap"
)

// Merge copies obj's state onto the session's object of the same primary key — loading it first
// if needed, adding a copy as new if no row has that key — and returns that object. obj itself is
// not added. Every mapped field is copied except server-default (`default`) ones left at zero,
// which keep the loaded value, as Upsert leaves them unwritten.
//
// The objects obj reaches through its relationship fields (a *T that is set, a []*T that is not
// nil, and theirs in turn) are merged the same way, with the same requests, and the relationship
// fields of the merged objects point at the session's objects: a detached author with its books
// comes back as the session's author holding the session's books, whose Author is that author.
// Merge adds to a collection and never removes from it: a detached object cannot say whether
// its collection was ever loaded whole, so a member it lacks is kept (to remove one, load the
// collection in the session and remove it there). A relationship field left nil keeps the
// session object's own. Objects without a row (or with a server-filled key left at zero) are
// added as copies; an object of the session (pending or loaded) is merged as itself, one the
// session deletes is refused (ErrMergeDeleted), and one another open session holds is refused
// (ErrOtherSession).
func Merge[T any](ctx context.Context, s *Session, obj *T) *asyncengine.Future[*T] {
	m, err := objectModel(obj)
	if err != nil {
		return failed[*T](err)
	}
	graph, err := mergeGraph(reflect.ValueOf(obj), m)
	if err != nil {
		return failed[*T](err)
	}
	// the root's copy, added when no row has its key; in a sharded session its shard is asked
	// for now, since the chooser is not called under the session's lock, and used only then
	root := graph[0]
	var shard string
	var shardErr error
	if s.sharded(m) {
		root.fresh = reflect.New(m.Type)
		root.fresh.Elem().Set(root.v)
		shard, shardErr = s.objectShard(root.fresh.Interface(), m)
	}
	f, resolve := asyncengine.NewPromise[*T]()
	// the join runs under the session's lock: for the objects answered here, or as the fetches
	// of the others serve them
	g := gatherInto(make([]string, len(graph)), func(loaded []*instance) (*T, error) {
		if loaded[0] == nil && shardErr != nil {
			return nil, shardErr
		}
		merged, err := mergeObjects(graph, loaded)
		if err != nil {
			return nil, err
		}
		if loaded[0] == nil {
			in, _, err := s.attach(merged[0].Interface(), m)
			if err != nil {
				return nil, err
			}
			in.shard = shard
		}
		return merged[0].Interface().(*T), nil
	}, resolve)
	s.mu.Lock()
	if err := s.unusable(); err != nil {
		s.mu.Unlock()
		return failed[*T](err)
	}
	// an object another session holds is refused: that session writes it too, or has written a
	// row this one cannot see yet
	for _, n := range graph {
		if obj := n.v.Addr().Interface(); s.objects.of(obj) == nil {
			if err := s.otherHolder(obj); err != nil {
				s.mu.Unlock()
				return failed[*T](err)
			}
		}
	}
	var fetched []int
	for i, n := range graph {
		switch in, held := s.objects.get(n.v.Addr().Interface()); {
		case held:
			g.done(i, in, nil) // the session's own object, pending or loaded
		case n.new:
			g.done(i, nil, nil)
		default:
			fetched = append(fetched, i)
		}
	}
	s.mu.Unlock()
	for _, i := range fetched {
		n := graph[i]
		fetchThen(ctx, s, n.m, keyOf(n.m, n.v), pkValues(n.m, n.v), found, func(in *instance, err error) { g.done(i, in, err) })
	}
	return f
}

// ErrMergeDeleted is matched by the error of a Merge onto an object the session deletes.
var ErrMergeDeleted = errors.New("gosqla: merge onto a deleted object")

// mergeNode is one object of a graph Merge copies into the session.
type mergeNode struct {
	v     reflect.Value // the object given (a struct)
	m     *structmap.Model
	rels  []*relation
	new   bool          // its key is a server-filled one left at zero: no row has it
	fresh reflect.Value // the copy to add (a pointer), made before the answers when set
}

// mergeGraph lists the objects root reaches through its relationship fields, root first, each
// once.
func mergeGraph(root reflect.Value, m *structmap.Model) ([]*mergeNode, error) {
	var graph []*mergeNode
	seen := map[any]bool{}
	var walk func(p reflect.Value, m *structmap.Model, path string) error
	walk = func(p reflect.Value, m *structmap.Model, path string) error {
		if p.IsNil() {
			return fmt.Errorf("%w: %s is nil", ErrNilObject, path)
		}
		if seen[p.Interface()] {
			return nil
		}
		seen[p.Interface()] = true
		rels, err := relationsOf(m)
		if err != nil {
			return err
		}
		n := &mergeNode{v: p.Elem(), m: m, rels: rels, new: true}
		for _, f := range m.PK {
			n.new = n.new && f.Default && f.IsZero(n.v)
		}
		graph = append(graph, n)
		for _, r := range rels {
			fv := r.field(n.v)
			switch {
			case fv.IsNil():
			case r.many():
				for k := range fv.Len() {
					if err := walk(fv.Index(k), r.target, fmt.Sprintf("%s.%s[%d]", path, r.name, k)); err != nil {
						return err
					}
				}
			default:
				if err := walk(fv, r.target, path+"."+r.name); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(root, m, m.Type.Name()); err != nil {
		return nil, err
	}
	return graph, nil
}

// mergeObjects copies each object of graph onto the session's object loaded for it (nil: a new
// copy, not attached; the root's caller attaches it, the flush's cascade the others), then points
// the relationship fields at the merged objects: a *T at the merged one, a collection at its
// members followed by the merged ones it lacks, each member's back-reference at its owner. It
// returns the merged objects, by position. Called locked.
func mergeObjects(graph []*mergeNode, loaded []*instance) ([]reflect.Value, error) {
	// refused before any object changes
	for i, in := range loaded {
		if in != nil && in.state == stateDeleted {
			return nil, fmt.Errorf("%w: the %s with key %v is deleted in this session; merge it before Delete, or after the flush as a new row", ErrMergeDeleted, graph[i].m.Type, pkValue(in))
		}
	}
	merged := make([]reflect.Value, len(graph))
	at := make(map[any]int, len(graph))
	kept := make([][]reflect.Value, len(graph)) // the session objects' own relationship fields
	for i, n := range graph {
		at[n.v.Addr().Interface()] = i
		in := loaded[i]
		if in == nil {
			if !n.fresh.IsValid() {
				n.fresh = reflect.New(n.m.Type)
			}
			n.fresh.Elem().Set(n.v)
			merged[i] = n.fresh
			continue
		}
		merged[i] = reflect.ValueOf(in.ptr)
		for _, r := range n.rels {
			kept[i] = append(kept[i], copyValue(r.field(in.v)))
		}
		copyState(in.v, n.v, n.m)
	}
	for i, n := range graph {
		dst := merged[i].Elem()
		for k, r := range n.rels {
			src := r.field(n.v)
			switch {
			case src.IsNil():
				if kept[i] != nil {
					r.field(dst).Set(kept[i][k])
				}
			case r.many():
				members := reflect.MakeSlice(src.Type(), 0, src.Len())
				if kept[i] != nil {
					members = reflect.AppendSlice(members, kept[i][k])
				}
				held := make(map[uintptr]bool, members.Len()+src.Len())
				for j := range members.Len() {
					held[members.Index(j).Pointer()] = true
				}
				back := r.backref()
				for j := range src.Len() {
					m := merged[at[src.Index(j).Interface()]]
					if !held[m.Pointer()] {
						held[m.Pointer()] = true
						members = reflect.Append(members, m)
					}
					if back != nil && !back.many() {
						back.field(m.Elem()).Set(merged[i])
					}
				}
				r.field(dst).Set(members)
			default:
				r.field(dst).Set(merged[at[src.Interface()]])
			}
		}
	}
	return merged, nil
}

// copyState copies struct v onto the session's object dst, but for server-default (`default`)
// fields left at zero in v, which keep dst's value, as Upsert leaves them unwritten.
func copyState(dst, v reflect.Value, m *structmap.Model) {
	var kept []reflect.Value
	for _, f := range m.Fields {
		if f.Default && f.IsZero(v) {
			kept = append(kept, copyValue(dst.FieldByIndex(f.Index)))
		}
	}
	dst.Set(v)
	for _, f := range m.Fields {
		if f.Default && f.IsZero(v) {
			dst.FieldByIndex(f.Index).Set(kept[0])
			kept = kept[1:]
		}
	}
}
