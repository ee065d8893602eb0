package sampler

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/sampling"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
)

func randomnessOf(id pcommon.TraceID) sampling.Randomness { return sampling.TraceIDToRandomness(id) }

func rand1() *rand.Rand { return rand.New(rand.NewPCG(1, 1)) }

// requireHeldZero: no trace and no span is held (the shards keep their emptied tables).
func requireHeldZero(t *testing.T, s *Sampler) {
	t.Helper()
	_, traces := s.Held()
	require.Zero(t, s.Memory(PartSpans), "span bytes held")
	require.Zero(t, traces, "traces held")
	for _, sh := range s.shards {
		require.Zero(t, sh.live(), "slots in use")
	}
}

// Era D's root ends last: its arrival completes the trace, and a kept trace leaves at once.
func TestEraDDecidesAtRoot(t *testing.T) {
	s, rec := newSampler(t, testConfig())
	tr := withKeep(t, routerconv.EraD, routersim.OutcomeOK, 10, true)
	n := tr.SpanCount()

	out := consume(s, batchOf(tr, 0, n-1), t0)
	require.Zero(t, out.SpanCount(), "children wait for their root")
	out = consume(s, batchOf(tr, n-1, n), t0.Add(time.Millisecond))
	require.ElementsMatch(t, allSpanIDs(tr), spanIDs(out))
	require.Equal(t, 1, rec.count(TriggerRoot, ReasonDefault))
	for _, ts := range traceStates(out) {
		assert.Equal(t, "ot=th:e666", ts, "10%% is threshold e666 (keep when rv ≥ 0.9·2^56)")
	}
	requireHeldZero(t, s)
}

func TestDroppedTraceLeavesNothing(t *testing.T) {
	s, rec := newSampler(t, testConfig())
	tr := withKeep(t, routerconv.EraD, routersim.OutcomeOK, 10, false)
	out := consume(s, batchOf(tr, 0, tr.SpanCount()), t0)
	require.Zero(t, out.SpanCount())
	require.Equal(t, 1, rec.dropped)
	requireHeldZero(t, s)
}

// Eras A–C end the root after the headers: the decision waits for the upstream call.
func TestEarlyRootWaitsForUpstream(t *testing.T) {
	for _, era := range []routerconv.Era{routerconv.EraA, routerconv.EraB, routerconv.EraC} {
		t.Run(era.String(), func(t *testing.T) {
			s, rec := newSampler(t, testConfig())
			tr := withKeep(t, era, routersim.OutcomeOK, 10, true)
			n := tr.SpanCount()
			up := indexOf(tr, "semantic_router.upstream.request")
			require.Equal(t, n-1, up, "the upstream call ends last")

			out := consume(s, batchOf(tr, 0, n-1), t0)
			require.Zero(t, out.SpanCount(), "root ended, upstream still open")
			require.Zero(t, s.Tick(t0.Add(time.Second)).SpanCount())
			out = consume(s, batchOf(tr, n-1, n), t0.Add(1500*time.Millisecond))
			require.ElementsMatch(t, allSpanIDs(tr), spanIDs(out))
			require.Equal(t, 1, rec.count(TriggerRoot, ReasonDefault))
			requireHeldZero(t, s)
		})
	}
}

// A cache hit makes no upstream call: the cache span completes the trace.
func TestCacheHitCompletesTrace(t *testing.T) {
	for _, era := range []routerconv.Era{routerconv.EraA, routerconv.EraB, routerconv.EraC} {
		s, rec := newSampler(t, testConfig())
		tr := withKeep(t, era, routersim.OutcomeCacheHit, 10, true)
		out := consume(s, batchOf(tr, 0, tr.SpanCount()), t0)
		require.Equal(t, tr.SpanCount(), out.SpanCount(), "era %s", era)
		require.Equal(t, 1, rec.count(TriggerRoot, ReasonDefault))
		requireHeldZero(t, s)
	}
}

// A trace whose root has arrived but is not known complete (another service's, whose
// children may still come) is decided by the grace period after its last span; every new
// span restarts it.
func TestGraceForATraceNotKnownComplete(t *testing.T) {
	s, rec := newSampler(t, testConfig())
	var tr routersim.Trace
	for seed := range uint64(100) {
		if tr = build(routerconv.EraD, routersim.OutcomeOK, seed); thresholdFor(10).ShouldSample(randomnessOf(tr.ID)) {
			break
		}
	}
	tr.Traces.ResourceSpans().At(0).Resource().Attributes().PutStr("service.name", "checkout")
	tr.Traces.ResourceSpans().At(0).ScopeSpans().At(0).Scope().SetName("checkout")
	for _, span := range tr.Spans().All() {
		span.SetName("work") // not the router's names either
	}
	n := tr.SpanCount()
	root := n - 1
	require.True(t, routerconv.IsLocalRoot(tr.Spans().At(root)))
	consume(s, batchOf(tr, root, n), t0)
	consume(s, batchOf(tr, 0, 2), t0.Add(1500*time.Millisecond))
	require.Zero(t, s.Tick(t0.Add(2500*time.Millisecond)).SpanCount(), "grace restarted by the last span")
	require.Equal(t, 3, s.Tick(t0.Add(3500*time.Millisecond)).SpanCount())
	require.Equal(t, 1, rec.count(TriggerGrace, ReasonDefault))
	requireHeldZero(t, s)
}

