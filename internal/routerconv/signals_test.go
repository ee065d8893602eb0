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

func verdictOf(tr routersim.Trace) routerconv.Verdict {
	var v routerconv.Verdict
	for _, s := range tr.Spans().All() {
		v.Add(routerconv.Classify(s, true))
	}
	return v
}

// Every era's way of failing or blocking must be recognised from the raw spans alone.
func TestVerdictPerEraAndOutcome(t *testing.T) {
	eras := []routerconv.Era{routerconv.EraA, routerconv.EraB, routerconv.EraC, routerconv.EraD}
	outcomes := []routersim.Outcome{routersim.OutcomeOK, routersim.OutcomeError, routersim.OutcomeJailbreak, routersim.OutcomePII, routersim.OutcomeCacheHit}
	for _, era := range eras {
		for _, outcome := range outcomes {
			t.Run(fmt.Sprintf("%s/%s", era, outcome), func(t *testing.T) {
				// Several seeds: errors take different shapes within an era.
				for seed := range uint64(20) {
					rng := rand.New(rand.NewPCG(seed, 1))
					tr := routersim.Build(routersim.Request{Era: era, Outcome: outcome, Category: "math", Model: "m", Prompt: "p", Start: time.Unix(1e9, 0)}, rng)
					v := verdictOf(tr)
					assert.Equal(t, outcome == routersim.OutcomeError, v.Error(), "seed %d error", seed)
					reason, blocked := v.Blocked(true)
					assert.Equal(t, outcome.Blocked(), blocked, "seed %d blocked", seed)
					switch {
					case era == routerconv.EraD && blocked:
						assert.Contains(t, []string{routerconv.ReasonGuard, routerconv.ReasonJailbreak}, reason)
					case outcome == routersim.OutcomeJailbreak:
						assert.Equal(t, routerconv.ReasonJailbreak, reason)
					case outcome == routersim.OutcomePII:
						assert.Equal(t, routerconv.ReasonPII, reason)
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
		{"upstream", span(func(s ptrace.Span) { s.SetName("semantic_router.upstream.request") }), routerconv.SigUpstream, "", ""},
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

func TestBlockedNeedsCompleteTraceForHits(t *testing.T) {
	var v routerconv.Verdict
	v.Add(routerconv.Facts{Signals: routerconv.SigPIIHit})
	_, blocked := v.Blocked(false)
	require.False(t, blocked, "an incomplete trace may still make its upstream call")
	reason, blocked := v.Blocked(true)
	require.True(t, blocked)
	require.Equal(t, routerconv.ReasonPII, reason)
	v.Add(routerconv.Facts{Signals: routerconv.SigUpstream})
	_, blocked = v.Blocked(true)
	require.False(t, blocked, "a request that reached the model was not blocked")
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
