package store

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
)

// allocSize is what the runtime allocates for a byte slice, small or large.
func TestAllocSizeIsWhatTheRuntimeAllocates(t *testing.T) {
	for _, n := range []int{1, 15, 16, 17, 155, 1000, 2049, 32 << 10, 32<<10 + 1, 100_000} {
		assert.Equal(t, int64(cap(slices.Grow([]byte(nil), n))), allocSize(n), "%d bytes", n)
	}
}

// A buffer keeps its flags whatever it holds, and its bytes whatever its flags.
func TestBufferKeepsFlagsAndBytesApart(t *testing.T) {
	var b buffer
	b.setFlags(0b10101)
	p := make([]byte, 3, 10)
	copy(p, "abc")
	b.set(p)
	assert.Equal(t, "abc", string(b.bytes()))
	assert.Equal(t, 10, b.capacity())
	assert.Equal(t, uint8(0b10101), b.flags())
	b.setFlags(0b11111)
	assert.Equal(t, "abc", string(b.bytes()))
	assert.Equal(t, 10, b.capacity())
	b.set(nil)
	assert.Zero(t, b.len())
	assert.Equal(t, uint8(0b11111), b.flags())
	assert.True(t, fits(make([]byte, maxBuffer)))
	assert.False(t, fits(make([]byte, maxBuffer+1)))
}
