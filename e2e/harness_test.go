//go:build e2e

// Package e2e runs the built distribution against a real Jaeger v2 on loopback, with the
// faults operators meet. Run with `make e2e`: it builds the collector and Jaeger first.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/otelcol-vsr/otelcol-vsr/distro/shipped"
	"github.com/otelcol-vsr/otelcol-vsr/internal/ports"
	"github.com/otelcol-vsr/otelcol-vsr/internal/promtext"
)

// repoRoot is where the shipped configs live.
const repoRoot = ".."

func binary(t *testing.T, env, fallback string) string {
	bin := os.Getenv(env)
	if bin == "" {
		bin = fallback
	}
	_, err := os.Stat(bin)
	require.NoError(t, err, "%s: run make e2e, which builds it", env)
	return bin
}

// freePort is a port for a server the test starts later, outside the ephemeral range where
// the test's own outgoing connections take theirs.
func freePort(t *testing.T) int {
	port, err := ports.Free()
	require.NoError(t, err)
	return port
}

// proc is a child process with its output in a log file.
type proc struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
	err    error
}

func startProc(t *testing.T, name, bin string, args, env []string) *proc {
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	require.NoError(t, err)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	require.NoError(t, cmd.Start())
	p := &proc{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.exited)
	}()
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits (bounded) for the process to finish its shutdown.
func (p *proc) stop(t *testing.T, within time.Duration) {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(within):
		p.kill()
		t.Fatalf("%s did not stop within %v (log %s)", p.name, within, p.log)
	}
}

func (p *proc) kill() {
	if p.running() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// peakRSSMiB is the process's high-water resident memory so far.
func (p *proc) peakRSSMiB() float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// cpuSeconds is the CPU time the process has used so far (user and system).
func (p *proc) cpuSeconds() float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses: utime and stime are the 12th
	// and 13th, in clock ticks of 1/100 s.
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100
}

func (p *proc) logText() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

func waitHTTP(t *testing.T, p *proc, u string, within time.Duration) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if !p.running() {
			t.Fatalf("%s exited: %v\n%s", p.name, p.err, p.logText())
		}
		if resp, err := http.Get(u); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s not healthy at %s within %v\n%s", p.name, u, within, p.logText())
}

// jaeger is a Jaeger v2 all-in-one with Badger storage in a fresh directory.
type jaeger struct {
	*proc
	otlp, query, queryGRPC, health int
}

func startJaeger(t *testing.T, ports ...int) *jaeger {
	j := &jaeger{}
	if len(ports) == 4 {
		j.otlp, j.query, j.queryGRPC, j.health = ports[0], ports[1], ports[2], ports[3]
	} else {
		j.otlp, j.query, j.queryGRPC, j.health = freePort(t), freePort(t), freePort(t), freePort(t)
	}
	j.proc = startProc(t, "jaeger", binary(t, "JAEGER_BIN", "../.tools/jaeger-v1.76.0/jaeger"),
		[]string{"--config", filepath.Join("jaeger", "config.yaml")},
		[]string{fmt.Sprintf("JAEGER_OTLP_PORT=%d", j.otlp), fmt.Sprintf("JAEGER_QUERY_PORT=%d", j.query),
			fmt.Sprintf("JAEGER_QUERY_GRPC_PORT=%d", j.queryGRPC), fmt.Sprintf("JAEGER_HEALTH_PORT=%d", j.health),
			"JAEGER_DATA_DIR=" + t.TempDir()})
	waitHTTP(t, j.proc, fmt.Sprintf("http://127.0.0.1:%d/api/services", j.query), time.Minute)
	return j
}

// restart starts a new Jaeger on the same ports with empty storage.
func (j *jaeger) restart(t *testing.T) *jaeger {
	return startJaeger(t, j.otlp, j.query, j.queryGRPC, j.health)
}

func (j *jaeger) endpoint() string { return fmt.Sprintf("127.0.0.1:%d", j.otlp) }

// Jaeger's query API model, as much as the tests read.
type jTrace struct {
	TraceID   string              `json:"traceID"`
	Spans     []jSpan             `json:"spans"`
	Processes map[string]jProcess `json:"processes"`
}

type jSpan struct {
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	ProcessID     string `json:"processID"`
	Tags          []jTag `json:"tags"`
}

type jProcess struct {
	ServiceName string `json:"serviceName"`
	Tags        []jTag `json:"tags"`
}

type jTag struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

func (s jSpan) tag(key string) (any, bool) {
	for _, t := range s.Tags {
		if t.Key == key {
			return t.Value, true
		}
	}
	return nil, false
}

