// Package routersim builds the traces the vLLM Semantic Router emits, era by era, as
// described in docs/router-spans.md: span names, parentage (chains in eras A–C,
// siblings in D), attribute keys and wire types, and the ways errors and guard blocks show.
// It is deterministic for a given seed so tests, benchmarks and vsrgen share one truth.
package routersim

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
)

// Outcome is how a simulated request ends.
type Outcome uint8

const (
	OutcomeOK Outcome = iota
	// OutcomeError fails the request in one of the era's ways (see errorModes).
	OutcomeError
	OutcomeJailbreak
	OutcomePII
	// OutcomeCacheHit answers from the semantic cache: no routing, no upstream call.
	OutcomeCacheHit
	// OutcomePIIRouted is a request whose decision matched a PII rule and routed it, to a
	// private model say, instead of blocking it (a documented router use); the decision has no
	// plugins, so nothing follows the guards but the routing and the model call, which takes
	// 3 to 8 s, longer than a tail sampler's grace period.
	OutcomePIIRouted
)

func (o Outcome) String() string {
	return [...]string{"ok", "error", "jailbreak", "pii", "cache_hit", "pii_routed"}[o]
}

// Blocked reports whether a guard stops the request.
func (o Outcome) Blocked() bool { return o == OutcomeJailbreak || o == OutcomePII }

// Request describes one simulated router request.
type Request struct {
	Era     routerconv.Era
	Outcome Outcome
	// Slow makes the upstream call take tens of seconds.
	Slow     bool
	Category string
	Model    string
	Prompt   string
	Start    time.Time
	// RemoteParent continues a client's traceparent, so the root has a remote parent.
	RemoteParent bool
	// Streaming is an era D streaming response.
	Streaming bool
	// ModelServer: the model server (vLLM) traces too. Its span joins the router's trace
	// through the propagated traceparent, as a child of the upstream call, with the timings
	// and token counts vLLM writes (modelserver.go). It comes from another service, exported
	// by another process.
	ModelServer bool
}

// Trace is one built trace: its spans in the order the router ends (and exports) them.
type Trace struct {
	ID      pcommon.TraceID
	Request Request
	Traces  ptrace.Traces
	// Serving is what the model server's span says, when it traced the request.
	Serving *Serving
}

// SpanCount is the number of spans in the trace.
func (t Trace) SpanCount() int { return t.Traces.SpanCount() }

// RootEnd is when the trace's router root span ended.
func (t Trace) RootEnd() time.Time {
	for _, s := range t.Spans().All() {
		if routerconv.IsLocalRoot(s) {
			return s.EndTimestamp().AsTime()
		}
	}
	return time.Time{}
}

// Spans are the router's spans of the trace, in end order.
func (t Trace) Spans() ptrace.SpanSlice {
	return t.Traces.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
}

// ModelServerSpans are the model server's spans of the trace, if it traced the request.
func (t Trace) ModelServerSpans() (ptrace.SpanSlice, bool) {
	if t.Traces.ResourceSpans().Len() < 2 {
		return ptrace.SpanSlice{}, false
	}
	return t.Traces.ResourceSpans().At(1).ScopeSpans().At(0).Spans(), true
}

// eraVersions are the service.version values each era's routers report.
var eraVersions = map[routerconv.Era]string{
	routerconv.EraA: "v0.1.0", routerconv.EraB: "v0.1.1-dev", routerconv.EraC: "v0.3.0", routerconv.EraD: "v0.4.0-dev",
}

// Build makes the trace a router of req.Era emits for req.
func Build(req Request, rng *rand.Rand) Trace {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	res := rs.Resource().Attributes()
	if req.Era >= routerconv.EraC {
		res.PutStr("service.name", "vllm-sr")
	} else {
		res.PutStr("service.name", "vllm-semantic-router")
	}
	res.PutStr("service.version", eraVersions[req.Era])
	if req.Era == routerconv.EraD {
		res.PutStr("deployment.environment.name", "production")
	} else {
		res.PutStr("deployment.environment", "production")
	}
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName(routerconv.TracerName)

	b := &builder{rng: rng, spans: ss.Spans(), req: req}
	binary.BigEndian.PutUint64(b.traceID[:8], rng.Uint64())
	binary.BigEndian.PutUint64(b.traceID[8:], rng.Uint64())
	if req.ModelServer {
		b.serving = drawServing(req, rng)
	}
	switch req.Era {
	case routerconv.EraA:
		b.eraA()
	case routerconv.EraB:
		b.eraB()
	case routerconv.EraC:
		b.eraC()
	default:
		b.eraD()
	}
	b.spans.Sort(func(x, y ptrace.Span) bool { return x.EndTimestamp() < y.EndTimestamp() })
	tr := Trace{ID: b.traceID, Request: req, Traces: td}
	if req.ModelServer {
		tr.Serving = b.modelServer(td)
	}
	return tr
}

