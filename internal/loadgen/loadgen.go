// Package loadgen sends realistic router traffic: routersim traces of every era, delivered the
// way router pods export them (each span when it ends, batched per pod), with the faults a
// collector meets: late spans, out-of-order and root-last arrival. It records a manifest of
// every trace so tests can check the backend afterwards.
package loadgen

import (
	"container/heap"
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
)

// Sender delivers one export request.
type Sender interface {
	Send(ctx context.Context, td ptrace.Traces) error
}

// Config shapes the traffic.
type Config struct {
	Mix routersim.Mix
	// Rate is traces started per second; 0 sends as fast as the sender takes them, without
	// waiting for spans to end.
	Rate float64
	// Duration and Traces bound the run; the first reached stops it (0: unbounded).
	Duration time.Duration
	Traces   int
	// LateRate is the fraction of traces whose last span is held back by LateDelay.
	LateRate  float64
	LateDelay time.Duration
	// OutOfOrderRate is the fraction of traces whose spans leave in random order.
	OutOfOrderRate float64
	// RootLastRate is the fraction of traces whose root leaves after all other spans.
	RootLastRate float64
	// ExportDelay is how long a pod's batch stays open before it is exported, unless it fills
	// first (the SDK batch processor's schedule delay).
	ExportDelay time.Duration
	// BatchSpans bounds an export request.
	BatchSpans int
	// Pods is the number of router pods per era, each its own resource.
	Pods    int
	Workers int
	Seed    uint64
	// Progress, when set, is called about every second.
	Progress func(Stats)
}

// Stats are the running totals.
type Stats struct {
	Elapsed time.Duration
	// Generating is how long traces were started for; Elapsed adds sending what was open.
	Generating  time.Duration
	Traces      int64
	Spans       int64
	FailedSpans int64
	InFlight    int64
}

// Rate is traces started per second.
func (s Stats) Rate() float64 {
	d := s.Generating
	if d == 0 {
		d = s.Elapsed
	}
	if d <= 0 {
		return 0
	}
	return float64(s.Traces) / d.Seconds()
}

func (s Stats) String() string {
	return fmt.Sprintf("%6.1fs traces=%d spans=%d failed_spans=%d in_flight=%d rate=%.1f traces/s",
		s.Elapsed.Seconds(), s.Traces, s.Spans, s.FailedSpans, s.InFlight, s.Rate())
}

// Entry is one trace in the manifest.
type Entry struct {
	TraceID  string `json:"trace_id"`
	Era      string `json:"era"`
	Outcome  string `json:"outcome"`
	Model    string `json:"model"`
	Category string `json:"category"`
	// RouterSpans is how many of SpanIDs, at their head in the order they were sent, are the
	// router's; the rest are the model server's.
	RouterSpans int      `json:"router_spans"`
	Slow        bool     `json:"slow"`
	MustKeep    bool     `json:"must_keep"`
	SpanIDs     []string `json:"span_ids"`
	Start       int64    `json:"start_unix_nano"`
	RootEnd     int64    `json:"root_end_unix_nano"`
	LastEnd     int64    `json:"last_end_unix_nano"`
	FailedSpans int      `json:"failed_spans"`
	// FirstSent and LastSent are when the first and the last export of the trace's spans ended.
	FirstSent  int64 `json:"first_sent_unix_nano"`
	LastSent   int64 `json:"last_sent_unix_nano"`
	Late       bool  `json:"late,omitempty"`
	OutOfOrder bool  `json:"out_of_order,omitempty"`
	RootLast   bool  `json:"root_last,omitempty"`
	// ModelServer is what the model server's llm_request span says, when it traced the request.
	ModelServer *routersim.Serving `json:"model_server,omitempty"`
	// sent counts the spans whose export has finished, to track traces in flight.
	sent int
}

// MustKeep reports whether a sampler has to keep every span of a trace of this outcome.
func MustKeep(o routersim.Outcome) bool { return o == routersim.OutcomeError || o.Blocked() }

