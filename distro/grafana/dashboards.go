// Package grafana builds otelcol-vsr's Grafana dashboards as code: `make generate` writes them
// to router.json and collector.json beside this file, and the end-to-end tests evaluate every
// query in them against a real Prometheus that scraped a running collector.
package grafana

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// datasource is the Prometheus the panels query, chosen with the dashboard's variable.
var datasource = func() common.DataSourceRef {
	typ, uid := "prometheus", "${datasource}"
	return common.DataSourceRef{Type: &typ, Uid: &uid}
}()

func datasourceVariable() cog.Builder[dashboard.VariableModel] {
	return dashboard.NewDatasourceVariableBuilder("datasource").Label("Prometheus").Type("prometheus")
}

// query is one PromQL target; legend names its series.
func query(expr, legend string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().Expr(expr).LegendFormat(legend).Datasource(datasource)
}

// withExemplars asks for exemplars, which Grafana links to the trace backend configured on the
// Prometheus datasource (datasources.yaml); they are only ever of kept traces.
func withExemplars(q *prometheus.DataqueryBuilder) *prometheus.DataqueryBuilder {
	return q.Exemplar(true)
}

func series(title, unit, description string, queries ...*prometheus.DataqueryBuilder) *timeseries.PanelBuilder {
	p := timeseries.NewPanelBuilder().Title(title).Unit(unit).Description(description).Datasource(datasource).Height(8).Span(12)
	for _, q := range queries {
		p.WithTarget(q)
	}
	return p
}

func single(title, unit, description string, q *prometheus.DataqueryBuilder) *stat.PanelBuilder {
	return stat.NewPanelBuilder().Title(title).Unit(unit).Description(description).Datasource(datasource).Height(6).Span(6).WithTarget(q)
}

// rate is the per-second rate of a counter over Grafana's rate interval.
func rate(selector string) string { return "rate(" + selector + "[$__rate_interval])" }

// quantile is a latency quantile of a duration histogram, by some labels.
func quantile(q, histogram, by string) string {
	return "histogram_quantile(" + q + ", sum by (le, " + by + ") (" + rate(histogram+"_bucket") + "))"
}

// Router is the dashboard of the router's traffic: what operators of the router look at.
func Router() *dashboard.DashboardBuilder {
	perModel := func(q, name string) *prometheus.DataqueryBuilder {
		return withExemplars(query(quantile(q, "vsr_request_duration_seconds", "routing_selected_model"), name+" {{routing_selected_model}}"))
	}
	return modelServing(dashboard.NewDashboardBuilder("vLLM Semantic Router").
		Uid("otelcol-vsr-router").
		Tags([]string{"otelcol-vsr", "vllm-semantic-router"}).
		Description("Requests, errors, latency, guard blocks, cache and tokens of the vLLM Semantic Router, from every request the collector saw (not only the sampled ones). Exemplars open a kept trace.").
		Time("now-1h", "now").
		Refresh("30s").
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		WithVariable(datasourceVariable()).
		WithRow(dashboard.NewRowBuilder("Traffic")).
		WithPanel(series("Requests per second by selected model", "reqps", "All requests, kept or not, by the model the router chose.",
			query("sum by (routing_selected_model) ("+rate("vsr_requests_total")+")", "{{routing_selected_model}}"))).
		WithPanel(series("Requests per second by category and decision", "reqps", "By the category the router classified and the decision that matched.",
			query("sum by (category_name, decision_name) ("+rate("vsr_requests_total")+")", "{{category_name}} / {{decision_name}}"))).
		WithRow(dashboard.NewRowBuilder("Errors")).
		WithPanel(series("Error ratio by selected model", "percentunit", "Failed requests over all requests, per model.",
			query("sum by (routing_selected_model) ("+rate("vsr_request_errors_total")+") / sum by (routing_selected_model) ("+rate("vsr_requests_total")+")", "{{routing_selected_model}}"))).
		WithPanel(series("Errors per second by error.type", "reqps", "Failed requests by error class: upstream status, plugin_failed, retrieval_failed, timeouts.",
			withExemplars(query("sum by (error_type) ("+rate("vsr_request_errors_total")+")", "{{error_type}}")))).
		WithRow(dashboard.NewRowBuilder("Latency")).
		WithPanel(series("Request latency by selected model (p50 / p95 / p99)", "s", "From the request's start to its last span's end, the model's answer included. Exemplars open a kept trace.",
			perModel("0.5", "p50"), perModel("0.95", "p95"), perModel("0.99", "p99"))).
		WithPanel(series("Request latency p99 by category and decision", "s", "Slow routes stand out here.",
			withExemplars(query(quantile("0.99", "vsr_request_duration_seconds", "category_name, decision_name"), "{{category_name}} / {{decision_name}}")))).
		WithRow(dashboard.NewRowBuilder("Guards and cache")).
		WithPanel(series("Blocked requests per second by reason", "reqps", "Requests a guard blocked: jailbreak, pii, or guard when the router does not say which.",
			withExemplars(query("sum by (security_reason) ("+rate(`vsr_requests_total{security_action="blocked"}`)+")", "{{security_reason}}")))).
		WithPanel(single("Blocked share", "percentunit", "Blocked requests over all requests.",
			query(`sum(`+rate(`vsr_requests_total{security_action="blocked"}`)+`) / sum(`+rate("vsr_requests_total")+`)`, "blocked"))).
		WithPanel(single("Cache hit ratio", "percentunit", "Requests the semantic cache answered, over those the cache looked up.",
			query(`sum(`+rate(`vsr_requests_total{cache_hit="true"}`)+`) / sum(`+rate(`vsr_requests_total{cache_hit!=""}`)+`)`, "hit ratio"))).
		WithRow(dashboard.NewRowBuilder("Models")).
		WithPanel(series("Model calls per second and errors", "reqps", "The router's calls to each model, and those that failed.",
			query("sum by (gen_ai_response_model) ("+rate("vsr_model_calls_total")+")", "{{gen_ai_response_model}}"),
			query("sum by (gen_ai_response_model) ("+rate("vsr_model_call_errors_total")+") or vector(0)", "errors {{gen_ai_response_model}}"))).
		WithPanel(series("Model call latency p99", "s", "How long each model took to answer the router.",
			withExemplars(query(quantile("0.99", "vsr_model_call_duration_seconds", "gen_ai_response_model"), "{{gen_ai_response_model}}")))))
}

