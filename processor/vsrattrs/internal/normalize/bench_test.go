package normalize

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
)

// BenchmarkNormalize normalizes a realistic request of each era, one trace per call as the
// router's batches carry a few. The copy of the input is outside the timer; ns/span and
// allocs/span are reported.
func BenchmarkNormalize(b *testing.B) {
	for _, era := range []routerconv.Era{routerconv.EraA, routerconv.EraB, routerconv.EraC, routerconv.EraD} {
		b.Run("era="+era.String(), func(b *testing.B) {
			benchmarkTraces(b, simulate(era, routersim.OutcomeOK, 7))
		})
	}
}

func benchmarkTraces(b *testing.B, tr routersim.Trace) {
	n := New(defaultOptions())
	const batch = 64
	inputs := make([]ptrace.Traces, batch)
	spans := tr.SpanCount()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%batch == 0 {
			b.StopTimer()
			for j := range inputs {
				inputs[j] = ptrace.NewTraces()
				tr.Traces.CopyTo(inputs[j])
			}
			b.StartTimer()
		}
		n.Traces(inputs[i%batch])
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*spans), "ns/span")
}
