package asyncsession

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"
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
// collected (its cleanup), off the caller's path.
//
// It is kept by page of memory: for each page holding claimed objects, which session claimed
// which of its 8-byte slots. A session's objects mostly sit side by side (allocated together),
// so that a claim finds its page's entry in cache where the one before left it, and a session
// lets go of a page at a time; a map entry per object cost a cache miss per claim (a sixth of a
// 10 000-object graph's planning). An object of 8 bytes or more that starts on an 8-byte
// boundary is the only one starting in its slot; the others (smaller ones, which the allocator
// packs together, and structs of int32s on a 4-byte boundary) are kept by their own address. The
// pages are split among shards, so that sessions claiming at once seldom wait for each other.
var owners [32]ownerShard

const (
	pageShift = 12 // 4 KiB pages
	slotShift = 3  // 8-byte slots
	pageSlots = 1 << (pageShift - slotShift)
)

type ownerShard struct {
	mu sync.Mutex
	// by page number; keyed by address, not by a pointer to the object: the session's own map
	// keeps the object alive, and the registry must not
	pages map[uintptr]*ownerPage
	small map[uintptr]*ownership // the objects kept by their address (byAddress)
}

func ownerShardOf(page uintptr) *ownerShard { return &owners[page%uintptr(len(owners))] }

// ownerPage is one page's claims, a set of slots per session (mostly one session).
type ownerPage struct {
	claims []*pageClaims
}

type pageClaims struct {
	o     *ownership
	slots [pageSlots / 64]uint64
	n     int // slots set
}

func (c *pageClaims) has(slot uintptr) bool { return c.slots[slot/64]&(1<<(slot%64)) != 0 }

// of returns o's claims on the page (nil: none).
func (p *ownerPage) of(o *ownership) *pageClaims {
	for _, c := range p.claims {
		if c.o == o {
			return c
		}
	}
	return nil
}

// heldBy returns the session other than o's whose claim on slot still counts (nil: none).
func (p *ownerPage) heldBy(slot uintptr, o *ownership) *ownership {
	for _, c := range p.claims {
		if c.o != o && c.has(slot) && c.o.holds() {
			return c.o
		}
	}
	return nil
}

// remove takes c off the page, reporting whether the page has no claims left.
func (p *ownerPage) remove(c *pageClaims) bool {
	for i, x := range p.claims {
		if x == c {
			p.claims = slices.Delete(p.claims, i, i+1)
			break
		}
	}
	return len(p.claims) == 0
}

