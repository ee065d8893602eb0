package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"

	"github.com/otelcol-vsr/otelcol-vsr/internal/loadgen"
)

// countingServer is an OTLP/gRPC receiver on loopback that counts spans.
type countingServer struct {
	ptraceotlp.UnimplementedGRPCServer
	spans chan int
}

func (s *countingServer) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	s.spans <- req.Traces().SpanCount()
	return ptraceotlp.NewExportResponse(), nil
}

func TestSendsToOTLPAndWritesManifest(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	cs := &countingServer{spans: make(chan int, 10_000)}
	ptraceotlp.RegisterGRPCServer(srv, cs)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	manifest := filepath.Join(t.TempDir(), "m.jsonl")
	var out, errOut bytes.Buffer
	require.NoError(t, run([]string{"-endpoint", lis.Addr().String(), "-max", "-traces", "100", "-duration", "0",
		"-pii-routed-rate", "0.2", "-manifest", manifest, "-seed", "3", "-quiet"}, &out, &errOut), errOut.String())
	assert.Contains(t, out.String(), "started 100 traces")

	f, err := os.Open(manifest)
	require.NoError(t, err)
	defer f.Close()
	spans, lines, routed := 0, 0, 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e loadgen.Entry
		require.NoError(t, json.Unmarshal(sc.Bytes(), &e))
		spans += len(e.SpanIDs)
		lines++
		if e.Outcome == "pii_routed" {
			routed++
			assert.False(t, e.MustKeep, "a routed request is no block")
			if e.Era != "D" { // era D's root ends last, with the request
				assert.GreaterOrEqual(t, e.LastEnd-e.RootEnd, int64(3e9), "its model call outlasts the grace period")
			}
		}
	}
	assert.Equal(t, 100, lines)
	assert.Positive(t, routed, "the manifest records the PII-routed outcome")
	assert.Contains(t, out.String(), "pii_routed=")
	received := 0
	for len(cs.spans) > 0 {
		received += <-cs.spans
	}
	assert.Equal(t, spans, received)
}

func TestFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-era-mix", "E=1"},
		{"-era-mix", "A=-1"},
		{"-error-rate", "2"},
		{"-pii-routed-rate", "-0.1"},
		{"-duration", "0"},
		{"-protocol", "udp"},
	} {
		var out, errOut bytes.Buffer
		assert.Error(t, run(args, &out, &errOut), "%v", args)
	}
}
