package vsrsampler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processorhelper"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/otelcol-vsr/otelcol-vsr/internal/requestmetrics"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/admission"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/journal"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/metadata"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/sampler"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/spill"
)

// The ledger of refused batches (block_on_overflow) remembers a batch longer than a sender
// retries it (the collector's exporters give up after 5 minutes by default), and at most this
// many span IDs: 512 KiB.
const (
	ledgerTTL    = 6 * time.Minute
	maxLedgerIDs = 1 << 16
)

// Tick bounds: the timer that ends grace periods runs at a tenth of grace, within these.
const (
	minTick = 10 * time.Millisecond
	maxTick = 100 * time.Millisecond
)

type samplerProcessor struct {
	cfg    *Config
	id     component.ID
	logger *zap.Logger
	next   consumer.Traces
	core   *sampler.Sampler
	spill  *spill.Store
	// journal is the crash journal, or nil; recovery is what the last run left in it, taken
	// in at start.
	journal   *journal.Journal
	recovery  *journal.Recovery
	telemetry *metadata.TelemetryBuilder
	observer  *observer
	tick      time.Duration
	// released holds kept spans the next component refused, for redelivery.
	released *redelivery
	// ledger remembers what block_on_overflow took of the batches it refused.
	ledger *admission.Ledger
	// decisions is where the decision caches are saved at shutdown (storage), or nil.
	decisions storage.Client
	// runCtx is the context of the timer's sends; shutdown cancels it.
	runCtx    context.Context
	cancelRun context.CancelFunc
	done      chan struct{}
	shutOnce  sync.Once
	shutErr   error
}

func newSamplerProcessor(set processor.Settings, cfg *Config, next consumer.Traces) (*samplerProcessor, error) {
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	return &samplerProcessor{
		cfg:       cfg,
		id:        set.ID,
		logger:    set.Logger,
		next:      next,
		telemetry: tb,
		observer:  newObserver(tb, cfg.Rules, set.Logger, requestmetrics.Acquire(set.ID.String())),
		tick:      min(max(cfg.Grace/10, minTick), maxTick),
		ledger:    admission.New(ledgerTTL, maxLedgerIDs),
	}, nil
}

// newCore opens the spill and the journal, if any, and the core: at start, so that validating
// a configuration touches no disk.
func (p *samplerProcessor) newCore() error {
	coreCfg := p.cfg.coreConfig()
	if dir := p.cfg.Spill.Directory; dir != "" {
		var err error
		if p.spill, err = spill.Open(dir, p.id.String(), p.cfg.Spill.MaxBytes); err != nil {
			return fmt.Errorf("spill.directory: %w", err)
		}
		coreCfg.Spill = p.spill
	}
	if p.cfg.Journal.Directory != "" {
		var err error
		if p.journal, p.recovery, err = journal.Open(p.cfg.journalOptions(p.id)); err != nil {
			return errors.Join(fmt.Errorf("journal.directory: %w", err), p.closeDisk())
		}
		coreCfg.Journal = p.journal
	}
	core, err := sampler.New(coreCfg, p.observer)
	if err != nil {
		return errors.Join(err, p.closeDisk())
	}
	p.core = core
	p.released = newRedelivery(p.next, core, p.cfg.MaxBufferBytes, p.releaseFailed, func(ctx context.Context, spans int) {
		p.telemetry.ProcessorVsrSamplerRedeliveredSpans.Add(ctx, int64(spans))
	}, p.settle)
	return nil
}

// settle tells the journal that released spans are delivered, or given up for good.
func (p *samplerProcessor) settle(r sampler.Receipt) {
	if err := r.Done(time.Now()); err != nil {
		p.observer.JournalFailed(err)
	}
}

// commit hands what the journal was given to the kernel, before the batch is acknowledged.
func (p *samplerProcessor) commit(now time.Time) {
	if p.journal == nil {
		return
	}
	if err := p.journal.Commit(now); err != nil {
		p.observer.JournalFailed(err)
	}
}