// An era A–C trace awaiting its upstream call is not cut short by the grace period: the model
// may take many seconds. Past the slow threshold it is kept as slow and its spans leave but
// for the root, which waits for the model call to close the trace with the whole request's
// summary.
func TestAwaitingUpstreamIsKeptWhenSlow(t *testing.T) {
	cfg := testConfig()
	cfg.DefaultPercentage = 0
	s, rec := newSampler(t, cfg)
	tr := build(routerconv.EraC, routersim.OutcomeError, 2)
	n := tr.SpanCount()
	require.Equal(t, n-1, indexOf(tr, "semantic_router.upstream.request"))
	if keepAlways(routerconv.Classify(tr.Spans().At(n-2), true).Signals) {
		t.Skip("seed fails before the upstream call")
	}
	consume(s, batchOf(tr, 0, n-1), t0)
	require.Zero(t, s.Tick(t0.Add(5*time.Second)).SpanCount(), "no grace while the model answers")
	require.Equal(t, n-2, s.Tick(t0.Add(10*time.Second)).SpanCount(), "kept as slow: all but the root leave")
	require.Equal(t, 1, rec.count(TriggerTimeout, ReasonSlow))
	last := consume(s, batchOf(tr, n-1, n), t0.Add(20*time.Second))
	require.Equal(t, 2, last.SpanCount(), "the failed upstream call closes the trace: it and the root leave")
	root := rootIn(t, last)
	assert.Equal(t, "C", attr(root, "vsr.era"))
	requireHeldZero(t, s)
}

// Without a root, only the timeout decides. Kept, the router request's spans leave, and it
// waits for its root (era D's ends last, with the request) to write the summary on, up to
// model_call_wait after its last span.
func TestTimeoutWithoutRoot(t *testing.T) {
	s, rec := newSampler(t, testConfig())
	tr := withKeep(t, routerconv.EraD, routersim.OutcomeOK, 10, true)
	n := tr.SpanCount()
	require.Zero(t, consume(s, batchOf(tr, 0, n-1), t0).SpanCount())
	require.Zero(t, s.Tick(t0.Add(29*time.Second)).SpanCount())
	require.Equal(t, n-1, s.Tick(t0.Add(30*time.Second)).SpanCount())
	require.Equal(t, 1, rec.count(TriggerTimeout, ReasonDefault))
	require.Empty(t, rec.requests, "the request's record waits for its root")
	root := consume(s, batchOf(tr, n-1, n), t0.Add(45*time.Second))
	require.Equal(t, 1, root.SpanCount())
	assert.Equal(t, "allowed", attr(rootIn(t, root), "security.action"))
	require.Len(t, rec.requests, 1)
	requireHeldZero(t, s)

	// A root that never comes: the trace closes model_call_wait after its last span.
	s, rec = newSampler(t, testConfig())
	consume(s, batchOf(tr, 0, n-1), t0)
	s.Tick(t0.Add(30 * time.Second))
	require.Zero(t, s.Tick(t0.Add(testWait-time.Millisecond)).SpanCount())
	require.Empty(t, rec.requests)
	s.Tick(t0.Add(testWait))
	require.Len(t, rec.requests, 1)
	requireHeldZero(t, s)
}

// An error is final and immediate: buffered spans but the root leave with it, later ones pass
// as they come, and the root leaves when the trace is complete, with the summary.
func TestErrorKeepsImmediatelyAndLateSpansFollow(t *testing.T) {
	cfg := testConfig()
	cfg.DefaultPercentage = 0
	s, rec := newSampler(t, cfg)
	tr := build(routerconv.EraC, routersim.OutcomeError, 4)
	errAt := -1
	for i, span := range tr.Spans().All() {
		if routerconv.Classify(span, true).Has(routerconv.SigError) {
			errAt = i
			break
		}
	}
	require.GreaterOrEqual(t, errAt, 0)
	rootAt := indexOf(tr, "semantic_router.request.received")
	require.Less(t, rootAt, errAt, "the root ends before the failing span")
	require.Less(t, errAt, tr.SpanCount()-1, "the failing span is not the last")

	require.Zero(t, consume(s, batchOf(tr, 0, errAt), t0).SpanCount())
	out := consume(s, batchOf(tr, errAt, errAt+1), t0.Add(time.Millisecond))
	require.Equal(t, errAt, out.SpanCount(), "the error releases everything buffered but the root")
	require.Equal(t, 1, rec.count(TriggerImmediate, ReasonError))
	for _, ts := range traceStates(out) {
		assert.Equal(t, "ot=th:0", ts)
	}
	rest := consume(s, batchOf(tr, errAt+1, tr.SpanCount()), t0.Add(5*time.Second))
	require.Equal(t, tr.SpanCount()-errAt, rest.SpanCount(), "the rest, and the root once the trace is complete")
	root := rootIn(t, rest)
	assert.NotEmpty(t, attr(root, "routing.selected_model"))
	require.Len(t, rec.requests, 1)
	assert.NotEmpty(t, rec.requests[0].ErrorType)
	requireHeldZero(t, s)
}

