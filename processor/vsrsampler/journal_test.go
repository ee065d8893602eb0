package vsrsampler

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor/processorhelper"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/metadatatest"
)

// journaledRun starts a vsr_sampler on the journal in dir, sending to sink.
func journaledRun(t *testing.T, dir string, sink *consumertest.TracesSink) *samplerProcessor {
	cfg := createDefaultConfig().(*Config)
	cfg.DefaultPercentage = 0
	cfg.Journal.Directory = dir
	p, err := newSamplerProcessor(metadatatest.NewSettings(newTelemetry(t)), cfg, sink)
	require.NoError(t, err)
	require.NoError(t, p.start(context.Background(), componenttest.NewNopHost()))
	return p
}

// kill stops a run as SIGKILL does: no shutdown, nothing flushed; only what the journal handed
// to the kernel stays.
func kill(t *testing.T, p *samplerProcessor) {
	p.cancelRun()
	<-p.done
	require.NoError(t, p.journal.Abandon())
	p.telemetry.Shutdown()
}

// send is what processorhelper does with a batch: what passes goes to the next component.
func send(t *testing.T, p *samplerProcessor, sink *consumertest.TracesSink, td ptrace.Traces) {
	out, err := p.processTraces(context.Background(), td)
	if errors.Is(err, processorhelper.ErrSkipProcessingData) {
		return
	}
	require.NoError(t, err)
	require.NoError(t, sink.ConsumeTraces(context.Background(), out))
}

// The spans of an undecided trace, acknowledged to the router, survive a kill: the next run
// takes them back and keeps the trace whole when its error comes. Without the journal they
// were only in memory.
func TestKilledRunLosesNoAcknowledgedSpan(t *testing.T) {
	dir := t.TempDir()
	sink := new(consumertest.TracesSink)
	failing := simulate(routerconv.EraD, routersim.OutcomeError, "math", 7)
	fine := simulate(routerconv.EraD, routersim.OutcomeOK, "math", 8)
	failingFirst, failingRest := splitErrorLast(failing)
	fineFirst, fineRest := splitErrorLast(fine)

	p := journaledRun(t, dir, sink)
	send(t, p, sink, failingFirst)
	send(t, p, sink, fineFirst)
	require.Zero(t, sink.SpanCount(), "both undecided")
	kill(t, p)

	p = journaledRun(t, dir, sink)
	send(t, p, sink, failingRest)
	send(t, p, sink, fineRest)
	require.NoError(t, p.shutdown(context.Background()))
	assert.Equal(t, failing.SpanCount(), sink.SpanCount(), "the error trace whole, the other dropped at 0 %")
	assert.Equal(t, failing.SpanCount(), spansOf(sink, failing.ID))
}

// A SIGTERM with the journal leaves the undecided traces in it, not in storage: the next run
// takes them back, once.
func TestShutdownLeavesUndecidedTracesInTheJournal(t *testing.T) {
	dir := t.TempDir()
	sink := new(consumertest.TracesSink)
	failing := simulate(routerconv.EraD, routersim.OutcomeError, "math", 9)
	first, rest := splitErrorLast(failing)

	p := journaledRun(t, dir, sink)
	send(t, p, sink, first)
	require.NoError(t, p.shutdown(context.Background()))
	require.Zero(t, sink.SpanCount(), "undecided at shutdown: left for the next run, not kept blind")

	p = journaledRun(t, dir, sink)
	send(t, p, sink, rest)
	require.NoError(t, p.shutdown(context.Background()))
	assert.Equal(t, failing.SpanCount(), sink.SpanCount())

	p = journaledRun(t, dir, sink)
	require.NoError(t, p.shutdown(context.Background()))
	assert.Equal(t, failing.SpanCount(), sink.SpanCount(), "taken back once")
}

// splitErrorLast splits a trace into its spans without an error or block signal, and the rest.
func splitErrorLast(tr routersim.Trace) (first, rest ptrace.Traces) {
	first, rest = ptrace.NewTraces(), ptrace.NewTraces()
	tr.Traces.CopyTo(first)
	tr.Traces.CopyTo(rest)
	signal := func(s ptrace.Span) bool {
		return routerconv.Classify(s, true).Signals&routerconv.SigError != 0 || routerconv.IsLocalRoot(s)
	}
	first.ResourceSpans().At(0).ScopeSpans().At(0).Spans().RemoveIf(signal)
	rest.ResourceSpans().At(0).ScopeSpans().At(0).Spans().RemoveIf(func(s ptrace.Span) bool { return !signal(s) })
	return first, rest
}