// ownership is a session's side of the registry: the claims' owner, and the pages (and small
// objects) it claimed on, which its cleanup lets go of.
type ownership struct {
	self   weak.Pointer[Session] // nil once the session is collected, before its cleanup runs
	closed atomic.Bool
	pages  map[uintptr]struct{}
	small  map[uintptr]struct{}
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
// the session's. Called locked.
func (s *Session) claimNew(addr uintptr, obj any) (bool, error) {
	if s.owned == nil {
		s.owned = newOwnership(s)
	}
	o := s.owned
	if byAddress(addr, obj) {
		return s.claimSmall(addr, obj)
	}
	page, slot := addr>>pageShift, addr>>slotShift%pageSlots
	sh := ownerShardOf(page)
	sh.mu.Lock()
	p := sh.pages[page]
	if p != nil && p.heldBy(slot, o) != nil || len(sh.small) > 0 && s.refusedBy(sh.small[addr]) {
		// the slot is another session's, or a small object at the same address is (its
		// first field)
		sh.mu.Unlock()
		return false, otherSessionError(obj)
	}
	if p == nil {
		if sh.pages == nil {
			sh.pages = map[uintptr]*ownerPage{}
		}
		p = &ownerPage{}
		sh.pages[page] = p
	}
	mine := p.of(o)
	if mine == nil {
		mine = &pageClaims{o: o}
		p.claims = append(p.claims, mine)
	}
	taken := !mine.has(slot)
	if taken {
		mine.slots[slot/64] |= 1 << (slot % 64)
		mine.n++
	}
	first := taken && mine.n == 1
	sh.mu.Unlock()
	if first {
		if o.pages == nil {
			o.pages = map[uintptr]struct{}{}
		}
		o.pages[page] = struct{}{}
	}
	return taken, nil
}

// claimSmall is claimNew for an object kept by its address (byAddress).
func (s *Session) claimSmall(addr uintptr, obj any) (bool, error) {
	o := s.owned
	sh := ownerShardOf(addr >> pageShift)
	sh.mu.Lock()
	had := sh.small[addr]
	if s.refusedBy(had) || sh.pageHeld(addr, o) {
		sh.mu.Unlock()
		return false, otherSessionError(obj)
	}
	if sh.small == nil {
		sh.small = map[uintptr]*ownership{}
	}
	sh.small[addr] = o
	sh.mu.Unlock()
	if had == o {
		return false, nil
	}
	if o.small == nil {
		o.small = map[uintptr]struct{}{}
	}
	o.small[addr] = struct{}{}
	return true, nil
}

// pageHeld reports a claim by a session other than o's that still counts on an object of 8
// bytes or more that starts at addr (one a small object there is the first field of). Called
// with sh locked.
func (sh *ownerShard) pageHeld(addr uintptr, o *ownership) bool {
	if addr%(1<<slotShift) != 0 {
		return false // the objects of the slots start on their boundary
	}
	p := sh.pages[addr>>pageShift]
	return p != nil && p.heldBy(addr>>slotShift%pageSlots, o) != nil
}

// byAddress reports an object the registry keeps by its address rather than by its slot: one of
// fewer than 8 bytes, or one that does not start on an 8-byte boundary (a struct of int32s),
// either of which may share a slot with another object. An object of the slots is the only one
// starting in its slot.
func byAddress(addr uintptr, obj any) bool {
	return addr%(1<<slotShift) != 0 || reflect.TypeOf(obj).Elem().Size() < 1<<slotShift
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
		if _, ok := s.objects.get(any(obj)); !ok {
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
			addr := objectAddress(objs[i])
			s.owned.drop(addr, byAddress(addr, objs[i]))
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
	page := addr >> pageShift
	sh := ownerShardOf(page)
	sh.mu.Lock()
	held := s.refusedBy(sh.small[addr]) || sh.pageHeld(addr, s.owned)
	sh.mu.Unlock()
	if held {
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
	addr := addressOf(in)
	small := byAddress(addr, in.ptr)
	if s.objects.shared && (s.objects.heldAt(in.addr) || s.goneAt(in.addr)) {
		// the registry knows objects by address: a struct and its first field, both the
		// session's, share a claim, which the one still held keeps
		k := keptClaim{addr, small}
		if !slices.Contains(s.keptClaims, k) {
			s.keptClaims = append(s.keptClaims, k)
		}
		return
	}
	s.owned.drop(addressOf(in), small)
	if len(s.keptClaims) > 0 {
		s.keptClaims = slices.DeleteFunc(s.keptClaims, func(k keptClaim) bool {
			if k.addr == addressOf(in) {
				s.owned.drop(addressOf(in), k.small)
				return true
			}
			return false
		})
	}
}

// goneAt reports an object at address a whose DELETE a flush of the open transaction sent: the
// session keeps its claim until the transaction ends.
func (s *Session) goneAt(a unsafe.Pointer) bool {
	for _, g := range s.gone {
		if g.in.addr == a && g.in.owned {
			return true
		}
	}
	return false
}

// keptClaim is the claim of an object let go of while another at its address was held: by
// address, as the registry's, not keeping the object alive.
type keptClaim struct {
	addr  uintptr
	small bool
}

// closeOwnership gives up every object of a closing session at once: its entries stop counting
// now and are removed when the session is collected, without a walk over its objects. Called
// locked.
func (s *Session) closeOwnership() {
	if s.owned != nil {
		s.owned.closed.Store(true)
	}
}

// drop removes o's claim on the object at addr (small: one kept by its address).
func (o *ownership) drop(addr uintptr, small bool) {
	page := addr >> pageShift
	sh := ownerShardOf(page)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if small {
		if sh.small[addr] == o {
			delete(sh.small, addr)
			delete(o.small, addr)
		}
		return
	}
	p := sh.pages[page]
	if p == nil {
		return
	}
	c, slot := p.of(o), addr>>slotShift%pageSlots
	if c == nil || !c.has(slot) {
		return
	}
	c.slots[slot/64] &^= 1 << (slot % 64)
	if c.n--; c.n == 0 {
		o.leave(sh, page, p, c)
	}
}

// leave takes o's claims c off page p. Called with sh locked.
func (o *ownership) leave(sh *ownerShard, page uintptr, p *ownerPage, c *pageClaims) {
	if p.remove(c) {
		delete(sh.pages, page)
	}
	delete(o.pages, page)
}

// release removes every claim o registered that is still its own.
func (o *ownership) release() {
	for page := range o.pages {
		sh := ownerShardOf(page)
		sh.mu.Lock()
		if p := sh.pages[page]; p != nil {
			if c := p.of(o); c != nil {
				o.leave(sh, page, p, c)
			}
		}
		sh.mu.Unlock()
	}
	for addr := range o.small {
		sh := ownerShardOf(addr >> pageShift)
		sh.mu.Lock()
		if sh.small[addr] == o {
			delete(sh.small, addr)
		}
		sh.mu.Unlock()
	}
	o.pages, o.small = nil, nil
}
