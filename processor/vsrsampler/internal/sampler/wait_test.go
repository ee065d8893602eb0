package sampler

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
)

// testWait is the shipped model_call_wait.
const testWait = routerconv.ModelCallWait

// guardRouted is a request whose guard matched (era A: a PII detection; era C: a pii: rule of
// its decision) and which the router sent on to its model all the same, as a deployment that
// routes PII to a private model does. Without plugins, nothing follows the guards but the
// model call. Its model call ends modelCall after the root started; it is the last span.
func guardRouted(t *testing.T, era routerconv.Era, plugins bool, modelCall time.Duration) routersim.Trace {
	t.Helper()
	tr := build(era, routersim.OutcomeOK, 11)
	spans := tr.Spans()
	var guard ptrace.Span
	for _, span := range spans.All() {
		switch {
		case era == routerconv.EraA && span.Name() == "semantic_router.security.pii_detection":
			span.Attributes().PutBool("pii.detected", true)
			span.Attributes().PutStr("pii.types", "EMAIL_ADDRESS")
			guard = span
		case era == routerconv.EraC && span.Name() == "semantic_router.decision.evaluation" && guard == (ptrace.Span{}):
			v, ok := span.Attributes().Get("decision.matched_rules")
			require.True(t, ok)
			v.Slice().AppendEmpty().SetStr("pii:pii_guard:EMAIL_ADDRESS")
			guard = span
		}
	}
	require.NotEqual(t, ptrace.Span{}, guard, "no guard span in era %s", era)
	up := spans.At(spans.Len() - 1)
	require.Equal(t, "semantic_router.upstream.request", up.Name())
	if !plugins {
		// Nothing between the guard and the model call: the decision had no plugins.
		past := false
		spans.RemoveIf(func(span ptrace.Span) bool {
			drop := past && span.Name() != "semantic_router.upstream.request" && !routerconv.IsLocalRoot(span)
			past = past || span.SpanID() == guard.SpanID()
			return drop
		})
		up = spans.At(spans.Len() - 1)
		up.SetParentSpanID(guard.SpanID())
		up.SetStartTimestamp(guard.EndTimestamp())
		// Without a routing span, the call names its model, as v0.1.0's and later routers'
		// upstream spans do (model.name): the trace is then known whole.
		up.Attributes().PutStr(routerconv.UpstreamModelKey, "qwen3-8b")
	}
	root := spans.At(indexOf(tr, "semantic_router.request.received"))
	up.SetEndTimestamp(root.StartTimestamp() + pcommon.Timestamp(modelCall))
	require.Equal(t, !plugins, routerconv.Classify(spans.At(spans.Len()-2), true).Signals&routerconv.SigPastGuards == 0)
	return tr
}

// ticking advances a fake clock from `from` to `to` in steps, as the processor's timer does,
// and returns what the ticks released.
func ticking(s *Sampler, from, to time.Time) ptrace.Traces {
	out := ptrace.NewTraces()
	for now := from; !now.After(to); now = now.Add(250 * time.Millisecond) {
		s.Tick(now).ResourceSpans().MoveAndAppendTo(out.ResourceSpans())
	}
	return out
}

func hasRoot(td ptrace.Traces) bool {
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, span := range ss.Spans().All() {
				if routerconv.IsLocalRoot(span) {
					return true
				}
			}
		}
	}
	return false
}

