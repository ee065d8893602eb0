//go:build e2e

package e2e

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Request metrics count all traffic at a 10 % sampling rate, their exemplars open kept traces
// in Jaeger, and every query of both dashboards returns series from a real Prometheus that
// scraped the collector. The traffic includes requests whose decision matched a PII rule and
// routed them, with no plugins and a model call that outlasts the grace period: allowed, not
// blocked, however long the model took.
func TestRequestMetricsAndDashboards(t *testing.T) {
	j := startJaeger(t)
	requestsPort := freePort(t)
	c := startCollector(t, "collector", filepath.Join(repoRoot, "collector-config.yaml"), append(backend(j),
		fmt.Sprintf("VSR_REQUEST_METRICS_ENDPOINT=127.0.0.1:%d", requestsPort), "VSR_REQUEST_METRICS_INTERVAL=1s")...)
	prom := startPrometheus(t, fmt.Sprintf("127.0.0.1:%d", requestsPort), fmt.Sprintf("127.0.0.1:%d", c.metrics))
	start := time.Now()
	cfg := traffic(150, 20*time.Second, 6)
	cfg.Mix.PIIRoutedRate = 0.05
	stats, manifest := send(t, withTimeout(t, 5*time.Minute), cfg, c.endpoint())
	require.Zero(t, stats.FailedSpans)
	c.settle(t, time.Minute)
	time.Sleep(4 * time.Second) // a collection interval, then a scrape

	// Counts of all traffic, by model and by verdict, against what was sent. A request is routed
	// to a model unless a guard blocked it or the cache answered first (era B routes before
	// its guard and cache plugins run).
	wantModel, wantAction := map[string]float64{}, map[string]float64{}
	routedSlow := 0
	for _, e := range manifest {
		if e.Outcome == "pii_routed" && e.Era != "D" && time.Duration(e.LastEnd-e.RootEnd) > 2*time.Second {
			routedSlow++
		}
		switch {
		case (e.Outcome == "jailbreak" || e.Outcome == "pii") && e.Era == "B":
			// Era B decides the route before its guard plugins run: a block names its model.
			wantAction["blocked"]++
			wantModel[e.Model]++
		case e.Outcome == "jailbreak" || e.Outcome == "pii":
			wantAction["blocked"]++
		case e.Outcome == "cache_hit" && e.Era != "B":
			wantAction["allowed"]++
		default:
			wantAction["allowed"]++
			wantModel[e.Model]++
		}
	}
	gotModel, gotAction := map[string]float64{}, map[string]float64{}
	for _, s := range prom.query(t, "sum by (routing_selected_model) (vsr_requests_total)") {
		gotModel[s.Metric["routing_selected_model"]] = s.value()
	}
	for _, s := range prom.query(t, "sum by (security_action) (vsr_requests_total)") {
		gotAction[s.Metric["security_action"]] = s.value()
	}
	for model, want := range wantModel {
		assert.InEpsilon(t, want, gotModel[model], 0.01, "requests routed to %s (want %v, got %v)", model, wantModel, gotModel)
	}
	require.Positive(t, routedSlow, "PII-routed requests whose model call outlasted the grace period")
	for action, want := range wantAction {
		assert.InEpsilon(t, want, gotAction[action], 0.01, "requests %s", action)
	}
	kept := prom.query(t, `sum(otelcol_processor_vsr_sampler_traces_decided{decision="kept"})`)
	require.Len(t, kept, 1)
	assert.Less(t, kept[0].value(), 0.3*float64(len(manifest)), "only a sample is exported")

	// Every exemplar opens a trace Jaeger holds.
	exemplars := prom.exemplarTraceIDs(t, `{__name__=~"vsr_request_duration_seconds_bucket|vsr_requests_total|vsr_request_errors_total|vsr_model_call_duration_seconds_bucket"}`, start)
	require.NotEmpty(t, exemplars)
	var missing []string
	for id := range exemplars {
		if _, _, found := j.trace(t, id); !found {
			missing = append(missing, id)
		}
	}
	assert.Empty(t, missing, "exemplars of traces the backend does not hold")

	// Every dashboard query parses and returns series.
	queries := 0
	for _, dashboard := range []string{"router.json", "collector.json"} {
		for _, expr := range dashboardQueries(t, filepath.Join(repoRoot, "distro", "grafana", dashboard)) {
			queries++
			assert.NotEmpty(t, prom.query(t, expr), "%s: no series for %s", dashboard, expr)
		}
	}
	report(fmt.Sprintf("| request metrics | %d | %.0f | | | 0 | %.0f | counts within 1%% of the manifest for %d models and %d verdicts (%.0f blocked, %.0f allowed) at 10%% sampling, %d PII-routed requests with slow model calls among them; %d exemplars, all in Jaeger; %d dashboard queries return series |",
		len(manifest), kept[0].value(), c.peakRSSMiB(), len(wantModel), len(wantAction), gotAction["blocked"], gotAction["allowed"], routedSlow, len(exemplars), queries))
}
