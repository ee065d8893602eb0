package vsrsampler

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/metadatatest"
)

func simulate(era routerconv.Era, outcome routersim.Outcome, category string, seed uint64) routersim.Trace {
	return routersim.Build(routersim.Request{Era: era, Outcome: outcome, Category: category, Model: "qwen3-8b", Start: time.Now()},
		rand.New(rand.NewPCG(seed, 5)))
}

func startProcessor(t *testing.T, tt *componenttest.Telemetry, cfg *Config, sink *consumertest.TracesSink) processor.Traces {
	t.Helper()
	p, err := NewFactory().CreateTraces(context.Background(), metadatatest.NewSettings(tt), cfg, sink)
	require.NoError(t, err)
	require.NoError(t, p.Start(context.Background(), componenttest.NewNopHost()))
	return p
}

func newTelemetry(t *testing.T) *componenttest.Telemetry {
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tt.Shutdown(context.Background())) })
	return tt
}

// Through the collector glue: immediate keeps go out in the call, grace decisions from the
// timer, and the rest at shutdown. Every path reports its telemetry.
func TestProcessorPaths(t *testing.T) {
	tt := newTelemetry(t)
	cfg := createDefaultConfig().(*Config)
	cfg.Grace = 50 * time.Millisecond
	cfg.ModelCallWait = 200 * time.Millisecond
	cfg.DefaultPercentage = 0
	cfg.Rules = []RuleConfig{{Name: "math", Attribute: "category.name", Values: []string{"math"}, Percentage: 100}}
	sink := new(consumertest.TracesSink)
	p := startProcessor(t, tt, cfg, sink)
	ctx := context.Background()

	// The processor takes ownership of what it consumes: count spans before handing them over.
	// An era C block shows only by what does not follow: its spans leave at once, its root
	// with the verdict once model_call_wait says no model call can still come.
	blocked := simulate(routerconv.EraC, routersim.OutcomeJailbreak, "other", 1)
	nBlocked := blocked.SpanCount()
	require.NoError(t, p.ConsumeTraces(ctx, blocked.Traces))
	require.Equal(t, nBlocked-1, sink.SpanCount(), "a block leaves in the same call, but for its root")
	require.Eventually(t, func() bool { return sink.SpanCount() == nBlocked }, 5*time.Second, 10*time.Millisecond)
	root := lastRoot(t, sink)
	assert.Equal(t, "blocked", root.Attributes().AsRaw()["security.action"])

	// Another service's trace, whose root does not tell whether more will come, waits for its
	// grace period.
	other := simulate(routerconv.EraD, routersim.OutcomeOK, "math", 2)
	other.Traces.ResourceSpans().At(0).Resource().Attributes().PutStr("service.name", "checkout")
	other.Traces.ResourceSpans().At(0).ScopeSpans().At(0).Scope().SetName("checkout")
	for _, s := range other.Spans().All() {
		s.SetName("work")
		s.Attributes().PutStr("category.name", "math")
	}
	nOther := other.SpanCount()
	require.NoError(t, p.ConsumeTraces(ctx, other.Traces))
	require.Equal(t, nBlocked, sink.SpanCount(), "a trace not known complete waits for its grace period")
	require.Eventually(t, func() bool { return sink.SpanCount() == nBlocked+nOther },
		5*time.Second, 10*time.Millisecond, "the timer ends the grace period")

	pending := simulate(routerconv.EraC, routersim.OutcomeOK, "math", 3) // era D has no category.name
	rootless := ptrace.NewTraces()
	pending.Traces.CopyTo(rootless)
	rootless.ResourceSpans().At(0).ScopeSpans().At(0).Spans().RemoveIf(func(s ptrace.Span) bool { return routerconv.IsLocalRoot(s) })
	nPending := rootless.SpanCount()
	require.NoError(t, p.ConsumeTraces(ctx, rootless))
	before := sink.SpanCount()
	require.NoError(t, p.Shutdown(ctx))
	require.Equal(t, before+nPending, sink.SpanCount(), "shutdown flushes what is pending")

	traces := func(reason, trigger string) metricdata.DataPoint[int64] {
		return metricdata.DataPoint[int64]{Value: 1, Attributes: attribute.NewSet(
			attribute.String("decision", "kept"), attribute.String("reason", reason), attribute.String("trigger", trigger))}
	}
	metadatatest.AssertEqualProcessorVsrSamplerTracesDecided(t, tt, []metricdata.DataPoint[int64]{
		traces("blocked", "immediate"), traces("rule:math", "grace"), traces("rule:math", "shutdown"),
	}, metricdatatest.IgnoreTimestamp())
	wait, err := tt.GetMetric("otelcol_processor_vsr_sampler_root_wait")
	require.NoError(t, err)
	waits := map[string]uint64{}
	for _, dp := range wait.Data.(metricdata.Histogram[float64]).DataPoints {
		trigger, _ := dp.Attributes.Value("trigger")
		waits[trigger.AsString()] += dp.Count
		if trigger.AsString() == "timeout" {
			least, _ := dp.Min.Value()
			assert.GreaterOrEqual(t, least, float64(cfg.ModelCallWait.Milliseconds()), "the block's root waited out model_call_wait")
		}
	}
	assert.Equal(t, map[string]uint64{"timeout": 1}, waits, "only the block's root waited")
}

