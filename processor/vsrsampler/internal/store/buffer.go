package store

import (
	"slices"
	"unsafe"
)

// buffer is a byte slice held in 16 bytes instead of 24, with a trace's flags: every trace in
// flight has one, and a collector under load holds tens of thousands. ptr is the start of the
// allocation, which keeps it alive for the garbage collector. The top bits of its capacity
// word are the flags, so it holds up to maxBuffer bytes; larger records go elsewhere.
type buffer struct {
	ptr *byte
	n   uint32
	// capFlags is the capacity (low capBits bits) and the flags.
	capFlags uint32
}

const (
	capBits = 27
	// maxBuffer is the largest capacity a buffer holds: 128 MiB, far over a record's size
	// (one export request's spans of one trace; OTLP receivers take 4 MiB requests).
	maxBuffer = 1<<capBits - 1
)

func (b *buffer) bytes() []byte {
	if b.ptr == nil {
		return nil
	}
	return unsafe.Slice(b.ptr, b.capacity())[:b.n]
}

// fits reports whether p can be held.
func fits(p []byte) bool { return cap(p) <= maxBuffer }

// set holds p, which fits, keeping the flags.
func (b *buffer) set(p []byte) {
	flags := b.capFlags &^ maxBuffer
	if cap(p) == 0 {
		*b = buffer{capFlags: flags}
		return
	}
	b.ptr, b.n, b.capFlags = unsafe.SliceData(p), uint32(len(p)), uint32(cap(p))|flags
}

func (b *buffer) len() int { return int(b.n) }

// capacity is the buffer's; allocSize of it is the memory the buffer holds.
func (b *buffer) capacity() int { return int(b.capFlags & maxBuffer) }

func (b *buffer) flags() uint8 { return uint8(b.capFlags >> capBits) }

func (b *buffer) setFlags(f uint8) {
	b.capFlags = b.capFlags&maxBuffer | uint32(f)<<capBits
}

// allocSize is the memory an n-byte allocation takes: the runtime rounds small ones up to its
// size classes and large ones to whole pages. Accounting what was asked for would undercount
// by up to an eighth.
func allocSize(n int) int64 {
	if n > maxSmallSize {
		return int64((n + pageSize - 1) / pageSize * pageSize)
	}
	i, _ := slices.BinarySearch(sizeClasses, n)
	return int64(sizeClasses[i])
}

const (
	maxSmallSize = 32 << 10
	pageSize     = 8 << 10
)

// sizeClasses are the runtime's, read from it: growing an empty slice to n bytes allocates
// n rounded up to its class.
var sizeClasses = func() []int {
	var classes []int
	for n := 1; n <= maxSmallSize; n = classes[len(classes)-1] + 1 {
		classes = append(classes, cap(slices.Grow([]byte(nil), n)))
	}
	return classes
}()
