package journal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// Recovery is what an earlier run left in the journal.
type Recovery struct {
	// Traces are the traces with span records not yet done with, or a decision, in the order
	// of their first record.
	Traces []RecoveredTrace
	Stats  Stats
}

// RecoveredTrace is one trace of a Recovery.
type RecoveredTrace struct {
	ID [16]byte
	// Parts are the trace's span records not yet done with, in the order they were written.
	Parts []Part
	// Phase is where the trace of Parts was: its last record says, a span record (the phase it
	// was parked in) or a decision. Threshold is a kept trace's; DroppedAt when a dropped one
	// was dropped (Unix ns).
	Phase     Phase
	Threshold uint64
	DroppedAt int64
	// Decision is the trace's last decision, or nil: for the decision caches, whether or not it
	// was made for Parts.
	Decision *Control
}

// Part is one span record: where its OTLP bytes are and when its spans arrived (Unix ns).
type Part struct {
	Ref Ref
	At  int64
}

// replayState gathers the records of the segments replayed so far.
type replayState struct {
	traces map[[16]byte]*replayTrace
	stats  Stats
}

type replayTrace struct {
	id       [16]byte
	parts    []replayPart
	decision *Control
	done     Pos
	order    int
}

type replayPart struct {
	Part
	pos   Pos
	phase Phase
	th    uint64
}

func (st *replayState) trace(id [16]byte) *replayTrace {
	t := st.traces[id]
	if t == nil {
		t = &replayTrace{id: id, order: len(st.traces)}
		st.traces[id] = t
	}
	return t
}

// add reads one segment's records. A torn or corrupt tail is counted, not an error.
func (st *replayState) add(id uint32, r io.ReaderAt, size int64) error {
	err := readSegment(r, size, func(kind Kind, at Pos, payload []byte) bool {
		st.stats.Replayed++
		if kind == KindSpans {
			if len(payload) >= spansHeader {
				t := st.trace([16]byte(payload[:16]))
				t.parts = append(t.parts, replayPart{pos: at, phase: Phase(payload[24]), th: le64(payload[25:]),
					Part: Part{
						Ref: Ref{segment: id, length: uint32(len(payload) - spansHeader), offset: at.Offset + frameHeader + spansHeader},
						At:  int64(le64(payload[16:]))}})
			}
			return true
		}
		c, ok := decodeControl(kind, payload, at)
		if !ok {
			return true
		}
		t := st.trace(c.Trace)
		switch {
		case c.Kind == KindDone:
			if t.done.Before(c.Pos) {
				t.done = c.Pos
			}
		case t.decision == nil || t.decision.Pos.Before(c.Pos):
			t.decision = &c
		}
		return true
	}, id)
	var torn tornAt
	if errors.As(err, &torn) {
		st.stats.Skipped++
		st.stats.SkippedBytes += size - torn.offset
		return nil
	}
	return err
}

// recovery is what the segments read leave: span records after their trace's last done mark,
// the phase the last record of each trace says, and decisions.
func (st *replayState) recovery() *Recovery {
	traces := make([]RecoveredTrace, len(st.traces))
	for _, t := range st.traces {
		rt := RecoveredTrace{ID: t.id, Decision: t.decision}
		var last replayPart
		for _, p := range t.parts {
			if !p.pos.Before(t.done) {
				rt.Parts = append(rt.Parts, p.Part)
				last = p
			}
		}
		if len(rt.Parts) > 0 {
			rt.Phase, rt.Threshold, rt.DroppedAt = last.phase, last.th, last.At
			if d := t.decision; d != nil && last.pos.Before(d.Pos) {
				rt.Phase, rt.Threshold = PhaseKept, d.Threshold
				if d.Kind == KindDrop {
					rt.Phase = PhaseDropped
				}
			}
			if d := t.decision; d != nil && d.Kind == KindDrop {
				rt.DroppedAt = d.At
			}
		}
		traces[t.order] = rt
	}
	// Keep the order of first records; leave out the traces with nothing left.
	traces = slices.DeleteFunc(traces, func(rt RecoveredTrace) bool {
		return len(rt.Parts) == 0 && rt.Decision == nil
	})
	return &Recovery{Traces: traces, Stats: st.stats}
}

// replay reads every segment in the directory, oldest first. They stay open for reading
// until Recovered.
func (j *Journal) replay() (*Recovery, error) {
	ids, err := segmentIDs(j.opts.Dir)
	if err != nil {
		return nil, err
	}
	st := &replayState{traces: map[[16]byte]*replayTrace{}}
	for _, id := range ids {
		f, err := os.OpenFile(j.segmentPath(id), os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("journal: %w", err)
		}
		size, err := f.Seek(0, io.SeekEnd)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("journal: %w", err), f.Close())
		}
		j.segments[id] = &segment{id: id, file: f, old: true, size: size, written: size}
		j.nextID = max(j.nextID, id+1)
		j.onDisk.Add(size)
		if err := st.add(id, f, size); err != nil {
			return nil, fmt.Errorf("journal: reading segment %d: %w", id, err)
		}
	}
	j.stats = st.stats
	return st.recovery(), nil
}
