package sampler

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
)

// spanKey identifies a span across traces.
type spanKey struct {
	trace pcommon.TraceID
	span  pcommon.SpanID
}

// delivery is one span on its way: which trace, which span, and whether it is a retry.
type delivery struct {
	trace int
	span  int
}

// stream is a random but reproducible arrival of router traffic at one collector: traces in
// flight at once, their spans interleaved and split across batches, retried exports, and for
// kept traces a tail of spans arriving long after the decision.
type stream struct {
	traces  []routersim.Trace
	batches [][]delivery
	// gaps[i] is the clock advance after batch i.
	gaps []time.Duration
}

// mustKeep reports whether the simulator made a trace that must always be kept.
func mustKeep(tr routersim.Trace) bool {
	return tr.Request.Outcome == routersim.OutcomeError || tr.Request.Outcome.Blocked()
}

// evidence is the index of the first span that shows why a trace must be kept.
func evidence(tr routersim.Trace) int {
	for i, s := range tr.Spans().All() {
		if keepAlways(routerconv.Classify(s, true).Signals) {
			return i
		}
	}
	return -1
}

// newStream draws a stream. Ordered streams deliver each trace's spans in the order the router
// ends them, with gaps shorter than the grace period; unordered ones shuffle each trace.
func newStream(seed uint64, ordered bool, traces int) stream {
	rng := rand.New(rand.NewPCG(seed, 99))
	mix := routersim.Mix{EraWeights: [4]float64{1, 1, 1, 1}, ErrorRate: 0.15, BlockedRate: 0.15, PIIRoutedRate: 0.1, SlowRate: 0.05,
		CacheHitRate: 0.1, RemoteParentRate: 0.5}
	drawer := routersim.NewDrawer(mix, rng)
	var st stream
	n := traces
	if n <= 0 {
		n = 20 + rng.IntN(40)
	}
	for i := range n {
		st.traces = append(st.traces, routersim.Build(drawer.Draw(t0.Add(time.Duration(i)*100*time.Millisecond)), rng))
	}
	queues := make([][]int, n) // spans still to deliver, per trace
	var lateTail [][]delivery
	for i, tr := range st.traces {
		order := make([]int, tr.SpanCount())
		for j := range order {
			order[j] = j
		}
		if !ordered {
			rng.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		}
		if ev := evidence(tr); ordered && ev >= 0 && ev+1 < len(order) && rng.IntN(2) == 0 {
			var tail []delivery
			for _, j := range order[ev+1:] {
				tail = append(tail, delivery{i, j})
			}
			lateTail = append(lateTail, tail)
			order = order[:ev+1]
		}
		queues[i] = order
	}
	var delivered []delivery
	next, active := 0, []int{}
	for next < n || len(active) > 0 {
		for len(active) < 8 && next < n {
			active = append(active, next)
			next++
		}
		var batch []delivery
		still := active[:0]
		for _, i := range active {
			for k := 1 + rng.IntN(2); k > 0 && len(queues[i]) > 0; k-- {
				batch = append(batch, delivery{i, queues[i][0]})
				queues[i] = queues[i][1:]
			}
			if len(queues[i]) > 0 {
				still = append(still, i)
			}
		}
		active = still
		if len(delivered) > 0 && rng.IntN(5) == 0 { // a retried export
			batch = append(batch, delivered[rng.IntN(len(delivered))])
		}
		rng.Shuffle(len(batch), func(a, b int) { batch[a], batch[b] = batch[b], batch[a] })
		delivered = append(delivered, batch...)
		st.batches = append(st.batches, batch)
		st.gaps = append(st.gaps, time.Duration(rng.IntN(300))*time.Millisecond)
	}
	for _, tail := range lateTail {
		st.batches = append(st.batches, tail)
		st.gaps = append(st.gaps, 5*time.Second)
	}
	return st
}

// batch builds the OTLP request for batch i, one resource per trace as router pods send.
func (st stream) batch(i int) ptrace.Traces {
	td := ptrace.NewTraces()
	for _, d := range st.batches[i] {
		tr := st.traces[d.trace]
		src := tr.Traces.ResourceSpans().At(0)
		rs := td.ResourceSpans().AppendEmpty()
		src.Resource().CopyTo(rs.Resource())
		ss := rs.ScopeSpans().AppendEmpty()
		src.ScopeSpans().At(0).Scope().CopyTo(ss.Scope())
		tr.Spans().At(d.span).CopyTo(ss.Spans().AppendEmpty())
	}
	return td
}

// streamRun is how a stream is fed. Ordered streams, and any with the rescue window, must also
// keep traces whole. With spill,
// the memory budget is a fraction of what the stream needs and the rest spills; with dynamic,
// the rate comes from dynamic sampling; with rescue, dropped traces wait out the default
// rescue window (packed); with shortWait, a root waits for its model call 2 s after its
// trace's last span, less than the stream's late tails take. None of them may change what is
// kept whole.
type streamRun struct {
	seed                       uint64
	ordered                    bool
	spill                      *countingSpill
	dynamic, rescue, shortWait bool
}

