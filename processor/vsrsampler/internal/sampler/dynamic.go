package sampler

import (
	"math"
	"slices"
	"sync"
	"time"
)

// overflowKey is shared by the traces whose key arrived after MaxKeys were tracked.
const overflowKey = "\x00overflow"

// dynamic computes per-key keep probabilities that aim at a total rate of kept traces,
// spread so that rare keys are kept more often than common ones (as Refinery's throughput
// samplers do), and holds that rate from the first second: it never waits a whole window
// knowing nothing.
//
// Each key's arrival rate is estimated from the traces decided, per wall-clock second: a
// moving average over about one adjustment interval, raised at once by the last second's
// count when a key surges, and in the very first second extrapolated from what arrived so
// far. A trace's key is known only once it is decided, which is a request's duration after
// its first span arrived: while decisions lag arrivals (at a start, a restart, or traffic
// resuming), the keys' estimates are scaled by the ratio of traces arriving to traces
// decided. Every second, the target is spread over the keys smallest first: a key needing less
// than its fair share is kept entirely and leaves the rest to the others. A key that appears
// between two spreads gets a fair share of its own until the next. Probabilities are rounded
// to a grid (2^(1/16)), so that collectors whose estimates differ by a little still agree.
type dynamic struct {
	cfg   Dynamic
	alpha float64

	mu sync.Mutex
	// second is the wall-clock second being counted; warm is set once a whole second has
	// been counted since the start.
	second  int64
	started time.Time
	warm    bool
	keys    map[string]*keyRate
	// arrivals and decisions count every trace as it arrives and as it is decided, dynamic or
	// not, by the same seconds as the keys.
	arrivals, decisions keyRate
	// debt is what was kept short of the target lately (negative: beyond it), forgotten
	// with debtMemory; the rates pay it back over payback. It corrects the randomness of
	// sampling and the estimates' errors, so that each few seconds keep close to the target,
	// not only their average.
	debt   float64
	lastAt time.Time
	// catchUp is the first second after the catch-up that follows restored rates: until then,
	// counts beyond the restored averages' noise are the backlog of the restart, not traffic.
	catchUp int64
}

const (
	debtMemory = 5 * time.Second
	payback    = time.Second
)

// keyRate is what is known of one key.
type keyRate struct {
	// cur and prev count this second's and the last second's traces.
	cur, prev float64
	// avg is the moving average of the per-second count.
	avg float64
	// share is the key's allocation of kept traces per second; 0 before its first spread.
	share float64
}

func newDynamic(cfg Dynamic) *dynamic {
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = 1000
	}
	// The moving average forgets with a time constant of one adjustment interval.
	alpha := 1 - math.Exp(-1/max(cfg.Window.Seconds(), 1))
	return &dynamic{cfg: cfg, alpha: alpha, keys: map[string]*keyRate{}}
}

// warmUpFloor bounds the extrapolation of the first second: a handful of traces in its first
// milliseconds do not make a rate.
const warmUpFloor = 100 * time.Millisecond

// rate counts one trace for key and returns its keep probability in [0, 1].
func (d *dynamic) rate(key string, now time.Time) float64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.roll(now)
	k := d.keys[key]
	if k == nil {
		if len(d.keys) >= d.cfg.MaxKeys {
			key = overflowKey
			k = d.keys[key]
		}
		if k == nil {
			k = &keyRate{}
			d.keys[key] = k
		}
	}
	k.cur++
	share := k.share
	if share == 0 {
		share = d.cfg.TargetPerSecond / float64(len(d.keys))
	}
	correction := min(max(1+d.debt/(d.cfg.TargetPerSecond*payback.Seconds()), 0.25), 4)
	return quantize(share * correction / d.estimate(k, now))
}

// kept counts a trace kept at the rate rate returned.
func (d *dynamic) kept() {
	d.mu.Lock()
	d.debt--
	d.mu.Unlock()
}

// arrived counts a trace whose first span just arrived.
func (d *dynamic) arrived(now time.Time) {
	d.mu.Lock()
	d.roll(now)
	d.arrivals.cur++
	d.mu.Unlock()
}

