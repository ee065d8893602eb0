package sampler

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
)

// overflowKey is shared by the traces whose key arrived after MaxKeys were tracked.
const overflowKey = "\x00overflow"

// dynamic computes per-key keep probabilities that aim at a total rate of kept traces,
// spread so that rare keys are kept more often than common ones (as Refinery's throughput
// samplers do), and holds that rate from the first second: it never waits a whole window
// knowing nothing.
//
// Each key's arrival rate is estimated from the traces decided, per wall-clock second: the
// average of the seconds of the last adjustment interval, replaced by the last second's count
// when a key surges beyond every second of that interval. In the cold phase, the first export
// interval, the traffic's rate is learnt from the router pods' own clocks instead (see sources).
// A trace's key is known only once it is decided, a request's duration after its first span
// arrived: while decisions lag arrivals (at a start, a restart, or traffic resuming), the keys'
// estimates are scaled by the ratio of traces arriving to traces decided. Every second, the
// target is spread over the keys smallest first: a key needing less than its fair share is kept
// entirely and leaves the rest to the others. A key that appears between two spreads gets a
// fair share of its own until the next. Probabilities are rounded to a grid (2^(1/16)), so that
// collectors whose estimates differ by a little still agree.
type dynamic struct {
	cfg Dynamic

	mu sync.Mutex
	// second is the wall-clock second being counted; started is when the first trace arrived;
	// cold is set until the cold phase is over (atomic: settle asks without the lock).
	second  int64
	started time.Time
	cold    atomic.Bool
	// sources are the router pods seen in the cold phase, by their resource, and coldRate the
	// sum of their rates: the traffic's. Until a pod has exported once nothing tells it apart
	// from a pod that does not exist, but its first export carries all it queued since its
	// previous one, with the times it queued them: a pod seen late is counted with all it sent
	// before, where the collector's own seconds see a burst and then silence until the next.
	sources  map[uint64]*source
	coldRate float64
	// seconds is how many closed seconds a rate averages: one adjustment interval.
	seconds int
	keys    map[string]*keyRate
	// arrivals and decisions count every trace as it arrives and as it is decided, dynamic or
	// not, by the same seconds as the keys.
	arrivals, decisions *keyRate
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
	// cur and prev count this second's and the last closed second's traces.
	cur, prev float64
	// closed are the counts of the last closed seconds, a ring written at next, of which filled
	// are set; sum and peak are their sum and largest. A plain average, not one that weighs recent
	// seconds more: traffic comes in bursts (each router pod exports every few seconds), and such
	// an average would swing with every burst. Nor is a burst a surge while the interval holds
	// others as large.
	closed       []float64
	next, filled int
	sum, peak    float64
	// share is the key's allocation of kept traces per second; 0 before its first spread.
	share float64
}

func (d *dynamic) newKeyRate() *keyRate { return &keyRate{closed: make([]float64, d.seconds)} }

// avg is the average count of the closed seconds.
func (k *keyRate) avg() float64 {
	if k.filled == 0 {
		return 0
	}
	return k.sum / float64(k.filled)
}

// push closes a second that counted n.
func (k *keyRate) push(n float64) {
	k.closed[k.next] = n
	k.next = (k.next + 1) % len(k.closed)
	k.filled = min(k.filled+1, len(k.closed))
	k.sum, k.peak = 0, 0
	for _, c := range k.closed[:k.filled] {
		k.sum, k.peak = k.sum+c, max(k.peak, c)
	}
	k.prev, k.cur = n, 0
}

// scale multiplies the closed seconds' counts by f.
func (k *keyRate) scale(f float64) {
	for i := range k.closed {
		k.closed[i] *= f
	}
	k.sum, k.peak, k.prev = k.sum*f, k.peak*f, k.prev*f
}

// maxSeconds bounds the seconds a rate averages, and so the memory of a key.
const maxSeconds = 60

