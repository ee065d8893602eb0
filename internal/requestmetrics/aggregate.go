package requestmetrics

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
)

// requestDimensions are the request facts a series may be keyed by: each takes a handful of
// values, set by the router's configuration, never one per request or user.
var requestDimensions = map[string]func(*Request) string{
	"service.name":           func(r *Request) string { return r.Service },
	"routing.selected_model": func(r *Request) string { return r.SelectedModel },
	"category.name":          func(r *Request) string { return r.Category },
	"decision.name":          func(r *Request) string { return r.Decision },
	"security.action":        func(r *Request) string { return r.Action },
	"security.reason":        func(r *Request) string { return r.Reason },
	"cache.hit":              func(r *Request) string { return r.CacheHit },
	"vsr.era":                func(r *Request) string { return r.Era },
}

// DefaultDimensions are all of them.
var DefaultDimensions = []string{"service.name", "routing.selected_model", "category.name", "decision.name",
	"security.action", "security.reason", "cache.hit", "vsr.era"}

// explosive are keys operators reach for that take a value per request, user or path: as a
// dimension they would make a series each.
var explosive = []string{"request.id", "trace.id", "trace_id", "span.id", "user.id", "session.id", "enduser.id",
	"url.path", "url.query", "http.path", "http.target", "cache.key", "gen_ai.prompt", "processing.time_ms",
	"gen_ai.request.id", "gen_ai.response.id"}

// DefaultDurationBuckets are histogram bounds in seconds: a router answers from the cache in
// milliseconds and from a reasoning model in minutes.
var DefaultDurationBuckets = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

// servingDimensions are what a model server's series may be keyed by: the model and the
// server's service, and the facts of the router request it served.
var servingDimensions = map[string]func(*Serving) string{
	"gen_ai.response.model":  func(s *Serving) string { return s.Model },
	"service.name":           func(s *Serving) string { return s.Service },
	"routing.selected_model": func(s *Serving) string { return s.SelectedModel },
	"category.name":          func(s *Serving) string { return s.Category },
	"decision.name":          func(s *Serving) string { return s.Decision },
	"vsr.era":                func(s *Serving) string { return s.Era },
}

// DefaultServingDimensions are all of them.
var DefaultServingDimensions = []string{"gen_ai.response.model", "service.name", "routing.selected_model", "category.name",
	"decision.name", "vsr.era"}

// DefaultServingBuckets are bounds in seconds for a model server's latencies: a token every few
// milliseconds, a first token in tens of milliseconds to seconds, a queue and a whole answer
// of up to minutes.
var DefaultServingBuckets = []float64{0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2,
	0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120, 300}

// Config chooses the dimensions and bounds of the metrics.
type Config struct {
	Dimensions []string
	// MaxSeries bounds the distinct dimension sets of each metric; beyond, an overflow series
	// (otel.metric.overflow=true) counts the rest.
	MaxSeries       int
	DurationBuckets []float64
	ModelServer     ServingConfig
}

// ServingConfig chooses the dimensions and bounds of the model servers' metrics.
type ServingConfig struct {
	Dimensions []string
	Buckets    []float64
}

// Validate checks the configuration; each error names its key.
func (c *Config) Validate() error {
	errs := validateDimensions("dimensions", c.Dimensions, requestDimensions, DefaultDimensions)
	errs = append(errs, validateDimensions("model_server.dimensions", c.ModelServer.Dimensions, servingDimensions, DefaultServingDimensions)...)
	if c.MaxSeries < 1 {
		errs = append(errs, fmt.Errorf("max_series: must be positive, got %d", c.MaxSeries))
	}
	errs = append(errs, validateBuckets("duration_buckets", c.DurationBuckets)...)
	errs = append(errs, validateBuckets("model_server.buckets", c.ModelServer.Buckets)...)
	return errors.Join(errs...)
}

func validateDimensions[F any](key string, dims []string, allowed map[string]F, defaults []string) []error {
	var errs []error
	seen := map[string]bool{}
	for i, d := range dims {
		_, known := allowed[d]
		switch {
		case slices.Contains(explosive, d):
			errs = append(errs, fmt.Errorf("%s[%d]: %q takes a value per request or user and would make a series each; choose from %v", key, i, d, defaults))
		case !known:
			errs = append(errs, fmt.Errorf("%s[%d]: %q is not a request fact; choose from %v", key, i, d, defaults))
		case seen[d]:
			errs = append(errs, fmt.Errorf("%s[%d]: %q is listed twice", key, i, d))
		}
		seen[d] = true
	}
	return errs
}

