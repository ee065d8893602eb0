// Package sampler is the pure core of vsr_sampler: it buffers spans by trace, decides each
// trace as soon as it can, and releases or drops it. It has no clock and no goroutines: the
// caller passes the time and calls Tick, so tests drive it with a fake clock.
package sampler

import (
	"encoding/binary"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/sampling"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
)

// Sampler is the tail sampler. It is safe for concurrent use.
type Sampler struct {
	cfg       Config
	obs       Observer
	rules     []compiledRule
	ruleTh    []sampling.Threshold
	defaultTh sampling.Threshold
	dynKeys   []string
	dynamic   *dynamic
	services  map[string]bool
	shards    []*shard
	batches   atomic.Uint64
	held      atomic.Int64
	traces    atomic.Int64
}

// shard owns the traces whose IDs hash to it; its lock is the only one a span takes.
type shard struct {
	mu     sync.Mutex
	traces map[pcommon.TraceID]*traceState
	// fifo orders traces by first span: timeouts and pressure take the oldest.
	fifo traceList
	// quiet orders traces whose root has ended by their last span, for the grace period.
	quiet traceList
	// waiting orders era A–C traces awaiting their upstream call by their root's arrival, for
	// the slow threshold.
	waiting traceList
	bytes   int64
	budget  int64
	keep    *fifoCache[pcommon.TraceID, sampling.Threshold]
	drop    *fifoCache[uint64, struct{}]
	free    []*traceState
}

// New returns a Sampler for cfg reporting to obs.
func New(cfg Config, obs Observer) (*Sampler, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	n := cfg.Shards
	if n <= 0 {
		n = 4 * runtime.GOMAXPROCS(0)
	}
	s := &Sampler{
		cfg:       cfg,
		obs:       obs,
		defaultTh: thresholdFor(cfg.DefaultPercentage),
		services:  map[string]bool{},
		shards:    make([]*shard, n),
	}
	for _, name := range cfg.ServiceNames {
		s.services[name] = true
	}
	for _, r := range cfg.Rules {
		cr := compiledRule{Rule: r, values: map[string]bool{}}
		for _, v := range r.Values {
			cr.values[v] = true
		}
		s.rules = append(s.rules, cr)
		s.ruleTh = append(s.ruleTh, thresholdFor(r.Percentage))
	}
	if cfg.Dynamic != nil {
		s.dynKeys = cfg.Dynamic.Keys
		s.dynamic = newDynamic(*cfg.Dynamic)
	}
	for i := range s.shards {
		s.shards[i] = &shard{
			traces:  map[pcommon.TraceID]*traceState{},
			fifo:    traceList{links: func(t *traceState) *links { return &t.fifo }},
			quiet:   traceList{links: func(t *traceState) *links { return &t.quiet }},
			waiting: traceList{links: func(t *traceState) *links { return &t.waiting }},
			budget:  max(cfg.MaxBufferBytes/int64(n), 1),
			keep:    newFIFOCache[pcommon.TraceID, sampling.Threshold](cfg.KeepCacheEntries / n),
			drop:    newFIFOCache[uint64, struct{}](cfg.DropCacheEntries / n),
		}
	}
	return s, nil
}

// fingerprint is the 64 bits of a trace ID the drop cache keeps. A false match needs two
// live trace IDs to agree on 64 random bits.
func fingerprint(id pcommon.TraceID) uint64 {
	return binary.LittleEndian.Uint64(id[:8]) ^ binary.LittleEndian.Uint64(id[8:])
}

func (s *Sampler) shardFor(id pcommon.TraceID) *shard {
	return s.shards[fingerprint(id)%uint64(len(s.shards))]
}

// Held returns the encoded bytes and the number of traces buffered.
func (s *Sampler) Held() (bytes, traces int64) { return s.held.Load(), s.traces.Load() }

// output collects the spans released by decisions, created on first use.
type output struct {
	td  ptrace.Traces
	set bool
	// The previous span's stamping is memoized: a trace's spans usually share one tracestate.
	memo                 bool
	lastRaw, lastStamped string
	lastTh               sampling.Threshold
}

