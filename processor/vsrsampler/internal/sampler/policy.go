package sampler

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/sampling"
	"github.com/otelcol-vsr/otelcol-vsr/internal/requestmetrics"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/store"
)

// Rule keeps traces that have an attribute with one of some values at its own rate.
type Rule struct {
	Name string
	// Key is a span or resource attribute; any span of the trace may carry it.
	Key        string
	Values     []string
	Percentage float64
}

// Dynamic spreads a target rate of kept traces over the values of some keys, so rare routes
// are kept more often than common ones.
type Dynamic struct {
	Keys []string
	// TargetPerSecond is the rate of kept traces aimed at, across all keys.
	TargetPerSecond float64
	// Window is how often rates are recomputed from the traffic seen.
	Window time.Duration
	// MaxKeys bounds the keys tracked; traces beyond share one rate.
	MaxKeys int
}

// Config configures the core. Durations are on the caller's clock.
type Config struct {
	// Grace is how long a trace whose root has ended waits for more spans.
	Grace time.Duration
	// TraceTimeout decides a trace this long after its first span, root or not.
	TraceTimeout time.Duration
	// SlowThreshold keeps traces whose request took at least this long; 0 disables it.
	SlowThreshold time.Duration
	// ModelCallWait is how long after its last span a kept era A–C request's root waits for its
	// model call: past it, no call can still come (routerconv.ModelCallWait).
	ModelCallWait     time.Duration
	Rules             []Rule
	DefaultPercentage float64
	// Dynamic replaces DefaultPercentage when set.
	Dynamic *Dynamic
	// MaxBufferBytes bounds the encoded size of all buffered spans.
	MaxBufferBytes int64
	MaxTraceBytes  int64
	MaxTraceSpans  int
	// DecideOnPressure decides the oldest traces when the budget is exceeded; without it the
	// caller must hold back input instead (block_on_overflow).
	DecideOnPressure bool
	KeepCacheEntries int
	DropCacheEntries int
	// RescueWindow keeps a dropped trace's spans this long, so a late error or block span can
	// still bring back the whole trace; under pressure they are the first memory given up.
	RescueWindow time.Duration
	// Spill, when set, takes the parked spans of the newest traces when the budget is exceeded,
	// before any trace is decided early.
	Spill store.Spill
	// Journal, when set, is written every parked span and decision before Consume returns, so
	// that a crash loses none of them (Recover reads them back). Spans it holds need no spill.
	Journal store.Journal
	Shards  int
	// ServiceNames are the router's service.name values.
	ServiceNames []string
}

// Reason is why a trace was kept or dropped.
type Reason uint8

const (
	ReasonError Reason = iota
	ReasonBlocked
	ReasonSlow
	ReasonRule
	ReasonDynamic
	ReasonDefault
	// ReasonInFlight: still in flight at shutdown, where the rules would have dropped it; kept,
	// since an error or block whose span has not arrived yet would otherwise be lost.
	ReasonInFlight
	NumReasons
)

func (r Reason) String() string {
	return [...]string{"error", "blocked", "slow", "rule", "dynamic", "default", "in_flight"}[r]
}

// Trigger is what made the decision happen when it did.
type Trigger uint8

const (
	// TriggerImmediate: a keep-always signal arrived.
	TriggerImmediate Trigger = iota
	// TriggerRoot: the root ended and no span is known to be missing.
	TriggerRoot
	// TriggerGrace: the root ended and no span came for Grace.
	TriggerGrace
	TriggerTimeout
	// TriggerLimit: the trace reached MaxTraceSpans or MaxTraceBytes.
	TriggerLimit
	TriggerPressure
	TriggerShutdown
	NumTriggers
)

func (t Trigger) String() string {
	return [...]string{"immediate", "root", "grace", "timeout", "limit", "pressure", "shutdown"}[t]
}

// LateOutcome is what happened to a span that arrived after its trace was decided.
type LateOutcome uint8

const (
	LateKept LateOutcome = iota
	LateDropped
	// LateRescued: an error or block span arrived for a dropped trace; it and later spans are kept.
	LateRescued
	NumLateOutcomes
)

