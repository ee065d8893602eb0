// Command bench runs collector configurations built from the otelcol-vsr distribution side by
// side on loopback, each fed the same router traffic, and writes BENCHMARKS.md: the
// side-by-side table (scenarios interleaved in rounds, each drained before SIGTERM), what each
// keeps when SIGTERM comes during the load, the throughput curve (drawn in an SVG beside it),
// and dynamic sampling's kept rate per window. It measures the collector process alone: CPU
// (user+sys) per million spans in, peak RSS, spans out, must-keep traces delivered, and the
// delay from a trace's end to its export.
//
//	go run ./bench -otelcol _build/otelcol-vsr -rate 2000 -duration 40s -rounds 2 -out BENCHMARKS.md
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/otelcol-vsr/otelcol-vsr/internal/loadgen"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
)

// scenario is one collector configuration under one load.
type scenario struct {
	name   string
	config string
	// rateFactor multiplies the base rate.
	rateFactor float64
	env        []string
	// spill gives vsr_sampler a spill directory of its own; journal, a crash journal's.
	spill, journal bool
	// drain is how long the setup may wait before deciding a trace whose root has arrived:
	// the steady-state run waits that long, then for the sink to go quiet, before SIGTERM.
	drain time.Duration
	// baseline is the pass-through row at the same load and cores, for the ratios.
	baseline string
	// telemetry turns the collector's telemetry on and samples the sampler's (turnover.go).
	telemetry bool
}

// Rows named in the report's goals.
const (
	rowPass     = "pass-through"
	rowPass3    = "pass-through, 3× load"
	rowPass1CPU = "pass-through, GOMAXPROCS=1"
	rowTuned    = "vsr_attributes + contrib tail_sampling, tuned"
	rowOurs     = "ours"
	rowAttrs    = "vsr_attributes only"
	// rowAttrsOff is vsr_attributes without what redacts other services' spans: the families
	// added for them set to keep, the value scanner off.
	rowAttrsOff = "vsr_attributes only, privacy off"
	// The crash journal's rows: both with telemetry on, which the journal's bytes are read from.
	rowOursTelemetry = "ours, telemetry on"
	rowJournal       = "ours, crash journal, telemetry on"
)

var budget8MiB = []string{"BENCH_MAX_BUFFER_BYTES=8388608", "BENCH_MAX_TRACE_BYTES=1048576",
	"BENCH_MEMORY_LIMIT_MIB=256", "BENCH_MEMORY_SPIKE_MIB=64"}

// modelCallWait is ours' model_call_wait in the bench: longer than any model call or late span
// of its traffic, so that a blocked era A or C request's root waits exactly that long, as it
// waits the shipped 20m35s in production. ours rows drain for it before SIGTERM.
const modelCallWait = 10 * time.Second

// oursDrain is how long a run of ours waits before SIGTERM: every root awaiting its model call
// leaves by then.
const oursDrain = modelCallWait + 2*time.Second

var scenarios = []scenario{
	{name: rowPass, config: "passthrough.yaml", rateFactor: 1, baseline: rowPass},
	{name: "contrib tail_sampling, raw spans, defaults", config: "contrib.yaml", rateFactor: 1, drain: 30 * time.Second, baseline: rowPass},
	{name: rowTuned, config: "contrib-tuned.yaml", rateFactor: 1, drain: 2 * time.Second, baseline: rowPass},
	{name: rowAttrs, config: "attrs.yaml", rateFactor: 1, baseline: rowPass},
	{name: rowAttrsOff, config: "attrs-privacy-off.yaml", rateFactor: 1, baseline: rowPass},
	{name: rowOurs, config: "ours.yaml", rateFactor: 1, drain: oursDrain, baseline: rowPass},
	{name: "ours, spill", config: "ours.yaml", rateFactor: 1, spill: true, drain: oursDrain, baseline: rowPass},
	{name: rowOursTelemetry, config: "ours.yaml", rateFactor: 1, drain: oursDrain, baseline: rowPass, telemetry: true},
	{name: rowJournal, config: "ours.yaml", rateFactor: 1, journal: true, drain: oursDrain, baseline: rowPass, telemetry: true},
	{name: "ours, rescue_window 0, telemetry on", config: "ours.yaml", rateFactor: 1, env: []string{"BENCH_RESCUE_WINDOW=0s"},
		drain: oursDrain, baseline: rowPass, telemetry: true},
	{name: rowPass3, config: "passthrough.yaml", rateFactor: 3, baseline: rowPass3},
	{name: "ours, 3× load, 8 MiB budget, spill", config: "ours.yaml", rateFactor: 3, spill: true, env: budget8MiB,
		drain: oursDrain, baseline: rowPass3},
	{name: "ours, 3× load, 8 MiB budget", config: "ours.yaml", rateFactor: 3, env: budget8MiB, drain: oursDrain, baseline: rowPass3},
	{name: "ours, 3× load, 8 MiB budget, rescue_window 0", config: "ours.yaml", rateFactor: 3,
		env: append(slices.Clone(budget8MiB), "BENCH_RESCUE_WINDOW=0s"), drain: oursDrain, baseline: rowPass3},
	{name: "ours, 3× load, 8 MiB budget, default_percentage 0", config: "ours.yaml", rateFactor: 3,
		env: append(slices.Clone(budget8MiB), "BENCH_DEFAULT_PERCENTAGE=0"), drain: oursDrain, baseline: rowPass3},
	{name: "ours, 3× load, 8 MiB budget, block_on_overflow", config: "ours.yaml", rateFactor: 3,
		env: append(slices.Clone(budget8MiB), "BENCH_BLOCK_ON_OVERFLOW=true"), drain: oursDrain, baseline: rowPass3, telemetry: true},
	{name: rowPass1CPU, config: "passthrough.yaml", rateFactor: 1, env: []string{"GOMAXPROCS=1"}, baseline: rowPass1CPU},
	{name: rowTuned + ", GOMAXPROCS=1", config: "contrib-tuned.yaml", rateFactor: 1, env: []string{"GOMAXPROCS=1"},
		drain: 2 * time.Second, baseline: rowPass1CPU},
	{name: rowOurs + ", GOMAXPROCS=1", config: "ours.yaml", rateFactor: 1, env: []string{"GOMAXPROCS=1"},
		drain: oursDrain, baseline: rowPass1CPU},
}

