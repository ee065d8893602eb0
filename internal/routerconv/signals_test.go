package routerconv_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
)

func identity(s string) string { return s }

func summaryOf(tr routersim.Trace) routerconv.Summary[string] {
	var sum routerconv.Summary[string]
	for _, s := range tr.Spans().All() {
		f := routerconv.Classify(s, true)
		sum.Add(&f, identity)
	}
	return sum
}

// Every era's way of failing or blocking, its era and its request facts must be recognised
// from the raw spans alone.
func TestSummaryPerEraAndOutcome(t *testing.T) {
	eras := []routerconv.Era{routerconv.EraA, routerconv.EraB, routerconv.EraC, routerconv.EraD}
	outcomes := []routersim.Outcome{routersim.OutcomeOK, routersim.OutcomeError, routersim.OutcomeJailbreak, routersim.OutcomePII, routersim.OutcomeCacheHit}
	for _, era := range eras {
		for _, outcome := range outcomes {
			t.Run(fmt.Sprintf("%s/%s", era, outcome), func(t *testing.T) {
				// Several seeds: errors take different shapes within an era.
				for seed := range uint64(20) {
					rng := rand.New(rand.NewPCG(seed, 1))
					tr := routersim.Build(routersim.Request{Era: era, Outcome: outcome, Category: "math", Model: "m", Prompt: "p", Start: time.Unix(1e9, 0)}, rng)
					v := summaryOf(tr)
					assert.Equal(t, outcome == routersim.OutcomeError, v.Error(), "seed %d error", seed)
					reason, blocked := v.Blocked()
					assert.Equal(t, outcome.Blocked(), blocked, "seed %d blocked", seed)
					switch outcome {
					case routersim.OutcomeJailbreak:
						assert.Equal(t, routerconv.ReasonJailbreak, reason, "seed %d: era D's 403 is named by its matched rule", seed)
					case routersim.OutcomePII:
						assert.Equal(t, routerconv.ReasonPII, reason, "seed %d", seed)
					}
					assert.Equal(t, era, v.Era(), "seed %d era", seed)
					if outcome == routersim.OutcomeOK {
						assert.Equal(t, "m", v.ResponseModel(), "seed %d model", seed)
						assert.True(t, v.PassedGuards())
						assert.Equal(t, routerconv.CacheMiss, v.Cache)
					}
					if outcome == routersim.OutcomeCacheHit {
						assert.Equal(t, routerconv.CacheHit, v.Cache)
					}
					if era != routerconv.EraD && outcome == routersim.OutcomeOK {
						assert.Equal(t, "math", v.Category)
					}
				}
			})
		}
	}
}

func span(build func(s ptrace.Span)) ptrace.Span {
	s := ptrace.NewSpan()
	s.SetName("semantic_router.plugin.execution")
	s.SetParentSpanID(pcommon.SpanID{1})
	build(s)
	return s
}

