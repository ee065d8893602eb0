//go:build e2e

package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.yaml.in/yaml/v3"

	"github.com/otelcol-vsr/otelcol-vsr/internal/loadgen"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
)

// byNode sends each pod's exports to the agent on its node, as a DaemonSet's hostPort does.
// Router pods ending in -0 and model server pods ending in -1 share node 0, the rest node 1: a
// request whose model call runs on the other node crosses agents.
type byNode struct{ agents []loadgen.Sender }

func (b byNode) Send(ctx context.Context, td ptrace.Traces) error {
	id, _ := td.ResourceSpans().At(0).Resource().Attributes().Get("service.instance.id")
	pod := id.Str()
	node := int(pod[len(pod)-1] - '0')
	if strings.HasPrefix(pod, routersim.ModelServerService) {
		node++
	}
	return b.agents[node%len(b.agents)].Send(ctx, td)
}

// twoTierLayout is a pair of agent and gateway configs distro/ ships.
type twoTierLayout struct {
	name, agents, gateways string
	tls                    bool // the agents verify the gateways' certificate
}

// twoTierLayouts: raw, and rendered by the chart with TLS between the tiers (values-*-tls.yaml;
// the chart without TLS ships the raw config, TestChartAndManifestsShipOneConfig).
var twoTierLayouts = []twoTierLayout{
	{"k8s/gateway.yaml", "k8s/gateway.yaml", "k8s/gateway.yaml", false},
	{"helm with TLS", "helm/values-agent.yaml+values-agent-tls.yaml", "helm/values-gateway.yaml+values-gateway-tls.yaml", true},
}

// twoTier is two gateways and two agents (one per node) in a cluster, exporting to Jaeger.
type twoTier struct {
	j        *jaeger
	cl       *cluster
	gateways []*collector
	agents   []*collector
	send     byNode
}

// gatewayTLSDir is where the gateway-tls Secret (values-gateway-tls.yaml) and the gateway-ca
// Secret (values-agent-tls.yaml) are mounted.
const gatewayTLSDir = "/etc/otelcol-vsr/gateway-tls"

// startTwoTier starts the layout's two tiers. agentConfig, if not nil, edits the agents'
// config first (for the measured alternatives).
func startTwoTier(t *testing.T, layout twoTierLayout, agentConfig func(map[string]any)) *twoTier {
	tt := &twoTier{j: startJaeger(t), cl: newCluster(t)}
	var gatewayMounts, agentMounts map[string]string
	if layout.tls {
		gatewayDir, agentDir := gatewayCertificates(t)
		gatewayMounts, agentMounts = map[string]string{gatewayTLSDir: gatewayDir}, map[string]string{gatewayTLSDir: agentDir}
	}
	for range 2 {
		tt.gateways = append(tt.gateways, tt.cl.startGateway(t, layout.gateways, gatewayMounts, "VSR_TRACES_ENDPOINT="+tt.j.endpoint()))
	}
	for i := range 2 {
		a := newShipped(t, layout.agents, "DaemonSet", agentMounts, tt.cl.agentEnv()...)
		if agentConfig != nil {
			editConfig(t, a, agentConfig)
		}
		a.start(t, fmt.Sprintf("agent-%d", i))
		tt.agents = append(tt.agents, a)
		s, err := loadgen.NewGRPCSender(a.endpoint())
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		tt.send.agents = append(tt.send.agents, s)
	}
	return tt
}

// editConfig changes a shipped collector's config as an operator would edit its ConfigMap.
func editConfig(t *testing.T, c *collector, edit func(map[string]any)) {
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal(c.workload, &cfg))
	edit(cfg)
	var err error
	c.workload, err = yaml.Marshal(cfg)
	require.NoError(t, err)
	c.place(t)
}

// load sends the router traffic in the background; wait returns its manifest.
func (tt *twoTier) load(t *testing.T, d time.Duration, seed uint64) (wait func() []loadgen.Entry) {
	done := make(chan []loadgen.Entry, 1)
	go func() {
		stats, manifest := loadgen.Run(withTimeout(t, 5*time.Minute), traffic(150, d, seed), retrying(tt.send))
		if stats.FailedSpans != 0 {
			t.Errorf("the sender gave up on %d spans", stats.FailedSpans)
		}
		done <- manifest
	}()
	return func() []loadgen.Entry { return <-done }
}