func newDynamic(cfg Dynamic) *dynamic {
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = 1000
	}
	d := &dynamic{cfg: cfg, seconds: min(max(int(math.Round(cfg.Window.Seconds())), 1), maxSeconds),
		keys: map[string]*keyRate{}, sources: map[uint64]*source{}}
	d.arrivals, d.decisions = d.newKeyRate(), d.newKeyRate()
	d.cold.Store(true)
	return d
}

// minRateSpan bounds the time a pod's rate is measured over: a handful of traces queued within
// milliseconds do not make a rate.
const minRateSpan = 100 * time.Millisecond

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
			k = d.newKeyRate()
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

// arrived counts a trace whose first spans just arrived from src, which queued the first of
// them at queued.
func (d *dynamic) arrived(now, queued time.Time, src uint64) {
	d.mu.Lock()
	d.roll(now)
	d.arrivals.cur++
	if d.cold.Load() {
		d.learn(now, queued, src)
	}
	d.mu.Unlock()
}

// source is what the cold phase knows of one router pod: n traces, queued between first and
// last by its clock.
type source struct {
	n           float64
	first, last time.Time
}

// maxSources bounds the pods told apart in the cold phase; the rest count as one.
const maxSources = 10_000

// learn counts a trace of src in the cold phase. Clocks disagree: its queue time is taken
// within the export interval before now.
func (d *dynamic) learn(now, queued time.Time, src uint64) {
	at := queued
	if lo := now.Add(-routerconv.ExportInterval); at.Before(lo) {
		at = lo
	}
	if at.After(now) {
		at = now
	}
	p := d.sources[src]
	if p == nil {
		if len(d.sources) >= maxSources {
			src = 0
			p = d.sources[src]
		}
		if p == nil {
			p = &source{first: at, last: at}
			d.sources[src] = p
		}
	}
	d.coldRate -= p.rate()
	p.n++
	if at.Before(p.first) {
		p.first = at
	}
	if at.After(p.last) {
		p.last = at
	}
	d.coldRate += p.rate()
}

// rate is the pod's traces per second.
func (p *source) rate() float64 { return p.n / max(p.last.Sub(p.first), minRateSpan).Seconds() }

// decided counts a trace being decided, before rate is asked for it. Each decision owes its
// part of the target, target/traffic rate: the debt grows with the traffic decided, not with
// the clock, so that neither the seconds before the first request ends nor a pause in traffic
// are kept for later.
func (d *dynamic) decided(now time.Time) {
	d.mu.Lock()
	d.roll(now)
	d.decisions.cur++
	d.debt += d.cfg.TargetPerSecond / max(d.traffic(now), d.cfg.TargetPerSecond)
	d.mu.Unlock()
}

// estimate is a key's arrival rate, traces per second: its share of the traces decided, times
// the traffic. Only a decision knows a trace's key, but decisions come a request's duration
// after arrivals: at a start they undercount every key alike, and the share does not depend on
// it.
func (d *dynamic) estimate(k *keyRate, now time.Time) float64 {
	return d.share(k, now) * d.traffic(now)
}

// traffic is the rate traces arrive at, or the average rate they are decided at when that is
// larger: while traffic stops, arrivals fall before decisions do. Decisions come in bursts (an
// export completes many requests at once, a restart's backlog more): only their average counts,
// and only once the cold phase has given it seconds to average.
func (d *dynamic) traffic(now time.Time) float64 {
	if d.cold.Load() {
		return d.coldRate
	}
	return max(d.arrivalRate(now), d.decisions.avg())
}

// share is a key's part of the decisions, counted over the same seconds for both: the last
// second when the key surges, else the averages, which lag alike.
func (d *dynamic) share(k *keyRate, now time.Time) float64 {
	if d.cold.Load() {
		return min((k.sum+k.cur)/max(d.decisions.sum+d.decisions.cur, 1), 1)
	}
	if k.sum == 0 || k.surging() {
		return min(d.last(k, now)/max(d.last(d.decisions, now), 1), 1)
	}
	return min(k.avg()/max(d.decisions.avg(), 1e-9), 1)
}

