package main

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/otelcol-vsr/otelcol-vsr/internal/loadgen"
)

// result is what one run of one scenario measured.
type result struct {
	cpu               time.Duration
	peakRSSKiB        int64
	offered, achieved float64
	spansIn           int64
	spansOut          int
	mustKeep          int
	mustKeepSeen      int
	failedSpans       int64
	// endToExport are, for traces exported whole, the delays from the trace's last span end
	// to the arrival of its last span; byEra splits them by router era. Both leave out
	// blockWaits: the era A and C blocks that show only by the model call that never comes,
	// whose root waits out model_call_wait.
	endToExport []time.Duration
	byEra       map[string][]time.Duration
	blockWaits  []time.Duration
	// turnover is read from the sampler's telemetry, for scenarios that turn it on;
	// journalBytes too, for scenarios with a crash journal.
	turnover     turnover
	journalBytes float64
}

func (r *result) measure(manifest []loadgen.Entry, s *sink) {
	r.spansOut = s.count()
	r.byEra = map[string][]time.Duration{}
	for _, e := range manifest {
		var last time.Time
		seen := 0
		for _, id := range e.SpanIDs {
			if at, ok := s.arrived(id); ok {
				seen++
				if at.After(last) {
					last = at
				}
			}
		}
		if e.MustKeep && e.FailedSpans == 0 {
			r.mustKeep++
			if seen == len(e.SpanIDs) {
				r.mustKeepSeen++
			} else if *showLost {
				fmt.Fprintf(os.Stderr, "bench: must-keep trace %s (%s/%s, out of order: %v, late: %v) has %d of %d spans\n",
					e.TraceID, e.Era, e.Outcome, e.OutOfOrder, e.Late, seen, len(e.SpanIDs))
			}
		}
		if seen == len(e.SpanIDs) && !e.Late && !e.OutOfOrder {
			d := last.Sub(time.Unix(0, e.LastEnd))
			if blockedByAbsence(e) {
				r.blockWaits = append(r.blockWaits, d)
				continue
			}
			r.endToExport = append(r.endToExport, d)
			r.byEra[e.Era] = append(r.byEra[e.Era], d)
		}
	}
}

// blockedByAbsence reports whether a request was blocked in a way only the model call that
// never comes shows: era A's PII block (its jailbreak block says so), era C's blocks.
func blockedByAbsence(e loadgen.Entry) bool {
	return e.Era == "A" && e.Outcome == "pii" || e.Era == "C" && (e.Outcome == "pii" || e.Outcome == "jailbreak")
}

func (r result) mustKeepPct() float64 { return wholePct(r.mustKeepSeen, r.mustKeep) }

// wholePct is seen as a percentage of all, rounded down to 0.1: 9492 of 9495 must not read 100.0 %.
func wholePct(seen, all int) float64 {
	return math.Floor(1000*float64(seen)/max(float64(all), 1)) / 10
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(p*float64(len(s)-1))]
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// summary is one scenario's medians over the rounds.
type summary struct {
	cpuPerMillion, rssMiB, spansIn, spansOut, p50, p99 float64
	// journalPerSpan is the crash journal's bytes written per span in.
	journalPerSpan                 float64
	mustKeep, mustKeepSeen, failed int
	eraP50, eraP99                 map[string]float64
	// blockP50, blockP99 are the delays of era A and C blocks' roots (blockWaits).
	blockP50, blockP99 float64
}

func summarize(rs []result) summary {
	var cpu, rss, in, out, p50, p99, block50, block99, journal []float64
	s := summary{eraP50: map[string]float64{}, eraP99: map[string]float64{}}
	eras := map[string][2][]float64{}
	for _, r := range rs {
		cpu = append(cpu, r.cpu.Seconds()/float64(r.spansIn)*1e6)
		rss = append(rss, float64(r.peakRSSKiB)/1024)
		journal = append(journal, r.journalBytes/float64(r.spansIn))
		in = append(in, float64(r.spansIn))
		out = append(out, float64(r.spansOut))
		p50 = append(p50, percentile(r.endToExport, 0.5).Seconds())
		p99 = append(p99, percentile(r.endToExport, 0.99).Seconds())
		if len(r.blockWaits) > 0 {
			block50 = append(block50, percentile(r.blockWaits, 0.5).Seconds())
			block99 = append(block99, percentile(r.blockWaits, 0.99).Seconds())
		}
		for era, ds := range r.byEra {
			e := eras[era]
			e[0], e[1] = append(e[0], percentile(ds, 0.5).Seconds()), append(e[1], percentile(ds, 0.99).Seconds())
			eras[era] = e
		}
		s.mustKeep += r.mustKeep
		s.mustKeepSeen += r.mustKeepSeen
		s.failed += int(r.failedSpans)
	}
	s.cpuPerMillion, s.rssMiB, s.spansIn, s.spansOut = median(cpu), median(rss), median(in), median(out)
	s.p50, s.p99, s.journalPerSpan = median(p50), median(p99), median(journal)
	s.blockP50, s.blockP99 = median(block50), median(block99)
	for era, e := range eras {
		s.eraP50[era], s.eraP99[era] = median(e[0]), median(e[1])
	}
	return s
}

