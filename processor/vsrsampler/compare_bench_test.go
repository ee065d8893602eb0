package vsrsampler_test

import (
	"context"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/processor/tailsamplingprocessor"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrattrs"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler"
)

// The comparison with contrib tail_sampling runs both on the same router traffic with the same
// policies: keep errors, keep security blocks, keep requests over 10 s, sample 10 % of the
// rest. Run with: go test -run '^$' -bench Compare -benchtime 20x ./processor/vsrsampler/

const (
	benchTraces      = 2000
	benchConcurrency = 16 // requests in flight at once, interleaved in the router's exports
	benchBatchSpans  = 64
)

var contribPolicies = map[string]any{
	"decision_wait": "30s",
	"num_traces":    4 * benchTraces,
	"decision_cache": map[string]any{
		"sampled_cache_size":     100_000,
		"non_sampled_cache_size": 1_000_000,
	},
	"policies": []any{
		map[string]any{"name": "errors", "type": "status_code", "status_code": map[string]any{"status_codes": []any{"ERROR"}}},
		map[string]any{"name": "blocked", "type": "string_attribute", "string_attribute": map[string]any{"key": "security.action", "values": []any{"blocked"}}},
		map[string]any{"name": "slow", "type": "latency", "latency": map[string]any{"threshold_ms": 10_000}},
		map[string]any{"name": "default", "type": "probabilistic", "probabilistic": map[string]any{"sampling_percentage": 10}},
	},
}

// routerTraffic is benchTraces router requests of all eras, normalized by vsr_attributes (as in
// the pipeline, so both samplers see security.action), as router pods export them: each
// request's spans in the order they end, requests interleaved, cut into batches with one
// resource per pod (one pod per era: a rolling upgrade).
func routerTraffic(tb testing.TB, keepRoots bool) []ptrace.Traces {
	rng := rand.New(rand.NewPCG(42, 42))
	drawer := routersim.NewDrawer(routersim.DefaultMix(), rng)
	type cursor struct {
		spans ptrace.SpanSlice
		res   ptrace.ResourceSpans
		next  int
	}
	var inflight []*cursor
	var batches []ptrace.Traces
	cur := ptrace.NewTraces()
	pods := map[string]ptrace.SpanSlice{}
	flush := func() {
		if cur.SpanCount() > 0 {
			batches = append(batches, cur)
			cur = ptrace.NewTraces()
			clear(pods)
		}
	}
	start := time.Now()
	for made := 0; made < benchTraces || len(inflight) > 0; {
		for len(inflight) < benchConcurrency && made < benchTraces {
			req := drawer.Draw(start.Add(time.Duration(made) * time.Millisecond))
			if !keepRoots {
				req.Outcome, req.Slow = routersim.OutcomeOK, false
			}
			tr := routersim.Build(req, rng)
			if !keepRoots {
				tr.Spans().RemoveIf(func(s ptrace.Span) bool { return routerconv.IsLocalRoot(s) })
			}
			inflight = append(inflight, &cursor{spans: tr.Spans(), res: tr.Traces.ResourceSpans().At(0)})
			made++
		}
		i := rng.IntN(len(inflight))
		c := inflight[i]
		if c.next < c.spans.Len() {
			version, _ := c.res.Resource().Attributes().Get("service.version")
			pod, ok := pods[version.Str()]
			if !ok {
				rs := cur.ResourceSpans().AppendEmpty()
				c.res.Resource().CopyTo(rs.Resource())
				ss := rs.ScopeSpans().AppendEmpty()
				ss.Scope().SetName(routerconv.TracerName)
				pod = ss.Spans()
				pods[version.Str()] = pod
			}
			c.spans.At(c.next).CopyTo(pod.AppendEmpty())
			c.next++
		}
		if c.next >= c.spans.Len() {
			inflight = append(inflight[:i], inflight[i+1:]...)
		}
		if cur.SpanCount() >= benchBatchSpans {
			flush()
		}
	}
	flush()
	normalizer, err := vsrattrs.NewFactory().CreateTraces(context.Background(),
		processortest.NewNopSettings(component.MustNewType("vsr_attributes")), vsrattrs.NewFactory().CreateDefaultConfig(), consumertest.NewNop())
	require.NoError(tb, err)
	for _, b := range batches {
		require.NoError(tb, normalizer.ConsumeTraces(context.Background(), b))
	}
	return batches
}

func copyAll(batches []ptrace.Traces) []ptrace.Traces {
	out := make([]ptrace.Traces, len(batches))
	for i, b := range batches {
		out[i] = ptrace.NewTraces()
		b.CopyTo(out[i])
	}
	return out
}