// A root kept back for the close of a trace kept early keeps its resource's and scope's schema
// URLs, like every other span of the trace.
func TestRootKeptForTheCloseKeepsSchemaURLs(t *testing.T) {
	cfg := testConfig()
	cfg.DefaultPercentage = 0
	s, _ := newSampler(t, cfg)
	tr := build(routerconv.EraC, routersim.OutcomeError, 4)
	rs := tr.Traces.ResourceSpans().At(0)
	rs.SetSchemaUrl("https://opentelemetry.io/schemas/1.26.0")
	rs.ScopeSpans().At(0).SetSchemaUrl("https://opentelemetry.io/schemas/1.27.0")
	want := "https://opentelemetry.io/schemas/1.26.0 https://opentelemetry.io/schemas/1.27.0"
	errAt := evidence(tr)
	require.Less(t, indexOf(tr, "semantic_router.request.received"), errAt, "the root is parked when the error keeps the trace")

	require.Zero(t, consume(s, batchOf(tr, 0, errAt), t0).SpanCount())
	early := consume(s, batchOf(tr, errAt, errAt+1), t0.Add(time.Millisecond))
	rest := consume(s, batchOf(tr, errAt+1, tr.SpanCount()), t0.Add(5*time.Second))
	rootIn(t, rest)
	for _, got := range append(schemaURLs(early), schemaURLs(rest)...) {
		assert.Equal(t, want, got)
	}
}

// Guard blocks are kept in every era, from the raw spans (no vsr_attributes in front), and
// reported as blocked with their reason. A block that shows only by what does not follow (a
// guard match in eras A and C) is known complete when no model call can still come.
func TestBlockedKeptInEveryEra(t *testing.T) {
	for _, era := range []routerconv.Era{routerconv.EraA, routerconv.EraB, routerconv.EraC, routerconv.EraD} {
		for _, outcome := range []routersim.Outcome{routersim.OutcomeJailbreak, routersim.OutcomePII} {
			cfg := testConfig()
			cfg.DefaultPercentage = 0
			s, rec := newSampler(t, cfg)
			tr := build(era, outcome, 1)
			out := consume(s, batchOf(tr, 0, tr.SpanCount()), t0)
			s.Tick(t0.Add(cfg.ModelCallWait)).ResourceSpans().MoveAndAppendTo(out.ResourceSpans())
			require.ElementsMatch(t, allSpanIDs(tr), spanIDs(out), "%s/%s", era, outcome)
			require.Equal(t, 1, rec.kept, "%s/%s", era, outcome)
			require.Equal(t, 1, rec.count(TriggerImmediate, ReasonBlocked)+rec.count(TriggerRoot, ReasonBlocked), "%s/%s", era, outcome)
			require.Len(t, rec.requests, 1)
			assert.Equal(t, "blocked", rec.requests[0].Action, "%s/%s", era, outcome)
			assert.Equal(t, map[routersim.Outcome]string{routersim.OutcomeJailbreak: "jailbreak", routersim.OutcomePII: "pii"}[outcome],
				rec.requests[0].Reason, "%s/%s", era, outcome)
			assert.Equal(t, "blocked", attr(rootIn(t, out), "security.action"))
			requireHeldZero(t, s)
		}
	}
}

func TestSlowRequestKept(t *testing.T) {
	cfg := testConfig()
	cfg.DefaultPercentage = 0
	s, rec := newSampler(t, cfg)
	tr := routersim.Build(routersim.Request{Era: routerconv.EraC, Slow: true, Category: "math", Model: "m", Start: t0}, rand1())
	out := consume(s, batchOf(tr, 0, tr.SpanCount()), t0)
	require.Equal(t, tr.SpanCount(), out.SpanCount())
	require.Equal(t, 1, rec.count(TriggerRoot, ReasonSlow), "complete at once: slow by its spans' extent, the model call's included")
}

// Rules are evaluated in order; the first one a span matches sets the rate.
func TestRulesFirstMatchWins(t *testing.T) {
	cfg := testConfig()
	cfg.DefaultPercentage = 0
	cfg.Rules = []Rule{
		{Name: "coding", Key: "category.name", Values: []string{"coding"}, Percentage: 0},
		{Name: "math", Key: "category.name", Values: []string{"math"}, Percentage: 100},
		{Name: "model", Key: "routing.selected_model", Values: []string{"qwen3-8b"}, Percentage: 0},
	}
	s, rec := newSampler(t, cfg)
	tr := build(routerconv.EraC, routersim.OutcomeOK, 2)
	out := consume(s, batchOf(tr, 0, tr.SpanCount()), t0)
	require.Equal(t, tr.SpanCount(), out.SpanCount())
	require.Equal(t, 1, rec.count(TriggerRoot, ReasonRule))
}

