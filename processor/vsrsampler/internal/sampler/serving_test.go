package sampler

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/requestmetrics"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
)

// servedTrace is a router trace whose model server traced too, kept or dropped at pct.
func servedTrace(t testing.TB, era routerconv.Era, pct float64, keep bool) routersim.Trace {
	th := thresholdFor(pct)
	for seed := range uint64(1000) {
		tr := routersim.Build(routersim.Request{Era: era, Category: "math", Model: "qwen3-8b", Prompt: "p", Start: t0, ModelServer: true},
			rand.New(rand.NewPCG(seed, 99)))
		if tr.Serving != nil && th.ShouldSample(randomnessOf(tr.ID)) == keep {
			return tr
		}
	}
	t.Fatal("no trace found")
	return routersim.Trace{}
}

// modelServerBatch is the model server's export of a trace; routerBatch, the router's.
func modelServerBatch(tr routersim.Trace) ptrace.Traces {
	td := ptrace.NewTraces()
	tr.Traces.ResourceSpans().At(1).CopyTo(td.ResourceSpans().AppendEmpty())
	return td
}

func routerBatch(tr routersim.Trace) ptrace.Traces { return batchOf(tr, 0, tr.Spans().Len()) }

func modelServerSpanID(tr routersim.Trace) pcommon.SpanID {
	spans, _ := tr.ModelServerSpans()
	return spans.At(0).SpanID()
}

// wantServed is the record of tr's model server span joined with its route.
func wantServed(tr routersim.Trace, kept bool, weight float64) requestmetrics.Serving {
	v := tr.Serving
	tpot, _ := v.TimePerOutputToken()
	spans, _ := tr.ModelServerSpans()
	want := requestmetrics.Serving{At: spans.At(0).EndTimestamp().AsTime(), Weight: weight, Service: routersim.ModelServerService,
		Model: "qwen3-8b", SelectedModel: "qwen3-8b", Category: "math", Decision: "math_decision", Era: tr.Request.Era.String(),
		TTFT: v.TTFT, TPOT: tpot, Queue: v.Queue, E2E: v.E2E, InputTokens: v.PromptTokens, OutputTokens: v.CompletionTokens}
	switch tr.Request.Era {
	case routerconv.EraA:
		want.Decision = "" // no decisions yet
	case routerconv.EraD:
		want.Category = "" // the router no longer sends one
	}
	if kept {
		want.TraceID, want.SpanID = tr.ID, modelServerSpanID(tr)
	}
	return want
}

// A model server span that arrives before its trace is decided waits with it, and is
// reported once, at the decision, with the route: category, decision, selected model, era.
// Only a kept trace's record names the span, for an exemplar. Its tokens are not counted
// again as a model call.
func TestServingReportedAtDecisionWithRoute(t *testing.T) {
	for _, era := range []routerconv.Era{routerconv.EraA, routerconv.EraC, routerconv.EraD} {
		for _, keep := range []bool{true, false} {
			s, rec := newSampler(t, testConfig())
			tr := servedTrace(t, era, 10, keep)
			require.Zero(t, consume(s, modelServerBatch(tr), t0).SpanCount(), "waits for its trace")
			assert.Positive(t, s.Memory(PartTraces))
			assert.Empty(t, rec.served, "not before the decision")
			out := consume(s, routerBatch(tr), t0.Add(time.Second))
			if keep {
				require.Equal(t, tr.SpanCount(), out.SpanCount())
			} else {
				require.Zero(t, out.SpanCount())
			}
			require.Len(t, rec.served, 1, "era %s keep %v", era, keep)
			assert.Equal(t, wantServed(tr, keep, 1), rec.served[0], "era %s keep %v", era, keep)
			for _, c := range rec.calls {
				assert.True(t, c.Upstream, "the model server's tokens are its own metric's")
			}
			requireHeldZero(t, s)
			for _, sh := range s.shards {
				assert.Zero(t, sh.servedBytes)
			}
		}
	}
}

