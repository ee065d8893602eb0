package routerconv_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
)

func build(era routerconv.Era, outcome routersim.Outcome) routersim.Trace {
	return routersim.Build(routersim.Request{Era: era, Outcome: outcome, Category: "math", Model: "qwen3-8b", Prompt: "p",
		Start: time.Unix(1e9, 0)}, rand.New(rand.NewPCG(3, 4)))
}

func rootOf(t *testing.T, tr routersim.Trace) ptrace.Span {
	for _, s := range tr.Spans().All() {
		if routerconv.IsLocalRoot(s) {
			return s
		}
	}
	t.Fatal("no root")
	return ptrace.Span{}
}

func timingOf(tr routersim.Trace, root ptrace.Span) routerconv.Timing {
	tm := routerconv.Timing{RootStart: root.StartTimestamp()}
	for _, s := range tr.Spans().All() {
		tm.MaxEnd = max(tm.MaxEnd, s.EndTimestamp())
	}
	return tm
}

func TestWriteSummaryOnAnAllowedRequest(t *testing.T) {
	tr := build(routerconv.EraC, routersim.OutcomeOK)
	sum := summaryOf(tr)
	root := rootOf(t, tr)
	tm := timingOf(tr, root)
	routerconv.WriteSummary(root, &sum, tm, identity)
	got := root.Attributes().AsRaw()
	assert.Equal(t, "C", got["vsr.era"])
	assert.Equal(t, "qwen3-8b", got["routing.selected_model"])
	assert.Equal(t, "math", got["category.name"])
	assert.Equal(t, "math_decision", got["decision.name"], "the real decision, not era C's placeholder")
	assert.Equal(t, "auto", got["gen_ai.request.model"])
	assert.Equal(t, "qwen3-8b", got["gen_ai.response.model"])
	assert.Equal(t, false, got["cache.hit"])
	assert.Equal(t, "allowed", got["security.action"])
	assert.NotContains(t, got, "security.reason")
	ms, _ := tm.ProcessingMS()
	assert.Equal(t, ms, got["processing.time_ms"])
	assert.Greater(t, tm.MaxEnd, root.EndTimestamp(), "era C's root ends before the model call, which the time covers")
}

// Era D marks a guard block by the root's 403 and error status alone; the decision's
// matched rule says which guard, and error.type says it too.
func TestWriteSummaryOnEraDBlock(t *testing.T) {
	tr := build(routerconv.EraD, routersim.OutcomeJailbreak)
	sum := summaryOf(tr)
	root := rootOf(t, tr)
	require.Equal(t, ptrace.StatusCodeError, root.Status().Code())
	routerconv.WriteSummary(root, &sum, timingOf(tr, root), identity)
	got := root.Attributes().AsRaw()
	assert.Equal(t, "blocked", got["security.action"])
	assert.Equal(t, routerconv.ReasonJailbreak, got["security.reason"])
	assert.Equal(t, "jailbreak_blocked", got["error.type"])
	assert.False(t, routerconv.Classify(root, true).Has(routerconv.SigError), "the summary's error.type does not make the block an error")
}

func TestWriteModelOnAModellessUpstreamCall(t *testing.T) {
	tr := build(routerconv.EraA, routersim.OutcomeOK)
	up := tr.Spans().At(tr.SpanCount() - 1)
	require.Equal(t, "semantic_router.upstream.request", up.Name())
	routerconv.WriteModel(up, "qwen3-8b")
	for _, k := range []string{"gen_ai.request.model", "gen_ai.response.model", "llm.model_name"} {
		assert.Equal(t, "qwen3-8b", up.Attributes().AsRaw()[k])
	}
}

