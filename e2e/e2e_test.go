//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vsr/otelcol-vsr/internal/loadgen"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
)

// defaultPercentage is vsr_sampler's default rate, which collector-config.yaml keeps.
const defaultPercentage = 10.0

// legacyKeys are router and model server keys vsr_attributes renames; none may reach the backend.
var legacyKeys = []string{"http.method", "http.path", "http.status_code", "model.reasoning_enabled",
	"model.reasoning_effort", "rag.latency_seconds", "deployment.environment", "gen_ai.usage.prompt_tokens", "gen_ai.usage.completion_tokens"}

// traffic is the router load the scenarios send.
func traffic(rate float64, d time.Duration, seed uint64) loadgen.Config {
	mix := routersim.DefaultMix()
	mix.ErrorRate, mix.BlockedRate, mix.SlowRate = 0.05, 0.05, 0
	return loadgen.Config{Mix: mix, Rate: rate, Duration: d, LateRate: 0.01, LateDelay: time.Second,
		OutOfOrderRate: 0.02, RootLastRate: 0.05, ExportDelay: 200 * time.Millisecond,
		BatchSpans: 256, Pods: 2, Workers: 4, Seed: seed}
}

func send(t *testing.T, ctx context.Context, cfg loadgen.Config, endpoint string) (loadgen.Stats, []loadgen.Entry) {
	return loadgen.Run(ctx, cfg, routerSender(t, endpoint))
}

// routerSender exports like the router's SDK: OTLP/gRPC, retrying what the collector refuses.
func routerSender(t *testing.T, endpoint string) loadgen.Sender {
	sender, err := loadgen.NewGRPCSender(endpoint)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sender.Close() })
	return retrying(sender)
}

// retrying retries refused exports as the router's OTLP exporter does.
func retrying(s loadgen.Sender) loadgen.Sender {
	return loadgen.Retrying{Sender: s, Attempts: 8, Backoff: 250 * time.Millisecond}
}

// sendInBackground sends while the scenario breaks things; wait returns the manifest.
func sendInBackground(t *testing.T, cfg loadgen.Config, endpoint string) (wait func() []loadgen.Entry) {
	sender, ctx := routerSender(t, endpoint), withTimeout(t, 5*time.Minute)
	done := make(chan []loadgen.Entry, 1)
	go func() {
		_, manifest := loadgen.Run(ctx, cfg, sender)
		done <- manifest
	}()
	return func() []loadgen.Entry { return <-done }
}

// verdict is what Jaeger holds of a manifest.
type verdict struct {
	sent, kept              int
	mustKeep, mustKeepWhole int
	otherSent, otherKept    int
	spansLost               int
	duplicates              int
	missingSchema           int
	leaks, legacy           []string
	lost                    []string
}

// inOrder: traces delivered as the router delivers them, whole and in end order. The sampler
// guarantees these; shuffled ones are best effort (reported apart).
func inOrder(e loadgen.Entry) bool { return e.FailedSpans == 0 && !e.OutOfOrder }

func verify(t *testing.T, j *jaeger, manifest []loadgen.Entry, include func(loadgen.Entry) bool) verdict {
	var v verdict
	for _, e := range manifest {
		if !include(e) {
			continue
		}
		v.sent++
		tr, raw, found := j.trace(t, e.TraceID)
		missing := len(e.SpanIDs)
		if found {
			v.kept++
			seen := map[string]int{}
			for _, s := range tr.Spans {
				seen[s.SpanID]++
				if seen[s.SpanID] == 2 {
					v.duplicates++
				}
				if _, ok := s.tag("vsr.schema.version"); !ok && tr.Processes[s.ProcessID].ServiceName != routersim.ModelServerService {
					v.missingSchema++
				}
				for _, k := range legacyKeys {
					if _, ok := s.tag(k); ok {
						v.legacy = append(v.legacy, k)
					}
				}
			}
			for _, p := range tr.Processes {
				for _, tag := range p.Tags {
					if tag.Key == "deployment.environment" {
						v.legacy = append(v.legacy, tag.Key)
					}
				}
			}
			for _, id := range e.SpanIDs {
				if seen[id] > 0 {
					missing--
				}
			}
			v.spansLost += missing
			if strings.Contains(raw, routersim.PromptMarker) {
				v.leaks = append(v.leaks, e.TraceID)
			}
		}
		if e.MustKeep {
			v.mustKeep++
			if found && missing == 0 {
				v.mustKeepWhole++
			} else {
				v.lost = append(v.lost, fmt.Sprintf("%s %s/%s: %d of %d spans", e.TraceID, e.Era, e.Outcome, len(e.SpanIDs)-missing, len(e.SpanIDs)))
			}
		} else {
			v.otherSent++
			if found {
				v.otherKept++
			}
		}
	}
	return v
}

