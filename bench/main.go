// Command bench runs collector configurations built from the otelcol-vsr distribution side by
// side on loopback, interleaved in rounds, each fed the same router traffic, and writes the
// table in BENCHMARKS.md. It measures the collector process alone: CPU (user+sys) per million
// spans in, peak RSS, spans out, must-keep traces delivered, and the delay from a trace's end
// to its export.
//
//	go run ./bench -otelcol _build/otelcol-vsr -rate 400 -duration 20s -rounds 2 -out BENCHMARKS.md
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	_ "google.golang.org/grpc/encoding/gzip" // collectors compress exports by default

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
	// spill gives vsr_sampler a spill directory of its own.
	spill bool
}

var scenarios = []scenario{
	{name: "pass-through", config: "passthrough.yaml", rateFactor: 1},
	{name: "contrib tail_sampling", config: "contrib.yaml", rateFactor: 1},
	{name: "ours", config: "ours.yaml", rateFactor: 1},
	{name: "ours, 3× load, 8 MiB budget", config: "ours.yaml", rateFactor: 3, env: []string{
		"BENCH_MAX_BUFFER_BYTES=8388608", "BENCH_MAX_TRACE_BYTES=1048576", "BENCH_MEMORY_LIMIT_MIB=256", "BENCH_MEMORY_SPIKE_MIB=64"}},
	{name: "ours, 3× load, 8 MiB budget, spill", config: "ours.yaml", rateFactor: 3, spill: true, env: []string{
		"BENCH_MAX_BUFFER_BYTES=8388608", "BENCH_MAX_TRACE_BYTES=1048576", "BENCH_MEMORY_LIMIT_MIB=256", "BENCH_MEMORY_SPIKE_MIB=64"}},
	{name: "ours, 3× load, 8 MiB budget, block_on_overflow", config: "ours.yaml", rateFactor: 3, env: []string{
		"BENCH_MAX_BUFFER_BYTES=8388608", "BENCH_MAX_TRACE_BYTES=1048576", "BENCH_BLOCK_ON_OVERFLOW=true",
		"BENCH_MEMORY_LIMIT_MIB=256", "BENCH_MEMORY_SPIKE_MIB=64"}},
}

var showLost = flag.Bool("show-lost", false, "list must-keep traces that did not arrive whole")

// idleWindow is how long the idle collector is measured before the load.
const idleWindow = 3 * time.Second

