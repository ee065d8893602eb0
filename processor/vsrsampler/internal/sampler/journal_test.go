package sampler

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/journal"
)

// journaled is a sampler run on a journal, as the processor drives it: each batch is consumed,
// the journal committed (the batch is then acknowledged), the released spans delivered to a
// sink and their records marked done.
type journaled struct {
	t   *testing.T
	dir string
	j   *journal.Journal
	s   *Sampler
	rec *recorder
	// out counts each span the sink received.
	out map[spanKey]int
}

func journalOptions(dir string) journal.Options {
	return journal.Options{Dir: dir, MaxBytes: 1 << 30, KeepRetention: 5 * time.Minute, DropRetention: routerconv.ExportInterval}
}

// startJournaled starts a run on the journal in dir, recovering what an earlier run left.
func startJournaled(t *testing.T, dir string, cfg Config, out map[spanKey]int, now time.Time) (*journaled, Recovered) {
	j, rec, err := journal.Open(journalOptions(dir))
	require.NoError(t, err)
	cfg.Journal = j
	s, r := newSampler(t, cfg)
	run := &journaled{t: t, dir: dir, j: j, s: s, rec: r, out: out}
	released, got, err := s.Recover(rec, j.Get, now)
	require.NoError(t, err)
	run.deliver(released, now)
	require.NoError(t, j.Commit(now))
	require.NoError(t, j.Recovered())
	return run, got
}

func (r *journaled) collect(td ptrace.Traces) {
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, span := range ss.Spans().All() {
				r.out[spanKey{span.TraceID(), span.SpanID()}]++
			}
		}
	}
}

func (r *journaled) deliver(rel Released, now time.Time) {
	r.collect(rel.Traces)
	require.NoError(r.t, rel.Receipt.Done(now))
}

// crashPoint is where in a batch's life a run is killed.
type crashPoint int

const (
	// crashBeforeCommit: consumed, not yet in the journal's files: the batch was never
	// acknowledged, and its sender sends it again.
	crashBeforeCommit crashPoint = iota
	// crashBeforeDelivery: in the journal, but the spans that passed and were released never
	// reached the exporter, so the batch was not acknowledged: its sender sends it again.
	crashBeforeDelivery
	// crashBeforeDone: delivered, but the journal was not told: they come back, twice sent.
	crashBeforeDone
	// crashAfterDone: the batch's whole life went by.
	crashAfterDone
	numCrashPoints
)

func (c crashPoint) String() string {
	return [...]string{"before commit", "before delivery", "before done", "after done"}[c]
}

// step feeds batch td at now and ticks at next, as the processor would, up to the crash
// point (numCrashPoints: no crash). It reports whether the batch was acknowledged.
func (r *journaled) step(td ptrace.Traces, now, next time.Time, crash crashPoint) (acked bool) {
	pass, released := r.s.Consume(td, now)
	if crash == crashBeforeCommit {
		return false
	}
	require.NoError(r.t, r.j.Commit(now))
	if crash == crashBeforeDelivery {
		return false
	}
	r.collect(pass)
	r.collect(released.Traces)
	if crash == crashBeforeDone {
		return true
	}
	require.NoError(r.t, released.Receipt.Done(now))
	require.NoError(r.t, r.j.Commit(now))
	if crash == crashAfterDone {
		return true
	}
	r.deliver(r.s.Tick(next), next)
	require.NoError(r.t, r.j.Commit(next))
	return true
}

// TestCrashAnywhereLosesNoAcceptedSpan kills a journaled run at every point of a batch's life,
// at a random batch of a stream, starts a new run on the same journal and feeds it the rest
// (and the batch again, when it was not acknowledged). Nothing the journal acknowledged is
// lost: every span with an error or block signal reaches the sink, must-keep traces arrive
// whole, and no trace is split (kept by one run, dropped by the other). Spans delivered or
// journaled before a crash that came before the journal heard of their delivery can come
// twice, and are counted.
func TestCrashAnywhereLosesNoAcceptedSpan(t *testing.T) {
	duplicates := 0
	for seed := range uint64(40) {
		for crash := range numCrashPoints {
			t.Run(fmt.Sprintf("%d/%s", seed, crash), func(t *testing.T) {
				duplicates += crashAndRecover(t, seed, crash)
			})
		}
	}
	t.Logf("spans delivered twice across all runs: %d", duplicates)
}

