package journal

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var t0 = time.Unix(1_700_000_000, 0)

// testSegment is the segment size of the tests: small, so that they rotate cheaply.
const testSegment = 64 << 10

func opts(dir string) Options {
	return Options{Dir: dir, MaxBytes: 1 << 30, KeepRetention: time.Minute, DropRetention: 5 * time.Second,
		segmentBytes: testSegment}
}

func id(n byte) [16]byte { return [16]byte{15: n, 0: 0xab} }

func open(t *testing.T, o Options) (*Journal, *Recovery) {
	t.Helper()
	j, rec, err := Open(o)
	require.NoError(t, err)
	return j, rec
}

// crash leaves the journal's files as a killed process would: written, not closed cleanly.
func crash(t *testing.T, j *Journal) {
	t.Helper()
	require.NoError(t, j.Abandon())
}

func partsOf(t *testing.T, j *Journal, rt RecoveredTrace) [][]byte {
	t.Helper()
	var out [][]byte
	for _, p := range rt.Parts {
		b, err := j.Get(p.Ref, nil)
		require.NoError(t, err)
		out = append(out, b)
	}
	return out
}

func byID(rec *Recovery) map[[16]byte]RecoveredTrace {
	m := map[[16]byte]RecoveredTrace{}
	for _, rt := range rec.Traces {
		m[rt.ID] = rt
	}
	return m
}

func TestAppendGetAndReplay(t *testing.T) {
	dir := t.TempDir()
	j, rec := open(t, opts(dir))
	require.Empty(t, rec.Traces)
	r1, err := j.AppendSpans(id(1), t0.UnixNano(), PhaseOpen, 0, []byte("one"))
	require.NoError(t, err)
	r2, err := j.AppendSpans(id(2), t0.UnixNano()+1, PhaseOpen, 0, []byte("two"))
	require.NoError(t, err)
	// Readable before and after they reach the file.
	got, err := j.Get(r2, []byte("x"))
	require.NoError(t, err)
	require.Equal(t, "xtwo", string(got))
	require.NoError(t, j.Commit(t0))
	got, err = j.Get(r1, nil)
	require.NoError(t, err)
	require.Equal(t, "one", string(got))
	_, err = j.AppendSpans(id(1), t0.UnixNano()+2, PhaseOpen, 0, []byte("one-b"))
	require.NoError(t, err)
	require.NoError(t, j.AppendDecision(Control{Kind: KindKeep, Trace: id(2), At: t0.UnixNano(), Threshold: 7}))
	require.NoError(t, j.Commit(t0))
	crash(t, j)

	j, rec = open(t, opts(dir))
	defer j.Close(t0)
	require.Len(t, rec.Traces, 2)
	require.Equal(t, id(1), rec.Traces[0].ID, "traces come back in the order they first came")
	require.Equal(t, [][]byte{[]byte("one"), []byte("one-b")}, partsOf(t, j, rec.Traces[0]))
	require.Equal(t, t0.UnixNano(), rec.Traces[0].Parts[0].At)
	require.Nil(t, rec.Traces[0].Decision)
	two := rec.Traces[1]
	require.Equal(t, PhaseKept, two.Phase)
	require.Equal(t, uint64(7), two.Threshold)
	require.Equal(t, KindKeep, two.Decision.Kind)
}

func TestDoneMarksTheSpansBeforeIt(t *testing.T) {
	dir := t.TempDir()
	j, _ := open(t, opts(dir))
	ref, err := j.AppendSpans(id(1), 1, PhaseOpen, 0, []byte("before"))
	require.NoError(t, err)
	require.NoError(t, j.AppendDecision(Control{Kind: KindKeep, Trace: id(1), At: t0.UnixNano()}))
	// Released, and parked again at once (a kept trace's root): the mark is the re-parked
	// record's own position, and the record is not done with.
	mark := j.Mark()
	_, err = j.AppendSpans(id(1), 2, PhaseKept, 0, []byte("parked again"))
	require.NoError(t, err)
	require.NoError(t, j.AppendDone(Control{Trace: id(1), At: t0.UnixNano(), Since: ref.Segment(), Pos: mark}))
	// The trace comes again after it was done with (its keep decision forgotten): a new life.
	_, err = j.AppendSpans(id(1), 2, PhaseOpen, 0, []byte("after"))
	require.NoError(t, err)
	require.NoError(t, j.Commit(t0))
	crash(t, j)

	j, rec := open(t, opts(dir))
	defer j.Close(t0)
	require.Len(t, rec.Traces, 1)
	rt := rec.Traces[0]
	require.Equal(t, [][]byte{[]byte("parked again"), []byte("after")}, partsOf(t, j, rt))
	require.NotNil(t, rt.Decision, "the keep decision still serves the decision cache")
	require.Equal(t, PhaseOpen, rt.Phase, "it was made for the spans that left, not for those still here")
}