func (v verdict) requireNoLoss(t *testing.T) {
	t.Helper()
	assert.Equal(t, v.mustKeep, v.mustKeepWhole, "every error and blocked trace whole in Jaeger; lost: %v", v.lost)
	assert.Zero(t, v.spansLost, "no span of a kept trace lost")
	assert.Zero(t, v.duplicates, "no span duplicated")
	assert.Empty(t, v.leaks, "prompt text reached the backend")
	assert.Empty(t, v.legacy, "legacy keys reached the backend")
	assert.Zero(t, v.missingSchema, "spans without vsr.schema.version")
}

func (v verdict) row(name string, rss float64, notes string) string {
	return fmt.Sprintf("| %s | %d | %d | %d | %d | %d | %.0f | %s |", name, v.sent, v.kept, v.mustKeep, v.mustKeepWhole, v.spansLost, rss, notes)
}

func backend(j *jaeger) []string {
	return []string{"VSR_EXPORTERS=[otlp_grpc/backend]", "VSR_TRACES_ENDPOINT=" + j.endpoint()}
}

// Scenario 1: the router's traffic through the shipped config into Jaeger.
func TestHappyPath(t *testing.T) {
	j := startJaeger(t)
	c := startCollector(t, "collector", filepath.Join(repoRoot, "collector-config.yaml"), backend(j)...)
	stats, manifest := send(t, withTimeout(t, 5*time.Minute), traffic(150, 15*time.Second, 1), c.endpoint())
	require.Zero(t, stats.FailedSpans)
	c.settle(t, time.Minute)

	v := verify(t, j, manifest, inOrder)
	v.requireNoLoss(t)
	rate := 100 * float64(v.otherKept) / float64(v.otherSent)
	sigma := 100 * 3 * sqrt(defaultPercentage/100*(1-defaultPercentage/100)/float64(v.otherSent))
	assert.InDelta(t, defaultPercentage, rate, sigma+1, "sampled share of the other traces")

	// The router guide's filters: security.action=blocked finds every blocked trace, error=true
	// every failed one, whatever era sent them.
	found := func(tags map[string]string) map[string]bool {
		ids := map[string]bool{}
		for _, service := range []string{"vllm-sr", "vllm-semantic-router"} {
			for id := range j.search(t, service, tags) {
				ids[id] = true
			}
		}
		return ids
	}
	blocked, failed := found(map[string]string{"security.action": "blocked"}), found(map[string]string{"error": "true"})
	var missedBlocked, missedFailed []string
	errorSpans, errorTagged := 0, 0
	for _, e := range manifest {
		if !inOrder(e) {
			continue
		}
		if (e.Outcome == "jailbreak" || e.Outcome == "pii") && !blocked[e.TraceID] {
			missedBlocked = append(missedBlocked, e.Era+"/"+e.TraceID)
		}
		if e.Outcome != "error" {
			continue
		}
		if !failed[e.TraceID] {
			missedFailed = append(missedFailed, e.Era+"/"+e.TraceID)
		}
		tr, _, _ := j.trace(t, e.TraceID)
		for _, s := range tr.Spans {
			if _, ok := s.tag("error.type"); ok {
				errorSpans++
				if v, ok := s.tag("error"); ok && v == true {
					errorTagged++
				}
			}
		}
	}
	assert.Empty(t, missedBlocked, "blocked traces security.action=blocked does not find")
	assert.Empty(t, missedFailed, "failed traces error=true does not find")
	assert.Positive(t, errorSpans)
	assert.Equal(t, errorSpans, errorTagged, "every span with error.type shows as error=true in Jaeger")

	ooo := verify(t, j, manifest, func(e loadgen.Entry) bool { return e.FailedSpans == 0 && e.OutOfOrder })
	report(v.row("1 happy path", c.peakRSSMiB(), fmt.Sprintf("sampled %.1f%% of the rest (rate %.0f%%); found by tag: %d security.action=blocked, %d error=true; shuffled delivery: %d/%d must-keep whole",
		rate, defaultPercentage, len(blocked), len(failed), ooo.mustKeepWhole, ooo.mustKeep)))
}

func sqrt(x float64) float64 {
	r := x
	for range 30 {
		if r == 0 {
			return 0
		}
		r = (r + x/r) / 2
	}
	return r
}

