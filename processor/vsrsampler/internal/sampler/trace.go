package sampler

import (
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/sampling"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
)

var sizer ptrace.ProtoMarshaler

// groupKey names one (resource, scope) of one incoming batch.
type groupKey struct {
	batch    uint64
	resource int
	scope    int
}

// group is one (resource, scope) of an incoming batch. Spans of one trace from the same group
// share one copy of the resource and scope in the trace's buffer.
type group struct {
	key    groupKey
	rs     ptrace.ResourceSpans
	ss     ptrace.ScopeSpans
	router bool
}

// traceState is one buffered trace waiting for its decision.
type traceState struct {
	id pcommon.TraceID
	// buf holds the trace's spans, moved out of the batches they came in.
	buf    ptrace.ResourceSpansSlice
	dst    ptrace.SpanSlice
	dstKey groupKey
	spans  int
	// bytes is the encoded size of everything in buf, as added; released exactly on decision.
	bytes int64

	first, last, rootAt time.Time
	seen                spanIDSet
	// dangling are parents referenced by a span but not yet seen: a span still open.
	dangling spanIDSet

	verdict   routerconv.Verdict
	hasRoot   bool
	earlyRoot bool
	rootStart pcommon.Timestamp
	maxEnd    pcommon.Timestamp
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

	// fifo, and one of quiet or waiting, place the trace in its shard's lists.
	fifo, quiet, waiting links
}

func (t *traceState) reset(id pcommon.TraceID, now time.Time, rules int, dynKeys int) {
	buf, seen, dangling, dynVals := t.buf, t.seen, t.dangling, t.dynVals
	*t = traceState{}
	t.id, t.first, t.last, t.rule = id, now, now, rules
	t.buf = buf
	if t.buf == (ptrace.ResourceSpansSlice{}) {
		t.buf = ptrace.NewResourceSpansSlice()
	}
	seen.reset()
	dangling.reset()
	t.seen, t.dangling = seen, dangling
	t.dynVals = append(dynVals[:0], make([]string, dynKeys)...)
	t.rnd = sampling.TraceIDToRandomness(id)
}

// keepAlwaysSignals are the signals that keep a trace whatever the rates: an error, a guard's
// block, or a guard's match, whose block eras A and C show only by a missing upstream call.
const keepAlwaysSignals = routerconv.SigError | routerconv.SigBlocked | routerconv.SigJailbreakHit | routerconv.SigPIIHit

func keepAlways(s routerconv.Signals) bool { return s&keepAlwaysSignals != 0 }

func (t *traceState) keepAlways() bool { return keepAlways(t.verdict.Signals) }

// complete reports whether nothing more is expected: the root has ended, every parent a span
// named has arrived, and an early-ending root (eras A–C) has seen its upstream call or a cache
// hit that replaces it.
func (t *traceState) complete() bool {
	return t.hasRoot && t.dangling.len() == 0 && (!t.earlyRoot || t.verdict.Signals&(routerconv.SigUpstream|routerconv.SigCacheHit) != 0)
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

// append moves span into the trace's buffer and returns the bytes added.
func (t *traceState) append(span ptrace.Span, g *group) int64 {
	var added int64
	if t.dst == (ptrace.SpanSlice{}) || t.dstKey != g.key {
		rs := t.buf.AppendEmpty()
		g.rs.Resource().CopyTo(rs.Resource())
		rs.SetSchemaUrl(g.rs.SchemaUrl())
		ss := rs.ScopeSpans().AppendEmpty()
		g.ss.Scope().CopyTo(ss.Scope())
		ss.SetSchemaUrl(g.ss.SchemaUrl())
		added += int64(sizer.ResourceSpansSize(rs))
		t.dst, t.dstKey = ss.Spans(), g.key
	}
	added += int64(sizer.SpanSize(span))
	span.MoveTo(t.dst.AppendEmpty())
	t.spans++
	t.bytes += added
	return added
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