// result is what one run of one scenario measured.
type result struct {
	cpu          time.Duration
	peakRSSKiB   int64
	spansIn      int64
	spansOut     int
	mustKeep     int
	mustKeepSeen int
	// endToExport are, for exported traces, the delays from the trace's last span end to the
	// arrival of its last exported span.
	endToExport []time.Duration
	failedSpans int64
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		otelcol  = flag.String("otelcol", "_build/otelcol-vsr", "the built distribution")
		configs  = flag.String("configs", "bench/configs", "directory of the scenario configs")
		rate     = flag.Float64("rate", 400, "base load in traces per second")
		duration = flag.Duration("duration", 20*time.Second, "load per run")
		rounds   = flag.Int("rounds", 2, "rounds; each runs every scenario once, interleaved")
		out      = flag.String("out", "", "write the Markdown report here (default: stdout)")
		seed     = flag.Uint64("seed", 1, "traffic seed: every run sends the same traffic")
		only     = flag.String("only", "", "run only scenarios whose name contains this (the report needs all)")
	)
	flag.Parse()
	sink, err := startSink()
	if err != nil {
		return err
	}
	defer sink.stop()

	results := make([][]result, len(scenarios))
	for round := range *rounds {
		for i, sc := range scenarios {
			if !strings.Contains(sc.name, *only) {
				continue
			}
			fmt.Fprintf(os.Stderr, "bench: round %d/%d: %s\n", round+1, *rounds, sc.name)
			r, err := runScenario(sc, *otelcol, filepath.Join(*configs, sc.config), sink, *rate*sc.rateFactor, *duration, *seed)
			if err != nil {
				return fmt.Errorf("%s: %w", sc.name, err)
			}
			results[i] = append(results[i], r)
		}
	}
	if *only != "" {
		return nil
	}
	report := render(results, *rate, *duration, *rounds, os.Args[1:])
	if *out == "" {
		fmt.Print(report)
		return nil
	}
	return os.WriteFile(*out, []byte(report), 0o644)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func runScenario(sc scenario, otelcol, config string, sink *sink, rate float64, duration time.Duration, seed uint64) (result, error) {
	var r result
	ports := make([]int, 2)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return r, err
		}
		ports[i] = p
	}
	sink.reset()
	cmd := exec.Command(otelcol, "--config", config)
	cmd.Env = append(os.Environ(), append(sc.env,
		"BENCH_OTLP_PORT="+strconv.Itoa(ports[0]), "BENCH_HEALTH_PORT="+strconv.Itoa(ports[1]), "BENCH_SINK="+sink.addr)...)
	if sc.spill {
		dir, err := os.MkdirTemp("", "bench-spill-")
		if err != nil {
			return r, err
		}
		defer os.RemoveAll(dir)
		cmd.Env = append(cmd.Env, "BENCH_SPILL_DIR="+dir)
	}
	logPath := filepath.Join(os.TempDir(), "bench-"+strings.ReplaceAll(sc.config, ".yaml", "")+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return r, err
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return r, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if err := waitHealthy(ports[1], exited); err != nil {
		return r, fmt.Errorf("%w (log: %s)", err, logPath)
	}
	// The collector's idle cost (runtime, timers) is measured first and taken out, so the
	// figure is the cost of the spans.
	idleFrom, err := processCPU(cmd.Process.Pid)
	if err != nil {
		return r, err
	}
	time.Sleep(idleWindow)
	startCPU, err := processCPU(cmd.Process.Pid)
	if err != nil {
		return r, err
	}
	idleRate := float64(startCPU-idleFrom) / float64(idleWindow)
	loadStart := time.Now()

	sender, err := loadgen.NewGRPCSender(fmt.Sprintf("127.0.0.1:%d", ports[0]))
	if err != nil {
		return r, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), duration+2*time.Minute)
	defer cancel()
	mix := routersim.DefaultMix()
	mix.SlowRate = 0 // a 45 s model call would only lengthen the drain
	stats, manifest := loadgen.Run(ctx, loadgen.Config{
		Mix: mix, Rate: rate, Duration: duration, LateRate: 0.01, LateDelay: 5 * time.Second,
		OutOfOrderRate: 0.02, RootLastRate: 0.05, ExportDelay: 200 * time.Millisecond,
		BatchSpans: 512, Pods: 2, Workers: 4, Seed: seed,
	}, loadgen.Retrying{Sender: sender, Attempts: 5, Backoff: 100 * time.Millisecond})
	_ = sender.Close()

	// SIGTERM: each collector decides and flushes what it still holds, as in a rollout.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		return r, errors.New("collector did not stop within 90s")
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	r.cpu = time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) - startCPU - time.Duration(idleRate*float64(time.Since(loadStart)))
	r.peakRSSKiB = ru.Maxrss
	r.spansIn = stats.Spans - stats.FailedSpans
	r.failedSpans = stats.FailedSpans
	sink.waitQuiet(2 * time.Second)
	r.measure(manifest, sink)
	return r, nil
}

func waitHealthy(port int, exited <-chan error) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("collector exited at start: %v", err)
		default:
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("collector not healthy within 30s")
}

// processCPU reads a process's user+system time from /proc: start-up is not part of the cost
// of a span.
func processCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command, which is in parentheses and may contain spaces.
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond, nil
}

func (r *result) measure(manifest []loadgen.Entry, s *sink) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.spansOut = len(s.spans)
	for _, e := range manifest {
		complete := e.FailedSpans == 0
		var last time.Time
		seen := 0
		for _, id := range e.SpanIDs {
			if at, ok := s.spans[id]; ok {
				seen++
				if at.After(last) {
					last = at
				}
			}
		}
		if e.MustKeep && complete {
			r.mustKeep++
			if seen == len(e.SpanIDs) {
				r.mustKeepSeen++
			} else if *showLost {
				fmt.Fprintf(os.Stderr, "bench: must-keep trace %s (%s/%s, out of order: %v) has %d of %d spans\n",
					e.TraceID, e.Era, e.Outcome, e.OutOfOrder, seen, len(e.SpanIDs))
			}
		}
		if seen == len(e.SpanIDs) && !e.Late && !e.OutOfOrder {
			r.endToExport = append(r.endToExport, last.Sub(time.Unix(0, e.LastEnd)))
		}
	}
}

// sink is an in-process OTLP/gRPC receiver on loopback recording when each span arrived.
type sink struct {
	ptraceotlp.UnimplementedGRPCServer
	addr   string
	server *grpc.Server
	mu     sync.Mutex
	spans  map[string]time.Time
	last   time.Time
}

func startSink() (*sink, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sink{addr: l.Addr().String(), server: grpc.NewServer(), spans: map[string]time.Time{}}
	ptraceotlp.RegisterGRPCServer(s.server, s)
	go func() { _ = s.server.Serve(l) }()
	return s, nil
}