func TestTornTailAtEveryByte(t *testing.T) {
	dir := t.TempDir()
	j, _ := open(t, opts(dir))
	_, err := j.AppendSpans(id(1), 1, PhaseOpen, 0, []byte("whole"))
	require.NoError(t, err)
	require.NoError(t, j.Commit(t0))
	name := j.segmentPath(0)
	whole, err := os.ReadFile(name)
	require.NoError(t, err)
	second, err := j.AppendSpans(id(2), 2, PhaseOpen, 0, []byte("cut short"))
	require.NoError(t, err)
	secondEnd := int(second.offset) + second.Len()
	require.NoError(t, j.AppendDecision(Control{Kind: KindDrop, Trace: id(1), At: 3}))
	require.NoError(t, j.Commit(t0))
	crash(t, j)
	full, err := os.ReadFile(name)
	require.NoError(t, err)

	for cut := len(whole); cut < len(full); cut++ {
		d := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(d, filepath.Base(name)), full[:cut], 0o600))
		j, rec := open(t, opts(d))
		m := byID(rec)
		require.Equal(t, [][]byte{[]byte("whole")}, partsOf(t, j, m[id(1)]), "cut at %d", cut)
		require.Nil(t, m[id(1)].Decision, "cut at %d", cut)
		switch {
		case cut == secondEnd:
			require.Len(t, m[id(2)].Parts, 1, "a cut between records loses nothing written before it")
			require.Zero(t, rec.Stats.Skipped)
		case cut > secondEnd:
			require.Len(t, m[id(2)].Parts, 1, "cut at %d", cut)
			require.Equal(t, 1, rec.Stats.Skipped, "cut at %d", cut)
			require.Equal(t, int64(cut-secondEnd), rec.Stats.SkippedBytes)
		case cut > len(whole):
			require.Empty(t, m[id(2)].Parts, "cut at %d", cut)
			require.Equal(t, 1, rec.Stats.Skipped, "cut at %d", cut)
			require.Equal(t, int64(cut-len(whole)), rec.Stats.SkippedBytes)
		}
		// The run goes on in a new segment, and the next one reads both.
		_, err := j.AppendSpans(id(3), 4, PhaseOpen, 0, []byte("next run"))
		require.NoError(t, err)
		require.NoError(t, j.Commit(t0))
		crash(t, j)
		j, rec = open(t, opts(d))
		require.Len(t, byID(rec)[id(3)].Parts, 1, "cut at %d", cut)
		crash(t, j)
	}
}

func TestCorruptRecordEndsItsSegment(t *testing.T) {
	dir := t.TempDir()
	j, _ := open(t, opts(dir))
	for n := byte(1); n <= 3; n++ {
		_, err := j.AppendSpans(id(n), 1, PhaseOpen, 0, bytes.Repeat([]byte{n}, 100))
		require.NoError(t, err)
	}
	require.NoError(t, j.Commit(t0))
	crash(t, j)
	name := filepath.Join(dir, "0000000000.wal")
	raw, err := os.ReadFile(name)
	require.NoError(t, err)
	second := len(magic) + frameHeader + spansHeader + 100
	raw[second+frameHeader+spansHeader+50] ^= 0xff // a flipped bit in the second record's spans
	require.NoError(t, os.WriteFile(name, raw, 0o600))

	j, rec := open(t, opts(dir))
	defer j.Close(t0)
	m := byID(rec)
	require.Len(t, m[id(1)].Parts, 1)
	require.Empty(t, m[id(2)].Parts, "a record that does not check is never handed out")
	require.Equal(t, 1, rec.Stats.Skipped)
}

