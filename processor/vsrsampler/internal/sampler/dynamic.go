package sampler

import (
	"slices"
	"sync"
	"time"
)

// overflowKey is shared by the traces whose key arrived after MaxKeys were tracked.
const overflowKey = "\x00overflow"

// dynamic computes per-key keep probabilities that aim at a total rate of kept traces, shared
// so that rare keys are kept more often than common ones (as Refinery's throughput samplers
// do). Each window, the budget target×window is spread over the keys seen in the previous
// window, smallest first: a key that needs less than its fair share is kept entirely and
// leaves the rest to the others.
type dynamic struct {
	cfg    Dynamic
	mu     sync.Mutex
	start  time.Time
	counts map[string]float64
	// smoothed blends the last windows so one burst does not swing the rates.
	smoothed map[string]float64
	rates    map[string]float64
}

func newDynamic(cfg Dynamic) *dynamic {
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = 1000
	}
	return &dynamic{cfg: cfg, counts: map[string]float64{}, smoothed: map[string]float64{}, rates: map[string]float64{}}
}

// rate counts one trace for key and returns its keep probability in [0, 1]. A key not seen in
// the previous windows is rare by definition and is kept.
func (d *dynamic) rate(key string, now time.Time) float64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.start.IsZero() {
		d.start = now
	}
	if now.Sub(d.start) >= d.cfg.Window {
		d.recompute()
		d.start = now
	}
	if _, ok := d.counts[key]; !ok && len(d.counts) >= d.cfg.MaxKeys {
		key = overflowKey
	}
	d.counts[key]++
	if r, ok := d.rates[key]; ok {
		return r
	}
	return 1
}

func (d *dynamic) recompute() {
	for k, old := range d.smoothed {
		if _, seen := d.counts[k]; !seen {
			d.smoothed[k] = old / 2
		}
	}
	for k, c := range d.counts {
		if old, ok := d.smoothed[k]; ok {
			d.smoothed[k] = (old + c) / 2
		} else {
			d.smoothed[k] = c
		}
	}
	keys := make([]string, 0, len(d.smoothed))
	for k, c := range d.smoothed {
		if c < 0.01 {
			delete(d.smoothed, k)
			continue
		}
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		switch ca, cb := d.smoothed[a], d.smoothed[b]; {
		case ca < cb:
			return -1
		case ca > cb:
			return 1
		}
		return 0
	})
	clear(d.rates)
	budget := d.cfg.TargetPerSecond * d.cfg.Window.Seconds()
	for i, k := range keys {
		share := budget / float64(len(keys)-i)
		kept := min(d.smoothed[k], share)
		d.rates[k] = kept / d.smoothed[k]
		budget -= kept
	}
	clear(d.counts)
}