func (tt *twoTier) settle(t *testing.T) {
	for _, c := range append(tt.agents, tt.gateways...) {
		if c.running() {
			c.settle(t, 3*time.Minute)
		}
	}
}

// decided is how many traces each running gateway has decided.
func (tt *twoTier) decided(t *testing.T) []float64 {
	var n []float64
	for _, g := range tt.gateways {
		if g.running() {
			n = append(n, g.metric(t, "otelcol_processor_vsr_sampler_traces_decided"))
		}
	}
	return n
}

func sum(xs ...float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s
}

// Two agents, one per node, route by trace ID to two gateways that sample. Mid-load, gateway 0
// is replaced as a rolling update does: terminated (SIGTERM), gone, and back 2 s later as a new
// pod with a new IP on the same claim. The agents name it by its stable DNS name, so its traces
// keep their place in the ring: the agents hold them while it is away and deliver them to its
// replacement, which follows the decisions the first process saved. Each trace is decided
// exactly once, by one gateway, and every error and blocked trace arrives whole.
func TestTwoTier(t *testing.T) {
	for _, layout := range twoTierLayouts {
		t.Run(layout.name, func(t *testing.T) {
			tt := startTwoTier(t, layout, nil)
			wait := tt.load(t, 30*time.Second, 5)
			time.Sleep(10 * time.Second)
			before := tt.gateways[0].metric(t, "otelcol_processor_vsr_sampler_traces_decided")
			oldAddress, oldIP := tt.gateways[0].endpoint(), tt.cl.ip(0)
			rollStart := time.Now()
			rolled, newIP := tt.cl.replace(t, 0, 2*time.Second)
			away := time.Since(rollStart)
			require.NotEqual(t, oldAddress, tt.gateways[0].endpoint(), "the replacement listens at a new address")
			require.NotEqual(t, oldIP, newIP)
			manifest := wait()
			tt.settle(t)

			v := verify(t, tt.j, manifest, inOrder)
			v.requireNoLoss(t)
			decided := append([]float64{rolled}, tt.decided(t)...)
			total := sum(decided...)
			assert.Equal(t, float64(len(manifest)), total, "each trace decided once, by one gateway")
			assert.GreaterOrEqual(t, rolled, before, "the stopped gateway's count includes what it decided at shutdown")
			for _, n := range []float64{decided[0] + decided[1], decided[2]} {
				assert.Greater(t, n, 0.25*total, "both gateways share the traces")
			}
			assert.Positive(t, tt.cl.connections(oldIP), "the agents reached gateway 0 by its name")
			assert.Positive(t, tt.cl.connections(newIP), "and its replacement by the same name, at its new IP")
			report(v.row("two-tier, gateway rolled: "+layout.name, tt.gateways[1].peakRSSMiB(), fmt.Sprintf(
				"2 agents (one per node; model calls cross nodes) → load_balancing by trace ID to the gateways' stable names → 2 gateways; gateway 0 replaced mid-load (SIGTERM, gone, back 2 s later on a new IP; away %.1f s): %.0f + %.0f decided by its two processes, %.0f by gateway 1 = %.0f of %d traces",
				away.Seconds(), decided[0], decided[1], decided[2], total, len(manifest))))
		})
	}
}

