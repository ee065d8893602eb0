package sampler

import (
	"strconv"
	"strings"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/sampling"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/requestmetrics"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/store"
)

// countArrival counts a new trace for dynamic sampling; in its cold phase, with the pod that
// sent it and when that pod queued it.
func (s *Sampler) countArrival(b *batch, bt *batchTrace, now time.Time) {
	var src uint64
	queued := now
	if s.dynamic.cold.Load() {
		src, queued = b.source(bt), b.queued(bt, now)
	}
	s.dynamic.arrived(now, queued, src)
}

// here is the current batch's spans of one trace, when a decision happens in Consume.
type here struct {
	b  *batch
	bt *batchTrace
}

// settle takes one trace's spans of a batch: it finds the trace, records what the spans tell,
// and lets the trace's phase decide their fate.
func (s *Sampler) settle(sh *shard, b *batch, ti int32, now time.Time, out *output) {
	bt := &b.traces[ti]
	si := sh.index.find(bt.hash, bt.id, sh.slots)
	if si < 0 {
		if s.followDecision(sh, b, bt, now, out) {
			return
		}
		si = sh.alloc(bt.hash, bt.id, now.UnixNano())
		sh.slots[si].rule = uint8(len(s.rules))
		s.traces.Add(1)
		if s.dynamic != nil && !b.carried {
			s.countArrival(b, bt, now)
		}
	}
	in := &here{b, bt}
	if sh.slots[si].phase == phaseRescuable {
		s.joinRescuable(sh, si, in, now, out)
		return
	}
	for _, r := range bt.spans {
		s.observe(sh, si, b, r, now)
	}
	t := &sh.slots[si]
	t.spans += uint32(len(bt.spans))
	t.last = msBetween(t.first, now)

	trigger, due := s.trigger(sh, si, in, now)
	switch {
	case t.kept() && due:
		s.endWait(sh, si, trigger, now)
		s.close(sh, si, now, in, out)
	case t.kept():
		s.passOrParkRoot(sh, si, in, out)
		s.place(sh, si)
	case due:
		// An immediate decision comes before the trace is complete: its close comes later.
		closing := trigger != TriggerImmediate
		switch s.decide(sh, si, trigger, now, closing, out) {
		case outcomeKept:
			if closing {
				s.close(sh, si, now, in, out)
			} else {
				s.passOrParkRoot(sh, si, in, out)
			}
		case outcomeHeld:
			s.parkHere(sh, si, in)
			sh.store.Pack(si, &sh.slots[si].parked)
		}
	default:
		s.parkHere(sh, si, in)
		s.place(sh, si)
	}
}

// trigger says whether a live trace is due for a decision (open) or its close (kept), and why.
// A kept trace holds only its root: its span count bounds nothing.
func (s *Sampler) trigger(sh *shard, si int32, in *here, now time.Time) (Trigger, bool) {
	t := &sh.slots[si]
	switch {
	case t.complete() && (t.phase != phaseOpen || s.parentsArrived(sh, si, in)):
		return TriggerRoot, true
	case t.phase == phaseOpen && int(t.spans) >= s.cfg.MaxTraceSpans || s.traceBytes(sh, si) >= s.cfg.MaxTraceBytes:
		return TriggerLimit, true
	case t.phase == phaseOpen && (keepAlways(t.signals()) || t.slow(s.cfg.SlowThreshold, now)):
		return TriggerImmediate, true
	}
	return NumTriggers, false
}

func (s *Sampler) traceBytes(sh *shard, si int32) int64 {
	t := &sh.slots[si]
	return sh.store.MemoryBytes(si, &t.parked) + sh.store.DiskBytes(si, &t.parked)
}