var showLost = flag.Bool("show-lost", false, "list must-keep traces that did not arrive whole")

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// options are the command line.
type options struct {
	otelcol, configs string
	rate             float64
	duration         time.Duration
	rounds           int
	seed             uint64
	only             string
	parts            map[string]bool
	curveSteps       []float64
	curveDuration    time.Duration
	dynamicDuration  time.Duration
}

func run() error {
	var o options
	flag.StringVar(&o.otelcol, "otelcol", "_build/otelcol-vsr", "the built distribution")
	flag.StringVar(&o.configs, "configs", "bench/configs", "directory of the scenario configs")
	flag.Float64Var(&o.rate, "rate", 400, "base load in traces per second")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "load per run")
	flag.IntVar(&o.rounds, "rounds", 2, "rounds; each runs every scenario once, interleaved")
	flag.Uint64Var(&o.seed, "seed", 1, "traffic seed: every run sends the same traffic")
	flag.StringVar(&o.only, "only", "", "run only the table's scenarios whose name contains one of these |-separated parts (=name: that name exactly)")
	parts := flag.String("parts", "table,sigterm,curve,dynamic", "what to run")
	steps := flag.String("curve-steps", "2000,4000,6000,8000,11000,15000", "offered rates of the throughput curve, traces/s")
	flag.DurationVar(&o.curveDuration, "curve-duration", 15*time.Second, "load per step of the curve")
	flag.DurationVar(&o.dynamicDuration, "dynamic-duration", 60*time.Second, "load per dynamic sampling run")
	out := flag.String("out", "", "write the Markdown report here (default: stdout); the curve goes beside it as an SVG")
	flag.Parse()
	o.parts = map[string]bool{}
	for _, p := range strings.Split(*parts, ",") {
		o.parts[strings.TrimSpace(p)] = true
	}
	for _, s := range strings.Split(*steps, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return fmt.Errorf("-curve-steps: %w", err)
		}
		o.curveSteps = append(o.curveSteps, r)
	}

	s, err := startSink()
	if err != nil {
		return err
	}
	defer s.stop()
	var rep report
	rep.options = o
	if o.parts["table"] {
		if rep.table, err = runTable(o, s); err != nil {
			return err
		}
	}
	if o.parts["sigterm"] {
		if rep.sigterm, err = runSigterm(o, s); err != nil {
			return err
		}
	}
	if o.parts["curve"] {
		if rep.curve, err = runCurve(o, s); err != nil {
			return err
		}
	}
	if o.parts["dynamic"] {
		if rep.dynamic, err = runDynamic(o, s); err != nil {
			return err
		}
	}
	svgName := ""
	if *out != "" {
		svgName = strings.TrimSuffix(filepath.Base(*out), filepath.Ext(*out)) + "-curve.svg"
		if len(rep.curve) > 0 {
			if err := os.WriteFile(filepath.Join(filepath.Dir(*out), svgName), []byte(curveSVG(rep.curve)), 0o644); err != nil {
				return err
			}
		}
	}
	md := rep.markdown(svgName, os.Args[1:])
	if *out == "" {
		fmt.Print(md)
		return nil
	}
	return os.WriteFile(*out, []byte(md), 0o644)
}

// selected are the table's scenarios -only picks.
func selected(o options) []scenario {
	var out []scenario
	for _, sc := range scenarios {
		if slices.ContainsFunc(strings.Split(o.only, "|"), func(part string) bool {
			name, exact := strings.CutPrefix(part, "=")
			return exact && sc.name == name || !exact && strings.Contains(sc.name, part)
		}) {
			out = append(out, sc)
		}
	}
	return out
}