type builder struct {
	rng     *rand.Rand
	spans   ptrace.SpanSlice
	req     Request
	traceID pcommon.TraceID
	// serving is the model server's measures, drawn first: its answer times the upstream call.
	serving *Serving
	// cursor is when the next step starts.
	cursor time.Time
}

func (b *builder) spanID() pcommon.SpanID {
	var id pcommon.SpanID
	binary.BigEndian.PutUint64(id[:], b.rng.Uint64()|1)
	return id
}

// ms draws a duration between lo and hi milliseconds.
func (b *builder) ms(lo, hi float64) time.Duration {
	return time.Duration((lo + b.rng.Float64()*(hi-lo)) * float64(time.Millisecond))
}

// span adds a span starting at the cursor and moves the cursor to its end.
func (b *builder) span(name string, kind ptrace.SpanKind, parent pcommon.SpanID, d time.Duration) ptrace.Span {
	s := b.spans.AppendEmpty()
	s.SetTraceID(b.traceID)
	s.SetSpanID(b.spanID())
	s.SetParentSpanID(parent)
	s.SetName(name)
	s.SetKind(kind)
	s.SetStartTimestamp(pcommon.NewTimestampFromTime(b.cursor))
	b.cursor = b.cursor.Add(d)
	s.SetEndTimestamp(pcommon.NewTimestampFromTime(b.cursor))
	return s
}

// root starts the root span, continuing a client's traceparent when asked.
func (b *builder) root(name string) ptrace.Span {
	b.cursor = b.req.Start
	var parent pcommon.SpanID
	if b.req.RemoteParent {
		parent = b.spanID()
	}
	s := b.span(name, ptrace.SpanKindServer, parent, 0)
	if b.req.RemoteParent {
		s.SetFlags(0x300) // parent is known to be remote
	}
	return s
}

// endAt sets a span's end to the cursor: roots that outlive their children.
func (b *builder) endAt(s ptrace.Span) {
	s.SetEndTimestamp(pcommon.NewTimestampFromTime(b.cursor))
}

func (b *builder) upstreamDuration() time.Duration {
	if b.serving != nil {
		return b.serving.upstreamDuration()
	}
	switch {
	case b.req.Slow:
		return b.ms(15000, 45000)
	case b.req.Outcome == OutcomePIIRouted:
		return b.ms(3000, 8000)
	}
	return b.ms(300, 4000)
}

func (b *builder) requestID() string {
	return fmt.Sprintf("req-%016x", b.rng.Uint64())
}

func (b *builder) path() string {
	if b.rng.IntN(4) == 0 {
		return "/v1/chat/completions?api-version=2024-02-01&user=alice"
	}
	return "/v1/chat/completions"
}

// float32Wide is how the router's float32 fields arrive: widened, with artefacts.
func float32Wide(f float32) float64 { return float64(f) }

var piiTypeSets = []string{"PERSON,EMAIL_ADDRESS", "PHONE_NUMBER", "EMAIL_ADDRESS,PERSON,EMAIL_ADDRESS", "us_ssn"}

var reasoningEfforts = []string{"low", "medium", "high", "High"}

// exception records an error the way RecordError does in eras A–C: an event, no status.
func exception(s ptrace.Span, typ, msg string) {
	ev := s.Events().AppendEmpty()
	ev.SetName("exception")
	ev.SetTimestamp(s.EndTimestamp())
	ev.Attributes().PutStr("exception.type", typ)
	ev.Attributes().PutStr("exception.message", msg)
}

// upstreamFailure marks a non-2xx upstream response, the one error eras A–C set status for.
func upstreamFailure(s ptrace.Span, code int64, statusKey string) {
	if statusKey != "" {
		s.Attributes().PutInt(statusKey, code)
	}
	s.Status().SetCode(ptrace.StatusCodeError)
	s.Status().SetMessage("upstream request failed")
}