// pending is a span waiting for its send time.
type pending struct {
	at    time.Time
	span  ptrace.Span
	pod   int
	trace int
}

type schedule []pending

func (s schedule) Len() int           { return len(s) }
func (s schedule) Less(i, j int) bool { return s[i].at.Before(s[j].at) }
func (s schedule) Swap(i, j int)      { s[i], s[j] = s[j], s[i] }
func (s *schedule) Push(x any)        { *s = append(*s, x.(pending)) }
func (s *schedule) Pop() any {
	old := *s
	p := old[len(old)-1]
	*s = old[:len(old)-1]
	return p
}

// batch is one export request and the traces its spans belong to.
type batch struct {
	td     ptrace.Traces
	traces []int
	opened time.Time
}

// Run generates traffic until the bounds or ctx end, waits for every scheduled span (late ones
// included) to be sent, and returns the final stats and the manifest.
func Run(ctx context.Context, cfg Config, sender Sender) (Stats, []Entry) {
	g := newGenerator(cfg)
	return g.run(ctx, sender)
}

type generator struct {
	cfg      Config
	rng      *rand.Rand
	drawer   *routersim.Drawer
	mu       sync.Mutex
	manifest []Entry
	sched    schedule
	// open are the pods' batches being filled.
	open  map[int]*batch
	stats struct{ traces, spans, failed, inFlight atomic.Int64 }
	// generating is the length of the generation phase, once it is over.
	generating atomic.Int64
	pods       [][]ptrace.ResourceSpans // per group (four eras, the model server), per pod: resource and scope
}

func newGenerator(cfg Config) *generator {
	cfg.BatchSpans = max(cfg.BatchSpans, 1)
	cfg.Pods = max(cfg.Pods, 1)
	cfg.Workers = max(cfg.Workers, 1)
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	return &generator{cfg: cfg, rng: rng, drawer: routersim.NewDrawer(cfg.Mix, rng), pods: make([][]ptrace.ResourceSpans, modelServerGroup+1), open: map[int]*batch{}}
}

func (g *generator) snapshot(start time.Time) Stats {
	return Stats{
		Elapsed:     time.Since(start),
		Generating:  time.Duration(g.generating.Load()),
		Traces:      g.stats.traces.Load(),
		Spans:       g.stats.spans.Load(),
		FailedSpans: g.stats.failed.Load(),
		InFlight:    g.stats.inFlight.Load(),
	}
}