// shortWait is streamRun.shortWait's model_call_wait.
const shortWait = 2 * time.Second

// runStream feeds a stream through a sampler and checks the properties every stream must keep.
// It returns what the sampler reported.
func runStream(t *testing.T, st stream, r streamRun) *recorder {
	seed, sp := r.seed, r.spill
	// A shuffled stream can show a trace complete before its error comes; the rescue window
	// brings it back whole.
	whole := r.ordered || r.rescue
	cfg := testConfig()
	cfg.DefaultPercentage = 30
	if r.dynamic {
		cfg.Dynamic = &Dynamic{Keys: []string{"category.name"}, TargetPerSecond: 5, Window: 2 * time.Second}
	}
	if r.rescue {
		cfg.RescueWindow = routerconv.ExportInterval // the default
	}
	if sp != nil {
		cfg.Shards, cfg.MaxBufferBytes, cfg.Spill = 1, spilledBudget, sp
	}
	if r.shortWait {
		cfg.ModelCallWait = shortWait
	}
	s, rec := newSampler(t, cfg)
	// The sampler never copies a span: each leaves at most as often as it came. Retries of a
	// buffered span are collapsed (TestDuplicateSpansWhileBuffered); a retry arriving after
	// the decision is indistinguishable from a late span and follows it.
	in := map[spanKey]int{}
	out := map[spanKey]int{}
	ths := map[spanKey]string{}
	collect := func(td ptrace.Traces) {
		for _, rs := range td.ResourceSpans().All() {
			for _, ss := range rs.ScopeSpans().All() {
				for _, span := range ss.Spans().All() {
					k := spanKey{span.TraceID(), span.SpanID()}
					out[k]++
					ths[k] = span.TraceState().AsRaw()
				}
			}
		}
	}
	// late[i]: a span of trace i came model_call_wait or more after the one before it, so
	// the trace may have been closed without it, as it stood.
	late := make([]bool, len(st.traces))
	lastAt := make([]time.Time, len(st.traces))
	now := t0
	for i := range st.batches {
		for _, d := range st.batches[i] {
			span := st.traces[d.trace].Spans().At(d.span)
			in[spanKey{span.TraceID(), span.SpanID()}]++
			if !lastAt[d.trace].IsZero() && now.Sub(lastAt[d.trace]) >= cfg.ModelCallWait {
				late[d.trace] = true
			}
		}
		for _, d := range st.batches[i] {
			lastAt[d.trace] = now
		}
		collect(consume(s, st.batch(i), now))
		now = now.Add(st.gaps[i])
		collect(s.Tick(now).Traces)
	}
	collect(s.Flush(now).Traces)

	if _, traces := s.Held(); s.Memory(PartSpans) != 0 || traces != 0 {
		t.Fatalf("seed %d: %d span bytes in %d traces held after flush", seed, s.Memory(PartSpans), traces)
	}
	if sp != nil {
		switch {
		case sp.live != 0:
			t.Fatalf("seed %d: %d spilled records left after flush", seed, sp.live)
		case rec.spillFails != 0:
			t.Fatalf("seed %d: %d spill failures", seed, rec.spillFails)
		case len(rec.decided[TriggerPressure]) != 0:
			t.Fatalf("seed %d: traces decided early under pressure: %v", seed, rec.decided[TriggerPressure])
		case len(rec.waited[TriggerPressure]) != 0:
			t.Fatalf("seed %d: %d roots' waits for their model calls cut short under pressure", seed, len(rec.waited[TriggerPressure]))
		}
	}
	checkVerdicts(t, seed, st, rec, late, r.ordered)
	for k, n := range out {
		if n > in[k] {
			t.Fatalf("seed %d: span %v out %d times, in %d", seed, k.span, n, in[k])
		}
		if !strings.HasPrefix(ths[k], "ot=th:") {
			t.Fatalf("seed %d: kept span without a threshold: %q", seed, ths[k])
		}
	}
	for _, tr := range st.traces {
		kept := 0
		for _, span := range tr.Spans().All() {
			k := spanKey{span.TraceID(), span.SpanID()}
			if out[k] > 0 {
				kept++
			}
			if keepAlways(routerconv.Classify(span, true).Signals) && out[k] == 0 {
				t.Fatalf("seed %d: span %s with an error or block signal was dropped", seed, span.Name())
			}
		}
		switch {
		case whole && mustKeep(tr) && kept != tr.SpanCount():
			t.Fatalf("seed %d: %s/%s trace kept %d of %d spans", seed, tr.Request.Era, tr.Request.Outcome, kept, tr.SpanCount())
		case whole && kept != 0 && kept != tr.SpanCount():
			t.Fatalf("seed %d: trace split: %d of %d spans kept", seed, kept, tr.SpanCount())
		}
		// A shuffled trace kept by chance before its error came left with the chance's threshold.
		if mustKeep(tr) && r.ordered {
			for _, span := range tr.Spans().All() {
				if th := ths[spanKey{span.TraceID(), span.SpanID()}]; th != "ot=th:0" {
					t.Fatalf("seed %d: kept-always span has %q", seed, th)
				}
			}
		}
	}
	return rec
}