// nodeLayouts are the single-tier configs the outage, restart and kill scenarios run: the
// embedded default, and what distro/ ships for a node. The chart renders the raw manifest's
// collector config (TestChartAndManifestsShipOneConfig), so its run would repeat the raw one's;
// the two tiers' run the chart's rendering.
var nodeLayouts = []string{"collector-config.yaml", "k8s/daemonset.yaml"}

// startNode runs one of nodeLayouts, exporting to Jaeger.
func startNode(t *testing.T, name, layout string, j *jaeger) *collector {
	if layout == "collector-config.yaml" {
		return startCollector(t, name, filepath.Join(repoRoot, layout), backend(j)...)
	}
	return startShipped(t, name, layout, "DaemonSet", "VSR_TRACES_ENDPOINT="+j.endpoint())
}

// Scenario 2: the backend is down for 60 s under load. The persistent queue holds what was
// kept and delivers it once Jaeger is back.
func TestBackendDown(t *testing.T) {
	for _, layout := range nodeLayouts {
		t.Run(layout, func(t *testing.T) {
			j := startJaeger(t)
			c := startNode(t, "collector", layout, j)
			wait := sendInBackground(t, traffic(100, 80*time.Second, 2), c.endpoint())
			time.Sleep(5 * time.Second)
			downAt := time.Now()
			j.kill()
			time.Sleep(60 * time.Second)
			j = j.restart(t)
			manifest := wait()
			c.settle(t, 3*time.Minute)

			// The restarted Jaeger starts empty: check the requests that started after the outage
			// began. Not "ended": an error keeps its trace at once, so the spans before it may
			// have reached the old Jaeger while the root ends after the outage began.
			v := verify(t, j, manifest, func(e loadgen.Entry) bool {
				return inOrder(e) && e.Start > downAt.Add(time.Second).UnixNano()
			})
			v.requireNoLoss(t)
			require.Positive(t, v.mustKeep)
			report(v.row("2 backend down 60 s: "+layout, c.peakRSSMiB(), "traces that ended during or after the outage; delivered from the persistent queue"))
		})
	}
}

// Scenario 3: the collector is restarted (SIGTERM) under load, while the backend is also away,
// so what it flushes at shutdown can only reach Jaeger through the persistent queue after the
// restart.
func TestCollectorRestart(t *testing.T) {
	for _, layout := range nodeLayouts {
		t.Run(layout, func(t *testing.T) {
			j := startJaeger(t)
			c := startNode(t, "collector", layout, j)
			wait := sendInBackground(t, traffic(100, 30*time.Second, 3), c.endpoint())
			time.Sleep(8 * time.Second)
			jaegerPorts := []int{j.otlp, j.query, j.queryGRPC, j.health}
			j.stop(t, 30*time.Second)
			jaegerStoppedAt := time.Now()
			time.Sleep(2 * time.Second)
			stopAt := time.Now()
			c.stop(t, time.Minute) // decides and flushes pending traces into the persistent queue
			stoppedAt := time.Now()
			time.Sleep(3 * time.Second) // the router's exports fail meanwhile and are retried
			c.restart(t, "collector-2")
			j = startJaeger(t, jaegerPorts...)
			manifest := wait()
			c.settle(t, 3*time.Minute)

			// Every trace must be whole, those whose spans reached both processes included: the
			// first saved its decisions and handed the traces it had not decided to the second
			// (storage), which takes them in with their rest. The new Jaeger starts empty, so only traces sent after
			// the old one stopped are checked: their kept spans waited in the persistent queue.
			v := verify(t, j, manifest, func(e loadgen.Entry) bool {
				return inOrder(e) && e.FirstSent > jaegerStoppedAt.UnixNano()
			})
			v.requireNoLoss(t)
			require.Positive(t, v.mustKeep)
			straddling := 0
			for _, e := range manifest {
				if inOrder(e) && e.FirstSent < stoppedAt.UnixNano() && e.LastSent > stopAt.UnixNano() {
					straddling++
				}
			}
			report(v.row("3 collector restart: "+layout, c.peakRSSMiB(), fmt.Sprintf("SIGTERM took %.2fs; %d traces straddled the restart; queued while the backend was away, drained after restart", stoppedAt.Sub(stopAt).Seconds(), straddling)))
		})
	}
}

