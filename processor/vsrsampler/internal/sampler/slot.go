package sampler

import (
	"math"
	"time"
	"unsafe"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/sampling"
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/store"
)

// phase is where a buffered trace is in its life.
type phase uint8

const (
	// phaseOpen: not decided yet; its spans are parked.
	phaseOpen phase = iota
	// phaseKept: decided to keep before it was complete (an error, a block, a slow request, a
	// limit): its spans pass as they come, but its root waits, parked, for the trace's close,
	// when the summary of the whole request is written on it.
	phaseKept
	// phaseAwaiting: a kept router request that has not shown its end: its root has not come,
	// or its era A–C root (parked) waits for the model call. What ends the request closes the
	// trace; when nothing has come model_call_wait after the last span, nothing more can: the
	// request ended without it (a guard's block, in eras A and C). Off the FIFO:
	// trace_timeout does not cut the wait short.
	phaseAwaiting
	// phaseRescuable: dropped; its spans are held for the rescue window, in case a late error
	// or block brings the trace back.
	phaseRescuable
)

// Flags of a slot.
const (
	// flagRoot: the trace's root has arrived.
	flagRoot uint8 = 1 << iota
	// flagEarlyRoot: the root is an era A–C root, which ends before the model call.
	flagEarlyRoot
	// flagRouterRoot: the root is era D's, which ends after all its children.
	flagRouterRoot
	// flagRouter: the trace has router spans, so its root gets the request's summary.
	flagRouter
	// flagExtra: the shard holds an extra entry for the slot.
	flagExtra
	// flagRootStart: the root's start timestamp is known.
	flagRootStart
)

// timerList is which of its shard's timer lists a slot is in besides the FIFO.
type timerList uint8

const (
	listNone timerList = iota
	// listQuiet: the root has arrived and the trace is not known complete: the grace period
	// after its last span closes it. Ordered by last span.
	listQuiet
	// listWaiting: an undecided era A–C trace waiting for its model call, ordered by root
	// arrival, for the slow threshold.
	listWaiting
	// listAwaiting: a kept trace awaiting the end of its request (phaseAwaiting), ordered by
	// last span, for model_call_wait.
	listAwaiting
	// listRescuable: a dropped trace within its rescue window, ordered by drop.
	listRescuable
	numLists
)

// link places a slot in a list; -1 is none.
type link struct{ prev, next int32 }

// slot is one trace in flight, kept small (about 120 bytes): a collector under load holds
// tens of thousands. Rare fields live in the shard's extras.
type slot struct {
	id pcommon.TraceID
	// parked are the trace's parked spans, as the shard's store holds them: OTLP-encoded, a
	// span takes about a quarter of its in-memory form, and spans of dropped traces are never
	// decoded.
	parked store.Trace
	// first is when the first span arrived (Unix ns); last and rootAt are milliseconds after
	// it: the last span's arrival (for a rescuable trace, its drop) and the root's.
	first        int64
	last, rootAt uint32
	// rootStart and maxEnd are span timestamps, in milliseconds after first: the root's start
	// (with flagRootStart) and the latest end of any span.
	rootStart, maxEnd int32
	fifo, timer       link
	sum               routerconv.Summary[handle]
	spans             uint32
	// dyn is the trace's dynamic sampling key, the values of the dynamic keys joined.
	dyn handle
	// service is the service.name of the trace's router spans.
	service handle
	// rule is the index of the first rule any span matched; the number of rules for none.
	rule  uint8
	phase phase
	flags uint8
	list  timerList
	// other are the keep-always signals of spans outside the router (a client, a model
	// server): they keep the trace, but sum, the request's facts, is the router's alone.
	other routerconv.Signals
}

const slotSize = int64(unsafe.Sizeof(slot{}))

// extra holds what few traces need: randomness or a threshold from the tracestate, and the
// threshold of a trace kept before it was complete.
type extra struct {
	rnd    sampling.Randomness
	th     sampling.Threshold
	keptTh sampling.Threshold
	hasRnd bool
	hasTh  bool
	// served are the model server request spans the trace holds until its decision (serving.go).
	served []served
}

const extraSize = int64(unsafe.Sizeof(extra{})) + 48 // and its map entry

func (t *slot) has(f uint8) bool { return t.flags&f != 0 }

