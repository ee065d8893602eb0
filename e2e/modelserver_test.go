//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vsr/otelcol-vsr/internal/loadgen"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
)

// servingWant is what the manifest says the model server metrics must count, by one label.
type servingWant map[string]*servingTotals

type servingTotals struct {
	ttft, tpot, queue, e2e [2]float64 // count, sum
	input, output          float64
}

func (w servingWant) add(key string, e loadgen.Entry) {
	t := w[key]
	if t == nil {
		t = &servingTotals{}
		w[key] = t
	}
	ms := e.ModelServer
	t.ttft[0]++
	t.ttft[1] += ms.TTFT
	t.queue[0]++
	t.queue[1] += ms.Queue
	t.e2e[0]++
	t.e2e[1] += ms.E2E
	if tpot, ok := ms.TimePerOutputToken(); ok {
		t.tpot[0]++
		t.tpot[1] += tpot
	}
	t.input += float64(ms.PromptTokens)
	t.output += float64(ms.CompletionTokens)
}

// The model servers' timings through the two-tier deployment: vsrgen's router traffic with
// vLLM's llm_request spans, the model server pods on the other node, so a trace's router and
// model server spans reach a gateway through different agents. Every request's tokens and
// each model server histogram's count and sum, as the gateways' Prometheus endpoints say,
// match the manifest within 1 % by model and by category; every exemplar opens the model
// server span of a trace Jaeger holds; every query of the router dashboard, the model serving
// row included, returns series from a real Prometheus that scraped the gateways.
func TestModelServingTwoTier(t *testing.T) {
	tt := startTwoTier(t, twoTierLayouts[0], nil)
	j, gateways, agents := tt.j, tt.gateways, tt.agents
	var targets []string
	for _, g := range gateways {
		targets = append(targets, fmt.Sprintf("127.0.0.1:%d", g.requests), fmt.Sprintf("127.0.0.1:%d", g.metrics))
	}
	prom := startPrometheus(t, targets...)
	cfg := traffic(150, 20*time.Second, 11)
	cfg.Mix.ModelServerRate = 0.8
	// Spans delivered as the SDKs deliver them: what is measured here is the metrics, not the
	// sampler's handling of shuffled traces (e2e_test.go has those).
	cfg.LateRate, cfg.OutOfOrderRate = 0, 0
	start := time.Now()
	stats, manifest := loadgen.Run(withTimeout(t, 5*time.Minute), cfg, retrying(tt.send))
	require.Zero(t, stats.FailedSpans)
	for _, c := range append(agents, gateways...) {
		c.settle(t, 2*time.Minute)
	}

	// What the manifest says, by model and by the category the router sends (era D sends none).
	byModel, byCategory := servingWant{}, servingWant{}
	served := 0
	for _, e := range manifest {
		if e.ModelServer == nil {
			continue
		}
		served++
		byModel.add(e.Model, e)
		category := e.Category
		if e.Era == routerconv.EraD.String() {
			category = ""
		}
		byCategory.add(category, e)
	}
	require.Greater(t, served, len(manifest)/2)

	// The gateways report every 10 s: wait until both have reported every request.
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		got := prom.query(t, "sum(vsr_model_server_time_to_first_token_seconds_count)")
		if len(got) == 1 && got[0].value() >= float64(served) {
			break
		}
		time.Sleep(time.Second)
	}

	check := func(label string, want servingWant, field func(*servingTotals) float64, metric string) {
		got := map[string]float64{}
		for _, s := range prom.query(t, fmt.Sprintf("sum by (%s) (%s)", label, metric)) {
			got[s.Metric[label]] = s.value()
		}
		for key, w := range want {
			assert.InEpsilon(t, field(w), got[key], 0.01, "%s{%s=%q}", metric, label, key)
		}
		for key := range got {
			assert.Contains(t, want, key, "%s has a %s=%q the manifest does not", metric, label, key)
		}
	}
	checks := 0
	for label, want := range map[string]servingWant{"gen_ai_response_model": byModel, "category_name": byCategory} {
		checks += 10 * len(want)
		for metric, field := range map[string]func(*servingTotals) float64{
			"vsr_model_server_time_to_first_token_seconds_count":        func(s *servingTotals) float64 { return s.ttft[0] },
			"vsr_model_server_time_to_first_token_seconds_sum":          func(s *servingTotals) float64 { return s.ttft[1] },
			"vsr_model_server_time_per_output_token_seconds_count":      func(s *servingTotals) float64 { return s.tpot[0] },
			"vsr_model_server_time_per_output_token_seconds_sum":        func(s *servingTotals) float64 { return s.tpot[1] },
			"vsr_model_server_queue_time_seconds_count":                 func(s *servingTotals) float64 { return s.queue[0] },
			"vsr_model_server_queue_time_seconds_sum":                   func(s *servingTotals) float64 { return s.queue[1] },
			"vsr_model_server_duration_seconds_count":                   func(s *servingTotals) float64 { return s.e2e[0] },
			"vsr_model_server_duration_seconds_sum":                     func(s *servingTotals) float64 { return s.e2e[1] },
			`vsr_model_server_tokens_total{gen_ai_token_type="input"}`:  func(s *servingTotals) float64 { return s.input },
			`vsr_model_server_tokens_total{gen_ai_token_type="output"}`: func(s *servingTotals) float64 { return s.output },
		} {
			check(label, want, field, metric)
		}
	}

	// Every exemplar opens a kept trace in Jaeger, at the model server's span.
	exemplars := prom.exemplars(t, `{__name__=~"vsr_model_server_.*_bucket"}`, start)
	require.NotEmpty(t, exemplars)
	var missing []string
	for traceID, spanID := range exemplars {
		tr, _, found := j.trace(t, traceID)
		at := -1
		for i, s := range tr.Spans {
			if s.SpanID == spanID {
				at = i
			}
		}
		if !found || at < 0 || tr.Spans[at].OperationName != "llm_request" {
			missing = append(missing, traceID+"/"+spanID)
		}
	}
	assert.Empty(t, missing, "exemplars that do not open a model server span Jaeger holds")

	// Every query of the router dashboard returns series.
	queries := 0
	for _, expr := range dashboardQueries(t, filepath.Join(repoRoot, "distro", "grafana", "router.json")) {
		queries++
		assert.NotEmpty(t, prom.query(t, expr), "router.json: no series for %s", expr)
	}
	models := make([]string, 0, len(byModel))
	for m := range byModel {
		models = append(models, m)
	}
	sort.Strings(models)
	report(fmt.Sprintf("| model serving, two tiers | %d | | | | | %.0f | %d model server spans: %d counts and sums (4 histograms, tokens) within 1%% of the manifest by model (%s) and by %d categories; %d exemplars open the llm_request span in Jaeger; %d router dashboard queries return series |",
		len(manifest), gateways[0].peakRSSMiB(), served, checks, strings.Join(models, ", "), len(byCategory),
		len(exemplars), queries))
}

// exemplars returns the trace and span IDs of the exemplars of a query's series since start.
func (p *promServer) exemplars(t *testing.T, expr string, start time.Time) map[string]string {
	q := url.Values{"query": {expr}, "start": {strconv.FormatInt(start.Unix(), 10)}, "end": {strconv.FormatInt(time.Now().Unix()+1, 10)}}
	resp, err := httpClient.Get(fmt.Sprintf("http://127.0.0.1:%d/api/v1/query_exemplars?%s", p.port, q.Encode()))
	require.NoError(t, err)
	defer resp.Body.Close()
	var r struct {
		Data []struct {
			Exemplars []struct {
				Labels map[string]string `json:"labels"`
			} `json:"exemplars"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
	ids := map[string]string{}
	for _, series := range r.Data {
		for _, ex := range series.Exemplars {
			if id := ex.Labels["trace_id"]; id != "" {
				ids[id] = ex.Labels["span_id"]
			}
		}
	}
	return ids
}