// decided counts a trace being decided, before rate is asked for it. Each decision owes its
// part of the target, target/traffic rate: the debt grows with the traffic decided, not with
// the clock, so that neither the seconds before the first request ends nor a pause in traffic
// are kept for later.
func (d *dynamic) decided(now time.Time) {
	d.mu.Lock()
	d.roll(now)
	d.decisions.cur++
	d.debt += d.cfg.TargetPerSecond / max(d.rateOf(&d.arrivals, now), d.rateOf(&d.decisions, now), d.cfg.TargetPerSecond)
	d.mu.Unlock()
}

// estimate is a key's arrival rate, traces per second: its share of the traces decided, times
// the rate traces arrive. Only a decision knows a trace's key, but decisions come a request's
// duration after arrivals: at a start they undercount every key alike, and the share does not
// depend on it. While traffic stops, arrivals fall before decisions do: the larger rate holds.
func (d *dynamic) estimate(k *keyRate, now time.Time) float64 {
	return d.share(k, now) * max(d.rateOf(&d.arrivals, now), d.rateOf(&d.decisions, now))
}

// share is a key's part of the decisions, counted over the same seconds for both: the last
// second when the key surges beyond its noise, else the moving averages, which lag alike.
func (d *dynamic) share(k *keyRate, now time.Time) float64 {
	if !d.warm {
		return k.cur / max(d.decisions.cur, 1)
	}
	frac := float64(now.UnixNano()-d.second*int64(time.Second)) / float64(time.Second)
	last := k.cur + k.prev*(1-frac)
	if k.avg == 0 || last > k.noise() {
		return min(last/max(d.decisions.cur+d.decisions.prev*(1-frac), 1), 1)
	}
	return min(k.avg/max(d.decisions.avg, 1e-9), 1)
}

// rateOf is a count's rate per second: extrapolated in the very first second, then the moving
// average, replaced by the last second when the count surges beyond its noise (taking the
// larger of two noisy figures every time would keep too few).
func (d *dynamic) rateOf(k *keyRate, now time.Time) float64 {
	frac := float64(now.UnixNano()-d.second*int64(time.Second)) / float64(time.Second)
	if !d.warm {
		elapsed := max(now.Sub(d.started), warmUpFloor)
		return k.cur / elapsed.Seconds()
	}
	last := k.cur + k.prev*(1-frac)
	if k.avg == 0 || last > k.noise() && now.Unix() >= d.catchUp {
		return last
	}
	return k.avg
}

// noise is the count of a second beyond which k surges.
func (k *keyRate) noise() float64 { return k.avg + surgeSigmas*math.Sqrt(max(k.avg, 1)) }

// backlogFactor is the part of k's count in the second being closed that is traffic, while
// catching up: the rest is the backlog a restart left.
func (d *dynamic) backlogFactor(k *keyRate) float64 {
	if d.second >= d.catchUp || k.cur <= k.noise() {
		return 1
	}
	return k.noise() / k.cur
}

// surgeSigmas is how far above its average, in Poisson standard deviations, a key's last second
// must be to count as a surge.
const surgeSigmas = 3

// roll closes the seconds that have passed and spreads the target again.
func (d *dynamic) roll(now time.Time) {
	if dt := now.Sub(d.lastAt).Seconds(); !d.lastAt.IsZero() && dt > 0 {
		d.debt *= math.Exp(-dt / debtMemory.Seconds())
	}
	d.lastAt = now
	s := now.Unix()
	if d.started.IsZero() {
		d.started, d.second = now, s
		return
	}
	if s <= d.second {
		return
	}
	first := !d.warm
	for ; d.second < s; d.second++ {
		decided := d.backlogFactor(&d.decisions)
		d.closeSecond(&d.arrivals, first, d.backlogFactor(&d.arrivals))
		d.closeSecond(&d.decisions, first, decided)
		for _, k := range d.keys {
			d.closeSecond(k, first, decided)
		}
		first = false
	}
	d.warm = true
	d.spread()
}