// A guard-matched era A or C request is kept at once and its spans leave, but its root waits
// for the model call: when the call comes (3 s or 20 s after the decision, whether a plugin's
// span showed the request went on or not), the request was allowed and its time covers the
// call; when no call has come by the end of the wait, it was blocked, or allowed if a span
// past the guards showed it went on. The request record is published with the root, once.
func TestGuardMatchedRootWaitsForItsModelCall(t *testing.T) {
	for _, era := range []routerconv.Era{routerconv.EraA, routerconv.EraC} {
		for _, plugins := range []bool{false, true} {
			for _, after := range []time.Duration{3 * time.Second, 20 * time.Second, testWait + 5*time.Second} {
				t.Run(fmt.Sprintf("%s/plugins=%v/%v", era, plugins, after), func(t *testing.T) {
					cfg := testConfig()
					cfg.DefaultPercentage = 0
					s, rec := newSampler(t, cfg)
					tr := guardRouted(t, era, plugins, after)
					n := tr.SpanCount()

					first := consume(s, batchOf(tr, 0, n-1), t0)
					assert.Equal(t, n-2, first.SpanCount(), "kept at once: all but the root leave")
					assert.False(t, hasRoot(first))
					comes := t0.Add(after)
					waited := ticking(s, t0, t0.Add(min(after, testWait)-time.Second))
					require.Zero(t, waited.SpanCount(), "the root waits for the model call")
					require.Empty(t, rec.requests, "no record before the root's close")

					if after < testWait {
						last := consume(s, batchOf(tr, n-1, n), comes)
						require.Equal(t, 2, last.SpanCount(), "the model call closes the trace: it and the root leave")
						got := rootIn(t, last).Attributes().AsRaw()
						assert.Equal(t, "allowed", got["security.action"])
						assert.NotContains(t, got, "security.reason")
						assert.GreaterOrEqual(t, got["processing.time_ms"], after.Milliseconds(), "the time covers the model call")
						assert.Equal(t, "qwen3-8b", got["routing.selected_model"])
						require.Len(t, rec.requests, 1)
						assert.Equal(t, "allowed", rec.requests[0].Action)
						assert.Empty(t, rec.requests[0].Reason)
						assert.GreaterOrEqual(t, rec.requests[0].Duration, after.Truncate(time.Millisecond))
						requireHeldZero(t, s)
						return
					}
					// No model call can still come: the verdict is what the spans show.
					end := ticking(s, t0.Add(testWait-time.Second), t0.Add(testWait))
					require.Equal(t, 1, end.SpanCount(), "the root leaves when the wait runs out")
					want, reason := "blocked", "pii"
					if plugins {
						want, reason = "allowed", ""
					}
					got := rootIn(t, end).Attributes().AsRaw()
					assert.Equal(t, want, got["security.action"])
					require.Len(t, rec.requests, 1)
					assert.Equal(t, want, rec.requests[0].Action)
					assert.Equal(t, reason, rec.requests[0].Reason)
					requireHeldZero(t, s)
					// The call that comes after all follows the keep decision.
					assert.Equal(t, 1, consume(s, batchOf(tr, n-1, n), comes).SpanCount())
					assert.Len(t, rec.requests, 1)
				})
			}
		}
	}
}

// A true block (era A's PII detection, era C's jailbreak and PII rules) has no model call:
// its root waits out the wait and leaves blocked, with the guard's reason, and nothing is
// decided at the grace period or the trace timeout.
func TestTrueBlockIsKnownWhenNoModelCallCanCome(t *testing.T) {
	for _, c := range []struct {
		era     routerconv.Era
		outcome routersim.Outcome
		reason  string
	}{
		{routerconv.EraA, routersim.OutcomePII, "pii"},
		{routerconv.EraC, routersim.OutcomePII, "pii"},
		{routerconv.EraC, routersim.OutcomeJailbreak, "jailbreak"},
	} {
		t.Run(fmt.Sprintf("%s/%s", c.era, c.outcome), func(t *testing.T) {
			cfg := testConfig()
			cfg.DefaultPercentage = 0
			s, rec := newSampler(t, cfg)
			tr := build(c.era, c.outcome, 1)
			first := consume(s, batchOf(tr, 0, tr.SpanCount()), t0)
			require.Equal(t, tr.SpanCount()-1, first.SpanCount())
			require.Zero(t, ticking(s, t0, t0.Add(testWait-time.Second)).SpanCount(), "neither grace nor trace_timeout ends the wait")
			require.Empty(t, rec.requests)
			end := ticking(s, t0.Add(testWait-750*time.Millisecond), t0.Add(testWait))
			require.Equal(t, 1, end.SpanCount())
			got := rootIn(t, end).Attributes().AsRaw()
			assert.Equal(t, "blocked", got["security.action"])
			assert.Equal(t, c.reason, got["security.reason"])
			require.Len(t, rec.requests, 1)
			assert.Equal(t, "blocked", rec.requests[0].Action)
			assert.Equal(t, c.reason, rec.requests[0].Reason)
			requireHeldZero(t, s)
		})
	}
}