func TestResourceAttributeRule(t *testing.T) {
	cfg := testConfig()
	cfg.DefaultPercentage = 0
	cfg.Rules = []Rule{{Name: "canary", Key: "service.version", Values: []string{"v0.3.0"}, Percentage: 100}}
	s, _ := newSampler(t, cfg)
	tr := build(routerconv.EraC, routersim.OutcomeOK, 2)
	require.Equal(t, tr.SpanCount(), consume(s, batchOf(tr, 0, tr.SpanCount()), t0).SpanCount())
}

// Two collectors with the same configuration agree on every trace without talking.
func TestConsistentAcrossInstances(t *testing.T) {
	a, _ := newSampler(t, testConfig())
	b, _ := newSampler(t, testConfig())
	kept := 0
	for seed := range uint64(300) {
		tr := build(routerconv.EraD, routersim.OutcomeOK, seed)
		ka := consume(a, batchOf(tr, 0, tr.SpanCount()), t0).SpanCount() > 0
		kb := consume(b, batchOf(tr, 0, tr.SpanCount()), t0).SpanCount() > 0
		require.Equal(t, ka, kb)
		require.Equal(t, thresholdFor(10).ShouldSample(randomnessOf(tr.ID)), ka)
		if ka {
			kept++
		}
	}
	assert.InDelta(t, 30, kept, 15, "about 10%% of 300")
}

// Explicit randomness (ot=rv) in the tracestate takes precedence over the trace ID.
func TestRandomnessFromTraceState(t *testing.T) {
	for _, tc := range []struct {
		rv   string
		keep bool
	}{{"ffffffffffffff", true}, {"00000000000000", false}} {
		s, _ := newSampler(t, testConfig())
		tr := build(routerconv.EraD, routersim.OutcomeOK, 3)
		for _, span := range tr.Spans().All() {
			span.TraceState().FromRaw("ot=rv:" + tc.rv + ",vendor=x")
		}
		out := consume(s, batchOf(tr, 0, tr.SpanCount()), t0)
		require.Equal(t, tc.keep, out.SpanCount() > 0, "rv %s", tc.rv)
		if tc.keep {
			assert.Equal(t, "ot=rv:ffffffffffffff;th:e666,vendor=x", traceStates(out)[0])
		}
	}
}

// An upstream sampler's threshold is never lowered: the adjusted count stays right.
func TestIncomingThresholdNeverLowered(t *testing.T) {
	cfg := testConfig()
	cfg.DefaultPercentage = 100
	s, _ := newSampler(t, cfg)
	tr := build(routerconv.EraC, routersim.OutcomeError, 1)
	for _, span := range tr.Spans().All() {
		span.TraceState().FromRaw("ot=th:8")
	}
	consume(s, batchOf(tr, 0, tr.SpanCount()), t0)
	out := s.Flush(t0)
	for _, ts := range append(traceStates(out.Traces), traceStates(consume(s, batchOf(tr, 0, 1), t0))...) {
		assert.Equal(t, "ot=th:8", ts, "keep-always th:0 does not lower th:8")
	}
}

func TestLateSpansAfterDrop(t *testing.T) {
	cfg := testConfig()
	cfg.DefaultPercentage = 0
	s, rec := newSampler(t, cfg)
	tr := build(routerconv.EraD, routersim.OutcomeOK, 5)
	n := tr.SpanCount()
	consume(s, batchOf(tr, 0, n), t0)
	require.Equal(t, 1, rec.dropped)

	require.Zero(t, consume(s, batchOf(tr, 0, 1), t0.Add(time.Second)).SpanCount())
	require.Equal(t, 1, rec.late[LateDropped])

	// A late error span is never dropped, and the trace is kept from then on.
	errSpan := batchOf(tr, 1, 2)
	errSpan.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Status().SetCode(ptrace.StatusCodeError)
	require.Equal(t, 1, consume(s, errSpan, t0.Add(2*time.Second)).SpanCount())
	require.Equal(t, 1, consume(s, batchOf(tr, 2, 3), t0.Add(3*time.Second)).SpanCount())
	require.Equal(t, 1, rec.late[LateRescued])
	require.Equal(t, 1, rec.late[LateKept])
	requireHeldZero(t, s)
}