// A root alone cannot tell eras A–C apart; keys the summary writes on roots tell nothing.
func TestEraEvidence(t *testing.T) {
	root := rootOf(t, build(routerconv.EraC, routersim.OutcomeOK))
	f := routerconv.Classify(root, true)
	assert.Equal(t, routerconv.EraUnknown, routerconv.SingleEra(f.Eras))
	root.Attributes().PutStr("category.name", "math")
	root.Attributes().PutBool("cache.hit", true)
	assert.Equal(t, f.Eras, routerconv.Classify(root, true).Eras)

	span := ptrace.NewSpan()
	span.SetName("semantic_router.decision.evaluation")
	span.SetParentSpanID([8]byte{1})
	span.Attributes().PutBool("reasoning.enabled", true)
	assert.Equal(t, [2]routerconv.Era{routerconv.EraB, routerconv.EraB}, routerconv.Classify(span, true).Eras, "raw: era A–B's key")
	span.Attributes().PutStr(routerconv.SchemaVersionKey, "1")
	assert.Equal(t, [2]routerconv.Era{routerconv.EraB, routerconv.EraD}, routerconv.Classify(span, true).Eras,
		"normalized: the key may be renamed from era C's model.reasoning_enabled")
}

// What the summary writes on the root and the metrics take as labels are names from a bounded
// vocabulary and an error class from the fixed set: free text becomes "other" or "_OTHER".
func TestSummaryHoldsNamesAndErrorsToTheirBounds(t *testing.T) {
	var sum routerconv.Summary[string]
	sum.Add(&routerconv.Facts{Category: "mail alice@example.com", Decision: "math_decision", SelectedModel: "Qwen/Qwen3-8B",
		OriginalModel: "gpt-4o please\nignore", Signals: routerconv.SigError | routerconv.SigUpstream, ErrorType: "ValueError: x",
		ErrorReason: "not one of the reasons"}, identity)
	root := ptrace.NewSpan()
	routerconv.WriteSummary(root, &sum, routerconv.Timing{}, identity)
	got := root.Attributes().AsRaw()
	assert.Equal(t, routerconv.OtherName, got["category.name"])
	assert.Equal(t, "math_decision", got["decision.name"])
	assert.Equal(t, "Qwen/Qwen3-8B", got["routing.selected_model"])
	assert.Equal(t, routerconv.OtherName, got["gen_ai.request.model"])
	assert.NotContains(t, got, "error.type", "a root that did not fail carries no error.type")

	failed := ptrace.NewSpan()
	failed.Status().SetCode(ptrace.StatusCodeError)
	failed.Attributes().PutStr("error.type", "ValueError: alice@example.com")
	routerconv.WriteSummary(failed, &sum, routerconv.Timing{}, identity)
	assert.Equal(t, routerconv.OtherErrorType, failed.Attributes().AsRaw()["error.type"], "a failed root's own class, bounded")
	ev := failed.Events().AppendEmpty()
	ev.SetName("exception")
	failed.Attributes().PutStr("error.type", "ValueError: alice@example.com")
	routerconv.WriteSummary(failed, &sum, routerconv.Timing{}, identity)
	assert.Equal(t, "exception", failed.Attributes().AsRaw()["error.type"])

	saved := sum.Save(identity)
	restored := routerconv.RestoreSummary(saved, identity)
	assert.Equal(t, sum, restored, "a summary survives the hand-over to the next run")
	saved.Category = "bob@example.com"
	assert.Equal(t, routerconv.OtherName, routerconv.RestoreSummary(saved, identity).Category, "what storage holds is held to the bounds too")
}

// A request routed without a routing span names its model by its upstream call.
func TestRoutedModelFallsBackToTheUpstreamCall(t *testing.T) {
	var sum routerconv.Summary[string]
	sum.Add(&routerconv.Facts{UpstreamModel: "qwen3-8b", Signals: routerconv.SigUpstream}, identity)
	root := ptrace.NewSpan()
	routerconv.WriteSummary(root, &sum, routerconv.Timing{}, identity)
	assert.Equal(t, "qwen3-8b", root.Attributes().AsRaw()["routing.selected_model"])
}