func (s summary) mustKeepPct() float64 { return wholePct(s.mustKeepSeen, s.mustKeep) }

// report is everything one bench run measured.
type report struct {
	options
	table   map[string][]result
	sigterm map[string]result
	curve   []curvePoint
	dynamic []dynamicRun
}

func (rep report) markdown(svg string, args []string) string {
	var b strings.Builder
	b.WriteString("# Benchmarks\n\nGenerated by `make bench` (`bench/`); the notes at the end are written by hand.\n\n")
	if len(rep.table) > 0 {
		rep.writeTable(&b)
	}
	if len(rep.curve) > 0 {
		writeCurve(&b, rep.curve, svg)
	}
	if len(rep.dynamic) > 0 {
		writeDynamic(&b, rep.dynamic)
	}
	fmt.Fprintf(&b, "\nMachine: %d CPUs (%s), %s, %s/%s. Command: `go run ./bench %s`.\n",
		runtime.NumCPU(), cpuModel(), runtime.Version(), runtime.GOOS, runtime.GOARCH, strings.Join(args, " "))
	if notes, err := os.ReadFile("bench/notes.md"); err == nil {
		b.WriteString("\n")
		b.Write(notes)
	}
	return b.String()
}

func (rep report) writeTable(b *strings.Builder) {
	sums := map[string]summary{}
	for name, rs := range rep.table {
		sums[name] = summarize(rs)
	}
	fmt.Fprintf(b, "## Side by side\n\nLoad: %.0f traces/s (≈7 spans each; 3× rows: %.0f) for %s per run, %d rounds, scenarios interleaved; medians over rounds. "+
		"Each run waits for its setup's decisions and a quiet sink before SIGTERM; the SIGTERM column is a run of half the length stopped as its load ends, as a rollout does. "+
		"Ratios are against the pass-through row at the same load and cores.\n\n", rep.rate, 3*rep.rate, rep.duration, rep.rounds)
	b.WriteString("| scenario | CPU s / 1M spans in | × pass-through | × tuned contrib | peak RSS MiB | RSS − pass-through | spans in | spans out | must-keep traces whole | must-keep whole, SIGTERM during load | trace end → export p50 / p99 | refused spans |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, sc := range scenarios {
		s, ok := sums[sc.name]
		if !ok {
			continue
		}
		base := sums[sc.baseline]
		tuned := "–"
		if t, ok := sums[tunedPeer(sc)]; ok && sc.rateFactor == 1 {
			tuned = fmt.Sprintf("%.2f", s.cpuPerMillion/t.cpuPerMillion)
		}
		sig := "–"
		if r, ok := rep.sigterm[sc.name]; ok {
			sig = fmt.Sprintf("%d / %d (%.1f%%)", r.mustKeepSeen, r.mustKeep, r.mustKeepPct())
		}
		fmt.Fprintf(b, "| %s | %.2f | %.2f | %s | %.0f | %+.0f | %.0f | %.0f | %d / %d (%.1f%%) | %s | %.2f s / %.2f s | %d |\n",
			sc.name, s.cpuPerMillion, s.cpuPerMillion/base.cpuPerMillion, tuned, s.rssMiB, s.rssMiB-base.rssMiB,
			s.spansIn, s.spansOut, s.mustKeepSeen, s.mustKeep, s.mustKeepPct(), sig, s.p50, s.p99, s.failed)
	}
	pass, tuned, ours := sums[rowPass], sums[rowTuned], sums[rowOurs]
	b.WriteString("\n| goal | target | this run |\n|---|---|---|\n")
	fmt.Fprintf(b, "| pipeline CPU per span vs pass-through | ≤ 1.25× | %.2f× |\n", ours.cpuPerMillion/pass.cpuPerMillion)
	fmt.Fprintf(b, "| pipeline CPU per span vs tuned contrib | ≥ 2× cheaper | %.2f× cheaper |\n", tuned.cpuPerMillion/ours.cpuPerMillion)
	if attrs, off := sums[rowAttrs], sums[rowAttrsOff]; off.cpuPerMillion > 0 {
		fmt.Fprintf(b, "| `%s` vs `%s` (the privacy walk's cost) | ≤ 1.15× | %.2f× |\n", rowAttrs, rowAttrsOff, attrs.cpuPerMillion/off.cpuPerMillion)
	}
	if o1, p1 := sums[rowOurs+", GOMAXPROCS=1"], sums[rowPass1CPU]; p1.cpuPerMillion > 0 {
		fmt.Fprintf(b, "| the same on one core (GOMAXPROCS=1) | ≤ 1.25× | %.2f× (tuned contrib: %.2f×) |\n",
			o1.cpuPerMillion/p1.cpuPerMillion, sums[rowTuned+", GOMAXPROCS=1"].cpuPerMillion/p1.cpuPerMillion)
	}
	if j, t := sums[rowJournal], sums[rowOursTelemetry]; t.cpuPerMillion > 0 {
		fmt.Fprintf(b, "| CPU per span with the crash journal vs without (both telemetry on) | ≤ 1.10× | %.2f× (%.0f B written per span; p99 end → export %.2f s vs %.2f s; peak RSS %+.0f MiB) |\n",
			j.cpuPerMillion/t.cpuPerMillion, j.journalPerSpan, j.p99, t.p99, j.rssMiB-t.rssMiB)
	}
	fmt.Fprintf(b, "| peak RSS, 1× with spill | ≤ pass-through + 64 MiB | %+.0f MiB |\n", sums["ours, spill"].rssMiB-pass.rssMiB)
	fmt.Fprintf(b, "| peak RSS, 3× with spill | ≤ pass-through + 64 MiB | %+.0f MiB |\n", sums["ours, 3× load, 8 MiB budget, spill"].rssMiB-sums[rowPass3].rssMiB)
	spill3 := sums["ours, 3× load, 8 MiB budget, spill"]
	fmt.Fprintf(b, "| must-keep whole, 3× load, 8 MiB budget, spill | 100 %%, 0 refused | %d / %d (%.1f %%), %d refused |\n",
		spill3.mustKeepSeen, spill3.mustKeep, spill3.mustKeepPct(), spill3.failed)
	eras := []string{"A", "B", "C", "D"}
	var p99s []string
	for _, era := range eras {
		p99s = append(p99s, fmt.Sprintf("%s %.2f s", era, ours.eraP99[era]))
	}
	fmt.Fprintf(b, "| kept trace exported after its last span ends, p99, era by era | ≤ 0.25 s | %s |\n", strings.Join(p99s, ", "))
	fmt.Fprintf(b, "| root of an era A or C block (no model call) exported after its last span ends, p99 | model_call_wait (%s here, 20m35s shipped) | %.2f s |\n",
		modelCallWait, ours.blockP99)
	b.WriteString("\nTrace end → export by era (p50 / p99), and for the era A and C blocks that show only by the model call that never comes (their roots wait out `model_call_wait`, " +
		modelCallWait.String() + " in this bench; the other columns leave them out):\n\n| setup | A | B | C | D | A and C blocks |\n|---|---|---|---|---|---|\n")
	for _, name := range []string{rowOurs, rowTuned} {
		s := sums[name]
		fmt.Fprintf(b, "| %s |", name)
		for _, era := range eras {
			fmt.Fprintf(b, " %.2f / %.2f s |", s.eraP50[era], s.eraP99[era])
		}
		fmt.Fprintf(b, " %.2f / %.2f s |\n", s.blockP50, s.blockP99)
	}
	writeTurnover(b, rep.table)
}

// tunedPeer is the tuned contrib row a scenario's CPU is compared with: the one on the same cores.
func tunedPeer(sc scenario) string {
	if slices.Contains(sc.env, "GOMAXPROCS=1") {
		return rowTuned + ", GOMAXPROCS=1"
	}
	return rowTuned
}

func cpuModel() string {
	raw, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for line := range strings.Lines(string(raw)) {
		if name, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
		}
	}
	return "unknown"
}
