package sampler

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/requestmetrics"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/spill"
)

var t0 = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

// recorder is an Observer that counts what the core reports.
type recorder struct {
	mu           sync.Mutex
	decided      map[Trigger]map[Reason]int
	kept         int
	dropped      int
	late         [NumLateOutcomes]int
	duplicates   int
	spans        int
	spillFails   int
	lost         int
	journalFails int
	requests     []requestmetrics.Request
	calls        []requestmetrics.ModelCall
	// waited are the roots' waits for their model calls, by what ended them.
	waited map[Trigger][]time.Duration
	served []requestmetrics.Serving
}

func newRecorder() *recorder {
	return &recorder{decided: map[Trigger]map[Reason]int{}}
}

func (r *recorder) Decided(d Decision, trigger Trigger, spans int, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.decided[trigger] == nil {
		r.decided[trigger] = map[Reason]int{}
	}
	r.decided[trigger][d.Reason]++
	r.spans += spans
	if d.Keep {
		r.kept++
	} else {
		r.dropped++
	}
}

func (r *recorder) Request(req *requestmetrics.Request) {
	r.mu.Lock()
	r.requests = append(r.requests, *req)
	r.mu.Unlock()
}

func (r *recorder) ModelCall(c *requestmetrics.ModelCall) {
	r.mu.Lock()
	r.calls = append(r.calls, *c)
	r.mu.Unlock()
}

func (r *recorder) RootWaited(ended Trigger, waited time.Duration) {
	r.mu.Lock()
	if r.waited == nil {
		r.waited = map[Trigger][]time.Duration{}
	}
	r.waited[ended] = append(r.waited[ended], waited)
	r.mu.Unlock()
}

func (r *recorder) Serving(s *requestmetrics.Serving) {
	r.mu.Lock()
	r.served = append(r.served, *s)
	r.mu.Unlock()
}

func (r *recorder) Lost(error) {
	r.mu.Lock()
	r.lost++
	r.mu.Unlock()
}

func (r *recorder) LateSpan(o LateOutcome) {
	r.mu.Lock()
	r.late[o]++
	r.mu.Unlock()
}

func (r *recorder) DuplicateSpan() {
	r.mu.Lock()
	r.duplicates++
	r.mu.Unlock()
}

func (r *recorder) SpillFailed(error) {
	r.mu.Lock()
	r.spillFails++
	r.mu.Unlock()
}

func (r *recorder) JournalFailed(error) {
	r.mu.Lock()
	r.journalFails++
	r.mu.Unlock()
}

// countingSpill is a spill.Store on disk that counts its live records and can be made to refuse.
type countingSpill struct {
	store  *spill.Store
	live   int
	puts   int
	refuse bool
}

func newCountingSpill(t testing.TB) *countingSpill {
	store, err := spill.Open(t.TempDir(), "test", 1<<30)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })
	return &countingSpill{store: store}
}

func (c *countingSpill) Put(parts ...[]byte) (spill.Ref, error) {
	if c.refuse {
		return spill.Ref{}, spill.ErrFull
	}
	ref, err := c.store.Put(parts...)
	if err == nil {
		c.live++
		c.puts++
	}
	return ref, err
}

func (c *countingSpill) Get(ref spill.Ref, dst []byte) ([]byte, error) { return c.store.Get(ref, dst) }

func (c *countingSpill) Free(ref spill.Ref) {
	c.live--
	c.store.Free(ref)
}

func (r *recorder) count(trigger Trigger, reason Reason) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.decided[trigger][reason]
}

func testConfig() Config {
	return Config{
		Grace:             2 * time.Second,
		TraceTimeout:      30 * time.Second,
		SlowThreshold:     10 * time.Second,
		ModelCallWait:     routerconv.ModelCallWait,
		DefaultPercentage: 10,
		MaxBufferBytes:    64 << 20,
		MaxTraceBytes:     8 << 20,
		MaxTraceSpans:     10_000,
		DecideOnPressure:  true,
		KeepCacheEntries:  10_000,
		DropCacheEntries:  100_000,
		Shards:            4,
		ServiceNames:      routerconv.DefaultServiceNames,
	}
}

