// Package journal keeps what vsr_sampler has accepted and not yet delivered in files, so that
// a crash (SIGKILL, the OOM killer) loses none of it: the parked spans of traces in flight,
// every decision as it is made, and a mark when a trace's spans are done with (delivered to
// the exporter's persistent queue, or dropped and past their rescue window).
//
// Records are appended to segment files and written to the kernel (one write per Commit)
// before the sampler acknowledges the batch they came in: what the kernel has survives the
// process, with or without fsync. A segment is deleted once none of its span records is live;
// the control records it holds that still matter (a recent keep decision, a drop decision
// within the rescue window, a done mark whose spans may still be on disk) are carried forward
// first, keeping the position they were first written at, so that replay orders them as
// written. Open replays what an earlier run left; a torn or corrupt tail ends its segment's
// replay and is counted, never an error that stops the collector.
package journal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/dirlock"
)

// Kind is a record's kind.
type Kind uint8

const (
	// KindSpans holds parked spans of one trace: an OTLP TracesData encoding, with the trace's
	// phase when they were parked.
	KindSpans Kind = iota + 1
	// KindKeep and KindDrop are a trace's decision.
	KindKeep
	KindDrop
	// KindDone marks a trace's span records written before a position as done with.
	KindDone
)

// Phase is where a trace was in its life when spans of it were parked or recovered.
type Phase uint8

const (
	PhaseOpen Phase = iota
	PhaseKept
	PhaseDropped
)

// Pos is where a record was first written: its segment and the offset of its frame.
type Pos struct {
	Segment uint32
	Offset  int64
}

// Before orders positions as records were written.
func (p Pos) Before(q Pos) bool {
	return p.Segment < q.Segment || (p.Segment == q.Segment && p.Offset < q.Offset)
}

// Ref locates the OTLP bytes of a span record.
type Ref struct {
	segment uint32
	length  uint32
	offset  int64
}

// Len is the length of the record's OTLP bytes.
func (r Ref) Len() int { return int(r.length) }

// Segment is the segment the record is in.
func (r Ref) Segment() uint32 { return r.segment }

// SyncPolicy is when the journal asks the kernel to put its writes on the device: without it
// they survive a crash of the process, not of the node.
type SyncPolicy uint8

const (
	SyncNever SyncPolicy = iota
	SyncInterval
	SyncBatch
)

// Options configure a Journal.
type Options struct {
	Dir      string
	MaxBytes int64
	Sync     SyncPolicy
	// SyncInterval is the longest a write waits for fsync under SyncInterval.
	SyncInterval time.Duration
	// KeepRetention is how long a keep decision is carried forward: late spans of a kept
	// trace that arrive after a restart still follow it.
	KeepRetention time.Duration
	// DropRetention is how long a drop decision is carried forward: the rescue window, during
	// which its trace's spans are still held.
	DropRetention time.Duration
	// segmentBytes is where a segment stops taking records (segmentSize unless a test sets it).
	segmentBytes int64
}

// ErrFull is returned when span records would take the journal over MaxBytes.
var ErrFull = errors.New("journal: max_bytes reached")

