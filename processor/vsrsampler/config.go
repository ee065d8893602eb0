package vsrsampler

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/collector/component"

	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/journal"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/sampler"
)

// Config is the vsr_sampler configuration.
type Config struct {
	// Grace is how long a trace whose root has ended waits for more spans (eras A–C end the
	// root before the upstream call).
	Grace time.Duration `mapstructure:"grace"`
	// TraceTimeout decides a trace this long after its first span, root or not.
	TraceTimeout time.Duration `mapstructure:"trace_timeout"`
	// SlowThreshold always keeps requests that took at least this long; 0 disables it.
	SlowThreshold time.Duration `mapstructure:"slow_threshold"`
	// ModelCallWait is how long after its last span a kept router request waits for what ends
	// it: the model call after an era A–C root, or a root that has not come. Past it nothing
	// can still come, and the request is summarized as it stands: a guard match that nothing
	// followed (eras A and C) is a block. The default is the longest route timeout the
	// router's own Envoy configurations set, plus its export delay (routerconv.ModelCallWait).
	ModelCallWait time.Duration `mapstructure:"model_call_wait"`
	// Rules keep matching traces at their own rate; the first match wins.
	Rules []RuleConfig `mapstructure:"rules"`
	// DefaultPercentage is the rate of traces no other rule decided.
	DefaultPercentage float64       `mapstructure:"default_percentage"`
	Dynamic           DynamicConfig `mapstructure:"dynamic"`
	// MaxBufferBytes bounds the memory of buffered traces; over it, the newest traces' spans
	// spill to disk (Spill), then the oldest traces are decided early, or with BlockOnOverflow
	// new traces' spans are held back instead (spans continuing held traces are taken up to
	// twice the budget: they let held traces complete and leave).
	MaxBufferBytes  int64 `mapstructure:"max_buffer_bytes"`
	MaxTraceBytes   int64 `mapstructure:"max_trace_bytes"`
	MaxTraceSpans   int   `mapstructure:"max_trace_spans"`
	BlockOnOverflow bool  `mapstructure:"block_on_overflow"`
	// DecisionCache remembers decisions so spans arriving late follow them.
	DecisionCache DecisionCacheConfig `mapstructure:"decision_cache"`
	// RescueWindow keeps a dropped trace's buffered spans this long, so a late error or block
	// span brings back the whole trace; 0 disables it. Under pressure it goes to the spill
	// first, and is given up before any trace is decided early.
	RescueWindow time.Duration `mapstructure:"rescue_window"`
	// Spill moves the newest traces' buffered spans to disk when max_buffer_bytes is reached,
	// so they wait for their decision instead of being decided early.
	Spill SpillConfig `mapstructure:"spill"`
	// Journal writes every span this processor parks, and every decision, to files before the
	// batch they came in is acknowledged, so that a crash (SIGKILL, the OOM killer) loses none
	// of them; the next run takes them back. With it, a shutdown leaves undecided traces there
	// too instead of handing them over through storage.
	Journal JournalConfig `mapstructure:"journal"`
	// Storage names a storage extension (file_storage) where the decisions, the traces still
	// undecided and dynamic sampling's rates are saved at shutdown and read back at start, so
	// that a restart neither splits traces in flight nor starts the rates from nothing.
	Storage *component.ID `mapstructure:"storage"`
	// ServiceNames are the router's service.name values.
	ServiceNames []string `mapstructure:"service_names"`
	// Shards splits the buffer by trace ID; 0 picks four per CPU.
	Shards int `mapstructure:"shards"`
	_      struct{}
}

// RuleConfig keeps traces with an attribute value at its own rate.
type RuleConfig struct {
	Name string `mapstructure:"name"`
	// Attribute is a span or resource attribute key; any span of the trace may carry it.
	Attribute  string   `mapstructure:"attribute"`
	Values     []string `mapstructure:"values"`
	Percentage float64  `mapstructure:"percentage"`
	_          struct{}
}

// DynamicConfig replaces default_percentage with a target rate of kept traces shared over the
// values of some keys, so rare routes are kept more often than common ones.
type DynamicConfig struct {
	Enabled               bool          `mapstructure:"enabled"`
	Keys                  []string      `mapstructure:"keys"`
	TargetTracesPerSecond float64       `mapstructure:"target_traces_per_second"`
	AdjustmentInterval    time.Duration `mapstructure:"adjustment_interval"`
	MaxKeys               int           `mapstructure:"max_keys"`
	_                     struct{}
}

