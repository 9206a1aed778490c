package asyncsession

import "reflect"

// identityMap is the session's identity map. It is kept by model and shard, then by the key's
// value, so that a lookup hashes the value alone (a key of the whole identityKey hashed an
// interface, a type and a string each time) and its entries are a third of the size; an int64
// key, the usual one, is kept as the integer it is. The lookups of a batch, all of one model,
// find their table where the one before left it.
type identityMap struct {
	tables map[identityTable]*keyMap
	last   identityTable
	lastM  *keyMap // last's map, nil when it has none yet
}

type identityTable struct {
	t     reflect.Type
	shard string
}

// keyMap is one model's and shard's instances by key.
type keyMap struct {
	ints   map[int64]*instance
	others map[any]*instance
}

// table returns the map of k's model and shard (nil: none yet).
func (im *identityMap) table(k identityKey) *keyMap {
	if t := (identityTable{k.t, k.shard}); im.lastM == nil || t != im.last {
		im.last, im.lastM = t, im.tables[t]
	}
	return im.lastM
}

// tableOrNew returns the map of k's model and shard, created empty the first time.
func (im *identityMap) tableOrNew(k identityKey) *keyMap {
	if m := im.table(k); m != nil {
		return m
	}
	if im.tables == nil {
		im.tables = map[identityTable]*keyMap{}
	}
	m := &keyMap{}
	im.tables[identityTable{k.t, k.shard}] = m
	im.lastM = m
	return m
}

// get returns the instance known by k (nil: none).
func (im *identityMap) get(k identityKey) *instance {
	m := im.table(k)
	if m == nil {
		return nil
	}
	if n, ok := k.pk.(int64); ok {
		return m.ints[n]
	}
	return m.others[k.pk]
}

// set makes in the instance known by k.
func (im *identityMap) set(k identityKey, in *instance) {
	m := im.tableOrNew(k)
	if n, ok := k.pk.(int64); ok {
		if m.ints == nil {
			m.ints = map[int64]*instance{}
		}
		m.ints[n] = in
		return
	}
	if m.others == nil {
		m.others = map[any]*instance{}
	}
	m.others[k.pk] = in
}

// drop forgets k.
func (im *identityMap) drop(k identityKey) {
	m := im.table(k)
	if m == nil {
		return
	}
	if n, ok := k.pk.(int64); ok {
		delete(m.ints, n)
		return
	}
	delete(m.others, k.pk)
}

// reserve makes room for n more keys of k's model and shard at once (a batch about to be
// registered), rather than by doubling as they come; ints: the keys are int64s.
func (im *identityMap) reserve(k identityKey, n int, ints bool) {
	m := im.tableOrNew(k)
	if ints {
		m.ints = grown(m.ints, n)
	} else {
		m.others = grown(m.others, n)
	}
}

// grown is m, or a copy of it with room for n more entries when it holds fewer than n.
func grown[K comparable](m map[K]*instance, n int) map[K]*instance {
	if len(m) >= n {
		return m
	}
	g := make(map[K]*instance, len(m)+n)
	for k, in := range m {
		g[k] = in
	}
	return g
}
