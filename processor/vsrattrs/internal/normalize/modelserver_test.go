package normalize

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
)

// modelServerSpan returns a one-span trace of a model server: its scope, span name and service.
func modelServerSpan(scope, name, service string) (ptrace.Traces, ptrace.Span) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", service)
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName(scope)
	span := ss.Spans().AppendEmpty()
	span.SetName(name)
	span.SetTraceID(pcommon.TraceID{1})
	span.SetSpanID(pcommon.SpanID{2})
	span.SetParentSpanID(pcommon.SpanID{3})
	return td, span
}

func TestModelServerRules(t *testing.T) {
	tests := []struct {
		name   string
		in     map[string]any
		want   map[string]any // keys to check; nil value means absent
		issues []any
	}{
		{"vLLM's older token names move", map[string]any{"gen_ai.usage.prompt_tokens": int64(812), "gen_ai.usage.completion_tokens": int64(164)},
			map[string]any{"gen_ai.usage.input_tokens": int64(812), "gen_ai.usage.output_tokens": int64(164),
				"gen_ai.usage.prompt_tokens": nil, "gen_ai.usage.completion_tokens": nil}, nil},
		{"latencies keep their names and seconds", map[string]any{"gen_ai.latency.time_to_first_token": 0.184, "gen_ai.latency.e2e": 2.41},
			map[string]any{"gen_ai.latency.time_to_first_token": 0.184, "gen_ai.latency.e2e": 2.41}, nil},
		{"a latency sent as an integer becomes a double", map[string]any{"gen_ai.latency.time_in_queue": int64(0)},
			map[string]any{"gen_ai.latency.time_in_queue": 0.0}, []any{"coerced:gen_ai.latency.time_in_queue"}},
		{"NaN, negative, infinite and past a day: removed", map[string]any{"gen_ai.latency.time_to_first_token": math.NaN(),
			"gen_ai.latency.time_in_queue": -0.002, "gen_ai.latency.e2e": math.Inf(1), "gen_ai.latency.time_in_model_decode": 90000.0},
			map[string]any{"gen_ai.latency.time_to_first_token": nil, "gen_ai.latency.time_in_queue": nil, "gen_ai.latency.e2e": nil,
				"gen_ai.latency.time_in_model_decode": nil},
			[]any{"invalid:gen_ai.latency.time_to_first_token", "invalid:gen_ai.latency.time_in_queue", "invalid:gen_ai.latency.time_in_model_decode", "invalid:gen_ai.latency.e2e"}},
		{"token counts: fractional, negative, huge", map[string]any{"gen_ai.usage.prompt_tokens": 10.5, "gen_ai.usage.output_tokens": int64(-1),
			"gen_ai.usage.cached_tokens": int64(1) << 40},
			map[string]any{"gen_ai.usage.input_tokens": nil, "gen_ai.usage.prompt_tokens": nil, "gen_ai.usage.output_tokens": nil, "gen_ai.usage.cached_tokens": nil},
			[]any{"invalid:gen_ai.usage.input_tokens", "invalid:gen_ai.usage.output_tokens", "invalid:gen_ai.usage.cached_tokens"}},
		{"both names agreeing: one key", map[string]any{"gen_ai.usage.prompt_tokens": int64(5), "gen_ai.usage.input_tokens": int64(5)},
			map[string]any{"gen_ai.usage.input_tokens": int64(5), "gen_ai.usage.prompt_tokens": nil}, nil},
		{"both names disagreeing: the current one wins", map[string]any{"gen_ai.usage.prompt_tokens": int64(6), "gen_ai.usage.input_tokens": int64(5)},
			map[string]any{"gen_ai.usage.input_tokens": int64(5), "gen_ai.usage.prompt_tokens": nil}, []any{"conflict:gen_ai.usage.input_tokens"}},
		{"a model name that is not UTF-8", map[string]any{"gen_ai.response.model": "qwen\xff"},
			map[string]any{"gen_ai.response.model": "qwen\uFFFD"}, []any{"invalid_utf8:gen_ai.response.model"}},
		{"a prompt on the span is redacted as on any service's", map[string]any{"gen_ai.prompt": "my card is 4111"},
			map[string]any{"gen_ai.prompt": nil}, nil},
		{"other keys stay as sent", map[string]any{"gen_ai.request.id": "chatcmpl-1", "gen_ai.response.finish_reasons": `["stop"]`},
			map[string]any{"gen_ai.request.id": "chatcmpl-1", "gen_ai.response.finish_reasons": `["stop"]`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := defaultOptions()
			opts.Prompts = ActionDrop
			n := New(opts)
			td, span := modelServerSpan("vllm.llm_engine", "llm_request", "vllm")
			require.NoError(t, span.Attributes().FromRaw(tt.in))
			stats := n.Traces(td)
			assert.Equal(t, 1, stats.ModelServerSpans[routerconv.ServerVLLM])
			assert.Zero(t, stats.Spans, "no router span")
			for k, want := range tt.want {
				v, ok := span.Attributes().Get(k)
				if want == nil {
					assert.False(t, ok, "%s should be absent", k)
					continue
				}
				require.True(t, ok, "%s missing", k)
				assert.Equal(t, want, v.AsRaw(), k)
			}
			assert.ElementsMatch(t, tt.issues, issuesOf(span))
			version, _ := span.Attributes().Get(routerconv.SchemaVersionKey)
			assert.Equal(t, SchemaVersion, version.AsString())
		})
	}
}