func TestGarbageNeverStopsOpen(t *testing.T) {
	for name, content := range map[string][]byte{
		"empty":          nil,
		"no header":      []byte("not a journal at all"),
		"huge length":    append([]byte(magic), 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, byte(KindSpans)),
		"unknown kind":   append([]byte(magic), 1, 0, 0, 0, 0, 0, 0, 0, 99, 0),
		"short control":  frameOf(KindKeep, []byte("short")),
		"future control": frameOf(KindKeep, futureControl()),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "0000000000.wal"), content, 0o600))
			j, rec := open(t, opts(dir))
			require.Empty(t, rec.Traces)
			require.NoError(t, j.Close(t0))
		})
	}
}

// futureControl is a keep decision that claims to have been first written in a later segment.
func futureControl() []byte {
	p := make([]byte, controlSize)
	p[36] = 5
	return p
}

// frameOf is a segment holding one record of kind with payload, correctly framed.
func frameOf(kind Kind, payload []byte) []byte {
	j := &Journal{current: &segment{}}
	j.pending = append(j.pending, magic...)
	j.frame(kind, payload, nil)
	return j.pending
}

func TestSegmentsGoWithTheirLastSpans(t *testing.T) {
	dir := t.TempDir()
	j, _ := open(t, opts(dir))
	defer j.Close(t0)
	big := bytes.Repeat([]byte("s"), testSegment/3-100) // three to a segment
	var refs []Ref
	for n := range 7 {
		ref, err := j.AppendSpans(id(byte(n)), 1, PhaseOpen, 0, big)
		require.NoError(t, err)
		refs = append(refs, ref)
	}
	require.NoError(t, j.Commit(t0))
	files := func() int {
		ids, err := segmentIDs(dir)
		require.NoError(t, err)
		return len(ids)
	}
	require.Equal(t, 3, files())
	j.Free(refs[0])
	j.Free(refs[1])
	require.NoError(t, j.Commit(t0))
	require.Equal(t, 3, files(), "a segment with a live record stays")
	j.Free(refs[2])
	require.NoError(t, j.Commit(t0))
	require.Equal(t, 2, files(), "a sealed segment goes with its last record")
	before := j.OnDisk()
	for _, r := range refs[3:] {
		j.Free(r)
	}
	require.NoError(t, j.Commit(t0))
	require.Equal(t, 1, files(), "only the current segment stays")
	require.Less(t, j.OnDisk(), before)
	_, err := j.Get(refs[0], nil)
	require.Error(t, err)
}

func TestControlRecordsAreCarriedWhileTheyMatter(t *testing.T) {
	dir := t.TempDir()
	o := opts(dir)
	j, _ := open(t, o)
	big := bytes.Repeat([]byte("s"), testSegment/2) // one to a segment with anything else
	// Segment 0: spans of a trace that stay live.
	long, err := j.AppendSpans(id(1), 1, PhaseOpen, 0, []byte("long-lived"))
	require.NoError(t, err)
	_, err = j.AppendSpans(id(10), 1, PhaseOpen, 0, big)
	require.NoError(t, err)
	// Segment 1: trace 2's spans, done with, and decisions and done marks of all ages.
	r2, err := j.AppendSpans(id(2), 1, PhaseOpen, 0, big)
	require.NoError(t, err)
	require.Equal(t, []uint32{0, 1}, []uint32{long.Segment(), r2.Segment()})
	now := t0.Add(time.Hour)
	for _, c := range []Control{
		{Kind: KindKeep, Trace: id(2), At: now.UnixNano(), Threshold: 9, Since: r2.Segment()},
		{Kind: KindKeep, Trace: id(4), At: now.Add(-2 * time.Minute).UnixNano(), Since: NoSegment},
		// A root awaiting its model call, parked in segment 0 past the keep's retention.
		{Kind: KindKeep, Trace: id(1), At: now.Add(-2 * time.Minute).UnixNano(), Threshold: 3, Since: long.Segment()},
		{Kind: KindDrop, Trace: id(5), At: now.UnixNano()},
		{Kind: KindDrop, Trace: id(6), At: now.Add(-time.Minute).UnixNano()},
		{Kind: KindDone, Trace: id(2), At: now.UnixNano(), Since: r2.Segment(), Pos: j.Mark()},
		{Kind: KindDone, Trace: id(7), At: now.UnixNano(), Since: long.Segment(), Pos: j.Mark()},
	} {
		if c.Kind == KindDone {
			require.NoError(t, j.AppendDone(c))
		} else {
			require.NoError(t, j.AppendDecision(c))
		}
	}
	// Segment 2, so that segment 1 is sealed.
	_, err = j.AppendSpans(id(8), 1, PhaseOpen, 0, big)
	require.NoError(t, err)
	j.Free(r2)
	require.NoError(t, j.Commit(now))
	ids, err := segmentIDs(dir)
	require.NoError(t, err)
	require.Equal(t, []uint32{0, 2}, ids, "the segment of freed spans is gone")
	require.Equal(t, 4, j.Stats().Carried, "the recent keep, the keep of spans in segment 0, the recent drop, and the done mark of spans in segment 0")
	crash(t, j)

	j, rec := open(t, o)
	defer j.Close(now)
	m := byID(rec)
	require.Equal(t, uint64(9), m[id(2)].Decision.Threshold)
	require.Empty(t, m[id(2)].Parts)
	require.Equal(t, KindDrop, m[id(5)].Decision.Kind)
	require.NotContains(t, m, id(4), "a keep older than its retention is not carried")
	require.Equal(t, PhaseKept, m[id(1)].Phase, "a keep whose spans are still on disk is carried past its retention")
	require.NotContains(t, m, id(6), "a drop past the rescue window is not carried")
	require.NotContains(t, m, id(7), "a done mark alone is not a trace")
}

