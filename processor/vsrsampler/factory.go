package vsrsampler

import (
	"context"
	"slices"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processorhelper"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/metadata"
)

// NewFactory returns the vsr_sampler processor factory.
func NewFactory() processor.Factory {
	return processor.NewFactory(metadata.Type, createDefaultConfig,
		processor.WithTraces(createTraces, metadata.TracesStability))
}

func createDefaultConfig() component.Config {
	return &Config{
		Grace:             2 * time.Second,
		TraceTimeout:      30 * time.Second,
		SlowThreshold:     10 * time.Second,
		ModelCallWait:     routerconv.ModelCallWait,
		DefaultPercentage: 10,
		Dynamic: DynamicConfig{
			Keys:                  []string{"category.name", "routing.selected_model"},
			TargetTracesPerSecond: 10,
			AdjustmentInterval:    15 * time.Second,
			MaxKeys:               1000,
		},
		MaxBufferBytes: 256 << 20,
		MaxTraceBytes:  16 << 20,
		MaxTraceSpans:  10_000,
		DecisionCache:  DecisionCacheConfig{KeepEntries: 100_000, DropEntries: 1_000_000},
		// A span that ended just after the router's export waits a whole interval behind its
		// siblings. With grace before the drop, a late error still finds its trace.
		RescueWindow: routerconv.ExportInterval,
		Spill:        SpillConfig{MaxBytes: 1 << 30},
		Journal:      JournalConfig{MaxBytes: 1 << 30, Fsync: "never", FsyncInterval: time.Second, DecisionRetention: 5 * time.Minute},
		ServiceNames: slices.Clone(routerconv.DefaultServiceNames),
	}
}

func createTraces(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Traces) (processor.Traces, error) {
	p, err := newSamplerProcessor(set, cfg.(*Config), next)
	if err != nil {
		return nil, err
	}
	return processorhelper.NewTraces(ctx, set, cfg, next, p.processTraces,
		processorhelper.WithStart(p.start), processorhelper.WithShutdown(p.shutdown),
		processorhelper.WithCapabilities(consumer.Capabilities{MutatesData: true}))
}