// keep_legacy_keys keeps the server's names next to the current ones; report mode only
// annotates; strict mode removes what fix mode would coerce.
func TestModelServerModes(t *testing.T) {
	in := map[string]any{"gen_ai.usage.prompt_tokens": int64(812), "gen_ai.latency.e2e": "2.5", "gen_ai.latency.time_in_queue": -1.0}
	run := func(configure func(*Options)) ptrace.Span {
		opts := defaultOptions()
		configure(&opts)
		td, span := modelServerSpan("sglang server", " Req 3f2a9c1d", "sglang")
		require.NoError(t, span.Attributes().FromRaw(in))
		New(opts).Traces(td)
		return span
	}
	legacy := run(func(o *Options) { o.KeepLegacyKeys = true }).Attributes().AsRaw()
	assert.Equal(t, int64(812), legacy["gen_ai.usage.prompt_tokens"])
	assert.Equal(t, int64(812), legacy["gen_ai.usage.input_tokens"])
	assert.Equal(t, 2.5, legacy["gen_ai.latency.e2e"])
	assert.NotContains(t, legacy, "gen_ai.latency.time_in_queue")

	report := run(func(o *Options) { o.Mode = ModeReport })
	assert.Equal(t, map[string]any{"gen_ai.usage.prompt_tokens": int64(812), "gen_ai.latency.e2e": "2.5", "gen_ai.latency.time_in_queue": -1.0,
		"vsr.schema.version": SchemaVersion, "vsr.normalize.issues": []any{"invalid:gen_ai.latency.time_in_queue", "coerced:gen_ai.latency.e2e"}},
		report.Attributes().AsRaw())

	strict := run(func(o *Options) { o.Mode = ModeStrict }).Attributes().AsRaw()
	assert.Equal(t, int64(812), strict["gen_ai.usage.input_tokens"])
	assert.NotContains(t, strict, "gen_ai.latency.e2e", "strict mode does not coerce")
}

