package sampler

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
)

func TestDynamicFavoursRareKeys(t *testing.T) {
	d := newDynamic(Dynamic{Keys: []string{"category.name"}, TargetPerSecond: 10, Window: 10 * time.Second})
	// trace is one trace of key arriving and decided at once.
	trace := func(key string, at time.Time) float64 {
		d.arrived(at, at, 0)
		d.decided(at)
		return d.rate(key, at)
	}
	for i := range 1000 {
		trace("common", t0.Add(time.Duration(i)*time.Millisecond))
	}
	for i := range 2 {
		trace("rare", t0.Add(time.Duration(i)*500*time.Millisecond))
	}
	later := t0.Add(time.Second)
	assert.Equal(t, 1.0, trace("rare", later), "rare needs 2 of the 10 a second: all kept")
	assert.Less(t, trace("common", later), 0.05, "common shares the rest over 1000 a second")
	assert.Equal(t, 1.0, trace("never-seen", later), "a new key gets a fair share: here all it needs")
	for i := range 97 {
		trace(fmt.Sprint("key", i), later)
	}
	assert.Less(t, trace("never-seen-either", later), 0.3, "a fair share of the target over 100 keys")
}

func TestDynamicKeyCardinalityBounded(t *testing.T) {
	d := newDynamic(Dynamic{Keys: []string{"k"}, TargetPerSecond: 1, Window: time.Second, MaxKeys: 3})
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		d.rate(k, t0)
	}
	require.Len(t, d.keys, 4, "three keys and the overflow bucket")
}

func TestQuantizedProbabilities(t *testing.T) {
	assert.Equal(t, 1.0, quantize(1.5))
	assert.Equal(t, 0.5, quantize(0.5))
	assert.InDelta(t, 0.1, quantize(0.1), 0.1*0.03)
	assert.Equal(t, quantize(0.1), quantize(0.1005), "close estimates give the same threshold")
	assert.Equal(t, 0.0, quantize(0))
}

// dynamicRun feeds traffic through a sampler with dynamic sampling on a fake clock, a trace
// at a time, whole, as a collector decides it when its root ends.
type dynamicRun struct {
	rate   float64
	target float64
	// keys are the categories of the traces, one per trace of the minute.
	keys []string
}

type dynamicResult struct {
	windows    []int // kept traces per 5 s window, by root start
	sentByKey  map[string]int
	keptByKey  map[string]int
	keptTraces map[string]bool
}

func dynamicConfig(target float64) Config {
	cfg := testConfig()
	cfg.Dynamic = &Dynamic{Keys: []string{"category.name"}, TargetPerSecond: target, Window: 5 * time.Second}
	return cfg
}

// run sends traffic from `from` to `to` (seconds of the run) through s.
func (r dynamicRun) run(t *testing.T, s *Sampler, from, to float64, res *dynamicResult, seed uint64) {
	for i, key := range r.keys {
		at := float64(i) / r.rate
		if at < from || at >= to {
			continue
		}
		now := t0.Add(time.Duration(at * float64(time.Second)))
		tr := routersim.Build(routersim.Request{Era: routerconv.EraC, Category: key, Model: "m", Start: now},
			rand.New(rand.NewPCG(uint64(i), seed)))
		res.sentByKey[key]++
		if consume(s, batchOf(tr, 0, tr.SpanCount()), now).SpanCount() > 0 {
			res.windows[int(at/5)]++
			res.keptByKey[key]++
			res.keptTraces[tr.ID.String()] = true
		}
	}
}

func newResult() *dynamicResult {
	return &dynamicResult{windows: make([]int, 12), sentByKey: map[string]int{}, keptByKey: map[string]int{}, keptTraces: map[string]bool{}}
}

// zipfKeys draws a minute of categories at rate as the router's traffic does: a few carry
// most of it. From newKeyAt seconds on (if positive), a tenth of the traffic has a new key.
func zipfKeys(seed uint64, rate float64, newKeyAt float64) []string {
	rng := rand.New(rand.NewPCG(seed, 9))
	z := rand.NewZipf(rng, 1.3, 1, uint64(len(routersim.Categories)-1))
	keys := make([]string, int(rate*60))
	for i := range keys {
		keys[i] = routersim.Categories[z.Uint64()]
		if newKeyAt > 0 && float64(i)/rate >= newKeyAt && rng.IntN(10) == 0 {
			keys[i] = "new-model-launch"
		}
	}
	return keys
}

