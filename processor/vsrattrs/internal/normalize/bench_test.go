package normalize

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
)

// BenchmarkEraCTrace normalizes a realistic era C request (8 spans: auto routing with RAG).
// The copy of the input is outside the timer; ns/span and allocs/span are reported.
func BenchmarkEraCTrace(b *testing.B) {
	var tr routersim.Trace
	for seed := range uint64(100) {
		if tr = simulate(routerconv.EraC, routersim.OutcomeOK, seed); tr.SpanCount() == 8 {
			break
		}
	}
	if tr.SpanCount() != 8 {
		b.Fatal("no era C trace with retrieval in 100 seeds")
	}
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
	b.ReportMetric(float64(spans), "spans/op")
}
