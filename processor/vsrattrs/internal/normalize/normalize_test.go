package normalize

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrattrs/internal/scan"
)

func defaultOptions() Options {
	return Options{
		ServiceNames:     []string{"vllm-sr", "vllm-semantic-router"},
		MaxValueBytes:    64,
		MaxIssuesPerSpan: 8,
		HashKey:          []byte("test-key"),
		ScanKinds:        scan.All,
	}
}

// routerSpan returns a one-span trace from the router, its span and resource.
func routerSpan(name string) (ptrace.Traces, ptrace.Span, pcommon.Map) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "vllm-sr")
	span := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	span.SetName(name)
	span.SetTraceID(pcommon.TraceID{1})
	span.SetSpanID(pcommon.SpanID{2})
	span.SetParentSpanID(pcommon.SpanID{3})
	return td, span, rs.Resource().Attributes()
}

func issuesOf(span ptrace.Span) []any {
	v, ok := span.Attributes().Get("vsr.normalize.issues")
	if !ok {
		return nil
	}
	return v.Slice().AsRaw()
}

func TestAttributeRules(t *testing.T) {
	tests := []struct {
		name   string
		in     map[string]any
		want   map[string]any // keys to check; nil value means absent
		issues []any
	}{
		{"rename reasoning (era A stays)", map[string]any{"reasoning.enabled": true, "reasoning.effort": "high"},
			map[string]any{"reasoning.enabled": true, "reasoning.effort": "high"}, nil},
		{"rename reasoning (era C)", map[string]any{"model.reasoning_enabled": true, "model.reasoning_effort": "High"},
			map[string]any{"reasoning.enabled": true, "reasoning.effort": "high", "model.reasoning_enabled": nil, "model.reasoning_effort": nil},
			[]any{"case:reasoning.effort"}},
		{"http keys", map[string]any{"http.method": "post", "http.status_code": int64(502)},
			map[string]any{"http.request.method": "POST", "http.response.status_code": int64(502), "http.method": nil, "http.status_code": nil},
			[]any{"case:http.request.method"}},
		{"path with query: values redacted", map[string]any{"http.path": "/v1/chat/completions?api-version=1&user=alice&debug"},
			map[string]any{"url.path": "/v1/chat/completions", "url.query": "api-version=REDACTED&user=REDACTED&REDACTED", "http.path": nil}, nil},
		{"canonical path with query is split too", map[string]any{"url.path": "/v1/models?x=1"},
			map[string]any{"url.path": "/v1/models", "url.query": "x=REDACTED"}, nil},
		{"pii types comma string", map[string]any{"pii.types": "PERSON, email_address,PERSON"},
			map[string]any{"pii.types": []any{"EMAIL_ADDRESS", "PERSON"}}, []any{"case:pii.types"}},
		{"bools and ints sent as strings", map[string]any{"cache.hit": "true", "plugin.latency_ms": "45"},
			map[string]any{"cache.hit": true, "plugin.latency_ms": int64(45)}, []any{"coerced:cache.hit", "coerced:plugin.latency_ms"}},
		{"float32 artefacts", map[string]any{"cache.threshold": float64(float32(0.8)), "rag.similarity_score": 0.83},
			map[string]any{"cache.threshold": 0.8, "rag.similarity_score": 0.83}, nil},
		{"rag seconds to ms", map[string]any{"rag.latency_seconds": 0.1234},
			map[string]any{"rag.latency_ms": int64(123), "rag.latency_seconds": nil}, nil},
		{"negative duration rejected", map[string]any{"cache.lookup_time_ms": int64(-3), "rag.latency_seconds": -1.0},
			map[string]any{"cache.lookup_time_ms": nil, "rag.latency_ms": nil, "rag.latency_seconds": nil},
			[]any{"invalid:cache.lookup_time_ms", "invalid:rag.latency_ms"}},
		{"non-finite duration rejected", map[string]any{"signal.latency_ms": math.Inf(1)},
			map[string]any{"signal.latency_ms": nil}, []any{"invalid:signal.latency_ms"}},
		{"fractional ms duration rounded", map[string]any{"signal.latency_ms": 12.6},
			map[string]any{"signal.latency_ms": int64(13)}, []any{"coerced:signal.latency_ms"}},
		{"unknown enum value kept and flagged", map[string]any{"routing.strategy": "Round_Robin"},
			map[string]any{"routing.strategy": "round_robin"}, []any{"case:routing.strategy", "unknown_value:routing.strategy"}},
		{"wrong type that cannot be read", map[string]any{"cache.hit": map[string]any{"a": 1}},
			map[string]any{"cache.hit": nil}, []any{"invalid:cache.hit"}},
		{"conflict: canonical wins", map[string]any{"http.method": "GET", "http.request.method": "POST"},
			map[string]any{"http.request.method": "POST", "http.method": nil}, []any{"conflict:http.request.method"}},
		{"agreeing legacy and canonical", map[string]any{"http.method": "post", "http.request.method": "POST"},
			map[string]any{"http.request.method": "POST", "http.method": nil}, nil},
		{"prompt hashed with key", map[string]any{"cache.key": "what is my password"},
			map[string]any{"cache.key": "hmac-sha256:"}, nil},
		{"identifiers hashed", map[string]any{"user.id": "alice", "session.id": int64(42)},
			map[string]any{"user.id": "hmac-sha256:", "session.id": "hmac-sha256:"}, nil},
		{"invalid utf-8 repaired", map[string]any{"category.name": "ma\xffth"},
			map[string]any{"category.name": "ma\uFFFDth"}, []any{"invalid_utf8:category.name"}},
		{"huge value truncated on a rune boundary", map[string]any{"routing.reason": strings.Repeat("é", 40)},
			map[string]any{"routing.reason": strings.Repeat("é", 32)}, []any{"truncated:routing.reason"}},
		{"unknown key hygiene", map[string]any{"future.key": strings.Repeat("x", 100), "future.int": int64(1)},
			map[string]any{"future.key": strings.Repeat("x", 64), "future.int": int64(1)}, []any{"truncated:future.key"}},
		{"string slice elements coerced", map[string]any{"decision.matched_rules": []any{"domain:math", int64(7)}},
			map[string]any{"decision.matched_rules": []any{"domain:math", "7"}}, []any{"coerced:decision.matched_rules"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			td, span, _ := routerSpan("semantic_router.plugin.execution")
			require.NoError(t, span.Attributes().FromRaw(tt.in))
			New(defaultOptions()).Traces(td)
			attrs := span.Attributes().AsRaw()
			for k, want := range tt.want {
				got, ok := attrs[k]
				if want == nil {
					assert.False(t, ok, "%s should be gone, is %v", k, got)
					continue
				}
				require.True(t, ok, "%s missing", k)
				if s, isStr := want.(string); isStr && strings.HasSuffix(s, ":") {
					assert.True(t, strings.HasPrefix(got.(string), s), "%s = %q", k, got)
					continue
				}
				assert.Equal(t, want, got, k)
			}
			assert.ElementsMatch(t, tt.issues, issuesOf(span))
			assert.Equal(t, SchemaVersion, attrs["vsr.schema.version"])
		})
	}
}

