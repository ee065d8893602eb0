package main

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/otelcol-vsr/otelcol-vsr/internal/promtext"
)

// turnover is how a sampler's budget turned over during a load, from its own telemetry:
// what it held on average, and how long a trace stayed in flight by Little's law (traces in
// flight / traces decided per second). A budget full of traces that stay as long as they do
// unconstrained is turning over as fast as the traffic lets it.
type turnover struct {
	heldBytes, heldTraces, limitBytes float64
	decidedPerSec                     float64
}

func (t turnover) stay() time.Duration {
	if t.decidedPerSec == 0 {
		return 0
	}
	return time.Duration(t.heldTraces / t.decidedPerSec * float64(time.Second))
}

// Telemetry the turnover is read from (collector-config.yaml's Prometheus names).
const (
	metricHeldBytes  = "otelcol_processor_vsr_sampler_buffered_bytes"
	metricHeldTraces = "otelcol_processor_vsr_sampler_buffered_traces"
	metricLimit      = "otelcol_processor_vsr_sampler_buffer_limit"
	metricDecided    = "otelcol_processor_vsr_sampler_traces_decided"
	// metricJournalWritten is the crash journal's bytes written.
	metricJournalWritten = "otelcol_processor_vsr_sampler_journal_written_bytes"
)

// turnoverWarmUp leaves out the load's first seconds, while the buffer fills.
const turnoverWarmUp = 5 * time.Second

// watchTurnover samples the sampler's telemetry every second until done is closed, from
// turnoverWarmUp on, and returns the averages; none for a load shorter than that (smoke runs).
func watchTurnover(port int, done <-chan struct{}) (turnover, error) {
	select {
	case <-time.After(turnoverWarmUp):
	case <-done:
		return turnover{}, nil
	}
	first, err := scrape(port)
	if err != nil {
		return turnover{}, err
	}
	start, last := time.Now(), first
	var t turnover
	samples := 0
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			if samples == 0 {
				return turnover{}, nil
			}
			elapsed := time.Since(start).Seconds()
			t.heldBytes /= float64(samples)
			t.heldTraces /= float64(samples)
			t.limitBytes = last[metricLimit]
			t.decidedPerSec = (last[metricDecided] - first[metricDecided]) / elapsed
			return t, nil
		case <-tick.C:
			m, err := scrape(port)
			if err != nil {
				return turnover{}, err
			}
			t.heldBytes += m[metricHeldBytes]
			t.heldTraces += m[metricHeldTraces]
			samples++
			last = m
		}
	}
}

var scrapeClient = &http.Client{Timeout: 5 * time.Second}

// scrape reads the turnover's metrics, each summed over its series.
func scrape(port int) (map[string]float64, error) {
	m, err := promtext.Sums(scrapeClient, fmt.Sprintf("http://127.0.0.1:%d/metrics", port), func(name, _ string) bool {
		switch name {
		case metricHeldBytes, metricHeldTraces, metricLimit, metricDecided:
			return true
		}
		return false
	})
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	return m, nil
}

// scrapeOne reads one metric's sum over its series.
func scrapeOne(port int, metric string) (float64, error) {
	m, err := promtext.Sums(scrapeClient, fmt.Sprintf("http://127.0.0.1:%d/metrics", port), func(name, _ string) bool { return name == metric })
	if err != nil {
		return 0, fmt.Errorf("telemetry: %w", err)
	}
	v, ok := m[metric]
	if !ok {
		return 0, fmt.Errorf("telemetry: no %s", metric)
	}
	return v, nil
}

// writeTurnover reports the budget's turnover for the rows run with the sampler's telemetry.
func writeTurnover(b *strings.Builder, table map[string][]result) {
	var rows strings.Builder
	for _, sc := range scenarios {
		var held, share, traces, rate, stay, per []float64
		for _, r := range table[sc.name] {
			t := r.turnover
			if t.limitBytes == 0 {
				continue // telemetry off, or a load too short to sample
			}
			held = append(held, t.heldBytes/(1<<20))
			share = append(share, 100*t.heldBytes/t.limitBytes)
			traces = append(traces, t.heldTraces)
			rate = append(rate, t.decidedPerSec)
			stay = append(stay, t.stay().Seconds())
			per = append(per, t.heldBytes/max(t.heldTraces, 1)/1024)
		}
		if len(held) > 0 {
			fmt.Fprintf(&rows, "| %s | %.1f | %.0f %% | %.0f | %.0f | %.2f s | %.2f |\n",
				sc.name, median(held), median(share), median(traces), median(rate), median(stay), median(per))
		}
	}
	if rows.Len() == 0 {
		return
	}
	b.WriteString("\n### How the budget turns over\n\nFrom the sampler's telemetry, sampled every second of the load after its first " +
		turnoverWarmUp.String() + " (rows with the telemetry on only; medians over rounds). " +
		"Time in flight is Little's law: traces in flight / traces decided per second.\n\n" +
		"| scenario | buffered MiB (mean) | of max_buffer_bytes | traces in flight (mean) | traces decided / s | time in flight | KiB per trace in flight |\n|---|---|---|---|---|---|---|\n")
	b.WriteString(rows.String())
}
