package sampler

// fifoCache remembers at most capacity keys with a value, forgetting the oldest first. It is
// how decisions outlive their traces, so spans arriving late follow them. It grows with use:
// an idle collector does not pay for a million entries up front.
type fifoCache[K comparable, V any] struct {
	entries  map[K]V
	ring     []K
	capacity int
	next     int
}

func newFIFOCache[K comparable, V any](capacity int) *fifoCache[K, V] {
	return &fifoCache[K, V]{entries: map[K]V{}, capacity: capacity}
}

func (c *fifoCache[K, V]) get(k K) (V, bool) {
	v, ok := c.entries[k]
	return v, ok
}

func (c *fifoCache[K, V]) put(k K, v V) {
	if c.capacity <= 0 {
		return
	}
	if _, ok := c.entries[k]; ok {
		c.entries[k] = v
		return
	}
	c.entries[k] = v
	if len(c.ring) < c.capacity {
		c.ring = append(c.ring, k)
		return
	}
	delete(c.entries, c.ring[c.next])
	c.ring[c.next] = k
	c.next = (c.next + 1) % c.capacity
}

// remove forgets k; its ring slot is reclaimed when the ring comes round to it.
func (c *fifoCache[K, V]) remove(k K) {
	delete(c.entries, k)
}

func (c *fifoCache[K, V]) len() int { return len(c.entries) }