func TestModes(t *testing.T) {
	in := map[string]any{"cache.hit": "true", "http.method": "post", "routing.strategy": "weird", "cache.key": "prompt"}
	run := func(mode Mode) ptrace.Span {
		td, span, _ := routerSpan("semantic_router.cache.lookup")
		require.NoError(t, span.Attributes().FromRaw(in))
		opts := defaultOptions()
		opts.Mode = mode
		opts.Prompts = ActionDrop
		New(opts).Traces(td)
		return span
	}

	report := run(ModeReport).Attributes().AsRaw()
	assert.Equal(t, "true", report["cache.hit"], "report leaves values alone")
	assert.Equal(t, "post", report["http.method"])
	assert.NotContains(t, report, "http.request.method")
	assert.NotContains(t, report, "cache.key", "redaction applies in every mode")
	assert.NotContains(t, report, "openinference.span.kind", "report adds no derived facts")
	assert.ElementsMatch(t, []any{"coerced:cache.hit", "case:http.request.method", "unknown_value:routing.strategy"}, report["vsr.normalize.issues"])

	strict := run(ModeStrict).Attributes().AsRaw()
	assert.NotContains(t, strict, "cache.hit", "strict drops what it would have to coerce")
	assert.NotContains(t, strict, "routing.strategy", "strict drops unknown enum values")
	assert.Equal(t, "POST", strict["http.request.method"], "renames and case still apply")
	assert.ElementsMatch(t, []any{"coerced:cache.hit", "invalid:cache.hit", "case:http.request.method", "unknown_value:routing.strategy", "invalid:routing.strategy"}, strict["vsr.normalize.issues"])

	fix := run(ModeFix).Attributes().AsRaw()
	assert.Equal(t, true, fix["cache.hit"])
	assert.Equal(t, "weird", fix["routing.strategy"])
}