// arrivalRate is traces arriving per second after the cold phase: the average, replaced by the last second
// when arrivals surge (taking the larger of two noisy figures every time would keep too few).
func (d *dynamic) arrivalRate(now time.Time) float64 {
	if k := d.arrivals; k.sum == 0 || k.surging() && now.Unix() >= d.catchUp {
		return d.last(k, now)
	}
	return d.arrivals.avg()
}

// last is k's count over the last second: the second under way, and the part of the last
// closed second that a full second back still covers.
func (d *dynamic) last(k *keyRate, now time.Time) float64 {
	frac := float64(now.UnixNano()-d.second*int64(time.Second)) / float64(time.Second)
	return k.cur + k.prev*(1-frac)
}

// surging: the second under way already counts beyond every closed second of the interval
// and its noise.
func (k *keyRate) surging() bool { return k.cur > k.noise() }

// noise is the count of a second beyond which k surges.
func (k *keyRate) noise() float64 { return k.peak + surgeSigmas*math.Sqrt(max(k.peak, 1)) }

// backlogFactor is the part of k's count in the second being closed that is traffic, while
// catching up: the rest is the backlog a restart left.
func (d *dynamic) backlogFactor(k *keyRate) float64 {
	if d.second >= d.catchUp || k.cur <= k.noise() {
		return 1
	}
	return k.noise() / k.cur
}

// surgeSigmas is how far above the interval's largest second, in Poisson standard deviations, a
// key's second under way must count to be a surge.
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
	for ; d.second < s; d.second++ {
		decided := d.backlogFactor(d.decisions)
		d.arrivals.push(d.arrivals.cur * d.backlogFactor(d.arrivals))
		d.decisions.push(d.decisions.cur * decided)
		for _, k := range d.keys {
			k.push(k.cur * decided)
		}
		// The seconds after the first counted nothing, and the rates keep only the interval's
		// last: after an idle hour, closing each would hold the lock for its 3600.
		if empty := s - d.second - 1; empty > int64(d.seconds) {
			d.second += empty - int64(d.seconds)
		}
	}
	if d.cold.Load() && now.Sub(d.started) >= coldPhase {
		d.arrivals.scale(d.coldRate / max(d.arrivals.avg(), 1e-9))
		// Decisions beyond the traffic are a backlog that waited for the start: the keys keep
		// their shares of them.
		if f := d.coldRate / max(d.decisions.avg(), 1e-9); f < 1 {
			d.decisions.scale(f)
			for _, k := range d.keys {
				k.scale(f)
			}
		}
		d.endCold()
	}
	rateOf := func(k *keyRate) float64 { return max(k.avg(), k.prev) }
	if d.cold.Load() {
		rateOf = func(k *keyRate) float64 { return d.share(k, now) * d.coldRate }
	}
	d.spread(rateOf)
}

// coldPhase is how long rates are learnt from the router pods' own clocks: by its end every pod
// has exported at least once. Its seconds, as the collector counted them, keep their pattern of
// bursts (so that the next burst is no surge), brought to the rate the pods tell.
const coldPhase = routerconv.ExportInterval

func (d *dynamic) endCold() {
	d.sources, d.coldRate = nil, 0
	d.cold.Store(false)
}

// spread allocates the target over the keys by their rates, smallest first, and forgets keys
// that no longer arrive.
func (d *dynamic) spread(rateOf func(*keyRate) float64) {
	type est struct {
		k    *keyRate
		rate float64
	}
	ests := make([]est, 0, len(d.keys))
	for name, k := range d.keys {
		r := rateOf(k)
		if r == 0 {
			delete(d.keys, name)
			continue
		}
		ests = append(ests, est{k, r})
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
		Arrivals: d.arrivals.avg(), Decisions: d.decisions.avg(), Debt: d.debt, PerKey: make(map[string]savedKey, len(d.keys))}
	for name, k := range d.keys {
		r.PerKey[name] = savedKey{k.avg(), k.share}
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
	resume := func(avg float64) *keyRate {
		k := d.newKeyRate()
		for range k.closed {
			k.push(avg)
		}
		k.cur = avg * gone
		return k
	}
	d.started, d.second, d.lastAt = now, now.Unix(), now
	d.endCold()
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
		d.keys[name] = kr
	}
	return true
}