// modelServing adds the row of the model servers' own timings (vLLM's and SGLang's request
// spans), by model and by the route the router chose: the serving SLOs, over all traffic.
func modelServing(b *dashboard.DashboardBuilder) *dashboard.DashboardBuilder {
	const (
		ttft  = "vsr_model_server_time_to_first_token_seconds"
		tpot  = "vsr_model_server_time_per_output_token_seconds"
		queue = "vsr_model_server_queue_time_seconds"
	)
	byModel := func(histogram string) []*prometheus.DataqueryBuilder {
		return []*prometheus.DataqueryBuilder{
			withExemplars(query(quantile("0.5", histogram, "gen_ai_response_model"), "p50 {{gen_ai_response_model}}")),
			withExemplars(query(quantile("0.95", histogram, "gen_ai_response_model"), "p95 {{gen_ai_response_model}}")),
		}
	}
	byCategory := func(histogram string) []*prometheus.DataqueryBuilder {
		return []*prometheus.DataqueryBuilder{
			query(quantile("0.5", histogram, "category_name, gen_ai_response_model"), "p50 {{category_name}} → {{gen_ai_response_model}}"),
			withExemplars(query(quantile("0.95", histogram, "category_name, gen_ai_response_model"), "p95 {{category_name}} → {{gen_ai_response_model}}")),
		}
	}
	return b.WithRow(dashboard.NewRowBuilder("Model serving")).
		WithPanel(series("Time to first token by model (p50 / p95)", "s", "From the request's arrival at the model server to its first token, as vLLM or SGLang measured it (gen_ai.latency.time_to_first_token), every request counted. Exemplars open a kept trace.",
			byModel(ttft)...)).
		WithPanel(series("Time to first token by category (p50 / p95)", "s", "The same, by the category the router classified and the model it routed to (eras A–C send a category; era D's requests show an empty one).",
			byCategory(ttft)...)).
		WithPanel(series("Time per output token by model (p50 / p95)", "s", "Decode time over the output tokens after the first (gen_ai.latency.time_in_model_decode / (output tokens − 1)).",
			byModel(tpot)...)).
		WithPanel(series("Time per output token by category (p50 / p95)", "s", "The same, by category and model.",
			byCategory(tpot)...)).
		WithPanel(series("Queue time by model (p50 / p95)", "s", "How long requests waited for the server's scheduler (gen_ai.latency.time_in_queue, vLLM): a saturated pool queues.",
			byModel(queue)...)).
		WithPanel(series("Tokens per second by model", "short", "Tokens the model servers report, input and output (either gen_ai.usage name, counted once).",
			query("sum by (gen_ai_response_model, gen_ai_token_type) ("+rate("vsr_model_server_tokens_total")+")", "{{gen_ai_token_type}} {{gen_ai_response_model}}")))
}

