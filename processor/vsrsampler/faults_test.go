package vsrsampler

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	"go.uber.org/zap"
	zapobserver "go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/metadatatest"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/sampler"
)

// refusing is a next consumer that refuses while told to, as an exporter whose sending queue
// is full, and records what it accepts.
type refusing struct {
	consumertest.TracesSink
	refuse    atomic.Bool
	permanent atomic.Bool
}

var errQueueFull = errors.New("sending queue is full")

func (r *refusing) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	switch {
	case r.permanent.Load():
		return consumererror.NewPermanent(errors.New("rejected"))
	case r.refuse.Load():
		return errQueueFull
	}
	return r.TracesSink.ConsumeTraces(ctx, td)
}

func (r *refusing) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }

// splitTrace is a kept era C request in two batches: all but its model call, then the call.
func splitTrace(seed uint64) (first, last ptrace.Traces, spans int) {
	tr := simulate(routerconv.EraC, routersim.OutcomeOK, "math", seed)
	n := tr.SpanCount()
	first, last = ptrace.NewTraces(), ptrace.NewTraces()
	tr.Traces.CopyTo(first)
	tr.Traces.CopyTo(last)
	first.ResourceSpans().At(0).ScopeSpans().At(0).Spans().RemoveIf(func(s ptrace.Span) bool { return s.Name() == "semantic_router.upstream.request" })
	last.ResourceSpans().At(0).ScopeSpans().At(0).Spans().RemoveIf(func(s ptrace.Span) bool { return s.Name() != "semantic_router.upstream.request" })
	return first, last, n
}

func keepMath(cfg *Config) {
	cfg.DefaultPercentage = 0
	cfg.Rules = []RuleConfig{{Name: "math", Attribute: "category.name", Values: []string{"math"}, Percentage: 100}}
}

// Spans parked from earlier batches leave in a call of their own. When the next component
// refuses (a full sending queue), the batch's own spans go back to its sender, who retries,
// and the earlier ones are held and redelivered: nothing is lost, nothing counted lost.
func TestReleasedSpansSurviveARefusingNextComponent(t *testing.T) {
	tt := newTelemetry(t)
	cfg := createDefaultConfig().(*Config)
	keepMath(cfg)
	next := &refusing{}
	p, err := NewFactory().CreateTraces(context.Background(), metadatatest.NewSettings(tt), cfg, next)
	require.NoError(t, err)
	require.NoError(t, p.Start(context.Background(), componenttest.NewNopHost()))
	ctx := context.Background()

	first, last, n := splitTrace(1)
	require.NoError(t, p.ConsumeTraces(ctx, first))
	require.Zero(t, next.SpanCount(), "waiting for the model call")
	next.refuse.Store(true)
	retry := ptrace.NewTraces()
	last.CopyTo(retry)
	require.ErrorIs(t, p.ConsumeTraces(ctx, last), errQueueFull, "the sender learns its batch was refused")
	next.refuse.Store(false)
	require.NoError(t, p.ConsumeTraces(ctx, retry), "the sender's retry")
	require.Eventually(t, func() bool { return next.SpanCount() == n }, 5*time.Second, 10*time.Millisecond,
		"the spans released with the refused batch are redelivered")
	seen := map[string]int{}
	for _, td := range next.AllTraces() {
		for _, rs := range td.ResourceSpans().All() {
			for _, s := range rs.ScopeSpans().At(0).Spans().All() {
				seen[s.SpanID().String()]++
			}
		}
	}
	assert.Len(t, seen, n, "each span once")
	require.NoError(t, p.Shutdown(ctx))
	metadatatest.AssertEqualProcessorVsrSamplerReleaseFailures(t, tt,
		[]metricdata.DataPoint[int64]{{Value: 0}}, metricdatatest.IgnoreTimestamp())
}