func (res *dynamicResult) report(t *testing.T, target float64) {
	t.Logf("kept per 5 s window (target %.0f): %v", 5*target, res.windows)
	keys := make([]string, 0, len(res.sentByKey))
	for k := range res.sentByKey {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return res.sentByKey[b] - res.sentByKey[a] })
	sent, kept := 0, 0
	for _, k := range keys {
		sent, kept = sent+res.sentByKey[k], kept+res.keptByKey[k]
	}
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s %.1f%%→%.1f%%", k, 100*float64(res.sentByKey[k])/float64(sent), 100*float64(res.keptByKey[k])/float64(kept))
	}
	t.Logf("sent share → kept share per key:%s", b.String())
}

// From the first second, kept traces per 5 s window stay within 20 % of the target, and rare
// keys are kept more often than common ones.
func TestDynamicHoldsTargetFromTheFirstSecond(t *testing.T) {
	const target = 20.0
	run := dynamicRun{rate: 500, target: target, keys: zipfKeys(1, 500, 0)}
	s, _ := newSampler(t, dynamicConfig(target))
	res := newResult()
	run.run(t, s, 0, 60, res, 1)
	res.report(t, target)
	for i, kept := range res.windows {
		assert.InDelta(t, 5*target, float64(kept), 5*target*0.2, "window %d", i)
	}
	common, rare := routersim.Categories[0], routersim.Categories[len(routersim.Categories)-1]
	share := func(m map[string]int, k string) float64 {
		total := 0
		for _, n := range m {
			total += n
		}
		return float64(m[k]) / float64(total)
	}
	assert.Less(t, share(res.keptByKey, common), share(res.sentByKey, common), "the common key gives up share")
	assert.Greater(t, share(res.keptByKey, rare), share(res.sentByKey, rare), "the rare key gains it")
}

// A collector restarted mid-run starts with nothing known: no window goes above 1.5× the
// target.
func TestDynamicAfterARestart(t *testing.T) {
	const target = 20.0
	run := dynamicRun{rate: 500, target: target, keys: zipfKeys(2, 500, 0)}
	res := newResult()
	before, _ := newSampler(t, dynamicConfig(target))
	run.run(t, before, 0, 31.3, res, 2)
	after, _ := newSampler(t, dynamicConfig(target))
	run.run(t, after, 31.3, 60, res, 2)
	res.report(t, target)
	for i, kept := range res.windows {
		assert.LessOrEqual(t, float64(kept), 1.5*5*target, "window %d", i)
	}
}

// A key appearing mid-run with a tenth of the traffic does not push any window above 1.5×.
func TestDynamicNewKeyMidRun(t *testing.T) {
	const target = 20.0
	run := dynamicRun{rate: 500, target: target, keys: zipfKeys(3, 500, 30)}
	s, _ := newSampler(t, dynamicConfig(target))
	res := newResult()
	run.run(t, s, 0, 60, res, 3)
	res.report(t, target)
	for i, kept := range res.windows {
		assert.LessOrEqual(t, float64(kept), 1.5*5*target, "window %d", i)
	}
	assert.Positive(t, res.keptByKey["new-model-launch"])
}

// Two collectors fed the same stream keep the same traces once their rate estimates have seen
// the same traffic: here the second starts 20 s late and agrees from a few adjustment
// intervals later.
func TestDynamicConsistentAcrossCollectors(t *testing.T) {
	const target = 20.0
	run := dynamicRun{rate: 500, target: target, keys: zipfKeys(4, 500, 0)}
	a, _ := newSampler(t, dynamicConfig(target))
	b, _ := newSampler(t, dynamicConfig(target))
	ra, rb := newResult(), newResult()
	run.run(t, a, 0, 40, newResult(), 4)
	run.run(t, a, 40, 60, ra, 4)
	run.run(t, b, 20, 40, newResult(), 4)
	run.run(t, b, 40, 60, rb, 4)
	same := 0
	for id := range ra.keptTraces {
		if rb.keptTraces[id] {
			same++
		}
	}
	differ := len(ra.keptTraces) + len(rb.keptTraces) - 2*same
	t.Logf("kept from 40 s on: %d and %d traces, %d in common", len(ra.keptTraces), len(rb.keptTraces), same)
	assert.LessOrEqual(t, float64(differ), math.Max(1, 0.02*float64(len(ra.keptTraces))))
}

