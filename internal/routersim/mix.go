package routersim

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
)

// Mix is the shape of simulated traffic: which eras, how often requests fail, are blocked,
// are slow or hit the cache. Rates are fractions in [0, 1].
type Mix struct {
	// EraWeights weigh eras A, B, C, D; a rolling upgrade has several at once.
	EraWeights   [4]float64
	ErrorRate    float64
	BlockedRate  float64
	SlowRate     float64
	CacheHitRate float64
	// PIIRoutedRate is how often a decision routes a request on a PII match instead of
	// blocking it (OutcomePIIRouted).
	PIIRoutedRate float64
	// RemoteParentRate is how often the client sends a traceparent.
	RemoteParentRate float64
	// ModelServerRate is how often the model server traces the request too.
	ModelServerRate float64
	// NewCategory, at NewCategoryRate of requests, is a route the others have not seen: a
	// category added while traffic runs.
	NewCategory     string
	NewCategoryRate float64
}

// DefaultMix is a rolling upgrade in progress with realistic failure rates.
func DefaultMix() Mix {
	return Mix{
		EraWeights:       [4]float64{0.1, 0.1, 0.4, 0.4},
		ErrorRate:        0.02,
		BlockedRate:      0.02,
		SlowRate:         0.01,
		CacheHitRate:     0.1,
		RemoteParentRate: 0.5,
		ModelServerRate:  0.5,
	}
}

// Categories and Models are drawn Zipf-skewed: a few routes carry most traffic.
var (
	Categories = []string{"other", "coding", "math", "business", "health", "law", "physics", "history", "psychology", "philosophy"}
	Models     = []string{"qwen3-8b", "llama-3.1-70b-instruct", "deepseek-r1-distill", "gpt-oss-20b", "mistral-7b-instruct", "phi-4"}
)

// PromptMarker starts every simulated prompt, so tests can search exported data for leaks.
const PromptMarker = "vsrgen-prompt"

// Drawer draws requests from a Mix with one random source.
type Drawer struct {
	mix      Mix
	rng      *rand.Rand
	category *rand.Zipf
	model    *rand.Zipf
	seq      uint64
}

// NewDrawer returns a Drawer; the same seed gives the same requests.
func NewDrawer(mix Mix, rng *rand.Rand) *Drawer {
	return &Drawer{
		mix:      mix,
		rng:      rng,
		category: rand.NewZipf(rng, 1.3, 1, uint64(len(Categories)-1)),
		model:    rand.NewZipf(rng, 1.5, 1, uint64(len(Models)-1)),
	}
}

// Rand is the Drawer's random source, to build the drawn requests with.
func (d *Drawer) Rand() *rand.Rand { return d.rng }

// Draw returns the next request, starting at start.
func (d *Drawer) Draw(start time.Time) Request {
	d.seq++
	req := Request{
		Era:          d.era(),
		Category:     d.categoryName(),
		Model:        Models[d.model.Uint64()],
		Start:        start,
		RemoteParent: d.rng.Float64() < d.mix.RemoteParentRate,
	}
	req.Prompt = fmt.Sprintf("%s %d: help me with this %s question, reply to jane.doe@example.com", PromptMarker, d.seq, req.Category)
	switch x := d.rng.Float64(); {
	case x < d.mix.ErrorRate:
		req.Outcome = OutcomeError
	case x < d.mix.ErrorRate+d.mix.BlockedRate:
		req.Outcome = OutcomeJailbreak
		if d.rng.IntN(2) == 0 {
			req.Outcome = OutcomePII
		}
	case x < d.mix.ErrorRate+d.mix.BlockedRate+d.mix.PIIRoutedRate:
		req.Outcome = OutcomePIIRouted
	case x < d.mix.ErrorRate+d.mix.BlockedRate+d.mix.PIIRoutedRate+d.mix.CacheHitRate:
		req.Outcome = OutcomeCacheHit
	}
	req.Slow = req.Outcome == OutcomeOK && d.rng.Float64() < d.mix.SlowRate
	req.Streaming = req.Era == routerconv.EraD && d.rng.IntN(2) == 0
	req.ModelServer = d.rng.Float64() < d.mix.ModelServerRate
	return req
}

func (d *Drawer) categoryName() string {
	if d.mix.NewCategory != "" && d.rng.Float64() < d.mix.NewCategoryRate {
		return d.mix.NewCategory
	}
	return Categories[d.category.Uint64()]
}

func (d *Drawer) era() routerconv.Era {
	total := 0.0
	for _, w := range d.mix.EraWeights {
		total += w
	}
	x := d.rng.Float64() * total
	for i, w := range d.mix.EraWeights {
		if x < w {
			return routerconv.Era(i + 1)
		}
		x -= w
	}
	return routerconv.EraD
}