func TestKeepLegacyKeysAndAllowList(t *testing.T) {
	td, span, res := routerSpan("semantic_router.request.received")
	res.PutStr("deployment.environment", "prod")
	require.NoError(t, span.Attributes().FromRaw(map[string]any{"http.method": "GET", "custom.team": "a", "custom.secret": "b"}))
	opts := defaultOptions()
	opts.KeepLegacyKeys = true
	opts.AllowListOnly = true
	opts.AllowedKeys = []string{"custom.team"}
	stats := New(opts).Traces(td)
	got := span.Attributes().AsRaw()
	assert.Equal(t, "GET", got["http.method"])
	assert.Equal(t, "GET", got["http.request.method"])
	assert.Equal(t, "a", got["custom.team"])
	assert.NotContains(t, got, "custom.secret")
	assert.Equal(t, 1, stats.Issues[IssueNotAllowed])
	assert.Equal(t, "prod", res.AsRaw()["deployment.environment.name"])
	assert.Equal(t, "prod", res.AsRaw()["deployment.environment"], "kept on request")
}

func TestNoHashKeyDropsPersonalData(t *testing.T) {
	td, span, _ := routerSpan("semantic_router.cache.lookup")
	span.Attributes().PutStr("cache.key", "secret prompt")
	span.Attributes().PutStr("user.id", "alice")
	opts := defaultOptions()
	opts.HashKey = nil
	New(opts).Traces(td)
	assert.NotContains(t, span.Attributes().AsRaw(), "cache.key")
	assert.NotContains(t, span.Attributes().AsRaw(), "user.id")
}

func TestHashIsKeyedAndStable(t *testing.T) {
	hashed := func(key string) string {
		td, span, _ := routerSpan("semantic_router.cache.lookup")
		span.Attributes().PutStr("cache.key", "same prompt")
		opts := defaultOptions()
		opts.HashKey = []byte(key)
		New(opts).Traces(td)
		v, _ := span.Attributes().Get("cache.key")
		return v.Str()
	}
	assert.Equal(t, hashed("k1"), hashed("k1"))
	assert.NotEqual(t, hashed("k1"), hashed("k2"))
	assert.NotContains(t, hashed("k1"), "same prompt")
}

func TestOtherServicesUntouched(t *testing.T) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "checkout")
	rs.Resource().Attributes().PutStr("deployment.environment", "prod")
	span := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	span.SetName("GET /cart")
	span.Attributes().PutStr("http.method", "get")
	span.Attributes().PutStr("cache.key", "x")
	span.Status().SetCode(ptrace.StatusCodeError)
	before, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	require.NoError(t, err)
	stats := New(defaultOptions()).Traces(td)
	after, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	require.NoError(t, err)
	assert.Equal(t, before, after)
	assert.Zero(t, stats.Spans)
}

