package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// GRPCSender exports over OTLP/gRPC without TLS, as a router pod to its node's collector.
type GRPCSender struct {
	conn   *grpc.ClientConn
	client ptraceotlp.GRPCClient
}

// NewGRPCSender connects lazily to endpoint (host:port).
func NewGRPCSender(endpoint string) (*GRPCSender, error) {
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	return &GRPCSender{conn: conn, client: ptraceotlp.NewGRPCClient(conn)}, nil
}

func (s *GRPCSender) Send(ctx context.Context, td ptrace.Traces) error {
	_, err := s.client.Export(ctx, ptraceotlp.NewExportRequestFromTraces(td))
	return err
}

func (s *GRPCSender) Close() error { return s.conn.Close() }

// HTTPSender exports over OTLP/HTTP with protobuf bodies.
type HTTPSender struct {
	url    string
	client *http.Client
}

// NewHTTPSender posts to url, e.g. http://127.0.0.1:4318/v1/traces.
func NewHTTPSender(url string) *HTTPSender {
	return &HTTPSender{url: url, client: &http.Client{Timeout: 30 * time.Second}}
}

// HTTPError is a refused OTLP/HTTP request.
type HTTPError struct {
	Code int
	Body string
}

func (e *HTTPError) Error() string { return fmt.Sprintf("OTLP/HTTP %d: %s", e.Code, e.Body) }

func (s *HTTPSender) Send(ctx context.Context, td ptrace.Traces) error {
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode/100 != 2 {
		return &HTTPError{Code: resp.StatusCode, Body: string(msg)}
	}
	return nil
}

// Retryable reports whether an export failure is one the OTLP specification says to retry:
// the collector is refusing for now (memory_limiter, a full queue), not rejecting the data.
func Retryable(err error) bool {
	var h *HTTPError
	if errors.As(err, &h) {
		return h.Code == http.StatusTooManyRequests || h.Code == http.StatusBadGateway ||
			h.Code == http.StatusServiceUnavailable || h.Code == http.StatusGatewayTimeout
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.ResourceExhausted, codes.Aborted, codes.DeadlineExceeded:
		return true
	}
	return false
}

// Retrying retries retryable failures with exponential backoff, as the router's OTLP exporter
// does, within the request's context.
type Retrying struct {
	Sender   Sender
	Attempts int
	Backoff  time.Duration
}

func (r Retrying) Send(ctx context.Context, td ptrace.Traces) error {
	backoff := r.Backoff
	var err error
	for attempt := 0; attempt < max(r.Attempts, 1); attempt++ {
		if attempt > 0 {
			sleep(ctx, backoff)
			backoff *= 2
		}
		if err = r.Sender.Send(ctx, td); err == nil || !Retryable(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}
