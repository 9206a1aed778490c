package asyncsession

import "reflect"

// identityMap is the session's identity map. It is kept by model and shard, then by the key's
// value, so that a lookup hashes the value alone (a key of the whole identityKey hashed an
// interface, a type and a string each time) and its entries are a third of the size; the
// lookups of a batch, all of one model, find their table where the one before left it.
type identityMap struct {
	tables map[identityTable]map[any]*instance
	last   identityTable
	lastM  map[any]*instance // last's map, nil when it has none yet
}

type identityTable struct {
	t     reflect.Type
	shard string
}

// table returns the map of k's model and shard (nil: none yet).
func (im *identityMap) table(k identityKey) map[any]*instance {
	if t := (identityTable{k.t, k.shard}); im.lastM == nil || t != im.last {
		im.last, im.lastM = t, im.tables[t]
	}
	return im.lastM
}

// get returns the instance known by k (nil: none).
func (im *identityMap) get(k identityKey) *instance { return im.table(k)[k.pk] }

// set makes in the instance known by k.
func (im *identityMap) set(k identityKey, in *instance) {
	m := im.table(k)
	if m == nil {
		m = im.grow(k, 0)
	}
	m[k.pk] = in
}

// drop forgets k.
func (im *identityMap) drop(k identityKey) { delete(im.table(k), k.pk) }

// reserve makes room for n more keys of k's model and shard at once (a batch about to be
// registered), rather than by doubling as they come.
func (im *identityMap) reserve(k identityKey, n int) {
	if m := im.table(k); len(m) < n {
		im.grow(k, n)
	}
}

// grow replaces the map of k's model and shard by one with room for n more keys.
func (im *identityMap) grow(k identityKey, n int) map[any]*instance {
	t := identityTable{k.t, k.shard}
	old := im.tables[t]
	m := make(map[any]*instance, len(old)+n)
	for pk, in := range old {
		m[pk] = in
	}
	if im.tables == nil {
		im.tables = map[identityTable]map[any]*instance{}
	}
	im.tables[t] = m
	im.last, im.lastM = t, m
	return m
}