// The CPU the collectors use per span they take in, for the README's sizing: a node collector,
// and the two tiers' agents and gateways, each measured over the steady part of a run at 1000
// traces/s (about 7 000 spans/s), where the cost per span, not the collector's idle work,
// dominates.
func TestCPUPerSpan(t *testing.T) {
	measuring(t)
	const rate, warmup, window = 1000, 5 * time.Second, 15 * time.Second
	type group struct {
		name string
		cs   []*collector
	}
	measure := func(t *testing.T, send loadgen.Sender, groups []group) (perSpan, cores []float64, spansPerSecond float64, manifest []loadgen.Entry) {
		done := make(chan []loadgen.Entry, 1)
		go func() {
			_, m := loadgen.Run(withTimeout(t, 5*time.Minute), traffic(rate, warmup+window+5*time.Second, 10), retrying(send))
			done <- m
		}()
		read := func(cs []*collector) (cpu, spans float64) {
			for _, c := range cs {
				cpu += c.cpuSeconds()
				spans += c.metric(t, "otelcol_receiver_accepted_spans")
			}
			return cpu, spans
		}
		time.Sleep(warmup)
		cpu0, spans0 := make([]float64, len(groups)), make([]float64, len(groups))
		for i, g := range groups {
			cpu0[i], spans0[i] = read(g.cs)
		}
		start := time.Now()
		time.Sleep(window)
		elapsed := time.Since(start).Seconds()
		for i, g := range groups {
			cpu1, spans1 := read(g.cs)
			require.Positive(t, spans1-spans0[i], g.name)
			perSpan = append(perSpan, 1e6*(cpu1-cpu0[i])/(spans1-spans0[i]))
			cores = append(cores, (cpu1-cpu0[i])/elapsed)
			if i == 0 {
				spansPerSecond = (spans1 - spans0[i]) / elapsed
			}
		}
		return perSpan, cores, spansPerSecond, <-done
	}

	t.Run("node collector", func(t *testing.T) {
		j := startJaeger(t)
		c := startShipped(t, "collector", "k8s/daemonset.yaml", "DaemonSet", "VSR_TRACES_ENDPOINT="+j.endpoint())
		perSpan, cores, rate, manifest := measure(t, routerSender(t, c.endpoint()), []group{{"node collector", []*collector{c}}})
		c.settle(t, 3*time.Minute)
		v := verify(t, j, manifest, inOrder)
		v.requireNoLoss(t)
		report(v.row("CPU per span: node collector, 1000 traces/s", c.peakRSSMiB(), fmt.Sprintf(
			"k8s/daemonset.yaml, over %.0f s of steady load at %.0f spans/s in: %.1f CPU µs per span (%.2f cores)", window.Seconds(), rate, perSpan[0], cores[0])))
	})
	t.Run("two tiers", func(t *testing.T) {
		tt := startTwoTier(t, twoTierLayouts[0], nil)
		perSpan, cores, rate, manifest := measure(t, tt.send, []group{{"agents", tt.agents}, {"gateways", tt.gateways}})
		tt.settle(t)
		v := verify(t, tt.j, manifest, inOrder)
		v.requireNoLoss(t)
		report(v.row("CPU per span: two tiers, 1000 traces/s", tt.gateways[0].peakRSSMiB(), fmt.Sprintf(
			"k8s/gateway.yaml, over %.0f s of steady load at %.0f spans/s in (2 of each): agents %.1f CPU µs per span (%.2f cores), gateways %.1f CPU µs per span (%.2f cores)",
			window.Seconds(), rate, perSpan[0], cores[0], perSpan[1], cores[1])))
	})
}

