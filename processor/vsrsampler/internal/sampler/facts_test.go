package sampler

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
)

// foreignSpan is a span of another service in the router's trace (a client in front, a model
// server behind) that carries the request-fact keys with whatever it wrote there.
func foreignSpan(id pcommon.TraceID, service string, n byte, build func(ptrace.Span)) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", service)
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName(service)
	span := ss.Spans().AppendEmpty()
	span.SetTraceID(id)
	span.SetSpanID(pcommon.SpanID{0xf0, n})
	span.SetParentSpanID(pcommon.SpanID{0xf1, n})
	span.SetName("chat")
	build(span)
	return td
}

// leaky writes the request-fact keys as a careless instrumentation would: an address in
// category.name, free text in decision.name and error.type, an exception type with a message.
func leaky(span ptrace.Span) {
	a := span.Attributes()
	a.PutStr("category.name", "alice@example.com")
	a.PutStr("decision.name", "route for bob")
	a.PutStr("routing.selected_model", "mallory-model")
	a.PutStr("error.type", strings.Repeat("the model said no to carol@example.com ", 3))
	a.PutBool("cache.hit", true)
	a.PutStr("gen_ai.response.model", "dave@example.com")
	a.PutInt("gen_ai.usage.input_tokens", 12)
	span.Status().SetCode(ptrace.StatusCodeError)
	span.Status().SetMessage("failed for erin@example.com")
	ev := span.Events().AppendEmpty()
	ev.SetName("exception")
	ev.Attributes().PutStr("exception.type", "ValueError: frank@example.com is not allowed")
}

// Request facts come from the router's own spans: a model server's or client's span in the
// same trace keeps the trace when it fails, but sets none of the request's facts, its
// verdict included (its cache.hit does not make a block allowed), and the model label of its
// token report is a bounded name.
func TestOtherServicesSetNoRequestFacts(t *testing.T) {
	for _, outcome := range []routersim.Outcome{routersim.OutcomeOK, routersim.OutcomePII} {
		t.Run(outcome.String(), func(t *testing.T) {
			cfg := testConfig()
			cfg.DefaultPercentage = 0
			s, rec := newSampler(t, cfg)
			tr := build(routerconv.EraC, outcome, 3)
			n := tr.SpanCount()
			last := n
			if outcome == routersim.OutcomeOK {
				last = n - 1 // the model call comes after the other services' spans
			}
			out := consume(s, foreignSpan(tr.ID, "chat-app", 1, leaky), t0)
			require.Equal(t, 1, out.SpanCount(), "a failing span of any service keeps its trace")
			consume(s, foreignSpan(tr.ID, "vllm", 2, leaky), t0)
			consume(s, batchOf(tr, 0, last), t0)
			if outcome == routersim.OutcomeOK {
				out = consume(s, batchOf(tr, n-1, n), t0.Add(3*time.Second))
			} else {
				out = ticking(s, t0, t0.Add(testWait))
			}
			root := rootIn(t, out).Attributes().AsRaw()
			require.Len(t, rec.requests, 1)
			r := rec.requests[0]
			if outcome == routersim.OutcomeOK {
				assert.Equal(t, "math", root["category.name"])
				assert.Equal(t, "math_decision", root["decision.name"])
				assert.Equal(t, "qwen3-8b", root["routing.selected_model"])
				assert.Equal(t, false, root["cache.hit"])
				assert.Equal(t, "allowed", root["security.action"])
				assert.Equal(t, "allowed", r.Action)
			} else {
				assert.Equal(t, "blocked", root["security.action"], "another service's cache.hit does not say the request went on")
				assert.Equal(t, "blocked", r.Action)
				assert.NotContains(t, root, "category.name")
				assert.NotContains(t, root, "decision.name")
				assert.NotContains(t, root, "cache.hit")
			}
			assert.NotContains(t, root, "error.type", "the router's spans show no failure")
			assert.Equal(t, "C", root["vsr.era"])
			assert.Empty(t, r.ErrorType)
			assert.NotContains(t, []string{r.Category, r.Decision, r.SelectedModel}, "alice@example.com")
			for _, c := range rec.calls {
				assert.Contains(t, []string{"qwen3-8b", routerconv.OtherName}, c.Model, "a model label is a bounded name")
				assert.NotContains(t, c.ErrorType, "@")
			}
			requireHeldZero(t, s)
		})
	}
}

// A router span's own free text is held to the bounds too: an exception's type becomes
// "exception", an address in a name becomes "other", on the root and in the record; the
// root's own error.type, written from free text, is bounded, and a root that did not fail
// gets none.
func TestRouterFreeTextIsBounded(t *testing.T) {
	cfg := testConfig()
	cfg.DefaultPercentage = 0
	s, rec := newSampler(t, cfg)
	tr := build(routerconv.EraC, routersim.OutcomeOK, 3)
	for _, span := range tr.Spans().All() {
		if _, ok := span.Attributes().Get("category.name"); ok {
			span.Attributes().PutStr("category.name", "alice@example.com")
		}
		if span.Name() == "semantic_router.upstream.request" {
			span.Attributes().PutStr("model.name", "a model for bob@example.com")
			span.Attributes().PutInt("http.status_code", 502)
			span.Status().SetCode(ptrace.StatusCodeError)
		}
		if span.Name() == "semantic_router.signal.evaluation" {
			ev := span.Events().AppendEmpty()
			ev.SetName("exception")
			ev.Attributes().PutStr("exception.type", "ValueError: carol@example.com")
		}
	}
	out := consume(s, tr.Traces, t0)
	root := rootIn(t, out).Attributes().AsRaw()
	assert.Equal(t, routerconv.OtherName, root["category.name"])
	assert.NotContains(t, root, "error.type", "the root did not fail")
	require.Len(t, rec.requests, 1)
	assert.Equal(t, routerconv.OtherName, rec.requests[0].Category)
	assert.Equal(t, "exception", rec.requests[0].ErrorType)
	for _, c := range rec.calls {
		assert.Equal(t, routerconv.OtherName, c.Model)
		assert.Equal(t, "502", c.ErrorType)
	}

	s, _ = newSampler(t, cfg)
	tr = build(routerconv.EraD, routersim.OutcomeError, 3)
	rootAt := tr.Spans().Len() - 1
	own := tr.Spans().At(rootAt)
	require.True(t, routerconv.IsLocalRoot(own))
	own.Attributes().PutStr("error.type", "upstream said: bob@example.com is unknown")
	own.Status().SetCode(ptrace.StatusCodeError)
	own.Events().RemoveIf(func(ptrace.SpanEvent) bool { return true })
	own.Events().AppendEmpty().SetName("exception")
	out = consume(s, tr.Traces, t0)
	assert.Equal(t, "exception", attr(rootIn(t, out), "error.type"), "a failed root's own class, bounded")
}
