package journal

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// op is one append of the property test: span data parked in a phase, or a control record.
type op struct {
	trace [16]byte
	data  []byte
	phase Phase
	th    uint64
	c     Control
}

// model is what replay must give back after ops reached the files: per trace, the span
// records written since its last done mark and the phase its latest record says (a live span
// record or any decision), and its last decision.
type model struct {
	parts     map[[16]byte][][]byte
	phases    map[[16]byte]Phase
	decisions map[[16]byte]Control
}

func modelOf(ops []op) model {
	m := model{parts: map[[16]byte][][]byte{}, phases: map[[16]byte]Phase{}, decisions: map[[16]byte]Control{}}
	for _, o := range ops {
		switch {
		case o.data != nil:
			m.parts[o.trace] = append(m.parts[o.trace], o.data)
			m.phases[o.trace] = o.phase
		case o.c.Kind == KindDone:
			delete(m.parts, o.trace)
		default:
			m.decisions[o.trace] = o.c
			m.phases[o.trace] = map[Kind]Phase{KindKeep: PhaseKept, KindDrop: PhaseDropped}[o.c.Kind]
		}
	}
	for tr := range m.phases {
		if len(m.parts[tr]) == 0 {
			delete(m.phases, tr)
		}
	}
	return m
}

// TestPropertyCrashAnywhere drives a journal through random appends, frees, done marks and
// commits, kills it at a random point (possibly mid-write: the last file cut anywhere in what
// the last Commit wrote), and checks that replay returns every live span record and the last
// decision of every trace that reached the files, and nothing else.
func TestPropertyCrashAnywhere(t *testing.T) {
	for seed := range uint64(300) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { crashAnywhere(t, seed) })
	}
}

func crashAnywhere(t *testing.T, seed uint64) {
	rnd := rand.New(rand.NewPCG(seed, 7))
	dir := t.TempDir()
	o := opts(dir)
	o.KeepRetention, o.DropRetention = time.Hour, time.Hour
	o.Sync, o.SyncInterval = SyncInterval, time.Second
	o.segmentBytes = 4096
	j, _ := open(t, o)
	j.syncFile = func(*os.File) error { return nil } // what a sync promises, a cut below tests
	lives := map[[16]byte][]Ref{}
	var ops []op
	// written: how many ops are in the files. Commit writes all; starting a segment writes
	// what the one before it had pending.
	written := 0
	var lastCommitStart int64
	deletedLast := false
	now := t0
	sizes := []int{10, 100, 1000, 5000} // up to more than a segment: runs rotate and delete
	for range 20 + rnd.IntN(200) {
		tr := id(byte(rnd.IntN(6)))
		before := j.current
		switch n := rnd.IntN(10); {
		case n < 4:
			data := bytes.Repeat([]byte{byte(rnd.IntN(256))}, 1+rnd.IntN(sizes[rnd.IntN(len(sizes))]))
			phase, th := Phase(rnd.IntN(3)), rnd.Uint64N(1<<56)
			ref, err := j.AppendSpans(tr, now.UnixNano(), phase, th, data)
			require.NoError(t, err)
			lives[tr] = append(lives[tr], ref)
			ops = append(ops, op{trace: tr, data: data, phase: phase, th: th})
		case n < 6:
			kind := KindKeep
			if rnd.IntN(2) == 0 {
				kind = KindDrop
			}
			c := Control{Kind: kind, Trace: tr, At: now.UnixNano(), Threshold: rnd.Uint64N(1 << 56)}
			require.NoError(t, j.AppendDecision(c))
			ops = append(ops, op{trace: tr, c: c})
		case n < 8:
			// Done with the trace's spans: freed, and marked.
			since := uint32(0)
			for i, ref := range lives[tr] {
				if i == 0 || ref.Segment() < since {
					since = ref.Segment()
				}
				j.Free(ref)
			}
			c := Control{Kind: KindDone, Trace: tr, At: now.UnixNano(), Since: since, Pos: j.Mark()}
			require.NoError(t, j.AppendDone(c))
			delete(lives, tr)
			ops = append(ops, op{trace: tr, c: c})
		default:
			if cur := j.current; cur != nil {
				lastCommitStart = cur.written
			}
			deleted := j.Stats().Deleted
			require.NoError(t, j.Commit(now))
			// A commit that deleted a segment synced first: a cut cannot reach into it.
			deletedLast = j.Stats().Deleted != deleted
			written = len(ops)
			before = j.current
		}
		if j.current != before {
			written = len(ops) - 1
		}
		now = now.Add(time.Duration(rnd.IntN(100)) * time.Millisecond)
	}
	// The crash: what is pending never reached the kernel, and (half the runs) the last
	// segment is cut anywhere in what the last Commit wrote, as a node crash during its fsync.
	var last string
	var cutTo int64
	if cur := j.current; cur != nil && rnd.IntN(2) == 0 && cur.written > lastCommitStart && !deletedLast {
		last = cur.file.Name()
		cutTo = lastCommitStart + rnd.Int64N(cur.written-lastCommitStart)
	}
	crash(t, j)
	if last != "" {
		require.NoError(t, os.Truncate(last, cutTo))
		checkPrefix(t, o, ops[:written])
		return
	}
	want := modelOf(ops[:written])
	j, rec := open(t, o)
	defer j.Close(now)
	got := byID(rec)
	for tr, parts := range want.parts {
		require.Equal(t, parts, partsOf(t, j, got[tr]), "trace %x", tr[15])
	}
	for tr, rt := range got {
		require.Len(t, rt.Parts, len(want.parts[tr]), "trace %x has parts it should not", tr[15])
		if len(rt.Parts) > 0 {
			require.Equal(t, want.phases[tr], rt.Phase, "trace %x", tr[15])
		}
		if d, ok := want.decisions[tr]; ok {
			require.NotNil(t, rt.Decision)
			require.Equal(t, d.Kind, rt.Decision.Kind)
			require.Equal(t, d.Threshold, rt.Decision.Threshold)
		}
	}
	for tr := range want.decisions {
		require.NotNil(t, got[tr].Decision, "trace %x lost its decision", tr[15])
	}
}