// Gateway 1 is away for 40 s, longer than the agents' per-gateway retries (30 s), as when its
// replacement waits for its volume on another node. Its traces wait in the agents' queues on
// disk. Measured here is what that costs gateway 0: the agents send a batch to each gateway it
// names in turn and retry it whole, so gateway 0's spans wait behind gateway 1 too. The
// gateways keep a dropped trace rescuable for 60 s (rescue_window), so a trace whose error
// reaches gateway 0 that late is still kept whole: nothing is lost.
func TestTwoTierGatewayOutage(t *testing.T) {
	tt := startTwoTier(t, twoTierLayouts[0], nil)
	wait := tt.load(t, 70*time.Second, 8)
	time.Sleep(10 * time.Second)
	const window = 5 * time.Second
	accepted := func() float64 { return tt.gateways[0].metric(t, "otelcol_receiver_accepted_spans") }
	a0 := accepted()
	time.Sleep(window)
	rateBefore := (accepted() - a0) / window.Seconds()

	var mu sync.Mutex
	var during []float64 // gateway 0's spans per second, each second of the outage
	var queuePeak float64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		last := accepted()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
			}
			now := accepted()
			q := sum(tt.agents[0].metric(t, "otelcol_exporter_queue_size"), tt.agents[1].metric(t, "otelcol_exporter_queue_size"))
			mu.Lock()
			during = append(during, now-last)
			queuePeak = max(queuePeak, q)
			mu.Unlock()
			last = now
		}
	}()
	outageStart := time.Now()
	rolled, _ := tt.cl.replace(t, 1, 40*time.Second)
	away := time.Since(outageStart)
	backAt := time.Now()
	for time.Since(backAt) < 2*time.Minute && sum(tt.agents[0].metric(t, "otelcol_exporter_queue_size"), tt.agents[1].metric(t, "otelcol_exporter_queue_size")) > 0 {
		time.Sleep(200 * time.Millisecond)
	}
	drained := time.Since(backAt)
	close(stop)
	<-sampled
	var queueBytes int64 // the agents' queue files, which grew to hold the peak
	for _, a := range tt.agents {
		require.NoError(t, filepath.WalkDir(a.storage, func(_ string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				info, err := d.Info()
				if err == nil {
					queueBytes += info.Size()
				}
			}
			return err
		}))
	}
	manifest := wait()
	tt.settle(t)

	v := verify(t, tt.j, manifest, inOrder)
	decided := append([]float64{rolled}, tt.decided(t)...)
	total := sum(decided...)
	assert.Equal(t, float64(len(manifest)), total, "each trace decided once, by one gateway")
	v.requireNoLoss(t)
	mu.Lock()
	slow := 0
	for _, n := range during[:min(len(during), int(away.Seconds()))] {
		if n < rateBefore/2 {
			slow++
		}
	}
	mu.Unlock()
	report(v.row("two-tier, gateway away 40 s", tt.gateways[0].peakRSSMiB(), fmt.Sprintf(
		"gateway 1 away %.0f s: gateway 0 took %.0f spans/s before, under half that in %d of those seconds; agents' queues peaked at %.0f spans (queue files %.1f MiB, %.0f B per span at the peak) and drained %.1f s after its return; %.0f of %d traces decided",
		away.Seconds(), rateBefore, slow, queuePeak, float64(queueBytes)/(1<<20), float64(queueBytes)/queuePeak, drained.Seconds(), total, len(manifest))))
}

// The gateways are scaled from two to one as the README says: the agents' list loses the last
// gateway's name and the agents roll one at a time (its traces move to gateway 0: traces in
// flight at that moment can be decided in two parts), the last gateway decides what it holds
// and empties its queue, then the StatefulSet scales down.
func TestTwoTierScaleDown(t *testing.T) {
	tt := startTwoTier(t, twoTierLayouts[0], nil)
	wait := tt.load(t, 40*time.Second, 9)
	time.Sleep(10 * time.Second)
	for i, a := range tt.agents {
		a.stop(t, time.Minute)
		editConfig(t, a, func(cfg map[string]any) {
			hostnames := at(cfg, "exporters", "load_balancing", "resolver", "static", "hostnames").([]any)
			at(cfg, "exporters", "load_balancing", "resolver", "static").(map[string]any)["hostnames"] = hostnames[:1]
		})
		a.restart(t, fmt.Sprintf("agent-%d-b", i))
		time.Sleep(5 * time.Second)
	}
	tt.gateways[1].settle(t, 2*time.Minute)
	removed := tt.cl.remove(t)
	handedOver := regexp.MustCompile(`"spans_handed_over": (\d+)`).FindStringSubmatch(tt.gateways[1].logText())
	require.NotNil(t, handedOver)
	assert.Equal(t, "0", handedOver[1], "settled first, the removed gateway leaves nothing on its claim")
	manifest := wait()
	tt.settle(t)

	v := verify(t, tt.j, manifest, inOrder)
	total := removed + tt.gateways[0].metric(t, "otelcol_processor_vsr_sampler_traces_decided")
	twice := total - float64(len(manifest))
	assert.GreaterOrEqual(t, twice, 0.0, "every trace decided")
	assert.LessOrEqual(t, float64(v.mustKeep-v.mustKeepWhole), twice, "only traces decided in two parts can be incomplete")
	assert.Empty(t, v.leaks)
	report(v.row("two-tier, scaled 2 → 1", tt.gateways[0].peakRSSMiB(), fmt.Sprintf(
		"agents' list cut to gateway 0 and agents rolled mid-load, then gateway 1 settled and removed: %.0f traces decided in two parts; %d of %d must-keep whole",
		twice, v.mustKeepWhole, v.mustKeep)))
}