// Decisions are forgotten oldest first once the caches are full.
func TestDecisionCacheIsBounded(t *testing.T) {
	cfg := testConfig()
	cfg.Shards = 1
	cfg.DefaultPercentage = 0
	cfg.DropCacheEntries = bucketWays // one bucket: exact FIFO
	s, rec := newSampler(t, cfg)
	var traces []routersim.Trace
	for seed := range uint64(bucketWays + 1) {
		tr := build(routerconv.EraD, routersim.OutcomeOK, seed)
		traces = append(traces, tr)
		consume(s, batchOf(tr, 0, tr.SpanCount()), t0)
	}
	consume(s, batchOf(traces[bucketWays], 0, 1), t0)
	require.Equal(t, 1, rec.late[LateDropped], "recent decision remembered")
	consume(s, batchOf(traces[0], 0, 1), t0)
	require.Equal(t, 1, rec.late[LateDropped], "oldest decision forgotten: the span starts a new trace")
	_, held := s.Held()
	require.Equal(t, int64(1), held)
}

// A cache configured with fewer entries than shards still remembers: each shard gets its
// share rounded up.
func TestSmallCachesAreNotEmpty(t *testing.T) {
	cfg := testConfig()
	cfg.Shards = 8
	cfg.KeepCacheEntries, cfg.DropCacheEntries = 3, 3
	s, _ := newSampler(t, cfg)
	for _, sh := range s.shards {
		assert.Positive(t, sh.keep.capacity)
		assert.Positive(t, sh.drop.capacity)
	}
}

// The drop cache takes 8 bytes an entry and remembers the last half of its entries'
// decisions but a few in a thousand.
func TestDropCacheBytesPerEntry(t *testing.T) {
	const n = 1 << 20
	c := newDecisionCache[struct{}](n)
	key := func(i int) uint64 {
		return fingerprint(pcommon.TraceID{byte(i), byte(i >> 8), byte(i >> 16), byte(i >> 24), 1})
	}
	for i := range 2 * n {
		c.put(key(i), struct{}{})
	}
	assert.Equal(t, 8.0, float64(c.bytes())/n)
	forgotten := 0
	for i := 2*n - n/2; i < 2*n; i++ {
		if _, ok := c.get(key(i)); !ok {
			forgotten++
		}
	}
	assert.Less(t, forgotten, n/2/200)
}

// While the cache may still grow, it gives up no decision: a kept trace's model-server span,
// arriving seconds after the trace closed, must find its decision even while the cache is far
// below its capacity (a full bucket of a small table once evicted it).
func TestDecisionCacheForgetsNothingWhileItGrows(t *testing.T) {
	const n = 1 << 16
	c := newDecisionCache[struct{}](4 * n)
	key := func(i int) uint64 {
		return fingerprint(pcommon.TraceID{byte(i), byte(i >> 8), byte(i >> 16), byte(i >> 24), 2})
	}
	forgotten := 0
	for i := range n {
		c.put(key(i), struct{}{})
		if _, ok := c.get(key(i / 2)); !ok {
			forgotten++
		}
	}
	assert.Zero(t, forgotten)
}

// Bytes held are what the buffers take: the parked spans' encoding (with its slice's spare
// capacity) plus the traces' bookkeeping. They return to the empty shards' own size.
func TestByteAccounting(t *testing.T) {
	s, _ := newSampler(t, testConfig())
	var encoded int64
	for seed := range uint64(20) {
		tr := build(routerconv.EraD, routersim.OutcomeOK, seed)
		in := batchOf(tr, 0, tr.SpanCount()-1) // no root: all stay buffered
		encoded += int64((&ptrace.ProtoMarshaler{}).TracesSize(in))
		consume(s, in, t0)
	}
	held, traces := s.Held()
	require.Equal(t, int64(20), traces)
	spans := s.Memory(PartSpans)
	assert.GreaterOrEqual(t, spans, encoded)
	assert.LessOrEqual(t, spans, 2*encoded)
	assert.Equal(t, held, spans+s.Memory(PartTraces))
	assert.GreaterOrEqual(t, s.Memory(PartTraces), 20*slotSize)
	s.Flush(t0)
	_, traces = s.Held()
	require.Zero(t, traces)
	require.Zero(t, s.Memory(PartSpans))
}

// Spans decided in the batch they arrive in are never encoded: nothing is held.
func TestSameBatchDecisionHoldsNothing(t *testing.T) {
	cfg := testConfig()
	cfg.DefaultPercentage = 100
	s, _ := newSampler(t, cfg)
	tr := build(routerconv.EraD, routersim.OutcomeOK, 1)
	in := batchOf(tr, 0, tr.SpanCount())
	first := in.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	out := consume(s, in, t0)
	require.Equal(t, tr.SpanCount(), out.SpanCount())
	assert.Equal(t, first, out.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0), "the same span, not a decoded copy")
	requireHeldZero(t, s)
}

