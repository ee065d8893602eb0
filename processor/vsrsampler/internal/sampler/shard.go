package sampler

import (
	"math"
	"sync"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/sampling"
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/store"
)

// list is an ordered list of slots threaded through their links.
type list struct{ head, tail int32 }

var emptyList = list{-1, -1}

// shard owns the traces whose IDs hash to it; its lock is the only one a span takes.
type shard struct {
	mu     sync.Mutex
	slots  []slot
	free   []int32
	index  index
	extras map[int32]*extra
	// store holds the traces' parked spans.
	store *store.Shard
	// fifo orders live (open and kept) traces by first span: timeouts and pressure take the
	// oldest. The timer lists order some of them for their next timer.
	fifo   list
	timers [numLists]list
	keep   *decisionCache[sampling.Threshold]
	drop   *decisionCache[struct{}]
	// routes remember decided requests' routes for their model servers' late spans.
	routes *decisionCache[route]
	// servedBytes is what the extras' held model server spans take.
	servedBytes int64
	strs        *interner
	// mem is what the shard holds, by part; the Sampler keeps the totals.
	mem [NumParts]int64
}

func newShard(keepEntries, dropEntries int, parked *store.Shard) *shard {
	sh := &shard{
		extras: map[int32]*extra{},
		store:  parked,
		fifo:   emptyList,
		keep:   newDecisionCache[sampling.Threshold](keepEntries),
		drop:   newDecisionCache[struct{}](dropEntries),
		routes: newDecisionCache[route](keepEntries),
		strs:   newInterner(),
	}
	for i := range sh.timers {
		sh.timers[i] = emptyList
	}
	return sh
}

func (sh *shard) live() int { return len(sh.slots) - len(sh.free) }

// alloc takes a free slot for id, indexed and at the back of the FIFO.
func (sh *shard) alloc(h uint64, id pcommon.TraceID, first int64) int32 {
	var si int32
	if n := len(sh.free); n > 0 {
		si, sh.free = sh.free[n-1], sh.free[:n-1]
	} else {
		sh.slots = append(sh.slots, slot{})
		si = int32(len(sh.slots) - 1)
	}
	t := &sh.slots[si]
	*t = slot{id: id, first: first, maxEnd: math.MinInt32, fifo: link{-1, -1}, timer: link{-1, -1}}
	sh.index.insert(h, si, sh.slots)
	sh.push(&sh.fifo, si, fifoLink)
	return si
}

// release returns a slot and what it references to the shard. The caller has taken it out
// of the FIFO and its timer list, and its parked spans out of the store.
func (sh *shard) release(h uint64, si int32) {
	t := &sh.slots[si]
	sh.index.remove(h, si, sh.slots)
	t.sum.Strings(sh.strs.release)
	sh.strs.release(t.dyn)
	if t.has(flagExtra) {
		sh.freeServed(sh.extras[si])
		delete(sh.extras, si)
	}
	t.id = pcommon.TraceID{}
	sh.free = append(sh.free, si)
}

func (sh *shard) extra(si int32) *extra {
	t := &sh.slots[si]
	if t.has(flagExtra) {
		return sh.extras[si]
	}
	e := &extra{}
	sh.extras[si] = e
	t.flags |= flagExtra
	return e
}

// lookupExtra returns the slot's extra entry, or nil.
func (sh *shard) lookupExtra(si int32) *extra {
	if !sh.slots[si].has(flagExtra) {
		return nil
	}
	return sh.extras[si]
}

// Lists. fifoLink and timerLink select which of a slot's links a list threads through.
func fifoLink(t *slot) *link  { return &t.fifo }
func timerLink(t *slot) *link { return &t.timer }

func (sh *shard) push(l *list, si int32, lk func(*slot) *link) {
	*lk(&sh.slots[si]) = link{prev: l.tail, next: -1}
	if l.tail >= 0 {
		lk(&sh.slots[l.tail]).next = si
	} else {
		l.head = si
	}
	l.tail = si
}