func (b *builder) eraA() {
	req := b.req
	root := b.root("semantic_router.request.received")
	if b.rng.IntN(10) < 7 {
		root.Attributes().PutStr("request.id", b.requestID())
	}
	root.Attributes().PutStr("http.method", "POST")
	root.Attributes().PutStr("http.path", b.path())

	b.cursor = b.cursor.Add(b.ms(0.1, 0.5))
	parse := b.span("parse_request", ptrace.SpanKindInternal, root.SpanID(), b.ms(0.1, 1))
	parse.Attributes().PutStr("routing.original_model", "auto")

	jb := b.span("semantic_router.security.jailbreak_detection", ptrace.SpanKindInternal, parse.SpanID(), b.ms(5, 30))
	jb.Attributes().PutBool("jailbreak.detected", req.Outcome == OutcomeJailbreak)
	jb.Attributes().PutInt("jailbreak.detection_time_ms", jb.EndTimestamp().AsTime().Sub(jb.StartTimestamp().AsTime()).Milliseconds())
	if req.Outcome == OutcomeJailbreak {
		jb.Attributes().PutStr("jailbreak.type", "jailbreak")
		jb.Attributes().PutStr("security.action", "blocked")
		b.endAt(root)
		return
	}
	pii := b.span("semantic_router.security.pii_detection", ptrace.SpanKindInternal, jb.SpanID(), b.ms(5, 30))
	piiDetected := req.Outcome == OutcomePII || req.Outcome == OutcomePIIRouted
	pii.Attributes().PutBool("pii.detected", piiDetected)
	pii.Attributes().PutInt("pii.detection_time_ms", pii.EndTimestamp().AsTime().Sub(pii.StartTimestamp().AsTime()).Milliseconds())
	if piiDetected {
		pii.Attributes().PutStr("pii.types", piiTypeSets[b.rng.IntN(len(piiTypeSets))])
	}
	if req.Outcome == OutcomePII {
		b.endAt(root)
		return
	}
	// A PII-routed request's decision allows the PII it found and has no cache plugin.
	plugins := req.Outcome != OutcomePIIRouted
	parent := pii.SpanID()
	if plugins {
		cache := b.span("semantic_router.cache.lookup", ptrace.SpanKindInternal, pii.SpanID(), b.ms(1, 10))
		ca := cache.Attributes()
		ca.PutStr("cache.key", req.Prompt)
		ca.PutBool("cache.hit", req.Outcome == OutcomeCacheHit)
		ca.PutInt("cache.lookup_time_ms", cache.EndTimestamp().AsTime().Sub(cache.StartTimestamp().AsTime()).Milliseconds())
		ca.PutStr("category.name", req.Category)
		ca.PutDouble("cache.threshold", float32Wide(0.8))
		if req.Outcome == OutcomeCacheHit {
			b.endAt(root)
			return
		}
		parent = cache.SpanID()
	}
	if b.rng.IntN(5) == 0 { // the classification span existed only briefly
		cl := b.span("semantic_router.classification", ptrace.SpanKindInternal, parent, b.ms(5, 40))
		cl.Attributes().PutStr("category.name", req.Category)
		cl.Attributes().PutStr("classifier.type", "bert")
		cl.Attributes().PutInt("classification.time_ms", cl.EndTimestamp().AsTime().Sub(cl.StartTimestamp().AsTime()).Milliseconds())
		parent = cl.SpanID()
	}
	rd := b.span("semantic_router.routing.decision", ptrace.SpanKindInternal, parent, b.ms(5, 50))
	ra := rd.Attributes()
	ra.PutStr("routing.strategy", "auto")
	ra.PutStr("routing.reason", []string{"decision_engine_evaluation", "keyword_match_category_config", "no_classification_data", "high_uncertainty_trust_classification"}[b.rng.IntN(4)])
	ra.PutStr("routing.original_model", "auto")
	ra.PutStr("routing.selected_model", req.Model)
	reasoning := b.rng.IntN(2) == 0
	ra.PutBool("reasoning.enabled", reasoning)
	if reasoning {
		ra.PutStr("reasoning.effort", reasoningEfforts[b.rng.IntN(len(reasoningEfforts))])
	}
	if req.Outcome == OutcomeError && b.rng.IntN(3) == 0 {
		exception(rd, "*errors.errorString", "classifier timeout, using default model")
	}
	be := b.span("semantic_router.backend.selection", ptrace.SpanKindInternal, rd.SpanID(), b.ms(0.05, 0.3))
	be.Attributes().PutStr("endpoint.name", "endpoint-"+req.Model)
	be.Attributes().PutStr("endpoint.address", "10.0.3.17:8000")
	parent = be.SpanID()
	if plugins {
		parent = b.span("semantic_router.system_prompt.injection", ptrace.SpanKindInternal, be.SpanID(), b.ms(0.05, 0.3)).SpanID()
	}
	b.endAt(root) // headers done: the root ends, the upstream call is still to come
	up := b.span("semantic_router.upstream.request", ptrace.SpanKindClient, parent, b.upstreamDuration())
	if req.Outcome == OutcomeError && rd.Events().Len() == 0 {
		upstreamFailure(up, 0, "")
	}
}

