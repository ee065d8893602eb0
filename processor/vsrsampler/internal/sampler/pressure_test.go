package sampler

import (
	"encoding/binary"
	"math/rand/v2"
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

// newRescuingSampler is one shard that drops what no rule keeps and holds dropped traces for
// rescue, with a spill.
func newRescuingSampler(t *testing.T) (*Sampler, *recorder, *countingSpill) {
	cfg := testConfig()
	cfg.Shards = 1
	cfg.DefaultPercentage = 0
	cfg.RescueWindow = time.Minute
	sp := newCountingSpill(t)
	cfg.Spill = sp
	s, rec := newSampler(t, cfg)
	return s, rec, sp
}

// overBudgetWithSpill lowers the budget to what is held and sends a new waiting trace, which
// takes the sampler over it: relief goes through the spill.
func overBudgetWithSpill(t *testing.T, s *Sampler, sp *countingSpill, now time.Time) {
	t.Helper()
	held, _ := s.Held()
	s.cfg.MaxBufferBytes = held
	require.Zero(t, consume(s, rootless(2), now).SpanCount())
	require.Positive(t, sp.puts, "relieved through the spill")
}

// rootless is an era D request without its root, which ends last: it stays open.
func rootless(seed uint64) ptrace.Traces {
	tr := build(routerconv.EraD, routersim.OutcomeOK, seed)
	return batchOf(tr, 0, tr.SpanCount()-1)
}

// Over budget, each step of the relief frees what it takes: a trace dropped under pressure is
// not held for rescue (its bytes would stay and the next oldest would go too, and the next),
// so a budget overrun of one trace decides about one trace, even when nothing is kept.
func TestPressureDecidesAboutOneTracePerOverrun(t *testing.T) {
	cfg := testConfig()
	cfg.Shards = 1
	cfg.DefaultPercentage = 0
	cfg.RescueWindow = time.Minute
	const traces = 40
	probe, _ := newSampler(t, cfg)
	for seed := range uint64(traces) {
		consume(probe, rootless(seed), t0)
	}
	held, _ := probe.Held()

	cfg.MaxBufferBytes = held - 1024 // the last trace takes the shard 1 KiB over
	s, rec := newSampler(t, cfg)
	for seed := range uint64(traces) {
		consume(s, rootless(seed), t0)
	}
	decided := rec.count(TriggerPressure, ReasonDefault)
	assert.Positive(t, decided)
	assert.LessOrEqual(t, decided, 3, "a 1 KiB overrun decides O(1) traces, not the shard")
	after, live := s.Held()
	assert.LessOrEqual(t, after, cfg.MaxBufferBytes)
	assert.Equal(t, int64(traces-decided), live)
	for _, sh := range s.shards {
		assert.Equal(t, emptyList, sh.timers[listRescuable], "traces dropped under pressure are not held for rescue")
	}
}

// The budget bounds all shards together: a trace as large as a shard's share does not make
// its neighbours in that shard go first while the whole is within budget (contrib #45200).
func TestLargeTraceDoesNotStarveItsShard(t *testing.T) {
	cfg := testConfig()
	cfg.Shards = 4
	cfg.DefaultPercentage = 0
	cfg.MaxBufferBytes = 256 << 10
	cfg.MaxTraceBytes = 128 << 10
	s, rec := newSampler(t, cfg)

	big := ptrace.NewTraces()
	rs := big.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "batch-job")
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	bigID := pcommon.TraceID{0xb1, 0x9}
	for i := range 400 {
		span := spans.AppendEmpty()
		span.SetTraceID(bigID)
		span.SetSpanID(pcommon.SpanID{byte(i >> 8), byte(i), 1})
		span.SetParentSpanID(pcommon.SpanID{0xff})
		span.SetName("step")
		span.Attributes().PutStr("payload", string(make([]byte, 150)))
	}
	consume(s, big, t0)
	bigShard := shardOf(fingerprint(bigID), len(s.shards))
	require.Greater(t, s.Memory(PartSpans), cfg.MaxBufferBytes/int64(cfg.Shards), "the trace alone is over a shard's share")

	neighbours := 0
	for seed := uint64(0); neighbours < 20; seed++ {
		td := rootless(seed)
		if shardOf(fingerprint(td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID()), len(s.shards)) != bigShard {
			continue
		}
		consume(s, td, t0)
		neighbours++
	}
	require.Empty(t, rec.decided[TriggerPressure], "nothing decided while the whole is within budget")
	_, live := s.Held()
	assert.Equal(t, int64(21), live)
}

