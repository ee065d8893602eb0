//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/loadgen"
)

// alternating sends each request to the next agent in turn, so one trace's spans reach both
// agents, as when a trace crosses nodes.
type alternating struct {
	senders []loadgen.Sender
	next    atomic.Uint64
}

func (a *alternating) Send(ctx context.Context, td ptrace.Traces) error {
	return a.senders[a.next.Add(1)%uint64(len(a.senders))].Send(ctx, td)
}

// Two agents route by trace ID to two gateways that sample: each trace is decided by exactly
// one gateway and arrives whole.
func TestTwoTier(t *testing.T) {
	j := startJaeger(t)
	gateways := []*collector{
		startCollector(t, "gateway-1", filepath.Join("configs", "gateway.yaml"), backend(j)...),
		startCollector(t, "gateway-2", filepath.Join("configs", "gateway.yaml"), backend(j)...),
	}
	route := []string{fmt.Sprintf("E2E_GATEWAY_1=%d", gateways[0].otlp), fmt.Sprintf("E2E_GATEWAY_2=%d", gateways[1].otlp)}
	agents := []*collector{
		startCollector(t, "agent-1", filepath.Join("configs", "agent.yaml"), route...),
		startCollector(t, "agent-2", filepath.Join("configs", "agent.yaml"), route...),
	}
	send := &alternating{}
	for _, a := range agents {
		s, err := loadgen.NewGRPCSender(a.endpoint())
		require.NoError(t, err)
		defer s.Close()
		send.senders = append(send.senders, s)
	}
	cfg := traffic(150, 15*time.Second, 5)
	cfg.OutOfOrderRate = 0 // the alternation already reorders a little across the agents
	stats, manifest := loadgen.Run(withTimeout(t, 5*time.Minute), cfg, retrying(send))
	require.Zero(t, stats.FailedSpans)
	for _, a := range agents {
		a.settle(t, time.Minute)
	}
	for _, g := range gateways {
		g.settle(t, time.Minute)
	}

	v := verify(t, j, manifest, inOrder)
	v.requireNoLoss(t)
	var decided []float64
	total := 0.0
	for _, g := range gateways {
		n := g.metric(t, "otelcol_processor_vsr_sampler_traces_decided")
		decided = append(decided, n)
		total += n
	}
	assert.Equal(t, float64(len(manifest)), total, "each trace decided by exactly one gateway")
	for _, n := range decided {
		assert.Greater(t, n, 0.25*total, "both gateways share the traces")
	}
	report(v.row("two-tier", gateways[0].peakRSSMiB(), fmt.Sprintf("2 agents (requests alternated) → load_balancing by trace ID → 2 gateways deciding %.0f + %.0f = %.0f of %d traces",
		decided[0], decided[1], total, len(manifest))))
}