func TestBufferedGauges(t *testing.T) {
	tt := newTelemetry(t)
	sink := new(consumertest.TracesSink)
	p := startProcessor(t, tt, createDefaultConfig().(*Config), sink)
	tr := simulate(routerconv.EraC, routersim.OutcomeOK, "math", 4)
	first := ptrace.NewTraces()
	tr.Traces.CopyTo(first)
	first.ResourceSpans().At(0).ScopeSpans().At(0).Spans().RemoveIf(func(s ptrace.Span) bool {
		return s.Name() == "semantic_router.upstream.request"
	})
	require.NoError(t, p.ConsumeTraces(context.Background(), first))
	m, err := tt.GetMetric("otelcol_processor_vsr_sampler_buffered_traces")
	require.NoError(t, err)
	assert.Equal(t, int64(1), m.Data.(metricdata.Gauge[int64]).DataPoints[0].Value)
	m, err = tt.GetMetric("otelcol_processor_vsr_sampler_buffered_bytes")
	require.NoError(t, err)
	assert.Positive(t, m.Data.(metricdata.Gauge[int64]).DataPoints[0].Value)
	require.NoError(t, p.Shutdown(context.Background()))
}

// With block_on_overflow, a full buffer holds a new trace's sender back, then refuses the batch
// with a retryable error, early enough for the sender to retry, instead of deciding early.
func TestBlockOnOverflow(t *testing.T) {
	tt := newTelemetry(t)
	cfg := createDefaultConfig().(*Config)
	cfg.BlockOnOverflow = true
	cfg.MaxBufferBytes = 2000
	cfg.MaxTraceBytes = 2000
	cfg.Shards = 1
	sink := new(consumertest.TracesSink)
	p := startProcessor(t, tt, cfg, sink)
	rootless := func(seed uint64) ptrace.Traces {
		tr := simulate(routerconv.EraD, routersim.OutcomeOK, "math", seed)
		tr.Spans().RemoveIf(func(s ptrace.Span) bool { return routerconv.IsLocalRoot(s) })
		return tr.Traces
	}
	// One trace waiting for its root fills the 2000-byte budget.
	require.NoError(t, p.ConsumeTraces(context.Background(), rootless(1)))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	require.ErrorIs(t, p.ConsumeTraces(ctx, rootless(3)), errBufferFull)
	require.NoError(t, ctx.Err(), "refused while the sender has time left to retry")
	metadatatest.AssertEqualProcessorVsrSamplerOverflowRefusals(t, tt,
		[]metricdata.DataPoint[int64]{{Value: 1}}, metricdatatest.IgnoreTimestamp())
	require.NoError(t, p.Shutdown(context.Background()))
}

// Over max_buffer_bytes, spans wait on disk for their decision; the files go at shutdown. A
// spill that refuses is counted and the budget is kept by deciding early.
func TestSpill(t *testing.T) {
	for _, tc := range []struct {
		name     string
		maxBytes int64
	}{{"room", 1 << 30}, {"full", 1}} {
		t.Run(tc.name, func(t *testing.T) {
			tt := newTelemetry(t)
			cfg := createDefaultConfig().(*Config)
			cfg.MaxBufferBytes, cfg.MaxTraceBytes, cfg.Shards = 20_000, 20_000, 1
			cfg.Spill = SpillConfig{Directory: t.TempDir(), MaxBytes: tc.maxBytes}
			sink := new(consumertest.TracesSink)
			p := startProcessor(t, tt, cfg, sink)
			for seed := range uint64(30) {
				tr := simulate(routerconv.EraD, routersim.OutcomeOK, "math", seed)
				tr.Spans().RemoveIf(func(s ptrace.Span) bool { return routerconv.IsLocalRoot(s) })
				require.NoError(t, p.ConsumeTraces(context.Background(), tr.Traces))
			}
			segments, err := filepath.Glob(filepath.Join(cfg.Spill.Directory, "vsr_sampler-*", "*.spill"))
			require.NoError(t, err)
			m, err := tt.GetMetric("otelcol_processor_vsr_sampler_spill_bytes")
			require.NoError(t, err)
			onDisk := m.Data.(metricdata.Gauge[int64]).DataPoints[0].Value
			m, err = tt.GetMetric("otelcol_processor_vsr_sampler_spill_failures")
			require.NoError(t, err)
			failures := m.Data.(metricdata.Sum[int64]).DataPoints[0].Value
			if tc.name == "room" {
				assert.NotEmpty(t, segments)
				assert.Positive(t, onDisk)
				assert.Zero(t, failures)
			} else {
				assert.Zero(t, onDisk)
				assert.Positive(t, failures)
			}
			require.NoError(t, p.Shutdown(context.Background()))
			segments, err = filepath.Glob(filepath.Join(cfg.Spill.Directory, "*", "*"))
			require.NoError(t, err)
			assert.Empty(t, segments)
		})
	}
}

// lastRoot is the last local root the sink received.
func lastRoot(t *testing.T, sink *consumertest.TracesSink) ptrace.Span {
	t.Helper()
	var root ptrace.Span
	found := false
	for _, td := range sink.AllTraces() {
		for _, rs := range td.ResourceSpans().All() {
			for _, ss := range rs.ScopeSpans().All() {
				for _, s := range ss.Spans().All() {
					if routerconv.IsLocalRoot(s) {
						root, found = s, true
					}
				}
			}
		}
	}
	require.True(t, found, "no root received")
	return root
}

// Over budget, block_on_overflow takes at once the spans that continue traces it holds: here
// the root that completes the trace filling the budget. Holding it back with the rest of its
// batch would keep that trace, and the budget, waiting for the sender's retry.
func TestBlockOnOverflowTakesWhatCompletesHeldTraces(t *testing.T) {
	p, _, sink := startBlocking(t)
	held := simulate(routerconv.EraD, routersim.OutcomeOK, "math", 1)
	root, rest := splitRoot(held.Traces)
	require.NoError(t, p.ConsumeTraces(context.Background(), rest))

	batch := root
	_, fresh := splitRoot(simulate(routerconv.EraD, routersim.OutcomeOK, "math", 2).Traces)
	fresh.ResourceSpans().MoveAndAppendTo(batch.ResourceSpans())
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	require.NoError(t, p.ConsumeTraces(ctx, batch), "the root completes the held trace, which makes room")
	assert.Equal(t, held.SpanCount(), spansOf(sink, held.ID), "the held trace left whole")
	require.NoError(t, p.Shutdown(context.Background()))
}

