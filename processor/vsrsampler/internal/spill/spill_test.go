package spill

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/dirlock"
)

func files(t *testing.T, dir string) []string {
	names, err := filepath.Glob(filepath.Join(dir, "*"+fileSuffix))
	require.NoError(t, err)
	return names
}

func TestRecordsReadBackFromBufferAndFile(t *testing.T) {
	s, err := Open(t.TempDir(), "vsr_sampler", 1<<30)
	require.NoError(t, err)
	defer s.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	var refs []Ref
	var want [][]byte
	// Enough records to fill several write buffers and two segments.
	for written := 0; written < segmentSize+segmentSize/2; {
		p := make([]byte, 1+rng.IntN(64<<10))
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		// Some records are put in parts, as a trace's parked chunks are.
		cut := rng.IntN(len(p) + 1)
		ref, err := s.Put(p[:cut], p[cut:])
		require.NoError(t, err)
		refs, want = append(refs, ref), append(want, p)
		written += len(p)
	}
	assert.Len(t, s.segments, 2)
	for i, ref := range refs {
		got, err := s.Get(ref, []byte("prefix"))
		require.NoError(t, err)
		require.True(t, bytes.Equal(append([]byte("prefix"), want[i]...), got), "record %d", i)
	}
}

func TestDiskFollowsLiveRecords(t *testing.T) {
	s, err := Open(t.TempDir(), "vsr_sampler", 1<<30)
	require.NoError(t, err)
	dir := s.Dir()
	record := make([]byte, 1<<20)
	var refs []Ref
	for range 40 { // 40 MiB: three segments
		ref, err := s.Put(record)
		require.NoError(t, err)
		refs = append(refs, ref)
	}
	assert.Equal(t, int64(40<<20), s.OnDisk())
	assert.Len(t, files(t, dir), 3)

	// Freeing the first segment's records deletes it; the current one stays until reused.
	for _, ref := range refs[:16] {
		s.Free(ref)
	}
	assert.Len(t, files(t, dir), 2)
	assert.Equal(t, int64(24<<20), s.OnDisk())
	for _, ref := range refs[16:] {
		s.Free(ref)
	}
	assert.Equal(t, int64(8<<20), s.OnDisk(), "the empty current segment is truncated on its next use")
	ref, err := s.Put([]byte("again"))
	require.NoError(t, err)
	assert.Equal(t, int64(5), s.OnDisk())
	got, err := s.Get(ref, nil)
	require.NoError(t, err)
	assert.Equal(t, "again", string(got))

	require.NoError(t, s.Close())
	assert.NoDirExists(t, dir)
	assert.Zero(t, s.OnDisk())
}

func TestFullStoreRefuses(t *testing.T) {
	s, err := Open(t.TempDir(), "vsr_sampler", 10)
	require.NoError(t, err)
	defer s.Close()
	_, err = s.Put([]byte("12345678"))
	require.NoError(t, err)
	_, err = s.Put([]byte("123"))
	assert.ErrorIs(t, err, ErrFull)
}

// A store whose process ended left its directory unlocked: the next one removes it. A store
// still open, and files that are not a store's, are left alone.
func TestOpenRemovesAbandonedStores(t *testing.T) {
	parent := t.TempDir()
	abandoned := filepath.Join(parent, "vsr_sampler-123")
	require.NoError(t, os.MkdirAll(abandoned, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(abandoned, dirlock.Name), nil, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(abandoned, "00000007"+fileSuffix), []byte("stale"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(parent, "keep.txt"), []byte("not ours"), 0o600))
	require.NoError(t, os.MkdirAll(filepath.Join(parent, "other"), 0o700))

	live, err := Open(parent, "vsr_sampler", 1<<20)
	require.NoError(t, err)
	defer live.Close()
	_, err = live.Put([]byte("live"))
	require.NoError(t, err)
	assert.NoDirExists(t, abandoned)
	assert.FileExists(t, filepath.Join(parent, "keep.txt"))
	assert.DirExists(t, filepath.Join(parent, "other"))

	next, err := Open(parent, "vsr_sampler", 1<<20)
	require.NoError(t, err)
	defer next.Close()
	assert.DirExists(t, live.Dir(), "a store still open is not abandoned")
}

// Two processors with one ID (two pipelines) configured with one directory share nothing.
func TestTwoStoresOfOneNameShareNothing(t *testing.T) {
	parent := t.TempDir()
	a, err := Open(parent, "vsr_sampler", 1<<20)
	require.NoError(t, err)
	b, err := Open(parent, "vsr_sampler", 1<<20)
	require.NoError(t, err)
	assert.NotEqual(t, a.Dir(), b.Dir())
	ra, err := a.Put([]byte("from a"))
	require.NoError(t, err)
	rb, err := b.Put([]byte("from b"))
	require.NoError(t, err)
	require.NoError(t, a.Close())
	got, err := b.Get(rb, nil)
	require.NoError(t, err)
	assert.Equal(t, "from b", string(got), "closing one store leaves the other's records")
	_, err = a.Get(ra, nil)
	assert.Error(t, err)
	require.NoError(t, b.Close())
}

func TestOpenReportsAnUnusableDirectory(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err := Open(filepath.Join(file, "spill"), "vsr_sampler", 1<<20)
	assert.Error(t, err)
}