func TestClassifyTable(t *testing.T) {
	tests := []struct {
		name      string
		span      ptrace.Span
		signals   routerconv.Signals
		errorType string
		reason    string
	}{
		{"plain", span(func(ptrace.Span) {}), 0, "", ""},
		{"status error message", span(func(s ptrace.Span) {
			s.Status().SetCode(ptrace.StatusCodeError)
			s.Status().SetMessage("Upstream request failed")
		}), routerconv.SigError, "upstream_request_failed", ""},
		{"status message with an id is not a class", span(func(s ptrace.Span) {
			s.Status().SetCode(ptrace.StatusCodeError)
			s.Status().SetMessage("timeout for request 8f3a")
		}), routerconv.SigError, "_OTHER", ""},
		{"exception event only", span(func(s ptrace.Span) {
			e := s.Events().AppendEmpty()
			e.SetName("exception")
			e.Attributes().PutStr("exception.type", "context.DeadlineExceeded")
		}), routerconv.SigError, "context.DeadlineExceeded", ""},
		{"5xx as a string", span(func(s ptrace.Span) { s.Attributes().PutStr("http.status_code", "503") }), routerconv.SigError, "503", ""},
		{"4xx is not an error", span(func(s ptrace.Span) { s.Attributes().PutInt("http.response.status_code", 404) }), 0, "", ""},
		{"plugin error", span(func(s ptrace.Span) { s.Attributes().PutStr("plugin.status", "error") }), routerconv.SigError, "plugin_failed", ""},
		{"rag failure as string", span(func(s ptrace.Span) { s.Attributes().PutStr("rag.success", "FALSE") }), routerconv.SigError, "retrieval_failed", ""},
		{"timeout outcome", span(func(s ptrace.Span) { s.Attributes().PutStr("request.outcome", "timeout") }), routerconv.SigError, "timeout", ""},
		{"canceled is not an error", span(func(s ptrace.Span) { s.Attributes().PutStr("request.outcome", "canceled") }), 0, "", ""},
		{"explicit error.type wins", span(func(s ptrace.Span) {
			s.Attributes().PutStr("error.type", "custom")
			s.Attributes().PutInt("http.status_code", 500)
		}), routerconv.SigError, "custom", ""},
		{"era A block", span(func(s ptrace.Span) {
			s.SetName("semantic_router.security.jailbreak_detection")
			s.Attributes().PutBool("jailbreak.detected", true)
			s.Attributes().PutStr("security.action", "blocked")
		}), routerconv.SigBlocked | routerconv.SigJailbreakHit, "", routerconv.ReasonJailbreak},
		{"era B pii block", span(func(s ptrace.Span) {
			s.Attributes().PutStr("plugin.type", "PII")
			s.Attributes().PutStr("plugin.status", "blocked")
			s.Attributes().PutStr("plugin.result", "pii_detected:PERSON")
		}), routerconv.SigBlocked | routerconv.SigPIIHit, "", routerconv.ReasonPII},
		{"era C matched rule is only a hit", span(func(s ptrace.Span) {
			r := s.Attributes().PutEmptySlice("decision.matched_rules")
			r.AppendEmpty().SetStr("domain:math")
			r.AppendEmpty().SetStr("jailbreak:guard")
		}), routerconv.SigJailbreakHit, "", ""},
		{"era D 403 root is a block, not an error", span(func(s ptrace.Span) {
			s.SetName("semantic_router.request")
			s.Attributes().PutInt("http.status_code", 403)
			s.Status().SetCode(ptrace.StatusCodeError)
		}), routerconv.SigBlocked, "", routerconv.ReasonGuard},
		{"upstream", span(func(s ptrace.Span) { s.SetName("semantic_router.upstream.request") }), routerconv.SigUpstream | routerconv.SigPastGuards, "", ""},
		{"a non-guard plugin runs past the guards", span(func(s ptrace.Span) { s.Attributes().PutStr("plugin.type", "semantic-cache") }), routerconv.SigPastGuards, "", ""},
		{"cache hit, era A", span(func(s ptrace.Span) { s.Attributes().PutBool("cache.hit", true) }), routerconv.SigCacheHit, "", ""},
		{"cache hit, era D plugin", span(func(s ptrace.Span) { s.Attributes().PutStr("plugin.result", "cache_hit") }), routerconv.SigCacheHit, "", ""},
		{"cache miss", span(func(s ptrace.Span) { s.Attributes().PutStr("plugin.result", "cache_miss") }), 0, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := routerconv.Classify(tt.span, true)
			assert.Equal(t, tt.signals, f.Signals)
			assert.Equal(t, tt.errorType, f.ErrorType)
			assert.Equal(t, tt.reason, f.BlockReason)
		})
	}
}

// A guard match is a block only in a request that went no further than its guards: a
// decision may route on a PII signal (to a private model) and call the model. Only eras A
// (its PII detection) and C mark a block so; eras B and D mark every block.
func TestBlockedIsAGuardMatchThatWentNoFurther(t *testing.T) {
	eras := func(e routerconv.Era) [2]routerconv.Era { return [2]routerconv.Era{e, e} }
	var v routerconv.Summary[string]
	v.Add(&routerconv.Facts{Signals: routerconv.SigPIIHit, Eras: eras(routerconv.EraC)}, identity)
	reason, blocked := v.Blocked()
	require.True(t, blocked)
	require.Equal(t, routerconv.ReasonPII, reason)
	v.Add(&routerconv.Facts{Signals: routerconv.SigPastGuards}, identity)
	_, blocked = v.Blocked()
	require.False(t, blocked, "a request that went past its guards was routed, not blocked")
	require.True(t, v.PassedGuards())

	for _, c := range []struct {
		era     routerconv.Era
		hit     routerconv.Signals
		blocked bool
	}{
		{routerconv.EraA, routerconv.SigPIIHit, true},
		{routerconv.EraA, routerconv.SigJailbreakHit, false}, // era A's jailbreak block says so
		{routerconv.EraB, routerconv.SigPIIHit, false},
		{routerconv.EraC, routerconv.SigJailbreakHit, true},
		{routerconv.EraD, routerconv.SigPIIHit, false},
		{routerconv.EraUnknown, routerconv.SigPIIHit, false},
	} {
		var s routerconv.Summary[string]
		s.Add(&routerconv.Facts{Signals: c.hit, Eras: eras(c.era)}, identity)
		_, blocked := s.Blocked()
		assert.Equal(t, c.blocked, blocked, "era %s, %v", c.era, c.hit)
	}

	var d routerconv.Summary[string]
	d.Add(&routerconv.Facts{Signals: routerconv.SigBlocked, BlockReason: routerconv.ReasonGuard}, identity)
	reason, _ = d.Blocked()
	require.Equal(t, routerconv.ReasonGuard, reason, "era D's 403 alone names no guard")
	d.Add(&routerconv.Facts{Signals: routerconv.SigJailbreakHit}, identity)
	reason, _ = d.Blocked()
	require.Equal(t, routerconv.ReasonJailbreak, reason, "the matched rule names it")
}

