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

// Whole traces of every era and outcome get one schema, span by span, and are counted by
// era. The root's summary of the whole request is vsr_sampler's (see its tests).
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
					assert.Equal(t, 1, stats.Traces[era], "seed %d: counted once, by its era", seed)
					root := rootOf(t, tr).Attributes().AsRaw()
					assert.Equal(t, "CHAIN", root["openinference.span.kind"])
					assert.NotContains(t, root, "vsr.era", "the summary is the sampler's")
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
							assert.Equal(t, "chat", attrs["gen_ai.operation.name"])
							if era >= routerconv.EraC { // eras A and B name no model; the sampler adds the routed one
								assert.Equal(t, "qwen3-8b", attrs["gen_ai.request.model"])
							}
						}
						if reason, ok := attrs["security.reason"]; ok {
							assert.NotEqual(t, "guard", reason, "only a span that names its guard gets a reason")
						}
					}
					assert.Equal(t, outcome == routersim.OutcomeError, sawError, "seed %d", seed)
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
	stats := New(defaultOptions()).Traces(tr.Traces)
	assert.Equal(t, 1, stats.Traces[routerconv.EraUnknown])
}

// routerconv keeps the eras of the router's keys; the schema knows which keys vsr_attributes
// writes from another era's spelling. The two must agree, or a normalized span would tell
// the wrong era.
func TestRenameTargetsMatchTheSchema(t *testing.T) {
	for _, a := range Schema {
		_, hasEras := routerconv.KeyEras(a.Key)
		renamed := len(a.Legacy) > 0 && hasEras
		assert.Equal(t, renamed, routerconv.RenameTargets[a.Key], a.Key)
	}
}
