package asyncsession

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/gosqla/gosqla/internal/structmap"
)

// ErrNotLoaded is matched by the error of Related for a relationship the session has not loaded
// for that object: its field is not read as empty.
var ErrNotLoaded = errors.New("gosqla: relationship not loaded")

// ErrConflictingParent is matched by the error of a flush that finds an object given two parents
// with nothing to say which of them the program meant: in a parent's collection while its own
// many-to-one field points at another parent (a many-to-one never synced by the session), in the
// collections of two parents, or the one-to-one of two parents. The error's text names the
// relationship: set both sides to the same parent, or take the object out of one of them.
var ErrConflictingParent = errors.New("gosqla: an object has two parents")

type relKind int

const (
	manyToOne  relKind = iota // *T, the fk on the owner
	oneToOne                  // *T, the fk on the target
	oneToMany                 // []*T, the fk on the target
	manyToMany                // []*T, through an association table
)

// Strategy is how a relationship is loaded when its owners are: the relationship's default
// (`load=` in its tag) or a query's override (Query.Load).
type Strategy int

const (
	// Lazy loads nothing with the owner: Load fetches it, as a future.
	Lazy Strategy = iota + 1
	// SelectIn loads the relationship of every owner a query returns with one more query
	// (= ANY($1) on PostgreSQL, an IN list elsewhere). The default for collections.
	SelectIn
	// Joined loads a many-to-one or one-to-one relationship in the owner's own query, with a
	// LEFT OUTER JOIN. The default for *T relationships is Lazy.
	Joined
)

// relation is a resolved `rel` field.
type relation struct {
	name   string
	index  []int
	owner  *structmap.Model
	target *structmap.Model
	kind   relKind
	// fk is the column holding the reference: on the owner (manyToOne), on the target
	// (oneToOne, oneToMany) or on the association table (manyToMany, referencing the owner).
	fk *structmap.Field
	// through, fkCol and refCol name the association table and its columns (manyToMany).
	through, fkCol, refCol string
	order                  []string // "column" or "column DESC"
	cascadeDelete, orphan  bool
	strategy               Strategy
}

// many reports whether the relationship is a collection.
func (r *relation) many() bool { return r.kind == oneToMany || r.kind == manyToMany }

var relCache sync.Map // reflect.Type → []*relation or error

// relationsOf resolves the relationships of m (once per type). A tag that cannot be resolved is
// a *MappingError naming what to change.
func relationsOf(m *structmap.Model) ([]*relation, error) {
	if len(m.Rels) == 0 {
		return nil, nil
	}
	if v, ok := relCache.Load(m.Type); ok {
		if err, isErr := v.(error); isErr {
			return nil, err
		}
		return v.([]*relation), nil
	}
	rels, err := resolve(m)
	if err == nil {
		err = unorderable(m, rels)
	}
	if err != nil {
		relCache.Store(m.Type, err)
		return nil, err
	}
	relCache.Store(m.Type, rels)
	return rels, nil
}

// relationOf finds the relationship called name (the Go field name) on m.
func relationOf(m *structmap.Model, name string) (*relation, error) {
	return relationIn(m, name, name)
}

// relationIn is relationOf for a step of a relationship path, which its error names.
func relationIn(m *structmap.Model, name, path string) (*relation, error) {
	rels, err := relationsOf(m)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(rels))
	for i, r := range rels {
		if r.name == name {
			return r, nil
		}
		names[i] = r.name
	}
	in, has := "", strings.Join(names, ", ")
	if path != name {
		in = fmt.Sprintf(" (in path %q)", path)
	}
	if has == "" {
		has = "none"
	}
	if path == name && strings.Contains(name, ".") {
		return nil, &MappingError{Type: m.Type.String(), Reason: fmt.Sprintf("%q is a path: this call takes one relationship name (relationships: %s); paths go to Load, LoadAll and Query.Load", name, has)}
	}
	return nil, &MappingError{Type: m.Type.String(), Reason: fmt.Sprintf("no relationship %q%s; tag a field `rel:\"…\"` (relationships: %s)", name, in, has)}
}

