package vsrattrs

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrattrs/internal/metadatatest"
)

// The model servers' request spans, as their code writes them (docs/model-server-spans.md).
func init() {
	goldenCases = append(goldenCases,
		goldenCase{name: "vllm", build: vllmBatch},
		goldenCase{name: "vllm_keep_legacy", input: "vllm", configure: func(c *Config) { c.KeepLegacyKeys = true }},
		goldenCase{name: "sglang", build: sglangBatch},
		goldenCase{name: "model_server_bad", build: modelServerBadBatch},
		goldenCase{name: "model_server_bad_strict", input: "model_server_bad", configure: func(c *Config) { c.Mode = "strict" }},
		goldenCase{name: "model_server_bad_report", input: "model_server_bad", configure: func(c *Config) { c.Mode = "report" }},
	)
}

// msSpan adds a span of a model server's process: a child of the router's upstream call
// (parent 0xdd, remote: it came in the traceparent) or of a span of its own.
func msSpan(ss ptrace.ScopeSpans, traceID byte, id byte, parent pcommon.SpanID, remote bool, name string, kind ptrace.SpanKind,
	start time.Time, d time.Duration, attrs map[string]any) ptrace.Span {
	s := ss.Spans().AppendEmpty()
	s.SetTraceID(pcommon.TraceID{0x5e, traceID})
	s.SetSpanID(pcommon.SpanID{0x5e, id})
	s.SetParentSpanID(parent)
	if remote {
		s.SetFlags(0x300)
	}
	s.SetName(name)
	s.SetKind(kind)
	s.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
	s.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(d)))
	if err := s.Attributes().FromRaw(attrs); err != nil {
		panic(err)
	}
	return s
}

// vllmBatch is two vLLM processes' exports: an engine whose tracer init_tracer made
// (scope vllm.llm_engine, no resource of its own: OTEL_SERVICE_NAME names it), and a newer one
// whose span comes from its tracing helpers (scope vllm.tracing.otel, resource attributes of
// init_tracer, finish reasons as a JSON string). vLLM's v1 engine writes no model name.
func vllmBatch() ptrace.Traces {
	td := ptrace.NewTraces()
	upstream := pcommon.SpanID{0xdd}
	old := td.ResourceSpans().AppendEmpty()
	old.Resource().Attributes().PutStr("service.name", "vllm-qwen3-8b")
	ss := old.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("vllm.llm_engine")
	msSpan(ss, 1, 1, upstream, true, "llm_request", ptrace.SpanKindServer, goldenStart, 2412*time.Millisecond, map[string]any{
		"gen_ai.latency.time_to_first_token":     0.18431282043457031,
		"gen_ai.latency.e2e":                     2.4118359088897705,
		"gen_ai.latency.time_in_queue":           0.0021457672119140625,
		"gen_ai.usage.prompt_tokens":             int64(812),
		"gen_ai.usage.completion_tokens":         int64(164),
		"gen_ai.latency.time_in_model_prefill":   0.17302989959716797,
		"gen_ai.latency.time_in_model_decode":    2.2248790264129639,
		"gen_ai.latency.time_in_model_inference": 2.3979089260101318,
		"gen_ai.request.id":                      "chatcmpl-6f1b8d0c2a7e4f39b5d1c0a9e8f7d6c5",
		"gen_ai.request.top_p":                   0.95,
		"gen_ai.request.max_tokens":              int64(1024),
		"gen_ai.request.temperature":             0.7,
		"gen_ai.request.n":                       int64(1),
	})

	pkg := td.ResourceSpans().AppendEmpty()
	ra := pkg.Resource().Attributes()
	ra.PutStr("service.name", "vllm-llama-70b")
	ra.PutStr("vllm.instrumenting_module_name", "vllm.llm_engine")
	ra.PutStr("vllm.process_id", "4242")
	ss = pkg.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("vllm.tracing.otel")
	msSpan(ss, 2, 2, upstream, true, "llm_request", ptrace.SpanKindServer, goldenStart.Add(time.Second), 9870*time.Millisecond, map[string]any{
		"gen_ai.latency.time_to_first_token":     1.2031059265136719,
		"gen_ai.latency.e2e":                     9.8701298236846924,
		"gen_ai.latency.time_in_queue":           0.84012317657470703,
		"gen_ai.usage.prompt_tokens":             int64(3120),
		"gen_ai.usage.completion_tokens":         int64(1),
		"gen_ai.latency.time_in_model_prefill":   0.35124015808105469,
		"gen_ai.latency.time_in_model_decode":    0.0,
		"gen_ai.latency.time_in_model_inference": 0.35124015808105469,
		"gen_ai.request.id":                      "cmpl-0d9c8b7a6f5e4d3c2b1a09f8e7d6c5b4",
		"gen_ai.response.finish_reasons":         `["length"]`,
		"gen_ai.request.max_tokens":              int64(1),
		"gen_ai.request.n":                       int64(1),
	})
	return td
}