func TestCarriedDoneKeepsItsPlace(t *testing.T) {
	// A done mark carried forward must not swallow the spans of the trace's next life that
	// were written after the mark but before the carry.
	dir := t.TempDir()
	j, _ := open(t, opts(dir))
	big := bytes.Repeat([]byte("s"), testSegment/2)
	pin, err := j.AppendSpans(id(9), 1, PhaseOpen, 0, []byte("pins segment 0"))
	require.NoError(t, err)
	_, err = j.AppendSpans(id(10), 1, PhaseOpen, 0, big)
	require.NoError(t, err)
	r1, err := j.AppendSpans(id(1), 1, PhaseOpen, 0, big)
	require.NoError(t, err)
	require.NoError(t, j.AppendDone(Control{Trace: id(1), At: 1, Since: pin.Segment(), Pos: j.Mark()}))
	_, err = j.AppendSpans(id(2), 1, PhaseOpen, 0, big)
	require.NoError(t, err)
	next, err := j.AppendSpans(id(1), 2, PhaseOpen, 0, []byte("next life"))
	require.NoError(t, err)
	require.Equal(t, []uint32{0, 1, 2}, []uint32{pin.Segment(), r1.Segment(), next.Segment()})
	j.Free(r1)
	require.NoError(t, j.Commit(t0))
	require.Equal(t, 1, j.Stats().Carried)
	crash(t, j)

	j, rec := open(t, opts(dir))
	defer j.Close(t0)
	require.Equal(t, [][]byte{[]byte("next life")}, partsOf(t, j, byID(rec)[id(1)]))
}

func TestRecoveredDeletesTheLastRunsSegments(t *testing.T) {
	dir := t.TempDir()
	j, _ := open(t, opts(dir))
	_, err := j.AppendSpans(id(1), 1, PhaseOpen, 0, []byte("x"))
	require.NoError(t, err)
	require.NoError(t, j.Close(t0))

	j, rec := open(t, opts(dir))
	require.Len(t, rec.Traces, 1)
	// What the caller keeps of the last run it appends again, then commits.
	_, err = j.AppendSpans(id(1), rec.Traces[0].Parts[0].At, PhaseOpen, 0, partsOf(t, j, rec.Traces[0])[0])
	require.NoError(t, err)
	require.NoError(t, j.Commit(t0))
	require.NoError(t, j.Recovered())
	ids, err := segmentIDs(dir)
	require.NoError(t, err)
	require.Equal(t, []uint32{1}, ids)
	require.NoError(t, j.Close(t0))

	j, rec = open(t, opts(dir))
	defer j.Close(t0)
	require.Len(t, rec.Traces, 1)
	require.Len(t, rec.Traces[0].Parts, 1, "taken in once, not once per restart")
}

