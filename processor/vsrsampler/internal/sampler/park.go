package sampler

import (
	"errors"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/sampling"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/requestmetrics"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/journal"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/store"
)

// parkHere parks all of the batch's spans of a trace.
func (s *Sampler) parkHere(sh *shard, si int32, in *here) {
	s.parkRefs(sh, si, in.b, in.bt.spans)
}

// parkRefs encodes spans of the batch into the trace's buffer, one record per batch group.
// Each span visits the group's parking slice only to be encoded, then goes back to its place
// in the batch, which drops it: no span is copied or allocated.
func (s *Sampler) parkRefs(sh *shard, si int32, b *batch, refs []int32) {
	for start := 0; start < len(refs); {
		g := b.refs[refs[start]].group
		end := start + 1
		for end < len(refs) && b.refs[refs[end]].group == g {
			end++
		}
		td, spans := b.groups[g].parking()
		resize(spans, end-start)
		for i, r := range refs[start:end] {
			b.fates[r] = fatePark
			b.span(r).MoveTo(spans.At(i))
		}
		s.park(sh, si, td)
		for i, r := range refs[start:end] {
			spans.At(i).MoveTo(b.span(r))
		}
		start = end
	}
}

// resize gives spans exactly n elements, keeping those it has.
func resize(spans ptrace.SpanSlice, n int) {
	for spans.Len() < n {
		spans.AppendEmpty()
	}
	if spans.Len() > n {
		i := 0
		spans.RemoveIf(func(ptrace.Span) bool { i++; return i > n })
	}
}

// park keeps td, spans of the trace, as its next parked record, and writes it to the
// journal (if any) with the trace's phase.
func (s *Sampler) park(sh *shard, si int32, td ptrace.Traces) {
	t := &sh.slots[si]
	m := store.Meta{ID: t.id, Arrived: t.first + int64(t.last)*int64(time.Millisecond)}
	switch t.phase {
	case phaseKept, phaseAwaiting:
		m.Phase, m.Threshold = journal.PhaseKept, s.keptThreshold(sh, si).Unsigned()
	case phaseRescuable:
		m.Phase = journal.PhaseDropped
	}
	if err := sh.store.Park(si, &t.parked, td, m); err != nil {
		s.obs.JournalFailed(err)
	}
}

// unpark decodes and empties the trace's parked spans. Their journal records are done with
// once out's spans are delivered. A part that cannot be read back is reported and left out.
func (s *Sampler) unpark(sh *shard, si int32, out *output) ptrace.Traces {
	t := &sh.slots[si]
	td, rel, err := sh.store.Take(si, &t.parked, t.id)
	if errors.Is(err, store.ErrDisk) {
		s.obs.SpillFailed(err)
	}
	if errors.Is(err, store.ErrUnreadable) {
		s.obs.Lost(err)
	}
	out.receipt(rel)
	return td
}

// releaseParked sends a kept trace's parked spans out, through fin when the trace closes.
// Without fin (a keep decided before the trace is complete), the root stays parked for the
// close.
func (s *Sampler) releaseParked(sh *shard, si int32, th sampling.Threshold, fin *finisher, out *output) {
	if !sh.store.Parked(&sh.slots[si].parked) {
		return
	}
	td := s.unpark(sh, si, out)
	var root ptrace.Traces
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			router := s.services.RouterScope(rs.Resource(), ss.Scope())
			ss.Spans().RemoveIf(func(span ptrace.Span) bool {
				switch {
				case fin != nil && fin.duplicate(span):
					s.obs.DuplicateSpan()
					return true
				case fin != nil:
					fin.span(span, router, out)
				case router && routerconv.IsLocalRoot(span):
					if root == (ptrace.Traces{}) {
						root = ptrace.NewTraces()
					}
					moveSpan(span, rs, ss, root)
					return true
				default:
					out.stamp(span, th)
				}
				return false
			})
		}
	}
	td.ResourceSpans().MoveAndAppendTo(out.traces().ResourceSpans())
	if root != (ptrace.Traces{}) {
		s.park(sh, si, root)
	}
}

// moveSpan moves span, with a copy of its resource and scope and their schema URLs, into dst.
func moveSpan(span ptrace.Span, rs ptrace.ResourceSpans, ss ptrace.ScopeSpans, dst ptrace.Traces) {
	drs := dst.ResourceSpans().AppendEmpty()
	rs.Resource().CopyTo(drs.Resource())
	drs.SetSchemaUrl(rs.SchemaUrl())
	dss := drs.ScopeSpans().AppendEmpty()
	ss.Scope().CopyTo(dss.Scope())
	dss.SetSchemaUrl(ss.SchemaUrl())
	span.MoveTo(dss.Spans().AppendEmpty())
}

