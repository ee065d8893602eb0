package sampler

import (
	"strings"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/sampling"
)

// readTraceState returns the OTEP 235 randomness and threshold a W3C tracestate carries.
func readTraceState(raw string) (rnd sampling.Randomness, hasRnd bool, th sampling.Threshold, hasTh bool) {
	w3c, err := sampling.NewW3CTraceState(raw)
	if err != nil {
		return rnd, false, th, false
	}
	rnd, hasRnd = w3c.OTelValue().RValueRandomness()
	th, hasTh = w3c.OTelValue().TValueThreshold()
	return rnd, hasRnd, th, hasTh
}

// stampTraceState writes th into a tracestate's ot entry, never lowering a threshold already
// there: an earlier sampler kept the trace at that probability. An unparseable tracestate is
// left as it is.
func stampTraceState(raw string, th sampling.Threshold) string {
	w3c, err := sampling.NewW3CTraceState(raw)
	if err != nil {
		return raw
	}
	ot := w3c.OTelValue()
	if cur, ok := ot.TValueThreshold(); ok && !sampling.ThresholdLessThan(cur, th) {
		return raw
	}
	if ot.UpdateTValueWithSampling(th) != nil {
		return raw
	}
	var b strings.Builder
	if w3c.Serialize(&b) != nil {
		return raw
	}
	return b.String()
}

// maxThreshold is the stricter of two thresholds.
func maxThreshold(a, b sampling.Threshold) sampling.Threshold {
	if sampling.ThresholdGreater(b, a) {
		return b
	}
	return a
}
