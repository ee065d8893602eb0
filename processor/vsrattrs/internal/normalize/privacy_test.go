package normalize

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/pdatatest/ptracetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/leakcorpus"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrattrs/internal/scan"
)

// privacyOptions are the processor's defaults: every family on, the scanner on.
func privacyOptions(mode Mode, key string) Options {
	opts := defaultOptions()
	opts.Mode = mode
	opts.MaxValueBytes = 4096
	opts.HashKey = []byte(key)
	opts.ScanKinds = scan.All
	return opts
}

// encoded is td as OTLP JSON and protobuf, which is what leaves the collector.
func encoded(t testing.TB, td ptrace.Traces) []byte {
	js, err := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
	require.NoError(t, err)
	pb, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	require.NoError(t, err)
	return append(js, pb...)
}

func describe(leaks []leakcorpus.Secret) string {
	var b strings.Builder
	for _, l := range leaks {
		fmt.Fprintf(&b, "\n  %s (%s): %q", l.Where, l.Family, l.Value)
	}
	return b.String()
}

// No secret of the corpus survives, in any mode, with a hash key or without, and a second
// pass changes nothing.
func TestLeakCorpusNormalizer(t *testing.T) {
	for _, mode := range []Mode{ModeFix, ModeReport, ModeStrict} {
		for _, key := range []string{"corpus-hash-key-0123456789", ""} {
			t.Run(fmt.Sprintf("mode=%d/key=%t", mode, key != ""), func(t *testing.T) {
				c := leakcorpus.Build(fmt.Sprintf("m%dk%t", mode, key != ""))
				require.NotEmpty(t, c.Leaks(encoded(t, c.Traces)), "the corpus holds its secrets before")
				spans := c.Traces.SpanCount()
				n := New(privacyOptions(mode, key))
				stats := n.Traces(c.Traces)
				require.Equal(t, spans, c.Traces.SpanCount(), "no span is lost")
				leaks := c.Leaks(encoded(t, c.Traces))
				assert.Empty(t, leaks, "secrets left:%s", describe(leaks))
				assert.Positive(t, stats.Issues[IssueDuplicateKey])
				assert.Positive(t, stats.Issues[IssueInvalidKey])

				once := ptrace.NewTraces()
				c.Traces.CopyTo(once)
				n.Traces(c.Traces)
				assert.Equal(t, string(encoded(t, once)), string(encoded(t, c.Traces)), "a second pass changes nothing")
			})
		}
	}
}

// Every family and every scanner kind the corpus exercises is counted, and structure stays.
func TestLeakCorpusCountsAndKeepsStructure(t *testing.T) {
	c := leakcorpus.Build("counts")
	stats := New(privacyOptions(ModeFix, "corpus-hash-key-0123456789")).Traces(c.Traces)
	families, kinds := map[string]bool{}, map[string]bool{}
	for i, f := range Families {
		families[f.ID] = stats.Redacted[i] > 0
	}
	for k := range scan.NumKinds {
		kinds[k.String()] = stats.Masked[k] > 0
	}
	for _, s := range c.Secrets {
		counted, isFamily := families[s.Family]
		if !isFamily {
			counted = kinds[s.Family]
		}
		assert.True(t, counted, "%s (%s) not counted", s.Family, s.Where)
	}

	raw := string(encoded(t, c.Traces))
	for _, kept := range []string{
		`"llm.input_messages.0.message.role","value":{"stringValue":"system"}`,
		`"retrieval.documents.0.document.id","value":{"stringValue":"doc-17"}`,
		`"llm.output_messages.0.message.tool_calls.0.tool_call.function.name","value":{"stringValue":"lookup_account"}`,
		`"http.request.header.content-type","value":{"arrayValue":{"values":[{"stringValue":"application/json"}]}}`,
		`"exception.type","value":{"stringValue":"openai.BadRequestError"}`,
		`"gen_ai.completion.0.tool_calls.0.name","value":{"stringValue":"refund"}`,
		`"finish_reason","value":{"stringValue":"stop"}`,
		`"gen_ai.usage.input_tokens","value":{"intValue":"311"}`,
		`"http.request.body.size","value":{"intValue":"2048"}`,
		`"user_agent.original","value":{"stringValue":"curl/8.5.0"}`,
		`/v1/users/{id}/chat?api_key=REDACTED&REDACTED#access_token=REDACTED`,
		`"url.path","value":{"stringValue":"/v1/users/{email}/orders/{id}"}`,
		`https://REDACTED:REDACTED@api.example.com`,
		`"name":"POST /v1/users/{email}/chat"`,
		`ot=th:8`,
	} {
		assert.Contains(t, raw, kept)
	}
}