const (
	// segmentSize is where a segment stops taking records: small enough that a few long-lived
	// traces do not pin much disk.
	segmentSize = 16 << 20
	fileSuffix  = ".wal"
	// magic starts every segment file (format version 1).
	magic = "VSRJRNL1"
	// frameHeader is a record's length (u32), CRC-32C of kind and payload (u32) and kind (u8).
	frameHeader = 9
	// maxPayload bounds a record: a corrupt length cannot make replay allocate more.
	maxPayload = 256 << 20
	// spansHeader is a span record's trace ID, arrival time, phase and threshold before its
	// OTLP bytes.
	spansHeader = 16 + 8 + 1 + 8
	// controlSize is a control record's payload: trace ID, time, threshold or segment,
	// original position.
	controlSize = 16 + 8 + 8 + 4 + 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Journal is a set of segment files in one directory. It is safe for concurrent use.
type Journal struct {
	opts Options
	// lock keeps other processes out of the directory while the journal is open.
	lock *os.File

	mu       sync.Mutex
	current  *segment
	segments map[uint32]*segment
	nextID   uint32
	// pending is what Append wrote since the last Commit, all of it for current.
	pending []byte
	// retired are segments whose last span record was freed, deleted at the next Commit.
	retired  []*segment
	lastSync time.Time
	// syncFile is (*os.File).Sync; tests count it.
	syncFile func(*os.File) error
	// recovering allows appends past MaxBytes while the last run's segments still count.
	recovering bool
	onDisk     atomic.Int64
	stats      Stats
}

type segment struct {
	id   uint32
	file *os.File
	// size includes what is pending; written is what the file has.
	size, written int64
	live          int
	// old: left by an earlier run; deleted when its recovery is done.
	old bool
}

// Stats are what the journal counts besides its bytes.
type Stats struct {
	// Replayed records and the bytes of torn or corrupt tails skipped at Open.
	Replayed     int
	SkippedBytes int64
	Skipped      int
	// Carried control records and deleted segments.
	Carried int
	Deleted int
	// Written is the bytes written to the files since Open.
	Written int64
}

// Open opens the journal in opts.Dir, creating it, and reads what an earlier run left there.
// The returned Recovery's span records stay readable (Get) until Recovered is called.
func Open(opts Options) (*Journal, *Recovery, error) {
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("journal: %w", err)
	}
	lock, err := dirlock.Lock(opts.Dir)
	if err != nil {
		return nil, nil, fmt.Errorf("journal: %s is in use by another process: %w", opts.Dir, err)
	}
	if opts.segmentBytes == 0 {
		opts.segmentBytes = segmentSize
	}
	j := &Journal{opts: opts, lock: lock, segments: map[uint32]*segment{}, pending: make([]byte, 0, 64<<10), syncFile: (*os.File).Sync}
	rec, err := j.replay()
	if err != nil {
		return nil, nil, errors.Join(err, j.closeFiles())
	}
	j.recovering = len(j.segments) > 0
	return j, rec, nil
}

// segmentIDs lists the segment files in dir, oldest first.
func segmentIDs(dir string) ([]uint32, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	var ids []uint32
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), fileSuffix)
		if !ok || e.IsDir() {
			continue
		}
		id, err := strconv.ParseUint(name, 10, 32)
		if err != nil {
			continue
		}
		ids = append(ids, uint32(id))
	}
	slices.Sort(ids)
	return ids, nil
}

func (j *Journal) segmentPath(id uint32) string {
	return filepath.Join(j.opts.Dir, fmt.Sprintf("%010d%s", id, fileSuffix))
}

// Dir is the journal's directory.
func (j *Journal) Dir() string { return j.opts.Dir }

// OnDisk returns the bytes the journal's files take, pending writes included.
func (j *Journal) OnDisk() int64 { return j.onDisk.Load() }

// Stats returns the journal's counts.
func (j *Journal) Stats() Stats {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.stats
}

// AppendSpans appends a trace's parked spans, arrived at at (Unix ns) while the trace was in
// phase (with threshold th when kept), and returns where their OTLP bytes are.
func (j *Journal) AppendSpans(id [16]byte, at int64, phase Phase, th uint64, otlp []byte) (Ref, error) {
	n := spansHeader + len(otlp)
	if n > maxPayload {
		return Ref{}, fmt.Errorf("journal: a %d-byte record is too large", n)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.recovering && j.onDisk.Load()+int64(frameHeader+n) > j.opts.MaxBytes {
		return Ref{}, ErrFull
	}
	seg, err := j.room(frameHeader + n)
	if err != nil {
		return Ref{}, err
	}
	pos := seg.size
	var hdr [spansHeader]byte
	copy(hdr[:16], id[:])
	binary.LittleEndian.PutUint64(hdr[16:], uint64(at))
	hdr[24] = byte(phase)
	binary.LittleEndian.PutUint64(hdr[25:], th)
	j.frame(KindSpans, hdr[:], otlp)
	seg.live++
	return Ref{segment: seg.id, length: uint32(len(otlp)), offset: pos + frameHeader + spansHeader}, nil
}

// Mark is the position the next record takes or follows: a done mark made with it covers
// every span record appended before.
func (j *Journal) Mark() Pos {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.current == nil {
		return Pos{Segment: j.nextID}
	}
	return Pos{Segment: j.current.id, Offset: j.current.size}
}

// Control is a decision or a done mark.
type Control struct {
	Kind  Kind
	Trace [16]byte
	// At is when it was made (Unix ns).
	At int64
	// Threshold is a keep decision's sampling threshold (pkg/sampling's unsigned form).
	Threshold uint64
	// Since is, on a done mark or a keep, the oldest segment holding the trace's span records
	// (NoSegment: a keep made with none).
	Since uint32
	// Pos orders the record among the others: for a decision, where it was first written (set
	// by the journal); for a done mark, the Mark before which its span records are done with.
	Pos Pos
}

// AppendDecision appends a keep or drop decision. Control records are small and always
// taken: MaxBytes bounds span records.
func (j *Journal) AppendDecision(c Control) error {
	return j.appendControlAt(c, true)
}

// AppendDone appends a done mark for c.Trace's span records before c.Pos (a Mark).
func (j *Journal) AppendDone(c Control) error {
	c.Kind = KindDone
	return j.appendControlAt(c, false)
}

func (j *Journal) appendControlAt(c Control, here bool) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	seg, err := j.room(frameHeader + controlSize)
	if err != nil {
		return err
	}
	if here {
		c.Pos = Pos{Segment: seg.id, Offset: seg.size}
	}
	j.appendControl(c)
	return nil
}

