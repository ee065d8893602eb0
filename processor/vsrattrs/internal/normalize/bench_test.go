package normalize

import (
	"strings"
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

// prompt4K is a 4 KiB prompt, with an address and a phone number in it as users write them.
var prompt4K = func() string {
	s := strings.Repeat("Please summarise the quarterly report for the team, focusing on revenue, churn and the "+
		"three largest accounts; keep it under 200 words and reply in English. ", 30)
	return (s[:2000] + " reach me at jane.doe@example.com or +1 415 555 0123 " + s[2000:])[:4096]
}()

// BenchmarkPromptSpan is the privacy walk's cost on an LLM client span carrying a 4 KiB prompt:
// where a family hashes it (OpenInference input and message, GenAI input messages), and where
// it is kept and scanned (a free-text attribute, the status message); ns/span.
func BenchmarkPromptSpan(b *testing.B) {
	build := func(hashed, kept bool) ptrace.Traces {
		td := ptrace.NewTraces()
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", "rag-app")
		span := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		span.SetName("ChatOpenAI")
		a := span.Attributes()
		a.PutStr("openinference.span.kind", "LLM")
		a.PutStr("llm.model_name", "gpt-4o")
		a.PutInt("llm.token_count.prompt", 1024)
		a.PutStr("llm.input_messages.0.message.role", "user")
		if hashed {
			a.PutStr("input.value", prompt4K)
			a.PutStr("llm.input_messages.0.message.content", prompt4K)
			a.PutStr("gen_ai.input.messages", prompt4K)
		}
		if kept {
			a.PutStr("app.context", prompt4K)
			span.Status().SetMessage(prompt4K)
		}
		return td
	}
	for _, tc := range []struct {
		name         string
		hashed, kept bool
	}{{"hashed", true, false}, {"kept_scanned", false, true}, {"both", true, true}} {
		b.Run(tc.name, func(b *testing.B) {
			benchmarkTraces(b, routersim.Trace{Traces: build(tc.hashed, tc.kept)})
		})
	}
}