func TestParseRequestNeedsRouterRoot(t *testing.T) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "custom-router-name")
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	root := spans.AppendEmpty()
	root.SetName("semantic_router.request.received")
	root.SetTraceID(pcommon.TraceID{1})
	root.SetSpanID(pcommon.SpanID{1})
	parse := spans.AppendEmpty()
	parse.SetName("parse_request")
	parse.SetTraceID(pcommon.TraceID{1})
	parse.SetParentSpanID(pcommon.SpanID{1})
	parse.Attributes().PutStr("routing.original_model", "auto")
	other := spans.AppendEmpty()
	other.SetName("parse_request")
	other.SetTraceID(pcommon.TraceID{2})
	other.SetParentSpanID(pcommon.SpanID{7})

	stats := New(defaultOptions()).Traces(td)
	assert.Equal(t, 2, stats.Spans)
	assert.Contains(t, parse.Attributes().AsRaw(), "vsr.schema.version")
	assert.NotContains(t, other.Attributes().AsRaw(), "vsr.schema.version")
}

func TestDerivedErrorStatus(t *testing.T) {
	td, span, _ := routerSpan("semantic_router.decision.evaluation")
	ev := span.Events().AppendEmpty()
	ev.SetName("exception")
	ev.Attributes().PutStr("exception.type", "*errors.errorString")
	New(defaultOptions()).Traces(td)
	assert.Equal(t, ptrace.StatusCodeError, span.Status().Code(), "exception event alone becomes status ERROR")
	assert.Equal(t, "*errors.errorString", span.Attributes().AsRaw()["error.type"])
}

func TestMaxIssuesBound(t *testing.T) {
	td, span, _ := routerSpan("semantic_router.plugin.execution")
	for _, k := range []string{"cache.hit", "pii.detected", "jailbreak.detected", "rag.success", "response.streaming",
		"system_prompt.injected", "signal.confidence_available", "decision.confidence_available", "response.streaming_complete"} {
		span.Attributes().PutStr(k, "yes-ish")
	}
	opts := defaultOptions()
	opts.MaxIssuesPerSpan = 3
	stats := New(opts).Traces(td)
	assert.Len(t, issuesOf(span), 3)
	assert.Equal(t, 9, stats.Issues[IssueInvalid], "counters see every issue")
}

// Only the exact format this processor writes passes as already hashed: a prompt or user ID
// that merely starts like one is hashed like any other value.
func TestRedactionAcceptsOnlyItsOwnHashFormat(t *testing.T) {
	n := New(defaultOptions())
	own := func() string {
		td, span, _ := routerSpan("semantic_router.cache.lookup")
		span.Attributes().PutStr("cache.key", "a prompt")
		n.Traces(td)
		v, _ := span.Attributes().Get("cache.key")
		return v.Str()
	}()
	for _, in := range []string{
		"hmac-sha256:my password is hunter2",
		"hmac-sha256:" + strings.Repeat("A", 32),
		"hmac-sha256:" + strings.Repeat("0", 31),
		"hmac-sha256:" + strings.Repeat("0", 33),
	} {
		td, span, _ := routerSpan("semantic_router.cache.lookup")
		span.Attributes().PutStr("cache.key", in)
		span.Attributes().PutStr("user.id", in)
		n.Traces(td)
		for _, k := range []string{"cache.key", "user.id"} {
			v, _ := span.Attributes().Get(k)
			assert.NotEqual(t, in, v.Str(), "%s %q passed unredacted", k, in)
			assert.Len(t, v.Str(), len(own))
		}
	}
	td, span, _ := routerSpan("semantic_router.cache.lookup")
	span.Attributes().PutStr("cache.key", own)
	n.Traces(td)
	v, _ := span.Attributes().Get("cache.key")
	assert.Equal(t, own, v.Str(), "a value hashed by an earlier collector is not hashed twice")
}

