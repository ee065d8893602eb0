package sampler

import (
	"hash/maphash"
	"slices"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/sampling"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// group is one (resource, scope) of an incoming batch.
type group struct {
	rs     ptrace.ResourceSpans
	ss     ptrace.ScopeSpans
	router bool
	// service is the resource's service.name.
	service string
	// source names the resource, the router pod, once hashed (hashed).
	source uint64
	hashed bool
	// park holds the group's resource and scope with no spans, made for the first trace of the
	// group that parks: every trace's spans are encoded with them, a trace at a time.
	park      ptrace.Traces
	parkSpans ptrace.SpanSlice
	parkReady bool
}

// parking returns an empty TracesData with the group's resource and scope, and its span slice.
func (g *group) parking() (ptrace.Traces, ptrace.SpanSlice) {
	if !g.parkReady {
		g.park = ptrace.NewTraces()
		rs := g.park.ResourceSpans().AppendEmpty()
		g.rs.Resource().CopyTo(rs.Resource())
		rs.SetSchemaUrl(g.rs.SchemaUrl())
		ss := rs.ScopeSpans().AppendEmpty()
		g.ss.Scope().CopyTo(ss.Scope())
		ss.SetSchemaUrl(g.ss.SchemaUrl())
		g.parkSpans, g.parkReady = ss.Spans(), true
	}
	return g.park, g.parkSpans
}

// fate is what becomes of a span of an incoming batch.
type fate uint8

const (
	// fateDrop is the zero value: a span nobody claimed does not leave.
	fateDrop fate = iota
	// fatePass: the span's trace is kept; the span stays in the batch.
	fatePass
	// fatePark: the span waits in its trace's buffer (it has left the batch).
	fatePark
)

// spanRef is one span of the batch.
type spanRef struct {
	group, index int32
}

// batchTrace is one trace's spans in the batch.
type batchTrace struct {
	id pcommon.TraceID
	// hash places the trace in its shard's index; fp names it in the caches and picks the shard.
	hash, fp uint64
	// spans are indexes into batch.refs, in batch order.
	spans []int32
}

// batch is a Consume call's view of its input: its spans grouped by trace and the traces by
// shard, so each shard is locked once and each trace decided once per batch, after all its
// spans in the batch are seen. Pooled: a batch allocates little.
type batch struct {
	groups []group
	refs   []spanRef
	fates  []fate
	traces []batchTrace
	ids    map[pcommon.TraceID]int32
	shards []shardTraces
	// The last tracestate read, memoized: a batch's spans usually share one.
	tsRaw   string
	tsValue parsedTraceState
	// carried: the batch holds traces a previous run left undecided, not new arrivals.
	carried bool
}

type parsedTraceState struct {
	rnd           sampling.Randomness
	th            sampling.Threshold
	hasRnd, hasTh bool
}

// traceState returns the OTEP 235 randomness and threshold a tracestate carries.
func (b *batch) traceState(raw string) (sampling.Randomness, bool, sampling.Threshold, bool) {
	if raw != b.tsRaw {
		var p parsedTraceState
		p.rnd, p.hasRnd, p.th, p.hasTh = readTraceState(raw)
		b.tsRaw, b.tsValue = raw, p
	}
	p := b.tsValue
	return p.rnd, p.hasRnd, p.th, p.hasTh
}

type shardTraces struct {
	shard  int
	traces []int32
}

func newBatch() *batch { return &batch{ids: map[pcommon.TraceID]int32{}} }

func (b *batch) reset() {
	clear(b.ids)
	b.tsRaw, b.tsValue = "", parsedTraceState{}
	b.carried = false
	for i := range b.traces {
		b.traces[i].spans = b.traces[i].spans[:0]
	}
	b.groups, b.refs, b.fates, b.traces = b.groups[:0], b.refs[:0], b.fates[:0], b.traces[:0]
	for i := range b.shards {
		b.shards[i].traces = b.shards[i].traces[:0]
	}
}

// index records td's groups and spans, grouping the spans by trace.
func (b *batch) index(td ptrace.Traces, s *Sampler) {
	for _, rs := range td.ResourceSpans().All() {
		var service string
		if v, ok := rs.Resource().Attributes().Get("service.name"); ok {
			service = v.AsString()
		}
		for _, ss := range rs.ScopeSpans().All() {
			g := int32(len(b.groups))
			b.groups = append(b.groups, group{rs: rs, ss: ss, service: service,
				router: s.services.RouterScope(rs.Resource(), ss.Scope())})
			for i, span := range ss.Spans().All() {
				id := span.TraceID()
				ti, ok := b.ids[id]
				if !ok {
					ti = int32(len(b.traces))
					b.ids[id] = ti
					if len(b.traces) < cap(b.traces) {
						b.traces = b.traces[:len(b.traces)+1]
						b.traces[ti].id, b.traces[ti].hash, b.traces[ti].fp = id, hashID(id), fingerprint(id)
					} else {
						b.traces = append(b.traces, batchTrace{id: id, hash: hashID(id), fp: fingerprint(id)})
					}
				}
				b.traces[ti].spans = append(b.traces[ti].spans, int32(len(b.refs)))
				b.refs = append(b.refs, spanRef{group: g, index: int32(i)})
			}
		}
	}
	b.fates = slices.Grow(b.fates[:0], len(b.refs))[:len(b.refs)]
	clear(b.fates)
}

// source names the pod that sent bt's spans: a hash of its resource's attributes, seeded as
// the trace index's.
func (b *batch) source(bt *batchTrace) uint64 {
	g := &b.groups[b.refs[bt.spans[0]].group]
	if !g.hashed {
		var h maphash.Hash
		h.SetSeed(hashSeed)
		for k, v := range g.rs.Resource().Attributes().All() {
			h.WriteString(k)
			h.WriteByte(0)
			h.WriteString(v.AsString())
			h.WriteByte(0)
		}
		g.source, g.hashed = h.Sum64(), true
	}
	return g.source
}

// queued is when the router queued bt's first spans for export, as the earliest of them ended;
// now when none tells.
func (b *batch) queued(bt *batchTrace, now time.Time) time.Time {
	earliest := pcommon.Timestamp(now.UnixNano())
	for _, r := range bt.spans {
		if end := b.span(r).EndTimestamp(); end != 0 && end < earliest {
			earliest = end
		}
	}
	return earliest.AsTime()
}

// byShard lists the batch's traces by shard; shards without any have none listed.
func (b *batch) byShard(n int) []shardTraces {
	if len(b.shards) < n {
		b.shards = make([]shardTraces, n)
		for i := range b.shards {
			b.shards[i].shard = i
		}
	}
	for ti := range b.traces {
		sh := shardOf(b.traces[ti].fp, n)
		b.shards[sh].traces = append(b.shards[sh].traces, int32(ti))
	}
	return b.shards[:n]
}

func (b *batch) span(r int32) ptrace.Span {
	ref := b.refs[r]
	return b.groups[ref.group].ss.Spans().At(int(ref.index))
}

func (b *batch) group(r int32) *group { return &b.groups[b.refs[r].group] }

// removeUnpassed takes every span that does not pass out of td, and the groups left empty.
func (b *batch) removeUnpassed(td ptrace.Traces) {
	r := 0
	for _, g := range b.groups {
		g.ss.Spans().RemoveIf(func(ptrace.Span) bool {
			f := b.fates[r]
			r++
			return f != fatePass
		})
	}
	removeEmpty(td)
}

// removeEmpty takes the resources and scopes left without spans out of td.
func removeEmpty(td ptrace.Traces) {
	td.ResourceSpans().RemoveIf(func(rs ptrace.ResourceSpans) bool {
		rs.ScopeSpans().RemoveIf(func(ss ptrace.ScopeSpans) bool { return ss.Spans().Len() == 0 })
		return rs.ScopeSpans().Len() == 0
	})
}