func validateBuckets(key string, bounds []float64) []error {
	if len(bounds) == 0 {
		return []error{fmt.Errorf("%s: must list at least one bound", key)}
	}
	var errs []error
	for i, b := range bounds {
		if math.IsNaN(b) || math.IsInf(b, 0) || b <= 0 || (i > 0 && b <= bounds[i-1]) {
			errs = append(errs, fmt.Errorf("%s[%d]: bounds must be positive, finite and increasing, got %v", key, i, b))
		}
	}
	return errs
}

// Aggregator sums records into cumulative series. It is safe for concurrent use.
type Aggregator struct {
	cfg         Config
	dims        []func(*Request) string
	servingDims []func(*Serving) string
	start       pcommon.Timestamp
	// bounds are each histogram family's bucket bounds.
	bounds [numFamilies][]float64

	mu       sync.Mutex
	families [numFamilies]family
}

// Metric families.
const (
	requests = iota
	requestErrors
	requestDuration
	modelCalls
	modelCallErrors
	modelCallDuration
	modelTokens
	servingTTFT
	servingTPOT
	servingQueue
	servingDuration
	servingTokens
	numFamilies
)

// family is one metric's series, by their attributes joined.
type family struct {
	series   map[string]*series
	overflow *series
}

// series is one attribute set's cumulative value: a sum, or a histogram, with exemplars.
type series struct {
	attrs []string // key, value, key, value…
	sum   float64
	// A histogram's bucket counts (len(bounds)+1) and count; nil for a sum.
	buckets []float64
	count   float64
	// exemplars are the latest per bucket (one for a sum).
	exemplars []exemplar
}

type exemplar struct {
	at      time.Time
	value   float64
	traceID pcommon.TraceID
	spanID  pcommon.SpanID
}

// NewAggregator returns an aggregator for a validated cfg, its series starting at start.
func NewAggregator(cfg Config, start time.Time) *Aggregator {
	a := &Aggregator{cfg: cfg, start: pcommon.NewTimestampFromTime(start)}
	for _, d := range cfg.Dimensions {
		a.dims = append(a.dims, requestDimensions[d])
	}
	for _, d := range cfg.ModelServer.Dimensions {
		a.servingDims = append(a.servingDims, servingDimensions[d])
	}
	for f, d := range descriptions {
		switch {
		case !d.histogram:
		case f >= servingTTFT:
			a.bounds[f] = cfg.ModelServer.Buckets
		default:
			a.bounds[f] = cfg.DurationBuckets
		}
	}
	for i := range a.families {
		a.families[i].series = map[string]*series{}
	}
	return a
}

// overflowAttrs mark the series that counts what came beyond max_series.
var overflowAttrs = []string{"otel.metric.overflow", "true"}

// at returns the series of family f with attrs, creating it (or, past the cap, the
// overflow series).
func (a *Aggregator) at(f int, attrs []string) *series {
	fam := &a.families[f]
	key := strings.Join(attrs, "\x00")
	if s := fam.series[key]; s != nil {
		return s
	}
	if len(fam.series) >= a.cfg.MaxSeries {
		if fam.overflow == nil {
			fam.overflow = a.newSeries(f, overflowAttrs)
		}
		return fam.overflow
	}
	// The series outlives the record: its labels are copies, not views of a span's strings.
	own := make([]string, len(attrs))
	for i, v := range attrs {
		own[i] = strings.Clone(v)
	}
	s := a.newSeries(f, own)
	fam.series[key] = s
	return s
}

func (a *Aggregator) newSeries(f int, attrs []string) *series {
	s := &series{attrs: attrs, exemplars: make([]exemplar, 1)}
	if descriptions[f].histogram {
		s.buckets = make([]float64, len(a.bounds[f])+1)
		s.exemplars = make([]exemplar, len(s.buckets))
	}
	return s
}

func (s *series) add(w float64, ex exemplar) {
	s.sum += w
	if !ex.traceID.IsEmpty() {
		ex.value = w
		s.exemplars[0] = ex
	}
}

func (s *series) observe(bounds []float64, v, w float64, ex exemplar) {
	b := sort.SearchFloat64s(bounds, v) // the first bound ≥ v: buckets are (prev, bound]
	s.buckets[b] += w
	s.count += w
	s.sum += v * w
	if !ex.traceID.IsEmpty() {
		ex.value = v
		s.exemplars[b] = ex
	}
}