func (s *sink) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rs := range req.Traces().ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, span := range ss.Spans().All() {
				s.spans[span.SpanID().String()] = now
			}
		}
	}
	s.last = now
	return ptraceotlp.NewExportResponse(), nil
}

func (s *sink) reset() {
	s.mu.Lock()
	s.spans = map[string]time.Time{}
	s.last = time.Now()
	s.mu.Unlock()
}

// waitQuiet returns once nothing arrived for quiet (bounded to a minute).
func (s *sink) waitQuiet(quiet time.Duration) {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		idle := time.Since(s.last)
		s.mu.Unlock()
		if idle >= quiet {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *sink) stop() { s.server.Stop() }

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(p*float64(len(s)-1))]
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// summary is one scenario's medians over the rounds.
type summary struct {
	cpuPerMillion, rssMiB, spansIn, spansOut, p50, p99, mustKeepPct float64
	mustKeep, mustKeepSeen, failed                                  int
}

func summarize(rs []result) summary {
	var cpu, rss, in, out, p50, p99, kept []float64
	var s summary
	for _, r := range rs {
		cpu = append(cpu, r.cpu.Seconds()/float64(r.spansIn)*1e6)
		rss = append(rss, float64(r.peakRSSKiB)/1024)
		in = append(in, float64(r.spansIn))
		out = append(out, float64(r.spansOut))
		p50 = append(p50, percentile(r.endToExport, 0.5).Seconds())
		p99 = append(p99, percentile(r.endToExport, 0.99).Seconds())
		kept = append(kept, 100*float64(r.mustKeepSeen)/max(float64(r.mustKeep), 1))
		s.mustKeep += r.mustKeep
		s.mustKeepSeen += r.mustKeepSeen
		s.failed += int(r.failedSpans)
	}
	s.cpuPerMillion, s.rssMiB, s.spansIn, s.spansOut = median(cpu), median(rss), median(in), median(out)
	s.p50, s.p99, s.mustKeepPct = median(p50), median(p99), median(kept)
	return s
}

func render(results [][]result, rate float64, duration time.Duration, rounds int, args []string) string {
	sums := make([]summary, len(results))
	for i, rs := range results {
		sums[i] = summarize(rs)
	}
	pass, contrib, ours := sums[0], sums[1], sums[2]
	var b strings.Builder
	fmt.Fprintf(&b, "| scenario | CPU s / 1M spans in | × pass-through | × contrib | peak RSS MiB | × contrib RSS | spans in | spans out | must-keep traces whole | trace end → export p50 / p99 | refused spans |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|---|---|\n")
	for i, sc := range scenarios {
		s := sums[i]
		fmt.Fprintf(&b, "| %s | %.2f | %.2f | %.2f | %.0f | %.2f | %.0f | %.0f | %d / %d (%.1f%%) | %.2f s / %.2f s | %d |\n",
			sc.name, s.cpuPerMillion, s.cpuPerMillion/pass.cpuPerMillion, s.cpuPerMillion/contrib.cpuPerMillion,
			s.rssMiB, s.rssMiB/contrib.rssMiB, s.spansIn, s.spansOut, s.mustKeepSeen, s.mustKeep, s.mustKeepPct, s.p50, s.p99, s.failed)
	}
	fmt.Fprintf(&b, "\nGoals: ours ≤ 1.25× pass-through CPU per span: **%.2f×**; ≥ 2× cheaper than contrib: **%.2f× cheaper**; ≤ 0.5× contrib's peak RSS: **%.2f×**; kept traces exported within 2 s of their end (p99): **%.2f s** (contrib: %.2f s).\n",
		ours.cpuPerMillion/pass.cpuPerMillion, contrib.cpuPerMillion/ours.cpuPerMillion, ours.rssMiB/contrib.rssMiB, ours.p99, contrib.p99)
	cpuModel := "unknown"
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(raw)) {
			if name, ok := strings.CutPrefix(line, "model name"); ok {
				cpuModel = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
				break
			}
		}
	}
	fmt.Fprintf(&b, "\nMachine: %d CPUs (%s), %s, %s/%s. Load: %.0f traces/s (≈7 spans each) for %s per run, %d rounds, scenarios interleaved; medians over rounds. Command: `go run ./bench %s`.\n",
		runtime.NumCPU(), cpuModel, runtime.Version(), runtime.GOOS, runtime.GOARCH, rate, duration, rounds, strings.Join(args, " "))
	return b.String()
}
