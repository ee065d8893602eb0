//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/loadgen"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
)

// canaryMark starts every canary: no hash, count or key the collector writes contains it.
const canaryMark = "CANARY"

// canaryTraces are router requests of every era and outcome whose prompts, user and session
// IDs are unique canaries, also where they hide: span events, numbered and odd-case keys,
// values over max_value_bytes, invalid UTF-8, a path's query, scope and resource attributes,
// and the model server's spans.
func canaryTraces(mode string, rounds int) []routersim.Trace {
	var traces []routersim.Trace
	n := 0
	canary := func(field string) string {
		n++
		return fmt.Sprintf("%s-%s-%d-%s", canaryMark, mode, n, field)
	}
	rng := rand.New(rand.NewPCG(42, 7))
	outcomes := []routersim.Outcome{routersim.OutcomeOK, routersim.OutcomeError, routersim.OutcomeJailbreak, routersim.OutcomePII, routersim.OutcomeCacheHit}
	for range rounds {
		for _, era := range []routerconv.Era{routerconv.EraA, routerconv.EraB, routerconv.EraC, routerconv.EraD} {
			for _, outcome := range outcomes {
				tr := routersim.Build(routersim.Request{Era: era, Outcome: outcome, Category: "math", Model: "qwen3-8b",
					Prompt: canary("prompt") + strings.Repeat(" padding", 400), Start: time.Now(), ModelServer: true}, rng)
				rs := tr.Traces.ResourceSpans().At(0)
				rs.Resource().Attributes().PutStr("session.id", canary("resource-session"))
				rs.ScopeSpans().At(0).Scope().Attributes().PutStr("user.id", canary("scope-user"))
				for _, span := range tr.Spans().All() {
					attrs := span.Attributes()
					if routerconv.IsLocalRoot(span) {
						attrs.PutStr("user.id", canary("user")+"\xff\xfe")
						attrs.PutStr("Session.ID", canary("odd-case-session"))
						attrs.PutStr("enduser.id", canary("enduser")+strings.Repeat("x", 5000))
						if p, ok := attrs.Get("http.path"); ok {
							attrs.PutStr("http.path", p.Str()+"?user="+canary("query-user"))
						}
					}
					ev := span.Events().AppendEmpty()
					ev.SetName("gen_ai.content.prompt")
					ev.Attributes().PutStr("gen_ai.prompt", canary("event-prompt"))
					ev.Attributes().PutStr("GEN_AI.COMPLETION", canary("event-odd-case-completion"))
				}
				if spans, ok := tr.ModelServerSpans(); ok {
					for _, span := range spans.All() {
						span.Attributes().PutStr("gen_ai.input.messages", canary("model-server-messages"))
						span.Attributes().PutStr("gen_ai.prompt.0.content", canary("indexed-prompt"))
					}
				}
				traces = append(traces, tr)
			}
		}
	}
	return traces
}

// split returns the traces' spans without their roots (which keep them open) and the roots.
func split(traces []routersim.Trace) (open, roots ptrace.Traces) {
	open, roots = ptrace.NewTraces(), ptrace.NewTraces()
	for _, tr := range traces {
		for _, dst := range []ptrace.Traces{open, roots} {
			cp := ptrace.NewTraces()
			tr.Traces.CopyTo(cp)
			cp.ResourceSpans().MoveAndAppendTo(dst.ResourceSpans())
		}
	}
	for _, rs := range open.ResourceSpans().All() {
		rs.ScopeSpans().At(0).Spans().RemoveIf(routerconv.IsLocalRoot)
	}
	for _, rs := range roots.ResourceSpans().All() {
		rs.ScopeSpans().At(0).Spans().RemoveIf(func(s ptrace.Span) bool { return !routerconv.IsLocalRoot(s) })
	}
	return open, roots
}

// scanForCanaries returns the files under dir that hold a canary, and how many bytes it read.
func scanForCanaries(t *testing.T, dir string) (leaks []string, read int) {
	eachFile(t, dir, func(path string, raw []byte) {
		read += len(raw)
		if bytes.Contains(raw, []byte(canaryMark)) {
			leaks = append(leaks, path)
		}
	})
	return leaks, read
}

// No canary leaves the collector, nor lands in its spill files, in any mode.
func TestNoCanaryLeaves(t *testing.T) {
	for _, mode := range []struct {
		name string
		env  []string
	}{
		{"fix", []string{"CANARY_MODE=fix", "CANARY_HASH_KEY=e2e-hash-key-0123456789"}},
		{"report", []string{"CANARY_MODE=report", "CANARY_HASH_KEY=e2e-hash-key-0123456789"}},
		{"strict", []string{"CANARY_MODE=strict", "CANARY_HASH_KEY=e2e-hash-key-0123456789"}},
		{"no hash key", []string{"CANARY_MODE=fix"}},
		{"allow-list", []string{"CANARY_MODE=fix", "CANARY_ALLOW_LIST_ONLY=true", "CANARY_HASH_KEY=e2e-hash-key-0123456789"}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.json")
			c := startCollector(t, "collector", filepath.Join("configs", "canary.yaml"), append(mode.env, "CANARY_OUT="+out)...)
			sender, err := loadgen.NewGRPCSender(c.endpoint())
			require.NoError(t, err)
			defer sender.Close()
			// Enough traces that the spill's write buffer reaches its files.
			traces := canaryTraces(strings.ReplaceAll(mode.name, " ", "-"), 30)
			open, roots := split(traces)
			ctx := context.Background()
			require.NoError(t, sender.Send(ctx, open))
			deadline := time.Now().Add(30 * time.Second)
			for c.metric(t, "otelcol_processor_vsr_sampler_spill_bytes") == 0 && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			require.Positive(t, c.metric(t, "otelcol_processor_vsr_sampler_spill_bytes"), "the open traces spilled")
			spillDir := filepath.Join(c.storage, "spill")
			leaks, spilled := scanForCanaries(t, spillDir)
			assert.Empty(t, leaks, "canaries in the spill files")
			assert.Positive(t, spilled)

			require.NoError(t, sender.Send(ctx, roots))
			c.settle(t, time.Minute)
			rss := c.peakRSSMiB()
			c.stop(t, time.Minute)
			leaks, exported := scanForCanaries(t, filepath.Dir(out))
			assert.Empty(t, leaks, "canaries exported")
			raw, err := os.ReadFile(out)
			if len(leaks) > 0 {
				i := bytes.Index(raw, []byte(canaryMark))
				t.Logf("first leak: %s", raw[max(i-300, 0):min(i+100, len(raw))])
			}
			require.NoError(t, err)
			for _, tr := range traces {
				assert.Contains(t, string(raw), tr.ID.String(), "every trace is exported")
			}
			report(fmt.Sprintf("| privacy: %s | %d | %d | | | 0 | %.0f | 0 canaries in %d bytes exported and %d bytes spilled (prompts, user/session IDs in spans, events, odd-case and numbered keys, over-long values, invalid UTF-8, path queries, scope, resource, model server spans) |",
				mode.name, len(traces), len(traces), rss, exported, spilled))
		})
	}
}