// followDecision applies an earlier decision to spans of a trace no longer in flight, and
// reports whether there was one.
func (s *Sampler) followDecision(sh *shard, b *batch, bt *batchTrace, now time.Time, out *output) bool {
	if th, ok := sh.keep.get(bt.fp); ok {
		for _, r := range bt.spans {
			span, router := b.span(r), b.group(r).router
			if !s.lateServing(sh.lateRoute(bt.fp), b.group(r), span, true, 1) {
				f := routerconv.Classify(span, router)
				s.modelCall(&f, span, router, "", th, bt.id, 1)
			}
			b.fates[r] = fatePass
			out.stamp(span, th)
			s.obs.LateSpan(LateKept)
		}
		return true
	}
	if _, ok := sh.drop.get(bt.fp); !ok {
		return false
	}
	rescue := false
	for _, r := range bt.spans {
		span, router := b.span(r), b.group(r).router
		f := routerconv.Classify(span, router)
		if !s.lateServing(sh.lateRoute(bt.fp), b.group(r), span, false, 1) {
			s.modelCall(&f, span, router, "", sampling.NeverSampleThreshold, bt.id, 1)
		}
		rescue = rescue || keepAlways(f.Signals)
	}
	if !rescue {
		for range bt.spans {
			s.obs.LateSpan(LateDropped)
		}
		return true
	}
	// An error or block is never dropped: the trace is kept from now on.
	sh.drop.remove(bt.fp)
	sh.keep.put(bt.fp, sampling.AlwaysSampleThreshold)
	s.journalDecision(sh, noSlot, &store.Trace{}, bt.id, true, sampling.AlwaysSampleThreshold, now)
	for _, r := range bt.spans {
		b.fates[r] = fatePass
		out.stamp(b.span(r), sampling.AlwaysSampleThreshold)
		s.obs.LateSpan(LateRescued)
	}
	return true
}

// joinRescuable takes spans of a dropped trace within its rescue window: an error or block
// among them brings the whole trace back; otherwise they join its held spans, to come back
// with them if a later span does.
func (s *Sampler) joinRescuable(sh *shard, si int32, in *here, now time.Time, out *output) {
	rescue := false
	held := s.routeOf(sh, si)
	for _, r := range in.bt.spans {
		span, router := in.b.span(r), in.b.group(r).router
		f := routerconv.Classify(span, router)
		if !s.lateServing(&held, in.b.group(r), span, false, s.weight(sh, si)) {
			s.modelCall(&f, span, router, "", sampling.NeverSampleThreshold, in.bt.id, s.weight(sh, si))
		}
		rescue = rescue || keepAlways(f.Signals)
	}
	t := &sh.slots[si]
	if !rescue {
		for range in.bt.spans {
			s.obs.LateSpan(LateDropped)
		}
		s.parkHere(sh, si, in)
		t.spans += uint32(len(in.bt.spans))
		return
	}
	fp := fingerprint(t.id)
	sh.drop.remove(fp)
	sh.keep.put(fp, sampling.AlwaysSampleThreshold)
	s.journalDecision(sh, si, &t.parked, t.id, true, sampling.AlwaysSampleThreshold, now)
	for range t.spans {
		s.obs.LateSpan(LateRescued)
	}
	fin := s.newFinisher(sh, si, sampling.AlwaysSampleThreshold)
	s.releaseParked(sh, si, sampling.AlwaysSampleThreshold, fin, out)
	for _, r := range in.bt.spans {
		in.b.fates[r] = fatePass
		fin.span(in.b.span(r), in.b.group(r).router, out)
		s.obs.LateSpan(LateRescued)
	}
	s.forget(sh, si, now)
}

// observe records what one span tells about its trace: every span's keep-always signals, and
// the request's facts from the router's spans only.
func (s *Sampler) observe(sh *shard, si int32, b *batch, r int32, now time.Time) {
	span, g := b.span(r), b.group(r)
	f := routerconv.Classify(span, g.router)
	t := &sh.slots[si]
	if g.router {
		if !t.has(flagRouter) && t.has(flagRoot) {
			// Another service's span rooted the trace: a model server's, which continues the
			// router's traceparent (a remote parent), or an application's in front. The trace is
			// the router's request, and its root is the router's, still to come.
			t.flags &^= flagRoot | flagRootStart
		}
		t.sum.Add(&f, sh.strs.intern)
		t.flags |= flagRouter
		if t.service == 0 {
			t.service = sh.strs.intern(routerconv.BoundedName(g.service))
		}
	} else {
		t.other |= f.Signals & keepAlwaysSignals
	}
	t.maxEnd = max(t.maxEnd, t.spanMS(span.EndTimestamp()))
	if routerconv.IsLocalRoot(span) {
		info, _ := routerconv.LookupSpan(span.Name())
		isRouterRoot := info.Role == routerconv.RoleRoot || info.Role == routerconv.RoleRootEarly
		if isRouterRoot || !t.has(flagRoot) && (g.router || !t.has(flagRouter)) {
			t.flags |= flagRoot
			t.flags &^= flagEarlyRoot | flagRouterRoot
			switch info.Role {
			case routerconv.RoleRootEarly:
				t.flags |= flagEarlyRoot
			case routerconv.RoleRoot:
				t.flags |= flagRouterRoot
			}
			t.rootAt = msBetween(t.first, now)
			t.flags &^= flagRootStart
			if span.StartTimestamp() != 0 {
				t.rootStart = t.spanMS(span.StartTimestamp())
				t.flags |= flagRootStart
			}
		}
	}
	if raw := span.TraceState().AsRaw(); raw != "" {
		s.readTraceState(sh, si, b, raw)
	}
	for i := 0; i < int(t.rule); i++ {
		if s.rules[i].matches(span, g.rs) {
			t.rule = uint8(i)
			break
		}
	}
	if s.dynamic != nil {
		s.observeDynamic(sh, si, span)
	}
	if s.holdServing(sh, si, g, span) {
		return
	}
	if f.Signals&routerconv.SigUpstream != 0 || f.Usage != (routerconv.TokenUsage{}) {
		var th sampling.Threshold
		switch t.phase {
		case phaseOpen:
			th = sampling.NeverSampleThreshold // not decided: no exemplar
		default:
			th = s.keptThreshold(sh, si)
		}
		s.modelCall(&f, span, g.router, sh.strs.str(t.sum.SelectedModel), th, t.id, s.weight(sh, si))
	}
}