// consume feeds a batch and returns everything it lets out: the batch's passing spans and
// the parked spans released with them.
func consume(s *Sampler, td ptrace.Traces, now time.Time) ptrace.Traces {
	pass, released := s.Consume(td, now)
	released.ResourceSpans().MoveAndAppendTo(pass.ResourceSpans())
	return pass
}

func newSampler(t testing.TB, cfg Config) (*Sampler, *recorder) {
	rec := newRecorder()
	s, err := New(cfg, rec)
	require.NoError(t, err)
	return s, rec
}

// build returns a simulated router trace, its spans in end order.
func build(era routerconv.Era, outcome routersim.Outcome, seed uint64) routersim.Trace {
	return routersim.Build(routersim.Request{
		Era: era, Outcome: outcome, Category: "math", Model: "qwen3-8b", Prompt: "p", Start: t0,
	}, rand.New(rand.NewPCG(seed, uint64(era))))
}

// withTraceID rebuilds a trace until its randomness puts it on the wanted side of pct.
func withKeep(t testing.TB, era routerconv.Era, outcome routersim.Outcome, pct float64, keep bool) routersim.Trace {
	th := thresholdFor(pct)
	for seed := range uint64(1000) {
		tr := build(era, outcome, seed)
		if th.ShouldSample(randomnessOf(tr.ID)) == keep {
			return tr
		}
	}
	t.Fatal("no trace ID found")
	return routersim.Trace{}
}

// batchOf returns spans [from, to) of a trace, with its resource and scope, as a new batch.
func batchOf(tr routersim.Trace, from, to int) ptrace.Traces {
	td := ptrace.NewTraces()
	src := tr.Traces.ResourceSpans().At(0)
	rs := td.ResourceSpans().AppendEmpty()
	src.Resource().CopyTo(rs.Resource())
	rs.SetSchemaUrl(src.SchemaUrl())
	ss := rs.ScopeSpans().AppendEmpty()
	src.ScopeSpans().At(0).Scope().CopyTo(ss.Scope())
	ss.SetSchemaUrl(src.ScopeSpans().At(0).SchemaUrl())
	for i := from; i < to; i++ {
		tr.Spans().At(i).CopyTo(ss.Spans().AppendEmpty())
	}
	return td
}

// schemaURLs lists the resource and scope schema URLs of each span group in td.
func schemaURLs(td ptrace.Traces) []string {
	var urls []string
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			urls = append(urls, rs.SchemaUrl()+" "+ss.SchemaUrl())
		}
	}
	return urls
}

// spanIDs lists the span IDs in td.
func spanIDs(td ptrace.Traces) []pcommon.SpanID {
	var ids []pcommon.SpanID
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, s := range ss.Spans().All() {
				ids = append(ids, s.SpanID())
			}
		}
	}
	return ids
}

func allSpanIDs(tr routersim.Trace) []pcommon.SpanID { return spanIDs(tr.Traces) }

func traceStates(td ptrace.Traces) []string {
	var out []string
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, s := range ss.Spans().All() {
				out = append(out, s.TraceState().AsRaw())
			}
		}
	}
	return out
}

func indexOf(tr routersim.Trace, name string) int {
	for i, s := range tr.Spans().All() {
		if s.Name() == name {
			return i
		}
	}
	return -1
}

// rootIn returns the local root among td's spans.
func rootIn(t testing.TB, td ptrace.Traces) ptrace.Span {
	t.Helper()
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, s := range ss.Spans().All() {
				if routerconv.IsLocalRoot(s) {
					return s
				}
			}
		}
	}
	t.Fatal("no root in the output")
	return ptrace.Span{}
}

// attr is a span attribute's value, or nil.
func attr(s ptrace.Span, key string) any { return s.Attributes().AsRaw()[key] }