// spanMS is a span timestamp in milliseconds after the trace's first arrival, clamped to
// what the slot holds: clocks disagree, and spans may carry any timestamp.
func (t *slot) spanMS(ts pcommon.Timestamp) int32 {
	ms := (int64(ts) - t.first) / int64(time.Millisecond)
	return int32(min(max(ms, math.MinInt32+1), math.MaxInt32))
}

// timing is when the request's root started and its last span ended.
func (t *slot) timing() routerconv.Timing {
	if !t.has(flagRootStart) {
		return routerconv.Timing{}
	}
	at := func(ms int32) pcommon.Timestamp {
		return pcommon.Timestamp(max(t.first+int64(ms)*int64(time.Millisecond), 1))
	}
	return routerconv.Timing{RootStart: at(t.rootStart), MaxEnd: at(t.maxEnd)}
}

func msBetween(from int64, to time.Time) uint32 {
	d := to.UnixNano() - from
	if d <= 0 {
		return 0
	}
	return uint32(min(d/int64(time.Millisecond), int64(^uint32(0))))
}

func (t *slot) at(ms uint32) time.Time {
	return time.Unix(0, t.first).Add(time.Duration(ms) * time.Millisecond)
}

// awaitingModelCall reports whether an era A–C router request may still make its model call:
// its root has ended (before the call, as those eras' roots do) and no span has shown the call,
// a cache answer or an explicit block. A guard match does not end the wait: decisions route on
// PII and jailbreak signals too, and a block shows only by the call that never comes.
func (t *slot) awaitingModelCall() bool {
	return t.has(flagRoot) && t.has(flagEarlyRoot) && t.has(flagRouter) &&
		t.sum.Signals&(routerconv.SigUpstream|routerconv.SigCacheHit|routerconv.SigBlocked) == 0
}

// awaitsEnd reports whether a kept router trace still waits for what ends its request: its
// root, which ends last in era D and may arrive after the rest in any era, or, after an era
// A–C root, the model call.
func (t *slot) awaitsEnd() bool {
	return t.has(flagRouter) && !t.complete() && (!t.has(flagRoot) || t.awaitingModelCall())
}

// kept reports whether the trace is kept and still in flight, until its close.
func (t *slot) kept() bool { return t.phase == phaseKept || t.phase == phaseAwaiting }

// inFIFO reports whether the trace is in its shard's FIFO: open, or kept and not awaiting.
func (t *slot) inFIFO() bool { return t.phase == phaseOpen || t.phase == phaseKept }

// signals are what every span of the trace showed, the router's and other services': what the
// keep rules read.
func (t *slot) signals() routerconv.Signals { return t.sum.Signals | t.other }

// complete reports whether nothing more is expected: the root has ended, and an era A–C
// request has made its model call, been answered from the cache or been blocked outright,
// while an era D root has arrived after its children. A model call names its model, or (eras
// A and B) follows a routing span that does: without either, spans came out of order and
// some are still missing. A request that ended without any of these (a guard match that
// blocked, a failure before the call) is complete only when no model call can still come:
// absence is its sole sign (phaseAwaiting).
func (t *slot) complete() bool {
	s := t.sum.Signals
	routed := s&routerconv.SigUpstream == 0 || t.sum.SelectedModel != 0 || t.sum.UpstreamModel != 0
	switch {
	case !t.has(flagRoot):
		return false
	case t.has(flagEarlyRoot):
		return routed && s&(routerconv.SigUpstream|routerconv.SigCacheHit|routerconv.SigBlocked) != 0
	case t.has(flagRouterRoot):
		return routed && t.spans > 1
	}
	return false
}

// slow reports whether the request took at least threshold, by its spans' timestamps or,
// while it waits for its model call, by the time since its root arrived.
func (t *slot) slow(threshold time.Duration, now time.Time) bool {
	if threshold <= 0 || !t.has(flagRoot) {
		return false
	}
	if ms, ok := t.timing().ProcessingMS(); ok && time.Duration(ms)*time.Millisecond >= threshold {
		return true
	}
	return t.awaitingModelCall() && now.Sub(t.at(t.rootAt)) >= threshold
}

// keepAlwaysSignals are the signals that keep a trace whatever the rates: an error, a guard's
// block, or a guard's match, whose block eras A and C show only by what does not follow.
const keepAlwaysSignals = routerconv.SigError | routerconv.SigBlocked | routerconv.SigJailbreakHit | routerconv.SigPIIHit

func keepAlways(s routerconv.Signals) bool { return s&keepAlwaysSignals != 0 }
