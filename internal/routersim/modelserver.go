package routersim

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// The model server is simulated as vLLM's v1 engine traces (docs/model-server-spans.md): one
// span llm_request, kind SERVER, scope vllm.llm_engine, a child of the router's upstream call
// through the traceparent it sent (a remote parent), started at the request's arrival and
// ended when it finished, with token counts under the GenAI conventions' older names and
// gen_ai.latency.* in seconds. vLLM's v1 engine names no model on it.

// ModelServerService is the simulated model server's service.name, as OTEL_SERVICE_NAME sets it.
const ModelServerService = "vllm"

// ModelServerScope is the instrumentation scope of vLLM's llm_request span.
const ModelServerScope = "vllm.llm_engine"

// Serving is what the simulated vLLM engine measured of one request, in the units and with
// the values its span carries (seconds, tokens).
type Serving struct {
	PromptTokens     int64   `json:"prompt_tokens"`
	CompletionTokens int64   `json:"completion_tokens"`
	MaxTokens        int64   `json:"max_tokens"`
	Queue            float64 `json:"time_in_queue"`
	Prefill          float64 `json:"time_in_model_prefill"`
	TTFT             float64 `json:"time_to_first_token"`
	Decode           float64 `json:"time_in_model_decode"`
	E2E              float64 `json:"e2e"`
	// network is the router's call's way to the server, and back.
	network time.Duration
}

// TimePerOutputToken is the decode time over the tokens after the first, when there are more
// than one.
func (s *Serving) TimePerOutputToken() (float64, bool) {
	if s.CompletionTokens < 2 {
		return 0, false
	}
	return s.Decode / float64(s.CompletionTokens-1), true
}

func (s *Serving) upstreamDuration() time.Duration {
	return 2*s.network + seconds(s.E2E)
}

func seconds(x float64) time.Duration { return time.Duration(math.Round(x * float64(time.Second))) }

// modelSpeed is how fast a model serves on its GPUs: decode time per output token (median)
// and prefill throughput. Bigger models are slower at both.
type modelSpeed struct {
	tpot        float64 // seconds
	prefillRate float64 // tokens per second
}

var modelSpeeds = map[string]modelSpeed{
	"qwen3-8b":               {0.012, 9000},
	"llama-3.1-70b-instruct": {0.035, 2500},
	"deepseek-r1-distill":    {0.020, 5000},
	"gpt-oss-20b":            {0.015, 7000},
	"mistral-7b-instruct":    {0.011, 10000},
	"phi-4":                  {0.014, 8000},
}

var defaultSpeed = modelSpeed{0.020, 5000}

// maxAnswer bounds the decode time of a request that is not slow, as a client's max_tokens
// does: a whole answer stays under the sampler's default slow threshold (10 s).
const maxAnswer = 3.5

