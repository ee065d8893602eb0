package sampler

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
)

func TestDynamicFavoursRareKeys(t *testing.T) {
	d := newDynamic(Dynamic{Keys: []string{"category.name"}, TargetPerSecond: 10, Window: 10 * time.Second})
	for range 1000 {
		d.rate("common", t0)
	}
	for range 10 {
		d.rate("rare", t0)
	}
	later := t0.Add(10 * time.Second)
	assert.InDelta(t, 1.0, d.rate("rare", later), 1e-9, "rare needs 10 of the budget of 100: all kept")
	assert.InDelta(t, 0.09, d.rate("common", later), 1e-9, "common shares the other 90 over 1000")
	assert.InDelta(t, 1.0, d.rate("never-seen", later), 1e-9)
}

// Over a minute of skewed traffic the kept rate settles near the target.
func TestDynamicMeetsTarget(t *testing.T) {
	d := newDynamic(Dynamic{Keys: []string{"k"}, TargetPerSecond: 10, Window: 5 * time.Second})
	rng := rand.New(rand.NewPCG(1, 2))
	keys := []string{"a", "a", "a", "a", "a", "a", "b", "b", "c", "d"}
	kept := 0
	for sec := range 60 {
		for i := range 200 {
			now := t0.Add(time.Duration(sec)*time.Second + time.Duration(i)*5*time.Millisecond)
			if rng.Float64() < d.rate(keys[rng.IntN(len(keys))], now) && sec >= 20 {
				kept++
			}
		}
	}
	assert.InDelta(t, 10, float64(kept)/40, 2.5, "kept per second after warm-up")
}

func TestDynamicKeyCardinalityBounded(t *testing.T) {
	d := newDynamic(Dynamic{Keys: []string{"k"}, TargetPerSecond: 1, Window: time.Second, MaxKeys: 3})
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		d.rate(k, t0)
	}
	require.Len(t, d.counts, 4, "three keys and the overflow bucket")
}

func TestSamplerUsesDynamicRates(t *testing.T) {
	cfg := testConfig()
	cfg.Dynamic = &Dynamic{Keys: []string{"category.name"}, TargetPerSecond: 1, Window: time.Second}
	s, rec := newSampler(t, cfg)
	tr := build(routerconv.EraC, routersim.OutcomeOK, 1)
	out := consume(s, batchOf(tr, 0, tr.SpanCount()), t0)
	require.Equal(t, tr.SpanCount(), out.SpanCount(), "a key never seen is rare: kept")
	require.Equal(t, 1, rec.count(TriggerRoot, ReasonDynamic))
	for _, ts := range traceStates(out) {
		assert.Equal(t, "ot=th:0", ts, "probability 1 is threshold 0")
	}
}
