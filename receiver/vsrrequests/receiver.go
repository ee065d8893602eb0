package vsrrequests

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"
	"go.uber.org/zap"

	"github.com/otelcol-vsr/otelcol-vsr/internal/requestmetrics"
)

type requestsReceiver struct {
	cfg    *Config
	logger *zap.Logger
	next   consumer.Metrics
	agg    *requestmetrics.Aggregator
	hub    *requestmetrics.Hub
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

func newRequestsReceiver(set receiver.Settings, cfg *Config, next consumer.Metrics) *requestsReceiver {
	return &requestsReceiver{cfg: cfg, logger: set.Logger, next: next}
}

// Start subscribes to the sampler's records. Samplers are created before any component
// starts, so a missing one is a configuration mistake, not a matter of order.
func (r *requestsReceiver) Start(context.Context, component.Host) error {
	hub, ok := requestmetrics.Lookup(r.cfg.Sampler)
	if !ok {
		return fmt.Errorf("sampler: no %s runs in this collector's pipelines", r.cfg.Sampler)
	}
	r.hub = hub
	r.agg = requestmetrics.NewAggregator(*r.cfg.metricsConfig(), time.Now())
	hub.Subscribe(r.agg)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go r.run(ctx)
	return nil
}

// run sends the cumulative metrics on every collection interval.
func (r *requestsReceiver) run(ctx context.Context) {
	defer close(r.done)
	ticker := time.NewTicker(r.cfg.CollectionInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-ticker.C:
			if err := r.next.ConsumeMetrics(ctx, r.agg.Metrics(now)); err != nil {
				r.logger.Warn("request metrics refused by the next component", zap.Error(err))
			}
		}
	}
}

// Shutdown stops counting and sending; it is safe without a start and when called twice.
func (r *requestsReceiver) Shutdown(ctx context.Context) error {
	var err error
	r.once.Do(func() {
		if r.hub == nil {
			return
		}
		r.hub.Unsubscribe(r.agg)
		r.cancel()
		select {
		case <-r.done:
		case <-ctx.Done():
			err = ctx.Err()
		}
	})
	return err
}
