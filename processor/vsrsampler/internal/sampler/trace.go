package sampler

import (
	"time"
	"unsafe"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/sampling"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/spill"
)

// group is one (resource, scope) of an incoming batch.
type group struct {
	rs     ptrace.ResourceSpans
	ss     ptrace.ScopeSpans
	router bool
}

// traceState is one buffered trace waiting for its decision.
type traceState struct {
	id pcommon.TraceID
	// gen tells a reused traceState from the trace it held before.
	gen uint64
	// data holds the trace's parked spans as OTLP TracesData: one ResourceSpans record per
	// batch they came in. Encoded, a span takes about a quarter of its in-memory form, and
	// spans of dropped traces are never decoded.
	data []byte
	// spilled are earlier parts of data moved out of memory under pressure, oldest first.
	spilled []spill.Ref
	spans   int
	// bytes is what the trace holds: data's capacity plus the trace's own bookkeeping.
	bytes int64

	first, last, rootAt time.Time
	seen                spanIDSet
	// dangling are parents referenced by a span but not yet seen: a span still open.
	dangling spanIDSet

	verdict   routerconv.Verdict
	hasRoot   bool
	earlyRoot bool
	// routerRoot: the root is the era D router root, which always has children.
	routerRoot bool
	rootStart  pcommon.Timestamp
	maxEnd     pcommon.Timestamp
	// processingMS is the root's processing.time_ms, when vsr_attributes set it.
	processingMS int64

	rnd   sampling.Randomness
	inTh  sampling.Threshold
	hasTh bool
	// lastTraceState avoids parsing the same tracestate for every span.
	lastTraceState string

	// rule is the index of the first rule any span matched; len(rules) for none.
	rule    int
	dynVals []string

	// fifo, and one of quiet or waiting, place the trace in its shard's lists; a dropped trace
	// kept for its rescue window is in the rescuable list only.
	fifo, quiet, waiting, rescuable links
	// droppedAt is when a rescuable trace was dropped.
	droppedAt time.Time
}

func (t *traceState) reset(id pcommon.TraceID, now time.Time, rules int, dynKeys int) {
	data, spilled, seen, dangling, dynVals, gen := t.data, t.spilled, t.seen, t.dangling, t.dynVals, t.gen
	*t = traceState{}
	t.id, t.first, t.last, t.rule, t.gen = id, now, now, rules, gen+1
	t.data, t.spilled = data[:0], spilled[:0]
	seen.reset()
	dangling.reset()
	t.seen, t.dangling = seen, dangling
	t.dynVals = append(dynVals[:0], make([]string, dynKeys)...)
	t.rnd = sampling.TraceIDToRandomness(id)
	t.bytes = traceOverhead + int64(cap(t.data)) + refSize*int64(cap(t.spilled))
}

// keepAlwaysSignals are the signals that keep a trace whatever the rates: an error, a guard's
// block, or a guard's match, whose block eras A and C show only by a missing upstream call.
const keepAlwaysSignals = routerconv.SigError | routerconv.SigBlocked | routerconv.SigJailbreakHit | routerconv.SigPIIHit

func keepAlways(s routerconv.Signals) bool { return s&keepAlwaysSignals != 0 }

func (t *traceState) keepAlways() bool { return keepAlways(t.verdict.Signals) }

// complete reports whether nothing more is expected: the root has ended, every parent a span
// named has arrived, an early-ending root (eras A–C) has seen its upstream call or a cache hit
// that replaces it, and an era D root did not arrive alone.
func (t *traceState) complete() bool {
	if !t.hasRoot || t.dangling.len() != 0 {
		return false
	}
	if t.earlyRoot {
		return t.verdict.Signals&(routerconv.SigUpstream|routerconv.SigCacheHit) != 0
	}
	// A router root alone arrived before its children, which end before it.
	return !t.routerRoot || t.spans > 1
}

// awaitingUpstream reports whether an era A–C trace is only waiting for its upstream call,
// which ends when the model has answered: seconds, not the grace period.
func (t *traceState) awaitingUpstream() bool {
	return t.hasRoot && t.earlyRoot && t.verdict.Signals&(routerconv.SigUpstream|routerconv.SigCacheHit) == 0
}

// slow reports whether the request took at least threshold: the root's own duration, the
// processing.time_ms vsr_attributes wrote, the extent of the spans seen after the root's start,
// or, for a trace still awaiting its upstream call, the time since its root arrived.
func (t *traceState) slow(threshold time.Duration, now time.Time) bool {
	if threshold <= 0 || !t.hasRoot {
		return false
	}
	return time.Duration(t.maxEnd-t.rootStart) >= threshold ||
		time.Duration(t.processingMS)*time.Millisecond >= threshold ||
		(t.awaitingUpstream() && now.Sub(t.rootAt) >= threshold)
}

