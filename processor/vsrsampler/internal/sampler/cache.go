package sampler

// fifoCache remembers at most capacity keys with a value, forgetting the oldest first. It is
// how decisions outlive their traces, so spans arriving late follow them.
type fifoCache[K comparable, V any] struct {
	entries map[K]V
	ring    []K
	next    int
	full    bool
}

func newFIFOCache[K comparable, V any](capacity int) *fifoCache[K, V] {
	return &fifoCache[K, V]{entries: make(map[K]V, capacity), ring: make([]K, max(capacity, 0))}
}

func (c *fifoCache[K, V]) get(k K) (V, bool) {
	v, ok := c.entries[k]
	return v, ok
}

func (c *fifoCache[K, V]) put(k K, v V) {
	if len(c.ring) == 0 {
		return
	}
	if _, ok := c.entries[k]; ok {
		c.entries[k] = v
		return
	}
	if c.full {
		delete(c.entries, c.ring[c.next])
	}
	c.ring[c.next] = k
	c.entries[k] = v
	c.next++
	if c.next == len(c.ring) {
		c.next, c.full = 0, true
	}
}

// remove forgets k; its ring slot is reclaimed when the ring comes round to it.
func (c *fifoCache[K, V]) remove(k K) {
	delete(c.entries, k)
}

func (c *fifoCache[K, V]) len() int { return len(c.entries) }
