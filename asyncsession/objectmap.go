package asyncsession

import (
	"iter"
	"unsafe"
)

// objectMap holds the session's instance of each of its objects. It is keyed by the object's
// address, which hashes as one word where the object's interface hashed its type as well; a
// struct and its first field share an address, so that an entry is an object's only when its
// type is the object's too, and the rare second object at one address is kept aside.
type objectMap struct {
	byAddr map[unsafe.Pointer]*instance
	aside  map[any]*instance
	// shared: an address has held two objects at once; until then no object shares its
	// address with another, and letting one go need not look for the other
	shared bool
}

// addressIn is the data word of obj: the address a pointer holds.
func addressIn(obj any) unsafe.Pointer { return (*[2]unsafe.Pointer)(unsafe.Pointer(&obj))[1] }

// get returns obj's instance.
func (om *objectMap) get(obj any) (*instance, bool) {
	if in := om.byAddr[addressIn(obj)]; in != nil && in.ptr == obj {
		return in, true
	}
	if len(om.aside) > 0 {
		in, ok := om.aside[obj]
		return in, ok
	}
	return nil, false
}

// of returns obj's instance (nil: none).
func (om *objectMap) of(obj any) *instance {
	in, _ := om.get(obj)
	return in
}

// set makes in obj's instance.
func (om *objectMap) set(obj any, in *instance) {
	a := addressIn(obj)
	if cur := om.byAddr[a]; cur == nil || cur.ptr == obj {
		if om.byAddr == nil {
			om.byAddr = map[unsafe.Pointer]*instance{}
		}
		om.byAddr[a] = in
		if len(om.aside) > 0 {
			delete(om.aside, obj) // it was aside while another object held the address
		}
		return
	}
	if om.aside == nil {
		om.aside = map[any]*instance{}
	}
	om.aside[obj] = in
	om.shared = true
}

// drop forgets obj's instance.
func (om *objectMap) drop(obj any) {
	a := addressIn(obj)
	if cur := om.byAddr[a]; cur != nil && cur.ptr == obj {
		delete(om.byAddr, a)
		return
	}
	delete(om.aside, obj)
}

// heldAt reports an instance of an object at address a.
func (om *objectMap) heldAt(a unsafe.Pointer) bool {
	if om.byAddr[a] != nil {
		return true
	}
	for _, in := range om.aside {
		if in.addr == a {
			return true
		}
	}
	return false
}

func (om *objectMap) len() int { return len(om.byAddr) + len(om.aside) }

// all yields every instance.
func (om *objectMap) all() iter.Seq[*instance] {
	return func(yield func(*instance) bool) {
		for _, in := range om.byAddr {
			if !yield(in) {
				return
			}
		}
		for _, in := range om.aside {
			if !yield(in) {
				return
			}
		}
	}
}

// grow makes room for n more objects at once (a graph added in bulk), rather than by doubling as
// they are attached one by one.
func (om *objectMap) grow(n int) { om.byAddr = grown(om.byAddr, n) }