// readTraceState records the OTEP 235 randomness and threshold a span's tracestate carries.
func (s *Sampler) readTraceState(sh *shard, si int32, b *batch, raw string) {
	rnd, hasRnd, th, hasTh := b.traceState(raw)
	if !hasRnd && !hasTh {
		return
	}
	e := sh.extra(si)
	if hasRnd {
		e.rnd, e.hasRnd = rnd, true
	}
	if hasTh {
		e.th, e.hasTh = maxThreshold(e.th, th), true
	}
}

// observeDynamic fills in the trace's values of the dynamic keys: the first value of each.
func (s *Sampler) observeDynamic(sh *shard, si int32, span ptrace.Span) {
	t := &sh.slots[si]
	keys := s.cfg.Dynamic.Keys
	var vals []string
	for i, k := range keys {
		v, ok := span.Attributes().Get(k)
		if !ok || v.AsString() == "" {
			continue
		}
		if vals == nil {
			vals = strings.SplitN(sh.strs.str(t.dyn), dynSep, len(keys))
			vals = append(vals, make([]string, len(keys)-len(vals))...)
		}
		if vals[i] == "" {
			vals[i] = v.AsString()
		}
	}
	if vals == nil {
		return
	}
	if joined := strings.Join(vals, dynSep); joined != sh.strs.str(t.dyn) {
		old := t.dyn
		t.dyn = sh.strs.intern(joined)
		sh.strs.release(old)
	}
}

// dynSep separates the values of a dynamic key.
const dynSep = "\x00"

// policy applies the keep rules in order; the first that matches decides.
func (s *Sampler) policy(sh *shard, si int32, now time.Time) Decision {
	t := &sh.slots[si]
	d := Decision{Keep: true, Threshold: sampling.AlwaysSampleThreshold}
	e := sh.lookupExtra(si)
	if s.dynamic != nil {
		s.dynamic.decided(now)
	}
	switch {
	case t.signals()&routerconv.SigError != 0:
		d.Reason = ReasonError
	case keepAlways(t.signals()):
		d.Reason = ReasonBlocked
	case t.slow(s.cfg.SlowThreshold, now):
		d.Reason = ReasonSlow
	default:
		switch {
		case int(t.rule) < len(s.rules):
			d.Reason, d.Rule, d.Threshold = ReasonRule, int(t.rule), s.ruleTh[t.rule]
		case s.dynamic != nil:
			d.Reason, d.Threshold = ReasonDynamic, thresholdFor(100*s.dynamic.rate(sh.strs.str(t.dyn), now))
		default:
			d.Reason, d.Threshold = ReasonDefault, s.defaultTh
		}
		rnd := sampling.TraceIDToRandomness(t.id)
		if e != nil && e.hasRnd {
			rnd = e.rnd
		}
		d.Keep = d.Threshold.ShouldSample(rnd)
		if d.Keep && d.Reason == ReasonDynamic {
			s.dynamic.kept()
		}
	}
	if e != nil && e.hasTh {
		d.Threshold = maxThreshold(d.Threshold, e.th)
	}
	return d
}

// outcome is what a decision made of a trace.
type outcome uint8

