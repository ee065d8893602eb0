package requestmetrics

import (
	"sync"
	"sync/atomic"
)

// Sink receives records.
type Sink interface {
	Request(r *Request)
	ModelCall(c *ModelCall)
	Serving(s *Serving)
}

// Hub passes one sampler's records to the sinks subscribed to it. Publishing costs one atomic
// load while nothing is subscribed.
type Hub struct {
	users  int
	active atomic.Bool
	mu     sync.RWMutex
	sinks  []Sink
}

// Active reports whether a sink is subscribed.
func (h *Hub) Active() bool { return h.active.Load() }

// Request passes r to every sink.
func (h *Hub) Request(r *Request) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, s := range h.sinks {
		s.Request(r)
	}
}

// ModelCall passes c to every sink.
func (h *Hub) ModelCall(c *ModelCall) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, s := range h.sinks {
		s.ModelCall(c)
	}
}

// Serving passes s to every sink.
func (h *Hub) Serving(s *Serving) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, sink := range h.sinks {
		sink.Serving(s)
	}
}

// Subscribe adds a sink.
func (h *Hub) Subscribe(s Sink) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sinks = append(h.sinks, s)
	h.active.Store(true)
}

// Unsubscribe removes a sink.
func (h *Hub) Unsubscribe(s Sink) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, x := range h.sinks {
		if x == s {
			h.sinks = append(h.sinks[:i], h.sinks[i+1:]...)
			break
		}
	}
	h.active.Store(len(h.sinks) > 0)
}

// hubs are the hubs of the samplers of this process, by component ID. Two pipelines that use
// one vsr_sampler make two instances with one ID: both publish to its hub.
var hubs = struct {
	sync.Mutex
	byID map[string]*Hub
}{byID: map[string]*Hub{}}

// Acquire returns the hub of the sampler named id, creating it; a sampler holds it from its
// creation to its shutdown.
func Acquire(id string) *Hub {
	hubs.Lock()
	defer hubs.Unlock()
	h := hubs.byID[id]
	if h == nil {
		h = &Hub{}
		hubs.byID[id] = h
	}
	h.users++
	return h
}

// Release gives up a hold taken with Acquire.
func Release(id string) {
	hubs.Lock()
	defer hubs.Unlock()
	if h := hubs.byID[id]; h != nil {
		if h.users--; h.users <= 0 {
			delete(hubs.byID, id)
		}
	}
}

// Lookup returns the hub of the sampler named id, if one exists.
func Lookup(id string) (*Hub, bool) {
	hubs.Lock()
	defer hubs.Unlock()
	h, ok := hubs.byID[id]
	return h, ok
}