// recoverJournal takes in what the last run left in the journal, sends on what was kept, and removes
// the last run's files once all of it is in this run's.
func (p *samplerProcessor) recoverJournal(ctx context.Context, now time.Time) {
	if p.journal == nil {
		return
	}
	released, got, err := p.core.Recover(p.recovery, p.journal.Get, now)
	if err != nil {
		p.observer.Lost(fmt.Errorf("records of the crash journal could not be read back: %w", err))
	}
	p.released.send(ctx, released, now)
	p.commit(now)
	if err := p.journal.Recovered(); err != nil {
		p.logger.Warn("the crash journal's files of the last run could not be removed", zap.Error(err))
	}
	stats := p.recovery.Stats
	p.recovery = nil
	p.telemetry.ProcessorVsrSamplerJournalRecoveredSpans.Add(ctx, int64(got.Spans))
	p.telemetry.ProcessorVsrSamplerJournalSkippedBytes.Add(ctx, stats.SkippedBytes)
	if got.Spans > 0 || stats.Skipped > 0 {
		p.logger.Info("took back what the last run left in the crash journal",
			zap.Int("spans", got.Spans), zap.Int("undecided_traces", got.Open), zap.Int("kept_traces", got.Kept),
			zap.Int("rescuable_traces", got.Rescuable), zap.Int("decisions", got.Decisions),
			zap.Int("torn_segments", stats.Skipped), zap.Int64("skipped_bytes", stats.SkippedBytes))
	}
}

// closeDisk closes the spill (removing its files) and the journal (keeping them).
func (p *samplerProcessor) closeDisk() error {
	var errs []error
	if p.spill != nil {
		errs = append(errs, p.spill.Close())
	}
	if p.journal != nil {
		errs = append(errs, p.journal.Close(time.Now()))
	}
	return errors.Join(errs...)
}

func (p *samplerProcessor) start(ctx context.Context, host component.Host) error {
	if err := p.newCore(); err != nil {
		return err
	}
	p.recoverJournal(ctx, time.Now())
	if err := p.restoreDecisions(ctx, host); err != nil {
		return errors.Join(err, p.closeDisk())
	}
	if err := p.registerGauges(); err != nil {
		return errors.Join(err, p.closeDisk())
	}
	p.observer.zeroFailureCounters()
	p.runCtx, p.cancelRun = context.WithCancel(context.Background())
	p.done = make(chan struct{})
	go p.run()
	return nil
}

// restoreDecisions reads the decisions the last run saved, if storage is configured. Saved
// decisions that cannot be read are only a warning: their traces' late spans start anew.
func (p *samplerProcessor) restoreDecisions(ctx context.Context, host component.Host) error {
	if p.cfg.Storage == nil {
		return nil
	}
	ext, ok := host.GetExtensions()[*p.cfg.Storage]
	if !ok {
		return fmt.Errorf("storage: no extension %s in this collector's service", p.cfg.Storage)
	}
	se, ok := ext.(storage.Extension)
	if !ok {
		return fmt.Errorf("storage: %s is not a storage extension", p.cfg.Storage)
	}
	client, err := se.GetClient(ctx, component.KindProcessor, p.id, "decisions")
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	p.decisions = client
	saved, err := client.Get(ctx, decisionsKey)
	switch {
	case err != nil:
		p.logger.Warn("the decisions saved by the last run could not be read", zap.Error(err))
	case saved != nil:
		if err := p.core.RestoreDecisions(saved); err != nil {
			p.logger.Warn("the decisions saved by the last run are not usable", zap.Error(err))
		}
	}
	now := time.Now()
	p.restoreRates(ctx, now)
	p.restoreWaiting(ctx, now)
	p.restoreOpen(ctx, now)
	return nil
}

// Storage keys: the saved decision caches, the spans of the traces left undecided, the kept
// requests still awaiting their end, and dynamic sampling's rates.
const (
	decisionsKey = "decisions"
	openKey      = "open"
	waitingKey   = "waiting"
	ratesKey     = "rates"
)

// saveOpen stores the spans of the traces left undecided, for the next run.
func (p *samplerProcessor) saveOpen(ctx context.Context, open ptrace.Traces) error {
	if open.SpanCount() == 0 {
		return nil
	}
	var m ptrace.ProtoMarshaler
	raw, err := m.MarshalTraces(open)
	if err != nil {
		return err
	}
	return p.decisions.Set(ctx, openKey, raw)
}