const (
	// outcomeKept: the trace is kept and still in flight (phaseKept, phaseAwaiting) until its
	// close.
	outcomeKept outcome = iota
	// outcomeHeld: dropped, held for the rescue window.
	outcomeHeld
	// outcomeGone: dropped and forgotten; the slot is free.
	outcomeGone
)

// decide applies the policy to an open trace. Kept, it becomes phaseKept and, unless the
// caller closes it at once, its parked spans but the root leave now. Dropped, it leaves the
// traces in flight: held for the rescue window or forgotten.
func (s *Sampler) decide(sh *shard, si int32, trigger Trigger, now time.Time, closing bool, out *output) outcome {
	t := &sh.slots[si]
	d := s.policy(sh, si, now)
	if trigger == TriggerShutdown && !d.Keep {
		d = Decision{Keep: true, Reason: ReasonInFlight, Threshold: sampling.AlwaysSampleThreshold}
	}
	since := t.at(0)
	if t.has(flagRoot) {
		since = t.at(t.rootAt)
	}
	s.obs.Decided(d, trigger, int(t.spans), now.Sub(since))
	fp := fingerprint(t.id)
	if d.Keep {
		sh.keep.put(fp, d.Threshold)
		s.journalDecision(sh, si, &t.parked, t.id, true, d.Threshold, now)
		t.phase = phaseKept
		sh.extra(si).keptTh = d.Threshold
		if !closing {
			s.releaseParked(sh, si, d.Threshold, nil, out)
			s.place(sh, si)
		}
		return outcomeKept
	}
	s.obs.Request(s.request(sh, si, now, false))
	s.reportServing(sh, si, false)
	sh.drop.put(fp, struct{}{})
	sh.leaveLists(si)
	s.traces.Add(-1)
	if s.cfg.RescueWindow > 0 && trigger != TriggerPressure && trigger != TriggerShutdown {
		t.phase = phaseRescuable
		t.last = msBetween(t.first, now)
		sh.setTimer(si, listRescuable)
		s.journalDecision(sh, si, &t.parked, t.id, false, d.Threshold, now)
		return outcomeHeld
	}
	s.free(sh, si, now)
	return outcomeGone
}

// finish decides a trace if it is open and closes it if kept: the trace is done.
func (s *Sampler) finish(sh *shard, si int32, trigger Trigger, now time.Time, out *output) {
	if sh.slots[si].phase == phaseOpen {
		switch s.decide(sh, si, trigger, now, true, out) {
		case outcomeHeld:
			sh.store.Pack(si, &sh.slots[si].parked)
			return
		case outcomeGone:
			return
		}
	}
	s.endWait(sh, si, trigger, now)
	s.close(sh, si, now, nil, out)
}

// timeOut decides an open trace at trace_timeout. A router request that has not shown its end
// (its root, or its model call) goes on waiting for it if kept (off the FIFO); otherwise the
// trace is done.
func (s *Sampler) timeOut(sh *shard, si int32, now time.Time, out *output) {
	if t := &sh.slots[si]; t.phase != phaseOpen || !t.awaitsEnd() {
		s.finish(sh, si, TriggerTimeout, now, out)
		return
	}
	if s.decide(sh, si, TriggerTimeout, now, false, out) == outcomeHeld {
		sh.store.Pack(si, &sh.slots[si].parked)
	}
}

// endWait reports the end of a kept request's wait for its end, if the trace had one: trigger
// is what closes it (TriggerRoot: its model call or root came).
func (s *Sampler) endWait(sh *shard, si int32, trigger Trigger, now time.Time) {
	if t := &sh.slots[si]; t.phase == phaseAwaiting {
		s.obs.RootWaited(trigger, now.Sub(t.at(t.rootAt)))
	}
}

// close ends a kept trace: its parked spans and the batch's (in, if any) leave, stamped, with
// the summary of the whole request on the root.
func (s *Sampler) close(sh *shard, si int32, now time.Time, in *here, out *output) {
	th := s.keptThreshold(sh, si)
	fin := s.newFinisher(sh, si, th)
	s.releaseParked(sh, si, th, fin, out)
	if in != nil {
		for _, r := range in.bt.spans {
			span := in.b.span(r)
			if fin.duplicate(span) {
				s.obs.DuplicateSpan()
				continue
			}
			in.b.fates[r] = fatePass
			fin.span(span, in.b.group(r).router, out)
		}
	}
	s.obs.Request(s.request(sh, si, now, true))
	s.reportServing(sh, si, true)
	sh.leaveLists(si)
	s.traces.Add(-1)
	s.free(sh, si, now)
}

