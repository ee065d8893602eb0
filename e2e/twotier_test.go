//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"

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

// twoTierLayouts are the agent and gateway configs distro/ ships: raw, and rendered by the
// chart from values-agent.yaml and values-gateway.yaml.
var twoTierLayouts = []struct{ name, agents, gateways string }{
	{"k8s/gateway.yaml", "k8s/gateway.yaml", "k8s/gateway.yaml"},
	{"helm", "helm/values-agent.yaml", "helm/values-gateway.yaml"},
}

// Two agents, one per node, route by trace ID to two gateways that sample. Mid-load, one
// gateway is stopped with SIGTERM and started again, as a rolling update does: the agents'
// queues hold its traces meanwhile and the restarted gateway follows the decisions the stopped
// one saved. Each trace is decided by exactly one gateway, once, and every error and blocked
// trace arrives whole.
func TestTwoTier(t *testing.T) {
	for _, layout := range twoTierLayouts {
		t.Run(layout.name, func(t *testing.T) {
			j := startJaeger(t)
			gateways := []*collector{
				startShipped(t, "gateway-1", layout.gateways, "StatefulSet", nil, "VSR_TRACES_ENDPOINT="+j.endpoint()),
				startShipped(t, "gateway-2", layout.gateways, "StatefulSet", nil, "VSR_TRACES_ENDPOINT="+j.endpoint()),
			}
			route := []string{gateways[0].endpoint(), gateways[1].endpoint()}
			agents := []*collector{
				startShipped(t, "agent-1", layout.agents, "DaemonSet", route),
				startShipped(t, "agent-2", layout.agents, "DaemonSet", route),
			}
			var send byNode
			for _, a := range agents {
				s, err := loadgen.NewGRPCSender(a.endpoint())
				require.NoError(t, err)
				defer s.Close()
				send.agents = append(send.agents, s)
			}
			cfg := traffic(150, 30*time.Second, 5)
			done := make(chan []loadgen.Entry, 1)
			var stats loadgen.Stats
			go func() {
				var manifest []loadgen.Entry
				stats, manifest = loadgen.Run(withTimeout(t, 5*time.Minute), cfg, retrying(send))
				done <- manifest
			}()

			time.Sleep(10 * time.Second)
			before := gateways[0].metric(t, "otelcol_processor_vsr_sampler_traces_decided")
			gateways[0].stop(t, time.Minute)
			rolled := shutdownDecisions(t, gateways[0])
			time.Sleep(5 * time.Second)
			gateways[0].restart(t, "gateway-1b")
			manifest := <-done
			require.Zero(t, stats.FailedSpans)
			for _, c := range append(agents, gateways...) {
				c.settle(t, 2*time.Minute)
			}

			v := verify(t, j, manifest, inOrder)
			v.requireNoLoss(t)
			decided := []float64{rolled, gateways[0].metric(t, "otelcol_processor_vsr_sampler_traces_decided"),
				gateways[1].metric(t, "otelcol_processor_vsr_sampler_traces_decided")}
			total := decided[0] + decided[1] + decided[2]
			assert.Equal(t, float64(len(manifest)), total, "each trace decided once, by one gateway")
			assert.GreaterOrEqual(t, rolled, before, "the stopped gateway's count includes what it decided at shutdown")
			for _, n := range []float64{decided[0] + decided[1], decided[2]} {
				assert.Greater(t, n, 0.25*total, "both gateways share the traces")
			}
			report(v.row("two-tier, gateway rolled: "+layout.name, gateways[1].peakRSSMiB(), fmt.Sprintf(
				"2 agents (one per node; model calls cross nodes) → load_balancing by trace ID → 2 gateways; gateway 1 stopped (SIGTERM) and restarted mid-load: %.0f + %.0f decided by its two processes, %.0f by gateway 2 = %.0f of %d traces",
				decided[0], decided[1], decided[2], total, len(manifest))))
		})
	}
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
