package sampler

import "unsafe"

// decisionCache remembers recent decisions in capacity entries, so spans arriving after their
// trace's decision follow it. It is a set-associative table: a key lives in one bucket of 16
// entries (two cache lines), and a full bucket gives up its oldest entry. An entry is the
// trace's 64-bit hash with its low 8 bits replaced by an epoch that counts inserts, so a
// dropped trace is remembered in 8 bytes (a Go map took about 100). Two traces are confused
// only if 56 hash bits agree. Being set-associative, it keeps all of the last capacity/2
// decisions but one in hundreds, and fewer of the older ones. It grows with use, by
// doubling, up to capacity, whenever it is three quarters full or a key's bucket is: an idle
// collector does not pay for a million entries, and a busy one forgets nothing before it must.
type decisionCache[V any] struct {
	keys     []uint64
	vals     []V
	capacity int
	// used counts the entries in use; inserts, the puts since the epoch last advanced.
	used, inserts int
	epoch         uint8
}

const (
	bucketWays  = 16
	minBuckets  = 16
	epochMask   = 0xff
	keyMask     = ^uint64(epochMask)
	epochsInCap = 64
)

func newDecisionCache[V any](capacity int) *decisionCache[V] {
	return &decisionCache[V]{capacity: capacity}
}

// bytes is the memory the cache holds.
func (c *decisionCache[V]) bytes() int64 {
	var v V
	return int64(cap(c.keys))*8 + int64(cap(c.vals))*int64(unsafe.Sizeof(v))
}

// cacheKey is a hash as the cache keeps it: its high 56 bits, never all zero.
func cacheKey(h uint64) uint64 {
	if h&keyMask == 0 {
		h |= 1 << 8
	}
	return h & keyMask
}

func (c *decisionCache[V]) bucket(h uint64) int {
	return int(h>>8) % (len(c.keys) / bucketWays) * bucketWays
}

func (c *decisionCache[V]) get(h uint64) (V, bool) {
	var zero V
	if len(c.keys) == 0 {
		return zero, false
	}
	key, b := cacheKey(h), c.bucket(h)
	for i := b; i < b+bucketWays; i++ {
		if c.keys[i]&keyMask == key {
			return c.vals[i], true
		}
	}
	return zero, false
}

func (c *decisionCache[V]) put(h uint64, v V) {
	if c.capacity <= 0 {
		return
	}
	// A full bucket grows the table too: while the table may grow, no decision is given up.
	if len(c.keys) == 0 || len(c.keys) < c.capacity && (c.used*4 >= len(c.keys)*3 || c.bucketFull(h)) {
		c.grow()
	}
	if c.inserts++; c.inserts >= max(len(c.keys)/epochsInCap, 1) {
		c.inserts = 0
		c.epoch++
	}
	c.place(cacheKey(h)|uint64(c.epoch), v)
}

// bucketFull reports whether h's bucket has no room for h: every entry taken by another key.
func (c *decisionCache[V]) bucketFull(h uint64) bool {
	key, b := cacheKey(h), c.bucket(h)
	for i := b; i < b+bucketWays; i++ {
		if c.keys[i] == 0 || c.keys[i]&keyMask == key {
			return false
		}
	}
	return true
}

// place stores key in its bucket: over itself, in an empty entry, or over the oldest.
func (c *decisionCache[V]) place(key uint64, v V) {
	b := c.bucket(key)
	victim, oldest := b, -1
	for i := b; i < b+bucketWays; i++ {
		k := c.keys[i]
		if k != 0 && k&keyMask == key&keyMask {
			victim = i
			break
		}
		age := int(c.epoch - uint8(k))
		if k == 0 {
			age = 1 << 10
		}
		if age > oldest {
			victim, oldest = i, age
		}
	}
	if c.keys[victim] == 0 {
		c.used++
	}
	c.keys[victim], c.vals[victim] = key, v
}

func (c *decisionCache[V]) remove(h uint64) {
	if len(c.keys) == 0 {
		return
	}
	key, b := cacheKey(h), c.bucket(h)
	for i := b; i < b+bucketWays; i++ {
		if c.keys[i]&keyMask == key {
			c.keys[i] = 0
			c.used--
			return
		}
	}
}

// grow doubles the table (up to capacity, in whole buckets), keeping every entry.
func (c *decisionCache[V]) grow() {
	limit := (c.capacity + bucketWays - 1) / bucketWays * bucketWays
	size := min(max(minBuckets*bucketWays, 2*len(c.keys)), limit)
	if size <= len(c.keys) {
		return
	}
	keys, vals := c.keys, c.vals
	c.keys, c.vals, c.used = make([]uint64, size), make([]V, size), 0
	for i, k := range keys {
		if k != 0 {
			c.place(k, vals[i])
		}
	}
}

func (c *decisionCache[V]) len() int { return c.used }