func spanCount(batches []ptrace.Traces) int {
	n := 0
	for _, b := range batches {
		n += b.SpanCount()
	}
	return n
}

type candidate struct {
	name   string
	create func(tb testing.TB, set processor.Settings, next *consumertest.TracesSink) processor.Traces
}

var candidates = []candidate{
	{"vsr_sampler", func(tb testing.TB, set processor.Settings, next *consumertest.TracesSink) processor.Traces {
		f := vsrsampler.NewFactory()
		p, err := f.CreateTraces(context.Background(), set, f.CreateDefaultConfig(), next)
		require.NoError(tb, err)
		return p
	}},
	{"tail_sampling", func(tb testing.TB, set processor.Settings, next *consumertest.TracesSink) processor.Traces {
		f := tailsamplingprocessor.NewFactory()
		cfg := f.CreateDefaultConfig()
		require.NoError(tb, confmap.NewFromStringMap(contribPolicies).Unmarshal(cfg))
		p, err := f.CreateTraces(context.Background(), set, cfg, next)
		require.NoError(tb, err)
		return p
	}},
}

func settings(c candidate, tt *componenttest.Telemetry) processor.Settings {
	set := processortest.NewNopSettings(component.MustNewType(c.name))
	if tt != nil {
		set.TelemetrySettings = tt.NewTelemetrySettings()
	}
	return set
}

// cpuTime is the process's user+system CPU time: both samplers do work on goroutines of their
// own, which wall time alone would hide on a multi-core machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCompareThroughput: one op is the whole traffic through a started processor and its
// shutdown, which decides what is still pending, so every span's full cost is counted.
func BenchmarkCompareThroughput(b *testing.B) {
	traffic := routerTraffic(b, true)
	spans := spanCount(traffic)
	for _, c := range candidates {
		b.Run(c.name, func(b *testing.B) {
			var cpu time.Duration
			var kept int
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				input := copyAll(traffic)
				sink := new(consumertest.TracesSink)
				p := c.create(b, settings(c, nil), sink)
				require.NoError(b, p.Start(context.Background(), componenttest.NewNopHost()))
				runtime.GC()
				before := cpuTime()
				b.StartTimer()
				for _, td := range input {
					require.NoError(b, p.ConsumeTraces(context.Background(), td))
				}
				require.NoError(b, p.Shutdown(context.Background()))
				b.StopTimer()
				cpu += cpuTime() - before
				kept = sink.SpanCount()
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*spans), "ns/span")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*spans), "cpu-ns/span")
			b.ReportMetric(float64(kept)/float64(spans), "kept-fraction")
		})
	}
}

// BenchmarkCompareMemory: bytes of heap held per buffered span, with traffic whose roots have
// not arrived, so both samplers must hold every span.
func BenchmarkCompareMemory(b *testing.B) {
	traffic := routerTraffic(b, false)
	spans := spanCount(traffic)
	for _, c := range candidates {
		b.Run(c.name, func(b *testing.B) {
			var held uint64
			for b.Loop() {
				b.StopTimer()
				tt := componenttest.NewTelemetry()
				p := c.create(b, settings(c, tt), new(consumertest.TracesSink))
				require.NoError(b, p.Start(context.Background(), componenttest.NewNopHost()))
				// The baseline is taken before the input exists: what the spans take is counted
				// wherever it ends up (moved by one sampler, copied by the other).
				before := heapInUse()
				input := copyAll(traffic)
				b.StartTimer()
				for _, td := range input {
					require.NoError(b, p.ConsumeTraces(context.Background(), td))
				}
				b.StopTimer()
				waitIngested(b, c.name, tt)
				input = nil
				held += heapInUse() - before
				require.NoError(b, p.Shutdown(context.Background()))
				require.NoError(b, tt.Shutdown(context.Background()))
				b.StartTimer()
			}
			b.ReportMetric(float64(held)/float64(b.N*spans), "heap-bytes/span")
		})
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// waitIngested waits (bounded) until tail_sampling's own goroutine has taken in every trace;
// vsr_sampler buffers synchronously.
func waitIngested(tb testing.TB, name string, tt *componenttest.Telemetry) {
	if name != "tail_sampling" {
		return
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m, err := tt.GetMetric("otelcol_processor_tail_sampling_new_trace_id_received"); err == nil {
			if sum := m.Data.(metricdata.Sum[int64]); len(sum.DataPoints) > 0 && sum.DataPoints[0].Value >= benchTraces {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	tb.Fatal("tail_sampling did not ingest the traffic within 30s")
}
