package vsrattrs

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"

	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrattrs/internal/metadatatest"
)

// The processor's own telemetry counts what it did, by issue kind and era.
func TestTelemetry(t *testing.T) {
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tt.Shutdown(context.Background())) })
	cfg := createDefaultConfig().(*Config)
	cfg.Redaction.HashKey = goldenHashKey
	p, err := NewFactory().CreateTraces(context.Background(), metadatatest.NewSettings(tt), cfg, consumertest.NewNop())
	require.NoError(t, err)
	require.NoError(t, p.Start(context.Background(), componenttest.NewNopHost()))
	require.NoError(t, p.ConsumeTraces(context.Background(), badBatch()))
	require.NoError(t, p.Shutdown(context.Background()))

	metadatatest.AssertEqualProcessorVsrAttributesSpansNormalized(t, tt,
		[]metricdata.DataPoint[int64]{{Value: 4}}, metricdatatest.IgnoreTimestamp())
	metadatatest.AssertEqualProcessorVsrAttributesTraces(t, tt,
		[]metricdata.DataPoint[int64]{{Value: 1, Attributes: attribute.NewSet(attribute.String("era", "C"))}},
		metricdatatest.IgnoreTimestamp())
	issue := func(kind string, n int64) metricdata.DataPoint[int64] {
		return metricdata.DataPoint[int64]{Value: n, Attributes: attribute.NewSet(attribute.String("issue", kind))}
	}
	metadatatest.AssertEqualProcessorVsrAttributesIssues(t, tt, []metricdata.DataPoint[int64]{
		issue("renamed", 5), issue("converted", 2), issue("rounded", 1), issue("redacted", 3), issue("unknown_key", 1),
		issue("coerced", 6), issue("case", 3), issue("unknown_value", 1), issue("invalid", 3),
		issue("conflict", 1), issue("truncated", 1),
	}, metricdatatest.IgnoreTimestamp())
}