// Over budget, the oldest traces are decided by the rules, not dropped blindly.
func TestMemoryPressureDecidesOldestFirst(t *testing.T) {
	cfg := testConfig()
	cfg.Shards = 1
	cfg.MaxBufferBytes = 20_000
	cfg.DefaultPercentage = 0
	cfg.Rules = []Rule{{Name: "oldest", Key: "category.name", Values: []string{"oldest"}, Percentage: 100}}
	s, rec := newSampler(t, cfg)
	oldest := routersim.Build(routersim.Request{Era: routerconv.EraC, Category: "oldest", Model: "m", Start: t0}, rand1())
	consume(s, batchOf(oldest, 0, 4), t0) // through the cache plugin, which names the category

	released := 0
	for seed := range uint64(40) {
		tr := build(routerconv.EraD, routersim.OutcomeOK, seed)
		out := consume(s, batchOf(tr, 0, tr.SpanCount()-1), t0.Add(time.Millisecond))
		if released == 0 && out.SpanCount() > 0 {
			require.Equal(t, spanIDs(batchOf(oldest, 0, 4)), spanIDs(out), "the first trace decided is the oldest")
		}
		released += out.SpanCount()
		held, _ := s.Held()
		require.LessOrEqual(t, held, cfg.MaxBufferBytes)
	}
	require.Equal(t, 4, released)
	require.Equal(t, 1, rec.count(TriggerPressure, ReasonRule))
	require.Positive(t, rec.count(TriggerPressure, ReasonDefault))
}

func TestTraceLimit(t *testing.T) {
	cfg := testConfig()
	cfg.MaxTraceSpans = 3
	s, rec := newSampler(t, cfg)
	tr := build(routerconv.EraD, routersim.OutcomeOK, 1)
	consume(s, batchOf(tr, 0, 3), t0)
	require.Equal(t, 1, rec.count(TriggerLimit, ReasonDefault))
	requireHeldZero(t, s)
}

func TestDuplicateSpansWhileBuffered(t *testing.T) {
	cfg := testConfig()
	cfg.DefaultPercentage = 100
	s, rec := newSampler(t, cfg)
	tr := build(routerconv.EraD, routersim.OutcomeOK, 1)
	n := tr.SpanCount()
	consume(s, batchOf(tr, 0, n-1), t0)
	consume(s, batchOf(tr, 0, n-1), t0) // a retried export
	out := consume(s, batchOf(tr, n-1, n), t0)
	require.ElementsMatch(t, allSpanIDs(tr), spanIDs(out))
	require.Equal(t, n-1, rec.duplicates)
}

// At shutdown everything in flight is decided, and kept where the rules would drop it: an
// error or block whose span has not arrived yet must not be lost with its trace.
func TestFlushKeepsWhatIsInFlight(t *testing.T) {
	s, rec := newSampler(t, testConfig())
	for seed := range uint64(50) {
		tr := build(routerconv.EraC, routersim.OutcomeOK, seed)
		consume(s, batchOf(tr, 0, 2), t0)
	}
	out := s.Flush(t0.Add(time.Second))
	require.Equal(t, 100, out.SpanCount())
	sampled, inFlight := rec.count(TriggerShutdown, ReasonDefault), rec.count(TriggerShutdown, ReasonInFlight)
	require.Equal(t, 50, sampled+inFlight)
	require.Positive(t, inFlight)
	requireHeldZero(t, s)
}

// Decisions saved at shutdown are followed after a restart, whatever the new shard count: the
// rest of a trace in flight at the restart joins what was kept of it, and late spans of
// dropped traces stay dropped.
func TestDecisionsSurviveARestart(t *testing.T) {
	cfg := testConfig()
	cfg.DefaultPercentage = 0
	before, _ := newSampler(t, cfg)
	var dropped []routersim.Trace
	for seed := range uint64(20) {
		tr := build(routerconv.EraD, routersim.OutcomeOK, seed)
		dropped = append(dropped, tr)
		consume(before, batchOf(tr, 0, tr.SpanCount()), t0)
	}
	inFlight := build(routerconv.EraD, routersim.OutcomeError, 99)
	n := inFlight.SpanCount()
	require.Equal(t, 0, consume(before, batchOf(inFlight, 0, 1), t0).SpanCount())
	require.Equal(t, 1, before.Flush(t0).SpanCount(), "kept at shutdown")
	saved := before.SaveDecisions()

	cfg.Shards = 3
	after, rec := newSampler(t, cfg)
	require.NoError(t, after.RestoreDecisions(saved))
	assert.Equal(t, n-1, consume(after, batchOf(inFlight, 1, n), t0.Add(time.Minute)).SpanCount(), "the rest joins the kept part")
	for _, tr := range dropped {
		require.Zero(t, consume(after, batchOf(tr, 0, 1), t0.Add(time.Minute)).SpanCount())
	}
	assert.Equal(t, n-1, rec.late[LateKept])
	assert.Equal(t, len(dropped), rec.late[LateDropped])
	assert.Empty(t, rec.requests, "no trace is decided twice")

	assert.Error(t, after.RestoreDecisions([]byte("not ours")))
	assert.Error(t, after.RestoreDecisions(saved[:len(saved)-3]))
}

