// Package sampler is the pure core of vsr_sampler: it buffers spans by trace, decides each
// trace as soon as it can, writes the whole request's summary on its root, and releases or
// drops its spans. It has no clock and no goroutines: the caller passes the time and calls
// Tick, so tests drive it with a fake clock.
package sampler

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/sampling"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/store"
)

// Part is a part of the memory the core holds.
type Part uint8

const (
	// PartSpans: parked spans in memory, encoded.
	PartSpans Part = iota
	// PartTraces: the bookkeeping of traces in flight: slots, index, interned strings.
	PartTraces
	// PartReleased: kept spans the caller holds for redelivery (Reserve).
	PartReleased
	// PartDecisions: the decision caches, bounded by their entries, outside max_buffer_bytes.
	PartDecisions
	NumParts
)

func (p Part) String() string { return [...]string{"spans", "traces", "released", "decisions"}[p] }

// Sampler is the tail sampler. It is safe for concurrent use.
type Sampler struct {
	cfg       Config
	obs       Observer
	rules     []compiledRule
	ruleTh    []sampling.Threshold
	defaultTh sampling.Threshold
	dynamic   *dynamic
	services  routerconv.Services
	shards    []*shard
	mem       [NumParts]atomic.Int64
	traces    atomic.Int64
	// relieving serializes pressure relief, which visits every shard.
	relieving sync.Mutex
	batches   sync.Pool
}

// New returns a Sampler for cfg reporting to obs.
func New(cfg Config, obs Observer) (*Sampler, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	n := cfg.Shards
	if n <= 0 {
		n = 4 * runtime.GOMAXPROCS(0)
	}
	s := &Sampler{
		cfg:       cfg,
		obs:       obs,
		defaultTh: thresholdFor(cfg.DefaultPercentage),
		services:  routerconv.NewServices(cfg.ServiceNames),
		shards:    make([]*shard, n),
	}
	for _, r := range cfg.Rules {
		cr := compiledRule{Rule: r, values: map[string]bool{}}
		for _, v := range r.Values {
			cr.values[v] = true
		}
		s.rules = append(s.rules, cr)
		s.ruleTh = append(s.ruleTh, thresholdFor(r.Percentage))
	}
	if cfg.Dynamic != nil {
		s.dynamic = newDynamic(*cfg.Dynamic)
	}
	// Each shard remembers its share of the decisions, rounded up: a cache is never empty.
	perShard := func(entries int) int { return (entries + n - 1) / n }
	for i := range s.shards {
		s.shards[i] = newShard(perShard(cfg.KeepCacheEntries), perShard(cfg.DropCacheEntries), store.New(cfg.Spill, cfg.Journal))
	}
	s.batches.New = func() any { return newBatch() }
	return s, nil
}

// shardOf picks a trace's shard from its fingerprint's bits the caches keep, mixed again so
// that the shard does not tell its bucket in the shard's caches.
func shardOf(fp uint64, shards int) int { return int(mix64(cacheKey(fp)>>8) % uint64(shards)) }

// Held returns the bytes counted against max_buffer_bytes and the traces in flight.
func (s *Sampler) Held() (bytes, traces int64) {
	return s.mem[PartSpans].Load() + s.mem[PartTraces].Load() + s.mem[PartReleased].Load(), s.traces.Load()
}

// Memory returns the bytes held by part.
func (s *Sampler) Memory(p Part) int64 { return s.mem[p].Load() }

// Reserve counts n bytes the caller holds (kept spans awaiting redelivery) against the
// budget; a negative n gives them back.
func (s *Sampler) Reserve(n int64) { s.mem[PartReleased].Add(n) }

// overBudget reports whether what is held exceeds max_buffer_bytes.
func (s *Sampler) overBudget() bool {
	held, _ := s.Held()
	return held > s.cfg.MaxBufferBytes
}