// observe records what a span tells about its trace.
func (t *traceState) observe(s *Sampler, span ptrace.Span, g *group, facts routerconv.Facts) {
	t.verdict.Add(facts)
	t.maxEnd = max(t.maxEnd, span.EndTimestamp())
	id := span.SpanID()
	t.dangling.remove(id)
	if routerconv.IsLocalRoot(span) {
		info, _ := routerconv.LookupSpan(span.Name())
		if !t.hasRoot || info.Role == routerconv.RoleRoot || info.Role == routerconv.RoleRootEarly {
			t.hasRoot, t.rootAt = true, t.last
			t.earlyRoot = info.Role == routerconv.RoleRootEarly
			t.routerRoot = info.Role == routerconv.RoleRoot
			t.rootStart = span.StartTimestamp()
			if v, ok := span.Attributes().Get("processing.time_ms"); ok {
				t.processingMS, _ = routerconv.AsInt(v)
			}
		}
	} else if parent := span.ParentSpanID(); !t.seen.has(parent) {
		t.dangling.add(parent)
	}
	if raw := span.TraceState().AsRaw(); raw != "" && raw != t.lastTraceState {
		t.lastTraceState = raw
		rnd, hasRnd, th, hasTh := readTraceState(raw)
		if hasRnd {
			t.rnd = rnd
		}
		if hasTh {
			t.inTh, t.hasTh = maxThreshold(t.inTh, th), true
		}
	}
	for i := 0; i < t.rule; i++ {
		if s.rules[i].matches(span, g.rs) {
			t.rule = i
			break
		}
	}
	for i, k := range s.dynKeys {
		if t.dynVals[i] == "" {
			if v, ok := span.Attributes().Get(k); ok {
				t.dynVals[i] = v.AsString()
			}
		}
	}
}

// traceOverhead is what a buffered trace costs besides its spans' bytes.
const traceOverhead = int64(unsafe.Sizeof(traceState{}))

var marshaler ptrace.ProtoMarshaler

// park encodes spans of this trace from one batch group and appends them to data, returning
// the change in bytes held. The spans leave the batch: they are moved, not copied.
func (t *traceState) park(g *group, spans []ptrace.Span) int64 {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	g.rs.Resource().CopyTo(rs.Resource())
	rs.SetSchemaUrl(g.rs.SchemaUrl())
	ss := rs.ScopeSpans().AppendEmpty()
	g.ss.Scope().CopyTo(ss.Scope())
	ss.SetSchemaUrl(g.ss.SchemaUrl())
	ss.Spans().EnsureCapacity(len(spans))
	for _, span := range spans {
		span.MoveTo(ss.Spans().AppendEmpty())
	}
	// A TracesData with one ResourceSpans encodes as exactly one record of the repeated field,
	// so appending encodings yields the encoding of all of them.
	encoded, _ := marshaler.MarshalTraces(td)
	before := cap(t.data)
	if need := len(t.data) + len(encoded); need > cap(t.data) {
		// Grow by a quarter, not append's doubling: the spare capacity is memory held too.
		grown := make([]byte, len(t.data), max(need, cap(t.data)+cap(t.data)/4))
		copy(grown, t.data)
		t.data = grown
	}
	t.data = append(t.data, encoded...)
	delta := int64(cap(t.data) - before)
	t.bytes += delta
	return delta
}

// parked reports whether the trace holds spans, in memory or spilled.
func (t *traceState) parked() bool { return len(t.data) > 0 || len(t.spilled) > 0 }

const refSize = int64(unsafe.Sizeof(spill.Ref{}))

// spillTo moves the parked spans in memory to sp, returning the change in bytes held.
func (t *traceState) spillTo(sp Spill) (int64, error) {
	ref, err := sp.Put(t.data)
	if err != nil {
		return 0, err
	}
	before := int64(cap(t.data)) + refSize*int64(cap(t.spilled))
	t.spilled = append(t.spilled, ref)
	t.data = nil
	delta := refSize*int64(cap(t.spilled)) - before
	t.bytes += delta
	return delta, nil
}

// unpark decodes the parked spans, spilled ones first. A spilled part that cannot be read back
// is reported and left out: each part is whole batches' spans, so the rest still decodes.
func (t *traceState) unpark(sp Spill, obs Observer) (ptrace.Traces, error) {
	data := t.data
	if len(t.spilled) > 0 {
		var err error
		data = nil
		for _, ref := range t.spilled {
			if data, err = sp.Get(ref, data); err != nil {
				obs.SpillFailed(err)
			}
		}
		data = append(data, t.data...)
	}
	var u ptrace.ProtoUnmarshaler
	return u.UnmarshalTraces(data)
}

// freeSpilled gives the trace's spilled parts back to sp.
func (t *traceState) freeSpilled(sp Spill) {
	for _, ref := range t.spilled {
		sp.Free(ref)
	}
	t.spilled = t.spilled[:0]
}

// compiledRule is a Rule ready to match.
type compiledRule struct {
	Rule
	values map[string]bool
}

func (r *compiledRule) matches(span ptrace.Span, rs ptrace.ResourceSpans) bool {
	if v, ok := span.Attributes().Get(r.Key); ok {
		return r.values[v.AsString()]
	}
	if v, ok := rs.Resource().Attributes().Get(r.Key); ok {
		return r.values[v.AsString()]
	}
	return false
}
