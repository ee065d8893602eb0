//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/otelcol-vsr/otelcol-vsr/distro/shipped"
)

// timeScale shrinks the shipped alerts' durations for the test: `for: 5m` becomes 10 s, a
// [2m] window 4 s. Prometheus scrapes and evaluates every second, so the expressions see the
// same shape of data they see in production, thirty times faster.
const timeScale = 30

var promDuration = regexp.MustCompile(`(\[|offset )(\d+)([smh])`)

// scaledAlerts is the rule file of distro/k8s/monitoring.yaml with every duration divided by
// timeScale.
func scaledAlerts(t *testing.T) []byte {
	objs, err := shipped.Manifest(repoRoot, "monitoring.yaml")
	require.NoError(t, err)
	scale := func(n int, unit string) string {
		d, err := time.ParseDuration(strconv.Itoa(n) + unit)
		require.NoError(t, err)
		return fmt.Sprintf("%ds", max(1, int(d.Seconds())/timeScale))
	}
	for _, o := range objs {
		r, ok := o.(*monitoringv1.PrometheusRule)
		if !ok {
			continue
		}
		for gi := range r.Spec.Groups {
			for ri := range r.Spec.Groups[gi].Rules {
				rule := &r.Spec.Groups[gi].Rules[ri]
				if rule.For != nil {
					m := regexp.MustCompile(`^(\d+)([smh])$`).FindStringSubmatch(string(*rule.For))
					require.NotNil(t, m, "%s: for %s", rule.Alert, *rule.For)
					n, _ := strconv.Atoi(m[1])
					d := monitoringv1.Duration(scale(n, m[2]))
					rule.For = &d
				}
				expr := promDuration.ReplaceAllStringFunc(rule.Expr.String(), func(s string) string {
					m := promDuration.FindStringSubmatch(s)
					n, _ := strconv.Atoi(m[2])
					return m[1] + scale(n, m[3])
				})
				rule.Expr.StrVal = expr
			}
		}
		rules, err := yaml.Marshal(map[string]any{"groups": r.Spec.Groups})
		require.NoError(t, err)
		return rules
	}
	t.Fatal("monitoring.yaml has no PrometheusRule")
	return nil
}