// Recognition is by scope and span name: the service name alone says nothing, and the other
// spans of a model server's scope are not its request span.
func TestModelServerRecognition(t *testing.T) {
	tests := []struct {
		scope, name, service string
		server               routerconv.ModelServer
	}{
		{"vllm.llm_engine", "llm_request", "anything", routerconv.ServerVLLM},
		{"vllm.tracing.otel", "llm_request", "unknown_service", routerconv.ServerVLLM},
		{"sglang server", " Req 3f2a9c1d", "sglang", routerconv.ServerSGLang},
		{"sglang server", "Req 3f2a9c1d", "sglang", routerconv.ServerSGLang},
		{"sglang server", "decode Req 3f2a9c1d", "sglang", routerconv.ServerSGLang},
		{"sglang server", "prefill Req 3f2a9c1d", "sglang", routerconv.ServerSGLang},
		{"sglang server", "Scheduler [TP 0] (host:1a2b | pid:4)", "sglang", routerconv.ServerUnknown},
		{"sglang server", "prefill_forward", "sglang", routerconv.ServerUnknown},
		{"", "llm_request", "vllm", routerconv.ServerUnknown},
		{"vllm.llm_engine", "chat qwen3-8b", "vllm", routerconv.ServerUnknown},
	}
	for _, tt := range tests {
		td, span := modelServerSpan(tt.scope, tt.name, tt.service)
		span.Attributes().PutInt("gen_ai.usage.prompt_tokens", 3)
		stats := New(defaultOptions()).Traces(td)
		_, renamed := span.Attributes().Get("gen_ai.usage.input_tokens")
		assert.Equal(t, tt.server != routerconv.ServerUnknown, renamed, "%q %q", tt.scope, tt.name)
		assert.Equal(t, 1, stats.ModelServerSpans[tt.server]+boolInt(tt.server == routerconv.ServerUnknown), "%q %q", tt.scope, tt.name)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// FuzzModelServerSpan puts one arbitrary attribute, of any wire type, on a model server's
// request span that also carries its usual keys: the span is never lost, and a second pass
// changes nothing.
func FuzzModelServerSpan(f *testing.F) {
	for _, a := range Schema {
		if !a.ModelServer {
			continue
		}
		f.Add(a.Key, uint8(3), "0.25", int64(-1), math.NaN(), uint8(0))
		for _, l := range a.Legacy {
			f.Add(l.Key, uint8(0), "812", int64(1)<<40, 1.5, uint8(1))
		}
	}
	f.Add("gen_ai.response.model", uint8(0), "qwen\xff", int64(0), 0.0, uint8(2))
	servers := []struct{ scope, name string }{{"vllm.llm_engine", "llm_request"}, {"vllm.tracing.otel", "llm_request"},
		{"sglang server", " Req 1"}, {"sglang server", "prefill Req 2"}}
	n := New(fuzzOptions())
	f.Fuzz(func(t *testing.T, key string, kind uint8, s string, i int64, d float64, server uint8) {
		srv := servers[int(server)%len(servers)]
		td, span := modelServerSpan(srv.scope, srv.name, "vllm")
		attrs := span.Attributes()
		attrs.PutInt("gen_ai.usage.prompt_tokens", i)
		attrs.PutDouble("gen_ai.latency.time_to_first_token", d)
		attrs.PutStr("gen_ai.latency.e2e", s)
		switch kind % 5 {
		case 0:
			attrs.PutStr(key, s)
		case 1:
			attrs.PutInt(key, i)
		case 2:
			attrs.PutBool(key, i%2 == 0)
		case 3:
			attrs.PutDouble(key, d)
		case 4:
			sl := attrs.PutEmptySlice(key)
			sl.AppendEmpty().SetStr(s)
			sl.AppendEmpty().SetDouble(d)
		}
		checkNormalize(t, n, td)
		facts, ok := routerconv.ReadServing(td.ResourceSpans().At(0).ScopeSpans().At(0).Scope(), span)
		if !ok {
			t.Fatal("the request span is no longer recognised")
		}
		for _, x := range []float64{facts.TTFT, facts.Queue, facts.Decode, facts.E2E} {
			if x != routerconv.Unknown && (math.IsNaN(x) || x < 0 || x > routerconv.MaxLatencySeconds) {
				t.Fatalf("latency %v read from a normalized span", x)
			}
		}
	})
}

// BenchmarkNormalizeModelServer normalizes vLLM's llm_request span alone, as a model server
// pod's export carries it; ns/span and allocs/span are reported.
func BenchmarkNormalizeModelServer(b *testing.B) {
	tr := routersim.Build(routersim.Request{Era: routerconv.EraD, Category: "math", Model: "qwen3-8b", Prompt: "p",
		Start: time.Unix(1_700_000_000, 0), ModelServer: true}, rand.New(rand.NewPCG(7, 7)))
	ms := routersim.Trace{Traces: ptrace.NewTraces()}
	tr.Traces.ResourceSpans().At(1).CopyTo(ms.Traces.ResourceSpans().AppendEmpty())
	benchmarkTraces(b, ms)
}