// plugin adds an era B/C plugin.execution span.
func (b *builder) plugin(parent pcommon.SpanID, typ, status, result string, lo, hi float64) ptrace.Span {
	s := b.span("semantic_router.plugin.execution", ptrace.SpanKindInternal, parent, b.ms(lo, hi))
	a := s.Attributes()
	a.PutStr("plugin.type", typ)
	a.PutStr("plugin.status", status)
	a.PutStr("plugin.result", result)
	if b.req.Era >= routerconv.EraC {
		a.PutStr("plugin.decision", b.req.Category+"_decision")
		a.PutInt("plugin.latency_ms", s.EndTimestamp().AsTime().Sub(s.StartTimestamp().AsTime()).Milliseconds())
	}
	return s
}

func (b *builder) eraB() {
	req := b.req
	root := b.root("semantic_router.request.received")
	root.Attributes().PutStr("http.method", "POST")
	root.Attributes().PutStr("http.path", b.path())
	b.cursor = b.cursor.Add(b.ms(0.1, 0.5))
	sig := b.span("semantic_router.signal.evaluation", ptrace.SpanKindInternal, root.SpanID(), b.ms(5, 40))
	sig.Attributes().PutStr("category.name", req.Category)
	dec := b.span("semantic_router.decision.evaluation", ptrace.SpanKindInternal, sig.SpanID(), b.ms(1, 5))
	da := dec.Attributes()
	da.PutStr("decision.name", req.Category+"_decision")
	da.PutStr("routing.original_model", "auto")
	da.PutStr("routing.selected_model", req.Model)
	da.PutBool("reasoning.enabled", false)

	jbStatus, jbResult := "success", "no_jailbreak_detected"
	if req.Outcome == OutcomeJailbreak {
		jbStatus, jbResult = "blocked", "jailbreak_detected:jailbreak"
	}
	jb := b.plugin(dec.SpanID(), "jailbreak", jbStatus, jbResult, 5, 30)
	if req.Outcome == OutcomeJailbreak {
		b.endAt(root)
		return
	}
	piiStatus, piiResult := "success", "no_pii_detected"
	switch req.Outcome {
	case OutcomePII:
		piiStatus, piiResult = "blocked", "pii_detected:"+piiTypeSets[b.rng.IntN(len(piiTypeSets))]
	case OutcomePIIRouted:
		piiStatus, piiResult = "detected", "pii_detected:"+piiTypeSets[b.rng.IntN(len(piiTypeSets))]
	}
	pii := b.plugin(jb.SpanID(), "pii", piiStatus, piiResult, 5, 30)
	if req.Outcome == OutcomePII {
		b.endAt(root)
		return
	}
	if req.Outcome == OutcomePIIRouted {
		// No other plugin: the model call follows the guards.
		b.endAt(root)
		b.span("semantic_router.upstream.request", ptrace.SpanKindClient, pii.SpanID(), b.upstreamDuration())
		return
	}
	cacheResult := "cache_miss"
	if req.Outcome == OutcomeCacheHit {
		cacheResult = "cache_hit"
	}
	cache := b.plugin(pii.SpanID(), "semantic-cache", "success", cacheResult, 1, 10)
	cache.Attributes().PutStr("cache.key", req.Prompt)
	cache.Attributes().PutBool("cache.hit", req.Outcome == OutcomeCacheHit)
	if req.Outcome == OutcomeCacheHit {
		b.endAt(root)
		return
	}
	spStatus, spResult := "success", "prompt_injected"
	if req.Outcome == OutcomeError && b.rng.IntN(2) == 0 {
		spStatus, spResult = "error", "injection_failed"
	}
	sp := b.plugin(cache.SpanID(), "system_prompt", spStatus, spResult, 0.05, 0.5)
	b.endAt(root)
	up := b.span("semantic_router.upstream.request", ptrace.SpanKindClient, sp.SpanID(), b.upstreamDuration())
	if req.Outcome == OutcomeError && spStatus != "error" {
		upstreamFailure(up, 0, "")
	}
}

