package sampler

import (
	"errors"
	"fmt"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/sampling"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/journal"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/store"
)

// Recovered counts what Recover took back.
type Recovered struct {
	// Open traces come back undecided, Kept ones' spans are released, Rescuable ones wait out
	// their rescue window; Expired were dropped and past it.
	Open, Kept, Rescuable, Expired int
	// Spans is how many spans the journal gave back; Unreadable how many traces had records it
	// could not read or decode.
	Spans, Unreadable int
	// Decisions is how many decisions came back into the decision caches.
	Decisions int
}

// Recover takes in what the journal held when the last run ended, by a crash or by a shutdown
// that left its traces there: undecided traces come back with the times their spans arrived,
// kept spans not yet delivered are released, dropped traces wait out what is left of their
// rescue window, and decisions come back into the decision caches. Everything it keeps is
// written to the journal anew, so that the caller can then delete the last run's segments.
// read reads a span record's bytes from the last run's segments.
func (s *Sampler) Recover(rec *journal.Recovery, read func(journal.Ref, []byte) ([]byte, error), now time.Time) (Released, Recovered, error) {
	var out output
	var got Recovered
	var errs []error
	for i := range rec.Traces {
		rt := &rec.Traces[i]
		parts, err := readParts(rt, read)
		if err != nil {
			got.Unreadable++
			errs = append(errs, err)
		}
		for _, p := range parts {
			got.Spans += p.SpanCount()
		}
		if len(parts) > 0 {
			s.recoverTrace(rt, parts, now, &out, &got)
		}
		if rt.Decision != nil && s.recoverDecision(rt) {
			got.Decisions++
		}
	}
	return out.released(), got, errors.Join(errs...)
}

// lockFor locks the shard of trace id, and reports whether it holds the trace in flight. The
// caller unlocks it.
func (s *Sampler) lockFor(id pcommon.TraceID) (sh *shard, fp, h uint64, inFlight bool) {
	fp, h = fingerprint(id), hashID(id)
	sh = s.shardByFingerprint(fp)
	sh.mu.Lock()
	return sh, fp, h, sh.index.find(h, id, sh.slots) >= 0
}

// readParts decodes a recovered trace's span records, each as it arrived. A record that
// cannot be read or decoded is left out and reported: the others are whole.
func readParts(rt *journal.RecoveredTrace, read func(journal.Ref, []byte) ([]byte, error)) ([]ptrace.Traces, error) {
	var parts []ptrace.Traces
	var errs []error
	for _, p := range rt.Parts {
		raw, err := read(p.Ref, nil)
		if err == nil {
			var td ptrace.Traces
			if td, err = unmarshaler.UnmarshalTraces(raw); err == nil {
				parts = append(parts, td)
				continue
			}
		}
		errs = append(errs, fmt.Errorf("journal record of trace %x: %w", rt.ID, err))
	}
	return parts, errors.Join(errs...)
}

func (s *Sampler) recoverTrace(rt *journal.RecoveredTrace, parts []ptrace.Traces, now time.Time, out *output, got *Recovered) {
	switch rt.Phase {
	case journal.PhaseOpen:
		got.Open++
		for i, td := range parts {
			arrived := time.Unix(0, rt.Parts[i].At)
			pass, released := s.consume(td, arrived, true)
			out.releases = append(out.releases, released.Receipt...)
			released.ResourceSpans().MoveAndAppendTo(out.traces().ResourceSpans())
			s.releaseKept(rt.ID, pass, journal.PhaseKept, sampling.AlwaysSampleThreshold, arrived, out)
		}
	case journal.PhaseKept:
		got.Kept++
		th, err := sampling.UnsignedToThreshold(rt.Threshold)
		if err != nil {
			th = sampling.AlwaysSampleThreshold
		}
		for i, td := range parts {
			for _, rs := range td.ResourceSpans().All() {
				for _, ss := range rs.ScopeSpans().All() {
					for _, span := range ss.Spans().All() {
						out.stamp(span, th)
					}
				}
			}
			s.releaseKept(rt.ID, td, journal.PhaseKept, th, time.Unix(0, rt.Parts[i].At), out)
		}
		// The rest of the trace (a root's model call, still to come) follows the decision,
		// which the journal may have let go of by now.
		s.keepFromNow(rt.ID, th, now)
	case journal.PhaseDropped:
		droppedAt := time.Unix(0, rt.DroppedAt)
		if s.cfg.RescueWindow <= 0 || !now.Before(droppedAt.Add(s.cfg.RescueWindow)) {
			got.Expired++
			return
		}
		got.Rescuable++
		s.restoreRescuable(rt, parts, droppedAt)
	}
}

