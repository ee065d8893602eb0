package vsrattrs

import (
	"context"
	"slices"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processorhelper"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrattrs/internal/metadata"
)

// NewFactory returns the vsr_attributes processor factory.
func NewFactory() processor.Factory {
	return processor.NewFactory(metadata.Type, createDefaultConfig,
		processor.WithTraces(createTraces, metadata.TracesStability))
}

func createDefaultConfig() component.Config {
	return &Config{
		Mode:             "fix",
		ServiceNames:     slices.Clone(routerconv.DefaultServiceNames),
		URLQuery:         "redact_values",
		MaxValueBytes:    4096,
		MaxIssuesPerSpan: 8,
		Redaction: RedactionConfig{
			HashFunction: "hmac-sha256",
			Prompts:      "hash",
			Identifiers:  "hash",
			Credentials:  "hash",
			ValueScanner: ValueScannerConfig{Enabled: true},
			Summary:      "silent",
		},
	}
}

func createTraces(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Traces) (processor.Traces, error) {
	p, err := newAttrsProcessor(set, cfg.(*Config))
	if err != nil {
		return nil, err
	}
	return processorhelper.NewTraces(ctx, set, cfg, next, p.processTraces,
		processorhelper.WithStart(p.start), processorhelper.WithShutdown(p.shutdown))
}