// What the next component refuses for good is lost, and counted.
func TestPermanentRefusalIsCounted(t *testing.T) {
	tt := newTelemetry(t)
	cfg := createDefaultConfig().(*Config)
	keepMath(cfg)
	next := &refusing{}
	p, err := NewFactory().CreateTraces(context.Background(), metadatatest.NewSettings(tt), cfg, next)
	require.NoError(t, err)
	require.NoError(t, p.Start(context.Background(), componenttest.NewNopHost()))
	first, last, n := splitTrace(2)
	require.NoError(t, p.ConsumeTraces(context.Background(), first))
	next.permanent.Store(true)
	require.Error(t, p.ConsumeTraces(context.Background(), last))
	require.NoError(t, p.Shutdown(context.Background()))
	metadatatest.AssertEqualProcessorVsrSamplerReleaseFailures(t, tt,
		[]metricdata.DataPoint[int64]{{Value: int64(n - 1)}}, metricdatatest.IgnoreTimestamp())
}

// blocking is a next consumer that waits for its context to end.
type blocking struct{ calls atomic.Int64 }

func (b *blocking) ConsumeTraces(ctx context.Context, _ ptrace.Traces) error {
	b.calls.Add(1)
	<-ctx.Done()
	return ctx.Err()
}

func (b *blocking) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }

// Shutdown honours its context: a next component that never answers, even to the timer's
// release, delays it only until the deadline, and what it did not take is counted lost.
func TestShutdownHonoursItsContext(t *testing.T) {
	tt := newTelemetry(t)
	cfg := createDefaultConfig().(*Config)
	cfg.Grace = 50 * time.Millisecond
	keepMath(cfg)
	next := &blocking{}
	p, err := NewFactory().CreateTraces(context.Background(), metadatatest.NewSettings(tt), cfg, next)
	require.NoError(t, err)
	require.NoError(t, p.Start(context.Background(), componenttest.NewNopHost()))
	// Another service's trace: the timer decides it after the grace period and releases it.
	other := simulate(routerconv.EraD, routersim.OutcomeOK, "math", 3)
	other.Traces.ResourceSpans().At(0).Resource().Attributes().PutStr("service.name", "checkout")
	other.Traces.ResourceSpans().At(0).ScopeSpans().At(0).Scope().SetName("checkout")
	for _, s := range other.Spans().All() {
		s.SetName("work")
		s.Attributes().PutStr("category.name", "math")
	}
	require.NoError(t, p.ConsumeTraces(context.Background(), other.Traces))
	require.Eventually(t, func() bool { return next.calls.Load() > 0 }, 5*time.Second, 10*time.Millisecond,
		"the timer's release is stuck in the next component")

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = p.Shutdown(ctx)
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Error(t, err)
	assert.Positive(t, next.calls.Load())
	lost, err := tt.GetMetric("otelcol_processor_vsr_sampler_release_failures")
	require.NoError(t, err)
	assert.Positive(t, lost.Data.(metricdata.Sum[int64]).DataPoints[0].Value, "counted")
}

// Shutdown is safe without a start and when called twice.
func TestShutdownTwiceAndWithoutStart(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	never, err := NewFactory().CreateTraces(context.Background(), metadatatest.NewSettings(newTelemetry(t)), cfg, new(consumertest.TracesSink))
	require.NoError(t, err)
	require.NoError(t, never.Shutdown(context.Background()))
	require.NoError(t, never.Shutdown(context.Background()))

	p := startProcessor(t, newTelemetry(t), cfg, new(consumertest.TracesSink))
	require.NoError(t, p.Shutdown(context.Background()))
	require.NoError(t, p.Shutdown(context.Background()))
}

