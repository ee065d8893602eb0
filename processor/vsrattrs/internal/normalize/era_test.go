package normalize

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/pdatatest/ptracetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
)

var (
	allEras     = []routerconv.Era{routerconv.EraA, routerconv.EraB, routerconv.EraC, routerconv.EraD}
	allOutcomes = []routersim.Outcome{routersim.OutcomeOK, routersim.OutcomeError, routersim.OutcomeJailbreak, routersim.OutcomePII, routersim.OutcomeCacheHit}
	legacyKeys  = []string{"http.method", "http.path", "http.status_code", "model.reasoning_enabled", "model.reasoning_effort", "rag.latency_seconds"}
)

func simulate(era routerconv.Era, outcome routersim.Outcome, seed uint64) routersim.Trace {
	rng := rand.New(rand.NewPCG(seed, 7))
	return routersim.Build(routersim.Request{
		Era: era, Outcome: outcome, Category: "math", Model: "qwen3-8b", Prompt: "secret prompt text",
		Start: time.Unix(1_700_000_000, 0), RemoteParent: seed%2 == 0,
	}, rng)
}

func rootOf(t *testing.T, tr routersim.Trace) ptrace.Span {
	for _, s := range tr.Spans().All() {
		if routerconv.IsLocalRoot(s) {
			return s
		}
	}
	t.Fatal("no root")
	return ptrace.Span{}
}

// Whole traces of every era and outcome get one schema and the root summary.
func TestWholeTracesPerEra(t *testing.T) {
	n := New(defaultOptions())
	for _, era := range allEras {
		for _, outcome := range allOutcomes {
			t.Run(fmt.Sprintf("%s/%s", era, outcome), func(t *testing.T) {
				for seed := range uint64(10) {
					tr := simulate(era, outcome, seed)
					spans := tr.SpanCount()
					stats := n.Traces(tr.Traces)
					require.Equal(t, spans, tr.SpanCount())
					require.Equal(t, spans, stats.Spans)
					root := rootOf(t, tr).Attributes().AsRaw()

					assert.Equal(t, era.String(), root["vsr.era"])
					assert.Equal(t, "CHAIN", root["openinference.span.kind"])
					var maxEnd int64
					sawError := false
					for _, s := range tr.Spans().All() {
						attrs := s.Attributes().AsRaw()
						for _, k := range legacyKeys {
							assert.NotContains(t, attrs, k)
						}
						if v, ok := attrs["cache.key"]; ok {
							assert.NotContains(t, v, "secret")
						}
						assert.Equal(t, SchemaVersion, attrs["vsr.schema.version"])
						if issues, ok := attrs["vsr.normalize.issues"]; ok {
							// The simulator sends "High" and "us_ssn" as some routers do; nothing else is a defect.
							assert.Subset(t, []any{"case:reasoning.effort", "case:pii.types"}, issues)
						}
						if _, ok := attrs["error.type"]; ok {
							sawError = true
							assert.Equal(t, ptrace.StatusCodeError, s.Status().Code())
						}
						if s.Name() == "semantic_router.upstream.request" {
							assert.Equal(t, "LLM", attrs["openinference.span.kind"])
							assert.Equal(t, "qwen3-8b", attrs["gen_ai.request.model"])
							assert.Equal(t, "chat", attrs["gen_ai.operation.name"])
						}
						maxEnd = max(maxEnd, int64(s.EndTimestamp()))
					}
					assert.Equal(t, outcome == routersim.OutcomeError, sawError, "seed %d", seed)
					assert.Equal(t, (maxEnd-int64(rootOf(t, tr).StartTimestamp()))/1e6, root["processing.time_ms"])

					switch {
					case outcome.Blocked():
						assert.Equal(t, "blocked", root["security.action"])
						if era != routerconv.EraD {
							assert.Equal(t, map[routersim.Outcome]string{routersim.OutcomeJailbreak: "jailbreak", routersim.OutcomePII: "pii"}[outcome], root["security.reason"])
						}
					case outcome == routersim.OutcomeCacheHit:
						assert.NotContains(t, root, "security.action", "no upstream call, but no guard either")
						if era != routerconv.EraD {
							assert.Equal(t, true, root["cache.hit"])
						}
					default:
						assert.Equal(t, "allowed", root["security.action"])
						assert.Equal(t, "qwen3-8b", root["routing.selected_model"])
						if era != routerconv.EraD {
							assert.Equal(t, "math", root["category.name"])
							assert.Equal(t, false, root["cache.hit"])
						}
					}
				}
			})
		}
	}
}

func TestResourceNormalized(t *testing.T) {
	tr := simulate(routerconv.EraA, routersim.OutcomeOK, 1)
	New(defaultOptions()).Traces(tr.Traces)
	res := tr.Traces.ResourceSpans().At(0).Resource().Attributes().AsRaw()
	assert.Equal(t, "production", res["deployment.environment.name"])
	assert.NotContains(t, res, "deployment.environment")
}

// Normalizing normalized data changes nothing: a second collector in the path is harmless.
func TestIdempotent(t *testing.T) {
	n := New(defaultOptions())
	for _, era := range allEras {
		for _, outcome := range allOutcomes {
			tr := simulate(era, outcome, 3)
			n.Traces(tr.Traces)
			once := ptrace.NewTraces()
			tr.Traces.CopyTo(once)
			n.Traces(tr.Traces)
			require.NoError(t, ptracetest.CompareTraces(once, tr.Traces), "%s/%s", era, outcome)
		}
	}
}

// A root alone cannot tell eras A–C apart.
func TestEraUnknownFromRootAlone(t *testing.T) {
	tr := simulate(routerconv.EraC, routersim.OutcomeOK, 1)
	spans := tr.Spans()
	spans.RemoveIf(func(s ptrace.Span) bool { return !routerconv.IsLocalRoot(s) })
	New(defaultOptions()).Traces(tr.Traces)
	assert.Equal(t, "unknown", spans.At(0).Attributes().AsRaw()["vsr.era"])
}
