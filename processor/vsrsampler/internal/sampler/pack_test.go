package sampler

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
)

// A dropped trace's spans wait out the rescue window packed, in less memory than one
// encoding of the trace, whether it was dropped as its last batch came or in the one batch
// that brought it all; a late error brings every span back as it came, after a late span
// joined the packed ones, from memory and from the spill.
func TestRescuableSpansWaitPacked(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cuts    []int // where the trace's spans split into batches; negative: from the end
		spilled bool
	}{
		{name: "over three batches", cuts: []int{2, -1}},
		{name: "in one batch"},
		{name: "over three batches, spilled", cuts: []int{2, -1}, spilled: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, rec, sp := newRescuingSampler(t)
			tr := build(routerconv.EraD, routersim.OutcomeOK, 1)
			n := tr.SpanCount()
			from := 0
			for _, cut := range append(tc.cuts, n) {
				if cut < 0 {
					cut += n
				}
				require.Zero(t, consume(s, batchOf(tr, from, cut), t0).SpanCount())
				from = cut
			}
			require.Equal(t, 1, rec.count(TriggerRoot, ReasonDefault), "complete and dropped")

			var sizer ptrace.ProtoMarshaler
			whole := int64(sizer.TracesSize(tr.Traces))
			held := s.Memory(PartSpans)
			t.Logf("held for rescue: %d B; the trace encoded once: %d B", held, whole)
			assert.Less(t, held, whole*3/4, "packed")

			late := modelServerSpan(tr.ID, 1, false)
			require.Zero(t, consume(s, late, t0.Add(time.Second)).SpanCount(), "joins the packed spans")
			if tc.spilled {
				overBudgetWithSpill(t, s, sp, t0.Add(time.Second))
				require.Zero(t, s.Memory(PartSpans), "every parked span in the spill")
			}
			out := consume(s, modelServerSpan(tr.ID, 2, true), t0.Add(2*time.Second))

			require.Zero(t, rec.lost)
			assert.Equal(t, n+2, out.SpanCount(), "the whole trace comes back, the late span with it")
			sent := spansByID(tr.Traces)
			for id, span := range spansByID(out) {
				if want, ok := sent[id]; ok && !routerconv.IsLocalRoot(want) {
					assert.Equal(t, want.Attributes().AsRaw(), span.Attributes().AsRaw(), "span %s", span.Name())
				}
			}
		})
	}
}

func spansByID(td ptrace.Traces) map[pcommon.SpanID]ptrace.Span {
	m := map[pcommon.SpanID]ptrace.Span{}
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, span := range ss.Spans().All() {
				m[span.SpanID()] = span
			}
		}
	}
	return m
}