// Scenario 4: three times the load, a small byte budget and a tight memory limit. The
// collector stays up with bounded memory; the memory limiter refuses what it cannot take (the
// sender retries, as the router's exporter does) and no error or blocked trace it accepted is
// lost.
func TestOverload(t *testing.T) {
	j := startJaeger(t)
	c := startCollector(t, "collector", filepath.Join(repoRoot, "collector-config.yaml"), append(backend(j),
		"VSR_MAX_BUFFER_BYTES=8388608", "VSR_MAX_TRACE_BYTES=1048576", "VSR_MEMORY_LIMIT_MIB=28")...)
	stats, manifest := send(t, withTimeout(t, 5*time.Minute), traffic(450, 20*time.Second, 4), c.endpoint())
	c.settle(t, 3*time.Minute)
	require.True(t, c.running(), "the collector stays up")
	refused := c.metric(t, "otelcol_processor_memory_limiter_refused_spans")
	pressure := c.metric(t, "otelcol_processor_vsr_sampler_traces_decided", `trigger="pressure"`)
	rss := c.peakRSSMiB()

	v := verify(t, j, manifest, inOrder)
	v.requireNoLoss(t)
	assert.Less(t, rss, 200.0, "peak RSS bounded")
	report(v.row("4 overload 3×", rss, fmt.Sprintf("%.0f spans refused by the memory limiter and retried; %d spans given up by the sender; %.0f traces decided early under byte pressure",
		refused, stats.FailedSpans, pressure)))
}

// Scenario 2b: the backend is away long enough that the exporter's small sending queue fills
// and it refuses spans outright. Spans vsr_sampler released from earlier batches are held and
// redelivered; a refused batch goes back to its sender, who retries. Every kept span arrives
// once the backend is back, or the sender knows it failed; nothing vanishes silently.
//
// The shipped alerts (distro/k8s/monitoring.yaml) run in a real Prometheus scraping the
// collector: every rule evaluates, every metric they read exists, and the outage raises the
// send-failure and queue alerts.
func TestBackendRefuses(t *testing.T) {
	j := startJaeger(t)
	c := startCollector(t, "collector", filepath.Join("configs", "refusing.yaml"), "VSR_TRACES_ENDPOINT="+j.endpoint())
	rules, alertMetrics := shippedAlerts(t)
	prom := startPrometheusWithRules(t, rules, fmt.Sprintf("127.0.0.1:%d", c.metrics))
	wait := sendInBackground(t, traffic(100, 40*time.Second, 7), c.endpoint())
	time.Sleep(5 * time.Second)
	downAt := time.Now()
	j.kill()
	deadline := time.Now().Add(30 * time.Second)
	for c.metric(t, "otelcol_exporter_enqueue_failed_spans") == 0 && time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
	}
	refused := c.metric(t, "otelcol_exporter_enqueue_failed_spans")
	require.Positive(t, refused, "the queue filled and the exporter refused spans")
	raised := map[string]bool{}
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
		for name, r := range prom.rules(t) {
			if r.State == "pending" || r.State == "firing" {
				raised[name] = true
			}
		}
	}
	j = j.restart(t)
	manifest := wait()
	c.settle(t, 3*time.Minute)

	v := verify(t, j, manifest, func(e loadgen.Entry) bool {
		return inOrder(e) && e.FirstSent > downAt.Add(time.Second).UnixNano()
	})
	v.requireNoLoss(t)
	require.Positive(t, v.mustKeep)
	assert.Zero(t, c.metric(t, "otelcol_processor_vsr_sampler_release_failures"), "no kept span lost inside the collector")
	loaded := prom.rules(t)
	require.NotEmpty(t, loaded, "Prometheus loaded the shipped alerts")
	for name, r := range loaded {
		assert.Equal(t, "ok", r.Health, "%s: %s", name, r.LastError)
	}
	for _, m := range alertMetrics {
		if m == "otelcol_exporter_send_failed_spans" {
			continue // created at a first permanent failure, which retrying for ever leaves out here
		}
		assert.NotEmpty(t, prom.query(t, m), "the collector exports %s, which an alert reads", m)
	}
	assert.True(t, raised["OtelcolVsrExporterQueueFilling"], "the full queue raised its alert")
	redelivered := c.metric(t, "otelcol_processor_vsr_sampler_redelivered_spans")
	assert.Positive(t, redelivered, "released spans were held and redelivered")
	gaveUp := 0
	for _, e := range manifest {
		if e.FailedSpans > 0 {
			gaveUp++
		}
	}
	report(v.row("2b backend refuses", c.peakRSSMiB(), fmt.Sprintf("sending queue of 20 requests, backend away ~15 s: %.0f spans refused by the exporter; %.0f released spans held and redelivered; %d traces had an export the sender gave up on (it was told); 0 release failures",
		c.metric(t, "otelcol_exporter_enqueue_failed_spans"), redelivered, gaveUp)))
}
