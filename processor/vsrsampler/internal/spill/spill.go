// Package spill keeps byte records on disk for vsr_sampler: the parked spans of traces the
// memory budget cannot hold until their decision. Records live in append-only segment files; a
// segment is deleted when its last record is freed, so disk use follows the traces in flight.
// Nothing is durable: every Store has a directory of its own, locked while it is open, and
// removes the directories earlier processes left.
package spill

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/dirlock"
)

// Ref locates a record.
type Ref struct {
	segment uint32
	length  uint32
	offset  int64
}

// Len is the record's length.
func (r Ref) Len() int { return int(r.length) }

const (
	// segmentSize is where a segment stops taking records: small enough that a few long-lived
	// traces do not pin much disk.
	segmentSize = 16 << 20
	// writeBuffer batches small records into one write.
	writeBuffer = 256 << 10
	fileSuffix  = ".spill"
)

// ErrFull is returned when a record would take the store over its byte limit.
var ErrFull = errors.New("spill: max_bytes reached")

// Store is a set of segment files in one directory. It is safe for concurrent use.
type Store struct {
	dir      string
	lock     *os.File
	maxBytes int64

	mu       sync.Mutex
	current  *segment
	segments map[uint32]*segment
	nextID   uint32
	// onDisk counts every segment's full size, freed records included, until it is deleted.
	onDisk atomic.Int64
}

type segment struct {
	id   uint32
	file *os.File
	// size is the segment's length including pending, which is not yet written at written.
	size, written int64
	pending       []byte
	live          int
}

// Open gives a new store a directory of its own under parent, named after name (the
// processor's ID) and made unique, so that two instances configured with one directory never
// share files. It first removes the directories under parent whose store is gone: their lock
// is free once the process that held it has ended.
func Open(parent, name string, maxBytes int64) (*Store, error) {
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return nil, fmt.Errorf("spill: %w", err)
	}
	if err := removeAbandoned(parent); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(parent, strings.NewReplacer("/", "_", string(filepath.Separator), "_").Replace(name)+"-")
	if err != nil {
		return nil, fmt.Errorf("spill: %w", err)
	}
	lock, err := dirlock.Lock(dir)
	if err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	return &Store{dir: dir, lock: lock, maxBytes: maxBytes, segments: map[uint32]*segment{}}, nil
}

// removeAbandoned removes the store directories under parent that no open store holds.
func removeAbandoned(parent string) error {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return fmt.Errorf("spill: %w", err)
	}
	for _, e := range entries {
		dir := filepath.Join(parent, e.Name())
		if _, err := os.Stat(filepath.Join(dir, dirlock.Name)); !e.IsDir() || err != nil {
			continue // not a store's directory
		}
		if held, err := dirlock.Held(dir); err != nil || held {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("spill: removing what an earlier run left: %w", err)
		}
	}
	return nil
}

// Dir is the store's own directory.
func (s *Store) Dir() string { return s.dir }

// OnDisk returns the bytes the store's files take.
func (s *Store) OnDisk() int64 { return s.onDisk.Load() }

// Put stores a copy of parts, joined, as one record.
func (s *Store) Put(parts ...[]byte) (Ref, error) {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if n > math.MaxUint32 {
		return Ref{}, fmt.Errorf("spill: a %d-byte record is too large", n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.current
	if cur != nil && cur.live == 0 && cur.size > 0 {
		if err := s.truncate(cur); err != nil {
			return Ref{}, err
		}
	}
	if s.onDisk.Load()+int64(n) > s.maxBytes {
		return Ref{}, ErrFull
	}
	if cur == nil || (cur.size > 0 && cur.size+int64(n) > segmentSize) {
		var err error
		if cur, err = s.rotate(); err != nil {
			return Ref{}, err
		}
	}
	if len(cur.pending)+n > writeBuffer {
		if err := cur.flush(); err != nil {
			return Ref{}, err
		}
	}
	ref := Ref{segment: cur.id, length: uint32(n), offset: cur.size}
	for _, p := range parts {
		cur.pending = append(cur.pending, p...)
	}
	cur.size += int64(n)
	cur.live++
	s.onDisk.Add(int64(n))
	return ref, nil
}

// Get appends the record at ref to dst.
func (s *Store) Get(ref Ref, dst []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seg := s.segments[ref.segment]
	if seg == nil {
		return dst, fmt.Errorf("spill: segment %d is gone", ref.segment)
	}
	if ref.offset >= seg.written {
		start := ref.offset - seg.written
		return append(dst, seg.pending[start:start+int64(ref.length)]...), nil
	}
	n := len(dst)
	dst = append(dst, make([]byte, ref.length)...)
	if _, err := seg.file.ReadAt(dst[n:], ref.offset); err != nil {
		return dst[:n], fmt.Errorf("spill: reading segment %d: %w", ref.segment, err)
	}
	return dst, nil
}

// Free gives up the record at ref; a sealed segment goes with its last record.
func (s *Store) Free(ref Ref) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seg := s.segments[ref.segment]
	if seg == nil {
		return
	}
	seg.live--
	if seg.live == 0 && seg != s.current {
		s.remove(seg)
	}
}

// Close deletes every segment and the store's directory.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, seg := range s.segments {
		errs = append(errs, s.remove(seg))
	}
	s.current = nil
	if s.lock != nil {
		errs = append(errs, os.RemoveAll(s.dir), s.lock.Close())
		s.lock = nil
	}
	return errors.Join(errs...)
}

func (s *Store) rotate() (*segment, error) {
	if cur := s.current; cur != nil {
		if err := cur.flush(); err != nil {
			return nil, err
		}
		cur.pending = nil // sealed: reads go to the file
	}
	name := filepath.Join(s.dir, fmt.Sprintf("%08d%s", s.nextID, fileSuffix))
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spill: %w", err)
	}
	seg := &segment{id: s.nextID, file: f, pending: make([]byte, 0, writeBuffer)}
	s.nextID++
	s.segments[seg.id] = seg
	s.current = seg
	return seg, nil
}

// truncate empties the current segment once all its records are freed, instead of growing it.
func (s *Store) truncate(seg *segment) error {
	if err := seg.file.Truncate(0); err != nil {
		return fmt.Errorf("spill: %w", err)
	}
	s.onDisk.Add(-seg.size)
	seg.size, seg.written, seg.pending = 0, 0, seg.pending[:0]
	return nil
}

func (s *Store) remove(seg *segment) error {
	delete(s.segments, seg.id)
	s.onDisk.Add(-seg.size)
	name := seg.file.Name()
	return errors.Join(seg.file.Close(), os.Remove(name))
}

func (seg *segment) flush() error {
	if len(seg.pending) == 0 {
		return nil
	}
	if _, err := seg.file.WriteAt(seg.pending, seg.written); err != nil {
		return fmt.Errorf("spill: writing segment %d: %w", seg.id, err)
	}
	seg.written += int64(len(seg.pending))
	seg.pending = seg.pending[:0]
	return nil
}
