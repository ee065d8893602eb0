package vsrrequests

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrattrs"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler"
	"github.com/otelcol-vsr/otelcol-vsr/receiver/vsrrequests/internal/metadata"
)

// vsr_attributes, vsr_sampler and the receiver in one process, fed router traces and vLLM's
// spans: every model server span is counted once, with its tokens and latencies as sent, by
// the route it served, kept or not; exemplars name kept traces' model server spans only.
func TestModelServerMetricsAgainstWhatWasSent(t *testing.T) {
	ctx := context.Background()
	kept := new(consumertest.TracesSink)
	samplerFactory := vsrsampler.NewFactory()
	sset := processortest.NewNopSettings(samplerFactory.Type())
	sset.ID = component.MustNewIDWithName("vsr_sampler", "serving_test")
	sampler, err := samplerFactory.CreateTraces(ctx, sset, samplerFactory.CreateDefaultConfig(), kept)
	require.NoError(t, err)
	attrsFactory := vsrattrs.NewFactory()
	attrs, err := attrsFactory.CreateTraces(ctx, processortest.NewNopSettings(attrsFactory.Type()), attrsFactory.CreateDefaultConfig(), sampler)
	require.NoError(t, err)
	cfg := createDefaultConfig().(*Config)
	cfg.Sampler = sset.ID.String()
	cfg.CollectionInterval = 20 * time.Millisecond
	metrics := new(consumertest.MetricsSink)
	r, err := NewFactory().CreateMetrics(ctx, receivertest.NewNopSettings(metadata.Type), cfg, metrics)
	require.NoError(t, err)
	for _, c := range []component.Component{sampler, attrs, r} {
		require.NoError(t, c.Start(ctx, componenttest.NewNopHost()))
	}

	rng := rand.New(rand.NewPCG(3, 4))
	mix := routersim.DefaultMix()
	mix.ModelServerRate, mix.SlowRate = 1, 0
	drawer := routersim.NewDrawer(mix, rng)
	var served, input, output int
	var ttft float64
	for range 300 {
		tr := routersim.Build(drawer.Draw(time.Now()), rng)
		if tr.Serving != nil {
			served++
			input += int(tr.Serving.PromptTokens)
			output += int(tr.Serving.CompletionTokens)
			ttft += tr.Serving.TTFT
		}
		require.NoError(t, attrs.ConsumeTraces(ctx, tr.Traces))
	}
	require.NoError(t, sampler.Shutdown(ctx))
	keptSpans := map[pcommon.SpanID]bool{}
	for _, td := range kept.AllTraces() {
		for _, rs := range td.ResourceSpans().All() {
			for _, ss := range rs.ScopeSpans().All() {
				for _, s := range ss.Spans().All() {
					keptSpans[s.SpanID()] = true
				}
			}
		}
	}
	var last pmetric.Metrics
	require.Eventually(t, func() bool {
		all := metrics.AllMetrics()
		if len(all) == 0 {
			return false
		}
		last = all[len(all)-1]
		count, _ := histogramTotals(last, "vsr.model.server.time_to_first_token")
		return count == uint64(served)
	}, 5*time.Second, 10*time.Millisecond, "every model server span counted once")
	require.NoError(t, r.Shutdown(ctx))
	require.NoError(t, attrs.Shutdown(ctx))

	_, sum := histogramTotals(last, "vsr.model.server.time_to_first_token")
	assert.InDelta(t, ttft, sum, 1e-6)
	tokens := map[string]int{}
	exemplars := 0
	for _, rm := range last.ResourceMetrics().All() {
		for _, m := range rm.ScopeMetrics().At(0).Metrics().All() {
			switch m.Name() {
			case "vsr.model.server.tokens":
				for _, dp := range m.Sum().DataPoints().All() {
					kind, _ := dp.Attributes().Get("gen_ai.token.type")
					tokens[kind.Str()] += int(dp.DoubleValue())
				}
			case "vsr.model.server.time_to_first_token", "vsr.model.server.duration":
				for _, dp := range m.Histogram().DataPoints().All() {
					for _, e := range dp.Exemplars().All() {
						exemplars++
						assert.True(t, keptSpans[e.SpanID()], "an exemplar names a span the backend did not get")
					}
				}
			}
		}
	}
	assert.Equal(t, map[string]int{"input": input, "output": output}, tokens, "either token name, counted once")
	assert.Positive(t, exemplars)
}

func histogramTotals(md pmetric.Metrics, name string) (count uint64, sum float64) {
	for _, rm := range md.ResourceMetrics().All() {
		for _, sm := range rm.ScopeMetrics().All() {
			for _, m := range sm.Metrics().All() {
				if m.Name() == name {
					for _, dp := range m.Histogram().DataPoints().All() {
						count += dp.Count()
						sum += dp.Sum()
					}
				}
			}
		}
	}
	return count, sum
}
