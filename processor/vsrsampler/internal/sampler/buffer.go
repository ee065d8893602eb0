package sampler

import (
	"slices"
	"unsafe"
)

// buffer is a byte slice held in 16 bytes instead of 24: every trace in flight has one, and a
// collector under load holds tens of thousands. ptr is the start of the allocation, which
// keeps it alive for the garbage collector. It holds up to 4 GiB (max_trace_bytes is less).
type buffer struct {
	ptr  *byte
	n, c uint32
}

func (b *buffer) bytes() []byte {
	if b.ptr == nil {
		return nil
	}
	return unsafe.Slice(b.ptr, b.c)[:b.n]
}

func (b *buffer) set(p []byte) {
	if cap(p) == 0 {
		*b = buffer{}
		return
	}
	b.ptr, b.n, b.c = unsafe.SliceData(p), uint32(len(p)), uint32(cap(p))
}

func (b *buffer) len() int { return int(b.n) }

// capacity is the buffer's; allocSize of it is the memory the buffer holds.
func (b *buffer) capacity() int { return int(b.c) }

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