// drawServing draws a request's serving, from distributions of real serving:
//   - prompt tokens log-normal, median 600, σ 0.7 (8 to 8000);
//   - output tokens log-normal, median 150, σ 0.6, capped by max_tokens so the answer
//     decodes within maxAnswer; one request in fifty asks for a single token (a classifier's
//     yes/no); a slow request decodes 1500 to 3000 tokens, a PII-routed one 3 to 8 s of them;
//   - queue time: most requests are scheduled within 3 ms, one in five waits for a batch slot,
//     exponential with mean 120 ms (at most 1 s);
//   - prefill: prompt tokens over the model's prefill throughput, ±20 % log-normal;
//   - time per output token: the model's median, σ 0.15 log-normal;
//   - TTFT = tokenization (1 to 4 ms) + queue + prefill; e2e = TTFT + decode + detokenization
//     (0.2 to 1.5 ms); the network between router and server 0.5 to 3 ms each way.
func drawServing(req Request, rng *rand.Rand) *Serving {
	speed, ok := modelSpeeds[req.Model]
	if !ok {
		speed = defaultSpeed
	}
	logNormal := func(median, sigma float64) float64 { return median * math.Exp(sigma*rng.NormFloat64()) }
	uniform := func(lo, hi float64) float64 { return lo + rng.Float64()*(hi-lo) }
	s := &Serving{network: time.Duration(uniform(0.5, 3) * float64(time.Millisecond))}
	s.PromptTokens = int64(math.Round(min(max(logNormal(600, 0.7), 8), 8000)))
	tpot := logNormal(speed.tpot, 0.15)
	switch {
	case req.Slow:
		s.MaxTokens = 4096
		s.CompletionTokens = 1500 + rng.Int64N(1501)
	case req.Outcome == OutcomePIIRouted:
		// A private model's long answer: its call outlasts the sampler's grace period.
		s.MaxTokens = 4096
		s.CompletionTokens = int64(uniform(3, 8)/tpot) + 1
	case rng.IntN(50) == 0:
		s.MaxTokens, s.CompletionTokens = 1, 1
	default:
		s.MaxTokens = int64(maxAnswer / tpot)
		s.CompletionTokens = min(int64(math.Round(max(logNormal(150, 0.6), 2))), s.MaxTokens)
	}
	s.Queue = uniform(0.00005, 0.003)
	if rng.IntN(5) == 0 {
		s.Queue = min(rng.ExpFloat64()*0.12, 1)
	}
	s.Prefill = float64(s.PromptTokens) / speed.prefillRate * math.Exp(0.2*rng.NormFloat64())
	s.TTFT = uniform(0.001, 0.004) + s.Queue + s.Prefill
	s.Decode = tpot * float64(s.CompletionTokens-1)
	s.E2E = s.TTFT + s.Decode + uniform(0.0002, 0.0015)
	return s
}

// modelServer adds vLLM's llm_request span under the upstream call, if the router made one
// and it succeeded: a request the server failed or never finished leaves no span. It returns
// what the span says.
func (b *builder) modelServer(td ptrace.Traces) *Serving {
	var up ptrace.Span
	found := false
	for _, s := range b.spans.All() {
		if s.Name() == "semantic_router.upstream.request" {
			up, found = s, true
		}
	}
	if !found || up.Status().Code() == ptrace.StatusCodeError || b.serving == nil {
		return nil
	}
	v := b.serving
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", ModelServerService)
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName(ModelServerScope)
	s := ss.Spans().AppendEmpty()
	s.SetTraceID(b.traceID)
	s.SetSpanID(b.spanID())
	s.SetParentSpanID(up.SpanID())
	s.SetFlags(0x300) // the parent came in the traceparent: remote, as the Python SDK exports it
	s.SetName("llm_request")
	s.SetKind(ptrace.SpanKindServer)
	s.SetStartTimestamp(up.StartTimestamp() + pcommon.Timestamp(v.network))
	s.SetEndTimestamp(s.StartTimestamp() + pcommon.Timestamp(seconds(v.E2E)))
	a := s.Attributes()
	a.PutDouble("gen_ai.latency.time_to_first_token", v.TTFT)
	a.PutDouble("gen_ai.latency.e2e", v.E2E)
	a.PutDouble("gen_ai.latency.time_in_queue", v.Queue)
	a.PutInt("gen_ai.usage.prompt_tokens", v.PromptTokens)
	a.PutInt("gen_ai.usage.completion_tokens", v.CompletionTokens)
	a.PutDouble("gen_ai.latency.time_in_model_prefill", v.Prefill)
	a.PutDouble("gen_ai.latency.time_in_model_decode", v.Decode)
	a.PutDouble("gen_ai.latency.time_in_model_inference", v.Prefill+v.Decode)
	var id [16]byte
	binary.BigEndian.PutUint64(id[:8], b.rng.Uint64())
	binary.BigEndian.PutUint64(id[8:], b.rng.Uint64())
	a.PutStr("gen_ai.request.id", fmt.Sprintf("chatcmpl-%x", id))
	a.PutDouble("gen_ai.request.top_p", 0.95)
	a.PutInt("gen_ai.request.max_tokens", v.MaxTokens)
	a.PutDouble("gen_ai.request.temperature", 0.7)
	a.PutInt("gen_ai.request.n", 1)
	return v
}
