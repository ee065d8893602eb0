package routerconv

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

func servingSpan(t *testing.T, scope, name string, attrs map[string]any) (pcommon.InstrumentationScope, ptrace.Span) {
	sc := pcommon.NewInstrumentationScope()
	sc.SetName(scope)
	span := ptrace.NewSpan()
	span.SetName(name)
	require.NoError(t, span.Attributes().FromRaw(attrs))
	return sc, span
}

func TestReadServing(t *testing.T) {
	tests := []struct {
		name        string
		scope, span string
		attrs       map[string]any
		want        Serving
		tpot        float64
	}{
		{"vLLM as it sends", "vllm.llm_engine", "llm_request", map[string]any{
			"gen_ai.latency.time_to_first_token": 0.2, "gen_ai.latency.time_in_queue": 0.01, "gen_ai.latency.time_in_model_decode": 1.5,
			"gen_ai.latency.e2e": 1.75, "gen_ai.usage.prompt_tokens": int64(800), "gen_ai.usage.completion_tokens": int64(151)},
			Serving{Server: ServerVLLM, Whole: true, TTFT: 0.2, Queue: 0.01, Decode: 1.5, E2E: 1.75, InputTokens: 800, OutputTokens: 151}, 0.01},
		{"normalized, with the older keys kept: the current ones count", "vllm.tracing.otel", "llm_request", map[string]any{
			"gen_ai.usage.input_tokens": int64(800), "gen_ai.usage.prompt_tokens": int64(900), "gen_ai.usage.output_tokens": int64(1)},
			Serving{Server: ServerVLLM, Whole: true, TTFT: Unknown, Queue: Unknown, Decode: Unknown, E2E: Unknown, InputTokens: 800, OutputTokens: 1}, Unknown},
		{"SGLang names its model; no queue time", "sglang server", " Req 3f2a9c1d", map[string]any{
			"gen_ai.response.model": "Qwen/Qwen3-8B", "gen_ai.latency.time_to_first_token": 0.22, "gen_ai.latency.time_in_model_decode": 0.0,
			"gen_ai.usage.completion_tokens": int64(1)},
			Serving{Server: ServerSGLang, Whole: true, Model: "Qwen/Qwen3-8B", TTFT: 0.22, Queue: Unknown, Decode: 0, E2E: Unknown, InputTokens: Unknown, OutputTokens: 1}, Unknown},
		{"a prefill server's part", "sglang server", "prefill Req 3f2a9c1d", map[string]any{},
			Serving{Server: ServerSGLang, TTFT: Unknown, Queue: Unknown, Decode: Unknown, E2E: Unknown, InputTokens: Unknown, OutputTokens: Unknown}, Unknown},
		{"nonsense is unknown; readable strings are read", "vllm.llm_engine", "llm_request", map[string]any{
			"gen_ai.latency.time_to_first_token": math.NaN(), "gen_ai.latency.time_in_queue": -0.5, "gen_ai.latency.time_in_model_decode": "2",
			"gen_ai.latency.e2e": math.Inf(1), "gen_ai.usage.input_tokens": int64(-3), "gen_ai.usage.prompt_tokens": "40",
			"gen_ai.usage.output_tokens": 2.5, "gen_ai.request.model": int64(7)},
			Serving{Server: ServerVLLM, Whole: true, Model: "7", TTFT: Unknown, Queue: Unknown, Decode: 2, E2E: Unknown, InputTokens: 40, OutputTokens: Unknown}, Unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scope, span := servingSpan(t, tt.scope, tt.span, tt.attrs)
			got, ok := ReadServing(scope, span)
			require.True(t, ok)
			assert.Equal(t, tt.want, got)
			assert.InDelta(t, tt.tpot, got.TimePerOutputToken(), 1e-12)
		})
	}
	for _, other := range [][2]string{{"vllm.llm_engine", "process"}, {"opentelemetry.instrumentation.fastapi", "llm_request"},
		{"sglang server", "Tokenizer (host:1 | pid:2)"}, {"sglang server", "prefill_forward"}, {"sglang server", "Req"}} {
		scope, span := servingSpan(t, other[0], other[1], map[string]any{"gen_ai.usage.input_tokens": int64(1)})
		_, ok := ReadServing(scope, span)
		assert.False(t, ok, "%v is no request span", other)
	}
}
