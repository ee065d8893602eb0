package vsrattrs

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrattrs/internal/metadata"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrattrs/internal/normalize"
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
	return p, nil
}

func (p *attrsProcessor) start(context.Context, component.Host) error {
	if p.cfg.Redaction.HashKey == "" && (p.cfg.Redaction.Prompts == "hash" || p.cfg.Redaction.Identifiers == "hash") {
		p.logger.Warn("redaction.hash_key is not set: prompts and identifiers set to hash are removed instead. " +
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
	if stats.Spans > 0 {
		p.telemetry.ProcessorVsrAttributesSpansNormalized.Add(ctx, int64(stats.Spans))
		for era, n := range stats.Traces {
			if n > 0 {
				p.telemetry.ProcessorVsrAttributesTraces.Add(ctx, int64(n), p.eraAttrs[era])
			}
		}
	}
	for server, n := range stats.ModelServerSpans {
		if n > 0 {
			p.telemetry.ProcessorVsrAttributesModelServerSpans.Add(ctx, int64(n), p.serverAttrs[server])
		}
	}
	for issue, n := range stats.Issues {
		if n > 0 {
			p.telemetry.ProcessorVsrAttributesIssues.Add(ctx, int64(n), p.issueAttrs[issue])
		}
	}
	return td, nil
}