// A batch refused at its deadline comes back whole from its sender: the spans taken from it
// before are not taken twice.
func TestBlockOnOverflowRetryTakesOnlyTheRest(t *testing.T) {
	p, tt, sink := startBlocking(t)
	held := simulate(routerconv.EraD, routersim.OutcomeOK, "math", 1)
	root, rest := splitRoot(held.Traces)
	// The router's last child of the held trace comes in the batch that is refused.
	var last pcommon.SpanID
	for _, span := range rest.ResourceSpans().At(0).ScopeSpans().At(0).Spans().All() {
		last = span.SpanID()
	}
	child := filter(rest, func(s ptrace.Span) bool { return s.SpanID() == last })
	rest = filter(rest, func(s ptrace.Span) bool { return s.SpanID() != last })
	require.NoError(t, p.ConsumeTraces(context.Background(), rest))

	newTrace := simulate(routerconv.EraD, routersim.OutcomeOK, "math", 2)
	batch := filter(newTrace.Traces, func(ptrace.Span) bool { return true })
	child.ResourceSpans().MoveAndAppendTo(batch.ResourceSpans())
	retry := filter(batch, func(ptrace.Span) bool { return true })

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, p.ConsumeTraces(ctx, batch), errBufferFull, "the new trace finds no room")
	require.NoError(t, p.ConsumeTraces(context.Background(), root), "the held trace completes and leaves")
	require.NoError(t, p.ConsumeTraces(context.Background(), retry))
	require.NoError(t, p.Shutdown(context.Background()))
	assert.Equal(t, held.SpanCount(), spansOf(sink, held.ID), "the child taken before is not sent twice")
	assert.Equal(t, newTrace.SpanCount(), spansOf(sink, newTrace.ID))
	metadatatest.AssertEqualProcessorVsrSamplerRetriedSpansSkipped(t, tt,
		[]metricdata.DataPoint[int64]{{Value: 1}}, metricdatatest.IgnoreTimestamp())
}

// startBlocking starts a processor that keeps every trace, with block_on_overflow and a budget
// one waiting trace fills.
func startBlocking(t *testing.T) (processor.Traces, *componenttest.Telemetry, *consumertest.TracesSink) {
	cfg := createDefaultConfig().(*Config)
	cfg.DefaultPercentage = 100
	cfg.BlockOnOverflow = true
	cfg.MaxBufferBytes = 2000
	cfg.MaxTraceBytes = 2000
	cfg.Shards = 1
	tt := newTelemetry(t)
	sink := new(consumertest.TracesSink)
	return startProcessor(t, tt, cfg, sink), tt, sink
}

// splitRoot copies td's root span and the rest into two batches.
func splitRoot(td ptrace.Traces) (root, rest ptrace.Traces) {
	isRoot := func(s ptrace.Span) bool { return s.ParentSpanID().IsEmpty() }
	return filter(td, isRoot), filter(td, func(s ptrace.Span) bool { return !isRoot(s) })
}

// filter copies the spans of td that keep accepts.
func filter(td ptrace.Traces, keep func(ptrace.Span) bool) ptrace.Traces {
	out := ptrace.NewTraces()
	td.CopyTo(out)
	out.ResourceSpans().RemoveIf(func(rs ptrace.ResourceSpans) bool {
		rs.ScopeSpans().RemoveIf(func(ss ptrace.ScopeSpans) bool {
			ss.Spans().RemoveIf(func(s ptrace.Span) bool { return !keep(s) })
			return ss.Spans().Len() == 0
		})
		return rs.ScopeSpans().Len() == 0
	})
	return out
}

func spansOf(sink *consumertest.TracesSink, id pcommon.TraceID) int {
	n := 0
	for _, td := range sink.AllTraces() {
		for _, rs := range td.ResourceSpans().All() {
			for _, ss := range rs.ScopeSpans().All() {
				for _, span := range ss.Spans().All() {
					if span.TraceID() == id {
						n++
					}
				}
			}
		}
	}
	return n
}
