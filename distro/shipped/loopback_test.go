package shipped

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

const podConfig = `
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: ${env:MY_POD_IP}:4317
        tls:
          cert_file: /etc/otelcol-vsr/gateway-tls/tls.crt
      http:
        endpoint: 0.0.0.0:4318
processors:
  vsr_sampler:
    max_buffer_bytes: 201326592
    spill:
      directory: /var/lib/otelcol-vsr/spill
exporters:
  load_balancing:
    sending_queue:
      queue_size: 1000000
    resolver:
      static:
        hostnames: [passthrough:///otelcol-vsr-gateway-0.otelcol-vsr-gateway:4317]
  otlp_grpc/backend:
    endpoint: ${env:VSR_TRACES_ENDPOINT}
service:
  telemetry:
    metrics:
      readers:
        - pull:
            exporter:
              prometheus:
                host: ${env:MY_POD_IP}
                port: 8888
`

const localConfig = `
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:24317
        tls:
          cert_file: /tmp/tls/tls.crt
      http:
        endpoint: 127.0.0.1:24318
processors:
  vsr_sampler:
    max_buffer_bytes: 201326592
    spill:
      directory: /tmp/state/spill
exporters:
  load_balancing:
    sending_queue:
      queue_size: 1000000
    resolver:
      static:
        hostnames: [passthrough:///otelcol-vsr-gateway-0.otelcol-vsr-gateway:4317]
  otlp_grpc/backend:
    endpoint: ${env:VSR_TRACES_ENDPOINT}
service:
  telemetry:
    metrics:
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: 28888
`

// The gateways' names stay: the end-to-end tests resolve them as the cluster would.
func TestLoopbackRewritesListenersStateAndMountsOnly(t *testing.T) {
	l := Loopback{
		Ports:    map[int]int{4317: 24317, 4318: 24318, 8888: 28888},
		StateDir: "/tmp/state",
		Mounts:   map[string]string{"/etc/otelcol-vsr/gateway-tls": "/tmp/tls"},
	}
	out, err := l.Rewrite([]byte(podConfig))
	require.NoError(t, err)
	var got, want map[string]any
	require.NoError(t, yaml.Unmarshal(out, &got))
	require.NoError(t, yaml.Unmarshal([]byte(localConfig), &want))
	assert.Equal(t, want, got)
}

func TestLoopbackRefusesWhatItCannotPlace(t *testing.T) {
	_, err := Loopback{Ports: map[int]int{4317: 24317}}.Rewrite([]byte(podConfig))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "listener port 4318 has no local port")
}
