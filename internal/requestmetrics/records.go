// Package requestmetrics turns what vsr_sampler learns of every trace it decides into rate,
// error and duration metrics per router request and per model call, over all traffic (not
// only what is sampled), with exemplars from kept traces only. The sampler publishes records
// to a Hub named after its component ID; the vsr_requests receiver aggregates them.
package requestmetrics

import (
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// Request is what one router request (a trace) was, once the sampler is done with it.
type Request struct {
	At time.Time
	// Kept: the trace is exported; only then is TraceID set, for exemplars.
	Kept    bool
	TraceID pcommon.TraceID
	// Weight is how many requests the trace stands for: the adjusted count of a head sampler in
	// front that wrote its threshold (OTEP 235), else 1.
	Weight float64
	// Router: the trace has router spans. Other services' traces are not requests.
	Router        bool
	Era           string
	Service       string
	SelectedModel string
	Category      string
	Decision      string
	// CacheHit is "true", "false" or "" when no cache ran.
	CacheHit string
	// ErrorType is set when the request failed.
	ErrorType string
	// Action is "blocked" or "allowed" when the guards decided; Reason names a block's guard.
	Action, Reason string
	// Duration is from the root's start to the last span's end; 0 when unknown.
	Duration time.Duration
}

// ModelCall is one call to a model: the router's upstream request, or a model server's span
// that reports token usage.
type ModelCall struct {
	At time.Time
	// Upstream: the router's call (counted as a call); otherwise only its tokens count.
	Upstream  bool
	Model     string
	ErrorType string
	Duration  time.Duration
	// InputTokens and OutputTokens are gen_ai.usage.*, when the span reports them.
	InputTokens, OutputTokens int64
	// Weight is as a Request's.
	Weight float64
	// TraceID and SpanID are set when the trace is already known to be kept.
	TraceID pcommon.TraceID
	SpanID  pcommon.SpanID
}

// Serving is what a model server's request span (vLLM's llm_request, SGLang's request span)
// said of one request it served, with the router's facts of that request when its trace has
// router spans. A node collector on a GPU node sees only the model server's spans: then the
// router's facts are empty and the series are per model.
type Serving struct {
	At time.Time
	// TraceID and SpanID (the model server's span) are set only when the trace is kept.
	TraceID pcommon.TraceID
	SpanID  pcommon.SpanID
	// Weight is as a Request's.
	Weight float64
	// Service is the model server's service.name.
	Service string
	// Model is the model that served: as the server named it (SGLang), else the model the
	// router's call named, else the model the router chose.
	Model string
	// The router's facts, when the trace has router spans.
	SelectedModel, Category, Decision, Era string
	// TTFT, TPOT (decode time per output token after the first), Queue and E2E are in seconds;
	// negative when the span did not say.
	TTFT, TPOT, Queue, E2E float64
	// InputTokens and OutputTokens are negative when the span did not say.
	InputTokens, OutputTokens int64
}