// runTable runs every scenario once per round, interleaved, each drained before SIGTERM.
func runTable(o options, s *sink) (map[string][]result, error) {
	results := map[string][]result{}
	for round := range o.rounds {
		for _, sc := range selected(o) {
			fmt.Fprintf(os.Stderr, "bench: round %d/%d: %s\n", round+1, o.rounds, sc.name)
			r, err := runScenario(o, sc, s, o.rate*sc.rateFactor, o.duration, true)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", sc.name, err)
			}
			results[sc.name] = append(results[sc.name], r)
		}
	}
	return results, nil
}

// runSigterm runs each scenario once more with SIGTERM right after the load, as a rollout
// does, and records what of the must-keep traces still arrived.
func runSigterm(o options, s *sink) (map[string]result, error) {
	out := map[string]result{}
	for _, sc := range selected(o) {
		fmt.Fprintf(os.Stderr, "bench: SIGTERM during load: %s\n", sc.name)
		r, err := runScenario(o, sc, s, o.rate*sc.rateFactor, o.duration/2, false)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sc.name, err)
		}
		out[sc.name] = r
	}
	return out, nil
}

// traffic is the router load every run sends: every era, errors and guard blocks, requests
// routed on a PII match (no plugins, a 3-8 s model call), late, shuffled and root-last delivery.
func traffic(rate float64, d time.Duration, seed uint64) loadgen.Config {
	mix := routersim.DefaultMix()
	mix.SlowRate = 0 // a 45 s model call would only lengthen the drain
	mix.PIIRoutedRate = 0.01
	return loadgen.Config{
		Mix: mix, Rate: rate, Duration: d, LateRate: 0.01, LateDelay: 5 * time.Second,
		OutOfOrderRate: 0.02, RootLastRate: 0.05, ExportDelay: 200 * time.Millisecond,
		BatchSpans: 512, Pods: 2, Workers: 4, Seed: seed,
	}
}

// runScenario runs one collector under one load. drained: wait for the setup's decisions and
// a quiet sink before SIGTERM; otherwise SIGTERM comes as the load ends.
func runScenario(o options, sc scenario, s *sink, rate float64, duration time.Duration, drained bool) (result, error) {
	var r result
	s.reset()
	env := slices.Clone(sc.env)
	for _, d := range []struct {
		on       bool
		env, dir string
	}{{sc.spill, "BENCH_SPILL_DIR", "bench-spill-"}, {sc.journal, "BENCH_JOURNAL_DIR", "bench-journal-"}} {
		if !d.on {
			continue
		}
		dir, err := os.MkdirTemp("", d.dir)
		if err != nil {
			return r, err
		}
		defer os.RemoveAll(dir)
		env = append(env, d.env+"="+dir)
	}
	if sc.telemetry {
		env = append(env, "BENCH_TELEMETRY_LEVEL=normal")
	}
	env = append(env, "BENCH_MODEL_CALL_WAIT="+modelCallWait.String())
	c, err := startCollector(o.otelcol, filepath.Join(o.configs, sc.config), sc.name, env, s)
	if err != nil {
		return r, err
	}
	loaded := make(chan struct{})
	watched := make(chan error, 1)
	if sc.telemetry {
		go func() {
			var err error
			r.turnover, err = watchTurnover(c.metrics, loaded)
			watched <- err
		}()
	} else {
		watched <- nil
	}
	stats, manifest, err := send(c.endpoint(), traffic(rate, duration, o.seed), 5)
	close(loaded)
	if err = errors.Join(err, <-watched); err != nil {
		c.kill()
		return r, err
	}
	if drained {
		time.Sleep(sc.drain)
		s.waitQuiet(3 * time.Second)
	}
	if sc.journal {
		if r.journalBytes, err = scrapeOne(c.metrics, metricJournalWritten); err != nil {
			c.kill()
			return r, err
		}
	}
	cpu, rss, err := c.stop()
	if err != nil {
		return r, err
	}
	s.waitQuiet(2 * time.Second)
	r.cpu, r.peakRSSKiB = cpu, rss
	r.offered, r.achieved = rate, stats.Rate()
	r.spansIn = stats.Spans - stats.FailedSpans
	r.failedSpans = stats.FailedSpans
	r.measure(manifest, s)
	return r, nil
}

// send runs the load against a collector, retrying what it refuses (attempts times, 100 ms
// apart) as the router's exporter does; spans it still refuses are counted as failed.
func send(endpoint string, cfg loadgen.Config, attempts int) (loadgen.Stats, []loadgen.Entry, error) {
	sender, err := loadgen.NewGRPCSender(endpoint)
	if err != nil {
		return loadgen.Stats{}, nil, err
	}
	defer sender.Close()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Duration+2*time.Minute)
	defer cancel()
	stats, manifest := loadgen.Run(ctx, cfg, loadgen.Retrying{Sender: sender, Attempts: attempts, Backoff: 100 * time.Millisecond})
	return stats, manifest, nil
}