// sglangBatch is an SGLang server's request: the root span under the router's call, with the
// gen_ai.* keys make_span_attrs writes at the request's finish (no time_in_queue), and the
// thread and slice spans of its tokenizer and scheduler, which stay as they are.
func sglangBatch() ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "sglang")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("sglang server")
	root := msSpan(ss, 3, 1, pcommon.SpanID{0xdd}, true, " Req 3f2a9c1d", ptrace.SpanKindInternal, goldenStart, 3104*time.Millisecond, map[string]any{
		"rid":                                    "3f2a9c1d8e7b4a6f9c0d1e2f3a4b5c6d",
		"module":                                 "sglang::request",
		"gen_ai.usage.completion_tokens":         int64(245),
		"gen_ai.usage.prompt_tokens":             int64(1530),
		"gen_ai.usage.cached_tokens":             int64(1024),
		"gen_ai.request.id":                      "3f2a9c1d8e7b4a6f9c0d1e2f3a4b5c6d",
		"gen_ai.request.max_tokens":              int64(2048),
		"gen_ai.request.top_p":                   0.9,
		"gen_ai.request.temperature":             0.6,
		"gen_ai.request.top_k":                   int64(20),
		"gen_ai.response.model":                  "Qwen/Qwen3-8B",
		"gen_ai.response.finish_reasons":         `["stop"]`,
		"gen_ai.latency.time_to_first_token":     0.2214810848236084,
		"gen_ai.latency.e2e":                     3.1040439605712891,
		"gen_ai.latency.time_in_model_decode":    2.8825628757476807,
		"gen_ai.latency.time_in_model_inference": 3.0981528759002686,
		"gen_ai.latency.time_in_model_prefill":   0.21558999824523926,
	})
	tok := msSpan(ss, 3, 2, root.SpanID(), false, "Tokenizer (host:1a2b3c4d | pid:4242)", ptrace.SpanKindInternal, goldenStart, 60*time.Millisecond,
		map[string]any{"host_id": "1a2b3c4d5e6f", "pid": int64(4242), "thread_label": "Tokenizer"})
	msSpan(ss, 3, 3, tok.SpanID(), false, "tokenize", ptrace.SpanKindInternal, goldenStart, 4*time.Millisecond, map[string]any{})
	msSpan(ss, 3, 4, tok.SpanID(), false, "api_server_dispatch", ptrace.SpanKindInternal, goldenStart.Add(4*time.Millisecond), 2*time.Millisecond, map[string]any{})
	sched := msSpan(ss, 3, 5, root.SpanID(), false, "Scheduler [TP 0] (host:1a2b3c4d | pid:4243)", ptrace.SpanKindInternal, goldenStart.Add(6*time.Millisecond), 3090*time.Millisecond,
		map[string]any{"host_id": "1a2b3c4d5e6f", "pid": int64(4243), "thread_label": "Scheduler", "tp_rank": int64(0)})
	msSpan(ss, 3, 6, sched.SpanID(), false, "prefill_forward", ptrace.SpanKindInternal, goldenStart.Add(8*time.Millisecond), 210*time.Millisecond, map[string]any{})
	msSpan(ss, 3, 7, sched.SpanID(), false, "decode_loop", ptrace.SpanKindInternal, goldenStart.Add(220*time.Millisecond), 2880*time.Millisecond, map[string]any{})
	return td
}