// SpillConfig places the spill; an empty directory disables it.
type SpillConfig struct {
	// Directory is used by this processor alone; what an earlier run left there is removed.
	Directory string `mapstructure:"directory"`
	// MaxBytes bounds the disk used; when it is reached, traces are decided early again.
	MaxBytes int64 `mapstructure:"max_bytes"`
	_        struct{}
}

// JournalConfig places the crash journal; an empty directory disables it.
type JournalConfig struct {
	// Directory must outlive the process (the volume of the persistent sending queue). Each
	// processor instance uses a subdirectory named after its ID, locked while it runs.
	Directory string `mapstructure:"directory"`
	// MaxBytes bounds the journal's files; beyond it, parked spans are held in memory only.
	MaxBytes int64 `mapstructure:"max_bytes"`
	// Fsync is when writes are forced to the device: never (they survive a crash of the
	// process, not of the node), interval (at most FsyncInterval old) or batch (before each
	// batch is acknowledged).
	Fsync         string        `mapstructure:"fsync"`
	FsyncInterval time.Duration `mapstructure:"fsync_interval"`
	// DecisionRetention is how long a keep decision stays in the journal, so that the late
	// spans of a kept trace follow it after a crash.
	DecisionRetention time.Duration `mapstructure:"decision_retention"`
	_                 struct{}
}

// fsyncPolicies are the journal.fsync values.
var fsyncPolicies = map[string]journal.SyncPolicy{"never": journal.SyncNever, "interval": journal.SyncInterval, "batch": journal.SyncBatch}

// DecisionCacheConfig sizes the decision caches in entries.
type DecisionCacheConfig struct {
	KeepEntries int `mapstructure:"keep_entries"`
	DropEntries int `mapstructure:"drop_entries"`
	_           struct{}
}