// Within the rescue window, a late error span brings back the whole dropped trace; after it,
// only the error span itself is kept.
func TestRescueWindow(t *testing.T) {
	cfg := testConfig()
	cfg.DefaultPercentage = 0
	cfg.RescueWindow = 2 * time.Second
	for _, tc := range []struct {
		after time.Duration
		whole bool
	}{{time.Second, true}, {3 * time.Second, false}} {
		s, rec := newSampler(t, cfg)
		tr := build(routerconv.EraD, routersim.OutcomeOK, 1)
		n := tr.SpanCount()
		require.Zero(t, consume(s, batchOf(tr, 0, n-1), t0).SpanCount(), "children wait for their root")
		require.Zero(t, s.Tick(t0.Add(30*time.Second)).SpanCount(), "the timeout drops them")

		// The root arrives late, failed.
		root := batchOf(tr, n-1, n)
		root.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Status().SetCode(ptrace.StatusCodeError)
		s.Tick(t0.Add(30*time.Second + tc.after))
		out := consume(s, root, t0.Add(30*time.Second+tc.after))
		if tc.whole {
			require.ElementsMatch(t, allSpanIDs(tr), spanIDs(out), "the whole trace comes back")
			assert.Equal(t, n, rec.late[LateRescued])
		} else {
			require.Equal(t, 1, out.SpanCount(), "past the window only the failed span is kept")
		}
		requireHeldZero(t, s)
	}
}

// Over budget, the spans kept for rescue are given up before any live trace is decided.
func TestPressureGivesUpRescuableFirst(t *testing.T) {
	cfg := testConfig()
	cfg.Shards = 1
	cfg.DefaultPercentage = 0
	cfg.RescueWindow = time.Minute
	cfg.MaxBufferBytes = 12_000
	s, rec := newSampler(t, cfg)
	for seed := range uint64(6) {
		tr := build(routerconv.EraD, routersim.OutcomeOK, seed)
		n := tr.SpanCount()
		consume(s, batchOf(tr, 0, n-1), t0)
		consume(s, batchOf(tr, n-1, n), t0) // dropped, kept for rescue
	}
	held, traces := s.Held()
	require.Zero(t, traces)
	require.Positive(t, held)
	open := build(routerconv.EraC, routersim.OutcomeOK, 99)
	consume(s, batchOf(open, 0, 3), t0)
	require.Zero(t, rec.count(TriggerPressure, ReasonDefault), "no live trace decided while rescue memory can go")
	held, traces = s.Held()
	require.Equal(t, int64(1), traces)
	require.LessOrEqual(t, held, cfg.MaxBufferBytes)
}

// With a spill, the budget is kept by moving the newest traces' spans out of memory; only when
// the spill refuses are traces decided early.
func TestPressureSpillsBeforeDeciding(t *testing.T) {
	cfg := testConfig()
	cfg.Shards = 1
	cfg.MaxBufferBytes = 20_000
	cfg.DefaultPercentage = 50
	sp := newCountingSpill(t)
	cfg.Spill = sp
	s, rec := newSampler(t, cfg)
	var traces []routersim.Trace
	for seed := range uint64(30) {
		tr := build(routerconv.EraD, routersim.OutcomeOK, seed)
		traces = append(traces, tr)
		require.Zero(t, consume(s, batchOf(tr, 0, tr.SpanCount()-1), t0).SpanCount())
		held, _ := s.Held()
		require.LessOrEqual(t, held, cfg.MaxBufferBytes)
	}
	require.Positive(t, sp.live)
	require.Empty(t, rec.decided[TriggerPressure])

	// Roots end: each trace is decided on its own, spilled spans and all.
	kept := 0
	for _, tr := range traces {
		out := consume(s, batchOf(tr, tr.SpanCount()-1, tr.SpanCount()), t0)
		if out.SpanCount() > 0 {
			require.ElementsMatch(t, allSpanIDs(tr), spanIDs(out))
			kept++
		}
	}
	require.Positive(t, kept)
	require.Equal(t, len(traces), rec.count(TriggerRoot, ReasonDefault))
	require.Zero(t, sp.live)
	requireHeldZero(t, s)

	sp.refuse = true
	for seed := range uint64(30) {
		tr := build(routerconv.EraD, routersim.OutcomeOK, seed+100)
		consume(s, batchOf(tr, 0, tr.SpanCount()-1), t0)
	}
	require.Positive(t, rec.spillFails)
	require.Positive(t, rec.count(TriggerPressure, ReasonDefault), "a full spill falls back to early decisions")
}

