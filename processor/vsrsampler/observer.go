package vsrsampler

import (
	"context"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/otelcol-vsr/otelcol-vsr/internal/requestmetrics"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/metadata"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/sampler"
)

// observer turns the core's events into the processor's telemetry. Attribute sets are built
// once: recording allocates nothing.
type observer struct {
	tb     *metadata.TelemetryBuilder
	logger *zap.Logger
	hub    *requestmetrics.Hub
	// spillWarned, lostWarned, journalWarned: the first failure of each kind is logged, the
	// rest counted.
	spillWarned, lostWarned, journalWarned atomic.Bool
	// reasons are the reason labels; reasonAt[r] is where reason r's start (rules have one each).
	reasons  []string
	reasonAt [sampler.NumReasons]int
	traces   [2][][sampler.NumTriggers]metric.AddOption
	spans    [2][]metric.AddOption
	latency  [sampler.NumTriggers]metric.RecordOption
	late     [sampler.NumLateOutcomes]metric.AddOption
	parts    []metric.ObserveOption
	// decided counts this run's decisions by trigger, for the shutdown log: the counters a
	// scrape reads die with the process, and the last decisions are made at shutdown.
	decided [sampler.NumTriggers]atomic.Int64
}

func newObserver(tb *metadata.TelemetryBuilder, rules []RuleConfig, logger *zap.Logger, hub *requestmetrics.Hub) *observer {
	o := &observer{tb: tb, logger: logger, hub: hub}
	for r := range sampler.NumReasons {
		o.reasonAt[r] = len(o.reasons)
		if r != sampler.ReasonRule {
			o.reasons = append(o.reasons, r.String())
			continue
		}
		for _, rule := range rules {
			o.reasons = append(o.reasons, "rule:"+rule.Name)
		}
	}
	for d, decision := range []string{"dropped", "kept"} {
		o.traces[d] = make([][sampler.NumTriggers]metric.AddOption, len(o.reasons))
		o.spans[d] = make([]metric.AddOption, len(o.reasons))
		for i, reason := range o.reasons {
			base := []attribute.KeyValue{attribute.String("decision", decision), attribute.String("reason", reason)}
			o.spans[d][i] = metric.WithAttributeSet(attribute.NewSet(base...))
			for tr := range sampler.NumTriggers {
				o.traces[d][i][tr] = metric.WithAttributeSet(attribute.NewSet(append(base, attribute.String("trigger", tr.String()))...))
			}
		}
	}
	for tr := range sampler.NumTriggers {
		o.latency[tr] = metric.WithAttributeSet(attribute.NewSet(attribute.String("trigger", tr.String())))
	}
	for l := range sampler.NumLateOutcomes {
		o.late[l] = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", l.String())))
	}
	for p := range sampler.Part(sampler.NumParts) {
		o.parts = append(o.parts, metric.WithAttributeSet(attribute.NewSet(attribute.String("part", p.String()))))
	}
	return o
}

// zeroFailureCounters exports the failure counters at 0 from the start: Prometheus's increase()
// and rate() see a counter's first failure only if the series existed before it.
func (o *observer) zeroFailureCounters() {
	ctx := context.Background()
	o.tb.ProcessorVsrSamplerSpillFailures.Add(ctx, 0)
	o.tb.ProcessorVsrSamplerJournalFailures.Add(ctx, 0)
	o.tb.ProcessorVsrSamplerReleaseFailures.Add(ctx, 0)
	o.tb.ProcessorVsrSamplerRedeliveredSpans.Add(ctx, 0)
	for _, late := range o.late {
		o.tb.ProcessorVsrSamplerLateSpans.Add(ctx, 0, late)
	}
}

func (o *observer) Decided(d sampler.Decision, trigger sampler.Trigger, spans int, latency time.Duration) {
	ctx := context.Background()
	kept, reason := 0, o.reasonAt[d.Reason]
	if d.Reason == sampler.ReasonRule {
		reason += d.Rule
	}
	if d.Keep {
		kept = 1
	}
	o.decided[trigger].Add(1)
	o.tb.ProcessorVsrSamplerTracesDecided.Add(ctx, 1, o.traces[kept][reason][trigger])
	o.tb.ProcessorVsrSamplerSpansDecided.Add(ctx, int64(spans), o.spans[kept][reason])
	o.tb.ProcessorVsrSamplerDecisionLatency.Record(ctx, float64(latency)/float64(time.Millisecond), o.latency[trigger])
}

// logShutdown says what this run decided, the traces still open at shutdown included, and
// how many spans of undecided traces it handed over to the next run.
func (o *observer) logShutdown(handedOver int) {
	var total int64
	for i := range o.decided {
		total += o.decided[i].Load()
	}
	o.logger.Info("vsr_sampler stopped", zap.Int64("traces_decided", total),
		zap.Int64("decided_at_shutdown", o.decided[sampler.TriggerShutdown].Load()),
		zap.Int("spans_handed_over", handedOver))
}

// Request and ModelCall go to the request metrics (the vsr_requests receiver), when any are
// subscribed.
func (o *observer) Request(r *requestmetrics.Request) {
	if o.hub.Active() {
		o.hub.Request(r)
	}
}

func (o *observer) ModelCall(c *requestmetrics.ModelCall) {
	if o.hub.Active() {
		o.hub.ModelCall(c)
	}
}

func (o *observer) Serving(s *requestmetrics.Serving) {
	if o.hub.Active() {
		o.hub.Serving(s)
	}
}

func (o *observer) LateSpan(l sampler.LateOutcome) {
	o.tb.ProcessorVsrSamplerLateSpans.Add(context.Background(), 1, o.late[l])
}

func (o *observer) DuplicateSpan() {
	o.tb.ProcessorVsrSamplerDuplicateSpans.Add(context.Background(), 1)
}

func (o *observer) SpillFailed(err error) {
	o.tb.ProcessorVsrSamplerSpillFailures.Add(context.Background(), 1)
	if !o.spillWarned.Swap(true) {
		o.logger.Warn("spill failed; traces over max_buffer_bytes are decided early instead (counted in processor_vsr_sampler_spill_failures)", zap.Error(err))
	}
}

func (o *observer) JournalFailed(err error) {
	o.tb.ProcessorVsrSamplerJournalFailures.Add(context.Background(), 1)
	if !o.journalWarned.Swap(true) {
		o.logger.Warn("the crash journal could not take a record; what it lacks is held in memory only (counted in processor_vsr_sampler_journal_failures)", zap.Error(err))
	}
}

func (o *observer) RootWaited(ended sampler.Trigger, waited time.Duration) {
	o.tb.ProcessorVsrSamplerRootWait.Record(context.Background(), float64(waited)/float64(time.Millisecond), o.latency[ended])
}

func (o *observer) Lost(err error) {
	o.tb.ProcessorVsrSamplerReleaseFailures.Add(context.Background(), 1)
	if !o.lostWarned.Swap(true) {
		o.logger.Error("parked spans could not be read back and are lost (counted in processor_vsr_sampler_release_failures)", zap.Error(err))
	}
}