type jResponse struct {
	Data []jTrace `json:"data"`
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// trace fetches one trace; raw is the response body, for leak checks.
func (j *jaeger) trace(t *testing.T, id string) (tr jTrace, raw string, found bool) {
	resp, err := httpClient.Get(fmt.Sprintf("http://127.0.0.1:%d/api/traces/%s", j.query, id))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if resp.StatusCode == http.StatusNotFound {
		return tr, "", false
	}
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	var r jResponse
	require.NoError(t, json.Unmarshal(body, &r))
	if len(r.Data) == 0 {
		return tr, "", false
	}
	require.Len(t, r.Data, 1, "a trace ID maps to one trace")
	return r.Data[0], string(body), true
}

// search returns the IDs of the traces of service with all tags.
func (j *jaeger) search(t *testing.T, service string, tags map[string]string) map[string]bool {
	encoded, err := json.Marshal(tags)
	require.NoError(t, err)
	q := url.Values{"service": {service}, "tags": {string(encoded)}, "limit": {"100000"}, "lookback": {"2h"}}
	resp, err := httpClient.Get(fmt.Sprintf("http://127.0.0.1:%d/api/traces?%s", j.query, q.Encode()))
	require.NoError(t, err)
	defer resp.Body.Close()
	var r jResponse
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
	ids := map[string]bool{}
	for _, tr := range r.Data {
		ids[tr.TraceID] = true
	}
	return ids
}

// collector is a running otelcol-vsr.
type collector struct {
	*proc
	otlp, otlpHTTP, health, metrics, requests int
	storage                                   string
	config                                    string
	env                                       []string
	workload                                  []byte            // a shipped config, as its pod runs it
	mounts                                    map[string]string // for place
}

// newCollector gives a collector of config its own ports and storage; env adds variables.
func newCollector(t *testing.T, config string, env ...string) *collector {
	c := &collector{otlp: freePort(t), otlpHTTP: freePort(t), health: freePort(t), metrics: freePort(t),
		requests: freePort(t), storage: t.TempDir(), config: config}
	c.env = append([]string{
		fmt.Sprintf("VSR_OTLP_GRPC_ENDPOINT=127.0.0.1:%d", c.otlp),
		fmt.Sprintf("VSR_OTLP_HTTP_ENDPOINT=127.0.0.1:%d", c.otlpHTTP),
		fmt.Sprintf("VSR_HEALTH_ENDPOINT=127.0.0.1:%d", c.health),
		fmt.Sprintf("VSR_METRICS_PORT=%d", c.metrics),
		fmt.Sprintf("VSR_REQUEST_METRICS_ENDPOINT=127.0.0.1:%d", c.requests),
		"VSR_STORAGE_DIR=" + c.storage,
		"VSR_SPILL_DIR=" + filepath.Join(c.storage, "spill"),
		"VSR_JOURNAL_DIR=" + filepath.Join(c.storage, "journal"),
		"VSR_HASH_KEY=e2e-hash-key-0123456789",
		// The same ports for the test-only configs under configs/.
		fmt.Sprintf("E2E_OTLP_PORT=%d", c.otlp),
		fmt.Sprintf("E2E_HEALTH_PORT=%d", c.health),
		fmt.Sprintf("E2E_METRICS_PORT=%d", c.metrics),
	}, env...)
	return c
}

// startCollector runs config with the ports and storage of this test. env adds variables.
func startCollector(t *testing.T, name, config string, env ...string) *collector {
	c := newCollector(t, config, env...)
	c.start(t, name)
	return c
}

// startShipped runs the collector config a layout of distro/ ships (shipped.Layouts) for its
// DaemonSet or StatefulSet, as Kubernetes would but on loopback: its listeners on this test's
// ports, its state in this test's storage. Whatever it sends to by name (an agent's gateways)
// it reaches as in the cluster: run those through a cluster (cluster_test.go). env sets what the
// pod's environment holds: VSR_TRACES_ENDPOINT, for one.
func startShipped(t *testing.T, name, layout, kind string, env ...string) *collector {
	c := newShipped(t, layout, kind, nil, env...)
	c.start(t, name)
	return c
}

// newShipped prepares startShipped's collector without starting it; mounts maps directories
// the pod mounts (a Secret's) to local ones.
func newShipped(t *testing.T, layout, kind string, mounts map[string]string, env ...string) *collector {
	objs, err := shipped.Load(binary(t, "HELM_BIN", "../.tools/helm-v3.22.0/helm"), repoRoot, layout)
	require.NoError(t, err)
	workloads, err := shipped.Workloads(objs)
	require.NoError(t, err)
	i := slices.IndexFunc(workloads, func(w shipped.Workload) bool { return w.Kind == kind })
	require.GreaterOrEqual(t, i, 0, "%s runs a %s", layout, kind)
	c := newCollector(t, filepath.Join(t.TempDir(), "config.yaml"), append([]string{
		"VSR_TRACES_INSECURE=true", "VSR_TRACES_CA_FILE=", "MY_POD_IP=127.0.0.1",
		"OTEL_K8S_NODE_NAME=node-1", "OTEL_K8S_NODE_IP=127.0.0.1", "OTEL_K8S_NAMESPACE=" + shipped.Namespace,
		"OTEL_K8S_POD_IP=127.0.0.1",
	}, env...)...)
	c.workload, c.mounts = workloads[i].Config, mounts
	c.place(t)
	return c
}

// place writes a shipped config with its listeners on this collector's ports.
func (c *collector) place(t *testing.T) {
	cfg, err := shipped.Loopback{
		Ports:    map[int]int{4317: c.otlp, 4318: c.otlpHTTP, 13133: c.health, 8888: c.metrics, 8889: c.requests},
		StateDir: c.storage,
		Mounts:   c.mounts,
	}.Rewrite(c.workload)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(c.config, cfg, 0o600))
}