// releaseKept releases kept spans that have no slot, written to the journal until delivered:
// the spans of a recovered trace that a decision let pass.
func (s *Sampler) releaseKept(id pcommon.TraceID, td ptrace.Traces, phase journal.Phase, th sampling.Threshold, arrived time.Time, out *output) {
	if td.SpanCount() == 0 {
		return
	}
	sh := s.shardByFingerprint(fingerprint(id))
	sh.mu.Lock()
	rel, err := sh.store.Journaled(id, td, store.Meta{ID: id, Arrived: arrived.UnixNano(), Phase: phase, Threshold: th.Unsigned()})
	sh.mu.Unlock()
	if err != nil {
		s.obs.JournalFailed(err)
	}
	out.receipt(rel)
	td.ResourceSpans().MoveAndAppendTo(out.traces().ResourceSpans())
}

// keepFromNow remembers a recovered trace as kept, in the cache and the journal, from now.
func (s *Sampler) keepFromNow(id pcommon.TraceID, th sampling.Threshold, now time.Time) {
	sh, fp, _, _ := s.lockFor(id)
	defer sh.mu.Unlock()
	sh.keep.put(fp, th)
	s.journalDecision(sh, noSlot, &store.Trace{}, id, true, th, now)
	s.account(sh)
}

// restoreRescuable holds a dropped trace's spans again for what is left of its rescue window.
func (s *Sampler) restoreRescuable(rt *journal.RecoveredTrace, parts []ptrace.Traces, droppedAt time.Time) {
	id := pcommon.TraceID(rt.ID)
	sh, fp, h, inFlight := s.lockFor(id)
	defer sh.mu.Unlock()
	if inFlight {
		return // its spans came again in an open part
	}
	si := sh.alloc(h, id, rt.Parts[0].At)
	sh.leaveLists(si)
	t := &sh.slots[si]
	t.phase, t.rule = phaseRescuable, uint8(len(s.rules))
	t.last = msBetween(t.first, droppedAt)
	for _, td := range parts {
		t.spans += uint32(td.SpanCount())
		s.park(sh, si, td)
	}
	sh.setTimer(si, listRescuable)
	sh.drop.put(fp, struct{}{})
	s.journalDecision(sh, si, &t.parked, id, false, sampling.NeverSampleThreshold, droppedAt)
	sh.store.Pack(si, &t.parked)
	s.account(sh)
}

// recoverDecision puts a recovered decision back into the decision caches, and into the
// journal while it matters there, unless the trace is in flight again or decided anew. It
// reports whether it did.
func (s *Sampler) recoverDecision(rt *journal.RecoveredTrace) bool {
	id := pcommon.TraceID(rt.ID)
	sh, fp, _, inFlight := s.lockFor(id)
	defer sh.mu.Unlock()
	if inFlight {
		return false
	}
	if _, kept := sh.keep.get(fp); kept {
		return false
	}
	if _, dropped := sh.drop.get(fp); dropped {
		return false
	}
	d := rt.Decision
	at := time.Unix(0, d.At)
	if d.Kind == journal.KindDrop {
		sh.drop.put(fp, struct{}{})
		return true
	}
	th, err := sampling.UnsignedToThreshold(d.Threshold)
	if err != nil {
		return false
	}
	sh.keep.put(fp, th)
	s.journalDecision(sh, noSlot, &store.Trace{}, id, true, th, at)
	s.account(sh)
	return true
}