// OTLP may repeat a key in one map; with a hash key set, each copy used to be hashed only if it
// was the first. Now every copy is handled and one stays.
func TestDuplicateKeysCollapse(t *testing.T) {
	js := `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},"scopeSpans":[{"spans":[
{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"x","attributes":[
 {"key":"user.id","value":{"stringValue":"first-user"}},{"key":"user.id","value":{"stringValue":"second-user"}},
 {"key":"note","value":{"stringValue":"a"}},{"key":"note","value":{"stringValue":"b"}}]}]}]}]}`
	td, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces([]byte(js))
	require.NoError(t, err)
	attrs := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes()
	require.Equal(t, 4, attrs.Len())
	stats := New(privacyOptions(ModeFix, "k")).Traces(td)
	assert.Equal(t, 2, attrs.Len(), "one value per key")
	assert.Equal(t, 2, stats.Issues[IssueDuplicateKey])
	raw := string(encoded(t, td))
	assert.NotContains(t, raw, "first-user")
	assert.NotContains(t, raw, "second-user")
	note, _ := attrs.Get("note")
	assert.Equal(t, "a", note.Str(), "the first copy is kept, as every other reader takes it")
}

// A repeat is found after a nested map that holds the same key, and inside nested maps.
func TestDuplicateKeysAroundNestedMaps(t *testing.T) {
	js := `{"resourceSpans":[{"resource":{},"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"x","attributes":[
 {"key":"a","value":{"stringValue":"1"}},
 {"key":"n","value":{"kvlistValue":{"values":[{"key":"a","value":{"stringValue":"2"}},{"key":"a","value":{"stringValue":"nested-repeat"}}]}}},
 {"key":"a","value":{"stringValue":"outer-repeat"}}]}]}]}]}`
	td, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces([]byte(js))
	require.NoError(t, err)
	stats := New(privacyOptions(ModeFix, "k")).Traces(td)
	attrs := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes()
	assert.Equal(t, map[string]any{"a": "1", "n": map[string]any{"a": "2"}}, attrs.AsRaw())
	assert.Equal(t, 2, stats.Issues[IssueDuplicateKey])
}

// A key is matched whatever its spelling; a key that is not clean is rewritten clean, and its
// value treated as content.
func TestOddKeySpellings(t *testing.T) {
	tests := []struct {
		key, cleaned, family string
	}{
		{"User.ID", "User.ID", "user_identity"},
		{"user.id ", "user.id", "user_identity"},
		{"user.id\xff", "user.id", "user_identity"},
		{"user\u200b.id", "user.id", "user_identity"},
		{"GEN_AI.PROMPT.3.CONTENT", "GEN_AI.PROMPT.3.CONTENT", "genai_indexed"},
		{"x-api-key", "x-api-key", "credential_keys"},
		{"openaiApiKey", "openaiApiKey", "credential_keys"},
		{"app.note\t", "app.note", "invalid_keys"},
		{"número", "número", "invalid_keys"},
		{"alice@example.com", "<redacted:email>", "personal_keys"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			td, span := foreignSpan()
			span.Attributes().PutStr(tt.key, "secret-value")
			stats := New(privacyOptions(ModeFix, "k")).Traces(td)
			v, ok := span.Attributes().Get(tt.cleaned)
			require.True(t, ok, "under %q: %v", tt.cleaned, span.Attributes().AsRaw())
			assert.True(t, strings.HasPrefix(v.Str(), "hmac-sha256:"), "%q = %q", tt.cleaned, v.Str())
			assert.Equal(t, 1, stats.Redacted[familyIndex(tt.family)], "counted as %s", tt.family)
			if tt.key != tt.cleaned {
				_, raw := span.Attributes().Get(tt.key)
				assert.False(t, raw, "the raw key is gone")
			}
		})
	}
}

func foreignSpan() (ptrace.Traces, ptrace.Span) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "checkout")
	span := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	span.SetName("work")
	return td, span
}

