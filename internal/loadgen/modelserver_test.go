package loadgen

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
)

// The manifest records what each model server span says, exactly as sent: the request metrics
// are checked against it.
func TestManifestRecordsModelServerSpans(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := testConfig()
	cfg.Mix.ModelServerRate = 1
	sink := &recordingSender{}
	_, manifest := Run(ctx, cfg, sink)

	type sent struct {
		span     ptrace.Span
		scope    string
		service  string
		upstream map[string]bool
	}
	byTrace := map[string]*sent{}
	upstreams := map[string]map[string]bool{}
	for _, td := range sink.requests {
		for _, rs := range td.ResourceSpans().All() {
			service, _ := rs.Resource().Attributes().Get("service.name")
			for _, ss := range rs.ScopeSpans().All() {
				for _, s := range ss.Spans().All() {
					id := s.TraceID().String()
					if s.Name() == "semantic_router.upstream.request" {
						if upstreams[id] == nil {
							upstreams[id] = map[string]bool{}
						}
						upstreams[id][s.SpanID().String()] = true
					}
					if routerconv.IsModelServerSpan(ss.Scope(), s.Name()) {
						require.Nil(t, byTrace[id], "one model server span per trace")
						byTrace[id] = &sent{span: s, scope: ss.Scope().Name(), service: service.Str()}
					}
				}
			}
		}
	}
	served := 0
	for _, e := range manifest {
		got := byTrace[e.TraceID]
		if e.ModelServer == nil {
			assert.Nil(t, got, "%s: a span the manifest does not record", e.TraceID)
			continue
		}
		served++
		require.NotNil(t, got, "%s: the manifest records a span that was not sent", e.TraceID)
		s, ms := got.span, e.ModelServer
		assert.Equal(t, routersim.ModelServerScope, got.scope)
		assert.Equal(t, routersim.ModelServerService, got.service)
		assert.Equal(t, ptrace.SpanKindServer, s.Kind())
		assert.True(t, upstreams[e.TraceID][s.ParentSpanID().String()], "the parent is the router's upstream call")
		attrs := s.Attributes().AsRaw()
		assert.Equal(t, ms.PromptTokens, attrs["gen_ai.usage.prompt_tokens"])
		assert.Equal(t, ms.CompletionTokens, attrs["gen_ai.usage.completion_tokens"])
		assert.Equal(t, ms.TTFT, attrs["gen_ai.latency.time_to_first_token"])
		assert.Equal(t, ms.Queue, attrs["gen_ai.latency.time_in_queue"])
		assert.Equal(t, ms.Decode, attrs["gen_ai.latency.time_in_model_decode"])
		assert.Equal(t, ms.E2E, attrs["gen_ai.latency.e2e"])
		assert.NotContains(t, attrs, "gen_ai.response.model", "vLLM's v1 engine names no model")
		assert.InDelta(t, ms.E2E, s.EndTimestamp().AsTime().Sub(s.StartTimestamp().AsTime()).Seconds(), 1e-6)
		assert.GreaterOrEqual(t, ms.E2E, ms.TTFT+ms.Decode)
		assert.GreaterOrEqual(t, ms.TTFT, ms.Queue+ms.Prefill)
		assert.LessOrEqual(t, ms.CompletionTokens, ms.MaxTokens)
		assert.Contains(t, []string{"ok", "error"}, e.Outcome, "a blocked or cached request calls no model")
	}
	assert.Greater(t, served, len(manifest)/3, "the ok requests with a model call")
}
