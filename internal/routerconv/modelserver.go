package routerconv

import (
	"math"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// ModelServer is a model server whose request spans the collector reads (docs/model-server-spans.md).
type ModelServer uint8

const (
	ServerUnknown ModelServer = iota
	ServerVLLM
	ServerSGLang
	NumModelServers
)

func (m ModelServer) String() string { return [...]string{"unknown", "vllm", "sglang"}[m] }

// modelServerRule recognises one model server's request span: the span that carries a
// request's token counts and gen_ai.latency.* timings. A service name alone is no sign (it is
// whatever OTEL_SERVICE_NAME says); the instrumentation scope and the span name are the server's
// code.
type modelServerRule struct {
	server ModelServer
	scopes []string
	// name reports whether a span name of one of the scopes is the request span, and whether
	// the span covers the whole request (counted) or a part of it.
	name func(string) (request, whole bool)
}

// modelServerRules: vLLM names its span llm_request, kind SERVER, started at the request's
// arrival and ended when it finishes; its scope is the tracer init_tracer made
// (vllm.llm_engine) or, since vLLM moved its OpenTelemetry helpers into a package, the helper
// module that creates the span. SGLang's request span is the root of its per-request tree,
// named "[<role>] Req <rid[:8]>", scope "sglang server"; in prefill/decode disaggregation a
// prefill server's span covers only the prefill, and is not counted.
var modelServerRules = []modelServerRule{
	{ServerVLLM, []string{"vllm.llm_engine", "vllm.tracing.otel", "vllm.foundation.observability.tracing.otel"},
		func(name string) (bool, bool) { return name == "llm_request", name == "llm_request" }},
	{ServerSGLang, []string{"sglang server"}, sglangRequestName},
}

// sglangRequestName reads SGLang's "{role} Req {rid}" (role empty for a unified server, so the
// name starts with a space) and its older "Req {rid}".
func sglangRequestName(name string) (request, whole bool) {
	name = strings.TrimLeft(name, " ")
	role, rest, _ := strings.Cut(name, " ")
	switch {
	case role == "Req":
		return rest != "", true
	case role == "decode":
		return strings.HasPrefix(rest, "Req ") && len(rest) > len("Req "), true
	case role == "prefill":
		return strings.HasPrefix(rest, "Req ") && len(rest) > len("Req "), false
	}
	return false, false
}

var modelServerScopes = func() map[string]*modelServerRule {
	m := map[string]*modelServerRule{}
	for i := range modelServerRules {
		for _, s := range modelServerRules[i].scopes {
			m[s] = &modelServerRules[i]
		}
	}
	return m
}()

// LookupModelServer reports whether a span is a model server's request span, which server's,
// and whether it covers the whole request.
func LookupModelServer(scope pcommon.InstrumentationScope, spanName string) (server ModelServer, whole, ok bool) {
	rule := modelServerScopes[scope.Name()]
	if rule == nil {
		return ServerUnknown, false, false
	}
	request, whole := rule.name(spanName)
	if !request {
		return ServerUnknown, false, false
	}
	return rule.server, whole, true
}

// IsModelServerSpan reports whether a span is a model server's request span.
func IsModelServerSpan(scope pcommon.InstrumentationScope, spanName string) bool {
	_, _, ok := LookupModelServer(scope, spanName)
	return ok
}

// The keys of a model server's request span that the request metrics read. vLLM and SGLang
// send token counts under the GenAI conventions' older names, which vsr_attributes renames.
const (
	KeyInputTokens      = "gen_ai.usage.input_tokens"
	KeyOutputTokens     = "gen_ai.usage.output_tokens"
	KeyPromptTokens     = "gen_ai.usage.prompt_tokens"
	KeyCompletionTokens = "gen_ai.usage.completion_tokens"
	KeyTimeToFirstToken = "gen_ai.latency.time_to_first_token"
	KeyTimeInQueue      = "gen_ai.latency.time_in_queue"
	KeyDecodeTime       = "gen_ai.latency.time_in_model_decode"
	KeyE2E              = "gen_ai.latency.e2e"
	KeyResponseModel    = "gen_ai.response.model"
	KeyRequestModel     = "gen_ai.request.model"
)

// MaxLatencySeconds bounds a model server's latency: a longer one is a clock or unit mistake,
// not a request (vLLM and SGLang send seconds).
const MaxLatencySeconds = 24 * 3600.0

// MaxTokens bounds a token count: no model's context comes near it.
const MaxTokens = 1 << 30

// Unknown marks a latency or token count the span does not give, or gives as nonsense.
const Unknown = -1

// Serving is what a model server's request span says of the request it served.
type Serving struct {
	Server ModelServer
	// Whole: the span covers the whole request (not an SGLang prefill server's part).
	Whole bool
	// Model is gen_ai.response.model, else gen_ai.request.model: SGLang names its served model,
	// vLLM's v1 engine names none.
	Model string
	// TTFT, Queue, Decode and E2E are in seconds, Unknown when not given or out of bounds.
	TTFT, Queue, Decode, E2E float64
	// InputTokens and OutputTokens are Unknown when not given or out of bounds.
	InputTokens, OutputTokens int64
}

// ReadServing reads a model server's request span, or reports that the span is not one. It
// reads the spans vsr_attributes normalized and those it did not: either token key, the current
// one first, so a span that carries both (keep_legacy_keys) counts once; values of the wrong
// type it can read ("0.25", 12.0), and none that are negative, not finite or past the bounds.
func ReadServing(scope pcommon.InstrumentationScope, span ptrace.Span) (Serving, bool) {
	server, whole, ok := LookupModelServer(scope, span.Name())
	if !ok {
		return Serving{}, false
	}
	attrs := span.Attributes()
	s := Serving{
		Server: server, Whole: whole,
		TTFT: seconds(attrs, KeyTimeToFirstToken), Queue: seconds(attrs, KeyTimeInQueue),
		Decode: seconds(attrs, KeyDecodeTime), E2E: seconds(attrs, KeyE2E),
		InputTokens: tokens(attrs, KeyInputTokens, KeyPromptTokens), OutputTokens: tokens(attrs, KeyOutputTokens, KeyCompletionTokens),
	}
	for _, k := range [...]string{KeyResponseModel, KeyRequestModel} {
		if v, ok := attrs.Get(k); ok && s.Model == "" {
			s.Model = stringValue(v)
		}
	}
	return s, true
}

// TimePerOutputToken is the decode time over the tokens after the first, when both are known
// and there is more than one output token; Unknown otherwise.
func (s *Serving) TimePerOutputToken() float64 {
	if s.Decode < 0 || s.OutputTokens < 2 {
		return Unknown
	}
	return s.Decode / float64(s.OutputTokens-1)
}

func seconds(attrs pcommon.Map, key string) float64 {
	v, ok := attrs.Get(key)
	if !ok {
		return Unknown
	}
	d, ok := AsFloat(v)
	if !ok || math.IsNaN(d) || d < 0 || d > MaxLatencySeconds {
		return Unknown
	}
	return d
}

// tokens reads the first of keys that holds a valid count.
func tokens(attrs pcommon.Map, keys ...string) int64 {
	for _, k := range keys {
		if v, ok := attrs.Get(k); ok {
			if n, ok := AsInt(v); ok && n >= 0 && n <= MaxTokens {
				return n
			}
		}
	}
	return Unknown
}