// laggedRun is a minute of traffic as the router sends it: a request's first spans arrive as it
// starts and its root as it ends, 0.5 to 3 s later; its key is known only then.
type laggedRun struct {
	traces []routersim.Trace
	events []laggedEvent
}

type laggedEvent struct {
	at    time.Duration
	trace int
	root  bool
	// pod is the router pod that exports the event's spans.
	pod int
}

const laggedRate = 500.0

func newLaggedRun(seed uint64) laggedRun {
	keys := zipfKeys(seed, laggedRate, 0)
	var r laggedRun
	r.traces = make([]routersim.Trace, len(keys))
	for i, key := range keys {
		start := time.Duration(float64(i) / laggedRate * float64(time.Second))
		r.traces[i] = routersim.Build(routersim.Request{Era: routerconv.EraD, Category: key, Model: "m", Start: t0.Add(start)},
			rand.New(rand.NewPCG(uint64(i), seed)))
		took := 500*time.Millisecond + time.Duration(i%26)*100*time.Millisecond
		r.events = append(r.events, laggedEvent{at: start, trace: i}, laggedEvent{at: start + took, trace: i, root: true})
	}
	slices.SortStableFunc(r.events, func(a, b laggedEvent) int { return int(a.at - b.at) })
	return r
}

// run feeds s the events from `from` to `to`, ticking it every 100 ms, and counts each kept
// trace once in the window of its start.
func (r laggedRun) run(s *Sampler, from, to time.Duration, kept map[int]bool, res *dynamicResult) {
	next := from
	for _, e := range r.events {
		if e.at < from || e.at >= to {
			continue
		}
		for ; next <= e.at; next += 100 * time.Millisecond {
			s.Tick(t0.Add(next))
		}
		r.feed(s, e, kept, res)
	}
}

// feed sends s one event's spans at its time.
func (r laggedRun) feed(s *Sampler, e laggedEvent, kept map[int]bool, res *dynamicResult) {
	tr := r.traces[e.trace]
	n := tr.SpanCount()
	part := batchOf(tr, 0, n-1) // era D's root ends, and leaves, last
	if e.root {
		part = batchOf(tr, n-1, n)
	}
	for _, rs := range part.ResourceSpans().All() {
		rs.Resource().Attributes().PutStr("k8s.pod.name", fmt.Sprint("router-", e.pod))
	}
	if consume(s, part, t0.Add(e.at)).SpanCount() > 0 && !kept[e.trace] {
		kept[e.trace] = true
		if w := int(float64(e.trace) / laggedRate / 5); w < len(res.windows) {
			res.windows[w]++
		}
	}
}

// At the start, decisions lag arrivals by the requests' durations; the rates must hold the
// target all the same, from the first window.
func TestDynamicWhileDecisionsLagArrivals(t *testing.T) {
	const target = 20.0
	s, _ := newSampler(t, dynamicConfig(target))
	res, kept := newResult(), map[int]bool{}
	newLaggedRun(5).run(s, 0, 2*time.Minute, kept, res)
	res.report(t, target)
	for i, n := range res.windows {
		assert.InDelta(t, 5*target, float64(n), 5*target*0.2, "window %d", i)
	}
}

