package vsrsampler

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processorhelper"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/metadata"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/sampler"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/spill"
)

// Tick bounds: the timer that ends grace periods runs at a tenth of grace, within these.
const (
	minTick = 10 * time.Millisecond
	maxTick = 100 * time.Millisecond
)

type samplerProcessor struct {
	cfg *Config
	// spillDir is this instance's spill subdirectory; empty without a spill.
	spillDir  string
	logger    *zap.Logger
	next      consumer.Traces
	core      *sampler.Sampler
	spill     *spill.Store
	telemetry *metadata.TelemetryBuilder
	tick      time.Duration
	stop      chan struct{}
	done      chan struct{}
}

func newSamplerProcessor(set processor.Settings, cfg *Config, next consumer.Traces) (*samplerProcessor, error) {
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	p := &samplerProcessor{
		cfg:       cfg,
		logger:    set.Logger,
		next:      next,
		telemetry: tb,
		tick:      min(max(cfg.Grace/10, minTick), maxTick),
	}
	if cfg.Spill.Directory != "" {
		// One subdirectory per processor instance: each clears its own at start.
		p.spillDir = filepath.Join(cfg.Spill.Directory, strings.ReplaceAll(set.ID.String(), "/", "_"))
	}
	return p, nil
}

// newCore opens the spill, if any, and the core: at start, so that validating a configuration
// touches no disk.
func (p *samplerProcessor) newCore() error {
	coreCfg := p.cfg.coreConfig()
	if p.spillDir != "" {
		var err error
		if p.spill, err = spill.Open(p.spillDir, p.cfg.Spill.MaxBytes); err != nil {
			return fmt.Errorf("spill.directory: %w", err)
		}
		coreCfg.Spill = p.spill
	}
	core, err := sampler.New(coreCfg, newObserver(p.telemetry, p.cfg.Rules, p.logger))
	if err != nil {
		return errors.Join(err, p.closeSpill())
	}
	p.core = core
	return nil
}

func (p *samplerProcessor) closeSpill() error {
	if p.spill == nil {
		return nil
	}
	return p.spill.Close()
}

func (p *samplerProcessor) start(context.Context, component.Host) error {
	if err := p.newCore(); err != nil {
		return err
	}
	err := errors.Join(
		p.telemetry.RegisterProcessorVsrSamplerBufferedBytesCallback(func(_ context.Context, o metric.Int64Observer) error {
			bytes, _ := p.core.Held()
			o.Observe(bytes)
			return nil
		}),
		p.telemetry.RegisterProcessorVsrSamplerBufferedTracesCallback(func(_ context.Context, o metric.Int64Observer) error {
			_, traces := p.core.Held()
			o.Observe(traces)
			return nil
		}),
		p.telemetry.RegisterProcessorVsrSamplerSpillBytesCallback(func(_ context.Context, o metric.Int64Observer) error {
			if p.spill != nil {
				o.Observe(p.spill.OnDisk())
			}
			return nil
		}))
	if err != nil {
		return err
	}
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	go p.run()
	return nil
}

// run decides the traces whose grace period or timeout has passed.
func (p *samplerProcessor) run() {
	defer close(p.done)
	ticker := time.NewTicker(p.tick)
	defer ticker.Stop()
	for {
		select {
		case <-p.stop:
			return
		case now := <-ticker.C:
			p.release(context.Background(), p.core.Tick(now))
		}
	}
}

// release sends spans a timer or shutdown decided to keep.
func (p *samplerProcessor) release(ctx context.Context, td ptrace.Traces) {
	n := td.SpanCount()
	if n == 0 {
		return
	}
	if err := p.next.ConsumeTraces(ctx, td); err != nil {
		p.telemetry.ProcessorVsrSamplerReleaseFailures.Add(ctx, int64(n))
		p.logger.Error("next component refused kept spans", zap.Int("spans", n), zap.Error(err))
	}
}

// shutdown decides everything still buffered and sends what is kept, within ctx.
func (p *samplerProcessor) shutdown(ctx context.Context) error {
	if p.stop != nil {
		close(p.stop)
		<-p.done
	}
	if p.core == nil { // never started
		p.telemetry.Shutdown()
		return nil
	}
	td := p.core.Flush(time.Now())
	var err error
	if n := td.SpanCount(); n > 0 {
		if err = p.next.ConsumeTraces(ctx, td); err != nil {
			p.telemetry.ProcessorVsrSamplerReleaseFailures.Add(ctx, int64(n))
			err = fmt.Errorf("flushing %d kept spans at shutdown: %w", n, err)
		}
	}
	p.telemetry.Shutdown()
	return errors.Join(err, p.closeSpill())
}

func (p *samplerProcessor) processTraces(ctx context.Context, td ptrace.Traces) (ptrace.Traces, error) {
	if p.cfg.BlockOnOverflow {
		if err := p.waitForRoom(ctx); err != nil {
			return td, err
		}
	}
	out := p.core.Consume(td, time.Now())
	if out.SpanCount() == 0 {
		return out, processorhelper.ErrSkipProcessingData
	}
	return out, nil
}

// errBufferFull tells the sender to retry later: the buffer stayed full until its deadline.
var errBufferFull = errors.New("vsr_sampler: buffer full (max_buffer_bytes) until the request's deadline")

// waitForRoom holds a batch back while the buffer is over budget (block_on_overflow), so the
// sender slows down instead of traces being decided early.
func (p *samplerProcessor) waitForRoom(ctx context.Context) error {
	var timer *time.Timer
	for {
		if held, _ := p.core.Held(); held < p.cfg.MaxBufferBytes {
			return nil
		}
		if timer == nil {
			timer = time.NewTimer(p.tick)
			defer timer.Stop()
		} else {
			timer.Reset(p.tick)
		}
		select {
		case <-ctx.Done():
			p.telemetry.ProcessorVsrSamplerOverflowRefusals.Add(ctx, 1)
			return errBufferFull
		case <-timer.C:
		}
	}
}

// observer turns the core's events into the processor's telemetry. Attribute sets are built
// once: recording allocates nothing.
type observer struct {
	tb     *metadata.TelemetryBuilder
	logger *zap.Logger
	// spillWarned: the first spill failure is logged, the rest counted.
	spillWarned atomic.Bool
	// reasons are the reason labels; reasonAt[r] is where reason r's start (rules have one each).
	reasons  []string
	reasonAt [sampler.NumReasons]int
	traces   [2][][sampler.NumTriggers]metric.AddOption
	spans    [2][]metric.AddOption
	latency  [sampler.NumTriggers]metric.RecordOption
	late     [sampler.NumLateOutcomes]metric.AddOption
}

func newObserver(tb *metadata.TelemetryBuilder, rules []RuleConfig, logger *zap.Logger) *observer {
	o := &observer{tb: tb, logger: logger}
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
	return o
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
	o.tb.ProcessorVsrSamplerTracesDecided.Add(ctx, 1, o.traces[kept][reason][trigger])
	o.tb.ProcessorVsrSamplerSpansDecided.Add(ctx, int64(spans), o.spans[kept][reason])
	o.tb.ProcessorVsrSamplerDecisionLatency.Record(ctx, float64(latency)/float64(time.Millisecond), o.latency[trigger])
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
