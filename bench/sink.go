package main

import (
	"context"
	"net"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	_ "google.golang.org/grpc/encoding/gzip" // collectors compress exports by default
)

// sink is an in-process OTLP/gRPC receiver on loopback recording when each span arrived.
type sink struct {
	ptraceotlp.UnimplementedGRPCServer
	addr   string
	server *grpc.Server
	mu     sync.Mutex
	spans  map[string]time.Time
	last   time.Time
}

func startSink() (*sink, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sink{addr: l.Addr().String(), server: grpc.NewServer(), spans: map[string]time.Time{}}
	ptraceotlp.RegisterGRPCServer(s.server, s)
	go func() { _ = s.server.Serve(l) }()
	return s, nil
}

func (s *sink) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rs := range req.Traces().ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, span := range ss.Spans().All() {
				s.spans[span.SpanID().String()] = now
			}
		}
	}
	s.last = now
	return ptraceotlp.NewExportResponse(), nil
}

func (s *sink) reset() {
	s.mu.Lock()
	s.spans = map[string]time.Time{}
	s.last = time.Now()
	s.mu.Unlock()
}

// arrived returns when the span arrived, if it did.
func (s *sink) arrived(spanID string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.spans[spanID]
	return at, ok
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.spans)
}

// waitQuiet returns once nothing arrived for quiet (bounded to two minutes).
func (s *sink) waitQuiet(quiet time.Duration) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		idle := time.Since(s.last)
		s.mu.Unlock()
		if idle >= quiet {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *sink) stop() { s.server.Stop() }
