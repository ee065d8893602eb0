package sampler

import (
	"unsafe"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/requestmetrics"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
)

// A model server's request span (vLLM's llm_request, SGLang's request span) is reported to the
// request metrics joined with the facts of the router request it served: the route is known
// only once the trace is, so a trace holds its model servers' facts until its decision. A
// model server exports on its own schedule, and its span often comes after the router's
// spans have decided the trace: the route of each decided request that called a model is
// remembered (routes, bounded like the keep cache) for those.

// served is a model server's request span a trace holds until it is decided. Its model and
// service are held as the shard's interned strings (facts.Model is not kept).
type served struct {
	facts          routerconv.Serving
	model, service handle
	spanID         pcommon.SpanID
	end            pcommon.Timestamp
}

// servedSize is what one held span takes; its strings are the interner's.
const servedSize = int64(unsafe.Sizeof(served{}))

// route is what a model server's span is reported with of the router request it served.
type route struct {
	selected, category, decision, upstream string
	era                                    routerconv.Era
	// router: the trace had router spans.
	router bool
}

// holdServing takes a model server's request span of a trace in flight, and reports whether
// the span was one. A span that covers part of a request (an SGLang prefill server's) is
// taken and not reported.
func (s *Sampler) holdServing(sh *shard, si int32, g *group, span ptrace.Span) bool {
	if g.router {
		return false // the router's own spans, most of them: no lookup
	}
	facts, ok := routerconv.ReadServing(g.ss.Scope(), span)
	if !ok || !facts.Whole {
		return ok
	}
	v := served{facts: facts, model: sh.strs.intern(facts.Model), service: sh.strs.intern(g.service),
		spanID: span.SpanID(), end: span.EndTimestamp()}
	v.facts.Model = ""
	e := sh.extra(si)
	e.served = append(e.served, v)
	sh.servedBytes += servedSize
	return true
}

// reportServing reports the model server spans a decided trace holds, with its route, and
// remembers the route for spans still to come.
func (s *Sampler) reportServing(sh *shard, si int32, kept bool) {
	t := &sh.slots[si]
	r := s.routeOf(sh, si)
	if r.router && t.sum.Signals&routerconv.SigUpstream != 0 {
		sh.routes.put(fingerprint(t.id), r)
	}
	e := sh.lookupExtra(si)
	if e == nil || len(e.served) == 0 {
		return
	}
	weight := s.weight(sh, si)
	for i := range e.served {
		v := &e.served[i]
		s.obs.Serving(servingRecord(v, sh.strs.str(v.model), sh.strs.str(v.service), &r, kept, t.id, weight))
	}
	sh.freeServed(e)
}

// lateServing reports a model server's request span that came after its trace's decision,
// with the route remembered (none when the trace had no model call, or it is forgotten), and
// reports whether the span was one.
func (s *Sampler) lateServing(r *route, g *group, span ptrace.Span, kept bool, weight float64) bool {
	if g.router {
		return false
	}
	facts, ok := routerconv.ReadServing(g.ss.Scope(), span)
	if !ok || !facts.Whole {
		return ok
	}
	v := served{facts: facts, spanID: span.SpanID(), end: span.EndTimestamp()}
	s.obs.Serving(servingRecord(&v, facts.Model, g.service, r, kept, span.TraceID(), weight))
	return true
}

// lateRoute is the route remembered for a trace no longer in flight.
func (sh *shard) lateRoute(fp uint64) *route {
	r, _ := sh.routes.get(fp)
	return &r
}

// routeOf is the route of a trace in flight, from its summary.
func (s *Sampler) routeOf(sh *shard, si int32) route {
	t := &sh.slots[si]
	if !t.has(flagRouter) {
		return route{}
	}
	str := sh.strs.str
	r := route{router: true, category: str(t.sum.Category), decision: str(t.sum.Decision), upstream: str(t.sum.UpstreamModel),
		selected: str(t.sum.SelectedModel), era: t.sum.Era()}
	if r.selected == "" {
		r.selected = r.upstream
	}
	return r
}

// servingRecord is what the request metrics are told of one model server span. The model is
// the one the server named, else the one the router's call named, else the one it chose.
func servingRecord(v *served, model, service string, r *route, kept bool, id pcommon.TraceID, weight float64) *requestmetrics.Serving {
	rec := &requestmetrics.Serving{At: v.end.AsTime(), Weight: weight, Service: service, Model: model,
		SelectedModel: r.selected, Category: r.category, Decision: r.decision,
		TTFT: v.facts.TTFT, TPOT: v.facts.TimePerOutputToken(), Queue: v.facts.Queue, E2E: v.facts.E2E,
		InputTokens: v.facts.InputTokens, OutputTokens: v.facts.OutputTokens}
	if r.router {
		rec.Era = r.era.String()
	}
	if rec.Model == "" {
		rec.Model = r.upstream
	}
	if rec.Model == "" {
		rec.Model = r.selected
	}
	if kept {
		rec.TraceID, rec.SpanID = id, v.spanID
	}
	return rec
}

// freeServed gives back what an extra's held spans take.
func (sh *shard) freeServed(e *extra) {
	for i := range e.served {
		sh.strs.release(e.served[i].model)
		sh.strs.release(e.served[i].service)
		sh.servedBytes -= servedSize
	}
	e.served = nil
}
