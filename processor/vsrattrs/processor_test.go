package vsrattrs

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	"go.yaml.in/yaml/v3"

	"github.com/otelcol-vsr/otelcol-vsr/internal/leakcorpus"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrattrs/internal/metadatatest"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrattrs/internal/normalize"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrattrs/internal/scan"
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

// The telemetry's family and kind attributes name exactly the families and kinds the code has.
func TestTelemetryEnumsMatchTables(t *testing.T) {
	raw, err := os.ReadFile("metadata.yaml")
	require.NoError(t, err)
	var md struct {
		Attributes map[string]struct {
			Enum []string `yaml:"enum"`
		} `yaml:"attributes"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &md))
	var families, kinds, issues []string
	for _, f := range normalize.Families {
		families = append(families, f.ID)
	}
	for k := range scan.NumKinds {
		kinds = append(kinds, k.String())
	}
	for i := range normalize.NumIssues {
		issues = append(issues, i.String())
	}
	assert.Equal(t, families, md.Attributes["family"].Enum)
	assert.Equal(t, kinds, md.Attributes["kind"].Enum)
	assert.Equal(t, issues, md.Attributes["issue"].Enum)
}

// The leak corpus through the processor as the factory builds it, in every mode, with a hash
// key and without: nothing of it reaches the next consumer, and the telemetry counts what
// was redacted and masked.
func TestLeakCorpusProcessor(t *testing.T) {
	for _, mode := range []string{"fix", "report", "strict"} {
		for _, key := range []string{goldenHashKey, ""} {
			t.Run(fmt.Sprintf("%s/key=%t", mode, key != ""), func(t *testing.T) {
				tt := componenttest.NewTelemetry()
				t.Cleanup(func() { require.NoError(t, tt.Shutdown(context.Background())) })
				cfg := createDefaultConfig().(*Config)
				cfg.Mode = mode
				cfg.Redaction.HashKey = configopaque.String(key)
				require.NoError(t, cfg.Validate())
				sink := new(consumertest.TracesSink)
				p, err := NewFactory().CreateTraces(context.Background(), metadatatest.NewSettings(tt), cfg, sink)
				require.NoError(t, err)
				require.NoError(t, p.Start(context.Background(), componenttest.NewNopHost()))
				c := leakcorpus.Build("proc" + mode)
				spans := c.Traces.SpanCount()
				require.NoError(t, p.ConsumeTraces(context.Background(), c.Traces))
				require.NoError(t, p.Shutdown(context.Background()))
				require.Len(t, sink.AllTraces(), 1)
				out := sink.AllTraces()[0]
				assert.Equal(t, spans, out.SpanCount())
				js, err := (&ptrace.JSONMarshaler{}).MarshalTraces(out)
				require.NoError(t, err)
				pb, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(out)
				require.NoError(t, err)
				leaks := c.Leaks(append(js, pb...))
				for _, l := range leaks {
					t.Errorf("leaked %s (%s): %q", l.Where, l.Family, l.Value)
				}
				for _, name := range []string{"otelcol_processor_vsr_attributes_redacted_values", "otelcol_processor_vsr_attributes_masked_values"} {
					m, err := tt.GetMetric(name)
					require.NoError(t, err)
					assert.NotEmpty(t, m.Data.(metricdata.Sum[int64]).DataPoints, name)
				}
			})
		}
	}
}
