package vsrattrs

import (
	"context"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/golden"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/pdatatest/ptracetest"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/otelcol-vsr/otelcol-vsr/internal/leakcorpus"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrattrs/internal/metadata"
)

var (
	update           = flag.Bool("update", false, "rewrite testdata/*/expected.yaml from the processor's output")
	regenerateInputs = flag.Bool("regenerate-inputs", false, "rebuild testdata/*/input.yaml from the router simulator")
)

const goldenHashKey = "golden-test-key-0123456789"

var goldenStart = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

// eraBatch is one router pod's export: one trace of every outcome, in end order.
func eraBatch(era routerconv.Era, seed uint64) ptrace.Traces {
	rng := rand.New(rand.NewPCG(seed, uint64(era)))
	td := ptrace.NewTraces()
	outcomes := []routersim.Outcome{routersim.OutcomeOK, routersim.OutcomeError, routersim.OutcomeJailbreak, routersim.OutcomePII, routersim.OutcomeCacheHit}
	for i, outcome := range outcomes {
		tr := routersim.Build(routersim.Request{
			Era: era, Outcome: outcome, Category: routersim.Categories[i+1], Model: routersim.Models[i],
			Prompt:       routersim.PromptMarker + " golden: my email is jane.doe@example.com",
			Start:        goldenStart.Add(time.Duration(i) * time.Second),
			RemoteParent: i%2 == 0,
		}, rng)
		if i == 0 {
			tr.Traces.ResourceSpans().MoveAndAppendTo(td.ResourceSpans())
			continue
		}
		tr.Spans().MoveAndAppendTo(td.ResourceSpans().At(0).ScopeSpans().At(0).Spans())
	}
	return td
}

// mixedBatch is what a node's agent forwards during a rolling upgrade: router pods of three
// eras, another service, and a router trace whose root was exported in an earlier batch.
func mixedBatch() ptrace.Traces {
	td := ptrace.NewTraces()
	for i, era := range []routerconv.Era{routerconv.EraA, routerconv.EraC, routerconv.EraD} {
		b := eraBatch(era, uint64(10+i))
		b.ResourceSpans().MoveAndAppendTo(td.ResourceSpans())
	}
	other := td.ResourceSpans().AppendEmpty()
	other.Resource().Attributes().PutStr("service.name", "checkout")
	other.Resource().Attributes().PutStr("deployment.environment", "production")
	span := other.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	span.SetName("POST /cart")
	span.SetTraceID(pcommon.TraceID{0xc0, 0xff, 0xee})
	span.SetSpanID(pcommon.SpanID{0xc0})
	span.SetStartTimestamp(pcommon.NewTimestampFromTime(goldenStart))
	span.SetEndTimestamp(pcommon.NewTimestampFromTime(goldenStart.Add(time.Millisecond)))
	span.Attributes().PutStr("http.method", "post")
	span.Attributes().PutStr("cache.key", "not the router's: left alone")
	span.Status().SetCode(ptrace.StatusCodeError)

	late := eraBatch(routerconv.EraC, 20)
	late.ResourceSpans().At(0).ScopeSpans().At(0).Spans().RemoveIf(func(s ptrace.Span) bool {
		return routerconv.IsLocalRoot(s) || s.TraceID() != late.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID()
	})
	late.ResourceSpans().MoveAndAppendTo(td.ResourceSpans())
	return td
}

// badBatch is router spans carrying every defect the schema repairs or rejects.
func badBatch() ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "vllm-sr")
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	add := func(name string, id byte, parent byte, attrs map[string]any) ptrace.Span {
		s := spans.AppendEmpty()
		s.SetName(name)
		s.SetTraceID(pcommon.TraceID{0xba, 0xd})
		s.SetSpanID(pcommon.SpanID{id})
		if parent != 0 {
			s.SetParentSpanID(pcommon.SpanID{parent})
		}
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(goldenStart))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(goldenStart.Add(time.Duration(id) * time.Millisecond)))
		if err := s.Attributes().FromRaw(attrs); err != nil {
			panic(err)
		}
		return s
	}
	add("semantic_router.request.received", 1, 0, map[string]any{
		"http.method": "post", "http.request.method": "GET", "http.path": "/v1/chat/completions?key=sk-secret",
		"user.id": "alice@example.com", "session.id": int64(991),
	})
	add("semantic_router.plugin.execution", 2, 1, map[string]any{
		"plugin.type": "Semantic-Cache", "plugin.status": "success", "plugin.latency_ms": "45",
		"cache.hit": "TRUE", "cache.threshold": float64(float32(0.85)), "cache.lookup_time_ms": int64(-2),
		"cache.key": "tell me the admin password", "category.name": strings.Repeat("long-", 1000),
	})
	add("semantic_router.rag.retrieval", 3, 2, map[string]any{
		"rag.latency_seconds": "0.25", "rag.top_k": 4.0, "rag.success": int64(1), "rag.similarity_score": "high",
		"future.router.key": "kept, counted as unknown",
	})
	add("semantic_router.decision.evaluation", 4, 3, map[string]any{
		"model.reasoning_effort": "EXTREME", "model.reasoning_enabled": "yes", "routing.selected_model": int64(7),
		"decision.matched_rules": "domain:math, pii:guard", "pii.types": []any{"person", "EMAIL_ADDRESS", "person"},
	})
	return td
}

