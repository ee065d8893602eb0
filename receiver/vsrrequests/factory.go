package vsrrequests

import (
	"context"
	"slices"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"

	"github.com/otelcol-vsr/otelcol-vsr/internal/requestmetrics"
	"github.com/otelcol-vsr/otelcol-vsr/receiver/vsrrequests/internal/metadata"
)

// NewFactory returns the vsr_requests receiver factory.
func NewFactory() receiver.Factory {
	return receiver.NewFactory(metadata.Type, createDefaultConfig,
		receiver.WithMetrics(createMetrics, metadata.MetricsStability))
}

func createDefaultConfig() component.Config {
	return &Config{
		Sampler:            "vsr_sampler",
		CollectionInterval: 10 * time.Second,
		Dimensions:         slices.Clone(requestmetrics.DefaultDimensions),
		MaxSeries:          2000,
		DurationBuckets:    slices.Clone(requestmetrics.DefaultDurationBuckets),
		ModelServer: ModelServerConfig{
			Dimensions: slices.Clone(requestmetrics.DefaultServingDimensions),
			Buckets:    slices.Clone(requestmetrics.DefaultServingBuckets),
		},
	}
}

func createMetrics(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Metrics) (receiver.Metrics, error) {
	return newRequestsReceiver(set, cfg.(*Config), next), nil
}
