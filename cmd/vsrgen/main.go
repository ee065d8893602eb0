// Command vsrgen sends realistic vLLM Semantic Router traces over OTLP: every era's span tree
// and attributes, a configurable mix of errors, guard blocks, slow and cached requests, and the
// delivery faults a collector meets (late spans, out-of-order and root-last arrival).
//
//	vsrgen -endpoint 127.0.0.1:4317 -rate 200 -duration 30s -manifest sent.jsonl
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/otelcol-vsr/otelcol-vsr/internal/loadgen"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "vsrgen:", err)
		os.Exit(2)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vsrgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := routersim.DefaultMix()
	var (
		endpoint   = fs.String("endpoint", "127.0.0.1:4317", "OTLP/gRPC host:port, or with -protocol http the OTLP/HTTP traces URL")
		protocol   = fs.String("protocol", "grpc", "grpc or http")
		eraMix     = fs.String("era-mix", "A=0.1,B=0.1,C=0.4,D=0.4", "weights of router eras")
		errorRate  = fs.Float64("error-rate", def.ErrorRate, "fraction of failed requests")
		blocked    = fs.Float64("blocked-rate", def.BlockedRate, "fraction of requests a guard blocks (jailbreak or PII)")
		piiRouted  = fs.Float64("pii-routed-rate", def.PIIRoutedRate, "fraction of requests whose decision matches a PII rule and routes them (to a private model) instead of blocking: no plugins, a 3-8 s model call; outcome pii_routed")
		slow       = fs.Float64("slow-rate", def.SlowRate, "fraction of slow requests (15-45 s model calls)")
		cacheHit   = fs.Float64("cache-hit-rate", def.CacheHitRate, "fraction answered by the semantic cache")
		remote     = fs.Float64("remote-parent-rate", def.RemoteParentRate, "fraction of clients sending a traceparent")
		modelSrv   = fs.Float64("model-server-rate", def.ModelServerRate, "fraction of requests the model server traces too: vLLM's llm_request span (service vllm) with its token counts and latencies")
		late       = fs.Float64("late-rate", 0.01, "fraction of traces whose last span arrives late")
		lateDelay  = fs.Duration("late-delay", 10*time.Second, "how late a late span arrives")
		outOfOrder = fs.Float64("out-of-order-rate", 0.02, "fraction of traces whose spans arrive shuffled")
		rootLast   = fs.Float64("root-last-rate", 0.05, "fraction of traces whose root arrives after all other spans")
		rate       = fs.Float64("rate", 100, "traces started per second")
		maxSpeed   = fs.Bool("max", false, "send as fast as the collector takes it, ignoring -rate and span timing")
		duration   = fs.Duration("duration", 10*time.Second, "stop starting traces after this long (0: no limit)")
		traces     = fs.Int("traces", 0, "stop after this many traces (0: no limit)")
		delay      = fs.Duration("export-delay", 200*time.Millisecond, "delay between a span's end and its export (the SDK's batching)")
		batch      = fs.Int("batch", 256, "maximum spans per export request")
		pods       = fs.Int("pods", 2, "router pods per era, each its own resource")
		workers    = fs.Int("workers", 4, "concurrent export requests")
		retries    = fs.Int("retries", 5, "attempts for a refused (retryable) export, as the router's exporter retries")
		seed       = fs.Uint64("seed", 1, "random seed: the same seed sends the same traffic")
		manifest   = fs.String("manifest", "", "write one JSON line per trace (ID, era, outcome, span IDs, failures) here")
		quiet      = fs.Bool("quiet", false, "no progress line")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	weights, err := parseEraMix(*eraMix)
	if err != nil {
		return err
	}
	if *duration == 0 && *traces == 0 {
		return errors.New("-duration and -traces are both unbounded")
	}
	for name, v := range map[string]float64{"error-rate": *errorRate, "blocked-rate": *blocked, "pii-routed-rate": *piiRouted, "slow-rate": *slow,
		"cache-hit-rate": *cacheHit, "model-server-rate": *modelSrv, "late-rate": *late, "out-of-order-rate": *outOfOrder, "root-last-rate": *rootLast} {
		if v < 0 || v > 1 {
			return fmt.Errorf("-%s: %v is not a fraction", name, v)
		}
	}
	sender, closeSender, err := newSender(*protocol, *endpoint)
	if err != nil {
		return err
	}
	defer closeSender()

	cfg := loadgen.Config{
		Mix: routersim.Mix{EraWeights: weights, ErrorRate: *errorRate, BlockedRate: *blocked, PIIRoutedRate: *piiRouted, SlowRate: *slow,
			CacheHitRate: *cacheHit, RemoteParentRate: *remote, ModelServerRate: *modelSrv},
		Rate: *rate, Duration: *duration, Traces: *traces,
		LateRate: *late, LateDelay: *lateDelay, OutOfOrderRate: *outOfOrder, RootLastRate: *rootLast,
		ExportDelay: *delay, BatchSpans: *batch, Pods: *pods, Workers: *workers, Seed: *seed,
	}
	if *maxSpeed {
		cfg.Rate = 0
	}
	if !*quiet {
		cfg.Progress = func(s loadgen.Stats) { fmt.Fprintln(stderr, "vsrgen:", s) }
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stats, entries := loadgen.Run(ctx, cfg, loadgen.Retrying{Sender: sender, Attempts: *retries, Backoff: 100 * time.Millisecond})

	if *manifest != "" {
		if err := writeManifest(*manifest, entries); err != nil {
			return err
		}
	}
	printSummary(stdout, stats, entries)
	return nil
}

func newSender(protocol, endpoint string) (loadgen.Sender, func(), error) {
	switch protocol {
	case "grpc":
		s, err := loadgen.NewGRPCSender(endpoint)
		if err != nil {
			return nil, nil, err
		}
		return s, func() { _ = s.Close() }, nil
	case "http":
		if !strings.HasPrefix(endpoint, "http://") && !strings.HasPrefix(endpoint, "https://") {
			endpoint = "http://" + endpoint + "/v1/traces"
		}
		return loadgen.NewHTTPSender(endpoint), func() {}, nil
	}
	return nil, nil, fmt.Errorf("-protocol: %q is not grpc or http", protocol)
}

// parseEraMix reads "A=0.1,C=0.9": eras not named get weight 0.
func parseEraMix(s string) ([4]float64, error) {
	var w [4]float64
	total := 0.0
	for part := range strings.SplitSeq(s, ",") {
		name, value, ok := strings.Cut(strings.TrimSpace(part), "=")
		idx := strings.Index("ABCD", strings.ToUpper(name))
		if !ok || len(name) != 1 || idx < 0 {
			return w, fmt.Errorf("-era-mix: %q is not <A|B|C|D>=<weight>", part)
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil || v < 0 {
			return w, fmt.Errorf("-era-mix: weight %q of era %s is not a non-negative number", value, name)
		}
		w[idx] = v
		total += v
	}
	if total == 0 {
		return w, errors.New("-era-mix: all weights are zero")
	}
	return w, nil
}

func writeManifest(path string, entries []loadgen.Entry) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for _, e := range entries {
		if err := enc.Encode(e); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

func printSummary(w io.Writer, s loadgen.Stats, entries []loadgen.Entry) {
	byOutcome := map[string]int{}
	mustKeep := 0
	for _, e := range entries {
		byOutcome[e.Outcome]++
		if e.MustKeep {
			mustKeep++
		}
	}
	fmt.Fprintf(w, "vsrgen: started %d traces in %.1fs (%.1f traces/s); sent %d spans by %.1fs; failed spans: %d\n",
		s.Traces, s.Generating.Seconds(), s.Rate(), s.Spans, s.Elapsed.Seconds(), s.FailedSpans)
	fmt.Fprintf(w, "vsrgen: outcomes: ok=%d error=%d jailbreak=%d pii=%d pii_routed=%d cache_hit=%d; must keep: %d\n",
		byOutcome["ok"], byOutcome["error"], byOutcome["jailbreak"], byOutcome["pii"], byOutcome["pii_routed"], byOutcome["cache_hit"], mustKeep)
	var served, input, output int64
	var ttft float64
	for _, e := range entries {
		if ms := e.ModelServer; ms != nil {
			served++
			input += ms.PromptTokens
			output += ms.CompletionTokens
			ttft += ms.TTFT
		}
	}
	if served > 0 {
		fmt.Fprintf(w, "vsrgen: model server spans: %d (tokens in=%d out=%d, mean time to first token %.3fs)\n", served, input, output, ttft/float64(served))
	}
}
