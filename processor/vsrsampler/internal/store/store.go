// Package store holds the parked spans of vsr_sampler's traces in flight: OTLP-encoded
// records in memory (a dropped trace's packed into one), moved to a spill when the memory
// budget is exceeded, and written to a crash journal before their batch is acknowledged. The
// sampler's policy reads a trace's facts; only this package reads or writes its bytes, so a
// change to how spans are held or written touches it alone.
package store

import (
	"errors"
	"fmt"
	"iter"
	"slices"
	"time"
	"unsafe"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/journal"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/spill"
)

// Spill keeps byte records outside the memory budget (spill.Store keeps them on disk).
type Spill interface {
	// Put stores parts, joined, as one record.
	Put(parts ...[]byte) (spill.Ref, error)
	// Get appends the record at ref to dst.
	Get(ref spill.Ref, dst []byte) ([]byte, error)
	Free(ref spill.Ref)
}

// Journal is where parked spans and decisions are written before the batch that brought them
// is acknowledged (journal.Journal).
type Journal interface {
	AppendSpans(id [16]byte, at int64, phase journal.Phase, th uint64, otlp []byte) (journal.Ref, error)
	AppendDecision(c journal.Control) error
	AppendDone(c journal.Control) error
	Mark() journal.Pos
	Get(ref journal.Ref, dst []byte) ([]byte, error)
	Free(ref journal.Ref)
}

// Errors of Take: a record on disk that could not be read back, and one that did not decode.
var (
	ErrDisk       = errors.New("parked spans could not be read back from disk")
	ErrUnreadable = errors.New("parked spans could not be decoded")
)

// Trace is what a trace's slot holds of its parked spans, in 16 bytes: the first record in
// memory, and flags for what the Shard holds of it besides.
type Trace struct {
	data buffer
}

const (
	// hasChunks: the Shard holds in-memory records after data.
	hasChunks uint8 = 1 << iota
	// hasSpilled: some records are in the spill, the rest in memory.
	hasSpilled
	// hasJournal: the journal holds records of the trace.
	hasJournal
	// onJournal: the journal's records are the trace's, and memory holds only records the
	// journal could not take (it was full).
	onJournal
	// journalGap: a record is not in the journal (it was full): the trace cannot go onJournal.
	journalGap
)

func (t *Trace) has(f uint8) bool { return t.data.flags()&f != 0 }

func (t *Trace) set(f uint8)   { t.data.setFlags(t.data.flags() | f) }
func (t *Trace) unset(f uint8) { t.data.setFlags(t.data.flags() &^ f) }

// Meta is what the journal writes beside a trace's spans.
type Meta struct {
	ID [16]byte
	// Arrived is when the spans arrived (Unix ns).
	Arrived int64
	// Phase and Threshold are the trace's when they were parked.
	Phase     journal.Phase
	Threshold uint64
}

// Shard holds the parked spans of one sampler shard's traces, by slot number. It is not safe
// for concurrent use: the sampler's shard lock guards it.
type Shard struct {
	spill   Spill
	journal Journal
	// chunks are a trace's records after its Trace's data, each as encoded: parking more
	// never copies what is parked.
	chunks map[int32][][]byte
	// spilled are a trace's records moved to the spill, oldest first.
	spilled map[int32][]spill.Ref
	// journaled are a trace's records in the journal, oldest first; refs counts them all.
	journaled map[int32][]journal.Ref
	refs      int
	// bytes is what the parked records take in memory, as allocated.
	bytes int64
}

// New returns a Shard spilling to spill and writing to j; either may be nil.
func New(sp Spill, j Journal) *Shard {
	return &Shard{spill: sp, journal: j, chunks: map[int32][][]byte{}, spilled: map[int32][]spill.Ref{},
		journaled: map[int32][]journal.Ref{}}
}

// Bytes is what the shard's parked records take in memory.
func (s *Shard) Bytes() int64 { return s.bytes }

// Per-trace costs besides the records' bytes: a chunk's slice header and a share of its map
// entry; a trace's spilled or journaled references' map entry and slice; one reference.
const (
	chunkCost      = int64(unsafe.Sizeof([]byte(nil))) + 16
	refsCost       = 48
	spillRefCost   = int64(unsafe.Sizeof(spill.Ref{}))
	journalRefCost = int64(unsafe.Sizeof(journal.Ref{}))
)

// StructBytes is what the shard's bookkeeping of references takes.
func (s *Shard) StructBytes() int64 {
	return int64(len(s.spilled))*(refsCost+spillRefCost) + int64(len(s.journaled))*refsCost + int64(s.refs)*journalRefCost
}

var marshaler ptrace.ProtoMarshaler

