package sampler

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
)

// routedOnPII is an era C request whose decision matched a PII rule and routed it (to a
// private model, say) instead of blocking it: its model call answers 10 s after its start.
func routedOnPII(t *testing.T) routersim.Trace {
	tr := build(routerconv.EraC, routersim.OutcomeOK, 7)
	for _, span := range tr.Spans().All() {
		if v, ok := span.Attributes().Get("decision.matched_rules"); ok {
			v.Slice().AppendEmpty().SetStr("pii:pii_guard:EMAIL_ADDRESS")
		}
	}
	up := tr.Spans().At(tr.SpanCount() - 1)
	require.Equal(t, "semantic_router.upstream.request", up.Name())
	root := tr.Spans().At(indexOf(tr, "semantic_router.request.received"))
	up.SetEndTimestamp(root.StartTimestamp() + pcommon.Timestamp(10*time.Second))
	return tr
}

// The root and the guards' spans arrive in one batch, the model call 10 s later in another:
// the summary on the root is of the whole request, written when it is complete.
func TestSummaryOfASplitRequest(t *testing.T) {
	s, rec := newSampler(t, testConfig())
	tr := routedOnPII(t)
	n := tr.SpanCount()
	first := consume(s, batchOf(tr, 0, n-1), t0)
	assert.Equal(t, n-2, first.SpanCount(), "a guard match keeps the trace at once; the root waits")
	require.Zero(t, s.Tick(t0.Add(5*time.Second)).SpanCount(), "the model call is awaited past the grace period")
	last := consume(s, batchOf(tr, n-1, n), t0.Add(10*time.Second))
	require.Equal(t, 2, last.SpanCount())
	root := rootIn(t, last)
	got := root.Attributes().AsRaw()
	assert.Equal(t, "allowed", got["security.action"], "a PII rule that routed the request is no block")
	assert.NotContains(t, got, "security.reason")
	assert.GreaterOrEqual(t, got["processing.time_ms"], int64(10_000), "the time covers the model call")
	assert.Equal(t, "qwen3-8b", got["routing.selected_model"])
	assert.Equal(t, "math", got["category.name"])
	assert.Equal(t, "math_decision", got["decision.name"])
	assert.Equal(t, "C", got["vsr.era"])
	require.Len(t, rec.requests, 1)
	assert.Equal(t, "allowed", rec.requests[0].Action)
	requireHeldZero(t, s)
}

// A true block: the guard matched and nothing followed by the time no model call can still
// come.
func TestSummaryOfABlock(t *testing.T) {
	cfg := testConfig()
	s, _ := newSampler(t, cfg)
	tr := build(routerconv.EraC, routersim.OutcomePII, 1)
	out := consume(s, batchOf(tr, 0, tr.SpanCount()), t0)
	require.Equal(t, tr.SpanCount()-1, out.SpanCount())
	require.Zero(t, s.Tick(t0.Add(cfg.ModelCallWait-time.Millisecond)).SpanCount(), "the model call may still come")
	later := s.Tick(t0.Add(cfg.ModelCallWait))
	require.Equal(t, 1, later.SpanCount())
	got := rootIn(t, later.Traces).Attributes().AsRaw()
	assert.Equal(t, "blocked", got["security.action"])
	assert.Equal(t, "pii", got["security.reason"])
	requireHeldZero(t, s)
}

// Era D marks a block by the root's 403 alone; the decision's matched rule names the guard.
func TestSummaryOfAnEraDJailbreak(t *testing.T) {
	s, _ := newSampler(t, testConfig())
	tr := build(routerconv.EraD, routersim.OutcomeJailbreak, 1)
	out := consume(s, batchOf(tr, 0, tr.SpanCount()), t0)
	require.Equal(t, tr.SpanCount(), out.SpanCount(), "the root ends last: the trace is complete")
	root := rootIn(t, out)
	got := root.Attributes().AsRaw()
	assert.Equal(t, "blocked", got["security.action"])
	assert.Equal(t, "jailbreak", got["security.reason"], "not guard")
	assert.Equal(t, "jailbreak_blocked", got["error.type"], "error.type agrees with the reason")
	assert.Equal(t, ptrace.StatusCodeError, root.Status().Code())
}

// Era A's model call names no model: it gets the routed one when the trace closes.
func TestSummaryNamesTheModelOfEraAsCall(t *testing.T) {
	cfg := testConfig()
	cfg.DefaultPercentage = 100
	s, _ := newSampler(t, cfg)
	tr := build(routerconv.EraA, routersim.OutcomeOK, 1)
	n := tr.SpanCount()
	consume(s, batchOf(tr, 0, n-1), t0)
	out := consume(s, batchOf(tr, n-1, n), t0.Add(time.Second))
	for _, rs := range out.ResourceSpans().All() {
		for _, span := range rs.ScopeSpans().At(0).Spans().All() {
			if span.Name() == "semantic_router.upstream.request" {
				assert.Equal(t, "qwen3-8b", attr(span, "gen_ai.response.model"))
				assert.Equal(t, "qwen3-8b", attr(span, "llm.model_name"))
			}
		}
	}
}

// Every trace is reported once, kept or dropped, with its request facts: request metrics
// count all traffic. Model calls are reported as they arrive.
func TestEveryTraceIsReportedOnce(t *testing.T) {
	s, rec := newSampler(t, testConfig())
	var traces []routersim.Trace
	for seed := range uint64(50) {
		tr := build(routerconv.EraD, routersim.OutcomeOK, seed)
		traces = append(traces, tr)
		consume(s, batchOf(tr, 0, tr.SpanCount()), t0)
	}
	require.Len(t, rec.requests, 50)
	kept := 0
	for _, r := range rec.requests {
		assert.Equal(t, "qwen3-8b", r.SelectedModel)
		assert.Equal(t, "D", r.Era)
		assert.Equal(t, "vllm-sr", r.Service)
		assert.Equal(t, "allowed", r.Action)
		assert.Equal(t, 1.0, r.Weight)
		if r.Kept {
			kept++
			assert.False(t, r.TraceID.IsEmpty(), "kept traces carry their ID for exemplars")
		} else {
			assert.True(t, r.TraceID.IsEmpty(), "dropped ones do not: an exemplar would lead nowhere")
		}
	}
	assert.Equal(t, rec.kept, kept)
	assert.Len(t, rec.calls, 50)
}