// label is a name as a label value: a bounded name, or none. The sampler bounds what it
// records; this holds whatever a record carries to the same vocabulary.
func label(v string) string {
	if v == "" {
		return ""
	}
	return routerconv.BoundedName(v)
}

// errorLabel is an error class as a label value: one of routerconv.ErrorReasons, or none.
func errorLabel(v string) string {
	if v == "" {
		return ""
	}
	return routerconv.BoundedErrorType(v)
}

// Request sums a router request into the request metrics.
func (a *Aggregator) Request(r *Request) {
	if !r.Router {
		return
	}
	attrs := make([]string, 0, 2*len(a.dims)+2)
	for i, d := range a.dims {
		attrs = append(attrs, a.cfg.Dimensions[i], label(d(r)))
	}
	w := max(r.Weight, 1)
	ex := exemplar{at: r.At, traceID: r.TraceID}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.at(requests, attrs).add(w, ex)
	if errorType := errorLabel(r.ErrorType); errorType != "" {
		a.at(requestErrors, append(attrs, "error.type", errorType)).add(w, ex)
	}
	if r.Duration > 0 {
		a.at(requestDuration, attrs).observe(a.bounds[requestDuration], r.Duration.Seconds(), w, ex)
	}
}

// ModelCall sums a model call into the model metrics.
func (a *Aggregator) ModelCall(c *ModelCall) {
	attrs := []string{"gen_ai.response.model", label(c.Model)}
	w := max(c.Weight, 1)
	ex := exemplar{at: c.At, traceID: c.TraceID, spanID: c.SpanID}
	a.mu.Lock()
	defer a.mu.Unlock()
	if c.Upstream {
		a.at(modelCalls, attrs).add(w, ex)
		if errorType := errorLabel(c.ErrorType); errorType != "" {
			a.at(modelCallErrors, append(attrs, "error.type", errorType)).add(w, ex)
		}
		if c.Duration > 0 {
			a.at(modelCallDuration, attrs).observe(a.bounds[modelCallDuration], c.Duration.Seconds(), w, ex)
		}
	}
	for _, tokens := range [...]struct {
		kind string
		n    int64
	}{{"input", c.InputTokens}, {"output", c.OutputTokens}} {
		if tokens.n > 0 {
			a.at(modelTokens, append(attrs[:2:2], "gen_ai.token.type", tokens.kind)).add(w*float64(tokens.n), exemplar{})
		}
	}
}

// Serving sums what a model server reported of a request into the model server metrics. Its
// names become labels only as bounded names (routerconv.BoundedName).
func (a *Aggregator) Serving(s *Serving) {
	attrs := make([]string, 0, 2*len(a.servingDims)+2)
	for i, d := range a.servingDims {
		v := d(s)
		if v != "" {
			v = routerconv.BoundedName(v)
		}
		attrs = append(attrs, a.cfg.ModelServer.Dimensions[i], v)
	}
	w := max(s.Weight, 1)
	ex := exemplar{at: s.At, traceID: s.TraceID, spanID: s.SpanID}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, h := range [...]struct {
		family int
		v      float64
	}{{servingTTFT, s.TTFT}, {servingTPOT, s.TPOT}, {servingQueue, s.Queue}, {servingDuration, s.E2E}} {
		if h.v >= 0 {
			a.at(h.family, attrs).observe(a.bounds[h.family], h.v, w, ex)
		}
	}
	n := len(attrs)
	for _, tokens := range [...]struct {
		kind string
		n    int64
	}{{"input", s.InputTokens}, {"output", s.OutputTokens}} {
		if tokens.n > 0 {
			a.at(servingTokens, append(attrs[:n:n], "gen_ai.token.type", tokens.kind)).add(w*float64(tokens.n), exemplar{})
		}
	}
}

