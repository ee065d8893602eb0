//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/loadgen"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
)

func postOTLP(t *testing.T, c *collector, contentType string, body []byte) (int, string) {
	resp, err := httpClient.Post(fmt.Sprintf("http://127.0.0.1:%d/v1/traces", c.otlpHTTP), contentType, bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

func routerTrace(seed uint64, outcome routersim.Outcome) routersim.Trace {
	return routersim.Build(routersim.Request{Era: routerconv.EraD, Outcome: outcome, Category: "math", Model: "m",
		Start: time.Now(), Prompt: routersim.PromptMarker + " bad input"}, rand.New(rand.NewPCG(seed, 9)))
}

// Bad input gets a clear OTLP error or is repaired, and the collector keeps serving.
func TestBadInput(t *testing.T) {
	j := startJaeger(t)
	c := startCollector(t, "collector", filepath.Join(repoRoot, "collector-config.yaml"), append(backend(j), "VSR_SAMPLE_PERCENTAGE=100")...)
	sender, err := loadgen.NewGRPCSender(c.endpoint())
	require.NoError(t, err)
	defer sender.Close()
	ctx := context.Background()
	var notes []string

	// Malformed protobuf and an invalid trace ID: refused with 400, nothing enters the pipeline.
	code, body := postOTLP(t, c, "application/x-protobuf", []byte("\x0a\xff\xff\xff\xff\x0fnot a protobuf"))
	assert.Equal(t, http.StatusBadRequest, code, body)
	code, body = postOTLP(t, c, "application/json", []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"not-hex","spanId":"0102030405060708","name":"x"}]}]}]}`))
	assert.Equal(t, http.StatusBadRequest, code, body)
	notes = append(notes, "malformed protobuf and invalid trace ID: HTTP 400")

	// An empty resource is accepted and passes as any other service's trace.
	empty := ptrace.NewTraces()
	span := empty.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	span.SetTraceID(pcommon.TraceID{0xe1})
	span.SetSpanID(pcommon.SpanID{0xe1})
	span.SetName("no resource")
	span.SetStartTimestamp(pcommon.NewTimestampFromTime(time.Now()))
	span.SetEndTimestamp(pcommon.NewTimestampFromTime(time.Now()))
	require.NoError(t, sender.Send(ctx, empty))

	// A 1 MiB value and invalid UTF-8 on a router span: accepted, cut and repaired.
	huge := routerTrace(1, routersim.OutcomeError)
	root := huge.Spans().At(huge.SpanCount() - 1)
	root.Attributes().PutStr("routing.reason", strings.Repeat("x", 1<<20))
	root.Attributes().PutStr("category.name", "ma\xffth")
	require.NoError(t, sender.Send(ctx, huge.Traces))

	// Duplicated spans: a retried export of a trace still waiting for its root.
	dup := routerTrace(2, routersim.OutcomeOK)
	n := dup.SpanCount()
	children := ptrace.NewTraces()
	dup.Traces.CopyTo(children)
	children.ResourceSpans().At(0).ScopeSpans().At(0).Spans().RemoveIf(func(s ptrace.Span) bool { return routerconv.IsLocalRoot(s) })
	again := ptrace.NewTraces()
	children.CopyTo(again)
	require.NoError(t, sender.Send(ctx, children))
	require.NoError(t, sender.Send(ctx, again))
	require.NoError(t, sender.Send(ctx, dup.Traces)) // the root, and the children a third time

	// A 100,000-span trace, in 20 requests: decided at the trace span limit, the rest follows.
	big := ptrace.NewTraces()
	rs := big.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "batch-job")
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	for i := range 100_000 {
		s := spans.AppendEmpty()
		s.SetTraceID(pcommon.TraceID{0xb1, 0x9})
		s.SetSpanID(pcommon.SpanID{byte(i >> 16), byte(i >> 8), byte(i), 1})
		s.SetParentSpanID(pcommon.SpanID{0xff})
		s.SetName("step")
	}
	for part := range 20 {
		chunk := ptrace.NewTraces()
		crs := chunk.ResourceSpans().AppendEmpty()
		rs.Resource().CopyTo(crs.Resource())
		cspans := crs.ScopeSpans().AppendEmpty().Spans()
		for i := part * 5000; i < (part+1)*5000; i++ {
			spans.At(i).CopyTo(cspans.AppendEmpty())
		}
		require.NoError(t, sender.Send(ctx, chunk))
	}

	// Still serving: a normal trace goes through after all of it.
	normal := routerTrace(3, routersim.OutcomeOK)
	require.NoError(t, sender.Send(ctx, normal.Traces))
	c.settle(t, time.Minute)
	require.True(t, c.running())

	tr, raw, found := j.trace(t, huge.ID.String())
	require.True(t, found)
	assert.NotContains(t, raw, "ma\xffth")
	for _, s := range tr.Spans {
		if v, ok := s.tag("routing.reason"); ok {
			assert.LessOrEqual(t, len(v.(string)), 4096, "huge value cut to max_value_bytes")
		}
	}
	tr, _, found = j.trace(t, dup.ID.String())
	require.True(t, found)
	assert.Len(t, tr.Spans, n, "each duplicated span stored once")
	_, _, found = j.trace(t, normal.ID.String())
	assert.True(t, found, "the collector keeps serving")
	_, _, found = j.trace(t, "e1000000000000000000000000000000")
	assert.True(t, found, "a span with an empty resource passes")

	// The processors' own telemetry says what happened.
	truncated := c.metric(t, "otelcol_processor_vsr_attributes_issues", `issue="truncated"`)
	utf8 := c.metric(t, "otelcol_processor_vsr_attributes_issues", `issue="invalid_utf8"`)
	duplicates := c.metric(t, "otelcol_processor_vsr_sampler_duplicate_spans")
	limited := c.metric(t, "otelcol_processor_vsr_sampler_traces_decided", `trigger="limit"`)
	late := c.metric(t, "otelcol_processor_vsr_sampler_late_spans", `outcome="kept"`)
	assert.GreaterOrEqual(t, truncated, 1.0)
	assert.GreaterOrEqual(t, utf8, 1.0)
	assert.GreaterOrEqual(t, duplicates, float64(2*(n-1)))
	assert.GreaterOrEqual(t, limited, 1.0)
	assert.GreaterOrEqual(t, late, 90_000.0, "spans after the limit follow the decision")
	notes = append(notes, fmt.Sprintf("1 MiB value cut (%.0f truncated), invalid UTF-8 repaired (%.0f), %.0f duplicate spans dropped, 100k-span trace decided at the span limit (%.0f later spans followed)",
		truncated, utf8, duplicates, late))
	report(fmt.Sprintf("| bad input | | | | | 0 | %.0f | %s |", c.peakRSSMiB(), strings.Join(notes, "; ")))
}