// account brings the totals up to date with a shard's memory after a change.
func (s *Sampler) account(sh *shard) {
	now := [NumParts]int64{
		PartSpans:     sh.store.Bytes(),
		PartTraces:    sh.structBytes(),
		PartDecisions: sh.keep.bytes() + sh.drop.bytes() + sh.routes.bytes(),
	}
	for _, p := range [...]Part{PartSpans, PartTraces, PartDecisions} {
		if d := now[p] - sh.mem[p]; d != 0 {
			sh.mem[p] = now[p]
			s.mem[p].Add(d)
		}
	}
}

// Consume takes a batch. Spans of kept traces stay in it; spans of undecided traces are
// parked; the rest are dropped. It returns the batch (what is left of td) and, apart, the
// parked spans a decision in this call released: the caller sends those on their own, so
// that a refusal of the batch by the next component does not lose them.
func (s *Sampler) Consume(td ptrace.Traces, now time.Time) (pass ptrace.Traces, released Released) {
	return s.consume(td, now, false)
}

// TakeOver is Consume for the traces a previous run left undecided (TakeOpen). They arrived
// before this run: counted as arrivals now, they would look like a burst of traffic to
// dynamic sampling, which would then keep too little for as long as its rates remember it.
func (s *Sampler) TakeOver(td ptrace.Traces, now time.Time) (pass ptrace.Traces, released Released) {
	return s.consume(td, now, true)
}

func (s *Sampler) consume(td ptrace.Traces, now time.Time, carried bool) (pass ptrace.Traces, released Released) {
	b := s.batches.Get().(*batch)
	defer func() {
		b.reset()
		s.batches.Put(b)
	}()
	b.carried = carried
	b.index(td, s)
	var out output
	for _, group := range b.byShard(len(s.shards)) {
		if len(group.traces) == 0 {
			continue
		}
		sh := s.shards[group.shard]
		sh.mu.Lock()
		for _, ti := range group.traces {
			s.settle(sh, b, ti, now, &out)
		}
		s.account(sh)
		sh.mu.Unlock()
	}
	b.removeUnpassed(td)
	if s.overBudget() {
		s.relievePressure(now, &out)
	}
	return td, out.released()
}

// Tick decides the traces whose grace period, slow threshold or timeout has passed at now,
// closes kept traces that are done or whose model call can no longer come, forgets rescuable
// traces past their window, and returns the kept spans.
func (s *Sampler) Tick(now time.Time) Released {
	var out output
	for _, sh := range s.shards {
		sh.mu.Lock()
		s.tickShard(sh, now, &out)
		sh.compact()
		s.account(sh)
		sh.mu.Unlock()
	}
	return out.released()
}

func (s *Sampler) tickShard(sh *shard, now time.Time, out *output) {
	due := func(si int32, ms uint32, after time.Duration) bool {
		return si >= 0 && !now.Before(sh.slots[si].at(ms).Add(after))
	}
	for si := sh.timers[listQuiet].head; due(si, lastOf(sh, si), s.cfg.Grace); si = sh.timers[listQuiet].head {
		s.finish(sh, si, TriggerGrace, now, out)
	}
	for si := sh.timers[listWaiting].head; s.cfg.SlowThreshold > 0 && due(si, rootAtOf(sh, si), s.cfg.SlowThreshold); si = sh.timers[listWaiting].head {
		// Kept as slow; the model call that follows closes it.
		s.decide(sh, si, TriggerTimeout, now, false, out)
	}
	for si := sh.fifo.head; due(si, 0, s.cfg.TraceTimeout); si = sh.fifo.head {
		s.timeOut(sh, si, now, out)
	}
	for si := sh.timers[listAwaiting].head; due(si, lastOf(sh, si), s.cfg.ModelCallWait); si = sh.timers[listAwaiting].head {
		// No model call can still come: the request ended without one.
		s.endWait(sh, si, TriggerTimeout, now)
		s.close(sh, si, now, nil, out)
	}
	for si := sh.timers[listRescuable].head; due(si, lastOf(sh, si), s.cfg.RescueWindow); si = sh.timers[listRescuable].head {
		s.forget(sh, si, now)
	}
}