// modelServerBadBatch is model server spans with every defect the rows repair or reject:
// numbers as strings, NaN, negative and huge latencies, a fractional and a huge token count,
// both token names disagreeing, a prompt in a request attribute. A span of a model server's
// scope that is not its request span, and an SGLang prefill server's partial span, come too.
func modelServerBadBatch() ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "vllm")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("vllm.llm_engine")
	msSpan(ss, 4, 1, pcommon.SpanID{0xdd}, true, "llm_request", ptrace.SpanKindServer, goldenStart, 1500*time.Millisecond, map[string]any{
		"gen_ai.latency.time_to_first_token":     "0.25",
		"gen_ai.latency.e2e":                     "NaN",
		"gen_ai.latency.time_in_queue":           -0.004,
		"gen_ai.latency.time_in_model_decode":    1e12,
		"gen_ai.latency.time_in_model_prefill":   int64(1),
		"gen_ai.latency.time_in_model_inference": math.Inf(1),
		"gen_ai.usage.prompt_tokens":             "812",
		"gen_ai.usage.completion_tokens":         12.5,
		"gen_ai.request.max_tokens":              int64(1) << 40,
		"gen_ai.request.temperature":             "hot",
		"gen_ai.request.top_p":                   int64(1),
		"gen_ai.prompt":                          "vsrgen-prompt: my card is 4111 1111 1111 1111",
	})
	msSpan(ss, 4, 2, pcommon.SpanID{0xdd}, true, "llm_request", ptrace.SpanKindServer, goldenStart, time.Second, map[string]any{
		"gen_ai.usage.input_tokens":      int64(100),
		"gen_ai.usage.prompt_tokens":     int64(120),
		"gen_ai.usage.output_tokens":     int64(-5),
		"gen_ai.usage.completion_tokens": int64(30),
		"gen_ai.response.model":          "qwen3-8b",
	})
	msSpan(ss, 4, 3, pcommon.SpanID{0x5e, 1}, false, "process_input", ptrace.SpanKindInternal, goldenStart, time.Millisecond, map[string]any{
		"gen_ai.latency.e2e": -1.0,
	})
	sg := td.ResourceSpans().AppendEmpty()
	sg.Resource().Attributes().PutStr("service.name", "sglang-prefill")
	sgs := sg.ScopeSpans().AppendEmpty()
	sgs.Scope().SetName("sglang server")
	msSpan(sgs, 5, 1, pcommon.SpanID{0xdd}, true, "prefill Req 77aa00ff", ptrace.SpanKindInternal, goldenStart, 300*time.Millisecond, map[string]any{
		"gen_ai.usage.prompt_tokens":         int64(2048),
		"gen_ai.usage.completion_tokens":     int64(1),
		"gen_ai.latency.time_to_first_token": 0.29,
	})
	return td
}

// Model servers' request spans are counted by server, and their defects by kind like the
// router's; no router span is counted.
func TestModelServerTelemetry(t *testing.T) {
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tt.Shutdown(context.Background())) })
	cfg := createDefaultConfig().(*Config)
	p, err := NewFactory().CreateTraces(context.Background(), metadatatest.NewSettings(tt), cfg, consumertest.NewNop())
	require.NoError(t, err)
	for _, td := range []ptrace.Traces{vllmBatch(), sglangBatch(), modelServerBadBatch()} {
		require.NoError(t, p.ConsumeTraces(context.Background(), td))
	}
	require.NoError(t, p.Shutdown(context.Background()))
	server := func(name string, n int64) metricdata.DataPoint[int64] {
		return metricdata.DataPoint[int64]{Value: n, Attributes: attribute.NewSet(attribute.String("server", name))}
	}
	metadatatest.AssertEqualProcessorVsrAttributesModelServerSpans(t, tt,
		[]metricdata.DataPoint[int64]{server("vllm", 4), server("sglang", 2)}, metricdatatest.IgnoreTimestamp())
	issue := func(kind string, n int64) metricdata.DataPoint[int64] {
		return metricdata.DataPoint[int64]{Value: n, Attributes: attribute.NewSet(attribute.String("issue", kind))}
	}
	// Renamed: the two older token keys of each of the 6 request spans; redacted: the
	// prompt (removed without a hash key).
	metadatatest.AssertEqualProcessorVsrAttributesIssues(t, tt, []metricdata.DataPoint[int64]{
		issue("renamed", 12), issue("redacted", 1), issue("coerced", 4), issue("invalid", 8), issue("conflict", 2),
	}, metricdatatest.IgnoreTimestamp())
}
