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
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler"
	"github.com/otelcol-vsr/otelcol-vsr/receiver/vsrrequests/internal/metadata"
)

var samplerID = component.MustNewIDWithName("vsr_sampler", "requests_test")

// A collector with the receiver but without the sampler it names refuses to start.
func TestStartNeedsItsSampler(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.Sampler = "vsr_sampler/absent"
	r, err := NewFactory().CreateMetrics(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, consumertest.NewNop())
	require.NoError(t, err)
	assert.ErrorContains(t, r.Start(context.Background(), componenttest.NewNopHost()), "sampler: no vsr_sampler/absent")
	require.NoError(t, r.Shutdown(context.Background()))
}

// The sampler and the receiver in one process: every request is counted, kept or dropped,
// and every exemplar points at a kept trace.
func TestCountsAllTrafficWithExemplarsOfKeptTraces(t *testing.T) {
	samplerFactory := vsrsampler.NewFactory()
	scfg := samplerFactory.CreateDefaultConfig()
	kept := new(consumertest.TracesSink)
	set := processortest.NewNopSettings(samplerFactory.Type())
	set.ID = samplerID
	sampler, err := samplerFactory.CreateTraces(context.Background(), set, scfg, kept)
	require.NoError(t, err)

	cfg := createDefaultConfig().(*Config)
	cfg.Sampler = samplerID.String()
	cfg.CollectionInterval = 20 * time.Millisecond
	metrics := new(consumertest.MetricsSink)
	r, err := NewFactory().CreateMetrics(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, metrics)
	require.NoError(t, err)
	require.NoError(t, sampler.Start(context.Background(), componenttest.NewNopHost()))
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))

	const traces = 200
	rng := rand.New(rand.NewPCG(1, 2))
	drawer := routersim.NewDrawer(routersim.Mix{EraWeights: [4]float64{1, 1, 1, 1}, ErrorRate: 0.1, BlockedRate: 0.1}, rng)
	for range traces {
		tr := routersim.Build(drawer.Draw(time.Now()), rng)
		require.NoError(t, sampler.ConsumeTraces(context.Background(), tr.Traces))
	}
	require.NoError(t, sampler.Shutdown(context.Background())) // decides what still waits
	keptIDs := map[pcommon.TraceID]bool{}
	for _, td := range kept.AllTraces() {
		for _, rs := range td.ResourceSpans().All() {
			for _, s := range rs.ScopeSpans().At(0).Spans().All() {
				keptIDs[s.TraceID()] = true
			}
		}
	}
	require.Less(t, len(keptIDs), traces, "some traces were dropped")

	var last pmetric.Metrics
	require.Eventually(t, func() bool {
		all := metrics.AllMetrics()
		if len(all) == 0 {
			return false
		}
		last = all[len(all)-1]
		return requestCount(last) == traces
	}, 5*time.Second, 10*time.Millisecond, "every request counted")
	require.NoError(t, r.Shutdown(context.Background()))

	exemplars := 0
	forEachExemplar(last, func(id pcommon.TraceID) {
		exemplars++
		assert.True(t, keptIDs[id], "exemplar %s points at a dropped trace", id)
	})
	assert.Positive(t, exemplars)
}

func requestCount(md pmetric.Metrics) float64 {
	total := 0.0
	for _, rm := range md.ResourceMetrics().All() {
		for _, sm := range rm.ScopeMetrics().All() {
			for _, m := range sm.Metrics().All() {
				if m.Name() == "vsr.requests" {
					for _, dp := range m.Sum().DataPoints().All() {
						total += dp.DoubleValue()
					}
				}
			}
		}
	}
	return total
}

func forEachExemplar(md pmetric.Metrics, f func(pcommon.TraceID)) {
	for _, rm := range md.ResourceMetrics().All() {
		for _, sm := range rm.ScopeMetrics().All() {
			for _, m := range sm.Metrics().All() {
				switch m.Type() {
				case pmetric.MetricTypeSum:
					for _, dp := range m.Sum().DataPoints().All() {
						for _, e := range dp.Exemplars().All() {
							f(e.TraceID())
						}
					}
				case pmetric.MetricTypeHistogram:
					for _, dp := range m.Histogram().DataPoints().All() {
						for _, e := range dp.Exemplars().All() {
							f(e.TraceID())
						}
					}
				}
			}
		}
	}
}