// restoreWaiting takes in the kept requests the last run left awaiting their end (a root
// waiting for its model call), and removes them from storage so that they are taken in once.
// Those that cannot be read are lost: counted.
func (p *samplerProcessor) restoreWaiting(ctx context.Context, now time.Time) {
	raw, err := p.decisions.Get(ctx, waitingKey)
	if err != nil {
		p.observer.Lost(fmt.Errorf("the requests the last run left awaiting their end could not be read: %w", err))
		return
	}
	if raw == nil {
		return
	}
	if err := p.decisions.Delete(ctx, waitingKey); err != nil {
		p.logger.Warn("the requests the last run left awaiting their end could not be removed from storage", zap.Error(err))
	}
	taken, released, err := p.core.RestoreWaiting(raw, now)
	if err != nil {
		p.observer.Lost(fmt.Errorf("requests the last run left awaiting their end are not readable: %w", err))
	}
	p.released.send(ctx, released, now)
	p.logger.Info("took over the requests the last run left awaiting their end", zap.Int("requests", taken))
}

// restoreOpen takes in the traces the last run left undecided, and removes them from storage
// so that they are taken in once. Handed-over spans that cannot be read are lost: counted.
func (p *samplerProcessor) restoreOpen(ctx context.Context, now time.Time) {
	raw, err := p.decisions.Get(ctx, openKey)
	if err != nil {
		p.observer.Lost(fmt.Errorf("the traces the last run left undecided could not be read: %w", err))
		return
	}
	if raw == nil {
		return
	}
	if err := p.decisions.Delete(ctx, openKey); err != nil {
		p.logger.Warn("the traces the last run left undecided could not be removed from storage", zap.Error(err))
	}
	var u ptrace.ProtoUnmarshaler
	td, err := u.UnmarshalTraces(raw)
	if err != nil {
		p.observer.Lost(fmt.Errorf("the traces the last run left undecided are not readable: %w", err))
		return
	}
	pass, released := p.core.TakeOver(td, now)
	p.released.send(ctx, released, now)
	p.released.send(ctx, sampler.Released{Traces: pass}, now)
	p.logger.Info("took over the traces the last run left undecided", zap.Int("spans", td.SpanCount()))
}

// saveWaiting stores the kept requests awaiting their end, for the next run. When it cannot,
// they are taken back, and TakeOpen then closes them as they stand, as without storage.
func (p *samplerProcessor) saveWaiting(ctx context.Context, waiting []byte, now time.Time) error {
	if len(waiting) == 0 {
		return nil
	}
	err := p.decisions.Set(ctx, waitingKey, waiting)
	if err == nil {
		return nil
	}
	_, released, rerr := p.core.RestoreWaiting(waiting, now)
	p.released.send(ctx, released, now)
	return errors.Join(err, rerr)
}

// restoreRates starts dynamic sampling from the rates the last run measured, if they still hold.
func (p *samplerProcessor) restoreRates(ctx context.Context, now time.Time) {
	raw, err := p.decisions.Get(ctx, ratesKey)
	if err != nil || raw == nil {
		if err != nil {
			p.logger.Warn("dynamic sampling's rates saved by the last run could not be read; it measures them anew", zap.Error(err))
		}
		return
	}
	if used, err := p.core.RestoreRates(raw, now); err != nil || !used {
		p.logger.Info("dynamic sampling measures its rates anew: the last run's are unreadable, old, or for another configuration", zap.Error(err))
	}
}

// saveDecisions writes the decision caches to storage, for the next run.
func (p *samplerProcessor) saveDecisions(ctx context.Context) error {
	if p.decisions == nil {
		return nil
	}
	err := p.decisions.Set(ctx, decisionsKey, p.core.SaveDecisions())
	if rates := p.core.SaveRates(time.Now()); rates != nil {
		err = errors.Join(err, p.decisions.Set(ctx, ratesKey, rates))
	}
	return errors.Join(err, p.decisions.Close(ctx))
}

