// Package sampler is the pure core of vsr_sampler: it buffers spans by trace, decides each
// trace as soon as it can, and releases or drops it. It has no clock and no goroutines: the
// caller passes the time and calls Tick, so tests drive it with a fake clock.
package sampler

import (
	"encoding/binary"
	"runtime"
	"slices"
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
	// rescuable are dropped traces within their rescue window, oldest drop first.
	rescuable traceList
	dropped   map[pcommon.TraceID]*traceState
	bytes     int64
	budget    int64
	keep      *fifoCache[pcommon.TraceID, sampling.Threshold]
	drop      *fifoCache[uint64, struct{}]
	free      []*traceState
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
			traces:    map[pcommon.TraceID]*traceState{},
			fifo:      traceList{links: func(t *traceState) *links { return &t.fifo }},
			quiet:     traceList{links: func(t *traceState) *links { return &t.quiet }},
			waiting:   traceList{links: func(t *traceState) *links { return &t.waiting }},
			rescuable: traceList{links: func(t *traceState) *links { return &t.rescuable }},
			dropped:   map[pcommon.TraceID]*traceState{},
			budget:    max(cfg.MaxBufferBytes/int64(n), 1),
			keep:      newFIFOCache[pcommon.TraceID, sampling.Threshold](cfg.KeepCacheEntries / n),
			drop:      newFIFOCache[uint64, struct{}](cfg.DropCacheEntries / n),
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

// Held returns the bytes and the number of traces buffered.
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

// fate is what becomes of a span of an incoming batch.
type fate uint8

const (
	// fatePass: the span's trace is kept; the span stays in the batch.
	fatePass fate = iota
	fateDrop
	// fatePark: the span waits for its trace's decision, encoded in the trace's buffer.
	fatePark
)

// staged is an undecided trace's spans in one group of a batch: they are parked together, so
// they share one copy of the resource and scope.
type staged struct {
	t       *traceState
	gen     uint64
	sh      *shard
	indexes []int
}

// Consume takes a batch. Spans of traces decided to keep stay in it; spans of undecided
// traces are parked in their trace's buffer; the rest are dropped. It returns what to forward
// now: the rest of td plus every parked span a decision in this call released. td is reused
// for the result.
func (s *Sampler) Consume(td ptrace.Traces, now time.Time) ptrace.Traces {
	var out output
	var fates []fate
	var stages []staged
	for _, rs := range td.ResourceSpans().All() {
		router := false
		if name, ok := rs.Resource().Attributes().Get("service.name"); ok {
			router = s.services[name.AsString()]
		}
		for _, ss := range rs.ScopeSpans().All() {
			g := group{rs: rs, ss: ss, router: router || ss.Scope().Name() == routerconv.TracerName}
			spans := ss.Spans()
			fates, stages = slices.Grow(fates[:0], spans.Len())[:spans.Len()], stages[:0]
			for i, span := range spans.All() {
				fates[i] = s.admit(span, i, &g, now, &out, &stages, fates)
			}
			for i := range stages {
				s.parkStaged(&stages[i], &g, now, &out, fates)
			}
			i := 0
			spans.RemoveIf(func(ptrace.Span) bool {
				f := fates[i]
				i++
				return f != fatePass
			})
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

// admit records one span in its trace and returns its fate. A decision it triggers settles
// the fate of the trace's spans staged before it in this group too.
func (s *Sampler) admit(span ptrace.Span, index int, g *group, now time.Time, out *output, stages *[]staged, fates []fate) fate {
	id := span.TraceID()
	sh := s.shardFor(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()

	if f, known := s.followDecision(sh, span, g, out); known {
		return f
	}
	t := sh.traces[id]
	if t == nil {
		t = sh.newTrace(s, id, now)
	}
	if !t.seen.add(span.SpanID()) {
		s.obs.DuplicateSpan()
		return fateDrop
	}
	t.last = now
	t.spans++
	t.observe(s, span, g, routerconv.Classify(span, g.router))
	st := stageFor(stages, t, sh)
	st.indexes = append(st.indexes, index)

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
	trigger, due := NumTriggers, true
	switch {
	case t.keepAlways() || t.slow(s.cfg.SlowThreshold, now):
		trigger = TriggerImmediate
	case t.complete():
		trigger = TriggerRoot
	case t.spans >= s.cfg.MaxTraceSpans || t.bytes >= s.cfg.MaxTraceBytes:
		trigger = TriggerLimit
	default:
		due = false
	}
	if !due {
		return fatePark
	}
	d := s.decide(sh, t, trigger, now, out)
	settled := fateDrop
	switch {
	case d.Keep:
		settled = fatePass
		for _, i := range st.indexes {
			out.stamp(g.ss.Spans().At(i), d.Threshold)
		}
	case t.rescuable.in:
		// The trace spans several batches and its earlier spans wait for a rescue: these join them.
		settled = fatePark
		s.parkIndexes(sh, t, g, st.indexes)
	}
	for _, i := range st.indexes[:len(st.indexes)-1] {
		fates[i] = settled
	}
	st.t = nil // settled: nothing left to park
	return settled
}

// followDecision applies an earlier decision to a span arriving after it, and reports whether
// there was one.
func (s *Sampler) followDecision(sh *shard, span ptrace.Span, g *group, out *output) (fate, bool) {
	id := span.TraceID()
	if th, ok := sh.keep.get(id); ok {
		out.stamp(span, th)
		s.obs.LateSpan(LateKept)
		return fatePass, true
	}
	if _, ok := sh.drop.get(fingerprint(id)); !ok {
		return fatePass, false
	}
	if !keepAlways(routerconv.Classify(span, g.router).Signals) {
		s.obs.LateSpan(LateDropped)
		return fateDrop, true
	}
	// An error or block span is never dropped; within the rescue window its whole trace comes
	// back with it.
	sh.drop.remove(fingerprint(id))
	sh.keep.put(id, sampling.AlwaysSampleThreshold)
	out.stamp(span, sampling.AlwaysSampleThreshold)
	s.obs.LateSpan(LateRescued)
	if t := sh.dropped[id]; t != nil {
		for range t.spans {
			s.obs.LateSpan(LateRescued)
		}
		s.release(t, sampling.AlwaysSampleThreshold, out)
		s.forget(sh, t)
	}
	return fatePass, true
}

func stageFor(stages *[]staged, t *traceState, sh *shard) *staged {
	for i := range *stages {
		if st := &(*stages)[i]; st.t == t && st.gen == t.gen {
			return st
		}
	}
	*stages = append(*stages, staged{t: t, gen: t.gen, sh: sh})
	return &(*stages)[len(*stages)-1]
}

// parkStaged encodes a trace's spans of this group into its buffer. If another batch decided
// the trace in the meantime, the spans follow that decision instead.
func (s *Sampler) parkStaged(st *staged, g *group, now time.Time, out *output, fates []fate) {
	if st.t == nil {
		return
	}
	sh := st.sh
	sh.mu.Lock()
	defer sh.mu.Unlock()
	spans := g.ss.Spans()
	if st.t.gen != st.gen || sh.traces[st.t.id] != st.t {
		for _, i := range st.indexes {
			f, known := s.followDecision(sh, spans.At(i), g, out)
			if !known {
				f = fateDrop // decided and already forgotten by a full cache: as dropped
			}
			fates[i] = f
		}
		return
	}
	s.parkIndexes(sh, st.t, g, st.indexes)
	s.relievePressure(sh, now, out)
}

// parkIndexes parks the spans at indexes of g's span slice in t.
func (s *Sampler) parkIndexes(sh *shard, t *traceState, g *group, indexes []int) {
	spans := make([]ptrace.Span, len(indexes))
	for k, i := range indexes {
		spans[k] = g.ss.Spans().At(i)
	}
	added := t.park(g, spans)
	sh.bytes += added
	s.held.Add(added)
}

// relievePressure brings a shard back under its budget: first by spilling the newest traces,
// whose decisions are furthest away, then by giving up the spans of dropped traces kept for
// rescue, then by deciding the oldest traces, which have told the most about themselves.
func (s *Sampler) relievePressure(sh *shard, now time.Time, out *output) {
	if s.cfg.Spill != nil && s.spillNewest(sh, &sh.fifo) {
		s.spillNewest(sh, &sh.rescuable)
	}
	for sh.bytes > sh.budget && sh.rescuable.front() != nil {
		s.forget(sh, sh.rescuable.front())
	}
	for s.cfg.DecideOnPressure && sh.bytes > sh.budget && sh.fifo.front() != nil {
		s.decide(sh, sh.fifo.front(), TriggerPressure, now, out)
	}
}

// maxSpillScan bounds how many traces one call looks at for spans still in memory.
const maxSpillScan = 64

// spillNewest spills the parked spans of l's newest traces until the shard is within its
// budget. It reports false when the spill refused.
func (s *Sampler) spillNewest(sh *shard, l *traceList) bool {
	for t, n := l.back(), 0; t != nil && sh.bytes > sh.budget && n < maxSpillScan; t, n = l.prev(t), n+1 {
		if len(t.data) == 0 {
			continue
		}
		delta, err := t.spillTo(s.cfg.Spill)
		if err != nil {
			s.obs.SpillFailed(err)
			return false
		}
		sh.bytes += delta
		s.held.Add(delta)
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
	sh.bytes += t.bytes
	s.held.Add(t.bytes)
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

// decide applies the policy to t and releases its parked spans, or drops them: at once, or
// after the rescue window.
func (s *Sampler) decide(sh *shard, t *traceState, trigger Trigger, now time.Time, out *output) Decision {
	d := s.policy(t, now)
	since := t.first
	if t.hasRoot {
		since = t.rootAt
	}
	s.obs.Decided(d, trigger, t.spans, now.Sub(since))
	delete(sh.traces, t.id)
	sh.fifo.remove(t)
	sh.quiet.remove(t)
	sh.waiting.remove(t)
	s.traces.Add(-1)
	if d.Keep {
		sh.keep.put(t.id, d.Threshold)
		s.release(t, d.Threshold, out)
	} else {
		sh.drop.put(fingerprint(t.id), struct{}{})
		if s.cfg.RescueWindow > 0 && t.parked() && trigger != TriggerShutdown {
			t.droppedAt = now
			sh.dropped[t.id] = t
			sh.rescuable.pushBack(t)
			return d
		}
	}
	s.forget(sh, t)
	return d
}

// release sends a kept trace's parked spans out, stamped with its threshold.
func (s *Sampler) release(t *traceState, th sampling.Threshold, out *output) {
	if !t.parked() {
		return
	}
	// The bytes were produced by park; they always decode.
	parked, _ := t.unpark(s.cfg.Spill, s.obs)
	for _, rs := range parked.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, span := range ss.Spans().All() {
				out.stamp(span, th)
			}
		}
	}
	parked.ResourceSpans().MoveAndAppendTo(out.traces().ResourceSpans())
}

// forget frees a decided trace's memory.
func (s *Sampler) forget(sh *shard, t *traceState) {
	if t.rescuable.in {
		sh.rescuable.remove(t)
		delete(sh.dropped, t.id)
	}
	if len(t.spilled) > 0 {
		t.freeSpilled(s.cfg.Spill)
	}
	sh.bytes -= t.bytes
	s.held.Add(-t.bytes)
	if cap(t.data) > maxReusedData {
		t.data = nil
	}
	sh.free = append(sh.free, t)
}

// maxReusedData bounds the buffer a freed trace keeps for the next one: most traces are small,
// and a large buffer would otherwise outlive its trace unaccounted.
const maxReusedData = 4096

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
		for t := sh.rescuable.front(); t != nil && !now.Before(t.droppedAt.Add(s.cfg.RescueWindow)); t = sh.rescuable.front() {
			s.forget(sh, t)
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
		for t := sh.rescuable.front(); t != nil; t = sh.rescuable.front() {
			s.forget(sh, t)
		}
		sh.mu.Unlock()
	}
	return out.traces()
}
