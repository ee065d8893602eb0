//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/otelcol-vsr/otelcol-vsr/distro/shipped"
)

// promServer is a Prometheus server scraping the collector on loopback, with exemplar storage.
type promServer struct {
	*proc
	port int
}

func startPrometheus(t *testing.T, targets ...string) *promServer {
	return startPrometheusWithRules(t, nil, targets...)
}

// startPrometheusWithRules also evaluates a rule file.
func startPrometheusWithRules(t *testing.T, rules []byte, targets ...string) *promServer {
	return startPrometheusJobs(t, rules, map[string][]string{"otelcol-vsr": targets})
}

// startPrometheusJobs scrapes each job's targets every second and evaluates a rule file (if
// any) every second.
func startPrometheusJobs(t *testing.T, rules []byte, jobs map[string][]string) *promServer {
	p := &promServer{port: freePort(t)}
	dir := t.TempDir()
	config := `global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
`
	for _, job := range slices.Sorted(maps.Keys(jobs)) {
		quoted := make([]string, len(jobs[job]))
		for i, target := range jobs[job] {
			quoted[i] = strconv.Quote(target)
		}
		config += fmt.Sprintf(`  - job_name: %s
    honor_labels: true
    static_configs:
      - targets: [%s]
`, job, strings.Join(quoted, ", "))
	}
	if rules != nil {
		rulesPath := filepath.Join(dir, "rules.yml")
		require.NoError(t, os.WriteFile(rulesPath, rules, 0o600))
		config += fmt.Sprintf("rule_files: [%q]\n", rulesPath)
	}
	path := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(path, []byte(config), 0o600))
	p.proc = startProc(t, "prometheus", binary(t, "PROMETHEUS_BIN", "../.tools/prometheus-v0.316.0/prometheus"), []string{
		"--config.file=" + path,
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", p.port),
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--enable-feature=exemplar-storage",
	}, nil)
	waitHTTP(t, p.proc, fmt.Sprintf("http://127.0.0.1:%d/-/ready", p.port), time.Minute)
	return p
}

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s promSample) value() float64 {
	v, _ := strconv.ParseFloat(s.Value[1].(string), 64)
	return v
}

// query evaluates a PromQL expression now; a parse error fails the test.
func (p *promServer) query(t *testing.T, expr string) []promSample {
	resp, err := httpClient.Get(fmt.Sprintf("http://127.0.0.1:%d/api/v1/query?%s", p.port, url.Values{"query": {expr}}.Encode()))
	require.NoError(t, err)
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []promSample `json:"result"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", expr, r.Error)
	require.Equal(t, "success", r.Status, "%s: %s", expr, r.Error)
	return r.Data.Result
}

// exemplarTraceIDs returns the trace IDs of the exemplars of a query's series since start.
func (p *promServer) exemplarTraceIDs(t *testing.T, expr string, start time.Time) map[string]bool {
	ids := map[string]bool{}
	for id := range p.exemplars(t, expr, start) {
		ids[id] = true
	}
	return ids
}

// dashboardQueries returns every PromQL expression of a generated dashboard, with Grafana's
// variables set as a viewer's would be.
func dashboardQueries(t *testing.T, path string) []string {
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var doc any
	require.NoError(t, json.Unmarshal(raw, &doc))
	var exprs []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if e, ok := x["expr"].(string); ok {
				exprs = append(exprs, strings.NewReplacer("$__rate_interval", "1m").Replace(e))
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(doc)
	require.NotEmpty(t, exprs, path)
	return exprs
}

// shippedAlerts is the rule file of distro/k8s/monitoring.yaml's PrometheusRule, and the metric
// names its alerts read.
func shippedAlerts(t *testing.T) (rules []byte, metrics []string) {
	objs, err := shipped.Manifest(repoRoot, "monitoring.yaml")
	require.NoError(t, err)
	for _, o := range objs {
		if r, ok := o.(*monitoringv1.PrometheusRule); ok {
			rules, err = yaml.Marshal(map[string]any{"groups": r.Spec.Groups})
			require.NoError(t, err)
			for _, g := range r.Spec.Groups {
				for _, rule := range g.Rules {
					metrics = append(metrics, regexp.MustCompile(`otelcol_\w+`).FindAllString(rule.Expr.String(), -1)...)
				}
			}
		}
	}
	require.NotNil(t, rules, "monitoring.yaml has a PrometheusRule")
	slices.Sort(metrics)
	return rules, slices.Compact(metrics)
}

// promRule is a rule as Prometheus evaluates it.
type promRule struct {
	Name      string `json:"name"`
	Health    string `json:"health"`
	LastError string `json:"lastError"`
	State     string `json:"state"`
}

// rules are the loaded rules, by name.
func (p *promServer) rules(t *testing.T) map[string]promRule {
	resp, err := httpClient.Get(fmt.Sprintf("http://127.0.0.1:%d/api/v1/rules", p.port))
	require.NoError(t, err)
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Groups []struct {
				Rules []promRule `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
	out := map[string]promRule{}
	for _, g := range r.Data.Groups {
		for _, rule := range g.Rules {
			out[rule.Name] = rule
		}
	}
	return out
}