// A collector that stops hands its waiting roots over to the next run (TakeWaiting), which
// goes on waiting for their model calls (RestoreWaiting): the call that comes after the
// restart closes the request as allowed, a block is still known when the wait runs out, and
// nothing is published or released twice. Without room to hand over, and without storage
// (Flush), the roots leave at shutdown as their traces stand.
func TestWaitingRootsSurviveARestart(t *testing.T) {
	cfg := testConfig()
	cfg.DefaultPercentage = 0
	before, recBefore := newSampler(t, cfg)
	routed := guardRouted(t, routerconv.EraC, false, 20*time.Second)
	blocked := build(routerconv.EraC, routersim.OutcomePII, 1)
	n := routed.SpanCount()
	consume(before, batchOf(routed, 0, n-1), t0)
	consume(before, batchOf(blocked, 0, blocked.SpanCount()), t0)
	waiting, closed := before.TakeWaiting(t0.Add(10*time.Second), 1<<20)
	require.NotEmpty(t, waiting)
	require.Zero(t, closed.SpanCount(), "nothing leaves: both roots are handed over")
	requireHeldZero(t, before)
	require.Empty(t, recBefore.requests)
	open, kept := before.TakeOpen(t0.Add(10*time.Second), 1<<20)
	require.Zero(t, open.SpanCount()+kept.SpanCount())

	after, rec := newSampler(t, cfg)
	taken, released, err := after.RestoreWaiting(waiting, t0.Add(12*time.Second))
	require.NoError(t, err)
	require.Equal(t, 2, taken)
	require.Zero(t, released.SpanCount())
	last := consume(after, batchOf(routed, n-1, n), t0.Add(20*time.Second))
	require.Equal(t, 2, last.SpanCount(), "the model call closes the handed-over request")
	got := rootIn(t, last).Attributes().AsRaw()
	assert.Equal(t, "allowed", got["security.action"])
	assert.GreaterOrEqual(t, got["processing.time_ms"], int64(20_000))
	assert.Equal(t, "qwen3-8b", got["routing.selected_model"])
	end := ticking(after, t0.Add(testWait-time.Second), t0.Add(testWait))
	require.Equal(t, 1, end.SpanCount())
	assert.Equal(t, "blocked", attr(rootIn(t, end), "security.action"), "the wait runs on from the last span before the restart")
	require.Len(t, rec.requests, 2)
	assert.Equal(t, "allowed", rec.requests[0].Action)
	assert.Equal(t, "blocked", rec.requests[1].Action)
	assert.Equal(t, "pii", rec.requests[1].Reason)
	requireHeldZero(t, after)

	// No room to hand over: the roots leave at shutdown, the guard match as blocked.
	again, recAgain := newSampler(t, cfg)
	consume(again, batchOf(blocked, 0, blocked.SpanCount()), t0)
	waiting, closed = again.TakeWaiting(t0.Add(time.Second), 0)
	assert.Empty(t, waiting)
	require.Equal(t, 1, closed.SpanCount())
	assert.Equal(t, "blocked", attr(rootIn(t, closed.Traces), "security.action"))
	assert.Len(t, recAgain.waited[TriggerShutdown], 1, "counted as cut short by the shutdown")
	requireHeldZero(t, again)

	flushed, recFlushed := newSampler(t, cfg)
	consume(flushed, batchOf(blocked, 0, blocked.SpanCount()), t0)
	require.Equal(t, 1, flushed.Flush(t0.Add(time.Second)).SpanCount())
	assert.Len(t, recFlushed.waited[TriggerShutdown], 1)
	requireHeldZero(t, flushed)

	_, _, err = after.RestoreWaiting([]byte("not json"), t0)
	require.Error(t, err)
}