func (p *samplerProcessor) registerGauges() error {
	return errors.Join(
		p.telemetry.RegisterProcessorVsrSamplerBufferedBytesCallback(func(_ context.Context, o metric.Int64Observer) error {
			bytes, _ := p.core.Held()
			o.Observe(bytes)
			return nil
		}),
		p.telemetry.RegisterProcessorVsrSamplerBufferLimitCallback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(p.cfg.MaxBufferBytes)
			return nil
		}),
		p.telemetry.RegisterProcessorVsrSamplerBufferedTracesCallback(func(_ context.Context, o metric.Int64Observer) error {
			_, traces := p.core.Held()
			o.Observe(traces)
			return nil
		}),
		p.telemetry.RegisterProcessorVsrSamplerMemoryBytesCallback(func(_ context.Context, o metric.Int64Observer) error {
			for part, set := range p.observer.parts {
				o.Observe(p.core.Memory(sampler.Part(part)), set)
			}
			return nil
		}),
		p.telemetry.RegisterProcessorVsrSamplerJournalBytesCallback(func(_ context.Context, o metric.Int64Observer) error {
			if p.journal != nil {
				o.Observe(p.journal.OnDisk())
			}
			return nil
		}),
		p.telemetry.RegisterProcessorVsrSamplerJournalWrittenBytesCallback(func(_ context.Context, o metric.Int64Observer) error {
			if p.journal != nil {
				o.Observe(p.journal.Stats().Written)
			}
			return nil
		}),
		p.telemetry.RegisterProcessorVsrSamplerSpillBytesCallback(func(_ context.Context, o metric.Int64Observer) error {
			if p.spill != nil {
				o.Observe(p.spill.OnDisk())
			}
			return nil
		}))
}

// run decides the traces whose grace period or timeout has passed, and redelivers what the
// next component refused.
func (p *samplerProcessor) run() {
	defer close(p.done)
	ticker := time.NewTicker(p.tick)
	defer ticker.Stop()
	for {
		select {
		case <-p.runCtx.Done():
			return
		case now := <-ticker.C:
			p.released.retry(p.runCtx, now)
			p.released.send(p.runCtx, p.core.Tick(now), now)
			p.commit(now)
		}
	}
}

func (p *samplerProcessor) releaseFailed(ctx context.Context, spans int, err error) {
	p.telemetry.ProcessorVsrSamplerReleaseFailures.Add(ctx, int64(spans))
	p.logger.Error("kept spans lost: the next component refused them until the end of their redelivery",
		zap.Int("spans", spans), zap.Error(err))
}

// shutdown stops the timer, decides everything still buffered and delivers what is kept,
// within ctx. It is safe without a start and when called twice.
func (p *samplerProcessor) shutdown(ctx context.Context) error {
	p.shutOnce.Do(func() { p.shutErr = p.shutdownOnce(ctx) })
	return p.shutErr
}

func (p *samplerProcessor) shutdownOnce(ctx context.Context) error {
	defer p.telemetry.Shutdown()
	defer requestmetrics.Release(p.id.String())
	if p.core == nil { // never started
		return nil
	}
	p.cancelRun()
	select {
	case <-p.done:
	case <-ctx.Done():
		return fmt.Errorf("vsr_sampler: the timer did not stop before the shutdown deadline: %w", ctx.Err())
	}
	now := time.Now()
	handedOver := 0
	switch {
	case p.journal != nil:
		// The next run takes the undecided and dropped traces back from the journal; it goes on
		// waiting for the ends of requests awaiting them when storage can hand those over.
		if p.decisions != nil {
			waiting, closed := p.core.TakeWaiting(now, p.cfg.MaxBufferBytes)
			p.released.send(ctx, closed, now)
			if err := p.saveWaiting(ctx, waiting, now); err != nil {
				p.logger.Warn("the requests awaiting their end could not be handed over to the next run; they leave as they stand", zap.Error(err))
			}
		}
		p.released.send(ctx, p.core.Suspend(now), now)
	case p.decisions != nil:
		// The next run goes on waiting for the ends of the kept requests awaiting them, rather
		// than this one summarize them as they stand; it takes the undecided traces over,
		// rather than this one keep them blind.
		waiting, closed := p.core.TakeWaiting(now, p.cfg.MaxBufferBytes)
		p.released.send(ctx, closed, now)
		if err := p.saveWaiting(ctx, waiting, now); err != nil {
			p.logger.Warn("the requests awaiting their end could not be handed over to the next run; they leave as they stand", zap.Error(err))
		}
		open, kept := p.core.TakeOpen(now, p.cfg.MaxBufferBytes-int64(len(waiting)))
		p.released.send(ctx, kept, now)
		if err := p.saveOpen(ctx, open); err != nil {
			p.logger.Warn("the undecided traces could not be handed over to the next run; they are kept", zap.Error(err))
			p.released.send(ctx, sampler.Released{Traces: open}, now)
		} else {
			handedOver = open.SpanCount()
		}
	default:
		p.released.send(ctx, p.core.Flush(now), now)
	}
	p.observer.logShutdown(handedOver)
	err := p.released.drain(ctx)
	return errors.Join(err, p.saveDecisions(ctx), p.closeDisk())
}

