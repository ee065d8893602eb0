package loadgen

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
)

// recordingSender keeps every request with its arrival time; it can refuse some.
type recordingSender struct {
	mu       sync.Mutex
	requests []ptrace.Traces
	at       []time.Time
	refuse   func(n int) error
}

func (r *recordingSender) Send(_ context.Context, td ptrace.Traces) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refuse != nil {
		if err := r.refuse(len(r.requests)); err != nil {
			return err
		}
	}
	r.requests = append(r.requests, td)
	r.at = append(r.at, time.Now())
	return nil
}

// arrivals maps each span ID to when and in which request it arrived.
func (r *recordingSender) arrivals() map[string]time.Time {
	out := map[string]time.Time{}
	for i, td := range r.requests {
		for _, rs := range td.ResourceSpans().All() {
			for _, ss := range rs.ScopeSpans().All() {
				for _, s := range ss.Spans().All() {
					out[s.SpanID().String()] = r.at[i]
				}
			}
		}
	}
	return out
}

func testConfig() Config {
	mix := routersim.DefaultMix()
	mix.ErrorRate, mix.BlockedRate = 0.2, 0.2
	return Config{Mix: mix, Traces: 300, LateRate: 0.1, LateDelay: 200 * time.Millisecond,
		OutOfOrderRate: 0.1, RootLastRate: 0.1, BatchSpans: 50, Pods: 2, Workers: 2, Seed: 7}
}

func TestEverySpanSentOnceAndManifestMatches(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sink := &recordingSender{}
	stats, manifest := Run(ctx, testConfig(), sink)
	require.Len(t, manifest, 300)
	arrivals := sink.arrivals()
	total := 0
	for _, e := range manifest {
		total += len(e.SpanIDs)
		for _, id := range e.SpanIDs {
			assert.Contains(t, arrivals, id)
		}
		assert.Equal(t, e.Outcome == "error" || e.Outcome == "jailbreak" || e.Outcome == "pii", e.MustKeep)
	}
	assert.Len(t, arrivals, total, "no span sent twice")
	assert.Equal(t, int64(total), stats.Spans)
	assert.Zero(t, stats.FailedSpans)
	assert.Zero(t, stats.InFlight)
	for _, td := range sink.requests {
		assert.LessOrEqual(t, td.SpanCount(), 50)
		require.Equal(t, 1, td.ResourceSpans().Len(), "one pod per request")
		attrs := td.ResourceSpans().At(0).Resource().Attributes().AsRaw()
		assert.Contains(t, attrs, "service.instance.id")
	}
}

func TestDeliveryFaults(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sink := &recordingSender{}
	_, manifest := Run(ctx, testConfig(), sink)
	arrivals := sink.arrivals()
	var late, rootLast int
	for _, e := range manifest {
		router := e.SpanIDs[:e.RouterSpans]
		last := router[len(router)-1]
		if e.Late {
			late++
			for _, id := range router[:len(router)-1] {
				assert.GreaterOrEqual(t, arrivals[last].Sub(arrivals[id]), 150*time.Millisecond, "the late span waits")
			}
		}
		if e.RootLast {
			rootLast++
			for _, id := range router[:len(router)-1] {
				assert.False(t, arrivals[id].After(arrivals[last]))
			}
		}
	}
	assert.Positive(t, late)
	assert.Positive(t, rootLast)
}

// At a target rate, each span leaves when it ends: era A–C roots before their upstream call.
func TestRealTimeFollowsSpanEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := testConfig()
	cfg.Mix.EraWeights = [4]float64{0, 0, 1, 0}
	cfg.Mix.SlowRate, cfg.Mix.ErrorRate, cfg.Mix.BlockedRate, cfg.Mix.CacheHitRate = 0, 0, 0, 0
	cfg.LateRate, cfg.OutOfOrderRate, cfg.RootLastRate = 0, 0, 0
	cfg.Rate, cfg.Traces = 50, 20
	sink := &recordingSender{}
	start := time.Now()
	_, manifest := Run(ctx, cfg, sink)
	arrivals := sink.arrivals()
	for _, e := range manifest {
		first, last := arrivals[e.SpanIDs[0]], arrivals[e.SpanIDs[e.RouterSpans-1]]
		assert.GreaterOrEqual(t, last.Sub(first), 250*time.Millisecond, "the upstream span leaves when the model has answered")
		assert.False(t, first.Before(time.Unix(0, e.RootEnd).Add(-100*time.Millisecond)), "nothing leaves before it ended")
	}
	assert.GreaterOrEqual(t, time.Since(start), 400*time.Millisecond, "20 traces at 50/s take 0.4 s")
}

// Reordering delays spans, as a retried export does; it never sends a span before it ended
// (an era D root, which ends last, once left with the first child to end).
func TestReorderedSpansLeaveAfterTheyEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := testConfig()
	cfg.Mix.EraWeights = [4]float64{0, 0, 0, 1}
	cfg.Mix.SlowRate = 0
	cfg.LateRate, cfg.OutOfOrderRate, cfg.RootLastRate = 0, 1, 0
	cfg.Rate, cfg.Traces = 50, 20
	sink := &recordingSender{}
	Run(ctx, cfg, sink)
	for i, td := range sink.requests {
		for _, rs := range td.ResourceSpans().All() {
			for _, ss := range rs.ScopeSpans().All() {
				for _, span := range ss.Spans().All() {
					assert.False(t, sink.at[i].Before(span.EndTimestamp().AsTime()), "%s left before it ended", span.Name())
				}
			}
		}
	}
}

func TestFailuresCountedPerTrace(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sink := &recordingSender{refuse: func(n int) error {
		if n%2 == 0 {
			return status.Error(codes.InvalidArgument, "bad")
		}
		return nil
	}}
	stats, manifest := Run(ctx, testConfig(), sink)
	failed := 0
	for _, e := range manifest {
		failed += e.FailedSpans
	}
	assert.Positive(t, stats.FailedSpans)
	assert.Equal(t, stats.FailedSpans, int64(failed))
}

func TestRetryingRetriesOnlyRetryable(t *testing.T) {
	calls := 0
	flaky := &recordingSender{refuse: func(int) error {
		calls++
		if calls < 3 {
			return status.Error(codes.Unavailable, "memory limiter")
		}
		return nil
	}}
	require.NoError(t, Retrying{Sender: flaky, Attempts: 5, Backoff: time.Millisecond}.Send(context.Background(), ptrace.NewTraces()))
	assert.Equal(t, 3, calls)

	calls = 0
	bad := &recordingSender{refuse: func(int) error { calls++; return errors.New("permanent") }}
	require.Error(t, Retrying{Sender: bad, Attempts: 5, Backoff: time.Millisecond}.Send(context.Background(), ptrace.NewTraces()))
	assert.Equal(t, 1, calls)
	assert.True(t, Retryable(&HTTPError{Code: 503}))
	assert.False(t, Retryable(&HTTPError{Code: 400}))
}

func TestTraceIDOf(t *testing.T) {
	tr := routersim.Build(routersim.Request{Era: routerconv.EraD, Start: time.Now()}, testRand())
	id, err := TraceIDOf(tr.ID.String())
	require.NoError(t, err)
	assert.Equal(t, tr.ID, id)
	_, err = TraceIDOf("abc")
	assert.Error(t, err)
}

func testRand() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }
