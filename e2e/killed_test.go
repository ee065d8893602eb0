//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/encoding/gzip" // the collector's exporters compress

	"github.com/otelcol-vsr/otelcol-vsr/internal/loadgen"
)

// spanCounter is an OTLP/gRPC backend in front of Jaeger that counts every span it is sent,
// by span ID, and forwards it: Jaeger's store keeps one copy of a span ID, so spans exported
// twice are counted here.
type spanCounter struct {
	ptraceotlp.UnimplementedGRPCServer
	next ptraceotlp.GRPCClient
	port int
	mu   sync.Mutex
	seen map[string]int
}

func startSpanCounter(t *testing.T, j *jaeger) *spanCounter {
	conn, err := grpc.NewClient(j.endpoint(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	c := &spanCounter{next: ptraceotlp.NewGRPCClient(conn), port: freePort(t), seen: map[string]int{}}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(c.port))
	require.NoError(t, err)
	server := grpc.NewServer()
	ptraceotlp.RegisterGRPCServer(server, c)
	go func() { _ = server.Serve(l) }()
	t.Cleanup(server.Stop)
	return c
}

func (c *spanCounter) Export(ctx context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	resp, err := c.next.Export(ctx, req)
	if err != nil {
		return resp, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.Traces().ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, span := range ss.Spans().All() {
				c.seen[span.SpanID().String()]++
			}
		}
	}
	return resp, nil
}

func (c *spanCounter) endpoint() string { return fmt.Sprintf("127.0.0.1:%d", c.port) }

// duplicates is how many more times than once the manifest's spans were exported.
func (c *spanCounter) duplicates(manifest []loadgen.Entry) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, e := range manifest {
		for _, id := range e.SpanIDs {
			n += max(c.seen[id]-1, 0)
		}
	}
	return n
}

// Scenario 3b: the collector is killed (SIGKILL, as the OOM killer or a failed liveness probe's
// escalation delivers it) under load, and started again at once on the same storage. What it
// acknowledged to the router is in files the kernel has (the crash journal, the persistent
// queue): every must-keep trace arrives whole. Spans exported twice, because the kill came
// after their delivery and before the journal heard of it, are counted.
func TestCollectorKilled(t *testing.T) {
	for _, layout := range nodeLayouts {
		t.Run(layout, func(t *testing.T) {
			j := startJaeger(t)
			counter := startSpanCounter(t, j)
			var c *collector
			if layout == "collector-config.yaml" {
				c = startCollector(t, "collector", filepath.Join(repoRoot, layout),
					"VSR_EXPORTERS=[otlp_grpc/backend]", "VSR_TRACES_ENDPOINT="+counter.endpoint(), "VSR_SAMPLE_PERCENTAGE=0")
			} else {
				c = startShipped(t, "collector", layout, "DaemonSet", "VSR_TRACES_ENDPOINT="+counter.endpoint())
			}
			wait := sendInBackground(t, traffic(200, 20*time.Second, 6), c.endpoint())
			time.Sleep(10 * time.Second)
			c.kill()
			killedAt := time.Now()
			c.restart(t, "collector-2")
			restarted := time.Since(killedAt)
			manifest := wait()
			c.settle(t, 3*time.Minute)

			v := verify(t, j, manifest, inOrder)
			v.requireNoLoss(t)
			require.Positive(t, v.mustKeep)
			recovered := c.metric(t, "otelcol_processor_vsr_sampler_journal_recovered_spans")
			require.Positive(t, recovered, "the second run took spans back from the journal")
			dup := counter.duplicates(manifest)
			report(v.row("3b collector killed (SIGKILL): "+layout, c.peakRSSMiB(),
				fmt.Sprintf("restarted in %.1fs; %.0f spans taken back from the crash journal; %d spans exported twice", restarted.Seconds(), recovered, dup)))
		})
	}
}