func percentageError(key string, p float64) error {
	if err := sampler.CheckPercentage(p); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// maxTraceBytesLimit bounds max_trace_bytes: a trace's buffer holds at most 4 GiB.
const maxTraceBytesLimit = 1 << 31

// Validate checks the configuration; each error names its key.
func (cfg *Config) Validate() error {
	var errs []error
	add := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	add(cfg.Grace > 0, "grace: must be positive, got %v", cfg.Grace)
	add(cfg.TraceTimeout > cfg.Grace, "trace_timeout: must be longer than grace (%v), got %v", cfg.Grace, cfg.TraceTimeout)
	add(cfg.SlowThreshold >= 0, "slow_threshold: must not be negative, got %v", cfg.SlowThreshold)
	add(cfg.ModelCallWait >= cfg.Grace && cfg.ModelCallWait > 0,
		"model_call_wait: must be at least grace (%v): a model call takes longer than the spans before it, got %v", cfg.Grace, cfg.ModelCallWait)
	errs = append(errs, percentageError("default_percentage", cfg.DefaultPercentage))
	add(cfg.MaxBufferBytes > 0, "max_buffer_bytes: must be positive, got %d", cfg.MaxBufferBytes)
	add(cfg.MaxTraceBytes > 0 && cfg.MaxTraceBytes <= min(cfg.MaxBufferBytes, maxTraceBytesLimit),
		"max_trace_bytes: must be positive and at most max_buffer_bytes (%d) and 2 GiB, got %d", cfg.MaxBufferBytes, cfg.MaxTraceBytes)
	add(cfg.MaxTraceSpans > 0, "max_trace_spans: must be positive, got %d", cfg.MaxTraceSpans)
	add(cfg.DecisionCache.KeepEntries >= 0, "decision_cache.keep_entries: must not be negative, got %d", cfg.DecisionCache.KeepEntries)
	add(cfg.DecisionCache.DropEntries >= 0, "decision_cache.drop_entries: must not be negative, got %d", cfg.DecisionCache.DropEntries)
	add(len(cfg.ServiceNames) > 0 && !slices.Contains(cfg.ServiceNames, ""), "service_names: must list at least one non-empty service name")
	add(cfg.Shards >= 0, "shards: must not be negative, got %d", cfg.Shards)
	add(cfg.RescueWindow >= 0, "rescue_window: must not be negative, got %v", cfg.RescueWindow)
	add(cfg.Spill.Directory == "" || cfg.Spill.MaxBytes > 0, "spill.max_bytes: must be positive when spill.directory is set, got %d", cfg.Spill.MaxBytes)
	if j := cfg.Journal; j.Directory != "" {
		add(j.MaxBytes > 0, "journal.max_bytes: must be positive, got %d", j.MaxBytes)
		_, known := fsyncPolicies[j.Fsync]
		add(known, "journal.fsync: must be never, interval or batch, got %q", j.Fsync)
		add(j.Fsync != "interval" || j.FsyncInterval > 0, "journal.fsync_interval: must be positive with fsync: interval, got %v", j.FsyncInterval)
		add(j.DecisionRetention >= 0, "journal.decision_retention: must not be negative, got %v", j.DecisionRetention)
	}
	add(len(cfg.Rules) <= maxRules, "rules: at most %d rules, got %d", maxRules, len(cfg.Rules))
	names := map[string]bool{}
	for i, r := range cfg.Rules {
		add(r.Name != "", "rules[%d].name: must not be empty", i)
		add(!names[r.Name], "rules[%d].name: %q is used by an earlier rule", i, r.Name)
		names[r.Name] = true
		add(r.Attribute != "", "rules[%d].attribute: must not be empty", i)
		add(len(r.Values) > 0, "rules[%d].values: must list at least one value", i)
		errs = append(errs, percentageError(fmt.Sprintf("rules[%d].percentage", i), r.Percentage))
	}
	if d := cfg.Dynamic; d.Enabled {
		add(len(d.Keys) > 0, "dynamic.keys: must list at least one attribute key")
		add(d.TargetTracesPerSecond > 0 && !math.IsInf(d.TargetTracesPerSecond, 1), "dynamic.target_traces_per_second: must be a positive number, got %v", d.TargetTracesPerSecond)
		add(d.AdjustmentInterval > 0, "dynamic.adjustment_interval: must be positive, got %v", d.AdjustmentInterval)
		add(d.MaxKeys > 0, "dynamic.max_keys: must be positive, got %d", d.MaxKeys)
	}
	return errors.Join(errs...)
}

// maxRules is how many rules a trace's first match can name.
const maxRules = 255

// journalOptions are the journal's options, for the processor named id.
func (cfg *Config) journalOptions(id component.ID) journal.Options {
	j := cfg.Journal
	return journal.Options{
		Dir:           filepath.Join(j.Directory, strings.NewReplacer("/", "_", string(filepath.Separator), "_").Replace(id.String())),
		MaxBytes:      j.MaxBytes,
		Sync:          fsyncPolicies[j.Fsync],
		SyncInterval:  j.FsyncInterval,
		KeepRetention: j.DecisionRetention,
		DropRetention: cfg.RescueWindow,
	}
}

// coreConfig turns a validated Config into the core's.
func (cfg *Config) coreConfig() sampler.Config {
	c := sampler.Config{
		Grace:             cfg.Grace,
		TraceTimeout:      cfg.TraceTimeout,
		SlowThreshold:     cfg.SlowThreshold,
		ModelCallWait:     cfg.ModelCallWait,
		DefaultPercentage: cfg.DefaultPercentage,
		MaxBufferBytes:    cfg.MaxBufferBytes,
		MaxTraceBytes:     cfg.MaxTraceBytes,
		MaxTraceSpans:     cfg.MaxTraceSpans,
		DecideOnPressure:  !cfg.BlockOnOverflow,
		KeepCacheEntries:  cfg.DecisionCache.KeepEntries,
		DropCacheEntries:  cfg.DecisionCache.DropEntries,
		RescueWindow:      cfg.RescueWindow,
		Shards:            cfg.Shards,
		ServiceNames:      cfg.ServiceNames,
	}
	for _, r := range cfg.Rules {
		c.Rules = append(c.Rules, sampler.Rule{Name: r.Name, Key: r.Attribute, Values: r.Values, Percentage: r.Percentage})
	}
	if d := cfg.Dynamic; d.Enabled {
		c.Dynamic = &sampler.Dynamic{Keys: d.Keys, TargetPerSecond: d.TargetTracesPerSecond, Window: d.AdjustmentInterval, MaxKeys: d.MaxKeys}
	}
	return c
}
