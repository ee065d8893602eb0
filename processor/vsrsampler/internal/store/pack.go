package store

import (
	"errors"
	"sync"

	"github.com/golang/snappy"
	"google.golang.org/protobuf/encoding/protowire"
)

// A dropped trace's parked spans wait out the rescue window packed: only a late error or
// block brings them back, which few do, and router spans, repeating their keys, compress to
// about half. At steady load most of what the sampler holds is these spans.
//
// A parked part is a run of records, each a tag and a length-prefixed payload: plain records
// are TracesData's resource_spans fields, as encoded; a packed record is packedTag and a
// Snappy block of plain records. Protobuf has no field 0, so no encoded TracesData starts
// with packedTag.
const (
	packedTag byte = 0x00
	plainTag  byte = 0x0a // field 1 (resource_spans), length-delimited
	// maxPack bounds the traces packed, and with them the scratch buffers: larger traces are
	// not router requests.
	maxPack = 64 << 10
)

// packScratch joins a trace's parts and takes their block before the packed part is sized.
type packScratch struct{ joined, block []byte }

var packScratches = sync.Pool{New: func() any { return &packScratch{} }}

// Pack replaces a dropped trace's records in memory with one packed record, when that takes
// less memory. A trace is packed once, when it is dropped: spans joining it later stay plain.
func (s *Shard) Pack(si int32, t *Trace) {
	held := s.MemoryBytes(si, t)
	if t.data.len() == 0 || t.data.bytes()[0] == packedTag || held > maxPack {
		return
	}
	sc := packScratches.Get().(*packScratch)
	defer packScratches.Put(sc)
	sc.joined = sc.joined[:0]
	for part := range s.InMemory(si, t) {
		sc.joined = append(sc.joined, part...)
	}
	if n := snappy.MaxEncodedLen(len(sc.joined)); cap(sc.block) < n {
		sc.block = make([]byte, n)
	}
	block := snappy.Encode(sc.block[:cap(sc.block)], sc.joined)
	size := 1 + protowire.SizeVarint(uint64(len(block))) + len(block)
	if allocSize(size) >= held {
		return
	}
	packed := make([]byte, 0, size)
	packed = append(packed, packedTag)
	packed = protowire.AppendVarint(packed, uint64(len(block)))
	packed = append(packed, block...)
	s.dropMemory(si, t)
	t.data.set(packed)
	s.bytes += allocSize(size)
}

var errPartUnreadable = errors.New("parked part is neither OTLP records nor a packed block")

// appendUnpacked appends a parked part to dst as plain records, unpacking packed ones. On an
// error, dst holds the records before the unreadable one.
func appendUnpacked(dst, part []byte) ([]byte, error) {
	for len(part) > 0 {
		n, k := protowire.ConsumeVarint(part[1:])
		if k < 0 || n > uint64(len(part)-1-k) {
			return dst, errPartUnreadable
		}
		end := 1 + k + int(n)
		switch part[0] {
		case plainTag:
			dst = append(dst, part[:end]...)
		case packedTag:
			var err error
			if dst, err = appendBlock(dst, part[1+k:end]); err != nil {
				return dst, err
			}
		default:
			return dst, errPartUnreadable
		}
		part = part[end:]
	}
	return dst, nil
}

// appendBlock appends the decoded Snappy block to dst.
func appendBlock(dst, block []byte) ([]byte, error) {
	n, err := snappy.DecodedLen(block)
	if err != nil {
		return dst, errors.Join(errPartUnreadable, err)
	}
	start := len(dst)
	dst = append(dst, make([]byte, n)...)
	if decoded, err := snappy.Decode(dst[start:], block); err != nil || len(decoded) != n {
		return dst[:start], errors.Join(errPartUnreadable, err)
	}
	return dst, nil
}