// Nested maps and arrays are walked to any depth; beyond maxDepth, a value is content.
func TestNestedValues(t *testing.T) {
	td, span := foreignSpan()
	m := span.Attributes().PutEmptyMap("a")
	for range maxDepth + 4 {
		m = m.PutEmptyMap("b")
	}
	m.PutStr("deep", "deep-secret")
	span.Attributes().PutEmptySlice("list").AppendEmpty().SetEmptySlice().AppendEmpty().SetEmptyMap().PutStr("session.id", "nested-session")
	span.Attributes().PutEmptyMap("ctx").PutStr("contact", "mail jane@example.org")
	New(privacyOptions(ModeFix, "k")).Traces(td)
	raw := string(encoded(t, td))
	for _, secret := range []string{"deep-secret", "nested-session", "jane@example.org"} {
		assert.NotContains(t, raw, secret)
	}
	assert.Contains(t, raw, "mail <redacted:email>")
}

// Families take the class's action unless they have their own; hash is drop without a key;
// keep still scans; ignored keys are untouched.
func TestFamilyActions(t *testing.T) {
	td, span := foreignSpan()
	a := span.Attributes()
	a.PutStr("exception.message", "failed for bob@example.com")
	a.PutStr("user.id", "bob")
	a.PutStr("http.request.header.authorization", "Bearer abcdef123456")
	a.PutStr("url.full", "https://x/a?b=c")
	a.PutStr("safe.note", "bob@example.com")
	opts := privacyOptions(ModeFix, "")
	opts.Families = map[string]Action{"exception_text": ActionKeep, "url_full": ActionDrop}
	opts.IgnoredKeys = []string{"safe.note"}
	New(opts).Traces(td)
	got := a.AsRaw()
	assert.Equal(t, "failed for <redacted:email>", got["exception.message"], "keep: scanned")
	assert.NotContains(t, got, "user.id", "hash without a key: removed")
	assert.NotContains(t, got, "http.request.header.authorization")
	assert.NotContains(t, got, "url.full")
	assert.Equal(t, "bob@example.com", got["safe.note"], "ignored_keys pass untouched")
}

// The operator's patterns: keys as content, values replaced in place.
func TestBlockedPatterns(t *testing.T) {
	td, span := foreignSpan()
	span.Attributes().PutStr("team.internal_note", "x")
	span.Attributes().PutStr("ticket", "see ACME-123456 now")
	opts := privacyOptions(ModeFix, "k")
	opts.BlockedKeys = regexp.MustCompile(`internal_note`)
	opts.BlockedValues = regexp.MustCompile(`ACME-\d{6}`)
	stats := New(opts).Traces(td)
	got := span.Attributes().AsRaw()
	assert.True(t, strings.HasPrefix(got["team.internal_note"].(string), "hmac-sha256:"))
	assert.Equal(t, "see <redacted:blocked_value> now", got["ticket"])
	assert.Equal(t, 1, stats.Redacted[familyBlockedKeyPatterns])
	assert.Equal(t, 1, stats.Masked[scan.BlockedValue])
}

// redaction.summary writes what was done on the span, as contrib's processor does.
func TestSummary(t *testing.T) {
	td, span := foreignSpan()
	span.Attributes().PutStr("user.id", "bob")
	span.Attributes().PutStr("note", "bob@example.com")
	opts := privacyOptions(ModeFix, "k")
	opts.Summary = SummaryDebug
	n := New(opts)
	n.Traces(td)
	got := span.Attributes().AsRaw()
	assert.Equal(t, int64(1), got["redaction.redacted.count"])
	assert.Equal(t, int64(1), got["redaction.masked.count"])
	assert.Equal(t, "user.id", got["redaction.redacted.keys"])
	assert.Equal(t, "note", got["redaction.masked.keys"])
	n.Traces(td)
	assert.Equal(t, got, span.Attributes().AsRaw(), "a second pass keeps the first's summary")
}

// The scanner can be turned off, and with it everything but the families.
func TestScannerOff(t *testing.T) {
	td, span := foreignSpan()
	span.Attributes().PutStr("note", "bob@example.com")
	span.Status().SetMessage("bob@example.com")
	opts := privacyOptions(ModeFix, "k")
	opts.ScanKinds = 0
	New(opts).Traces(td)
	assert.Equal(t, "bob@example.com", span.Status().Message())
	v, _ := span.Attributes().Get("note")
	assert.Equal(t, "bob@example.com", v.Str())
}

