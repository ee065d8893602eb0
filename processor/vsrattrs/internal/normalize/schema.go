package normalize

import (
	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
)

// SchemaVersion is written to vsr.schema.version on every normalized span. Bump it when a
// canonical key, type or unit changes, so dashboards can tell layouts apart.
const SchemaVersion = "1"

// Type is a canonical attribute's wire type.
type Type uint8

const (
	TypeString Type = iota
	TypeBool
	TypeInt
	TypeDouble
	TypeStringSlice
)

func (t Type) String() string {
	return [...]string{"string", "bool", "int", "double", "string[]"}[t]
}

// Conv is a conversion applied to a source key's value on its way to the canonical key.
type Conv uint8

const (
	ConvNone Conv = iota
	// ConvSecondsToMillis turns float seconds into integer milliseconds.
	ConvSecondsToMillis
	// ConvSplitQuery splits "path?query" into url.path and url.query.
	ConvSplitQuery
)

// Case is how a string value's letter case is normalised.
type Case uint8

const (
	CaseAsIs Case = iota
	CaseLower
	CaseUpper
)

// Source is a key the router has sent a canonical attribute under.
type Source struct {
	Key  string
	Conv Conv
}

// Attr is one canonical attribute: its key, type and unit, the older keys it replaces, and
// the values it allows.
type Attr struct {
	Key  string
	Type Type
	// Unit is the UCUM unit of a number ("ms" for durations).
	Unit   string
	Legacy []Source
	// Enum lists the allowed values after case folding; other values are kept and flagged.
	Enum []string
	Case Case
	// Duration values must be finite and not negative.
	Duration bool
	// Max, when set, bounds numbers to [0, Max]: a model server's latency or token count past it
	// is a unit or clock mistake.
	Max float64
	// Float32 values are router float32 fields widened to float64: 0.800000011920929 → 0.8.
	Float32 bool
	// Set makes a string slice sorted and free of duplicates.
	Set      bool
	Resource bool
	// Event attributes are keys of span events, kept in allow-list mode.
	Event bool
	// Derived attributes are written by vsr_attributes from what the router sent; Summary
	// ones by vsr_sampler on the root, from the whole trace.
	Derived bool
	Summary bool
	// ModelServer keys are those of a model server's request span (vLLM, SGLang), which
	// modelserver.go normalizes.
	ModelServer bool
	Doc         string
}

// within reports whether a number is in [0, Max], when Max bounds the attribute.
func (a *Attr) within(x float64) bool { return a.Max == 0 || x >= 0 && x <= a.Max }