// Within the rescue window, a late span without an error joins the dropped trace's held
// spans, and comes back with them when an error arrives.
func TestLateSpanJoinsRescuableTrace(t *testing.T) {
	cfg := testConfig()
	cfg.DefaultPercentage = 0
	cfg.RescueWindow = time.Minute
	s, rec := newSampler(t, cfg)
	tr := build(routerconv.EraD, routersim.OutcomeOK, 1)
	n := tr.SpanCount()
	require.Zero(t, consume(s, batchOf(tr, 0, n-1), t0).SpanCount())
	require.Zero(t, consume(s, batchOf(tr, n-1, n), t0).SpanCount(), "complete and dropped")

	late := modelServerSpan(tr.ID, 1, false)
	require.Zero(t, consume(s, late, t0.Add(time.Second)).SpanCount(), "a late span without an error waits with the trace")
	failed := modelServerSpan(tr.ID, 2, true)
	out := consume(s, failed, t0.Add(2*time.Second))
	assert.Equal(t, n+2, out.SpanCount(), "the whole trace comes back, the late span with it")
	assert.Equal(t, n+2, rec.late[LateRescued])
	requireHeldZero(t, s)
}

// A trace decided in the batch it arrived in is held for rescue too: a late error from
// another service brings back the whole trace, not one span.
func TestTraceDecidedInItsFirstBatchIsRescuable(t *testing.T) {
	cfg := testConfig()
	cfg.DefaultPercentage = 0
	cfg.RescueWindow = time.Minute
	s, _ := newSampler(t, cfg)
	tr := build(routerconv.EraD, routersim.OutcomeOK, 1)
	require.Zero(t, consume(s, batchOf(tr, 0, tr.SpanCount()), t0).SpanCount())
	out := consume(s, modelServerSpan(tr.ID, 1, true), t0.Add(time.Second))
	assert.Equal(t, tr.SpanCount()+1, out.SpanCount())
	for _, ts := range traceStates(out) {
		assert.Equal(t, "ot=th:0", ts)
	}
	requireHeldZero(t, s)
}

// modelServerSpan is a span of the model server in the router's trace (it got the
// traceparent), ending after the router's.
func modelServerSpan(id pcommon.TraceID, n byte, failed bool) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "vllm")
	span := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	span.SetTraceID(id)
	span.SetSpanID(pcommon.SpanID{0xee, n})
	span.SetParentSpanID(pcommon.SpanID{0xdd})
	span.SetName("chat qwen3-8b")
	span.Attributes().PutStr("gen_ai.response.model", "qwen3-8b")
	span.Attributes().PutInt("gen_ai.usage.input_tokens", 120)
	span.Attributes().PutInt("gen_ai.usage.output_tokens", 40)
	if failed {
		span.Status().SetCode(ptrace.StatusCodeError)
	}
	return td
}

// The bookkeeping of a trace waiting for its decision, besides its spans, is at most 128
// bytes, as accounted against the budget and as the Go heap really grows.
func TestBookkeepingPerWaitingTrace(t *testing.T) {
	if testing.Short() {
		t.Skip("parks 100k traces")
	}
	const traces = 100_000
	cfg := testConfig()
	cfg.MaxBufferBytes = 1 << 30
	s, _ := newSampler(t, cfg)
	rng := rand.New(rand.NewPCG(1, 2))
	batch := func() ptrace.Traces {
		td := ptrace.NewTraces()
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", "vllm-sr")
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName(routerconv.TracerName)
		for range 1000 {
			span := ss.Spans().AppendEmpty()
			var id pcommon.TraceID
			binary.LittleEndian.PutUint64(id[:8], rng.Uint64())
			binary.LittleEndian.PutUint64(id[8:], rng.Uint64())
			span.SetTraceID(id)
			span.SetSpanID(pcommon.SpanID{1})
			span.SetParentSpanID(pcommon.SpanID{2})
			span.SetName("semantic_router.signal.evaluation")
			span.Attributes().PutStr("category.name", "math")
		}
		return td
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range traces / 1000 {
		consume(s, batch(), t0)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	_, live := s.Held()
	require.Equal(t, int64(traces), live)

	accounted := float64(s.Memory(PartTraces)) / traces
	heap := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)-s.Memory(PartSpans)) / traces
	t.Logf("bookkeeping per waiting trace: %.0f B accounted, %.0f B on the heap (spans: %.0f B each, apart)",
		accounted, heap, float64(s.Memory(PartSpans))/traces)
	assert.LessOrEqual(t, accounted, 128.0)
	assert.LessOrEqual(t, heap, 128.0)
	runtime.KeepAlive(s)
}

// Over budget with a spill, the spans held for rescue move to the spill instead of being given
// up: a late error from another service still brings the whole trace back.
func TestRescuableSpansSpillUnderPressure(t *testing.T) {
	s, _, sp := newRescuingSampler(t)
	dropped := build(routerconv.EraD, routersim.OutcomeOK, 1)
	n := dropped.SpanCount()
	require.Zero(t, consume(s, batchOf(dropped, 0, n-1), t0).SpanCount())
	require.Zero(t, consume(s, batchOf(dropped, n-1, n), t0).SpanCount(), "complete and dropped: held for rescue")

	overBudgetWithSpill(t, s, sp, t0)

	out := consume(s, modelServerSpan(dropped.ID, 1, true), t0.Add(time.Second))
	assert.Equal(t, n+1, out.SpanCount(), "the late error brings the whole trace back")
}