// Park encodes td, spans of the trace, as the trace's next record. With a journal
// the record is written there too, with m; an error says it could not be (full, or an I/O
// error), and the record is then held in memory alone.
func (s *Shard) Park(si int32, t *Trace, td ptrace.Traces, m Meta) error {
	encoded, _ := marshaler.MarshalTraces(td)
	if s.journal == nil {
		s.keep(si, t, encoded)
		return nil
	}
	ref, err := s.journal.AppendSpans(m.ID, m.Arrived, m.Phase, m.Threshold, encoded)
	if err != nil {
		t.set(journalGap)
		s.keep(si, t, encoded)
		return err
	}
	s.journaled[si] = append(s.journaled[si], ref)
	s.refs++
	t.set(hasJournal)
	if !t.has(onJournal) {
		s.keep(si, t, encoded)
	}
	return nil
}

// keep holds a record in memory: the first as the trace's data, later ones as chunks.
func (s *Shard) keep(si int32, t *Trace, encoded []byte) {
	if t.data.len() == 0 && !t.has(hasChunks) && fits(encoded) {
		t.data.set(encoded)
		s.bytes += allocSize(len(encoded))
		return
	}
	s.chunks[si] = append(s.chunks[si], encoded)
	t.set(hasChunks)
	s.bytes += allocSize(len(encoded)) + chunkCost
}

// Parked reports whether the trace holds spans, in memory or on disk.
func (s *Shard) Parked(t *Trace) bool {
	return t.data.len() > 0 || t.has(hasChunks) || t.has(hasSpilled) || t.has(onJournal)
}

// OnDisk reports whether some of the trace's records are only on disk.
func (s *Shard) OnDisk(t *Trace) bool { return t.has(hasSpilled) || t.has(onJournal) }

// InMemory returns the trace's records held in memory, in the order they came.
func (s *Shard) InMemory(si int32, t *Trace) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		if t.data.len() > 0 && !yield(t.data.bytes()) {
			return
		}
		if t.has(hasChunks) {
			for _, c := range s.chunks[si] {
				if !yield(c) {
					return
				}
			}
		}
	}
}

// MemoryBytes is what the trace's records in memory take.
func (s *Shard) MemoryBytes(si int32, t *Trace) int64 {
	var n int64
	if t.data.len() > 0 {
		n = allocSize(t.data.capacity())
	}
	if t.has(hasChunks) {
		for _, c := range s.chunks[si] {
			n += allocSize(cap(c)) + chunkCost
		}
	}
	return n
}

// DiskBytes is what the trace's records only on disk take there.
func (s *Shard) DiskBytes(si int32, t *Trace) int64 {
	var n int64
	for _, ref := range s.spilled[si] {
		n += int64(ref.Len())
	}
	if t.has(onJournal) {
		for _, ref := range s.journaled[si] {
			n += int64(ref.Len())
		}
	}
	return n
}

// dropMemory forgets the trace's records in memory.
func (s *Shard) dropMemory(si int32, t *Trace) {
	s.bytes -= s.MemoryBytes(si, t)
	t.data.set(nil)
	if t.has(hasChunks) {
		delete(s.chunks, si)
		t.unset(hasChunks)
	}
}

var unmarshaler ptrace.ProtoUnmarshaler

// Take decodes and empties the trace's parked spans. Their journal records stay until the
// returned Release is done: when the spans are delivered, or given up. A record that cannot
// be read back is left out and reported (ErrDisk, ErrUnreadable): each is whole records, so
// the rest decodes.
func (s *Shard) Take(si int32, t *Trace, id [16]byte) (ptrace.Traces, Release, error) {
	var errs []error
	rel := s.release(si, t, id)
	data := t.data.bytes()
	if s.OnDisk(t) || t.has(hasChunks) || (len(data) > 0 && data[0] == packedTag) {
		// Joined once, at release: only kept and rescued traces come here.
		data = make([]byte, 0, s.DiskBytes(si, t)+s.MemoryBytes(si, t))
		for _, ref := range s.spilled[si] {
			part, err := s.spill.Get(ref, nil)
			if err == nil {
				data, err = appendUnpacked(data, part)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%w: %w", ErrDisk, err))
			}
			s.spill.Free(ref)
		}
		if t.has(onJournal) {
			for _, ref := range s.journaled[si] {
				var err error
				if data, err = s.journal.Get(ref, data); err != nil {
					errs = append(errs, fmt.Errorf("%w: %w", ErrDisk, err))
				}
			}
		}
		for part := range s.InMemory(si, t) {
			var err error
			if data, err = appendUnpacked(data, part); err != nil {
				errs = append(errs, fmt.Errorf("%w: %w", ErrUnreadable, err))
			}
		}
		delete(s.spilled, si)
	}
	td, err := unmarshaler.UnmarshalTraces(data)
	if err != nil {
		errs = append(errs, fmt.Errorf("%w: %w", ErrUnreadable, err))
		td = ptrace.NewTraces()
	}
	s.dropMemory(si, t)
	s.forgetJournal(si)
	t.data = buffer{}
	return td, rel, errors.Join(errs...)
}