// Schema is the canonical VSR span schema. Every key any router era sends is either a row's
// Key or one of its Legacy sources. The README's reference table is rendered from it.
var Schema = []Attr{
	// Resource.
	{Key: "deployment.environment.name", Resource: true, Legacy: []Source{{Key: "deployment.environment"}},
		Doc: "Deployment environment; the stable semconv key."},

	// Request (root span).
	{Key: "request.id", Doc: "The client's x-request-id, when it sent one."},
	{Key: "http.request.method", Case: CaseUpper, Enum: []string{"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"},
		Legacy: []Source{{Key: "http.method"}}, Doc: "HTTP method."},
	{Key: "url.path", Legacy: []Source{{Key: "http.path", Conv: ConvSplitQuery}},
		Doc: "Request path without the query string (era D sends a bounded template)."},
	{Key: "url.query", Derived: true, Doc: "Query string split off the path; values are redacted unless `url_query: keep`."},
	{Key: "http.response.status_code", Type: TypeInt, Legacy: []Source{{Key: "http.status_code"}},
		Doc: "HTTP status: the upstream's on upstream.request, the client's on the era D root."},
	{Key: "traffic.kind", Case: CaseLower, Enum: []string{"inference", "inference_internal", "response_object", "catalog", "health", "other"},
		Doc: "What kind of traffic the request is."},
	{Key: "request.outcome", Case: CaseLower, Enum: []string{"success", "client_error", "server_error", "error", "canceled", "timeout", "incomplete"},
		Doc: "How the request ended."},
	{Key: "routing.entrypoint", Doc: "API entrypoint that received the request."},
	{Key: "routing.recipe", Doc: "Routing recipe applied."},
	{Key: "routing.algorithm", Doc: "Algorithm of a decision or plugin."},
	{Key: "response.streaming", Type: TypeBool, Doc: "Whether the response is streamed."},
	{Key: "response.streaming_complete", Type: TypeBool, Doc: "Whether a streamed response completed."},

	// Guards.
	{Key: "jailbreak.detected", Type: TypeBool, Doc: "Jailbreak guard matched."},
	{Key: "jailbreak.type", Doc: "Kind of jailbreak detected."},
	{Key: "jailbreak.detection_time_ms", Type: TypeInt, Unit: "ms", Duration: true, Doc: "Jailbreak guard latency."},
	{Key: "pii.detected", Type: TypeBool, Doc: "PII guard matched."},
	{Key: "pii.types", Type: TypeStringSlice, Case: CaseUpper, Set: true,
		Doc: "PII entity types; era A's comma-joined string becomes a sorted, de-duplicated list."},
	{Key: "pii.detection_time_ms", Type: TypeInt, Unit: "ms", Duration: true, Doc: "PII guard latency."},
	{Key: "security.action", Case: CaseLower, Enum: []string{"blocked", "allowed"}, Summary: true,
		Doc: "Guard verdict; on the root, derived from every era's block signals."},
	{Key: "security.reason", Case: CaseLower, Enum: []string{routerconv.ReasonJailbreak, routerconv.ReasonPII, routerconv.ReasonGuard}, Summary: true,
		Doc: "Which guard blocked: `guard` when the router does not say (era D)."},

	// Cache.
	{Key: "cache.key", Doc: "The raw user prompt: hashed or removed (family `router_prompt`)."},
	{Key: "cache.hit", Type: TypeBool, Summary: true, Doc: "Semantic cache hit; on the root, from the cache span or plugin result."},
	{Key: "cache.lookup_time_ms", Type: TypeInt, Unit: "ms", Duration: true, Doc: "Cache lookup latency."},
	{Key: "cache.threshold", Type: TypeDouble, Float32: true, Doc: "Similarity threshold, float32 artefacts rounded."},
	{Key: "category.name", Summary: true, Doc: "Classified category; on the root, from the span that classified."},

	// Classification and routing.
	{Key: "classifier.type", Doc: "Classifier model family."},
	{Key: "classification.time_ms", Type: TypeInt, Unit: "ms", Duration: true, Doc: "Classification latency."},
	{Key: "routing.strategy", Case: CaseLower, Enum: []string{"auto", "priority", "confidence", "static"}, Doc: "Routing strategy."},
	{Key: "routing.reason", Doc: "Why the model was chosen."},
	{Key: "routing.original_model", Doc: "Model the client asked for (often `auto`)."},
	{Key: "routing.selected_model", Summary: true, Doc: "Model the router chose; on the root, from the routing span."},
	{Key: "routing.selection_method", Doc: "How algorithm.selection chose."},
	{Key: "routing.selection_candidate", Doc: "Candidate model considered."},
	{Key: "reasoning.enabled", Type: TypeBool, Legacy: []Source{{Key: "model.reasoning_enabled"}},
		Doc: "Reasoning mode switched on for the selected model."},
	{Key: "reasoning.effort", Case: CaseLower, Enum: []string{"low", "medium", "high"},
		Legacy: []Source{{Key: "model.reasoning_effort"}}, Doc: "Reasoning effort."},
	{Key: "endpoint.name", Doc: "Backend endpoint name."},
	{Key: "endpoint.address", Doc: "Backend endpoint address."},

	// Signals and decisions (eras B–D).
	{Key: "signal.matched_rules", Type: TypeStringSlice, Doc: "Signal rules that matched."},
	{Key: "signal.confidence", Type: TypeDouble, Float32: true, Doc: "Signal confidence (always 1.0 in era C)."},
	{Key: "signal.latency_ms", Type: TypeInt, Unit: "ms", Duration: true, Doc: "Signal evaluation latency."},
	{Key: "signal.confidence_available", Type: TypeBool, Doc: "Whether signal.confidence is meaningful."},
	{Key: "decision.name", Summary: true, Doc: "Decision matched (era C's first decision span says `decision_evaluation`); on the root, the real one."},
	{Key: "decision.confidence", Type: TypeDouble, Float32: true, Doc: "Decision confidence."},
	{Key: "decision.matched_rules", Type: TypeStringSlice, Doc: "Rules as `<type>:<name>[:<label>]`."},
	{Key: "decision.strategy", Case: CaseLower, Enum: []string{"priority", "confidence", "auto", ""}, Doc: "Decision strategy."},
	{Key: "decision.confidence_available", Type: TypeBool, Doc: "Whether decision.confidence is meaningful."},

	// Plugins.
	{Key: "plugin.type", Case: CaseLower, Enum: []string{"jailbreak", "pii", "semantic-cache", "response_cache", "system_prompt", "rag", "header_mutation"},
		Doc: "Plugin kind."},
	{Key: "plugin.status", Case: CaseLower, Enum: []string{"success", "error", "skipped", "blocked", "detected"}, Doc: "Plugin result status."},
	{Key: "plugin.result", Doc: "Plugin result, e.g. `cache_hit`, `jailbreak_detected:<type>`."},
	{Key: "plugin.decision", Doc: "Decision the plugin ran for."},
	{Key: "plugin.latency_ms", Type: TypeInt, Unit: "ms", Duration: true, Doc: "Plugin latency."},
	{Key: "system_prompt.injected", Type: TypeBool, Doc: "System prompt injected."},
	{Key: "system_prompt.mode", Doc: "Injection mode (`insert`)."},

	// Retrieval.
	{Key: "rag.backend", Doc: "Vector store."},
	{Key: "rag.decision", Doc: "Decision the retrieval ran for."},
	{Key: "rag.similarity_threshold", Type: TypeDouble, Float32: true, Doc: "Similarity threshold."},
	{Key: "rag.top_k", Type: TypeInt, Doc: "Documents requested."},
	{Key: "rag.latency_ms", Type: TypeInt, Unit: "ms", Duration: true,
		Legacy: []Source{{Key: "rag.latency_seconds", Conv: ConvSecondsToMillis}}, Doc: "Retrieval latency, from float seconds."},
	{Key: "rag.success", Type: TypeBool, Doc: "Retrieval succeeded."},
	{Key: "rag.context_length", Type: TypeInt, Doc: "Characters of retrieved context."},
	{Key: "rag.similarity_score", Type: TypeDouble, Float32: true, Doc: "Best similarity score."},

	// Upstream call.
	{Key: "model.name", Doc: "Model sent to the backend."},

	// A model server's request span (vLLM's llm_request, SGLang's request span; modelserver.go).
	{Key: routerconv.KeyInputTokens, Type: TypeInt, Unit: "{token}", Max: routerconv.MaxTokens, ModelServer: true,
		Legacy: []Source{{Key: routerconv.KeyPromptTokens}}, Doc: "Prompt tokens; vLLM and SGLang send the conventions' older name."},
	{Key: routerconv.KeyOutputTokens, Type: TypeInt, Unit: "{token}", Max: routerconv.MaxTokens, ModelServer: true,
		Legacy: []Source{{Key: routerconv.KeyCompletionTokens}}, Doc: "Generated tokens; vLLM and SGLang send the conventions' older name."},
	{Key: "gen_ai.usage.cached_tokens", Type: TypeInt, Unit: "{token}", Max: routerconv.MaxTokens, ModelServer: true,
		Doc: "Prompt tokens served from the prefix cache (SGLang)."},
	{Key: routerconv.KeyTimeToFirstToken, Type: TypeDouble, Unit: "s", Duration: true, Max: routerconv.MaxLatencySeconds, ModelServer: true,
		Doc: "From the request's arrival at the server to its first token (no GenAI convention yet: name and unit kept)."},
	{Key: routerconv.KeyTimeInQueue, Type: TypeDouble, Unit: "s", Duration: true, Max: routerconv.MaxLatencySeconds, ModelServer: true,
		Doc: "Waiting for the scheduler (vLLM; SGLang does not send it)."},
	{Key: "gen_ai.latency.time_in_model_prefill", Type: TypeDouble, Unit: "s", Duration: true, Max: routerconv.MaxLatencySeconds, ModelServer: true,
		Doc: "From scheduling (vLLM) or dispatch (SGLang) to the first token."},
	{Key: routerconv.KeyDecodeTime, Type: TypeDouble, Unit: "s", Duration: true, Max: routerconv.MaxLatencySeconds, ModelServer: true,
		Doc: "From the first token to the last."},
	{Key: "gen_ai.latency.time_in_model_inference", Type: TypeDouble, Unit: "s", Duration: true, Max: routerconv.MaxLatencySeconds, ModelServer: true,
		Doc: "Prefill and decode."},
	{Key: routerconv.KeyE2E, Type: TypeDouble, Unit: "s", Duration: true, Max: routerconv.MaxLatencySeconds, ModelServer: true,
		Doc: "From the request's arrival at the server to its end."},
	{Key: "gen_ai.request.max_tokens", Type: TypeInt, Max: routerconv.MaxTokens, ModelServer: true, Doc: "The request's token limit."},
	{Key: "gen_ai.request.temperature", Type: TypeDouble, ModelServer: true, Doc: "Sampling temperature."},
	{Key: "gen_ai.request.top_p", Type: TypeDouble, ModelServer: true, Doc: "Nucleus sampling bound."},
	{Key: "gen_ai.request.top_k", Type: TypeInt, ModelServer: true, Doc: "Top-k sampling bound (SGLang)."},
	{Key: "gen_ai.request.n", Type: TypeInt, Max: routerconv.MaxTokens, ModelServer: true, Doc: "Completions asked for."},

	// Span event attributes the router records.
	{Key: "exception.type", Event: true, Doc: "Error class of an `exception` event (eras A–C record errors so)."},
	{Key: "error.reason", Event: true, Doc: "Bounded reason of an era D `error` event."},

	// Derived by vsr_attributes on each span; the root summary by vsr_sampler.
	{Key: "error.type", Derived: true, Doc: "Error class on spans that are errors by the router's conventions (status ERROR is set too); on a blocked root with status ERROR (era D), `<reason>_blocked`."},
	{Key: "openinference.span.kind", Derived: true, Enum: []string{"CHAIN", "GUARDRAIL", "RETRIEVER", "LLM"}, Case: CaseUpper,
		Doc: "OpenInference kind: root CHAIN, guards GUARDRAIL, rag RETRIEVER, upstream LLM."},
	{Key: "gen_ai.operation.name", Derived: true, Doc: "`chat` on the upstream call."},
	{Key: "gen_ai.request.model", Derived: true, ModelServer: true, Doc: "Upstream: model sent; root (summary): model the client asked for."},
	{Key: "gen_ai.response.model", Derived: true, ModelServer: true, Doc: "Model that answered (upstream model.name, else the routed model; era A's upstream call gets it with the summary); on a model server's span, as the server sent it (SGLang; vLLM's v1 engine sends none)."},
	{Key: "llm.model_name", Derived: true, Doc: "OpenInference model name on the upstream call."},
	{Key: "processing.time_ms", Type: TypeInt, Unit: "ms", Duration: true, Summary: true,
		Doc: "Root only: from the root's start to the end of the trace's last span, the model call included."},
	{Key: "vsr.era", Summary: true, Enum: []string{"A", "B", "C", "D", "unknown"}, Doc: "Root only: router span layout of the whole trace."},
	{Key: "vsr.schema.version", Derived: true, Doc: "Version of this schema, on every normalized span."},
	{Key: "vsr.normalize.issues", Type: TypeStringSlice, Derived: true,
		Doc: "Bounded list of `<issue>:<key>` for values fixed or rejected on this span."},
}