// Under pressure, a waiting root's parked span is the first to move to the spill (most wait
// out model_call_wait), and comes back from it when the model call arrives. Without a spill,
// open traces are decided early first; only when none is left do the oldest waiting roots
// leave as their traces stand, each counted (RootWaited, pressure): never silently. Blocking
// instead (block_on_overflow) never cuts a wait short.
func TestWaitingRootsUnderPressure(t *testing.T) {
	cfg := testConfig()
	cfg.Shards = 1
	cfg.DefaultPercentage = 0
	sp := newCountingSpill(t)
	cfg.Spill = sp
	s, rec := newSampler(t, cfg)
	routed := guardRouted(t, routerconv.EraC, false, 20*time.Second)
	n := routed.SpanCount()
	consume(s, batchOf(routed, 0, n-1), t0)
	require.Positive(t, s.Memory(PartSpans), "the root is parked")
	overBudgetWithSpill(t, s, sp, t0)
	require.Empty(t, rec.waited[TriggerPressure])
	last := consume(s, batchOf(routed, n-1, n), t0.Add(20*time.Second))
	require.Equal(t, 2, last.SpanCount(), "the root comes back from the spill with its model call")
	assert.Equal(t, "allowed", attr(rootIn(t, last), "security.action"))
	assert.Zero(t, rec.spillFails)

	for _, blockOnOverflow := range []bool{false, true} {
		cfg := testConfig()
		cfg.Shards = 1
		cfg.DefaultPercentage = 0
		cfg.DecideOnPressure = !blockOnOverflow
		s, rec := newSampler(t, cfg)
		for seed := range uint64(3) {
			tr := build(routerconv.EraC, routersim.OutcomePII, seed)
			consume(s, batchOf(tr, 0, tr.SpanCount()), t0.Add(time.Duration(seed)*time.Second))
		}
		waiting, _ := s.Held()
		consume(s, rootless(7), t0.Add(5*time.Second))
		_, live := s.Held()
		require.Equal(t, int64(4), live)
		s.cfg.MaxBufferBytes = waiting - 1 // the waiting roots alone are over it
		out := consume(s, rootless(8), t0.Add(6*time.Second))
		if blockOnOverflow {
			assert.Empty(t, rec.waited[TriggerPressure], "blocking holds input back, it cuts no wait short")
			continue
		}
		require.Positive(t, rec.count(TriggerPressure, ReasonDefault), "the open traces go first")
		require.NotEmpty(t, rec.waited[TriggerPressure], "then the oldest waiting root, counted")
		assert.Equal(t, "blocked", attr(rootIn(t, out), "security.action"), "a guard match nothing followed, as it stands")
		after, _ := s.Held()
		assert.LessOrEqual(t, after, s.cfg.MaxBufferBytes)
	}
}

// What a root waiting for its model call costs, as counted against max_buffer_bytes (its
// parked span, its slot, index entry and extra) and as the Go heap really grows: the figure
// the README gives. The traces are era C guard blocks, whose roots wait out model_call_wait.
func TestBytesPerWaitingRoot(t *testing.T) {
	if testing.Short() {
		t.Skip("parks 20k roots")
	}
	const roots = 20_000
	cfg := testConfig()
	cfg.DefaultPercentage = 0
	cfg.MaxBufferBytes = 1 << 30
	s, _ := newSampler(t, cfg)
	rng := rand1()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	decisionsBefore := s.Memory(PartDecisions)
	for i := range roots {
		tr := routersim.Build(routersim.Request{Era: routerconv.EraC, Outcome: routersim.OutcomePII, Category: "math",
			Model: "qwen3-8b", Start: t0.Add(time.Duration(i) * time.Millisecond), RemoteParent: i%2 == 0}, rng)
		consume(s, tr.Traces, t0)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	_, live := s.Held()
	require.Equal(t, int64(roots), live)
	spans, traces := float64(s.Memory(PartSpans))/roots, float64(s.Memory(PartTraces))/roots
	heap := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)-(s.Memory(PartDecisions)-decisionsBefore)) / roots
	t.Logf("per waiting root: %.0f B accounted (%.0f B its parked span, %.0f B bookkeeping), %.0f B on the heap besides the decision cache",
		spans+traces, spans, traces, heap)
	assert.InEpsilon(t, spans+traces, heap, 0.25, "the accounting follows the heap")
	runtime.KeepAlive(s)
}

// A kept trace holds only its root: many spans arriving while its root waits (a model server's,
// a client's) do not close it at max_trace_spans before its model call, as a guard match.
func TestKeptTraceIsNotClosedByItsSpanCount(t *testing.T) {
	cfg := testConfig()
	cfg.DefaultPercentage = 0
	cfg.MaxTraceSpans = 8
	s, rec := newSampler(t, cfg)
	tr := guardRouted(t, routerconv.EraC, false, 20*time.Second)
	n := tr.SpanCount()
	consume(s, batchOf(tr, 0, n-1), t0)
	for i := range byte(10) {
		require.Equal(t, 1, consume(s, modelServerSpan(tr.ID, i, false), t0.Add(time.Second)).SpanCount(), "it passes")
	}
	require.Empty(t, rec.requests, "the root still waits")
	last := consume(s, batchOf(tr, n-1, n), t0.Add(20*time.Second))
	require.Equal(t, 2, last.SpanCount())
	assert.Equal(t, "allowed", attr(rootIn(t, last), "security.action"))
	requireHeldZero(t, s)
}