// finisher prepares the spans of a closing kept trace: stamped, each span once, the request's
// summary on the router root, the routed model on a model call that does not name one.
type finisher struct {
	s      *Sampler
	sh     *shard
	si     int32
	th     sampling.Threshold
	seen   []pcommon.SpanID
	seenAt map[pcommon.SpanID]struct{}
}

func (s *Sampler) newFinisher(sh *shard, si int32, th sampling.Threshold) *finisher {
	return &finisher{s: s, sh: sh, si: si, th: th}
}

// duplicate reports whether a span with this ID was already released, and remembers it.
func (f *finisher) duplicate(span ptrace.Span) bool {
	id := span.SpanID()
	if f.seenAt != nil {
		if _, ok := f.seenAt[id]; ok {
			return true
		}
		f.seenAt[id] = struct{}{}
		return false
	}
	for _, x := range f.seen {
		if x == id {
			return true
		}
	}
	f.seen = append(f.seen, id)
	if len(f.seen) > 32 {
		f.seenAt = make(map[pcommon.SpanID]struct{}, 2*len(f.seen))
		for _, x := range f.seen {
			f.seenAt[x] = struct{}{}
		}
	}
	return false
}

func (f *finisher) span(span ptrace.Span, router bool, out *output) {
	out.stamp(span, f.th)
	t := &f.sh.slots[f.si]
	if !router || !t.has(flagRouter) {
		return
	}
	str := f.sh.strs.str
	if routerconv.IsLocalRoot(span) {
		routerconv.WriteSummary(span, &t.sum, t.timing(), str)
		return
	}
	if info, _ := routerconv.LookupSpan(span.Name()); info.Role == routerconv.RoleUpstream {
		if _, named := span.Attributes().Get("model.name"); !named {
			routerconv.WriteModel(span, str(t.sum.SelectedModel))
		}
	}
}

// modelCall reports the router's upstream call or a span's token usage (a model server
// reports it), when a span shows one. router says whether the span is the router's: only the
// router's upstream span is a call. The model, a metric label, is the call's own, else the one
// the token report names, else the routed one, held to BoundedName; the error class is one of
// ErrorReasons. th is its trace's threshold when kept (an exemplar may point at it), else
// NeverSample.
func (s *Sampler) modelCall(f *routerconv.Facts, span ptrace.Span, router bool, routed string, th sampling.Threshold, id pcommon.TraceID, weight float64) {
	upstream := router && f.Signals&routerconv.SigUpstream != 0
	if !upstream && f.Usage == (routerconv.TokenUsage{}) {
		return
	}
	c := &requestmetrics.ModelCall{Upstream: upstream, At: span.EndTimestamp().AsTime(),
		InputTokens: f.Usage.Input, OutputTokens: f.Usage.Output, Weight: weight}
	if upstream {
		c.Model = f.UpstreamModel
	}
	if c.Model == "" {
		c.Model = f.Usage.Model
	}
	if c.Model == "" {
		c.Model = routed
	}
	if c.Model != "" {
		c.Model = routerconv.BoundedName(c.Model)
	}
	if f.Signals&routerconv.SigError != 0 {
		c.ErrorType = f.ErrorReason
	}
	if span.EndTimestamp() > span.StartTimestamp() {
		c.Duration = span.EndTimestamp().AsTime().Sub(span.StartTimestamp().AsTime())
	}
	if th != sampling.NeverSampleThreshold {
		c.TraceID, c.SpanID = id, span.SpanID()
	}
	s.obs.ModelCall(c)
}

// output collects the spans released by decisions, created on first use, and the journal
// records they leave.
type output struct {
	td       ptrace.Traces
	set      bool
	releases []store.Release
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

func (o *output) receipt(r store.Release) {
	if !r.Empty() {
		o.releases = append(o.releases, r)
	}
}

// released is what the output hands to the caller.
func (o *output) released() Released {
	return Released{Traces: o.traces(), Receipt: o.releases}
}

// Released are kept spans that left their trace's buffer, to be sent on, and the receipt of
// the journal records they came from.
type Released struct {
	ptrace.Traces
	Receipt Receipt
}

// Receipt is the journal records of released spans. Done tells the journal the spans are
// delivered (or given up): after a restart they do not come back.
type Receipt []store.Release

// Done marks the records done with.
func (r Receipt) Done(now time.Time) error {
	var errs []error
	for _, rel := range r {
		errs = append(errs, rel.Done(now))
	}
	return errors.Join(errs...)
}

func (o *output) stamp(span ptrace.Span, th sampling.Threshold) {
	raw := span.TraceState().AsRaw()
	if !o.memo || raw != o.lastRaw || th != o.lastTh {
		o.memo, o.lastRaw, o.lastTh, o.lastStamped = true, raw, th, stampTraceState(raw, th)
	}
	span.TraceState().FromRaw(o.lastStamped)
}