// The k8s resolver, as the agents used it before: measured under the same roll as TestTwoTier,
// with the ring holding pod IPs (the default) or pod hostnames (return_hostnames). It reads no
// EndpointSlice condition: a terminating gateway stays in the ring until its pod is deleted,
// then the ring shrinks until the replacement gets an IP. Traces in flight then are decided in
// parts by two gateways; with IPs, the replacement's new positions also move traces of the
// gateway that stayed. This is why the agents name the gateways statically.
func TestGatewayRollWithK8sResolver(t *testing.T) {
	measuring(t)
	for _, hostnames := range []bool{false, true} {
		t.Run("return_hostnames="+strconv.FormatBool(hostnames), func(t *testing.T) {
			tt := startTwoTier(t, twoTierLayouts[0], func(cfg map[string]any) {
				at(cfg, "exporters", "load_balancing").(map[string]any)["resolver"] = map[string]any{
					"k8s": map[string]any{"service": gatewayService + ".observability", "ports": []int{gatewayPort}, "return_hostnames": hostnames}}
			})
			wait := tt.load(t, 30*time.Second, 5)
			time.Sleep(10 * time.Second)
			rolled, _ := tt.cl.replace(t, 0, 2*time.Second)
			manifest := wait()
			tt.settle(t)

			v := verify(t, tt.j, manifest, inOrder)
			total := rolled + sum(tt.decided(t)...)
			twice := total - float64(len(manifest))
			assert.Positive(t, twice, "the k8s resolver splits traces in flight at a roll (if not, revisit the static names)")
			report(v.row("k8s resolver, return_hostnames="+strconv.FormatBool(hostnames)+", gateway rolled", tt.gateways[1].peakRSSMiB(), fmt.Sprintf(
				"as two-tier rolled, resolver k8s against a fake API server: %.0f traces decided in two parts; %d of %d must-keep whole",
				twice, v.mustKeepWhole, v.mustKeep)))
		})
	}
}

// at follows a path of keys through a config.
func at(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// shutdownDecisions is how many traces a stopped collector's vsr_sampler decided in its run,
// from its last log line: the counters a scrape reads die with the process, after its last
// decisions.
func shutdownDecisions(t *testing.T, c *collector) float64 {
	m := regexp.MustCompile(`vsr_sampler stopped.*"traces_decided": (\d+)`).FindStringSubmatch(c.logText())
	require.NotNil(t, m, "%s logged its decisions at shutdown", c.name)
	n, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	return n
}

// gatewayCertificates writes what the gateway-tls Secret holds (a key pair for
// *.otelcol-vsr-gateway, the names the agents dial) and what the gateway-ca Secret holds (the CA
// alone), each in its own directory.
func gatewayCertificates(t *testing.T) (gatewayDir, agentDir string) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "otelcol-vsr e2e CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: gatewayService},
		DNSNames:  []string{"*." + gatewayService, "*." + gatewayService + ".observability.svc", "*." + gatewayService + ".observability.svc.cluster.local"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	write := func(dir, name, typ string, der []byte) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
	}
	gatewayDir, agentDir = t.TempDir(), t.TempDir()
	write(gatewayDir, "tls.crt", "CERTIFICATE", leafDER)
	write(gatewayDir, "tls.key", "EC PRIVATE KEY", keyDER)
	write(gatewayDir, "ca.crt", "CERTIFICATE", caDER)
	write(agentDir, "ca.crt", "CERTIFICATE", caDER)
	return gatewayDir, agentDir
}