type goldenCase struct {
	name      string
	input     string
	build     func() ptrace.Traces
	configure func(*Config)
}

var goldenCases = []goldenCase{
	{name: "era_a", build: func() ptrace.Traces { return eraBatch(routerconv.EraA, 1) }},
	{name: "era_b", build: func() ptrace.Traces { return eraBatch(routerconv.EraB, 1) }},
	{name: "era_c", build: func() ptrace.Traces { return eraBatch(routerconv.EraC, 1) }},
	{name: "era_d", build: func() ptrace.Traces { return eraBatch(routerconv.EraD, 1) }},
	{name: "mixed", build: mixedBatch},
	{name: "bad_input", build: badBatch},
	{name: "bad_input_strict", input: "bad_input", configure: func(c *Config) { c.Mode = "strict" }},
	{name: "bad_input_report", input: "bad_input", configure: func(c *Config) { c.Mode = "report" }},
	// Other services' spans and the router's carrying private data where real stacks put it
	// (internal/leakcorpus): OpenInference, OpenLLMetry, GenAI, HTTP, nested, repeated, odd keys.
	{name: "privacy", build: func() ptrace.Traces { return leakcorpus.Build("golden").Traces }},
	{name: "privacy_no_key", input: "privacy", configure: func(c *Config) { c.Redaction.HashKey = "" }},
	{name: "privacy_debug_summary", input: "privacy", configure: func(c *Config) {
		c.Redaction.Summary = "debug"
		c.Redaction.Families = map[string]string{"exception_text": "keep"}
	}},
	{name: "era_c_allow_list", input: "era_c", configure: func(c *Config) {
		c.Redaction.AllowListOnly = true
		c.Redaction.Prompts = "drop"
		c.KeepLegacyKeys = true
	}},
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			inputDir := tc.name
			if tc.input != "" {
				inputDir = tc.input
			}
			inputPath := filepath.Join("testdata", inputDir, "input.yaml")
			expectedPath := filepath.Join("testdata", tc.name, "expected.yaml")
			if *regenerateInputs && tc.build != nil {
				require.NoError(t, os.MkdirAll(filepath.Dir(inputPath), 0o755))
				require.NoError(t, golden.WriteTracesToFile(inputPath, tc.build()))
			}
			input, err := golden.ReadTraces(inputPath)
			require.NoError(t, err)
			original := ptrace.NewTraces()
			input.CopyTo(original)

			cfg := createDefaultConfig().(*Config)
			cfg.Redaction.HashKey = goldenHashKey
			if tc.configure != nil {
				tc.configure(cfg)
			}
			require.NoError(t, cfg.Validate())
			sink := new(consumertest.TracesSink)
			p, err := NewFactory().CreateTraces(context.Background(), processortest.NewNopSettings(metadata.Type), cfg, sink)
			require.NoError(t, err)
			require.NoError(t, p.ConsumeTraces(context.Background(), input))
			require.Len(t, sink.AllTraces(), 1)
			out := sink.AllTraces()[0]
			require.Equal(t, original.SpanCount(), out.SpanCount(), "no span is ever lost")

			if *update {
				require.NoError(t, os.MkdirAll(filepath.Dir(expectedPath), 0o755))
				require.NoError(t, golden.WriteTracesToFile(expectedPath, out))
			}
			expected, err := golden.ReadTraces(expectedPath)
			require.NoError(t, err)
			require.NoError(t, ptracetest.CompareTraces(expected, out))
			requireOtherServicesIdentical(t, original, out)
		})
	}
}

// requireOtherServicesIdentical checks that spans of services other than the router leave
// byte for byte as they came.
func requireOtherServicesIdentical(t *testing.T, in, out ptrace.Traces) {
	var m ptrace.ProtoMarshaler
	encode := func(rs ptrace.ResourceSpans) []byte {
		td := ptrace.NewTraces()
		rs.CopyTo(td.ResourceSpans().AppendEmpty())
		b, err := m.MarshalTraces(td)
		require.NoError(t, err)
		return b
	}
	for i, rs := range in.ResourceSpans().All() {
		name, _ := rs.Resource().Attributes().Get("service.name")
		if name.Str() != "checkout" {
			continue
		}
		require.Equal(t, encode(rs), encode(out.ResourceSpans().At(i)))
	}
}
