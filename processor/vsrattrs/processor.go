package vsrattrs

import (
	"context"
	"maps"
	"slices"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrattrs/internal/metadata"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrattrs/internal/normalize"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrattrs/internal/scan"
)

type attrsProcessor struct {
	cfg        *Config
	logger     *zap.Logger
	normalizer *normalize.Normalizer
	telemetry  *metadata.TelemetryBuilder
	// Attribute sets are built once so recording a batch's counters allocates nothing.
	issueAttrs  [normalize.NumIssues]metric.AddOption
	eraAttrs    [routerconv.EraD + 1]metric.AddOption
	serverAttrs [routerconv.NumModelServers]metric.AddOption
	familyAttrs [normalize.NumFamilies]metric.AddOption
	kindAttrs   [scan.NumKinds]metric.AddOption
}

func newAttrsProcessor(set processor.Settings, cfg *Config) (*attrsProcessor, error) {
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	p := &attrsProcessor{
		cfg:        cfg,
		logger:     set.Logger,
		normalizer: normalize.New(cfg.options()),
		telemetry:  tb,
	}
	for i := range normalize.NumIssues {
		p.issueAttrs[i] = metric.WithAttributeSet(attribute.NewSet(attribute.String("issue", i.String())))
	}
	for m := range routerconv.NumModelServers {
		p.serverAttrs[m] = metric.WithAttributeSet(attribute.NewSet(attribute.String("server", m.String())))
	}
	for e := range routerconv.EraD + 1 {
		p.eraAttrs[e] = metric.WithAttributeSet(attribute.NewSet(attribute.String("era", e.String())))
	}
	for i, f := range normalize.Families {
		p.familyAttrs[i] = metric.WithAttributeSet(attribute.NewSet(attribute.String("family", f.ID)))
	}
	for k := range scan.NumKinds {
		p.kindAttrs[k] = metric.WithAttributeSet(attribute.NewSet(attribute.String("kind", k.String())))
	}
	return p, nil
}

func (p *attrsProcessor) start(context.Context, component.Host) error {
	r := &p.cfg.Redaction
	if r.HashKey == "" && (r.Prompts == "hash" || r.Identifiers == "hash" || r.Credentials == "hash" || slices.Contains(slices.Collect(maps.Values(r.Families)), "hash")) {
		p.logger.Warn("redaction.hash_key is not set: values set to hash are removed instead. " +
			"Set it (e.g. hash_key: ${env:VSR_HASH_KEY}) to keep them joinable.")
	}
	return nil
}

func (p *attrsProcessor) shutdown(context.Context) error {
	p.telemetry.Shutdown()
	return nil
}

func (p *attrsProcessor) processTraces(ctx context.Context, td ptrace.Traces) (ptrace.Traces, error) {
	stats := p.normalizer.Traces(td)
	count := func(counter metric.Int64Counter, counts []int, attrs []metric.AddOption) {
		for i, n := range counts {
			if n > 0 {
				counter.Add(ctx, int64(n), attrs[i])
			}
		}
	}
	count(p.telemetry.ProcessorVsrAttributesRedactedValues, stats.Redacted[:], p.familyAttrs[:])
	count(p.telemetry.ProcessorVsrAttributesMaskedValues, stats.Masked[:], p.kindAttrs[:])
	count(p.telemetry.ProcessorVsrAttributesIssues, stats.Issues[:], p.issueAttrs[:])
	count(p.telemetry.ProcessorVsrAttributesModelServerSpans, stats.ModelServerSpans[:], p.serverAttrs[:])
	count(p.telemetry.ProcessorVsrAttributesTraces, stats.Traces[:], p.eraAttrs[:])
	if stats.Spans > 0 {
		p.telemetry.ProcessorVsrAttributesSpansNormalized.Add(ctx, int64(stats.Spans))
	}
	return td, nil
}
