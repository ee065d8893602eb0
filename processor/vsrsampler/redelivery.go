package vsrsampler

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/sampler"
)

// Retry pacing for kept spans the next component refused.
const (
	maxRetryBackoff = 5 * time.Second
	// retriesPerTick bounds how many held batches one tick sends.
	retriesPerTick = 64
)

// reserver counts bytes held for redelivery against the buffer budget.
type reserver interface{ Reserve(n int64) }

// redelivery sends kept spans that left their batch (released from earlier batches, by the
// timer or at shutdown) to the next component in calls of their own. What it refuses (a
// sending queue full during an outage) is held, encoded and counted against
// max_buffer_bytes, and retried with backoff; it is lost only when the next component refuses
// it for good (a permanent error), when holding it would exceed the budget, or at shutdown's
// deadline, and then it is counted in release_failures.
type redelivery struct {
	next   consumer.Traces
	budget reserver
	max    int64
	failed func(ctx context.Context, spans int, err error)
	// delivered counts spans delivered on a retry.
	delivered func(ctx context.Context, spans int)
	// settled is told the journal receipt of spans delivered or given up for good.
	settled func(sampler.Receipt)

	mu      sync.Mutex
	queue   []heldBatch
	bytes   int64
	backoff time.Duration
	nextTry time.Time
}

type heldBatch struct {
	data    []byte
	spans   int
	receipt sampler.Receipt
}

func newRedelivery(next consumer.Traces, budget reserver, maxBytes int64, failed func(context.Context, int, error),
	delivered func(context.Context, int), settled func(sampler.Receipt)) *redelivery {
	return &redelivery{next: next, budget: budget, max: maxBytes, failed: failed, delivered: delivered, settled: settled}
}

// send delivers released spans, or holds them if the next component refuses. Their journal
// records are settled once they are delivered or refused for good; held at the shutdown
// deadline, they stay in the journal for the next run.
func (r *redelivery) send(ctx context.Context, rel sampler.Released, now time.Time) {
	td := rel.Traces
	n := td.SpanCount()
	if n == 0 {
		r.settled(rel.Receipt)
		return
	}
	r.mu.Lock()
	waiting := len(r.queue) > 0
	r.mu.Unlock()
	if !waiting {
		err := r.next.ConsumeTraces(ctx, td)
		if err == nil {
			r.settled(rel.Receipt)
			return
		}
		if consumererror.IsPermanent(err) {
			r.failed(ctx, n, err)
			r.settled(rel.Receipt)
			return
		}
	}
	r.hold(ctx, td, n, rel.Receipt, now)
}

var marshaler ptrace.ProtoMarshaler

func (r *redelivery) hold(ctx context.Context, td ptrace.Traces, spans int, receipt sampler.Receipt, now time.Time) {
	data, err := marshaler.MarshalTraces(td)
	if err != nil {
		r.failed(ctx, spans, err)
		r.settled(receipt)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.queue) == 0 {
		r.backoff, r.nextTry = 0, now
	}
	r.queue = append(r.queue, heldBatch{data: data, spans: spans, receipt: receipt})
	r.bytes += int64(len(data))
	r.budget.Reserve(int64(len(data)))
	for r.bytes > r.max && len(r.queue) > 1 {
		oldest := r.queue[0]
		r.queue = r.queue[1:]
		r.bytes -= int64(len(oldest.data))
		r.budget.Reserve(-int64(len(oldest.data)))
		r.failed(ctx, oldest.spans, fmt.Errorf("held kept spans would exceed max_buffer_bytes (%d)", r.max))
		r.settled(oldest.receipt)
	}
}

// retry sends held batches, oldest first, once their backoff has passed.
func (r *redelivery) retry(ctx context.Context, now time.Time) {
	for range retriesPerTick {
		r.mu.Lock()
		if len(r.queue) == 0 || now.Before(r.nextTry) {
			r.mu.Unlock()
			return
		}
		b := r.queue[0]
		r.queue = r.queue[1:]
		r.mu.Unlock()

		err := r.sendHeld(ctx, b)
		r.mu.Lock()
		switch {
		case err == nil || consumererror.IsPermanent(err):
			r.bytes -= int64(len(b.data))
			r.budget.Reserve(-int64(len(b.data)))
			r.backoff = 0
		default:
			r.queue = append([]heldBatch{b}, r.queue...)
			r.backoff = min(max(2*r.backoff, 100*time.Millisecond), maxRetryBackoff)
			r.nextTry = now.Add(r.backoff)
		}
		r.mu.Unlock()
		if err != nil {
			if consumererror.IsPermanent(err) {
				r.failed(ctx, b.spans, err)
				r.settled(b.receipt)
				continue
			}
			return
		}
		r.delivered(ctx, b.spans)
		r.settled(b.receipt)
	}
}

func (r *redelivery) sendHeld(ctx context.Context, b heldBatch) error {
	var u ptrace.ProtoUnmarshaler
	td, err := u.UnmarshalTraces(b.data)
	if err != nil {
		return consumererror.NewPermanent(err)
	}
	return r.next.ConsumeTraces(ctx, td)
}

// drain retries until nothing is held or ctx ends; what is still held then is lost, counted.
func (r *redelivery) drain(ctx context.Context) error {
	for {
		r.mu.Lock()
		left, wait := len(r.queue), time.Until(r.nextTry)
		r.mu.Unlock()
		if left == 0 {
			return nil
		}
		timer := time.NewTimer(max(wait, 10*time.Millisecond))
		select {
		case <-ctx.Done():
			timer.Stop()
			return r.abandon(ctx)
		case now := <-timer.C:
			r.retry(ctx, now)
		}
	}
}

// abandon gives up what is still held at the shutdown deadline: lost, unless the journal holds
// it for the next run.
func (r *redelivery) abandon(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	lost := 0
	for _, b := range r.queue {
		if len(b.receipt) == 0 {
			lost += b.spans
		}
	}
	r.budget.Reserve(-r.bytes)
	r.queue, r.bytes = nil, 0
	if lost == 0 {
		return nil
	}
	err := fmt.Errorf("vsr_sampler: %d kept spans not delivered before the shutdown deadline: %w", lost, ctx.Err())
	r.failed(ctx, lost, err)
	return err
}