// At a restart with storage, the traces still undecided leave undecided: the next run takes
// them in again, and the error that arrives after the restart keeps the whole trace, spans
// from before it included. Decided traces still in flight are flushed as usual.
func TestTakeOpenHandsOverUndecided(t *testing.T) {
	failing := build(routerconv.EraD, routersim.OutcomeError, 1)
	n := failing.SpanCount()
	firstError := -1
	for i := range n {
		if routerconv.Classify(failing.Spans().At(i), true).Has(routerconv.SigError) {
			firstError = i
			break
		}
	}
	require.Positive(t, firstError, "the error is not the first span")
	blocked := build(routerconv.EraD, routersim.OutcomeJailbreak, 2)

	before, _ := newSampler(t, testConfig())
	require.Zero(t, consume(before, batchOf(failing, 0, firstError), t0).SpanCount())
	kept := consume(before, batchOf(blocked, 0, blocked.SpanCount()-1), t0)
	open, flushed := before.TakeOpen(t0.Add(time.Second), 1<<20)
	assert.Equal(t, firstError, open.SpanCount(), "the undecided trace's spans are handed over")
	assert.Equal(t, blocked.SpanCount()-1, kept.SpanCount()+flushed.SpanCount(), "the decided one leaves as before")
	_, traces := before.Held()
	assert.Zero(t, traces)

	after, _ := newSampler(t, testConfig())
	out := ptrace.NewTraces()
	consume(after, open, t0.Add(2*time.Second)).ResourceSpans().MoveAndAppendTo(out.ResourceSpans())
	consume(after, batchOf(failing, firstError, n), t0.Add(3*time.Second)).ResourceSpans().MoveAndAppendTo(out.ResourceSpans())
	after.Flush(t0.Add(4 * time.Second)).ResourceSpans().MoveAndAppendTo(out.ResourceSpans())
	assert.Equal(t, n, out.SpanCount(), "the error trace arrives whole from the next run")

	// With no room to hand over, everything is flushed as before.
	again, _ := newSampler(t, testConfig())
	consume(again, batchOf(failing, 0, firstError), t0)
	open, flushed = again.TakeOpen(t0.Add(time.Second), 0)
	assert.Zero(t, open.SpanCount())
	assert.Equal(t, firstError, flushed.SpanCount(), "kept as in flight")
}

// A root and its model call that arrive before a span between them (a retried or reordered
// export) do not make the trace complete: a span names a parent that has not arrived, so the
// trace waits for it (up to the grace period) instead of being decided without it, and an
// error on that span keeps the whole trace, with no rescue window to rely on.
func TestMissingParentHoldsTheDecision(t *testing.T) {
	cfg := testConfig()
	cfg.DefaultPercentage = 0
	cfg.RescueWindow = 0
	for _, era := range []routerconv.Era{routerconv.EraA, routerconv.EraB, routerconv.EraC} { // D's children are siblings
		t.Run(era.String(), func(t *testing.T) {
			s, _ := newSampler(t, cfg)
			tr := build(era, routersim.OutcomeOK, 3)
			spans := tr.Spans()
			parents := map[pcommon.SpanID]bool{}
			for _, sp := range spans.All() {
				parents[sp.ParentSpanID()] = true
			}
			middle := -1
			for i, sp := range spans.All() {
				if parents[sp.SpanID()] && !routerconv.IsLocalRoot(sp) {
					middle = i
					break
				}
			}
			require.GreaterOrEqual(t, middle, 0, "the trace has a span between its root and a child")
			n := spans.Len()
			early := batchOf(tr, 0, middle)
			batchOf(tr, middle+1, n).ResourceSpans().MoveAndAppendTo(early.ResourceSpans())
			require.Zero(t, consume(s, early, t0).SpanCount())
			_, live := s.Held()
			require.Equal(t, int64(1), live, "not decided: a parent is missing")

			late := batchOf(tr, middle, middle+1)
			late.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Status().SetCode(ptrace.StatusCodeError)
			out := consume(s, late, t0.Add(time.Second))
			s.Tick(t0.Add(time.Minute)).ResourceSpans().MoveAndAppendTo(out.ResourceSpans())
			assert.Equal(t, n, out.SpanCount(), "the error trace, whole")
		})
	}
}

// TakeNew leaves the spans of traces held or decided, and takes those of traces never seen.
func TestTakeNewTakesOnlyUnseenTraces(t *testing.T) {
	cfg := testConfig()
	cfg.DefaultPercentage = 0
	s, _ := newSampler(t, cfg)
	open := build(routerconv.EraD, routersim.OutcomeOK, 1)
	decided := build(routerconv.EraD, routersim.OutcomeOK, 2)
	unseen := build(routerconv.EraD, routersim.OutcomeOK, 3)
	n := open.SpanCount()
	consume(s, batchOf(open, 0, n-1), t0)
	consume(s, batchOf(decided, 0, decided.SpanCount()), t0)

	batch := batchOf(open, n-1, n)
	for _, tr := range []routersim.Trace{decided, unseen} {
		batchOf(tr, 0, 1).ResourceSpans().MoveAndAppendTo(batch.ResourceSpans())
	}
	fresh := s.TakeNew(batch)
	assert.Equal(t, []pcommon.SpanID{open.Spans().At(n - 1).SpanID(), decided.Spans().At(0).SpanID()}, spanIDs(batch))
	assert.Equal(t, []pcommon.SpanID{unseen.Spans().At(0).SpanID()}, spanIDs(fresh))
}
