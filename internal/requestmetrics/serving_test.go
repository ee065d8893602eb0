package requestmetrics

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

func served(model, category string, kept bool, id byte) *Serving {
	s := &Serving{At: t0, Weight: 1, Service: "vllm", Model: model, SelectedModel: model, Category: category,
		Decision: category + "_decision", Era: "D", TTFT: 0.2, TPOT: 0.02, Queue: 0.01, E2E: 2.5, InputTokens: 800, OutputTokens: 116}
	if kept {
		s.TraceID, s.SpanID = pcommon.TraceID{id}, pcommon.SpanID{id}
	}
	return s
}

func histogramByAttrs(t *testing.T, md pmetric.Metrics, name string) map[string]pmetric.HistogramDataPoint {
	t.Helper()
	out := map[string]pmetric.HistogramDataPoint{}
	for _, dp := range metricByName(t, md, name).Histogram().DataPoints().All() {
		model, _ := dp.Attributes().Get("gen_ai.response.model")
		category, _ := dp.Attributes().Get("category.name")
		out[model.AsString()+"/"+category.AsString()] = dp
	}
	return out
}

// Every request a model server served counts, by model and the route's facts, kept or not;
// exemplars point at kept traces' model server spans only.
func TestServingCountsAllTrafficByRoute(t *testing.T) {
	a := NewAggregator(testConfig(), t0)
	for i := range 10 {
		a.Serving(served("qwen3-8b", "math", i == 4, byte(i+1)))
	}
	a.Serving(served("qwen3-8b", "coding", false, 0))
	md := a.Metrics(t0.Add(time.Minute))

	for name, want := range map[string]float64{
		"vsr.model.server.time_to_first_token": 0.2, "vsr.model.server.time_per_output_token": 0.02,
		"vsr.model.server.queue_time": 0.01, "vsr.model.server.duration": 2.5,
	} {
		byRoute := histogramByAttrs(t, md, name)
		require.Len(t, byRoute, 2, name)
		math := byRoute["qwen3-8b/math"]
		assert.Equal(t, uint64(10), math.Count(), name)
		assert.InDelta(t, 10*want, math.Sum(), 1e-9, name)
		assert.Equal(t, DefaultServingBuckets, math.ExplicitBounds().AsRaw(), name)
		require.Equal(t, 1, math.Exemplars().Len(), name)
		assert.Equal(t, pcommon.TraceID{5}, math.Exemplars().At(0).TraceID())
		assert.Equal(t, pcommon.SpanID{5}, math.Exemplars().At(0).SpanID())
		assert.Zero(t, byRoute["qwen3-8b/coding"].Exemplars().Len(), "dropped: no exemplar")
	}
	tokens := map[string]float64{}
	for _, dp := range metricByName(t, md, "vsr.model.server.tokens").Sum().DataPoints().All() {
		kind, _ := dp.Attributes().Get("gen_ai.token.type")
		tokens[kind.Str()] += dp.DoubleValue()
		assert.Equal(t, "D", dp.Attributes().AsRaw()["vsr.era"])
	}
	assert.Equal(t, map[string]float64{"input": 11 * 800, "output": 11 * 116}, tokens)
}

// What the span did not say is not observed: a model server without a queue time (SGLang), a
// single output token (no time per output token), no router in the trace.
func TestServingObservesOnlyWhatIsKnown(t *testing.T) {
	a := NewAggregator(testConfig(), t0)
	a.Serving(&Serving{At: t0, Service: "sglang", Model: "Qwen/Qwen3-8B", TTFT: 0.3, TPOT: -1, Queue: -1, E2E: 0.3,
		InputTokens: -1, OutputTokens: 1})
	md := a.Metrics(t0)
	ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	names := map[string]bool{}
	for _, m := range ms.All() {
		names[m.Name()] = true
	}
	assert.Equal(t, map[string]bool{"vsr.model.server.time_to_first_token": true, "vsr.model.server.duration": true, "vsr.model.server.tokens": true}, names)
	dp := metricByName(t, md, "vsr.model.server.time_to_first_token").Histogram().DataPoints().At(0)
	assert.Equal(t, map[string]any{"gen_ai.response.model": "Qwen/Qwen3-8B", "service.name": "sglang", "routing.selected_model": "",
		"category.name": "", "decision.name": "", "vsr.era": ""}, dp.Attributes().AsRaw())
}

// A model name that could be free text becomes "other" before it is a label; series are
// capped like the other families'.
func TestServingLabelsBounded(t *testing.T) {
	cfg := testConfig()
	cfg.MaxSeries = 2
	a := NewAggregator(cfg, t0)
	a.Serving(served("jane.doe@example.com", "math", false, 0))
	for _, m := range []string{"a", "b", "c", "d"} {
		a.Serving(served(m, "math", false, 0))
	}
	dps := metricByName(t, a.Metrics(t0), "vsr.model.server.duration").Histogram().DataPoints()
	require.Equal(t, 3, dps.Len())
	total := uint64(0)
	models := map[any]uint64{}
	for _, dp := range dps.All() {
		total += dp.Count()
		models[dp.Attributes().AsRaw()["gen_ai.response.model"]] += dp.Count()
		if _, ok := dp.Attributes().Get("otel.metric.overflow"); ok {
			assert.Equal(t, uint64(3), dp.Count())
		}
	}
	assert.Equal(t, uint64(5), total)
	assert.Equal(t, uint64(1), models["other"])
}

// The model server's dimensions and buckets are validated by key, like the request metrics'.
func TestServingConfigValidated(t *testing.T) {
	cfg := testConfig()
	cfg.ModelServer = ServingConfig{Dimensions: []string{"category.name", "request.id", "http.method", "category.name"},
		Buckets: []float64{0.1, 0.05, 0}}
	err := cfg.Validate()
	require.Error(t, err)
	for _, want := range []string{`model_server.dimensions[1]: "request.id" takes a value per request`,
		`model_server.dimensions[2]: "http.method" is not a request fact`, `model_server.dimensions[3]: "category.name" is listed twice`,
		"model_server.buckets[1]:", "model_server.buckets[2]:"} {
		assert.Contains(t, err.Error(), want)
	}
	cfg.ModelServer.Buckets = nil
	assert.ErrorContains(t, cfg.Validate(), "model_server.buckets: must list at least one bound")
}