func (b *builder) eraC() {
	req := b.req
	root := b.root("semantic_router.request.received")
	if b.rng.IntN(10) < 7 {
		root.Attributes().PutStr("request.id", b.requestID())
	}
	root.Attributes().PutStr("http.method", "POST")
	root.Attributes().PutStr("http.path", b.path())
	b.cursor = b.cursor.Add(b.ms(0.1, 0.5))

	sig := b.span("semantic_router.signal.evaluation", ptrace.SpanKindInternal, root.SpanID(), b.ms(5, 40))
	rules := []string{"domain:" + req.Category}
	switch req.Outcome {
	case OutcomeJailbreak:
		rules = append(rules, "jailbreak:prompt_guard")
	case OutcomePII, OutcomePIIRouted:
		rules = append(rules, "pii:pii_guard:EMAIL_ADDRESS")
	}
	putStrs(sig.Attributes(), "signal.matched_rules", rules)
	sig.Attributes().PutDouble("signal.confidence", 1.0)
	sig.Attributes().PutInt("signal.latency_ms", sig.EndTimestamp().AsTime().Sub(sig.StartTimestamp().AsTime()).Milliseconds())

	dec := b.span("semantic_router.decision.evaluation", ptrace.SpanKindInternal, sig.SpanID(), b.ms(0.5, 3))
	da := dec.Attributes()
	da.PutStr("decision.name", "decision_evaluation")
	da.PutDouble("decision.confidence", float32Wide(0.87))
	putStrs(da, "decision.matched_rules", rules)
	da.PutStr("decision.strategy", []string{"priority", "confidence", "auto", ""}[b.rng.IntN(4)])
	if req.Outcome.Blocked() {
		b.endAt(root)
		return
	}
	if req.Outcome == OutcomePIIRouted {
		// No plugins: the routing decision (auto routing) and the model call follow the guards.
		b.endAt(root)
		routing := b.span("semantic_router.decision.evaluation", ptrace.SpanKindInternal, dec.SpanID(), b.ms(0.5, 3))
		ra := routing.Attributes()
		ra.PutStr("decision.name", req.Category+"_decision")
		ra.PutStr("routing.strategy", "auto")
		ra.PutStr("routing.reason", "decision_engine_evaluation")
		ra.PutStr("routing.original_model", "auto")
		ra.PutStr("routing.selected_model", req.Model)
		up := b.span("semantic_router.upstream.request", ptrace.SpanKindClient, routing.SpanID(), b.upstreamDuration())
		up.Attributes().PutStr("model.name", req.Model)
		up.Attributes().PutStr("endpoint.address", "10.0.3.17:8000")
		up.Attributes().PutInt("http.status_code", 200)
		return
	}

	cacheType := "semantic-cache"
	if b.req.Era == routerconv.EraC && b.rng.IntN(2) == 0 {
		cacheType = "response_cache" // v0.3.0's name
	}
	cacheResult := "cache_miss"
	if req.Outcome == OutcomeCacheHit {
		cacheResult = "cache_hit"
	}
	cache := b.plugin(dec.SpanID(), cacheType, "success", cacheResult, 1, 10)
	ca := cache.Attributes()
	ca.PutStr("cache.key", req.Prompt)
	ca.PutBool("cache.hit", req.Outcome == OutcomeCacheHit)
	ca.PutInt("cache.lookup_time_ms", cache.EndTimestamp().AsTime().Sub(cache.StartTimestamp().AsTime()).Milliseconds())
	ca.PutStr("category.name", req.Category)
	ca.PutDouble("cache.threshold", float32Wide(0.8))
	b.endAt(root) // v0.2/v0.3 end the root after header processing
	if req.Outcome == OutcomeCacheHit {
		return
	}

	ragFails := req.Outcome == OutcomeError && b.rng.IntN(3) == 0
	if b.rng.IntN(2) == 0 || ragFails {
		rag := b.span("semantic_router.rag.retrieval", ptrace.SpanKindInternal, cache.SpanID(), b.ms(20, 300))
		a := rag.Attributes()
		a.PutStr("rag.backend", "milvus")
		a.PutStr("rag.decision", req.Category+"_decision")
		a.PutDouble("rag.similarity_threshold", float32Wide(0.7))
		a.PutInt("rag.top_k", 5)
		a.PutDouble("rag.latency_seconds", rag.EndTimestamp().AsTime().Sub(rag.StartTimestamp().AsTime()).Seconds())
		a.PutBool("rag.success", !ragFails)
		if ragFails {
			rag.Status().SetCode(ptrace.StatusCodeError)
			rag.Status().SetMessage("retrieval failed")
		} else {
			a.PutInt("rag.context_length", int64(500+b.rng.IntN(4000)))
			a.PutDouble("rag.similarity_score", float32Wide(0.83))
		}
	}
	parent := cache.SpanID()
	routing := b.span("semantic_router.decision.evaluation", ptrace.SpanKindInternal, parent, b.ms(0.5, 3))
	ra := routing.Attributes()
	ra.PutStr("decision.name", req.Category+"_decision")
	ra.PutStr("routing.strategy", "auto")
	ra.PutStr("routing.reason", "decision_engine_evaluation")
	ra.PutStr("routing.original_model", "auto")
	ra.PutStr("routing.selected_model", req.Model)
	ra.PutBool("model.reasoning_enabled", true)
	ra.PutStr("model.reasoning_effort", reasoningEfforts[b.rng.IntN(len(reasoningEfforts))])

	spStatus, spResult := "success", "prompt_injected"
	if req.Outcome == OutcomeError && !ragFails && b.rng.IntN(3) == 0 {
		spStatus, spResult = "error", "injection_failed"
	}
	sp := b.plugin(routing.SpanID(), "system_prompt", spStatus, spResult, 0.05, 0.5)
	sp.Attributes().PutBool("system_prompt.injected", spStatus == "success")
	sp.Attributes().PutStr("system_prompt.mode", "insert")
	sp.Attributes().PutStr("category.name", req.Category)

	up := b.span("semantic_router.upstream.request", ptrace.SpanKindClient, sp.SpanID(), b.upstreamDuration())
	up.Attributes().PutStr("model.name", req.Model)
	up.Attributes().PutStr("endpoint.address", "10.0.3.17:8000")
	if req.Outcome == OutcomeError && !ragFails && spStatus != "error" {
		upstreamFailure(up, 502+int64(b.rng.IntN(2)), "http.status_code")
		return
	}
	up.Attributes().PutInt("http.status_code", 200)
}