// checkVerdicts holds the request records to what the stream's traces were: one record per
// trace; every guard block recorded blocked, with its guard; no other request recorded
// blocked, in particular none routed on a PII match. Only a trace closed as it stood because
// a span came model_call_wait or more after the one before it (late) may read otherwise, as
// the rule says; and in a shuffled stream, an era D block whose 403 root came before the
// decision that names its guard names none ("guard").
func checkVerdicts(t *testing.T, seed uint64, st stream, rec *recorder, late []bool, ordered bool) {
	t.Helper()
	if len(rec.requests) != len(st.traces) {
		t.Fatalf("seed %d: %d request records for %d traces", seed, len(rec.requests), len(st.traces))
	}
	byID := map[pcommon.TraceID]int{}
	for i, tr := range st.traces {
		byID[tr.ID] = i
	}
	blocked := map[pcommon.TraceID]string{}
	for _, r := range rec.requests {
		if r.Action != "blocked" {
			continue
		}
		i, ok := byID[r.TraceID]
		if !ok {
			t.Fatalf("seed %d: a request recorded blocked was not kept", seed)
		}
		tr := st.traces[i]
		if !tr.Request.Outcome.Blocked() && !late[i] {
			t.Fatalf("seed %d: %s/%s request recorded blocked", seed, tr.Request.Era, tr.Request.Outcome)
		}
		blocked[r.TraceID] = r.Reason
	}
	for i, tr := range st.traces {
		o, got := tr.Request.Outcome, blocked[tr.ID]
		unnamed := !ordered && tr.Request.Era == routerconv.EraD && got == routerconv.ReasonGuard
		if o.Blocked() && !late[i] && got != o.String() && !unnamed {
			t.Fatalf("seed %d: %s/%s request recorded %q, not blocked for %s", seed, tr.Request.Era, o, got, o)
		}
	}
}

// Dynamic sampling decides the rates, not what is kept whole.
func TestPropertyDynamicStreams(t *testing.T) {
	for seed := range uint64(60) {
		ordered := seed%2 == 0
		runStream(t, newStream(seed, ordered, 0), streamRun{seed: seed, ordered: ordered, dynamic: true})
	}
}

// spilledBudget holds the bookkeeping of a stream's traces in flight but not their spans.
const spilledBudget = 16 << 10

func TestPropertyOrderedStreams(t *testing.T) {
	for seed := range uint64(150) {
		runStream(t, newStream(seed, true, 0), streamRun{seed: seed, ordered: true, rescue: seed%2 == 1, shortWait: seed%4 >= 2})
	}
}

// Shuffled streams also take a trace as complete before its error arrives: half of them run
// with the rescue window, which must bring such traces back.
func TestPropertyShuffledStreams(t *testing.T) {
	rescued := 0
	for seed := range uint64(150) {
		rec := runStream(t, newStream(seed, false, 0), streamRun{seed: seed, rescue: seed%2 == 1})
		rescued += rec.late[LateRescued]
	}
	if rescued == 0 {
		t.Fatal("no stream rescued a dropped trace")
	}
	t.Logf("%d late spans rescued a dropped trace", rescued)
}

// Spilling changes where spans wait, not what becomes of them.
func TestPropertySpilledStreams(t *testing.T) {
	spilled := 0
	for seed := range uint64(100) {
		sp := newCountingSpill(t)
		runStream(t, newStream(seed, seed%2 == 0, 0), streamRun{seed: seed, ordered: seed%2 == 0, spill: sp, rescue: seed%4 < 2})
		if sp.puts > 0 {
			spilled++
		}
	}
	if spilled < 50 {
		t.Fatalf("only %d of 100 streams needed the spill", spilled)
	}
	t.Logf("%d of 100 streams needed the spill", spilled)
}

// FuzzStream explores more streams: go test -fuzz FuzzStream. The fuzzer also picks the number
// of traces, up to 8 (as many as a stream keeps in flight at once), so that it tries thousands of
// streams a second; the property tests above run the long ones.
func FuzzStream(f *testing.F) {
	f.Add(uint64(1), true, false, false, false, false, uint8(12))
	f.Add(uint64(2), false, true, false, true, false, uint8(15))
	f.Add(uint64(3), true, false, true, false, true, uint8(2))
	f.Add(uint64(4), false, true, true, true, false, uint8(9))
	f.Add(uint64(5), true, true, false, true, true, uint8(14))
	f.Fuzz(func(t *testing.T, seed uint64, ordered, spilled, dynamic, rescue, shortWait bool, traces uint8) {
		r := streamRun{seed: seed, ordered: ordered, dynamic: dynamic, rescue: rescue, shortWait: shortWait}
		if spilled {
			r.spill = newCountingSpill(t)
		}
		runStream(t, newStream(seed, ordered, 1+int(traces)%8), r)
	})
}