func (j *Journal) appendControl(c Control) {
	var p [controlSize]byte
	copy(p[:16], c.Trace[:])
	binary.LittleEndian.PutUint64(p[16:], uint64(c.At))
	binary.LittleEndian.PutUint64(p[24:], c.Threshold)
	binary.LittleEndian.PutUint32(p[32:], c.Since)
	binary.LittleEndian.PutUint32(p[36:], c.Pos.Segment)
	binary.LittleEndian.PutUint32(p[40:], uint32(c.Pos.Offset))
	j.frame(c.Kind, p[:], nil)
}

func decodeControl(kind Kind, p []byte, at Pos) (Control, bool) {
	if len(p) != controlSize {
		return Control{}, false
	}
	c := Control{Kind: kind, At: int64(binary.LittleEndian.Uint64(p[16:])),
		Threshold: binary.LittleEndian.Uint64(p[24:]), Since: binary.LittleEndian.Uint32(p[32:]),
		Pos: Pos{Segment: binary.LittleEndian.Uint32(p[36:]), Offset: int64(binary.LittleEndian.Uint32(p[40:]))}}
	copy(c.Trace[:], p[:16])
	if kind != KindDone && at.Before(c.Pos) {
		return Control{}, false // a decision cannot have been first written after it is
	}
	return c, true
}

// room returns the segment the next n bytes go to, starting a new one when the current is full.
func (j *Journal) room(n int) (*segment, error) {
	cur := j.current
	if cur != nil && cur.size+int64(n) <= j.opts.segmentBytes {
		return cur, nil
	}
	if cur != nil && cur.size == int64(len(magic)) {
		return cur, nil // an empty segment takes a record of any size
	}
	if err := j.write(); err != nil {
		return nil, err
	}
	return j.rotate()
}

// frame appends a record to pending: header, then the parts of its payload.
func (j *Journal) frame(kind Kind, head, body []byte) {
	n := len(head) + len(body)
	crc := crc32.Update(crc32.Update(crc32.Checksum([]byte{byte(kind)}, castagnoli), castagnoli, head), castagnoli, body)
	j.pending = binary.LittleEndian.AppendUint32(j.pending, uint32(n))
	j.pending = binary.LittleEndian.AppendUint32(j.pending, crc)
	j.pending = append(j.pending, byte(kind))
	j.pending = append(append(j.pending, head...), body...)
	j.current.size += int64(frameHeader + n)
	j.onDisk.Add(int64(frameHeader + n))
}