func resolve(m *structmap.Model) ([]*relation, error) {
	var out []*relation
	for _, rf := range m.Rels {
		r, err := resolveOne(m, rf)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// dependency is a row of model on that must be inserted after a row of model of, because its
// key column fk, which cannot hold NULL, references it.
type dependency struct {
	on, of *structmap.Model
	fk     *structmap.Field
}

// dependencies are the models whose rows must go in before rows of other models, as the
// relationships rels declare; a model's key referencing its own table is left to the row order.
func dependencies(rels []*relation) []dependency {
	var out []dependency
	for _, r := range rels {
		if r.kind == manyToMany || r.owner == r.target || nullable(r.fk) {
			continue
		}
		if r.kind == manyToOne {
			out = append(out, dependency{on: r.owner, of: r.target, fk: r.fk})
		} else {
			out = append(out, dependency{on: r.target, of: r.owner, fk: r.fk})
		}
	}
	return out
}

// unorderable returns a *MappingError when the relationships reachable from m make a cycle of
// models through keys that cannot hold NULL, one of them m's: no order of INSERTs satisfies it
// (with generated keys, every row waits for another's). Cycles of rows of one model are found at
// flush, where they happen.
func unorderable(m *structmap.Model, rels []*relation) error {
	deps := dependencies(rels)
	seen := map[*structmap.Model]bool{m: true}
	for queue := slices.Clone(rels); len(queue) > 0; queue = queue[1:] {
		target := queue[0].target
		if seen[target] {
			continue
		}
		seen[target] = true
		if more, err := resolve(target); err == nil { // a bad tag there is reported when that model is used
			deps = append(deps, dependencies(more)...)
			queue = append(queue, more...)
		}
	}
	// a path of dependencies from m back to m
	var path []dependency
	var visit func(x *structmap.Model, on map[*structmap.Model]bool) bool
	visit = func(x *structmap.Model, on map[*structmap.Model]bool) bool {
		for _, d := range deps {
			if d.on != x || on[d.of] && d.of != m {
				continue
			}
			path = append(path, d)
			if d.of == m {
				return true
			}
			on[d.of] = true
			if visit(d.of, on) {
				return true
			}
			path = path[:len(path)-1]
		}
		return false
	}
	if !visit(m, map[*structmap.Model]bool{m: true}) {
		return nil
	}
	links := make([]string, len(path))
	for i, d := range path {
		links[i] = fmt.Sprintf("%s.%s → %s", d.on.Type.Name(), d.fk.Name, d.of.Type.Name())
	}
	return &MappingError{Type: m.Type.String(), Field: path[0].fk.Name,
		Reason: fmt.Sprintf("the foreign keys %s form a cycle that cannot be ordered: make one of them nullable (a pointer), so that its row is inserted first and its key set after", strings.Join(links, ", "))}
}

func resolveOne(m *structmap.Model, rf *structmap.Rel) (*relation, error) {
	fail := func(format string, args ...any) error {
		return &MappingError{Type: m.Type.String(), Field: rf.Name, Reason: fmt.Sprintf(format, args...)}
	}
	r := &relation{name: rf.Name, index: rf.Index, owner: m}
	t := rf.Type
	many := false
	switch {
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Pointer && t.Elem().Elem().Kind() == reflect.Struct:
		many, t = true, t.Elem().Elem()
	case t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct:
		t = t.Elem()
	default:
		return nil, fail("a relationship field is a *T (one object) or a []*T (a collection) of a mapped struct T, not a %s", rf.Type)
	}
	target, err := structmap.Of(t)
	if err != nil {
		return nil, err
	}
	if len(target.PK) != 1 || len(m.PK) != 1 {
		return nil, fail("relationships join on a single-column primary key; %s and %s must each have one", m.Type, target.Type)
	}
	r.target = target
	var fk string
	for _, opt := range strings.Split(rf.Tag, ",") {
		opt = strings.TrimSpace(opt)
		k, v, _ := strings.Cut(opt, "=")
		switch k {
		case "fk":
			fk = v
		case "through":
			r.through = v
		case "ref":
			r.refCol = v
		case "order":
			for _, o := range strings.Fields(strings.ReplaceAll(v, "|", " | ")) {
				switch {
				case o == "|":
				case strings.EqualFold(o, "desc") && len(r.order) > 0:
					r.order[len(r.order)-1] += " DESC"
				case strings.EqualFold(o, "asc"):
				default:
					if target.Column(o) == nil {
						return nil, fail("order=%s: %s has no column %q", v, target.Type, o)
					}
					r.order = append(r.order, o)
				}
			}
		case "cascade":
			for _, c := range strings.Split(v, "|") {
				switch c {
				case "delete":
					r.cascadeDelete = true
				case "delete-orphan":
					r.cascadeDelete, r.orphan = true, true
				default:
					return nil, fail("cascade=%s: allowed are delete and delete-orphan (join them with |)", c)
				}
			}
		case "load":
			switch v {
			case "lazy":
				r.strategy = Lazy
			case "selectin":
				r.strategy = SelectIn
			case "joined":
				r.strategy = Joined
			default:
				return nil, fail("load=%s: allowed are lazy, selectin and joined", v)
			}
		case "":
		default:
			return nil, fail("unknown rel option %q (allowed: fk=column, through=table, ref=column, order=columns, cascade=delete|delete-orphan, load=lazy|selectin|joined)", opt)
		}
	}
	if fk == "" {
		return nil, fail("name the foreign-key column: `rel:\"fk=column\"`")
	}
	switch {
	case r.through != "":
		if !many {
			return nil, fail("through=%s needs a collection field ([]*%s)", r.through, target.Type.Name())
		}
		if r.refCol == "" {
			return nil, fail("through=%s needs ref=column, the association column that references %s", r.through, target.Table)
		}
		r.kind, r.fkCol = manyToMany, fk
	case many:
		f := target.Column(fk)
		if f == nil || !references(f, m) {
			return nil, fail("fk=%s must be a column of %s tagged fk=%s.%s (a collection's key is on the objects it holds)", fk, target.Type, m.Table, m.PK[0].Column)
		}
		r.kind, r.fk = oneToMany, f
	default:
		if f := m.Column(fk); f != nil && references(f, target) {
			r.kind, r.fk = manyToOne, f
		} else if f := target.Column(fk); f != nil && references(f, m) {
			r.kind, r.fk = oneToOne, f
		} else {
			return nil, fail("fk=%s must be a column of %s tagged fk=%s.%s, or of %s tagged fk=%s.%s", fk, m.Type, target.Table, target.PK[0].Column, target.Type, m.Table, m.PK[0].Column)
		}
	}
	if r.orphan && r.kind != oneToMany && r.kind != oneToOne {
		return nil, fail("cascade=delete-orphan applies to a one-to-many collection or a one-to-one (a *T whose fk is a column of the other side), not to a many-to-one or a many-to-many")
	}
	if r.strategy == Joined && r.many() {
		return nil, fail("load=joined applies to a *T relationship; load collections with selectin")
	}
	if r.strategy == 0 {
		r.strategy = Lazy
		if r.many() {
			r.strategy = SelectIn
		}
	}
	return r, nil
}

// references reports whether column f is a foreign key to m's primary key.
func references(f *structmap.Field, m *structmap.Model) bool {
	return f.FK == m.Table+"."+m.PK[0].Column
}

// field is the relationship's field in the owner struct v.
func (r *relation) field(v reflect.Value) reflect.Value { return v.FieldByIndex(r.index) }

// oneToOneBack is the one-to-one of r's target whose child's many-to-one back is r
// (Author.Profile, for Profile.Author), or nil.
func (r *relation) oneToOneBack() *relation {
	rels, err := relationsOf(r.target)
	if err != nil || r.kind != manyToOne {
		return nil
	}
	for _, b := range rels {
		if b.target == r.owner && b.kind == oneToOne && b.fk == r.fk {
			return b
		}
	}
	return nil
}

// backref is the target's relationship pointing back along the same key, if it declares one.
func (r *relation) backref() *relation {
	rels, err := relationsOf(r.target)
	if err != nil {
		return nil
	}
	for _, b := range rels {
		if b.target != r.owner {
			continue
		}
		switch {
		case r.kind == oneToMany && b.kind == manyToOne && b.fk == r.fk,
			r.kind == manyToOne && b.kind == oneToMany && b.fk == r.fk,
			r.kind == oneToOne && b.kind == manyToOne && b.fk == r.fk,
			r.kind == manyToMany && b.kind == manyToMany && b.through == r.through && b.fkCol == r.refCol:
			return b
		}
	}
	return nil
}
