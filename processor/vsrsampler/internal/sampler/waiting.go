package sampler

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/sampling"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
)

var (
	marshaler   ptrace.ProtoMarshaler
	unmarshaler ptrace.ProtoUnmarshaler
)

// waitingVersion is the version of the encoding of handed-over waiting roots.
const waitingVersion = 1

// savedWaits are the roots awaiting their model calls that a run hands over to the next.
type savedWaits struct {
	Version int         `json:"version"`
	Roots   []savedWait `json:"roots"`
}

// savedWait is one awaiting trace: what its slot knew, on the clock of its first span (Unix
// ns), and its parked root, OTLP-encoded. Its spans but the root left with its keep decision.
type savedWait struct {
	TraceID   pcommon.TraceID         `json:"trace_id"`
	First     int64                   `json:"first"`
	Last      uint32                  `json:"last"`
	RootAt    uint32                  `json:"root_at"`
	RootStart int32                   `json:"root_start"`
	MaxEnd    int32                   `json:"max_end"`
	Flags     uint8                   `json:"flags"`
	Spans     uint32                  `json:"spans"`
	Service   string                  `json:"service,omitempty"`
	Summary   routerconv.SavedSummary `json:"summary"`
	Other     routerconv.Signals      `json:"other,omitempty"`
	KeptTh    uint64                  `json:"kept_th"`
	// Th is the threshold a head sampler in front wrote, for the request's weight.
	Th    *uint64 `json:"th,omitempty"`
	Roots []byte  `json:"roots"`
}

// savedFlags are the flags that mean the same in the next run; the rest describe this run's
// memory.
const savedFlags = flagRoot | flagEarlyRoot | flagRouterRoot | flagRouter | flagRootStart

// TakeWaiting hands over the roots awaiting their model calls, up to about maxBytes of them,
// for the next run to go on waiting (RestoreWaiting): closed now, a guard match would leave as
// blocked whether or not its model call was still to come. The rest are closed as Flush
// closes them, and returned.
func (s *Sampler) TakeWaiting(now time.Time, maxBytes int64) (waiting []byte, kept Released) {
	var out output
	saved := savedWaits{Version: waitingVersion}
	taken := int64(0)
	for _, sh := range s.shards {
		sh.mu.Lock()
		for si := sh.timers[listAwaiting].head; si >= 0; si = sh.timers[listAwaiting].head {
			if taken >= maxBytes {
				s.finish(sh, si, TriggerShutdown, now, &out)
				continue
			}
			w := s.saveWait(sh, si, &out)
			taken += int64(len(w.Roots)) + 256
			saved.Roots = append(saved.Roots, w)
			sh.leaveLists(si)
			s.traces.Add(-1)
			s.free(sh, si, now)
		}
		s.account(sh)
		sh.mu.Unlock()
	}
	if len(saved.Roots) > 0 {
		waiting, _ = json.Marshal(saved) // plain data: it always encodes
	}
	return waiting, out.released()
}

func (s *Sampler) saveWait(sh *shard, si int32, out *output) savedWait {
	t := &sh.slots[si]
	w := savedWait{TraceID: t.id, First: t.first, Last: t.last, RootAt: t.rootAt, RootStart: t.rootStart,
		MaxEnd: t.maxEnd, Flags: t.flags & savedFlags, Spans: t.spans, Service: sh.strs.str(t.service),
		Summary: t.sum.Save(sh.strs.str), Other: t.other, KeptTh: s.keptThreshold(sh, si).Unsigned()}
	if e := sh.lookupExtra(si); e != nil && e.hasTh {
		th := e.th.Unsigned()
		w.Th = &th
	}
	if sh.store.Parked(&sh.slots[si].parked) {
		w.Roots, _ = marshaler.MarshalTraces(s.unpark(sh, si, out))
	}
	return w
}

// RestoreWaiting takes over the roots a previous run's TakeWaiting handed over: each waits on
// for its model call, model_call_wait after its last span as that run saw it. It returns how
// many it took, and the roots of any whose saved state no longer reads as awaiting a model
// call, closed at now; a root it cannot read is an error, one already in flight is skipped.
func (s *Sampler) RestoreWaiting(data []byte, now time.Time) (int, Released, error) {
	var out output
	var saved savedWaits
	if err := json.Unmarshal(data, &saved); err != nil {
		return 0, out.released(), fmt.Errorf("handed-over waiting roots: %w", err)
	}
	if saved.Version != waitingVersion {
		return 0, out.released(), fmt.Errorf("handed-over waiting roots: version %d, this collector reads %d", saved.Version, waitingVersion)
	}
	taken := 0
	var errs []error
	for i := range saved.Roots {
		if err := s.restoreWait(&saved.Roots[i], now, &out); err != nil {
			errs = append(errs, err)
			continue
		}
		taken++
	}
	return taken, out.released(), errors.Join(errs...)
}

func (s *Sampler) restoreWait(w *savedWait, now time.Time, out *output) error {
	keptTh, err := sampling.UnsignedToThreshold(w.KeptTh)
	if err != nil {
		return fmt.Errorf("handed-over waiting root %v: %w", w.TraceID, err)
	}
	roots, err := unmarshaler.UnmarshalTraces(w.Roots)
	if err != nil {
		return fmt.Errorf("handed-over waiting root %v: %w", w.TraceID, err)
	}
	sh, fp, h, inFlight := s.lockFor(w.TraceID)
	defer sh.mu.Unlock()
	if inFlight {
		return nil
	}
	si := sh.alloc(h, w.TraceID, w.First)
	t := &sh.slots[si]
	t.last, t.rootAt, t.rootStart, t.maxEnd = w.Last, w.RootAt, w.RootStart, w.MaxEnd
	t.flags |= w.Flags & savedFlags
	t.spans, t.other, t.rule = w.Spans, w.Other&keepAlwaysSignals, uint8(len(s.rules))
	t.sum = routerconv.RestoreSummary(w.Summary, sh.strs.intern)
	if w.Service != "" {
		t.service = sh.strs.intern(routerconv.BoundedName(w.Service))
	}
	e := sh.extra(si)
	e.keptTh = keptTh
	if w.Th != nil {
		if th, err := sampling.UnsignedToThreshold(*w.Th); err == nil {
			e.th, e.hasTh = th, true
		}
	}
	t.phase = phaseKept
	sh.keep.put(fp, keptTh)
	if roots.SpanCount() > 0 {
		s.park(sh, si, roots)
	}
	s.traces.Add(1)
	s.place(sh, si)
	if t.phase != phaseAwaiting {
		// What it saved no longer reads as a request awaiting its model call: it is done.
		s.close(sh, si, now, nil, out)
	}
	s.account(sh)
	return nil
}
