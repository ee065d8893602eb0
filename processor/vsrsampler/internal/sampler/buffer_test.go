package sampler

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