func (j *Journal) rotate() (*segment, error) {
	if cur := j.current; cur != nil && cur.live == 0 && !cur.old {
		j.retired = append(j.retired, cur)
	}
	id := j.nextID
	f, err := os.OpenFile(j.segmentPath(id), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j.nextID++
	seg := &segment{id: id, file: f}
	j.segments[id] = seg
	j.current = seg
	j.pending = append(j.pending[:0], magic...)
	seg.size = int64(len(magic))
	j.onDisk.Add(seg.size)
	return seg, nil
}

// write hands what is pending to the kernel.
func (j *Journal) write() error {
	cur := j.current
	if cur == nil || len(j.pending) == 0 {
		return nil
	}
	if _, err := cur.file.WriteAt(j.pending, cur.written); err != nil {
		return fmt.Errorf("journal: writing segment %d: %w", cur.id, err)
	}
	cur.written += int64(len(j.pending))
	j.stats.Written += int64(len(j.pending))
	j.pending = j.pending[:0]
	return nil
}

// Commit writes what was appended to the kernel, syncs it as the policy says, and deletes the
// segments whose span records are all freed, carrying their live control records forward.
// The sampler calls it before it acknowledges a batch, and on its timer.
func (j *Journal) Commit(now time.Time) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	err := j.carryRetired(now)
	if werr := j.write(); werr != nil {
		return errors.Join(err, werr)
	}
	// A segment is deleted only after the records carried out of it are as durable as the
	// policy makes anything.
	if err := j.sync(now, len(j.retired) > 0); err != nil {
		return err
	}
	for _, seg := range j.retired {
		err = errors.Join(err, j.remove(seg))
	}
	j.retired = j.retired[:0]
	return err
}

func (j *Journal) sync(now time.Time, deleting bool) error {
	cur := j.current
	if cur == nil || j.opts.Sync == SyncNever {
		return nil
	}
	if j.opts.Sync == SyncBatch || deleting || now.Sub(j.lastSync) >= j.opts.SyncInterval {
		j.lastSync = now
		if err := j.syncFile(cur.file); err != nil {
			return fmt.Errorf("journal: fsync of segment %d: %w", cur.id, err)
		}
	}
	return nil
}

// carryRetired appends, for each retired segment, the control records that still matter.
// Carrying can start a segment, which retires the one before it when nothing in it is live:
// that one is carried too.
func (j *Journal) carryRetired(now time.Time) error {
	var errs []error
	for i := 0; i < len(j.retired); i++ {
		seg := j.retired[i]
		err := readSegment(seg.file, seg.written, func(kind Kind, at Pos, payload []byte) bool {
			if kind == KindSpans {
				return true
			}
			if c, ok := decodeControl(kind, payload, at); ok && j.stillMatters(c, seg.id, now) {
				if _, err := j.room(frameHeader + controlSize); err != nil {
					errs = append(errs, err)
					return false
				}
				j.appendControl(c)
				j.stats.Carried++
			}
			return true
		}, seg.id)
		if err != nil && !errors.Is(err, errTorn) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// stillMatters says whether a control record of a segment being deleted must be kept.
func (j *Journal) stillMatters(c Control, in uint32, now time.Time) bool {
	age := time.Duration(now.UnixNano() - c.At)
	switch c.Kind {
	case KindKeep:
		// Past its retention, a keep stays while its trace's spans may: a root awaiting its
		// model call outlives it, and without its keep a crash would bring it back undecided.
		return age < j.opts.KeepRetention || j.holdsSegmentOf(c, in)
	case KindDrop:
		return age < j.opts.DropRetention
	case KindDone:
		// Spans it covers may be in a segment still on disk: without it they would come back.
		return j.holdsSegmentOf(c, in)
	}
	return false
}

// holdsSegmentOf reports whether a segment other than in, from c.Since to where c was first
// written, is still on disk.
func (j *Journal) holdsSegmentOf(c Control, in uint32) bool {
	for id := range j.segments {
		if id != in && id >= c.Since && id <= c.Pos.Segment {
			return true
		}
	}
	return false
}

// NoSegment is the Since of a keep whose trace had no span records.
const NoSegment = ^uint32(0)

// Get appends the OTLP bytes of a span record to dst.
func (j *Journal) Get(ref Ref, dst []byte) ([]byte, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	seg := j.segments[ref.segment]
	if seg == nil {
		return dst, fmt.Errorf("journal: segment %d is gone", ref.segment)
	}
	if ref.offset >= seg.written {
		start := int(ref.offset - seg.written)
		return append(dst, j.pending[start:start+int(ref.length)]...), nil
	}
	n := len(dst)
	dst = slices.Grow(dst, int(ref.length))[:n+int(ref.length)]
	if _, err := seg.file.ReadAt(dst[n:], ref.offset); err != nil {
		return dst[:n], fmt.Errorf("journal: reading segment %d: %w", ref.segment, err)
	}
	return dst, nil
}

// Free gives up a span record; a segment goes at the next Commit after its last one.
func (j *Journal) Free(ref Ref) {
	j.mu.Lock()
	defer j.mu.Unlock()
	seg := j.segments[ref.segment]
	if seg == nil || seg.live == 0 {
		return
	}
	seg.live--
	if seg.live == 0 && seg != j.current && !seg.old {
		j.retired = append(j.retired, seg)
	}
}

// Recovered deletes the segments an earlier run left, once the caller has appended and
// committed what it kept of them.
func (j *Journal) Recovered() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	var errs []error
	for _, seg := range j.segments {
		if seg.old {
			errs = append(errs, j.remove(seg))
		}
	}
	j.recovering = false
	return errors.Join(errs...)
}

func (j *Journal) remove(seg *segment) error {
	if j.segments[seg.id] != seg {
		return nil
	}
	delete(j.segments, seg.id)
	if seg == j.current {
		j.current, j.pending = nil, j.pending[:0]
	}
	j.onDisk.Add(-seg.size)
	j.stats.Deleted++
	name := seg.file.Name()
	return errors.Join(seg.file.Close(), os.Remove(name))
}

// Close writes what is pending and closes the files, which stay for the next run.
func (j *Journal) Close(now time.Time) error {
	err := j.Commit(now)
	j.mu.Lock()
	defer j.mu.Unlock()
	return errors.Join(err, j.closeFiles())
}

// Abandon closes the files without writing what is pending, as a crash of the process
// leaves them: for tests of what a restart recovers.
func (j *Journal) Abandon() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.closeFiles()
}