// Two pipelines using one vsr_sampler make two instances with the same ID: configured with
// one spill directory, each gets its own, and neither removes the other's files.
func TestTwoInstancesShareNoSpillFiles(t *testing.T) {
	dir := t.TempDir()
	cfg := createDefaultConfig().(*Config)
	keepMath(cfg)
	cfg.MaxBufferBytes, cfg.MaxTraceBytes, cfg.Shards = 16_000, 16_000, 1
	cfg.Spill = SpillConfig{Directory: dir, MaxBytes: 1 << 30}
	var sinks [2]*consumertest.TracesSink
	var procs [2]interface {
		ConsumeTraces(context.Context, ptrace.Traces) error
		Shutdown(context.Context) error
	}
	firsts := make([][]ptrace.Traces, 2)
	lasts := make([][]ptrace.Traces, 2)
	total := [2]int{}
	for i := range procs {
		sinks[i] = new(consumertest.TracesSink)
		procs[i] = startProcessor(t, newTelemetry(t), cfg, sinks[i])
		for seed := range uint64(20) {
			first, last, n := splitTrace(100*uint64(i) + seed)
			firsts[i], lasts[i] = append(firsts[i], first), append(lasts[i], last)
			total[i] += n
		}
	}
	var wg sync.WaitGroup
	for i := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, td := range firsts[i] {
				assert.NoError(t, procs[i].ConsumeTraces(context.Background(), td))
			}
		}()
	}
	wg.Wait()
	subdirs, err := filepath.Glob(filepath.Join(dir, "vsr_sampler-*"))
	require.NoError(t, err)
	require.Len(t, subdirs, 2, "one directory each")
	for _, d := range subdirs {
		segments, _ := filepath.Glob(filepath.Join(d, "*.spill"))
		assert.NotEmpty(t, segments, "both spilled")
	}
	require.NoError(t, procs[0].Shutdown(context.Background()))
	for _, td := range lasts[1] {
		require.NoError(t, procs[1].ConsumeTraces(context.Background(), td))
	}
	assert.Equal(t, total[1], sinks[1].SpanCount(), "the second instance's spilled spans survive the first's shutdown")
	require.NoError(t, procs[1].Shutdown(context.Background()))
	left, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, left)
}

// memStorage is a storage extension in memory, surviving its clients as a file would.
type memStorage struct {
	component.StartFunc
	component.ShutdownFunc
	data map[string][]byte
}

func (m *memStorage) GetClient(context.Context, component.Kind, component.ID, string) (storage.Client, error) {
	return &memClient{m}, nil
}

type memClient struct{ m *memStorage }

func (c *memClient) Get(_ context.Context, key string) ([]byte, error) { return c.m.data[key], nil }
func (c *memClient) Set(_ context.Context, key string, v []byte) error {
	c.m.data[key] = v
	return nil
}
func (c *memClient) Delete(_ context.Context, key string) error {
	delete(c.m.data, key)
	return nil
}
func (c *memClient) Batch(context.Context, ...*storage.Operation) error { return nil }
func (c *memClient) Close(context.Context) error                        { return nil }

type hostWith map[component.ID]component.Component

func (h hostWith) GetExtensions() map[component.ID]component.Component { return h }

// With storage, a restart hands the traces in flight over: nothing of them leaves at shutdown,
// the next run takes them in again with their rest, and decides each once, as if there had
// been no restart: the error trace whole, the other by the rates (here 0 %), not kept blind.
func TestRestartHandsTracesInFlightOver(t *testing.T) {
	storageID := component.MustNewIDWithName("file_storage", "queue")
	host := hostWith{storageID: &memStorage{data: map[string][]byte{}}}
	cfg := createDefaultConfig().(*Config)
	cfg.DefaultPercentage = 0
	cfg.Storage = &storageID
	split := func(tr routersim.Trace) (first, rest ptrace.Traces) {
		first, rest = ptrace.NewTraces(), ptrace.NewTraces()
		tr.Traces.CopyTo(first)
		tr.Traces.CopyTo(rest)
		first.ResourceSpans().At(0).ScopeSpans().At(0).Spans().RemoveIf(func(s ptrace.Span) bool { return s.Name() != "semantic_router.signal.evaluation" })
		rest.ResourceSpans().At(0).ScopeSpans().At(0).Spans().RemoveIf(func(s ptrace.Span) bool { return s.Name() == "semantic_router.signal.evaluation" })
		return first, rest
	}
	failing := simulate(routerconv.EraD, routersim.OutcomeError, "math", 7)
	fine := simulate(routerconv.EraD, routersim.OutcomeOK, "math", 8)
	failingFirst, failingRest := split(failing)
	fineFirst, fineRest := split(fine)

	sink := new(consumertest.TracesSink)
	run := func(batches ...ptrace.Traces) {
		p, err := NewFactory().CreateTraces(context.Background(), metadatatest.NewSettings(newTelemetry(t)), cfg, sink)
		require.NoError(t, err)
		require.NoError(t, p.Start(context.Background(), host))
		for _, td := range batches {
			require.NoError(t, p.ConsumeTraces(context.Background(), td))
		}
		require.NoError(t, p.Shutdown(context.Background()))
	}
	run(failingFirst, fineFirst)
	require.Zero(t, sink.SpanCount(), "undecided at shutdown: handed over, not kept blind")
	run(failingRest, fineRest)
	assert.Equal(t, failing.SpanCount(), sink.SpanCount(), "the error trace whole, the other dropped at 0 %")
	run()
	assert.Equal(t, failing.SpanCount(), sink.SpanCount(), "handed over once")
}