// descriptions of the families: name, unit, description, histogram.
var descriptions = [numFamilies]struct {
	name, unit, description string
	histogram               bool
}{
	requests:          {"vsr.requests", "{request}", "Router requests, all traffic (not only sampled), by request facts.", false},
	requestErrors:     {"vsr.request.errors", "{request}", "Router requests that failed, by request facts and error.type.", false},
	requestDuration:   {"vsr.request.duration", "s", "Router request duration, from the root's start to the last span's end.", true},
	modelCalls:        {"vsr.model.calls", "{call}", "Calls from the router to a model.", false},
	modelCallErrors:   {"vsr.model.call.errors", "{call}", "Calls to a model that failed, by error.type.", false},
	modelCallDuration: {"vsr.model.call.duration", "s", "Duration of calls to a model.", true},
	modelTokens:       {"vsr.model.tokens", "{token}", "Tokens reported (gen_ai.usage.*) on spans other than a model server's request span, by model and gen_ai.token.type.", false},
	servingTTFT:       {"vsr.model.server.time_to_first_token", "s", "Time to first token a model server reports (gen_ai.latency.time_to_first_token), by model and the router request's facts.", true},
	servingTPOT:       {"vsr.model.server.time_per_output_token", "s", "Decode time over the output tokens after the first, as a model server reports them.", true},
	servingQueue:      {"vsr.model.server.queue_time", "s", "Time a request waited for a model server's scheduler (gen_ai.latency.time_in_queue; vLLM).", true},
	servingDuration:   {"vsr.model.server.duration", "s", "A request's time in a model server, from arrival to its last token (gen_ai.latency.e2e).", true},
	servingTokens:     {"vsr.model.server.tokens", "{token}", "Tokens a model server reports (either gen_ai.usage name, counted once), by model, the router request's facts and gen_ai.token.type.", false},
}

// ScopeName is the instrumentation scope of the metrics.
const ScopeName = "github.com/otelcol-vsr/otelcol-vsr/receiver/vsrrequests"

// Metrics returns the cumulative series at now.
func (a *Aggregator) Metrics(now time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	sm := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty()
	sm.Scope().SetName(ScopeName)
	ts := pcommon.NewTimestampFromTime(now)
	a.mu.Lock()
	defer a.mu.Unlock()
	for f := range a.families {
		fam := &a.families[f]
		all := make([]*series, 0, len(fam.series)+1)
		for _, s := range fam.series {
			all = append(all, s)
		}
		if fam.overflow != nil {
			all = append(all, fam.overflow)
		}
		if len(all) == 0 {
			continue
		}
		d := descriptions[f]
		m := sm.Metrics().AppendEmpty()
		m.SetName(d.name)
		m.SetUnit(d.unit)
		m.SetDescription(d.description)
		if d.histogram {
			h := m.SetEmptyHistogram()
			h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
			for _, s := range all {
				a.histogramPoint(h.DataPoints().AppendEmpty(), a.bounds[f], s, ts)
			}
			continue
		}
		sum := m.SetEmptySum()
		sum.SetIsMonotonic(true)
		sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		for _, s := range all {
			dp := sum.DataPoints().AppendEmpty()
			a.pointHeader(dp.Attributes(), dp.SetStartTimestamp, dp.SetTimestamp, s, ts)
			dp.SetDoubleValue(s.sum)
			putExemplars(dp.Exemplars(), s.exemplars)
		}
	}
	return md
}

func (a *Aggregator) pointHeader(attrs pcommon.Map, setStart, setTime func(pcommon.Timestamp), s *series, ts pcommon.Timestamp) {
	for i := 0; i+1 < len(s.attrs); i += 2 {
		attrs.PutStr(s.attrs[i], s.attrs[i+1])
	}
	setStart(a.start)
	setTime(ts)
}

func (a *Aggregator) histogramPoint(dp pmetric.HistogramDataPoint, bounds []float64, s *series, ts pcommon.Timestamp) {
	a.pointHeader(dp.Attributes(), dp.SetStartTimestamp, dp.SetTimestamp, s, ts)
	dp.ExplicitBounds().FromRaw(bounds)
	counts := make([]uint64, len(s.buckets))
	var total uint64
	for i, c := range s.buckets {
		counts[i] = uint64(math.Round(c))
		total += counts[i]
	}
	dp.BucketCounts().FromRaw(counts)
	dp.SetCount(total)
	dp.SetSum(s.sum)
	putExemplars(dp.Exemplars(), s.exemplars)
}

func putExemplars(dst pmetric.ExemplarSlice, exemplars []exemplar) {
	for _, ex := range exemplars {
		if ex.traceID.IsEmpty() {
			continue
		}
		e := dst.AppendEmpty()
		e.SetTimestamp(pcommon.NewTimestampFromTime(ex.at))
		e.SetDoubleValue(ex.value)
		e.SetTraceID(ex.traceID)
		if !ex.spanID.IsEmpty() {
			e.SetSpanID(ex.spanID)
		}
	}
}