func (o *output) traces() ptrace.Traces {
	if !o.set {
		o.td, o.set = ptrace.NewTraces(), true
	}
	return o.td
}

func (o *output) stamp(span ptrace.Span, th sampling.Threshold) {
	raw := span.TraceState().AsRaw()
	if !o.memo || raw != o.lastRaw || th != o.lastTh {
		o.memo, o.lastRaw, o.lastTh, o.lastStamped = true, raw, th, stampTraceState(raw, th)
	}
	span.TraceState().FromRaw(o.lastStamped)
}

// Consume takes a batch. Spans of undecided traces are moved into buffers; spans of traces
// decided to keep stay. It returns what to forward now: the rest of td plus every buffered
// span a decision in this call released. td is reused for the result.
func (s *Sampler) Consume(td ptrace.Traces, now time.Time) ptrace.Traces {
	var out output
	batch := s.batches.Add(1)
	for ri, rs := range td.ResourceSpans().All() {
		router := false
		if name, ok := rs.Resource().Attributes().Get("service.name"); ok {
			router = s.services[name.AsString()]
		}
		for si, ss := range rs.ScopeSpans().All() {
			g := group{key: groupKey{batch, ri, si}, rs: rs, ss: ss, router: router || ss.Scope().Name() == routerconv.TracerName}
			ss.Spans().RemoveIf(func(span ptrace.Span) bool { return s.accept(span, &g, now, &out) })
		}
	}
	td.ResourceSpans().RemoveIf(func(rs ptrace.ResourceSpans) bool {
		rs.ScopeSpans().RemoveIf(func(ss ptrace.ScopeSpans) bool { return ss.Spans().Len() == 0 })
		return rs.ScopeSpans().Len() == 0
	})
	if out.set {
		out.td.ResourceSpans().MoveAndAppendTo(td.ResourceSpans())
	}
	return td
}

