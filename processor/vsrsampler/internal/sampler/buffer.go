package sampler

import "unsafe"

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

// capacity is the memory the buffer holds.
func (b *buffer) capacity() int64 { return int64(b.c) }