func (j *Journal) closeFiles() error {
	var errs []error
	for _, seg := range j.segments {
		errs = append(errs, seg.file.Close())
	}
	j.segments, j.current = map[uint32]*segment{}, nil
	if j.lock != nil {
		errs = append(errs, j.lock.Close())
		j.lock = nil
	}
	return errors.Join(errs...)
}

// errTorn ends a segment's records at a frame that is cut short or does not check.
var errTorn = errors.New("journal: torn or corrupt record")

// tornAt is errTorn at a place in a segment.
type tornAt struct {
	segment uint32
	offset  int64
	why     string
}

func (t tornAt) Error() string {
	return fmt.Sprintf("journal: segment %d at %d: %s", t.segment, t.offset, t.why)
}

func (t tornAt) Is(target error) bool { return target == errTorn }

func le64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }

// readSegment calls fn with each record of a segment in order, until fn returns false. It
// returns a tornAt where the records stop before the segment's end.
func readSegment(f io.ReaderAt, size int64, fn func(kind Kind, at Pos, payload []byte) bool, id uint32) error {
	r := bufio.NewReaderSize(io.NewSectionReader(f, 0, size), int(min(size, 256<<10)))
	head := make([]byte, len(magic))
	if _, err := io.ReadFull(r, head); err != nil || string(head) != magic {
		if size == 0 {
			return nil
		}
		return tornAt{id, 0, "no journal header"}
	}
	off := int64(len(magic))
	var hdr [frameHeader]byte
	var payload []byte
	for off < size {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return tornAt{id, off, "header cut short"}
		}
		n := binary.LittleEndian.Uint32(hdr[:4])
		kind := Kind(hdr[8])
		if n > maxPayload || kind < KindSpans || kind > KindDone || int64(n) > size-off-frameHeader {
			return tornAt{id, off, "bad frame"}
		}
		payload = slices.Grow(payload[:0], int(n))[:n]
		if _, err := io.ReadFull(r, payload); err != nil {
			return tornAt{id, off, "payload cut short"}
		}
		crc := crc32.Update(crc32.Checksum(hdr[8:9], castagnoli), castagnoli, payload)
		if crc != binary.LittleEndian.Uint32(hdr[4:8]) {
			return tornAt{id, off, "checksum"}
		}
		if !fn(kind, Pos{Segment: id, Offset: off}, payload) {
			return nil
		}
		off += frameHeader + int64(n)
	}
	return nil
}
