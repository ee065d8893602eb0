//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/leakcorpus"
	"github.com/otelcol-vsr/otelcol-vsr/internal/loadgen"
)

// withoutRoots keeps the spans that have a parent: traces that stay open until shutdown, to be
// handed over in storage.
func withoutRoots(td ptrace.Traces) ptrace.Traces {
	out := ptrace.NewTraces()
	td.CopyTo(out)
	for _, rs := range out.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			ss.Spans().RemoveIf(func(s ptrace.Span) bool { return s.ParentSpanID().IsEmpty() })
		}
	}
	return out
}

// splitRoots returns td's spans without their roots, and the roots.
func splitRoots(td ptrace.Traces) (open, roots ptrace.Traces) {
	open, roots = withoutRoots(td), ptrace.NewTraces()
	td.CopyTo(roots)
	for _, rs := range roots.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			ss.Spans().RemoveIf(func(s ptrace.Span) bool { return !s.ParentSpanID().IsEmpty() })
		}
	}
	return open, roots
}

// filesUnder reads every file under dir.
func filesUnder(t *testing.T, dir string) (data []byte, files int) {
	eachFile(t, dir, func(_ string, raw []byte) {
		files++
		data = append(data, raw...)
	})
	return data, files
}

// eachFile calls read with the path and content of every file under dir.
func eachFile(t *testing.T, dir string, read func(path string, raw []byte)) {
	require.NoError(t, filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		read(path, raw)
		return nil
	}))
}

func scrape(t *testing.T, port int) []byte {
	resp, err := httpClient.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return body
}

// leakCheck records what was searched, and fails on any secret found.
type leakCheck struct {
	t       *testing.T
	secrets []leakcorpus.Secret
	places  []string
}

func (l *leakCheck) search(place string, data []byte) {
	l.t.Helper()
	require.NotEmpty(l.t, data, "%s: nothing to search", place)
	for _, s := range leakcorpus.Leaks(l.secrets, data) {
		i := bytes.Index(data, []byte(s.Needles[0]))
		l.t.Errorf("%s holds %s (%s) %q: …%q…", place, s.Where, s.Family, s.Value, data[max(i-120, 0):min(i+60, len(data))])
	}
	l.places = append(l.places, fmt.Sprintf("%s %d B", place, len(data)))
}

func traceIDBytes(ids []pcommon.TraceID) [][]byte {
	var out [][]byte
	for _, id := range ids {
		out = append(out, append([]byte(nil), id[:]...))
	}
	return out
}

func containsAny(data []byte, needles [][]byte) bool {
	for _, n := range needles {
		if bytes.Contains(data, n) {
			return true
		}
	}
	return false
}