// closeSecond folds the second being counted, the part of it that is traffic, into k's average.
func (d *dynamic) closeSecond(k *keyRate, first bool, traffic float64) {
	n := k.cur * traffic
	if first {
		// The start fell within the second: scale its count to a whole one.
		n /= max(time.Unix(d.second+1, 0).Sub(d.started), warmUpFloor).Seconds()
		k.avg = n
	} else {
		k.avg += d.alpha * (n - k.avg)
	}
	k.prev, k.cur = n, 0
}

// spread allocates the target over the keys, smallest rate first, and forgets keys that no
// longer arrive.
func (d *dynamic) spread() {
	type est struct {
		k    *keyRate
		rate float64
	}
	ests := make([]est, 0, len(d.keys))
	for name, k := range d.keys {
		if k.avg < 0.01 && k.prev == 0 {
			delete(d.keys, name)
			continue
		}
		ests = append(ests, est{k, max(k.avg, k.prev)})
	}
	slices.SortFunc(ests, func(a, b est) int {
		switch {
		case a.rate < b.rate:
			return -1
		case a.rate > b.rate:
			return 1
		}
		return 0
	})
	budget := d.cfg.TargetPerSecond
	for i, e := range ests {
		e.k.share = min(e.rate, budget/float64(len(ests)-i))
		budget -= e.k.share
	}
}

// quantum is the ratio between neighbouring probabilities of the grid.
const quantum = 16

// quantize rounds a probability to the nearest point of the grid 2^(-n/16), and 1 above it.
func quantize(p float64) float64 {
	if p >= 1 || math.IsNaN(p) {
		return 1
	}
	if p <= 0 {
		return 0
	}
	return math.Exp2(math.Round(math.Log2(p)*quantum) / quantum)
}

// savedRates is what dynamic sampling knows, handed from one run to the next: without it, a
// restarted collector learns the rates again from the burst of traffic that waited for it.
type savedRates struct {
	At        time.Time
	Keys      []string
	Target    float64
	Arrivals  float64
	Decisions float64
	Debt      float64
	PerKey    map[string]savedKey
}

type savedKey struct{ Avg, Share float64 }

// staleAfter is how old saved rates may be, in adjustment intervals, and still describe the
// traffic: a rolling restart takes seconds, a collector down for long comes back to new traffic.
const staleAfter = 12

func (d *dynamic) save(now time.Time) savedRates {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := savedRates{At: now, Keys: d.cfg.Keys, Target: d.cfg.TargetPerSecond,
		Arrivals: d.arrivals.avg, Decisions: d.decisions.avg, Debt: d.debt, PerKey: make(map[string]savedKey, len(d.keys))}
	for name, k := range d.keys {
		r.PerKey[name] = savedKey{k.avg, k.share}
	}
	return r
}

// restore starts from rates a previous run saved, if they are recent and were kept for the same
// keys and target; it reports whether it did.
func (d *dynamic) restore(r savedRates, now time.Time) bool {
	age := now.Sub(r.At)
	if age < 0 || age > staleAfter*d.cfg.Window || r.Target != d.cfg.TargetPerSecond || !slices.Equal(r.Keys, d.cfg.Keys) ||
		r.Arrivals <= 0 || r.Decisions <= 0 {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// The second under way is counted from now: its part gone by is taken as average.
	gone := float64(now.UnixNano()%int64(time.Second)) / float64(time.Second)
	resume := func(avg float64) keyRate { return keyRate{cur: avg * gone, prev: avg, avg: avg} }
	d.started, d.second, d.lastAt, d.warm = now, now.Unix(), now, true
	d.catchUp = now.Add(d.cfg.Window).Unix() + 1
	d.arrivals, d.decisions = resume(r.Arrivals), resume(r.Decisions)
	d.debt = r.Debt * math.Exp(-age.Seconds()/debtMemory.Seconds())
	clear(d.keys)
	for name, k := range r.PerKey {
		if len(d.keys) >= d.cfg.MaxKeys {
			break
		}
		kr := resume(k.Avg)
		kr.share = k.Share
		d.keys[name] = &kr
	}
	return true
}