func (sh *shard) unlink(l *list, si int32, lk func(*slot) *link) {
	k := lk(&sh.slots[si])
	if k.prev >= 0 {
		lk(&sh.slots[k.prev]).next = k.next
	} else {
		l.head = k.next
	}
	if k.next >= 0 {
		lk(&sh.slots[k.next]).prev = k.prev
	} else {
		l.tail = k.prev
	}
	*k = link{-1, -1}
}

// setTimer moves a slot to the back of timer list which (listNone: out of any).
func (sh *shard) setTimer(si int32, which timerList) {
	t := &sh.slots[si]
	if t.list != listNone {
		sh.unlink(&sh.timers[t.list], si, timerLink)
	}
	t.list = which
	if which != listNone {
		sh.push(&sh.timers[which], si, timerLink)
	}
}

// leaveLists takes a slot out of the FIFO and its timer list.
func (sh *shard) leaveLists(si int32) {
	sh.setTimer(si, listNone)
	if sh.slots[si].inFIFO() {
		sh.unlink(&sh.fifo, si, fifoLink)
	}
}

// await makes a kept trace wait for its request's end: it leaves the FIFO, whose
// trace_timeout would cut the wait short, and goes to the back of listAwaiting, its wait
// starting again from its last span.
func (sh *shard) await(si int32) {
	t := &sh.slots[si]
	if t.phase == phaseKept {
		sh.unlink(&sh.fifo, si, fifoLink)
		t.phase = phaseAwaiting
	}
	sh.setTimer(si, listAwaiting)
}

// stopAwaiting returns a trace that no longer awaits a model call (a later root named another
// era) to the kept traces of the FIFO, at its back: it is timed out late rather than early.
func (sh *shard) stopAwaiting(si int32) {
	if t := &sh.slots[si]; t.phase == phaseAwaiting {
		t.phase = phaseKept
		sh.push(&sh.fifo, si, fifoLink)
	}
}

// structBytes is what the shard's bookkeeping takes: slots, index, free list, extras, strings.
func (sh *shard) structBytes() int64 {
	return int64(cap(sh.slots))*slotSize + sh.index.bytes() + int64(cap(sh.free))*4 +
		int64(len(sh.extras))*extraSize + sh.servedBytes + sh.store.StructBytes() + sh.strs.memory()
}

// minCompactSlots is the slot count below which a shard is not worth compacting.
const minCompactSlots = 1024

// compact gives back the memory of a peak that has passed: when fewer than a quarter of the
// slots are live, the live ones move to a right-sized array and the lists and index follow.
func (sh *shard) compact() {
	if len(sh.slots) < minCompactSlots || sh.live()*4 > len(sh.slots) {
		return
	}
	moved := make([]int32, len(sh.slots)) // old slot → new slot, -1 if free
	for i := range moved {
		moved[i] = -1
	}
	slots := make([]slot, 0, max(2*sh.live(), 64))
	var live []int32
	// Walk the FIFO, then the lists of rescuable and awaiting traces: every live slot is on one
	// of them.
	add := func(si int32) {
		moved[si] = int32(len(slots))
		live = append(live, int32(len(slots)))
		slots = append(slots, sh.slots[si])
	}
	for si := sh.fifo.head; si >= 0; si = sh.slots[si].fifo.next {
		add(si)
	}
	for _, l := range [...]timerList{listRescuable, listAwaiting} {
		for si := sh.timers[l].head; si >= 0; si = sh.slots[si].timer.next {
			add(si)
		}
	}
	remap := func(si int32) int32 {
		if si < 0 {
			return -1
		}
		return moved[si]
	}
	for i := range slots {
		t := &slots[i]
		t.fifo = link{remap(t.fifo.prev), remap(t.fifo.next)}
		t.timer = link{remap(t.timer.prev), remap(t.timer.next)}
	}
	sh.fifo = list{remap(sh.fifo.head), remap(sh.fifo.tail)}
	for i := range sh.timers {
		sh.timers[i] = list{remap(sh.timers[i].head), remap(sh.timers[i].tail)}
	}
	extras := make(map[int32]*extra, len(sh.extras))
	for si, e := range sh.extras {
		extras[moved[si]] = e
	}
	sh.store.Remap(moved)
	sh.slots, sh.extras, sh.free = slots, extras, nil
	sh.index.rebuild(sh.slots, live)
}