func (b *builder) eraD() {
	req := b.req
	root := b.root("semantic_router.request")
	a := root.Attributes()
	a.PutStr("traffic.kind", "inference")
	a.PutStr("http.method", "POST")
	a.PutStr("http.path", "/v1/chat/completions")
	b.cursor = b.cursor.Add(b.ms(0.1, 0.5))
	recipe := req.Category + "_recipe"
	child := func(name string, kind ptrace.SpanKind, lo, hi float64) ptrace.Span {
		s := b.span(name, kind, root.SpanID(), b.ms(lo, hi))
		s.Attributes().PutStr("routing.entrypoint", "chat_completions")
		s.Attributes().PutStr("routing.recipe", recipe)
		return s
	}
	sig := child("semantic_router.signal.evaluation", ptrace.SpanKindInternal, 5, 40)
	rules := []string{"domain:" + req.Category}
	if req.Outcome.Blocked() || req.Outcome == OutcomePIIRouted {
		rules = append(rules, map[bool]string{true: "jailbreak:prompt_guard", false: "pii:pii_guard"}[req.Outcome == OutcomeJailbreak])
	}
	putStrs(sig.Attributes(), "signal.matched_rules", rules)
	sig.Attributes().PutBool("signal.confidence_available", true)
	sig.Attributes().PutDouble("signal.confidence", 0.92)
	ev := sig.Events().AppendEmpty()
	ev.SetName("routing.signal.evidence")
	ev.SetTimestamp(sig.EndTimestamp())
	ev.Attributes().PutStr("signal.name", "domain")
	ev.Attributes().PutStr("signal.value", req.Category)

	dec := child("semantic_router.decision.evaluation", ptrace.SpanKindInternal, 0.5, 3)
	da := dec.Attributes()
	da.PutStr("decision.name", req.Category+"_decision")
	putStrs(da, "decision.matched_rules", rules)
	da.PutBool("decision.confidence_available", false)
	da.PutStr("routing.algorithm", "priority")

	finish := func(outcome string, status int64) {
		b.cursor = b.cursor.Add(b.ms(0.1, 1))
		b.endAt(root)
		a.PutStr("request.outcome", outcome)
		a.PutInt("http.status_code", status)
	}
	if req.Outcome.Blocked() {
		finish("client_error", 403)
		root.Status().SetCode(ptrace.StatusCodeError)
		root.Status().SetMessage("request_blocked")
		return
	}
	plugins := req.Outcome != OutcomePIIRouted
	if plugins {
		cache := child("semantic_router.plugin.execution", ptrace.SpanKindInternal, 1, 10)
		ca := cache.Attributes()
		ca.PutStr("plugin.type", "response_cache")
		ca.PutStr("plugin.status", "success")
		ca.PutStr("routing.algorithm", "priority")
		if req.Outcome == OutcomeCacheHit {
			ca.PutStr("plugin.result", "cache_hit")
			finish("success", 200)
			return
		}
		ca.PutStr("plugin.result", "cache_miss")
	}

	ragFails := req.Outcome == OutcomeError && b.rng.IntN(2) == 0
	if plugins && b.rng.IntN(2) == 0 || ragFails {
		rag := child("semantic_router.rag.retrieval", ptrace.SpanKindInternal, 20, 300)
		rag.Attributes().PutStr("rag.backend", "milvus")
		rag.Attributes().PutBool("rag.success", !ragFails)
		rag.Attributes().PutDouble("rag.latency_seconds", rag.EndTimestamp().AsTime().Sub(rag.StartTimestamp().AsTime()).Seconds())
		if ragFails {
			rag.Status().SetCode(ptrace.StatusCodeError)
			rag.Status().SetMessage("retrieval_failed")
			e := rag.Events().AppendEmpty()
			e.SetName("error")
			e.SetTimestamp(rag.EndTimestamp())
			e.Attributes().PutStr("error.reason", "retrieval_failed")
		}
	}
	sel := child("semantic_router.algorithm.selection", ptrace.SpanKindInternal, 0.2, 2)
	sel.Attributes().PutStr("routing.selection_method", "static")
	sel.Attributes().PutStr("routing.selection_candidate", req.Model)
	sel.Attributes().PutStr("routing.selected_model", req.Model)
	pe := sel.Events().AppendEmpty()
	pe.SetName("routing.projection.score")
	pe.SetTimestamp(sel.EndTimestamp())
	pe.Attributes().PutStr("model", req.Model)
	pe.Attributes().PutDouble("score", 0.71)

	up := child("semantic_router.upstream.request", ptrace.SpanKindClient, 0, 0)
	up.SetEndTimestamp(pcommon.NewTimestampFromTime(b.cursor.Add(b.upstreamDuration())))
	b.cursor = up.EndTimestamp().AsTime()
	ua := up.Attributes()
	ua.PutStr("model.name", req.Model)
	ua.PutBool("response.streaming", req.Streaming)
	if req.Streaming {
		ua.PutBool("response.streaming_complete", req.Outcome != OutcomeError)
	}
	if req.Outcome == OutcomeError && !ragFails {
		ua.PutInt("http.status_code", 503)
		up.Status().SetCode(ptrace.StatusCodeError)
		up.Status().SetMessage("request_failed")
		finish("server_error", 502)
		root.Status().SetCode(ptrace.StatusCodeError)
		root.Status().SetMessage("request_failed")
		re := root.Events().AppendEmpty()
		re.SetName("error")
		re.SetTimestamp(root.EndTimestamp())
		re.Attributes().PutStr("error.reason", "request_failed")
		return
	}
	ua.PutInt("http.status_code", 200)
	finish("success", 200)
}

func putStrs(m pcommon.Map, key string, vals []string) {
	s := m.PutEmptySlice(key)
	s.EnsureCapacity(len(vals))
	for _, v := range vals {
		s.AppendEmpty().SetStr(v)
	}
}
