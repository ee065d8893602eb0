package sampler

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/requestmetrics"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
)

// nopObserver records nothing: the benchmark measures the core alone.
type nopObserver struct{}

func (nopObserver) Decided(Decision, Trigger, int, time.Duration) {}
func (nopObserver) Request(*requestmetrics.Request)               {}
func (nopObserver) ModelCall(*requestmetrics.ModelCall)           {}
func (nopObserver) Serving(*requestmetrics.Serving)               {}
func (nopObserver) LateSpan(LateOutcome)                          {}
func (nopObserver) DuplicateSpan()                                {}
func (nopObserver) SpillFailed(error)                             {}
func (nopObserver) Lost(error)                                    {}
func (nopObserver) JournalFailed(error)                           {}
func (nopObserver) RootWaited(Trigger, time.Duration)             {}

// routerBatches is router traffic as its pods export it: requests of every era and outcome
// in flight together, each span exported when it ends, in batches of 64 spans, one
// ResourceSpans per pod (router version) in each, as the SDK's exporter sends them.
func routerBatches(traces int) []ptrace.Traces {
	rng := rand.New(rand.NewPCG(1, 2))
	drawer := routersim.NewDrawer(routersim.DefaultMix(), rng)
	var spans []ptrace.Span
	var resources []ptrace.ResourceSpans
	for i := range traces {
		tr := routersim.Build(drawer.Draw(t0.Add(time.Duration(i)*time.Millisecond)), rng)
		for _, rs := range tr.Traces.ResourceSpans().All() {
			for _, span := range rs.ScopeSpans().At(0).Spans().All() {
				spans = append(spans, span)
				resources = append(resources, rs)
			}
		}
	}
	// Interleave neighbouring requests, as concurrent requests' spans are: each span moves
	// up to 32 places.
	order := make([]int, len(spans))
	at := make([]float64, len(spans))
	for i := range order {
		order[i], at[i] = i, float64(i)+32*rng.Float64()
	}
	slices.SortFunc(order, func(x, y int) int { return cmp.Compare(at[x], at[y]) })
	var batches []ptrace.Traces
	cur, pods := ptrace.NewTraces(), map[string]ptrace.SpanSlice{}
	for _, i := range order {
		pod := fmt.Sprint(resources[i].Resource().Attributes().AsRaw())
		dst, ok := pods[pod]
		if !ok {
			rs := cur.ResourceSpans().AppendEmpty()
			resources[i].Resource().CopyTo(rs.Resource())
			ss := rs.ScopeSpans().AppendEmpty()
			resources[i].ScopeSpans().At(0).Scope().CopyTo(ss.Scope())
			dst = ss.Spans()
			pods[pod] = dst
		}
		spans[i].CopyTo(dst.AppendEmpty())
		if cur.SpanCount() == 64 {
			batches = append(batches, cur)
			cur = ptrace.NewTraces()
			clear(pods)
		}
	}
	return batches
}

// BenchmarkConsume feeds router traffic through the core, with the timer's work every 100 ms
// of traffic: ns/span and allocs/span of the whole decision path.
func BenchmarkConsume(b *testing.B) {
	batches := routerBatches(2000)
	cfg := testConfig()
	s, err := New(cfg, nopObserver{})
	if err != nil {
		b.Fatal(err)
	}
	spans := 0
	for _, td := range batches {
		spans += td.SpanCount()
	}
	perBatch := float64(spans) / float64(len(batches))
	inputs := make([]ptrace.Traces, len(batches))
	now := t0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i % len(batches)
		if k == 0 {
			// Every pass is new traffic to a new core: the same traces again would all find
			// their decisions cached.
			b.StopTimer()
			for j, td := range batches {
				inputs[j] = ptrace.NewTraces()
				td.CopyTo(inputs[j])
			}
			if s, err = New(cfg, nopObserver{}); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		s.Consume(inputs[k], now)
		now = now.Add(10 * time.Millisecond)
		if k%10 == 9 {
			s.Tick(now)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/(float64(b.N)*perBatch), "ns/span")
}
