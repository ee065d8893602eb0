package requestmetrics

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

var t0 = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

func testConfig() Config {
	return Config{Dimensions: DefaultDimensions, MaxSeries: 100, DurationBuckets: DefaultDurationBuckets,
		ModelServer: ServingConfig{Dimensions: DefaultServingDimensions, Buckets: DefaultServingBuckets}}
}

func metricByName(t *testing.T, md pmetric.Metrics, name string) pmetric.Metric {
	t.Helper()
	ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	for _, m := range ms.All() {
		if m.Name() == name {
			return m
		}
	}
	t.Fatalf("no metric %s", name)
	return pmetric.Metric{}
}

func request(model string, kept bool, id byte) *Request {
	r := &Request{At: t0, Router: true, Weight: 1, Service: "vllm-sr", SelectedModel: model, Category: "math",
		Decision: "math_decision", Action: "allowed", CacheHit: "false", Era: "C", Duration: 1500 * time.Millisecond, Kept: kept}
	if kept {
		r.TraceID = pcommon.TraceID{id}
	}
	return r
}

// Every request counts, kept or dropped; exemplars come from kept ones only.
func TestRequestsCountAllTrafficExemplarsOnlyKept(t *testing.T) {
	a := NewAggregator(testConfig(), t0)
	for i := range 10 {
		a.Request(request("qwen3-8b", i == 3, byte(i+1)))
	}
	failed := request("qwen3-8b", false, 0)
	failed.ErrorType = "502"
	a.Request(failed)
	a.Request(&Request{Router: false, Weight: 1}) // another service's trace is no request
	md := a.Metrics(t0.Add(time.Minute))

	sum := metricByName(t, md, "vsr.requests").Sum()
	require.Equal(t, 1, sum.DataPoints().Len())
	dp := sum.DataPoints().At(0)
	assert.Equal(t, 11.0, dp.DoubleValue())
	assert.Equal(t, "qwen3-8b", dp.Attributes().AsRaw()["routing.selected_model"])
	require.Equal(t, 1, dp.Exemplars().Len())
	assert.Equal(t, pcommon.TraceID{4}, dp.Exemplars().At(0).TraceID(), "the kept trace")

	errs := metricByName(t, md, "vsr.request.errors").Sum().DataPoints().At(0)
	assert.Equal(t, 1.0, errs.DoubleValue())
	assert.Equal(t, "502", errs.Attributes().AsRaw()["error.type"])
	assert.Zero(t, errs.Exemplars().Len(), "the failed request was dropped: no exemplar")

	h := metricByName(t, md, "vsr.request.duration").Histogram().DataPoints().At(0)
	assert.Equal(t, uint64(11), h.Count())
	assert.InDelta(t, 16.5, h.Sum(), 1e-9)
	require.Equal(t, 1, h.Exemplars().Len())
	assert.Equal(t, 1.5, h.Exemplars().At(0).DoubleValue())
}

// A trace a head sampler kept at 1 in 10 (th written) stands for ten requests.
func TestRequestsWeightedByHeadSampling(t *testing.T) {
	a := NewAggregator(testConfig(), t0)
	r := request("m", false, 0)
	r.Weight = 10
	a.Request(r)
	assert.Equal(t, 10.0, metricByName(t, a.Metrics(t0), "vsr.requests").Sum().DataPoints().At(0).DoubleValue())
}

// Past max_series, the rest go to one overflow series: the count is still whole.
func TestSeriesAreCapped(t *testing.T) {
	cfg := testConfig()
	cfg.MaxSeries = 3
	a := NewAggregator(cfg, t0)
	for i := range 10 {
		a.Request(request(string(rune('a'+i)), false, 0))
	}
	dps := metricByName(t, a.Metrics(t0), "vsr.requests").Sum().DataPoints()
	require.Equal(t, 4, dps.Len())
	total, overflow := 0.0, 0.0
	for _, dp := range dps.All() {
		total += dp.DoubleValue()
		if _, ok := dp.Attributes().Get("otel.metric.overflow"); ok {
			overflow = dp.DoubleValue()
		}
	}
	assert.Equal(t, 10.0, total)
	assert.Equal(t, 7.0, overflow)
}