func lastOf(sh *shard, si int32) uint32 {
	if si < 0 {
		return 0
	}
	return sh.slots[si].last
}

func rootAtOf(sh *shard, si int32) uint32 {
	if si < 0 {
		return 0
	}
	return sh.slots[si].rootAt
}

// TakeOpen is Flush for a collector whose next run takes over: the spans of traces still
// undecided, up to about maxBytes of them encoded, leave undecided (open) for the next run to
// take in again with TakeOver, rather than be kept blind; the rest is flushed (kept), roots
// awaiting their model call that TakeWaiting did not hand over included.
func (s *Sampler) TakeOpen(now time.Time, maxBytes int64) (open ptrace.Traces, kept Released) {
	var out output
	open = ptrace.NewTraces()
	var sizer ptrace.ProtoMarshaler
	taken := int64(0)
	for _, sh := range s.shards {
		sh.mu.Lock()
		for si := sh.fifo.head; si >= 0; si = sh.fifo.head {
			if sh.slots[si].phase != phaseOpen || taken >= maxBytes {
				s.finish(sh, si, TriggerShutdown, now, &out)
				continue
			}
			if sh.store.Parked(&sh.slots[si].parked) {
				td := s.unpark(sh, si, &out)
				taken += int64(sizer.TracesSize(td))
				td.ResourceSpans().MoveAndAppendTo(open.ResourceSpans())
			}
			sh.leaveLists(si)
			s.traces.Add(-1)
			s.free(sh, si, now)
		}
		for si := sh.timers[listAwaiting].head; si >= 0; si = sh.timers[listAwaiting].head {
			s.finish(sh, si, TriggerShutdown, now, &out)
		}
		for si := sh.timers[listRescuable].head; si >= 0; si = sh.timers[listRescuable].head {
			s.forget(sh, si, now)
		}
		s.account(sh)
		sh.mu.Unlock()
	}
	return open, out.released()
}

// Suspend ends a run whose journal hands its traces over to the next run (Recover): kept
// traces are closed and their spans returned, roots still awaiting their model call too (the
// caller hands those over first with TakeWaiting where it can); undecided and dropped traces
// stay, their spans in the journal, not done with.
func (s *Sampler) Suspend(now time.Time) Released {
	var out output
	for _, sh := range s.shards {
		sh.mu.Lock()
		for si := sh.fifo.head; si >= 0; {
			next := sh.slots[si].fifo.next
			if sh.slots[si].phase != phaseOpen {
				s.finish(sh, si, TriggerShutdown, now, &out)
			}
			si = next
		}
		for si := sh.timers[listAwaiting].head; si >= 0; si = sh.timers[listAwaiting].head {
			s.finish(sh, si, TriggerShutdown, now, &out)
		}
		s.account(sh)
		sh.mu.Unlock()
	}
	return out.released()
}

// Flush decides and closes every buffered trace, for shutdown, and returns the kept spans. A
// root awaiting its model call leaves with what its trace showed: a guard match that nothing
// followed, as blocked.
func (s *Sampler) Flush(now time.Time) Released {
	var out output
	for _, sh := range s.shards {
		sh.mu.Lock()
		for si := sh.fifo.head; si >= 0; si = sh.fifo.head {
			s.finish(sh, si, TriggerShutdown, now, &out)
		}
		for si := sh.timers[listAwaiting].head; si >= 0; si = sh.timers[listAwaiting].head {
			s.finish(sh, si, TriggerShutdown, now, &out)
		}
		for si := sh.timers[listRescuable].head; si >= 0; si = sh.timers[listRescuable].head {
			s.forget(sh, si, now)
		}
		s.account(sh)
		sh.mu.Unlock()
	}
	return out.released()
}