// Personal data is found wherever it is recorded: span events and links, scope and
// resource attributes, under any letter case, under numbered keys, and on the spans of
// other services (a model server's), except router-only keys such as cache.key.
func TestRedactionEverywhere(t *testing.T) {
	td, span, res := routerSpan("semantic_router.upstream.request")
	scope := td.ResourceSpans().At(0).ScopeSpans().At(0).Scope()
	scope.Attributes().PutStr("user.id", "scope-user")
	res.PutStr("Session.ID", "resource-session")
	span.Attributes().PutStr("CACHE.KEY", "odd-case prompt")
	span.Attributes().PutStr("gen_ai.prompt.0.content", "indexed prompt")
	ev := span.Events().AppendEmpty()
	ev.SetName("gen_ai.content.prompt")
	ev.Attributes().PutStr("gen_ai.prompt", "event prompt")
	ev.Attributes().PutStr("exception.type", "kept")
	link := span.Links().AppendEmpty()
	link.Attributes().PutStr("enduser.id", "link-user")

	model := td.ResourceSpans().AppendEmpty()
	model.Resource().Attributes().PutStr("service.name", "vllm")
	ms := model.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	ms.SetName("chat qwen3-8b")
	ms.Attributes().PutStr("gen_ai.input.messages", "model server prompt")
	ms.Attributes().PutStr("cache.key", "not a prompt outside the router")
	mev := ms.Events().AppendEmpty()
	mev.SetName("gen_ai.content.completion")
	mev.Attributes().PutStr("GEN_AI.COMPLETION", "model server completion")

	New(defaultOptions()).Traces(td)
	raw, err := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
	require.NoError(t, err)
	for _, secret := range []string{"scope-user", "resource-session", "odd-case prompt", "indexed prompt", "event prompt",
		"link-user", "model server prompt", "model server completion"} {
		assert.NotContains(t, string(raw), secret)
	}
	assert.Contains(t, string(raw), "not a prompt outside the router")
	assert.Equal(t, "kept", ev.Attributes().AsRaw()["exception.type"])
}

// In allow-list mode, a router span's event attributes outside the schema's event keys and
// allowed_keys go too.
func TestAllowListCoversEvents(t *testing.T) {
	td, span, _ := routerSpan("semantic_router.signal.evaluation")
	ev := span.Events().AppendEmpty()
	ev.SetName("exception")
	ev.Attributes().PutStr("exception.type", "x")
	ev.Attributes().PutStr("exception.message", "failed on: the user's prompt")
	ev.Attributes().PutStr("custom.team", "a")
	opts := defaultOptions()
	opts.AllowListOnly = true
	opts.AllowedKeys = []string{"custom.team"}
	New(opts).Traces(td)
	assert.Equal(t, map[string]any{"exception.type": "x", "custom.team": "a"}, ev.Attributes().AsRaw())
}

// A raw path that stays (report mode, kept legacy keys) has its query's values redacted too, and
// its parameters without a value, which are values themselves.
func TestRawPathQueryRedactedWhereItStays(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts func(*Options)
		key  string
	}{
		{"report mode", func(o *Options) { o.Mode = ModeReport }, "http.path"},
		{"kept legacy key", func(o *Options) { o.KeepLegacyKeys = true }, "http.path"},
		{"report mode, canonical key", func(o *Options) { o.Mode = ModeReport }, "url.path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			td, span, _ := routerSpan("semantic_router.request.received")
			span.Attributes().PutStr(tc.key, "/v1/chat/completions?user=alice&debug")
			opts := defaultOptions()
			tc.opts(&opts)
			New(opts).Traces(td)
			assert.Equal(t, "/v1/chat/completions?user=REDACTED&REDACTED", span.Attributes().AsRaw()[tc.key])
		})
	}
}
