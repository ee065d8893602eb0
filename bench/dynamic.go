package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/otelcol-vsr/otelcol-vsr/internal/loadgen"
)

// Dynamic sampling as bench/configs/dynamic.yaml sets it, and the traffic it is tried with.
const (
	dynamicTarget = 20.0
	dynamicRate   = 500.0
	dynamicWindow = 5 * time.Second
	newCategory   = "translation"
)

// restartAttempts let the load's sender wait out a collector restart, as the router's
// exporter retries.
const restartAttempts = 50

// dynamicRun is one dynamic sampling run: kept traces per second in each window of the
// traffic, by the root's start, and what each category sent and kept.
type dynamicRun struct {
	name       string
	windows    []float64
	keepAlways int
	sent, kept map[string]int
}

// runDynamic runs dynamic sampling steady, with the collector restarted half way (the router
// retries meanwhile), and with a new category from half way at a tenth of the traffic.
func runDynamic(o options, s *sink) ([]dynamicRun, error) {
	variants := []struct {
		name            string
		restart, newKey bool
	}{
		{"steady", false, false},
		{"collector restarted half way", true, false},
		{"new category at 10 % of traffic from half way", false, true},
	}
	var runs []dynamicRun
	for _, v := range variants {
		fmt.Fprintf(os.Stderr, "bench: dynamic sampling: %s\n", v.name)
		s.reset()
		run := dynamicRun{name: v.name, sent: map[string]int{}, kept: map[string]int{}}
		state, err := os.MkdirTemp("", "bench-state-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(state)
		c, err := startCollector(o.otelcol, filepath.Join(o.configs, "dynamic.yaml"), "dynamic", []string{"BENCH_STORAGE_DIR=" + state}, s)
		if err != nil {
			return nil, err
		}
		cfg := dynamicTraffic(dynamicRate, o.dynamicDuration, o.seed)
		start := time.Now()
		var extra []loadgen.Entry
		halfwayDone := make(chan struct{})
		halfway := time.AfterFunc(o.dynamicDuration/2, func() {
			defer close(halfwayDone)
			switch {
			case v.restart:
				if err := c.restart(); err != nil {
					fmt.Fprintln(os.Stderr, "bench: restart:", err)
				}
			case v.newKey:
				// A tenth of the traffic from now on: the rest goes on as it was.
				late := dynamicTraffic(dynamicRate/9, o.dynamicDuration/2, o.seed+1)
				late.Mix.NewCategory, late.Mix.NewCategoryRate = newCategory, 1
				_, extra, _ = send(c.endpoint(), late, restartAttempts)
			}
		})
		_, manifest, err := send(c.endpoint(), cfg, restartAttempts)
		if halfway.Stop() {
			close(halfwayDone)
		}
		<-halfwayDone
		if err != nil {
			c.kill()
			return nil, err
		}
		time.Sleep(2 * time.Second)
		s.waitQuiet(3 * time.Second)
		if _, _, err := c.stop(); err != nil {
			return nil, err
		}
		run.windows = run.count(append(manifest, extra...), start, o.dynamicDuration, s)
		runs = append(runs, run)
	}
	return runs, nil
}

// dynamicTraffic is the bench's traffic without what the sampler keeps always (errors, blocks,
// and guard matches the router routed): what is left is dynamic sampling's alone.
func dynamicTraffic(rate float64, d time.Duration, seed uint64) loadgen.Config {
	cfg := traffic(rate, d, seed)
	cfg.Mix.ErrorRate, cfg.Mix.BlockedRate, cfg.Mix.PIIRoutedRate = 0, 0, 0
	return cfg
}

// count tallies a run's traces and returns its kept traces per second per full window. A
// trace counts as kept when its spans arrived (the sampler keeps or drops whole traces);
// keep-always traces (none are sent) apart.
func (run *dynamicRun) count(manifest []loadgen.Entry, start time.Time, d time.Duration, s *sink) []float64 {
	windows := make([]float64, int(d/dynamicWindow))
	for _, e := range manifest {
		run.sent[e.Category]++
		if !slices.ContainsFunc(e.SpanIDs, func(id string) bool { _, ok := s.arrived(id); return ok }) {
			continue
		}
		if e.MustKeep {
			run.keepAlways++
			continue
		}
		run.kept[e.Category]++
		if w := int(time.Unix(0, e.Start).Sub(start) / dynamicWindow); w >= 0 && w < len(windows) {
			windows[w] += 1 / dynamicWindow.Seconds()
		}
	}
	return windows
}

func writeDynamic(b *strings.Builder, runs []dynamicRun) {
	fmt.Fprintf(b, "\n## Dynamic sampling windows\n\n`bench/configs/dynamic.yaml`: target %.0f kept traces/s over `category.name`, `adjustment_interval: 5s`; %.0f traces/s with no errors, blocks, PII-routed or slow requests (the sampler keeps the first three always). "+
		"Kept traces per second in each %s window, by the request's start (target ±20 %%: %.0f–%.0f).\n\n",
		dynamicTarget, dynamicRate, dynamicWindow, 0.8*dynamicTarget, 1.2*dynamicTarget)
	b.WriteString("| run | kept traces/s per window | worst window × target | keep-always kept |\n|---|---|---|---|\n")
	for _, r := range runs {
		var ws []string
		worst := 1.0
		for _, w := range r.windows {
			ws = append(ws, fmt.Sprintf("%.1f", w))
			if ratio := w / dynamicTarget; absDiff(ratio, 1) > absDiff(worst, 1) {
				worst = ratio
			}
		}
		fmt.Fprintf(b, "| %s | %s | %.2f× | %d |\n", r.name, strings.Join(ws, ", "), worst, r.keepAlways)
	}
	for _, r := range runs {
		if r.name != "steady" && !strings.HasPrefix(r.name, "new category") {
			continue
		}
		fmt.Fprintf(b, "\nKept share against sent share per category, %s:\n\n| category | sent | kept | sent share | kept share | kept of sent |\n|---|---|---|---|---|---|\n", r.name)
		sentTotal, keptTotal := 0, 0
		for _, n := range r.sent {
			sentTotal += n
		}
		for _, n := range r.kept {
			keptTotal += n
		}
		cats := make([]string, 0, len(r.sent))
		for c := range r.sent {
			cats = append(cats, c)
		}
		slices.SortFunc(cats, func(a, c string) int { return r.sent[c] - r.sent[a] })
		for _, c := range cats {
			fmt.Fprintf(b, "| %s | %d | %d | %.1f %% | %.1f %% | %.1f %% |\n", c, r.sent[c], r.kept[c],
				100*float64(r.sent[c])/float64(sentTotal), 100*float64(r.kept[c])/max(float64(keptTotal), 1), 100*float64(r.kept[c])/float64(r.sent[c]))
		}
	}
}

func absDiff(a, b float64) float64 {
	if a > b {
		return a - b
	}
	return b - a
}
