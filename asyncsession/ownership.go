package asyncsession

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"weak"
)

// ErrOtherSession is matched by the error of Add, Upsert, Merge or a flush given an object that
// another open session has claimed (added, upserted, or reached by its flush): both would write
// it.
var ErrOtherSession = errors.New("gosqla: object is in another session")

// owners records, for every object a session took from its caller (Add, an object reached from
// one, an upsert), the session holding it, so that a second session refuses it. An entry counts
// while its session is open, reachable and holds the object: forgetting the object removes it
// (a flushed DELETE keeps it until it commits: a rollback restores the object), and the entries
// of a closed session, or of one dropped without Close, are removed once the session is
// collected (its cleanup), off the caller's path. The map is split by address, so
// that sessions adding objects at once seldom wait for each other.
var owners [32]ownerShard

type ownerShard struct {
	mu sync.Mutex
	// by the object's address, not a pointer to it: the session's own map keeps the object
	// alive, and the registry must not
	m map[uintptr]*ownership
}

func ownerShardOf(addr uintptr) *ownerShard { return &owners[ownerShardIndex(addr)] }

func ownerShardIndex(addr uintptr) int { return int((addr>>4 ^ addr>>10) % uintptr(len(owners))) }

// ownership is a session's side of the registry: its entries' value, and the addresses it
// registered (some since forgotten), which its cleanup removes.
type ownership struct {
	self   weak.Pointer[Session] // nil once the session is collected, before its cleanup runs
	closed atomic.Bool
	addrs  []uintptr
}

// holds reports whether o's session still holds what o registered.
func (o *ownership) holds() bool { return !o.closed.Load() && o.self.Value() != nil }

// own registers in as the session's, or refuses it when another session holds it. Called
// locked.
func (s *Session) own(in *instance) error {
	if err := s.claim(addressOf(in), in.ptr); err != nil {
		return err
	}
	in.owned = true
	return nil
}

// claim registers the object at addr as the session's, or refuses it when another session
// holds it. Called locked.
func (s *Session) claim(addr uintptr, obj any) error {
	_, err := s.claimNew(addr, obj)
	return err
}

// claimNew is claim, reporting whether the claim is new: the registry did not hold the object as
// the session's before. Called locked.
func (s *Session) claimNew(addr uintptr, obj any) (bool, error) {
	if s.owned == nil {
		s.owned = newOwnership(s)
	}
	sh := ownerShardOf(addr)
	sh.mu.Lock()
	o := sh.m[addr]
	if s.refusedBy(o) {
		sh.mu.Unlock()
		return false, otherSessionError(obj)
	}
	if sh.m == nil {
		sh.m = map[uintptr]*ownership{}
	}
	sh.m[addr] = s.owned
	sh.mu.Unlock()
	if o != s.owned {
		s.owned.addrs = append(s.owned.addrs, addr)
	}
	return o != s.owned, nil
}

// refusedBy reports an entry of another session that still holds its object.
func (s *Session) refusedBy(o *ownership) bool { return o != nil && o != s.owned && o.holds() }

// claimAll claims the objects of an Upsert as it is built, before anything is sent: its rows
// are stored into them as they come back. An object the session holds is its own already. It
// returns the positions of the objects it claimed anew, which the Upsert lets go of when they
// do not become the session's (their keys were loaded, or the write failed); a refused object
// lets go of those claimed before it. Called locked.
func claimAll[T any](s *Session, objs []*T) ([]int, error) {
	var claimed []int
	for i, obj := range objs {
		if _, ok := s.objects[any(obj)]; !ok {
			taken, err := s.claimNew(objectAddress(obj), obj)
			if err != nil {
				letGoOf(s, objs, claimed, nil)
				return nil, fmt.Errorf("%w (Upsert, element %d)", err, i)
			}
			if taken {
				claimed = append(claimed, i)
			}
		}
	}
	return claimed, nil
}

// letGoOf drops the claims on the objects at positions claimed of objs that did not become the
// session's (held[i] false, or held nil).
func letGoOf[T any](s *Session, objs []*T, claimed []int, held []bool) {
	for _, i := range claimed {
		if held == nil || !held[i] {
			s.owned.drop(objectAddress(objs[i]))
		}
	}
}

// objectAddress is the address of the struct obj points to, by which the registry and letGo
// know it.
func objectAddress(obj any) uintptr { return reflect.ValueOf(obj).Pointer() }

func newOwnership(s *Session) *ownership {
	o := &ownership{self: weak.Make(s)}
	runtime.AddCleanup(s, (*ownership).release, o)
	return o
}

// otherHolder refuses obj, which the session does not hold, when another session does. Called
// locked.
func (s *Session) otherHolder(obj any) error {
	addr := objectAddress(obj)
	sh := ownerShardOf(addr)
	sh.mu.Lock()
	o := sh.m[addr]
	sh.mu.Unlock()
	if s.refusedBy(o) {
		return otherSessionError(obj)
	}
	return nil
}

func otherSessionError(obj any) error {
	return fmt.Errorf("%w: the %T at %p is held by another open session, which writes it too; expunge it there or close that session first", ErrOtherSession, obj, obj)
}

// disown removes in from the registry when the session registered it. Called locked.
func (s *Session) disown(in *instance) {
	if !in.owned {
		return
	}
	in.owned = false
	s.owned.drop(addressOf(in))
	if n := len(s.owned.addrs); n > 1024 && n > 4*len(s.objects) {
		s.owned.addrs = s.owned.addrs[:0]
		for _, in := range s.objects {
			if in.owned {
				s.owned.addrs = append(s.owned.addrs, addressOf(in))
			}
		}
		for _, g := range s.gone {
			if g.in.owned {
				s.owned.addrs = append(s.owned.addrs, addressOf(g.in))
			}
		}
	}
}

// closeOwnership gives up every object of a closing session at once: its entries stop counting
// now and are removed when the session is collected, without a walk over its objects. Called
// locked.
func (s *Session) closeOwnership() {
	if s.owned != nil {
		s.owned.closed.Store(true)
	}
}

// drop removes addr's entry when it is still o's.
func (o *ownership) drop(addr uintptr) {
	sh := ownerShardOf(addr)
	sh.mu.Lock()
	if sh.m[addr] == o {
		delete(sh.m, addr)
	}
	sh.mu.Unlock()
}

// release removes every entry o registered that is still its own.
func (o *ownership) release() {
	starts, order := byShard(o.addrs)
	for k := range owners {
		if starts[k] == starts[k+1] {
			continue
		}
		sh := &owners[k]
		sh.mu.Lock()
		for _, i := range order[starts[k]:starts[k+1]] {
			if addr := o.addrs[i]; sh.m[addr] == o {
				delete(sh.m, addr)
			}
		}
		sh.mu.Unlock()
	}
	o.addrs = nil
}

// byShard puts addrs in shard order (a counting sort), so that each shard is locked once: the
// positions in addrs of shard k's are order[starts[k]:starts[k+1]].
func byShard(addrs []uintptr) (starts [len(owners) + 1]int, order []int32) {
	for _, a := range addrs {
		starts[ownerShardIndex(a)+1]++
	}
	for k := 1; k < len(starts); k++ {
		starts[k] += starts[k-1]
	}
	order = make([]int32, len(addrs))
	next := starts
	for i, a := range addrs {
		k := ownerShardIndex(a)
		order[next[k]] = int32(i)
		next[k]++
	}
	return starts, order
}