func (o LateOutcome) String() string { return [...]string{"kept", "dropped", "rescued"}[o] }

// Decision is the outcome for one trace.
type Decision struct {
	Keep   bool
	Reason Reason
	// Rule is the index of the matching rule when Reason is ReasonRule.
	Rule int
	// Threshold is the OTEP 235 threshold written to kept spans.
	Threshold sampling.Threshold
}

// Observer receives the core's events for telemetry. It is called with a shard locked, so it
// must be quick and must not call back into the Sampler.
type Observer interface {
	Decided(d Decision, trigger Trigger, spans int, latency time.Duration)
	// Request is called once per trace, when it is done with, kept or dropped: request
	// metrics count all traffic.
	Request(r *requestmetrics.Request)
	// ModelCall is called for each model call or token report, as its span arrives.
	ModelCall(c *requestmetrics.ModelCall)
	// Serving is called for each model server request span, once its trace is decided.
	Serving(s *requestmetrics.Serving)
	LateSpan(o LateOutcome)
	DuplicateSpan()
	// SpillFailed reports a spill that could not be written (full, or an I/O error) or read back.
	SpillFailed(err error)
	// Lost reports parked spans that could not be decoded for release.
	Lost(err error)
	// JournalFailed reports parked spans or a decision the journal could not take (full, or an
	// I/O error): they are held, but a crash would lose them.
	JournalFailed(err error)
	// RootWaited reports the end of a root's wait for its model call (phaseAwaiting), waited
	// after the root arrived: ended by the call (TriggerRoot), by model_call_wait running out
	// (TriggerTimeout), or cut short (TriggerPressure, TriggerShutdown, TriggerLimit).
	RootWaited(ended Trigger, waited time.Duration)
}

// validate checks what the core relies on; the processor's Config reports user errors by key.
func (c *Config) validate() error {
	var errs []error
	if c.Grace <= 0 || c.TraceTimeout <= 0 || c.ModelCallWait <= 0 {
		errs = append(errs, errors.New("grace, trace timeout and model call wait must be positive"))
	}
	if c.MaxBufferBytes <= 0 || c.MaxTraceBytes <= 0 || c.MaxTraceSpans <= 0 {
		errs = append(errs, errors.New("buffer and trace limits must be positive"))
	}
	for _, p := range append([]float64{c.DefaultPercentage}, rulePercentages(c.Rules)...) {
		errs = append(errs, CheckPercentage(p))
	}
	if len(c.Rules) > maxRules {
		errs = append(errs, fmt.Errorf("at most %d rules", maxRules))
	}
	if d := c.Dynamic; d != nil && (d.TargetPerSecond <= 0 || d.Window <= 0 || len(d.Keys) == 0) {
		errs = append(errs, errors.New("dynamic sampling needs keys, a positive target and window"))
	}
	return errors.Join(errs...)
}

// maxRules is how many rules a trace's first match can index.
const maxRules = 255

// CheckPercentage accepts a sampling percentage: a number within [0, 100]. NaN is not one:
// it compares false with every bound and would silently mean "never sample".
func CheckPercentage(p float64) error {
	if math.IsNaN(p) || p < 0 || p > 100 {
		return fmt.Errorf("must be a number within [0, 100], got %v", p)
	}
	return nil
}

func rulePercentages(rules []Rule) []float64 {
	out := make([]float64, len(rules))
	for i, r := range rules {
		out[i] = r.Percentage
	}
	return out
}

// thresholdPrecision is the hex digits of a written threshold, as contrib's
// probabilistic_sampler uses: "th:e666" rather than "th:e6666666666666".
const thresholdPrecision = 4

// thresholdFor turns a percentage into an OTEP 235 threshold: keep when randomness ≥ threshold.
func thresholdFor(percentage float64) sampling.Threshold {
	if percentage <= 0 {
		return sampling.NeverSampleThreshold
	}
	th, err := sampling.ProbabilityToThresholdWithPrecision(min(percentage/100, 1), thresholdPrecision)
	if err != nil {
		return sampling.NeverSampleThreshold
	}
	return th
}