// Collector is the dashboard of the collectors themselves: sampling, memory, export.
func Collector() *dashboard.DashboardBuilder {
	sampler := func(name string) string { return "otelcol_processor_vsr_sampler_" + name }
	return dashboard.NewDashboardBuilder("otelcol-vsr collectors").
		Uid("otelcol-vsr-collector").
		Tags([]string{"otelcol-vsr"}).
		Description("The collectors' own telemetry (port 8888): vsr_sampler decisions and memory, vsr_attributes issues, receiver refusals, memory_limiter and exporters.").
		Time("now-1h", "now").
		Refresh("30s").
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		WithVariable(datasourceVariable()).
		WithRow(dashboard.NewRowBuilder("vsr_sampler decisions")).
		WithPanel(series("Traces decided per second by reason and decision", "short", "keep-always reasons (error, blocked, slow), rules, dynamic and default rates.",
			query("sum by (reason, decision) ("+rate(sampler("traces_decided"))+")", "{{decision}} {{reason}}"))).
		WithPanel(series("Traces decided per second by trigger", "short", "What made each decision happen: the root, the grace period, a timeout, a limit, memory pressure, shutdown.",
			query("sum by (trigger) ("+rate(sampler("traces_decided"))+")", "{{trigger}}"))).
		WithPanel(series("Decision latency p99 by trigger", "ms", "From the root's arrival to the decision.",
			query(quantile("0.99", sampler("decision_latency"), "trigger"), "{{trigger}}"))).
		WithPanel(series("Late spans per second by outcome", "short", "Spans after their trace's decision: kept, dropped, or rescued by an error or block.",
			query("sum by (outcome) ("+rate(sampler("late_spans"))+")", "{{outcome}}"))).
		WithRow(dashboard.NewRowBuilder("vsr_sampler memory")).
		WithPanel(series("Buffered bytes against the budget", "bytes", "What counts against max_buffer_bytes, and the budget itself.",
			query("sum by (instance) ("+sampler("buffered_bytes")+")", "buffered {{instance}}"),
			query("sum by (instance) ("+sampler("buffer_limit")+")", "max_buffer_bytes {{instance}}"))).
		WithPanel(series("Memory by part", "bytes", "Parked spans, trace bookkeeping, kept spans held for redelivery, decision caches.",
			query("sum by (part) ("+sampler("memory_bytes")+")", "{{part}}"))).
		WithPanel(series("Spill on disk and its failures", "bytes", "Parked spans moved to spill.directory; failures mean traces were decided early instead.",
			query("sum by (instance) ("+sampler("spill_bytes")+")", "on disk {{instance}}"),
			query("sum("+rate(sampler("spill_failures"))+") or vector(0)", "failures per second"))).
		WithPanel(series("Traces in flight", "short", "Traces buffered awaiting their decision or close.",
			query("sum by (instance) ("+sampler("buffered_traces")+")", "{{instance}}"))).
		WithRow(dashboard.NewRowBuilder("vsr_attributes")).
		WithPanel(series("Normalization issues per second by kind", "short", "What the normaliser fixed, converted, redacted or rejected.",
			query("sum by (issue) ("+rate("otelcol_processor_vsr_attributes_issues")+")", "{{issue}}"))).
		WithPanel(series("Router traces per second by era", "short", "Router span layouts seen, A to D: a rolling upgrade shows two at once.",
			query("sum by (era) ("+rate("otelcol_processor_vsr_attributes_traces")+")", "{{era}}"))).
		WithRow(dashboard.NewRowBuilder("Intake and export")).
		WithPanel(series("Spans refused per second", "short", "Spans refused to senders: by the receiver (memory_limiter, block_on_overflow), by the memory limiter itself.",
			query("sum("+rate("otelcol_receiver_refused_spans")+") or vector(0)", "receiver"),
			query("sum("+rate("otelcol_processor_memory_limiter_refused_spans")+") or vector(0)", "memory_limiter"))).
		WithPanel(series("Kept spans redelivered and lost", "short", "Spans the next component refused at first and vsr_sampler delivered on a retry, and those it could not deliver (release_failures): zero, or a problem.",
			query("sum("+rate(sampler("redelivered_spans"))+") or vector(0)", "redelivered"),
			query("sum("+rate(sampler("release_failures"))+") or vector(0)", "lost"))).
		WithPanel(series("Exporter queue fill", "percentunit", "Sending queue size over capacity, per exporter: a backend outage fills it.",
			query("max by (exporter) (otelcol_exporter_queue_size / otelcol_exporter_queue_capacity)", "{{exporter}}"))).
		WithPanel(series("Exporter spans sent and failed per second", "short", "Per exporter.",
			query("sum by (exporter) ("+rate("otelcol_exporter_sent_spans")+")", "sent {{exporter}}"),
			query("sum by (exporter) ("+rate("otelcol_exporter_send_failed_spans")+") or vector(0)", "failed {{exporter}}")))
}