func crashAndRecover(t *testing.T, seed uint64, crash crashPoint) int {
	st := newStream(seed, true, 0)
	rng := rand.New(rand.NewPCG(seed, 3))
	at := rng.IntN(len(st.batches))
	cfg := testConfig()
	cfg.DefaultPercentage = 30
	cfg.RescueWindow = routerconv.ExportInterval
	dir := t.TempDir()
	out := map[spanKey]int{}
	now := t0
	run, _ := startJournaled(t, dir, cfg, out, now)
	i := 0
	for ; i < len(st.batches); i++ {
		next := now.Add(st.gaps[i])
		point := numCrashPoints
		if i == at {
			point = crash
		}
		acked := run.step(st.batch(i), now, next, point)
		if i == at {
			if !acked {
				i-- // the sender sends it again
			}
			break
		}
		now = next
	}
	// The crash: the run's memory is gone, its files stay. A new run starts at once.
	require.NoError(t, run.j.Abandon())
	run, got := startJournaled(t, dir, cfg, out, now)
	t.Logf("crash %s at batch %d of %d: recovered %+v", crash, at, len(st.batches), got)
	for i++; i < len(st.batches); i++ {
		next := now.Add(st.gaps[i])
		run.step(st.batch(i), now, next, numCrashPoints)
		now = next
	}
	run.deliver(run.s.Flush(now), now)

	// A span sent twice (a retried export) may leave twice; more often is a duplicate.
	in := map[spanKey]int{}
	for _, batch := range st.batches {
		for _, d := range batch {
			span := st.traces[d.trace].Spans().At(d.span)
			in[spanKey{span.TraceID(), span.SpanID()}]++
		}
	}
	twice := 0
	for _, tr := range st.traces {
		kept := 0
		for _, span := range tr.Spans().All() {
			k := spanKey{span.TraceID(), span.SpanID()}
			n := out[k]
			if n > 0 {
				kept++
			}
			twice += max(n-in[k], 0)
			if keepAlways(routerconv.Classify(span, true).Signals) && n == 0 {
				t.Fatalf("span %s with an error or block signal was lost", span.Name())
			}
		}
		switch {
		case mustKeep(tr) && kept != tr.SpanCount():
			t.Fatalf("%s/%s trace arrived with %d of %d spans", tr.Request.Era, tr.Request.Outcome, kept, tr.SpanCount())
		case kept != 0 && kept != tr.SpanCount():
			t.Fatalf("%s/%s trace split: %d of %d spans kept", tr.Request.Era, tr.Request.Outcome, kept, tr.SpanCount())
		}
	}
	// Spans journaled and then sent again, because the crash came before their batch was
	// acknowledged or before the journal heard they were delivered, may leave twice; a batch
	// whose life ended, or that the journal never took, adds none.
	if crash == crashBeforeCommit || crash == crashAfterDone {
		require.Zero(t, twice, "spans delivered twice")
	}
	return twice
}

// A torn last record (the node crashed mid-write, without fsync) is skipped and counted; the
// records before it come back, and the run goes on.
func TestTornJournalTailIsSkipped(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig()
	cfg.DefaultPercentage = 0
	out := map[spanKey]int{}
	run, _ := startJournaled(t, dir, cfg, out, t0)
	first := build(routerconv.EraC, routersim.OutcomeError, 1)
	second := build(routerconv.EraD, routersim.OutcomeOK, 2)
	// Both traces' first spans are parked (their roots are still to come).
	run.step(batchOf(first, 0, 1), t0, t0, crashAfterDone)
	run.step(batchOf(second, 0, 1), t0, t0, crashAfterDone)
	require.NoError(t, run.j.Abandon())
	ids, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	require.NoError(t, err)
	slices.Sort(ids)
	last := ids[len(ids)-1]
	info, err := os.Stat(last)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(last, info.Size()-3))

	j, rec, err := journal.Open(journalOptions(dir))
	require.NoError(t, err)
	defer j.Close(t0)
	require.Equal(t, 1, rec.Stats.Skipped)
	require.Len(t, rec.Traces, 1, "the first trace's record is whole")
	require.Equal(t, [16]byte(first.ID), rec.Traces[0].ID)
}

// A guard-matched era C request kept while its root waits for the model call, killed: the
// next run sends the root on as it stood, and the model call that comes after the restart
// follows the keep decision, so the trace arrives whole.
func TestKilledWaitForAModelCallKeepsTheCall(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig()
	cfg.DefaultPercentage = 0
	out := map[spanKey]int{}
	tr := build(routerconv.EraC, routersim.OutcomePIIRouted, 3)
	last := tr.SpanCount() - 1
	require.Equal(t, "semantic_router.upstream.request", tr.Spans().At(last).Name(), "the model call ends last")
	run, _ := startJournaled(t, dir, cfg, out, t0)
	run.step(batchOf(tr, 0, last), t0, t0.Add(time.Second), numCrashPoints)
	require.NoError(t, run.j.Abandon())

	later := t0.Add(10 * time.Minute)
	run, got := startJournaled(t, dir, cfg, out, later)
	require.Equal(t, 1, got.Kept, "the waiting root")
	run.step(batchOf(tr, last, last+1), later, later, numCrashPoints)
	run.deliver(run.s.Flush(later), later)
	for _, span := range tr.Spans().All() {
		require.Positive(t, out[spanKey{span.TraceID(), span.SpanID()}], "%s delivered", span.Name())
	}
}