// moveAndRestart starts a shipped collector again as its pod's replacement: the same state (a
// StatefulSet pod's claim), a new address (every listener on a new port).
func (c *collector) moveAndRestart(t *testing.T, name string) {
	c.otlp, c.otlpHTTP, c.health, c.metrics, c.requests = freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)
	c.place(t)
	c.start(t, name)
}

// e2eModelCallWait is vsr_sampler's model_call_wait in every scenario: longer than any of its
// model calls (seconds) and late spans, shorter than the shipped wait (20m35s, the router's
// route timeout), which would hold every era A and C block's root past the scenario's end.
const e2eModelCallWait = 15 * time.Second

func (c *collector) start(t *testing.T, name string) {
	args := []string{"--config", c.config}
	if cfg, err := os.ReadFile(c.config); err == nil && strings.Contains(string(cfg), "vsr_sampler:") {
		args = append(args, "--set=processors::vsr_sampler::model_call_wait="+e2eModelCallWait.String())
	}
	c.proc = startProc(t, name, binary(t, "OTELCOL_VSR_BIN", "../_build/otelcol-vsr"), args, slices.Concat(c.env, []string{"OTEL_K8S_POD_NAME=" + name}))
	waitHTTP(t, c.proc, fmt.Sprintf("http://127.0.0.1:%d/", c.health), time.Minute)
}

// restart starts the same collector again: same ports, same persistent queue.
func (c *collector) restart(t *testing.T, name string) { c.start(t, name) }

func (c *collector) endpoint() string { return fmt.Sprintf("127.0.0.1:%d", c.otlp) }

// metric sums the samples of a Prometheus metric whose labels contain all of match.
func (c *collector) metric(t *testing.T, name string, match ...string) float64 {
	sums, err := promtext.Sums(httpClient, fmt.Sprintf("http://127.0.0.1:%d/metrics", c.metrics), func(n, line string) bool {
		if n != name {
			return false
		}
		for _, m := range match {
			if !strings.Contains(line, m) {
				return false
			}
		}
		return true
	})
	require.NoError(t, err)
	return sums[name]
}

// settle waits (bounded) until the sampler holds nothing, the export queues are empty and no
// export is in flight (a request waiting to retry counts as one).
func (c *collector) settle(t *testing.T, within time.Duration) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if c.metric(t, "otelcol_processor_vsr_sampler_buffered_traces") == 0 &&
			c.metric(t, "otelcol_exporter_queue_size") == 0 &&
			c.metric(t, "otelcol_exporter_in_flight_requests") == 0 {
			time.Sleep(time.Second) // Jaeger's own batch
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s did not settle within %v", c.name, within)
}

// summary collects one row per scenario, printed at the end of the run.
var summary = struct {
	sync.Mutex
	rows []string
}{}

// measuring skips a test that only measures, for the README (the CPU per span for sizing, an
// alternative design's losses), unless VSR_E2E_MEASURE is set: the CI runs the tests that
// check, and stays within its time.
func measuring(t *testing.T) {
	if os.Getenv("VSR_E2E_MEASURE") == "" {
		t.Skip("a measurement: VSR_E2E_MEASURE=1 make e2e runs it")
	}
}

func report(row string) {
	summary.Lock()
	summary.rows = append(summary.rows, row)
	summary.Unlock()
}

func TestMain(m *testing.M) {
	code := m.Run()
	fmt.Println()
	fmt.Println("| scenario | traces sent | kept | must-keep sent | must-keep found whole | spans lost (kept traces) | peak RSS MiB | notes |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, r := range summary.rows {
		fmt.Println(r)
	}
	os.Exit(code)
}

// withTimeout bounds a scenario's load.
func withTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