func TestModelCallsAndTokens(t *testing.T) {
	a := NewAggregator(testConfig(), t0)
	a.ModelCall(&ModelCall{At: t0, Upstream: true, Model: "qwen3-8b", Duration: 2 * time.Second, Weight: 1,
		TraceID: pcommon.TraceID{9}, SpanID: pcommon.SpanID{9}})
	a.ModelCall(&ModelCall{At: t0, Upstream: true, Model: "qwen3-8b", ErrorType: "503", Duration: time.Second, Weight: 1})
	a.ModelCall(&ModelCall{At: t0, Model: "qwen3-8b", InputTokens: 120, OutputTokens: 40, Weight: 1})
	md := a.Metrics(t0)
	assert.Equal(t, 2.0, metricByName(t, md, "vsr.model.calls").Sum().DataPoints().At(0).DoubleValue())
	assert.Equal(t, 1.0, metricByName(t, md, "vsr.model.call.errors").Sum().DataPoints().At(0).DoubleValue())
	tokens := map[any]float64{}
	for _, dp := range metricByName(t, md, "vsr.model.tokens").Sum().DataPoints().All() {
		tokens[dp.Attributes().AsRaw()["gen_ai.token.type"]] = dp.DoubleValue()
	}
	assert.Equal(t, map[any]float64{"input": 120, "output": 40}, tokens)
	h := metricByName(t, md, "vsr.model.call.duration").Histogram().DataPoints().At(0)
	assert.Equal(t, uint64(2), h.Count())
	require.Equal(t, 1, h.Exemplars().Len())
	assert.Equal(t, pcommon.SpanID{9}, h.Exemplars().At(0).SpanID())
}

// A dimension that takes a value per request is refused by name, with the alternatives.
func TestConfigRefusesExplodingDimensions(t *testing.T) {
	cfg := testConfig()
	cfg.Dimensions = []string{"routing.selected_model", "request.id", "http.method", "routing.selected_model"}
	cfg.MaxSeries = 0
	cfg.DurationBuckets = []float64{1, 0.5}
	err := cfg.Validate()
	require.Error(t, err)
	for _, want := range []string{`dimensions[1]: "request.id" takes a value per request`, `dimensions[2]: "http.method" is not a request fact`,
		`dimensions[3]: "routing.selected_model" is listed twice`, "max_series: must be positive", "duration_buckets[1]:"} {
		assert.Contains(t, err.Error(), want)
	}
	assert.NoError(t, (&Config{Dimensions: DefaultDimensions, MaxSeries: 1, DurationBuckets: DefaultDurationBuckets,
		ModelServer: ServingConfig{Dimensions: DefaultServingDimensions, Buckets: DefaultServingBuckets}}).Validate())
}

func TestHub(t *testing.T) {
	h := Acquire("vsr_sampler/hubtest")
	defer Release("vsr_sampler/hubtest")
	got, ok := Lookup("vsr_sampler/hubtest")
	require.True(t, ok)
	require.Same(t, h, got)
	assert.False(t, h.Active())
	a := NewAggregator(testConfig(), t0)
	h.Subscribe(a)
	assert.True(t, h.Active())
	h.Request(request("m", false, 0))
	h.Unsubscribe(a)
	assert.False(t, h.Active())
	assert.Equal(t, 1.0, metricByName(t, a.Metrics(t0), "vsr.requests").Sum().DataPoints().At(0).DoubleValue())
	_, ok = Lookup("vsr_sampler/nobody")
	assert.False(t, ok)
}

// Whatever a record carries, a label is a bounded name and error.type one of the fixed
// reasons: no free text reaches the series.
func TestLabelsAreBounded(t *testing.T) {
	a := NewAggregator(testConfig(), t0)
	r := request("qwen3-8b", false, 0)
	r.Category, r.Decision, r.Service = "alice@example.com", "route\nfor bob", strings.Repeat("x", 200)
	r.ErrorType = "ValueError: carol@example.com"
	a.Request(r)
	a.ModelCall(&ModelCall{At: t0, Upstream: true, Model: "dave@example.com", ErrorType: "504", Weight: 1})
	a.ModelCall(&ModelCall{At: t0, Upstream: true, Model: "qwen3-8b", ErrorType: "model said: erin@example.com", Weight: 1})
	md := a.Metrics(t0)
	got := metricByName(t, md, "vsr.requests").Sum().DataPoints().At(0).Attributes().AsRaw()
	assert.Equal(t, "other", got["category.name"])
	assert.Equal(t, "other", got["decision.name"])
	assert.Equal(t, "other", got["service.name"])
	assert.Equal(t, "qwen3-8b", got["routing.selected_model"])
	assert.Equal(t, "_OTHER", metricByName(t, md, "vsr.request.errors").Sum().DataPoints().At(0).Attributes().AsRaw()["error.type"])
	errs := map[any]any{}
	for _, dp := range metricByName(t, md, "vsr.model.call.errors").Sum().DataPoints().All() {
		errs[dp.Attributes().AsRaw()["gen_ai.response.model"]] = dp.Attributes().AsRaw()["error.type"]
	}
	assert.Equal(t, map[any]any{"other": "504", "qwen3-8b": "_OTHER"}, errs)
}