// A restart with storage hands the requests in flight to the next run, with the rates the last
// run measured. The handed-over traces arrived before the restart: taken as a burst of arrivals,
// they made the next run keep a tenth of the target for seconds. Every window holds within 20 %.
func TestDynamicRestartHandsOver(t *testing.T) {
	const target = 20.0
	r := newLaggedRun(6)
	res, kept := newResult(), map[int]bool{}
	before, _ := newSampler(t, dynamicConfig(target))
	restartAt := 31300 * time.Millisecond
	r.run(before, 0, restartAt, kept, res)
	open, flushed := before.TakeOpen(t0.Add(restartAt), 1<<30)
	require.Zero(t, flushed.SpanCount())
	require.Positive(t, open.SpanCount())
	rates := before.SaveRates(t0.Add(restartAt))

	after, _ := newSampler(t, dynamicConfig(target))
	up := restartAt + 2*time.Second // the time a collector takes to come back
	used, err := after.RestoreRates(rates, t0.Add(up))
	require.NoError(t, err)
	require.True(t, used)
	pass, released := after.TakeOver(open, t0.Add(up))
	require.Zero(t, pass.SpanCount()+released.SpanCount(), "no handed-over trace is complete yet")
	// What the router sent while the collector was down arrives as it comes back.
	for _, e := range r.events {
		if e.at >= restartAt && e.at < up {
			e.at = up
			r.feed(after, e, kept, res)
		}
	}
	r.run(after, up, 2*time.Minute, kept, res)
	res.report(t, target)
	for i, n := range res.windows {
		assert.InDelta(t, 5*target, float64(n), 5*target*0.2, "window %d", i)
	}
}

// exported delivers each event at its router pod's next export, every `every`, the pods' phases
// spread over the interval or all alike: the router's SDK exports a batch every 5 s, or sooner
// once 512 spans wait.
func (r laggedRun) exported(every time.Duration, pods int, spread bool) laggedRun {
	events := slices.Clone(r.events)
	for i := range events {
		e := &events[i]
		e.pod = e.trace % pods
		phase := 137 * time.Millisecond
		if spread {
			phase += time.Duration(e.pod) * every / time.Duration(pods)
		}
		e.at = phase + (e.at-phase+every-1)/every*every
	}
	slices.SortStableFunc(events, func(a, b laggedEvent) int { return int(a.at - b.at) })
	return laggedRun{traces: r.traces, events: events}
}

// Traffic comes in bursts, one per router pod and export. An average weighted to the last
// seconds swung with them: a pod exporting every 5 s was kept at 0.6× the target, and a start
// counted each pod's first export, a burst of the seconds before it, as one second's traffic
// (with a 5 s backlog at the start, 0.06–0.24× in the first window). Every window holds within
// 20 %.
func TestDynamicHoldsTargetWhateverTheExportInterval(t *testing.T) {
	const target = 20.0
	for _, c := range []struct {
		every  time.Duration
		pods   int
		spread bool
		// backlog: the collector starts this late, and what the pods sent before arrives as it
		// starts.
		backlog time.Duration
	}{
		{200 * time.Millisecond, 8, false, 0},
		{time.Second, 8, true, 0},
		{5 * time.Second, 1, false, 0},
		{5 * time.Second, 40, true, 0},
		{200 * time.Millisecond, 8, false, 5 * time.Second},
		{5 * time.Second, 40, true, 5 * time.Second},
	} {
		t.Run(fmt.Sprintf("every %v, %d pods, backlog %v", c.every, c.pods, c.backlog), func(t *testing.T) {
			s, _ := newSampler(t, dynamicConfig(target))
			res, kept := newResult(), map[int]bool{}
			r := newLaggedRun(10).exported(c.every, c.pods, c.spread)
			for _, e := range r.events {
				if e.at < c.backlog {
					e.at = c.backlog
					r.feed(s, e, kept, res)
				}
			}
			r.run(s, c.backlog, 2*time.Minute, kept, res)
			res.report(t, target)
			for i, n := range res.windows {
				assert.InDelta(t, 5*target, float64(n), 5*target*0.2, "window %d", i)
			}
		})
	}
}

// After a month without traffic nothing of the traffic before is remembered (the next trace
// closes only the seconds the rates keep, not each of the month's 2.6M for every key: 13 s here).
func TestDynamicAfterAnIdleMonth(t *testing.T) {
	d := newDynamic(Dynamic{Keys: []string{"k"}, TargetPerSecond: 10, Window: 15 * time.Second})
	for i := range 100 {
		key := fmt.Sprint("key", i)
		for j := range 20 {
			at := t0.Add(time.Duration(j) * time.Second)
			d.arrived(at, at, 0)
			d.decided(at)
			d.rate(key, at)
		}
	}
	later := t0.Add(30 * 24 * time.Hour)
	d.arrived(later, later, 0)
	d.decided(later)
	assert.Equal(t, 1.0, d.rate("key0", later), "nothing remembered: a trace after the pause is kept")
	assert.Zero(t, d.arrivals.sum, "the month's empty seconds leave no count")
}