func TestOneProcessAtATime(t *testing.T) {
	dir := t.TempDir()
	j, _ := open(t, opts(dir))
	_, _, err := Open(opts(dir))
	require.ErrorContains(t, err, "in use by another process")
	require.NoError(t, j.Close(t0))
	j, _ = open(t, opts(dir))
	require.NoError(t, j.Close(t0))
}

func TestMaxBytes(t *testing.T) {
	o := opts(t.TempDir())
	o.MaxBytes = 1000
	j, _ := open(t, o)
	defer j.Close(t0)
	ref, err := j.AppendSpans(id(1), 1, PhaseOpen, 0, make([]byte, 600))
	require.NoError(t, err)
	_, err = j.AppendSpans(id(2), 1, PhaseOpen, 0, make([]byte, 600))
	require.ErrorIs(t, err, ErrFull)
	require.NoError(t, j.AppendDecision(Control{Kind: KindKeep, Trace: id(1), At: 1}), "control records are always taken")
	j.Free(ref)
	require.NoError(t, j.Commit(t0))
	_, err = j.AppendSpans(id(2), 1, PhaseOpen, 0, make([]byte, 600))
	require.ErrorIs(t, err, ErrFull, "the current segment keeps its bytes until it is sealed")
}

func TestSyncPolicy(t *testing.T) {
	for _, tc := range []struct {
		policy SyncPolicy
		want   int
	}{{SyncNever, 0}, {SyncBatch, 4}, {SyncInterval, 2}} {
		o := opts(t.TempDir())
		o.Sync, o.SyncInterval = tc.policy, time.Second
		j, _ := open(t, o)
		syncs := 0
		j.syncFile = func(*os.File) error { syncs++; return nil }
		for i, at := range []time.Duration{0, 100 * time.Millisecond, 1100 * time.Millisecond, 1200 * time.Millisecond} {
			_, err := j.AppendSpans(id(byte(i)), 1, PhaseOpen, 0, []byte("x"))
			require.NoError(t, err)
			require.NoError(t, j.Commit(t0.Add(at)))
		}
		require.Equal(t, tc.want, syncs, "policy %d", tc.policy)
		require.NoError(t, j.Close(t0))
	}
}

// A crash in the middle of a compaction (the carried records written, the old segment not yet
// deleted) leaves both copies; replay reads them as one, by their first position.
func TestCrashDuringCompaction(t *testing.T) {
	dir := t.TempDir()
	j, _ := open(t, opts(dir))
	big := bytes.Repeat([]byte("s"), testSegment/2)
	pin, err := j.AppendSpans(id(1), 1, PhaseOpen, 0, []byte("pins segment 0"))
	require.NoError(t, err)
	_, err = j.AppendSpans(id(9), 1, PhaseOpen, 0, big)
	require.NoError(t, err)
	r2, err := j.AppendSpans(id(2), 1, PhaseOpen, 0, big)
	require.NoError(t, err)
	require.NoError(t, j.AppendDecision(Control{Kind: KindKeep, Trace: id(2), At: t0.UnixNano(), Threshold: 5}))
	require.NoError(t, j.AppendDone(Control{Trace: id(2), At: t0.UnixNano(), Since: pin.Segment(), Pos: j.Mark()}))
	_, err = j.AppendSpans(id(3), 1, PhaseOpen, 0, big)
	require.NoError(t, err)
	j.Free(r2)
	// Commit's first half: carry and write, then the crash, before the old segment goes.
	j.mu.Lock()
	require.NoError(t, j.carryRetired(t0))
	require.NoError(t, j.write())
	carried := j.stats.Carried
	j.mu.Unlock()
	require.Equal(t, 2, carried, "the keep and the done mark")
	crash(t, j)

	j, rec := open(t, opts(dir))
	defer j.Close(t0)
	m := byID(rec)
	require.Equal(t, uint64(5), m[id(2)].Decision.Threshold)
	require.Empty(t, m[id(2)].Parts, "its spans are done with, whichever copy of the mark is read")
	require.Len(t, m[id(1)].Parts, 1)
	require.Len(t, m[id(3)].Parts, 1)
}