func (p *samplerProcessor) processTraces(ctx context.Context, td ptrace.Traces) (ptrace.Traces, error) {
	var out ptrace.Traces
	if p.cfg.BlockOnOverflow && (p.overBudget(1) || p.ledger.Pending()) {
		var err error
		if out, err = p.admitInParts(ctx, td); err != nil {
			return out, err
		}
	} else {
		out = p.consume(ctx, td)
	}
	if out.SpanCount() == 0 {
		return out, processorhelper.ErrSkipProcessingData
	}
	return out, nil
}

// consume gives td to the core and returns what passes. What the core parked of it is in the
// journal's files before the batch is acknowledged. Spans released from earlier batches go in
// their own call: a refusal of this batch makes its sender retry it, but not them.
func (p *samplerProcessor) consume(ctx context.Context, td ptrace.Traces) ptrace.Traces {
	now := time.Now()
	out, released := p.core.Consume(td, now)
	p.commit(now)
	p.released.send(ctx, released, now)
	return out
}

// errBufferFull tells the sender to retry later: the buffer stayed full.
var errBufferFull = errors.New("vsr_sampler: buffer full (max_buffer_bytes); retry later")

// admitInParts is block_on_overflow over budget. The spans that continue traces the core
// holds (or follow a decision) are taken at once, up to twice max_buffer_bytes: the traces
// they complete leave and make room. Only new traces wait for room; when it does not come in
// time, the batch is refused, and the ledger remembers what of it was taken, so that the
// sender's retry brings in only the rest.
func (p *samplerProcessor) admitInParts(ctx context.Context, td ptrace.Traces) (ptrace.Traces, error) {
	key := admission.Key(td)
	if n := p.ledger.Skip(key, td, time.Now()); n > 0 {
		p.telemetry.ProcessorVsrSamplerRetriedSpansSkipped.Add(ctx, int64(n))
	}
	fresh := p.core.TakeNew(td)
	if td.SpanCount() > 0 {
		if err := p.waitForRoom(ctx, 2); err != nil {
			return td, err
		}
		p.ledger.Record(key, td, time.Now())
		p.released.send(ctx, sampler.Released{Traces: p.consume(ctx, td)}, time.Now())
	}
	if fresh.SpanCount() > 0 {
		if err := p.waitForRoom(ctx, 1); err != nil {
			return fresh, err
		}
	}
	p.ledger.Done(key)
	return p.consume(ctx, fresh), nil
}

// overBudget reports whether the core holds factor times max_buffer_bytes or more, or the
// journal is full: what it would park could not be kept safe from a crash.
func (p *samplerProcessor) overBudget(factor int64) bool {
	held, _ := p.core.Held()
	return held >= factor*p.cfg.MaxBufferBytes || (p.journal != nil && p.journal.OnDisk() >= p.cfg.Journal.MaxBytes)
}

// waitForRoom waits while the core holds factor times max_buffer_bytes or more
// (block_on_overflow), for at most half the time left until ctx's deadline: senders retry
// within that deadline (the OpenTelemetry SDKs' export timeout covers their retries), so a
// refusal at the deadline itself would end the request instead of retrying it.
func (p *samplerProcessor) waitForRoom(ctx context.Context, factor int64) error {
	if !p.overBudget(factor) {
		return nil
	}
	var giveUp <-chan time.Time
	if deadline, ok := ctx.Deadline(); ok {
		t := time.NewTimer(time.Until(deadline) / 2)
		defer t.Stop()
		giveUp = t.C
	}
	var timer *time.Timer
	for p.overBudget(factor) {
		if timer == nil {
			timer = time.NewTimer(p.tick)
			defer timer.Stop()
		} else {
			timer.Reset(p.tick)
		}
		select {
		case <-ctx.Done():
		case <-giveUp:
		case <-timer.C:
			continue
		}
		p.telemetry.ProcessorVsrSamplerOverflowRefusals.Add(ctx, 1)
		return errBufferFull
	}
	return nil
}