// accept handles one span and reports whether it leaves the batch (buffered or dropped).
func (s *Sampler) accept(span ptrace.Span, g *group, now time.Time, out *output) bool {
	id := span.TraceID()
	sh := s.shardFor(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()

	if th, ok := sh.keep.get(id); ok {
		out.stamp(span, th)
		s.obs.LateSpan(LateKept)
		return false
	}
	if _, ok := sh.drop.get(fingerprint(id)); ok {
		if !keepAlways(routerconv.Classify(span, g.router).Signals) {
			s.obs.LateSpan(LateDropped)
			return true
		}
		// Its siblings are gone, but an error or block span itself is never dropped.
		sh.drop.remove(fingerprint(id))
		sh.keep.put(id, sampling.AlwaysSampleThreshold)
		out.stamp(span, sampling.AlwaysSampleThreshold)
		s.obs.LateSpan(LateRescued)
		return false
	}

	t := sh.traces[id]
	if t == nil {
		t = sh.newTrace(s, id, now)
	}
	if !t.seen.add(span.SpanID()) {
		s.obs.DuplicateSpan()
		return true
	}
	t.last = now
	t.observe(s, span, g, routerconv.Classify(span, g.router))
	added := t.append(span, g)
	sh.bytes += added
	s.held.Add(added)
	switch {
	case t.awaitingUpstream():
		if !t.waiting.in {
			sh.quiet.remove(t)
			sh.waiting.pushBack(t)
		}
	case t.hasRoot:
		sh.waiting.remove(t)
		sh.quiet.moveToBack(t)
	}

	switch {
	case t.keepAlways() || t.slow(s.cfg.SlowThreshold, now):
		s.decide(sh, t, TriggerImmediate, now, out)
	case t.complete():
		s.decide(sh, t, TriggerRoot, now, out)
	case t.spans >= s.cfg.MaxTraceSpans || t.bytes >= s.cfg.MaxTraceBytes:
		s.decide(sh, t, TriggerLimit, now, out)
	}
	for s.cfg.DecideOnPressure && sh.bytes > sh.budget {
		s.decide(sh, sh.fifo.front(), TriggerPressure, now, out)
	}
	return true
}

func (sh *shard) newTrace(s *Sampler, id pcommon.TraceID, now time.Time) *traceState {
	var t *traceState
	if n := len(sh.free); n > 0 {
		t, sh.free = sh.free[n-1], sh.free[:n-1]
	} else {
		t = &traceState{}
	}
	t.reset(id, now, len(s.rules), len(s.dynKeys))
	sh.traces[id] = t
	sh.fifo.pushBack(t)
	s.traces.Add(1)
	return t
}

// policy applies the keep rules in order; the first that matches decides.
func (s *Sampler) policy(t *traceState, now time.Time) Decision {
	d := Decision{Keep: true, Threshold: sampling.AlwaysSampleThreshold}
	switch {
	case t.verdict.Error():
		d.Reason = ReasonError
	case t.keepAlways():
		d.Reason = ReasonBlocked
	case t.slow(s.cfg.SlowThreshold, now):
		d.Reason = ReasonSlow
	default:
		switch {
		case t.rule < len(s.rules):
			d.Reason, d.Rule, d.Threshold = ReasonRule, t.rule, s.ruleTh[t.rule]
		case s.dynamic != nil:
			d.Reason, d.Threshold = ReasonDynamic, thresholdFor(100*s.dynamic.rate(strings.Join(t.dynVals, "\x00"), now))
		default:
			d.Reason, d.Threshold = ReasonDefault, s.defaultTh
		}
		d.Keep = d.Threshold.ShouldSample(t.rnd)
	}
	if t.hasTh {
		d.Threshold = maxThreshold(d.Threshold, t.inTh)
	}
	return d
}

// decide applies the policy to t, releases or drops its spans and forgets it.
func (s *Sampler) decide(sh *shard, t *traceState, trigger Trigger, now time.Time, out *output) {
	d := s.policy(t, now)
	since := t.first
	if t.hasRoot {
		since = t.rootAt
	}
	s.obs.Decided(d, trigger, t.spans, now.Sub(since))
	if d.Keep {
		sh.keep.put(t.id, d.Threshold)
		for _, rs := range t.buf.All() {
			for _, ss := range rs.ScopeSpans().All() {
				for _, span := range ss.Spans().All() {
					out.stamp(span, d.Threshold)
				}
			}
		}
		t.buf.MoveAndAppendTo(out.traces().ResourceSpans())
	} else {
		sh.drop.put(fingerprint(t.id), struct{}{})
		t.buf.RemoveIf(func(ptrace.ResourceSpans) bool { return true })
	}
	sh.bytes -= t.bytes
	s.held.Add(-t.bytes)
	s.traces.Add(-1)
	delete(sh.traces, t.id)
	sh.fifo.remove(t)
	sh.quiet.remove(t)
	sh.waiting.remove(t)
	t.dst = ptrace.SpanSlice{}
	sh.free = append(sh.free, t)
}

// Tick decides the traces whose grace period, slow threshold (while awaiting the upstream call)
// or timeout has passed at now and returns their kept spans.
func (s *Sampler) Tick(now time.Time) ptrace.Traces {
	var out output
	for _, sh := range s.shards {
		sh.mu.Lock()
		for t := sh.quiet.front(); t != nil && !now.Before(t.last.Add(s.cfg.Grace)); t = sh.quiet.front() {
			s.decide(sh, t, TriggerGrace, now, &out)
		}
		for t := sh.waiting.front(); t != nil && s.cfg.SlowThreshold > 0 && !now.Before(t.rootAt.Add(s.cfg.SlowThreshold)); t = sh.waiting.front() {
			s.decide(sh, t, TriggerTimeout, now, &out)
		}
		for t := sh.fifo.front(); t != nil && !now.Before(t.first.Add(s.cfg.TraceTimeout)); t = sh.fifo.front() {
			s.decide(sh, t, TriggerTimeout, now, &out)
		}
		sh.mu.Unlock()
	}
	return out.traces()
}

// Flush decides every buffered trace, for shutdown, and returns the kept spans.
func (s *Sampler) Flush(now time.Time) ptrace.Traces {
	var out output
	for _, sh := range s.shards {
		sh.mu.Lock()
		for t := sh.fifo.front(); t != nil; t = sh.fifo.front() {
			s.decide(sh, t, TriggerShutdown, now, &out)
		}
		sh.mu.Unlock()
	}
	return out.traces()
}
