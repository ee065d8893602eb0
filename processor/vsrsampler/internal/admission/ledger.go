// Package admission remembers which spans of a refused batch vsr_sampler took already, so that
// the sender's retry of the same batch does not bring them in twice.
//
// Under block_on_overflow the processor takes at once the spans that continue traces it holds
// and refuses the rest of a batch when room does not come before the request's deadline. The
// sender retries the whole batch; without the ledger the spans taken before would be counted,
// parked or exported a second time.
package admission

import (
	"hash/maphash"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Ledger is safe for concurrent use.
type Ledger struct {
	ttl    time.Duration
	maxIDs int

	mu      sync.Mutex
	entries map[uint64]*entry
	// order lists the entries oldest first, for expiry and eviction; deleted ones stay until
	// they reach the front.
	order []ordered
	ids   int
}

type entry struct {
	taken map[pcommon.SpanID]struct{}
	at    time.Time
}

// ordered is an entry in order: the key alone could name a later entry for the same batch.
type ordered struct {
	key uint64
	e   *entry
}

// New returns a ledger that remembers a refused batch for ttl (the sender's retries end
// sooner) and at most maxIDs span IDs across batches, forgetting the oldest batches first.
func New(ttl time.Duration, maxIDs int) *Ledger {
	return &Ledger{ttl: ttl, maxIDs: maxIDs, entries: map[uint64]*entry{}}
}

var seed = maphash.MakeSeed()

// Key names a batch by its spans' trace and span IDs, in order: a retry sends the same.
func Key(td ptrace.Traces) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	var buf [24]byte
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, span := range ss.Spans().All() {
				tid, sid := span.TraceID(), span.SpanID()
				copy(buf[:16], tid[:])
				copy(buf[16:], sid[:])
				_, _ = h.Write(buf[:])
			}
		}
	}
	return h.Sum64()
}

// Pending reports whether any refused batch is remembered: only then do batches need a key.
func (l *Ledger) Pending() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries) > 0
}

// Skip removes from td the spans taken before from the batch named key, and returns how many.
func (l *Ledger) Skip(key uint64, td ptrace.Traces, now time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expire(now)
	e := l.entries[key]
	if e == nil {
		return 0
	}
	skipped := 0
	td.ResourceSpans().RemoveIf(func(rs ptrace.ResourceSpans) bool {
		rs.ScopeSpans().RemoveIf(func(ss ptrace.ScopeSpans) bool {
			ss.Spans().RemoveIf(func(span ptrace.Span) bool {
				_, taken := e.taken[span.SpanID()]
				if taken {
					skipped++
				}
				return taken
			})
			return ss.Spans().Len() == 0
		})
		return rs.ScopeSpans().Len() == 0
	})
	return skipped
}

// Record remembers that the spans of taken, part of the batch named key, were taken.
func (l *Ledger) Record(key uint64, taken ptrace.Traces, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entries[key]
	if e == nil {
		e = &entry{taken: map[pcommon.SpanID]struct{}{}}
		l.entries[key] = e
		l.order = append(l.order, ordered{key, e})
	}
	e.at = now
	for _, rs := range taken.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, span := range ss.Spans().All() {
				if _, ok := e.taken[span.SpanID()]; !ok {
					e.taken[span.SpanID()] = struct{}{}
					l.ids++
				}
			}
		}
	}
	for l.ids > l.maxIDs && len(l.order) > 0 {
		l.dropIfLive(l.order[0])
		l.order = l.order[1:]
	}
}

// Done forgets the batch named key: all of it was taken.
func (l *Ledger) Done(key uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.drop(key)
}

// IDs returns how many span IDs the ledger holds.
func (l *Ledger) IDs() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ids
}

func (l *Ledger) drop(key uint64) {
	if e, ok := l.entries[key]; ok {
		l.ids -= len(e.taken)
		delete(l.entries, key)
	}
}

// dropIfLive drops o's entry unless it is gone already.
func (l *Ledger) dropIfLive(o ordered) {
	if l.entries[o.key] == o.e {
		l.drop(o.key)
	}
}

// expire forgets batches last taken from more than ttl ago.
func (l *Ledger) expire(now time.Time) {
	for len(l.order) > 0 {
		o := l.order[0]
		if l.entries[o.key] == o.e && now.Sub(o.e.at) < l.ttl {
			break
		}
		l.dropIfLive(o)
		l.order = l.order[1:]
	}
}