// The failure counters exist at 0 from the start, so that an alert's increase() sees the first
// failure.
func TestFailureCountersStartAtZero(t *testing.T) {
	tt := newTelemetry(t)
	p, err := NewFactory().CreateTraces(context.Background(), metadatatest.NewSettings(tt), createDefaultConfig(), consumertest.NewNop())
	require.NoError(t, err)
	require.NoError(t, p.Start(context.Background(), componenttest.NewNopHost()))
	zero := []metricdata.DataPoint[int64]{{Value: 0}}
	metadatatest.AssertEqualProcessorVsrSamplerReleaseFailures(t, tt, zero, metricdatatest.IgnoreTimestamp())
	metadatatest.AssertEqualProcessorVsrSamplerSpillFailures(t, tt, zero, metricdatatest.IgnoreTimestamp())
	metadatatest.AssertEqualProcessorVsrSamplerRedeliveredSpans(t, tt, zero, metricdatatest.IgnoreTimestamp())
	late, err := tt.GetMetric("otelcol_processor_vsr_sampler_late_spans")
	require.NoError(t, err)
	assert.Len(t, late.Data.(metricdata.Sum[int64]).DataPoints, int(sampler.NumLateOutcomes))
	require.NoError(t, p.Shutdown(context.Background()))
}

// The shutdown log counts what this run decided, the traces still open included: the
// counters a scrape reads die with the process, after its last decisions.
func TestShutdownLogsWhatItDecided(t *testing.T) {
	core, logs := zapobserver.New(zap.InfoLevel)
	set := metadatatest.NewSettings(newTelemetry(t))
	set.Logger = zap.New(core)
	cfg := createDefaultConfig().(*Config)
	cfg.Grace = time.Hour
	p, err := NewFactory().CreateTraces(context.Background(), set, cfg, consumertest.NewNop())
	require.NoError(t, err)
	require.NoError(t, p.Start(context.Background(), componenttest.NewNopHost()))
	open, _, _ := splitTrace(1)
	require.NoError(t, p.ConsumeTraces(context.Background(), open))
	require.NoError(t, p.ConsumeTraces(context.Background(), simulate(routerconv.EraD, routersim.OutcomeError, "math", 2).Traces))
	require.NoError(t, p.Shutdown(context.Background()))
	stopped := logs.FilterMessage("vsr_sampler stopped").All()
	require.Len(t, stopped, 1)
	fields := stopped[0].ContextMap()
	assert.Equal(t, int64(2), fields["traces_decided"], "the error at once, the open trace at shutdown")
	assert.Equal(t, int64(1), fields["decided_at_shutdown"])
}