func TestIsLocalRoot(t *testing.T) {
	s := ptrace.NewSpan()
	require.True(t, routerconv.IsLocalRoot(s))
	s.SetParentSpanID(pcommon.SpanID{9})
	s.SetName("work")
	require.False(t, routerconv.IsLocalRoot(s))
	s.SetFlags(0x300)
	require.True(t, routerconv.IsLocalRoot(s), "remote parent")
	s.SetFlags(0)
	s.SetName("semantic_router.request.received")
	require.True(t, routerconv.IsLocalRoot(s), "root by name, parent flags unknown")
}

// A request's error class, which becomes error.type on its root and a metric label, is one of
// a fixed set of reasons, whatever free text the span carried.
func TestErrorReasonIsFromAFixedSet(t *testing.T) {
	exception := func(typ string) ptrace.Span {
		return span(func(s ptrace.Span) {
			e := s.Events().AppendEmpty()
			e.SetName("exception")
			e.Attributes().PutStr("exception.type", typ)
			e.Attributes().PutStr("exception.message", "reply to alice@example.com failed")
		})
	}
	for _, c := range []struct {
		name   string
		span   ptrace.Span
		reason string
	}{
		{"status message of the router", span(func(s ptrace.Span) {
			s.Status().SetCode(ptrace.StatusCodeError)
			s.Status().SetMessage("upstream request failed")
		}), "upstream_request_failed"},
		{"status message with an id", span(func(s ptrace.Span) {
			s.Status().SetCode(ptrace.StatusCodeError)
			s.Status().SetMessage("timeout for request 8f3a")
		}), routerconv.OtherErrorType},
		{"free-text status message of words", span(func(s ptrace.Span) {
			s.Status().SetCode(ptrace.StatusCodeError)
			s.Status().SetMessage("cannot reach jane doe")
		}), routerconv.OtherErrorType},
		{"an exception's type", exception("*errors.errorString"), "exception"},
		{"an exception's type with a message", exception("ValueError: alice@example.com is not allowed"), "exception"},
		{"an error event's reason", span(func(s ptrace.Span) {
			e := s.Events().AppendEmpty()
			e.SetName("error")
			e.Attributes().PutStr("error.reason", "request_deadline_exceeded")
		}), "request_deadline_exceeded"},
		{"5xx", span(func(s ptrace.Span) { s.Attributes().PutInt("http.status_code", 502) }), "502"},
		{"plugin error", span(func(s ptrace.Span) { s.Attributes().PutStr("plugin.status", "error") }), "plugin_failed"},
		{"era D outcome", span(func(s ptrace.Span) { s.Attributes().PutStr("request.outcome", "server_error") }), "server_error"},
		{"an error.type another tool wrote", span(func(s ptrace.Span) {
			s.Attributes().PutStr("error.type", "could not reach bob@example.com after 3 retries, giving up on it")
		}), routerconv.OtherErrorType},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := routerconv.Classify(c.span, true)
			require.True(t, f.Has(routerconv.SigError))
			assert.Equal(t, c.reason, f.ErrorReason)
			assert.Equal(t, c.reason, routerconv.BoundedErrorType(c.reason))
		})
	}
	for _, s := range []string{"", "5", "5000", "50x", "404", "ValueError", "a@b.co"} {
		assert.Equal(t, routerconv.OtherErrorType, routerconv.BoundedErrorType(s), "%q", s)
	}
}