// The trace state's ot entry is vsr_sampler's and stays byte for byte; vendors' values are
// scanned.
func TestTraceState(t *testing.T) {
	td, span := foreignSpan()
	span.TraceState().FromRaw("acme=user:bob@example.com,ot=th:c;rv:01234567890abc")
	New(privacyOptions(ModeFix, "k")).Traces(td)
	assert.Equal(t, "acme=user:<redacted:email>,ot=th:c;rv:01234567890abc", span.TraceState().AsRaw())
}

// A key the schema names is named for what it holds, not for a credential one of its words
// suggests; the same word ending another key is a credential's.
func TestSchemaKeysAreNotCredentials(t *testing.T) {
	m := newMatcher(nil)
	for _, key := range []string{"gen_ai.latency.time_to_first_token", "gen_ai.usage.prompt_tokens"} {
		assert.False(t, m.match(key, key, false).matched(), "%s is the schema's", key)
	}
	assert.True(t, m.match("cache.key", "cache.key", true).matched(), "a schema key that is a family's stays the family's: the router's raw prompt")
	for _, key := range []string{"github.token", "app.time_to_first_token"} {
		assert.True(t, m.match(key, key, false).matched(), "%s ends with a credential's word", key)
	}
}

// normalizeTwice runs n over td, then again over the output, which it must leave as it is.
func normalizeTwice(t *testing.T, n *Normalizer, td ptrace.Traces) {
	t.Helper()
	n.Traces(td)
	once := ptrace.NewTraces()
	td.CopyTo(once)
	n.Traces(td)
	require.NoError(t, ptracetest.CompareTraces(once, td), "a second pass changes nothing")
}

// A value cut to max_value_bytes after the walk scanned it is scanned again: what the cut
// makes of it (an ID, a query value cut inside REDACTED, a card's digits) is what a second
// pass, which scans the cut value, must find unchanged.
func TestACutValueIsWhatASecondPassFinds(t *testing.T) {
	const maxBytes = 32
	hexRun := strings.Repeat("E", maxBytes)
	for _, tc := range []struct{ name, key, value, outKey, want string }{
		{"hex run cut before its first other letter", "url.path", hexRun + "g", "url.path", "{id}"},
		{"query value cut inside REDACTED", "http.path", "/chat?a=1&b=2&cc=3&d=4&ee=5", "url.path", "/chat"},
		{"digits cut into a card number", "plugin.status", "card number is: 4111111111111111" + "0000", "plugin.status", "card number is:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := privacyOptions(ModeFix, "k")
			opts.MaxValueBytes = maxBytes
			td, span, _ := routerSpan("semantic_router.request")
			span.Attributes().PutStr(tc.key, tc.value)
			normalizeTwice(t, New(opts), td)
			v, _ := span.Attributes().Get(tc.outKey)
			assert.Equal(t, tc.want, v.AsString())
		})
	}
}

// A hash is opaque to what normalization does to its key's values: pii.types is upper-cased,
// but a hash under it (its raw key was invalid) stays a hash, which a second pass leaves.
func TestAHashIsNotCaseFolded(t *testing.T) {
	td, span, _ := routerSpan("semantic_router.request")
	span.Attributes().PutStr("pii .types", "a,b")
	normalizeTwice(t, New(privacyOptions(ModeFix, "k")), td)
	v, ok := span.Attributes().Get("pii.types")
	require.True(t, ok, "%v", span.Attributes().AsRaw())
	require.Equal(t, 1, v.Slice().Len())
	assert.True(t, isHash(v.Slice().At(0).Str(), hashPrefixes[HashHMACSHA256]), "%q", v.Slice().At(0).Str())
}

// A key is scanned before it is cleaned, as cleaning drops its spaces and would join a card's
// digits to the word before them, where the scanner no longer sees a card; and an issue's
// entry is scanned whole, as the key `//0@`, clean alone, reads as a URL with credentials
// after its issue's name, which a second pass, scanning the list, would redact.
func TestKeysAreScannedAsTheyAreWrittenAndListed(t *testing.T) {
	td, span, _ := routerSpan("semantic_router.request")
	span.Attributes().PutStr("//0 @", "x")
	span.Attributes().PutStr("card 4111111111111111", "x")
	normalizeTwice(t, New(privacyOptions(ModeFix, "k")), td)
	assert.NotContains(t, string(encoded(t, td)), "4111111111111111")
}