func (g *generator) run(ctx context.Context, sender Sender) (Stats, []Entry) {
	start := time.Now()
	// Each pod's requests go through one worker, in order: a router pod's SDK exports one batch
	// after the other, so its spans never overtake each other.
	queues := make([]chan batch, g.cfg.Workers)
	var workers sync.WaitGroup
	for w := range queues {
		queues[w] = make(chan batch, 4)
		workers.Add(1)
		go func() {
			defer workers.Done()
			for b := range queues[w] {
				g.send(ctx, sender, b)
			}
		}()
	}
	stopProgress := g.progress(start)

	var deadline time.Time
	if g.cfg.Duration > 0 {
		deadline = start.Add(g.cfg.Duration)
	}
	interval := time.Duration(0)
	if g.cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) / g.cfg.Rate)
	}
	next := start
	for made := 0; ctx.Err() == nil; {
		now := time.Now()
		if (g.cfg.Traces > 0 && made >= g.cfg.Traces) || (!deadline.IsZero() && !now.Before(deadline)) {
			break
		}
		if interval > 0 && now.Before(next) {
			g.dispatch(now, queues, false)
			sleep(ctx, min(next.Sub(now), 10*time.Millisecond))
			continue
		}
		g.add(now)
		made++
		next = next.Add(interval)
		if interval == 0 {
			g.dispatch(time.Now(), queues, false)
		}
	}
	g.generating.Store(int64(time.Since(start)))
	// Drain: late spans and spans still open leave when due, bounded by ctx.
	for (g.sched.Len() > 0 || len(g.open) > 0) && ctx.Err() == nil {
		g.dispatch(time.Now(), queues, false)
		sleep(ctx, 10*time.Millisecond)
	}
	g.dispatch(time.Now(), queues, true)
	for _, q := range queues {
		close(q)
	}
	workers.Wait()
	stopProgress()
	return g.snapshot(start), g.manifest
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (g *generator) progress(start time.Time) (stop func()) {
	if g.cfg.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				g.cfg.Progress(g.snapshot(start))
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// add builds one trace starting now and schedules its spans.
func (g *generator) add(now time.Time) {
	req := g.drawer.Draw(now)
	tr := routersim.Build(req, g.rng)
	spans := tr.Spans()
	n := spans.Len()
	pod := int(req.Era-1)*g.cfg.Pods + g.rng.IntN(g.cfg.Pods)

	// When each span is handed to its pod's exporter: when it ends, or now at full speed.
	at := make([]time.Time, n)
	for i, s := range spans.All() {
		at[i] = now
		if g.cfg.Rate > 0 {
			at[i] = s.EndTimestamp().AsTime()
		}
	}
	e := Entry{
		TraceID:  tr.ID.String(),
		Era:      req.Era.String(),
		Outcome:  req.Outcome.String(),
		Model:    req.Model,
		Category: req.Category,
		Slow:     req.Slow,
		MustKeep: MustKeep(req.Outcome),
		Start:    req.Start.UnixNano(),
		RootEnd:  int64(tr.RootEnd().UnixNano()),

		ModelServer: tr.Serving,
	}
	order := make([]int, n) // order[k] is the span that leaves k-th
	for i := range order {
		order[i] = i
	}
	switch x := g.rng.Float64(); {
	case x < g.cfg.OutOfOrderRate:
		e.OutOfOrder = true
		g.rng.Shuffle(n, func(a, b int) { order[a], order[b] = order[b], order[a] })
	case x < g.cfg.OutOfOrderRate+g.cfg.RootLastRate:
		e.RootLast = true
		for k, i := range order {
			if routerconv.IsLocalRoot(spans.At(i)) {
				order = append(append(order[:k:k], order[k+1:]...), i)
				break
			}
		}
	}
	sorted := make([]time.Time, n)
	copy(sorted, at)
	for k := 1; k < n; k++ {
		if sorted[k].Before(sorted[k-1]) {
			sorted[k] = sorted[k-1]
		}
	}
	if g.rng.Float64() < g.cfg.LateRate {
		e.Late = true
		sorted[n-1] = sorted[n-1].Add(g.cfg.LateDelay)
	}

	e.RouterSpans = n
	g.mu.Lock()
	idx := len(g.manifest)
	for k, i := range order {
		span := spans.At(i)
		e.SpanIDs = append(e.SpanIDs, span.SpanID().String())
		e.LastEnd = max(e.LastEnd, int64(span.EndTimestamp()))
		// Reordering delays a span (a retried export), but none leaves before it ends.
		due := sorted[k]
		if at[i].After(due) {
			due = at[i]
		}
		heap.Push(&g.sched, pending{at: due, span: span, pod: pod, trace: idx})
	}
	// The model server's spans leave from its own pod when they end.
	modelSpans, traced := tr.ModelServerSpans()
	modelPod := -1
	if traced {
		modelPod = modelServerGroup*g.cfg.Pods + g.rng.IntN(g.cfg.Pods)
		for _, span := range modelSpans.All() {
			e.SpanIDs = append(e.SpanIDs, span.SpanID().String())
			e.LastEnd = max(e.LastEnd, int64(span.EndTimestamp()))
			due := now
			if g.cfg.Rate > 0 {
				due = span.EndTimestamp().AsTime()
			}
			heap.Push(&g.sched, pending{at: due, span: span, pod: modelPod, trace: idx})
		}
	}
	g.manifest = append(g.manifest, e)
	g.mu.Unlock()
	g.podResource(int(req.Era-1), pod, tr.Traces.ResourceSpans().At(0), "vllm-sr-"+req.Era.String())
	if traced {
		g.podResource(modelServerGroup, modelPod, tr.Traces.ResourceSpans().At(1), routersim.ModelServerService)
	}
	g.stats.traces.Add(1)
	g.stats.inFlight.Add(1)
}

// modelServerGroup is the pod group of the model server, after the four eras' router pods.
const modelServerGroup = 4

// podResource remembers the resource of each pod of a group: the pods of a group differ only
// by instance name.
func (g *generator) podResource(group, pod int, template ptrace.ResourceSpans, name string) {
	local := pod - group*g.cfg.Pods
	for len(g.pods[group]) <= local {
		rs := ptrace.NewResourceSpans()
		template.Resource().CopyTo(rs.Resource())
		rs.Resource().Attributes().PutStr("service.instance.id", fmt.Sprintf("%s-%d", name, len(g.pods[group])))
		template.ScopeSpans().At(0).Scope().CopyTo(rs.ScopeSpans().AppendEmpty().Scope())
		g.pods[group] = append(g.pods[group], rs)
	}
}

// dispatch hands the spans due at now to their pods' open batches and sends each batch once it
// is full or has been open for ExportDelay (all: every batch, now).
func (g *generator) dispatch(now time.Time, queues []chan batch, all bool) {
	g.mu.Lock()
	var due []pending
	for g.sched.Len() > 0 && (all || !g.sched[0].at.After(now)) {
		due = append(due, heap.Pop(&g.sched).(pending))
	}
	g.mu.Unlock()
	send := func(pod int) {
		queues[pod%len(queues)] <- *g.open[pod]
		delete(g.open, pod)
	}
	for _, p := range due {
		b := g.open[p.pod]
		if b == nil {
			b = &batch{td: ptrace.NewTraces(), opened: now}
			rs := b.td.ResourceSpans().AppendEmpty()
			template := g.pods[p.pod/g.cfg.Pods][p.pod%g.cfg.Pods]
			template.Resource().CopyTo(rs.Resource())
			template.ScopeSpans().At(0).Scope().CopyTo(rs.ScopeSpans().AppendEmpty().Scope())
			g.open[p.pod] = b
		}
		p.span.CopyTo(b.td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().AppendEmpty())
		b.traces = append(b.traces, p.trace)
		if len(b.traces) >= g.cfg.BatchSpans {
			send(p.pod)
		}
	}
	for pod, b := range g.open {
		if all || now.Sub(b.opened) >= g.cfg.ExportDelay {
			send(pod)
		}
	}
}

func (g *generator) send(ctx context.Context, sender Sender, b batch) {
	n := int64(b.td.SpanCount())
	sendCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := sender.Send(sendCtx, b.td)
	cancel()
	g.stats.spans.Add(n)
	if err != nil {
		g.stats.failed.Add(n)
		g.mu.Lock()
		for _, i := range b.traces {
			g.manifest[i].FailedSpans++
		}
		g.mu.Unlock()
	}
	done := time.Now().UnixNano()
	g.mu.Lock()
	for _, i := range b.traces {
		e := &g.manifest[i]
		if e.FirstSent == 0 {
			e.FirstSent = done
		}
		e.LastSent = done
		e.sent++
		if e.sent == len(e.SpanIDs) {
			g.stats.inFlight.Add(-1)
		}
	}
	g.mu.Unlock()
}

// TraceIDOf parses a manifest trace ID.
func TraceIDOf(s string) (pcommon.TraceID, error) {
	var id pcommon.TraceID
	b, err := hex.DecodeString(s)
	if err == nil && len(b) != len(id) {
		err = fmt.Errorf("trace ID %q is not 16 bytes", s)
	}
	copy(id[:], b)
	return id, err
}