// The project's leak corpus (internal/leakcorpus: OpenInference, OpenLLMetry, GenAI spans and
// events, Langfuse, HTTP URLs and headers, process resources, router and model-server spans,
// nested maps, repeated and odd keys) through the real pipeline (vsr_attributes → vsr_sampler →
// vsr_requests, 100 % sampling), in every mode, with a hash key and without: no secret in
// Jaeger, the spill, the file_storage queue, the saved handover, :8889, :8888 or the log.
func TestNoLeakCorpusLeaves(t *testing.T) {
	for _, mode := range []string{"fix", "report", "strict"} {
		for _, key := range []string{"e2e-leak-hash-key-0123456789", ""} {
			name := fmt.Sprintf("%s, hash key %t", mode, key != "")
			t.Run(name, func(t *testing.T) {
				tag := fmt.Sprintf("%s%t", mode, key != "")
				corpus := leakcorpus.Build(tag)
				// Traces that never get their root: undecided at shutdown, handed over. Enough of
				// them that the spill's write buffer (256 KiB) reaches its files.
				undecided := leakcorpus.Corpus{Traces: ptrace.NewTraces()}
				for i := range 12 {
					u := leakcorpus.Build(fmt.Sprintf("%sopen%d", tag, i))
					for _, rs := range u.Traces.ResourceSpans().All() {
						for _, ss := range rs.ScopeSpans().All() {
							for _, s := range ss.Spans().All() {
								s.Attributes().PutStr("filler", strings.Repeat("lorem ipsum ", 100))
							}
						}
					}
					u.Traces.ResourceSpans().MoveAndAppendTo(undecided.Traces.ResourceSpans())
					undecided.Secrets = append(undecided.Secrets, u.Secrets...)
					undecided.TraceIDs = append(undecided.TraceIDs, u.TraceIDs...)
				}
				check := &leakCheck{t: t, secrets: append(append([]leakcorpus.Secret(nil), corpus.Secrets...), undecided.Secrets...)}

				jaegerPorts := []int{freePort(t), freePort(t), freePort(t), freePort(t)}
				c := startCollector(t, "collector", filepath.Join("configs", "leaks.yaml"),
					"LEAK_MODE="+mode, "LEAK_HASH_KEY="+key, fmt.Sprintf("VSR_TRACES_ENDPOINT=127.0.0.1:%d", jaegerPorts[0]))
				sender, err := loadgen.NewGRPCSender(c.endpoint())
				require.NoError(t, err)
				defer sender.Close()
				ctx := context.Background()

				// 1. Spans without their roots: buffered, then spilled over the budget.
				open, roots := splitRoots(corpus.Traces)
				require.NoError(t, sender.Send(ctx, withoutRoots(undecided.Traces)))
				require.NoError(t, sender.Send(ctx, open))
				spillDir := filepath.Join(c.storage, "spill")
				var spill []byte
				deadline := time.Now().Add(30 * time.Second)
				for len(spill) == 0 && time.Now().Before(deadline) {
					time.Sleep(100 * time.Millisecond)
					spill, _ = filesUnder(t, spillDir)
				}
				require.Positive(t, c.metric(t, "otelcol_processor_vsr_sampler_spill_bytes"), "spans spilled")
				check.search("spill files", spill)

				// 2. The roots: the corpus's traces are decided and kept, and wait in the persistent
				// queue while Jaeger is not there.
				require.NoError(t, sender.Send(ctx, roots))
				deadline = time.Now().Add(time.Minute)
				for c.metric(t, "otelcol_exporter_queue_size") == 0 && time.Now().Before(deadline) {
					time.Sleep(100 * time.Millisecond)
				}
				require.Positive(t, c.metric(t, "otelcol_exporter_queue_size"), "kept spans wait in the queue")
				queue, files := filesUnder(t, c.storage)
				require.True(t, containsAny(queue, traceIDBytes(corpus.TraceIDs)), "the queue holds the corpus's traces (%d files)", files)
				check.search("file_storage with the queue", queue)

				// 3. Jaeger comes; the queue drains.
				j := startJaeger(t, jaegerPorts...)
				deadline = time.Now().Add(2 * time.Minute)
				for (c.metric(t, "otelcol_exporter_queue_size") > 0 || c.metric(t, "otelcol_exporter_in_flight_requests") > 0) && time.Now().Before(deadline) {
					time.Sleep(200 * time.Millisecond)
				}
				require.Zero(t, c.metric(t, "otelcol_exporter_queue_size"), "the queue drained")
				time.Sleep(3 * time.Second) // a collection interval of vsr_requests, and Jaeger's own batch

				requests := scrape(t, c.requests)
				require.Contains(t, string(requests), "vsr_requests_total", "request metrics are served")
				check.search(":8889 request metrics", requests)
				check.search(":8888 collector telemetry", scrape(t, c.metrics))

				// 4. SIGTERM: the undecided traces are handed over in storage.
				rss := c.peakRSSMiB()
				c.stop(t, time.Minute)
				stored, _ := filesUnder(t, c.storage)
				require.True(t, containsAny(stored, traceIDBytes(undecided.TraceIDs)), "the handover holds the undecided traces")
				check.search("file_storage after shutdown (queue, decisions, handover)", stored)
				check.search("collector log", []byte(c.logText()))

				// 5. Every corpus trace reached Jaeger, and none of its secrets.
				var exported []byte
				for _, id := range corpus.TraceIDs {
					_, raw, found := j.trace(t, id.String())
					assert.True(t, found, "trace %s in Jaeger", id)
					exported = append(exported, raw...)
				}
				check.search("Jaeger", exported)
				report(fmt.Sprintf("| privacy: leak corpus, %s | %d | %d | | | 0 | %.0f | 0 of %d secrets (%d families and kinds) in %s |",
					name, len(corpus.TraceIDs), len(corpus.TraceIDs), rss, len(check.secrets), families(check.secrets), strings.Join(check.places, ", ")))
			})
		}
	}
}

func families(secrets []leakcorpus.Secret) int {
	seen := map[string]bool{}
	for _, s := range secrets {
		seen[s.Family] = true
	}
	return len(seen)
}