// A model server exports on its own schedule: its span often comes after the router's spans
// have decided the trace. It is reported with the route remembered for it, an exemplar only
// if the trace was kept; within the rescue window, with the held trace's route.
func TestServingLateSpanJoinsRememberedRoute(t *testing.T) {
	for _, tc := range []struct {
		name   string
		keep   bool
		rescue time.Duration
	}{{"kept", true, 0}, {"dropped and forgotten", false, 0}, {"dropped, within the rescue window", false, time.Minute}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.RescueWindow = tc.rescue
			s, rec := newSampler(t, cfg)
			tr := servedTrace(t, routerconv.EraD, 10, tc.keep)
			consume(s, routerBatch(tr), t0)
			require.Empty(t, rec.served)
			out := consume(s, modelServerBatch(tr), t0.Add(3*time.Second))
			assert.Equal(t, tc.keep, out.SpanCount() == 1, "the late span follows the decision")
			require.Len(t, rec.served, 1)
			assert.Equal(t, wantServed(tr, tc.keep, 1), rec.served[0])
			if tc.rescue > 0 {
				s.Tick(t0.Add(2 * tc.rescue))
			}
			requireHeldZero(t, s)
		})
	}
}

// A node collector on a GPU node sees only the model server's spans: they are reported
// per model once the trace is decided (here by its grace period), with no route.
func TestServingWithoutRouter(t *testing.T) {
	s, rec := newSampler(t, testConfig())
	tr := servedTrace(t, routerconv.EraC, 10, false)
	consume(s, modelServerBatch(tr), t0)
	s.Tick(t0.Add(time.Minute))
	require.Len(t, rec.served, 1)
	got := rec.served[0]
	assert.Equal(t, "", got.Model+got.Category+got.Decision+got.SelectedModel+got.Era, "no router: no route, and vLLM names no model")
	assert.Equal(t, routersim.ModelServerService, got.Service)
	assert.Equal(t, tr.Serving.TTFT, got.TTFT)
	requireHeldZero(t, s)
}

// An SGLang prefill server's span covers part of a request: taken with its trace, not reported.
func TestServingPartialSpanNotReported(t *testing.T) {
	s, rec := newSampler(t, testConfig())
	tr := servedTrace(t, routerconv.EraD, 10, true)
	ms := modelServerBatch(tr)
	ss := ms.ResourceSpans().At(0).ScopeSpans().At(0)
	ss.Scope().SetName("sglang server")
	ss.Spans().At(0).SetName("prefill Req 77aa00ff")
	consume(s, ms, t0)
	out := consume(s, routerBatch(tr), t0.Add(time.Second))
	assert.Equal(t, tr.SpanCount(), out.SpanCount())
	assert.Empty(t, rec.served)
	for _, c := range rec.calls {
		assert.True(t, c.Upstream, "nor counted as a model call")
	}
}

// The routes remembered for late spans are bounded by the keep cache's entries and counted
// with the decision caches.
func TestServingRoutesBounded(t *testing.T) {
	cfg := testConfig()
	cfg.KeepCacheEntries = 64
	cfg.Shards = 1
	s, _ := newSampler(t, cfg)
	for i := range 500 {
		tr := routersim.Build(routersim.Request{Era: routerconv.EraD, Category: "math", Model: "m", Prompt: "p", Start: t0},
			rand.New(rand.NewPCG(uint64(i), 5)))
		consume(s, routerBatch(tr), t0)
	}
	sh := s.shards[0]
	assert.LessOrEqual(t, sh.routes.len(), 64)
	assert.Positive(t, sh.routes.len())
	assert.GreaterOrEqual(t, s.Memory(PartDecisions), sh.routes.bytes())
}

// vLLM exports its span with a remote parent (the router's traceparent), so the span is its
// process's local root; in a router's trace it is not the trace's root. A vLLM span that
// comes before the router's root (each exports on its own 5 s schedule) does not start the
// grace period: the trace is decided at the router's root, whole, not early without it.
func TestModelServerSpanIsNotTheRoutersRoot(t *testing.T) {
	for _, routerFirst := range []bool{true, false} {
		s, rec := newSampler(t, testConfig())
		tr := servedTrace(t, routerconv.EraD, 10, false)
		n := tr.Spans().Len()
		at := t0
		if routerFirst {
			consume(s, batchOf(tr, 0, n-2), at)
		}
		consume(s, modelServerBatch(tr), at.Add(time.Second))
		if !routerFirst {
			consume(s, batchOf(tr, 0, n-2), at.Add(1500*time.Millisecond))
		}
		s.Tick(at.Add(4 * time.Second))
		require.Empty(t, rec.requests, "router first %v: decided before the router's root", routerFirst)
		consume(s, batchOf(tr, n-2, n), at.Add(4500*time.Millisecond))
		assert.Equal(t, 1, rec.count(TriggerRoot, ReasonDefault), "router first %v", routerFirst)
		require.Len(t, rec.requests, 1)
		assert.Positive(t, rec.requests[0].Duration, "the root was there")
		require.Len(t, rec.served, 1)
		requireHeldZero(t, s)
	}
}