// Handed-over spans that cannot be read at the start are lost: counted in release_failures,
// and removed, so that the next start does not count them again.
func TestUnreadableHandoverIsCounted(t *testing.T) {
	storageID := component.MustNewIDWithName("file_storage", "queue")
	store := &memStorage{data: map[string][]byte{openKey: []byte("\xff not OTLP")}}
	cfg := createDefaultConfig().(*Config)
	cfg.Storage = &storageID
	tt := newTelemetry(t)
	p, err := NewFactory().CreateTraces(context.Background(), metadatatest.NewSettings(tt), cfg, consumertest.NewNop())
	require.NoError(t, err)
	require.NoError(t, p.Start(context.Background(), hostWith{storageID: store}))
	metadatatest.AssertEqualProcessorVsrSamplerReleaseFailures(t, tt, []metricdata.DataPoint[int64]{{Value: 1}}, metricdatatest.IgnoreTimestamp())
	require.NoError(t, p.Shutdown(context.Background()))
	assert.NotContains(t, store.data, openKey)
}

// With storage, a restart hands the roots awaiting their model calls over: the PII-routed
// request's call that comes to the next run closes it as allowed, and the block's root
// leaves blocked when that run's wait runs out; at shutdown neither root left.
func TestRestartHandsWaitingRootsOver(t *testing.T) {
	storageID := component.MustNewIDWithName("file_storage", "queue")
	store := &memStorage{data: map[string][]byte{}}
	cfg := createDefaultConfig().(*Config)
	cfg.Grace = 50 * time.Millisecond
	cfg.DefaultPercentage = 0
	cfg.Storage = &storageID
	routed := simulate(routerconv.EraC, routersim.OutcomePIIRouted, "math", 9)
	blocked := simulate(routerconv.EraC, routersim.OutcomePII, "math", 10)
	routedFirst, call := ptrace.NewTraces(), ptrace.NewTraces()
	routed.Traces.CopyTo(routedFirst)
	routed.Traces.CopyTo(call)
	routedFirst.ResourceSpans().At(0).ScopeSpans().At(0).Spans().RemoveIf(func(s ptrace.Span) bool { return s.Name() == "semantic_router.upstream.request" })
	call.ResourceSpans().At(0).ScopeSpans().At(0).Spans().RemoveIf(func(s ptrace.Span) bool { return s.Name() != "semantic_router.upstream.request" })
	nRouted, nBlocked := routed.SpanCount(), blocked.SpanCount()

	sink := new(consumertest.TracesSink)
	start := func() processor.Traces {
		p, err := NewFactory().CreateTraces(context.Background(), metadatatest.NewSettings(newTelemetry(t)), cfg, sink)
		require.NoError(t, err)
		require.NoError(t, p.Start(context.Background(), hostWith{storageID: store}))
		return p
	}
	p := start()
	require.NoError(t, p.ConsumeTraces(context.Background(), routedFirst))
	require.NoError(t, p.ConsumeTraces(context.Background(), blocked.Traces))
	require.NoError(t, p.Shutdown(context.Background()))
	require.Equal(t, nRouted-2+nBlocked-1, sink.SpanCount(), "all but the roots and the model call left")
	require.Contains(t, store.data, waitingKey)

	cfg.ModelCallWait = 300 * time.Millisecond
	p = start()
	require.NotContains(t, store.data, waitingKey, "taken in once")
	require.NoError(t, p.ConsumeTraces(context.Background(), call))
	require.Eventually(t, func() bool { return sink.SpanCount() == nRouted+nBlocked }, 5*time.Second, 10*time.Millisecond,
		"the model call closes the routed request, the wait the block")
	require.NoError(t, p.Shutdown(context.Background()))
	verdicts := map[string]any{}
	for _, td := range sink.AllTraces() {
		for _, rs := range td.ResourceSpans().All() {
			for _, s := range rs.ScopeSpans().At(0).Spans().All() {
				if routerconv.IsLocalRoot(s) {
					verdicts[s.TraceID().String()] = s.Attributes().AsRaw()["security.action"]
				}
			}
		}
	}
	assert.Equal(t, map[string]any{routed.ID.String(): "allowed", blocked.ID.String(): "blocked"}, verdicts)
}
