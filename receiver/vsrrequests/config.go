package vsrrequests

import (
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/component"

	"github.com/otelcol-vsr/otelcol-vsr/internal/requestmetrics"
)

// Config is the vsr_requests configuration.
type Config struct {
	// Sampler is the ID of the vsr_sampler whose decisions are counted (vsr_sampler,
	// vsr_sampler/gateway, …). It must run in the same collector.
	Sampler string `mapstructure:"sampler"`
	// CollectionInterval is how often the cumulative metrics are sent on.
	CollectionInterval time.Duration `mapstructure:"collection_interval"`
	// Dimensions are the request facts the request metrics are keyed by.
	Dimensions []string `mapstructure:"dimensions"`
	// MaxSeries bounds the distinct dimension sets of each metric; the rest are counted in one
	// series with otel.metric.overflow=true.
	MaxSeries int `mapstructure:"max_series"`
	// DurationBuckets are the histogram bounds, in seconds.
	DurationBuckets []float64 `mapstructure:"duration_buckets"`
	// ModelServer configures the metrics of the model servers' request spans.
	ModelServer ModelServerConfig `mapstructure:"model_server"`
	_           struct{}
}

// ModelServerConfig chooses what the model servers' metrics (time to first token, time per
// output token, queue time, duration, tokens) are keyed by and their histogram bounds.
type ModelServerConfig struct {
	// Dimensions: the model, the server's service.name, and the router request's facts.
	Dimensions []string `mapstructure:"dimensions"`
	// Buckets are the histogram bounds, in seconds.
	Buckets []float64 `mapstructure:"buckets"`
	_       struct{}
}

// samplerType is the type the sampler's ID must have.
var samplerType = component.MustNewType("vsr_sampler")

// Validate checks the configuration; each error names its key.
func (cfg *Config) Validate() error {
	var errs []error
	var id component.ID
	if err := id.UnmarshalText([]byte(cfg.Sampler)); err != nil || id.Type() != samplerType {
		errs = append(errs, fmt.Errorf("sampler: must be the ID of a vsr_sampler (vsr_sampler or vsr_sampler/<name>), got %q", cfg.Sampler))
	}
	if cfg.CollectionInterval <= 0 {
		errs = append(errs, fmt.Errorf("collection_interval: must be positive, got %v", cfg.CollectionInterval))
	}
	errs = append(errs, cfg.metricsConfig().Validate())
	return errors.Join(errs...)
}

func (cfg *Config) metricsConfig() *requestmetrics.Config {
	return &requestmetrics.Config{Dimensions: cfg.Dimensions, MaxSeries: cfg.MaxSeries, DurationBuckets: cfg.DurationBuckets,
		ModelServer: requestmetrics.ServingConfig{Dimensions: cfg.ModelServer.Dimensions, Buckets: cfg.ModelServer.Buckets}}
}