// checkPrefix opens a journal whose last segment was cut: replay must give back exactly what
// some prefix of the written ops left, neither failing nor making up or reordering records.
func checkPrefix(t *testing.T, o Options, ops []op) {
	j, rec := open(t, o)
	defer j.Close(t0)
	got := model{parts: map[[16]byte][][]byte{}, phases: map[[16]byte]Phase{}, decisions: map[[16]byte]Control{}}
	for _, rt := range rec.Traces {
		if len(rt.Parts) > 0 {
			got.parts[rt.ID] = partsOf(t, j, rt)
			got.phases[rt.ID] = rt.Phase
		}
		if rt.Decision != nil {
			got.decisions[rt.ID] = *rt.Decision
		}
	}
	for k := len(ops); k >= 0; k-- {
		if sameModel(modelOf(ops[:k]), got) {
			return
		}
	}
	t.Fatalf("replay after a cut matches no prefix of the %d ops written", len(ops))
}

func sameModel(a, b model) bool {
	if len(a.parts) != len(b.parts) || len(a.decisions) != len(b.decisions) || len(a.phases) != len(b.phases) {
		return false
	}
	for tr, p := range a.phases {
		if b.phases[tr] != p {
			return false
		}
	}
	for tr, p := range a.parts {
		q := b.parts[tr]
		if len(p) != len(q) {
			return false
		}
		for i := range p {
			if !bytes.Equal(p[i], q[i]) {
				return false
			}
		}
	}
	for tr, d := range a.decisions {
		e, ok := b.decisions[tr]
		if !ok || d.Kind != e.Kind || d.Threshold != e.Threshold {
			return false
		}
	}
	return true
}

// FuzzReplay replays a segment of arbitrary bytes: it must neither fail nor panic, and every
// span record it hands out must lie within the segment, after its header.
func FuzzReplay(f *testing.F) {
	f.Add(frameOf(KindSpans, append(make([]byte, spansHeader), "otlp"...)))
	f.Add(append(frameOf(KindKeep, make([]byte, controlSize)), frameOf(KindDone, make([]byte, controlSize))[len(magic):]...))
	f.Add([]byte(magic))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, content []byte) {
		st := &replayState{traces: map[[16]byte]*replayTrace{}}
		require.NoError(t, st.add(0, bytes.NewReader(content), int64(len(content))))
		for _, rt := range st.recovery().Traces {
			for _, p := range rt.Parts {
				require.GreaterOrEqual(t, p.Ref.offset, int64(len(magic)+frameHeader+spansHeader))
				require.LessOrEqual(t, p.Ref.offset+int64(p.Ref.length), int64(len(content)))
			}
		}
	})
}