// waitFiring polls Prometheus until an alert fires, and fails the test if it does not in time.
func (p *promServer) waitFiring(t *testing.T, alert string, within time.Duration) time.Duration {
	start := time.Now()
	for time.Since(start) < within {
		if r, ok := p.rules(t)[alert]; ok && r.State == "firing" {
			return time.Since(start)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s did not fire within %v: %+v", alert, within, p.rules(t)[alert])
	return 0
}

func (p *promServer) state(t *testing.T, alert string) string { return p.rules(t)[alert].State }

// The shipped alerts fire in a real Prometheus that scrapes real collectors, on a time scale
// 30 times faster than production (scaledAlerts).
//
// Defect: OtelcolVsrBackendUnreachable read "rate(sent_spans) == 0", which has no series for an
// exporter that never sent anything (a wrong endpoint or TLS setting on day one), so it never
// fired there. It fires when the backend is unreachable from the first span on, and when it
// goes away later. Gap: no alert for a collector that is down; OtelcolVsrCollectorDown fires
// when a scraped collector stops, and the kube-state-metrics alerts when a DaemonSet or the
// gateways' StatefulSet has pods that are not ready.
func TestAlertsFire(t *testing.T) {
	rules := scaledAlerts(t)

	t.Run("backend unreachable from the first span, then the collector down", func(t *testing.T) {
		dead := freePort(t) // nothing listens
		c := startCollector(t, "collector", filepath.Join(repoRoot, "collector-config.yaml"),
			"VSR_EXPORTERS=[otlp_grpc/backend]", fmt.Sprintf("VSR_TRACES_ENDPOINT=127.0.0.1:%d", dead))
		prom := startPrometheusWithRules(t, rules, fmt.Sprintf("127.0.0.1:%d", c.metrics))
		wait := sendInBackground(t, traffic(50, 40*time.Second, 11), c.endpoint())
		took := prom.waitFiring(t, "OtelcolVsrBackendUnreachable", 2*time.Minute)
		assert.Empty(t, prom.query(t, `otelcol_exporter_sent_spans{exporter="otlp_grpc/backend"}`), "the exporter never sent a span")
		assert.NotEmpty(t, prom.query(t, `otelcol_exporter_queue_size{exporter="otlp_grpc/backend"} > 0`))
		wait()
		assert.NotEqual(t, "firing", prom.state(t, "OtelcolVsrCollectorDown"))
		c.kill() // as a crash: the target stays, nothing answers
		downFor := prom.waitFiring(t, "OtelcolVsrCollectorDown", time.Minute)
		report(fmt.Sprintf("| alerts: backend unreachable from the start | | | | | | | OtelcolVsrBackendUnreachable fired %.0f s after the first span (for: 5m scaled to 10 s) with no sent_spans series; OtelcolVsrCollectorDown fired %.0f s after the collector died (10 s scaled) |",
			took.Seconds(), downFor.Seconds()))
	})

	t.Run("backend goes away later", func(t *testing.T) {
		j := startJaeger(t)
		c := startCollector(t, "collector", filepath.Join(repoRoot, "collector-config.yaml"), backend(j)...)
		prom := startPrometheusWithRules(t, rules, fmt.Sprintf("127.0.0.1:%d", c.metrics))
		wait := sendInBackground(t, traffic(50, 50*time.Second, 12), c.endpoint())
		deadline := time.Now().Add(time.Minute)
		for len(prom.query(t, `otelcol_exporter_sent_spans{exporter="otlp_grpc/backend"} > 0`)) == 0 {
			require.True(t, time.Now().Before(deadline), "the collector sends to Jaeger")
			time.Sleep(500 * time.Millisecond)
		}
		time.Sleep(15 * time.Second) // longer than the alert's scaled for and window
		assert.Equal(t, "inactive", prom.state(t, "OtelcolVsrBackendUnreachable"), "silent while the backend takes spans")
		j.kill()
		took := prom.waitFiring(t, "OtelcolVsrBackendUnreachable", 2*time.Minute)
		wait()
		report(fmt.Sprintf("| alerts: backend goes away | | | | | | | OtelcolVsrBackendUnreachable inactive while Jaeger took spans, fired %.0f s after Jaeger died (2m window and 5m for, scaled to 4 s and 10 s) |", took.Seconds()))
	})

	t.Run("pods not ready, from kube-state-metrics", func(t *testing.T) {
		// kube-state-metrics' own series for the shipped workloads: a node collector and an
		// agent unavailable, a gateway not ready; the healthy gateway StatefulSet of another
		// namespace must not alert.
		ksm := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		l, err := net.Listen("tcp", ksm)
		require.NoError(t, err)
		srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprint(w, `# TYPE kube_daemonset_status_number_unavailable gauge
kube_daemonset_status_number_unavailable{namespace="observability",daemonset="otelcol-vsr"} 1
kube_daemonset_status_number_unavailable{namespace="observability",daemonset="otelcol-vsr-agent"} 2
kube_daemonset_status_number_unavailable{namespace="observability",daemonset="unrelated"} 3
# TYPE kube_statefulset_replicas gauge
kube_statefulset_replicas{namespace="observability",statefulset="otelcol-vsr-gateway"} 2
kube_statefulset_replicas{namespace="staging",statefulset="otelcol-vsr-gateway"} 2
# TYPE kube_statefulset_status_replicas_ready gauge
kube_statefulset_status_replicas_ready{namespace="observability",statefulset="otelcol-vsr-gateway"} 1
kube_statefulset_status_replicas_ready{namespace="staging",statefulset="otelcol-vsr-gateway"} 2
`)
		})}
		go func() { _ = srv.Serve(l) }()
		t.Cleanup(func() { srv.Close() })
		prom := startPrometheusJobs(t, rules, map[string][]string{"kube-state-metrics": {ksm}})
		prom.waitFiring(t, "OtelcolVsrNodeCollectorsUnavailable", time.Minute)
		prom.waitFiring(t, "OtelcolVsrGatewaysUnavailable", time.Minute)
		var daemonsets, namespaces []string
		for _, a := range prom.query(t, `ALERTS{alertstate="firing", alertname="OtelcolVsrNodeCollectorsUnavailable"}`) {
			daemonsets = append(daemonsets, a.Metric["daemonset"])
		}
		for _, a := range prom.query(t, `ALERTS{alertstate="firing", alertname="OtelcolVsrGatewaysUnavailable"}`) {
			namespaces = append(namespaces, a.Metric["namespace"])
		}
		assert.ElementsMatch(t, []string{"otelcol-vsr", "otelcol-vsr-agent"}, daemonsets)
		assert.Equal(t, []string{"observability"}, namespaces)
		for name, r := range prom.rules(t) {
			assert.Equal(t, "ok", r.Health, "%s: %s", name, r.LastError)
		}
	})
}