func (s *Sampler) keptThreshold(sh *shard, si int32) sampling.Threshold {
	if e := sh.lookupExtra(si); e != nil {
		return e.keptTh
	}
	return sampling.AlwaysSampleThreshold
}

// passOrParkRoot lets the batch's spans of a kept trace pass, but for the root, which waits
// for the trace's close.
func (s *Sampler) passOrParkRoot(sh *shard, si int32, in *here, out *output) {
	th := s.keptThreshold(sh, si)
	var root []int32
	for _, r := range in.bt.spans {
		span := in.b.span(r)
		if sh.slots[si].has(flagRouter) && routerconv.IsLocalRoot(span) {
			root = append(root, r)
			continue
		}
		in.b.fates[r] = fatePass
		out.stamp(span, th)
	}
	if len(root) > 0 {
		s.parkRefs(sh, si, in.b, root)
	}
}

// place puts a live trace on the timer list its state calls for.
func (s *Sampler) place(sh *shard, si int32) {
	t := &sh.slots[si]
	switch {
	case t.phase == phaseOpen && t.awaitingModelCall():
		if t.list != listWaiting {
			sh.setTimer(si, listWaiting)
		}
	case t.kept() && t.awaitsEnd():
		// Its spans leave as they come; its root, once here, waits for the request's end,
		// model_call_wait from the last span.
		sh.await(si)
	case t.has(flagRoot):
		sh.stopAwaiting(si)
		sh.setTimer(si, listQuiet)
	default:
		sh.stopAwaiting(si)
		sh.setTimer(si, listNone)
	}
}

// noSlot is the slot of a decision for a trace the sampler does not hold.
const noSlot = int32(-1)

// journalDecision writes a decision to the journal, if any: after a crash it comes back into
// the decision caches, and a dropped trace's spans wait out their rescue window.
func (s *Sampler) journalDecision(sh *shard, si int32, t *store.Trace, id pcommon.TraceID, keep bool, th sampling.Threshold, now time.Time) {
	if err := sh.store.Decided(si, t, id, keep, th.Unsigned(), now); err != nil {
		s.obs.JournalFailed(err)
	}
}

// forget frees a rescuable trace.
func (s *Sampler) forget(sh *shard, si int32, now time.Time) {
	sh.setTimer(si, listNone)
	s.free(sh, si, now)
}

// free gives a trace's memory back: its parked spans, in memory, on disk and in the journal
// (done with now), and its slot.
func (s *Sampler) free(sh *shard, si int32, now time.Time) {
	t := &sh.slots[si]
	if err := sh.store.Free(si, &t.parked, t.id, now); err != nil {
		s.obs.JournalFailed(err)
	}
	sh.release(hashID(t.id), si)
}

// request is what the metrics are told of a trace that is done.
func (s *Sampler) request(sh *shard, si int32, now time.Time, kept bool) *requestmetrics.Request {
	t := &sh.slots[si]
	r := &requestmetrics.Request{At: now, Kept: kept, Router: t.has(flagRouter), Weight: s.weight(sh, si)}
	if kept {
		r.TraceID = t.id
	}
	str := sh.strs.str
	r.Era = t.sum.Era().String()
	r.Service = str(t.service)
	r.SelectedModel = str(t.sum.RoutedModel())
	r.Category = str(t.sum.Category)
	r.Decision = str(t.sum.Decision)
	if t.sum.Cache != routerconv.CacheUnknown {
		r.CacheHit = strconv.FormatBool(t.sum.Cache == routerconv.CacheHit)
	}
	if t.sum.Error() {
		r.ErrorType = str(t.sum.ErrorType)
	}
	switch reason, blocked := t.sum.Blocked(); {
	case blocked:
		r.Action, r.Reason = "blocked", reason
	case t.sum.PassedGuards():
		r.Action = "allowed"
	}
	if ms, ok := t.timing().ProcessingMS(); ok {
		r.Duration = time.Duration(ms) * time.Millisecond
	}
	return r
}

// weight is how many requests a trace stands for: the adjusted count of the threshold a head
// sampler in front wrote, else 1.
func (s *Sampler) weight(sh *shard, si int32) float64 {
	if e := sh.lookupExtra(si); e != nil && e.hasTh {
		return e.th.AdjustedCount()
	}
	return 1
}