// Release is a taken trace's journal records, done with once its spans are delivered.
type Release struct {
	journal Journal
	id      [16]byte
	refs    []journal.Ref
	// mark covers the records the trace had when taken, not those parked after.
	mark journal.Pos
}

func (s *Shard) release(si int32, t *Trace, id [16]byte) Release {
	if !t.has(hasJournal) {
		return Release{}
	}
	return Release{journal: s.journal, id: id, refs: s.journaled[si], mark: s.journal.Mark()}
}

// Empty reports whether there are no journal records to mark done.
func (r Release) Empty() bool { return r.journal == nil }

// Done frees the journal records and writes that they are done with, so that a restart does
// not bring them back. It returns the journal's error, if any: the records are then freed
// here but may come back after a crash, as duplicates.
func (r Release) Done(now time.Time) error {
	if r.journal == nil {
		return nil
	}
	since := r.refs[0].Segment()
	for _, ref := range r.refs {
		since = min(since, ref.Segment())
		r.journal.Free(ref)
	}
	return r.journal.AppendDone(journal.Control{Trace: r.id, At: now.UnixNano(), Since: since, Pos: r.mark})
}

func (s *Shard) forgetJournal(si int32) {
	s.refs -= len(s.journaled[si])
	delete(s.journaled, si)
}

// Free gives up the trace's parked spans: memory, spill and journal records.
func (s *Shard) Free(si int32, t *Trace, id [16]byte, now time.Time) error {
	rel := s.release(si, t, id)
	for _, ref := range s.spilled[si] {
		s.spill.Free(ref)
	}
	delete(s.spilled, si)
	s.dropMemory(si, t)
	s.forgetJournal(si)
	t.data = buffer{}
	return rel.Done(now)
}

// Decided writes a decision made at at to the journal, for the decision caches after a
// restart. A drop is written only for a trace the journal holds spans of: after a restart they
// wait out the rescue window with it.
func (s *Shard) Decided(si int32, t *Trace, id [16]byte, keep bool, th uint64, at time.Time) error {
	if s.journal == nil || (!keep && !t.has(hasJournal)) {
		return nil
	}
	c := journal.Control{Kind: journal.KindDrop, Trace: id, At: at.UnixNano(), Threshold: th, Since: journal.NoSegment}
	if t.has(hasJournal) {
		for _, ref := range s.journaled[si] {
			c.Since = min(c.Since, ref.Segment())
		}
	}
	if keep {
		c.Kind = journal.KindKeep
	}
	return s.journal.AppendDecision(c)
}

// Journaled writes kept spans of a trace that has no slot (recovered from the journal) as one
// record, done with by the returned Release once they are delivered. Without a journal it
// writes nothing.
func (s *Shard) Journaled(id [16]byte, td ptrace.Traces, m Meta) (Release, error) {
	if s.journal == nil {
		return Release{}, nil
	}
	encoded, _ := marshaler.MarshalTraces(td)
	ref, err := s.journal.AppendSpans(id, m.Arrived, m.Phase, m.Threshold, encoded)
	if err != nil {
		return Release{}, err
	}
	return Release{journal: s.journal, id: id, refs: []journal.Ref{ref}, mark: s.journal.Mark()}, nil
}

// minSpill is the least a trace must hold in memory to be worth a spill record.
const minSpill = 256

// Spill moves the trace's records in memory to disk: to the journal's copy when the journal
// holds them all, which writes nothing, else to the spill. It reports whether it freed
// memory; an error is the spill's (full, or I/O).
func (s *Shard) Spill(si int32, t *Trace) (bool, error) {
	if s.MemoryBytes(si, t) < minSpill {
		return false, nil
	}
	switch {
	case t.has(hasJournal) && !t.has(journalGap) && !t.has(hasSpilled):
		t.set(onJournal)
	case s.spill != nil && !t.has(onJournal):
		ref, err := s.spill.Put(slices.Collect(s.InMemory(si, t))...)
		if err != nil {
			return false, err
		}
		s.spilled[si] = append(s.spilled[si], ref)
		t.set(hasSpilled)
	default:
		return false, nil
	}
	s.dropMemory(si, t)
	return true, nil
}

// Remap follows a compaction of the shard's slots: moved maps old slot numbers to new.
func (s *Shard) Remap(moved []int32) {
	s.chunks = remap(s.chunks, moved)
	s.spilled = remap(s.spilled, moved)
	s.journaled = remap(s.journaled, moved)
}

func remap[V any](m map[int32]V, moved []int32) map[int32]V {
	out := make(map[int32]V, len(m))
	for si, v := range m {
		out[moved[si]] = v
	}
	return out
}
