package vsrsampler

import (
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler/internal/metadata"
)

func TestLoadConfig(t *testing.T) {
	storageID := component.MustNewIDWithName("file_storage", "queue")
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	tests := []struct {
		id      component.ID
		want    *Config
		wantErr []string
	}{
		{id: component.NewID(metadata.Type), want: createDefaultConfig().(*Config)},
		{id: component.NewIDWithName(metadata.Type, "custom"), want: &Config{
			Grace: time.Second, TraceTimeout: 20 * time.Second, SlowThreshold: 5 * time.Second, ModelCallWait: 6 * time.Minute,
			DefaultPercentage: 5,
			Rules: []RuleConfig{
				{Name: "math", Attribute: "category.name", Values: []string{"math", "physics"}, Percentage: 50},
				{Name: "canary", Attribute: "service.version", Values: []string{"v0.4.0-dev"}, Percentage: 100},
			},
			Dynamic: DynamicConfig{Enabled: true, Keys: []string{"category.name"}, TargetTracesPerSecond: 20,
				AdjustmentInterval: 30 * time.Second, MaxKeys: 100},
			MaxBufferBytes: 64 << 20, MaxTraceBytes: 1 << 20, MaxTraceSpans: 500, BlockOnOverflow: true,
			DecisionCache: DecisionCacheConfig{KeepEntries: 1000, DropEntries: 2000},
			ServiceNames:  []string{"vllm-sr"}, Shards: 8, RescueWindow: 5 * time.Second,
			Spill: SpillConfig{Directory: "/var/lib/otelcol-vsr/spill", MaxBytes: 2 << 30},
			Journal: JournalConfig{Directory: "/var/lib/otelcol-vsr/journal", MaxBytes: 512 << 20, Fsync: "interval",
				FsyncInterval: 2 * time.Second, DecisionRetention: 10 * time.Minute},
			Storage: &storageID,
		}},
		{id: component.NewIDWithName(metadata.Type, "bad_rules"), wantErr: []string{
			"rules[0].name: must not be empty", "rules[0].values: must list at least one value",
			"rules[0].percentage: must be a number within [0, 100], got 101", `rules[2].name: "dup" is used by an earlier rule`,
		}},
		{id: component.NewIDWithName(metadata.Type, "bad_everything"), wantErr: []string{
			"grace: must be positive", "trace_timeout: must be longer than grace", "slow_threshold: must not be negative",
			"model_call_wait: must be at least grace",
			"default_percentage: must be a number within [0, 100]", "max_buffer_bytes: must be positive",
			"max_trace_bytes: must be positive and at most max_buffer_bytes", "max_trace_spans: must be positive",
			"decision_cache.keep_entries: must not be negative", "service_names:", "shards: must not be negative",
			"dynamic.keys:", "dynamic.target_traces_per_second:", "rescue_window: must not be negative",
			"spill.max_bytes: must be positive when spill.directory is set",
			"journal.max_bytes: must be positive", `journal.fsync: must be never, interval or batch, got "always"`,
			"journal.decision_retention: must not be negative",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.id.String(), func(t *testing.T) {
			cfg := createDefaultConfig()
			sub, err := cm.Sub(tt.id.String())
			require.NoError(t, err)
			require.NoError(t, sub.Unmarshal(cfg))
			err = confmap.Validate(cfg)
			if tt.wantErr != nil {
				require.Error(t, err)
				for _, msg := range tt.wantErr {
					assert.Contains(t, err.Error(), msg)
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, cfg)
		})
	}
}

// NaN compares false with every bound: it must not pass for a percentage ("never sample").
func TestNonFinitePercentagesAreRefused(t *testing.T) {
	for _, p := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		cfg := createDefaultConfig().(*Config)
		cfg.DefaultPercentage = p
		cfg.Rules = []RuleConfig{{Name: "r", Attribute: "a", Values: []string{"v"}, Percentage: p}}
		err := cfg.Validate()
		require.Error(t, err, "%v", p)
		assert.Contains(t, err.Error(), "default_percentage:")
		assert.Contains(t, err.Error(), "rules[0].percentage:")
	}
	cfg := createDefaultConfig().(*Config)
	cfg.Dynamic.Enabled = true
	cfg.Dynamic.TargetTracesPerSecond = math.NaN()
	assert.ErrorContains(t, cfg.Validate(), "dynamic.target_traces_per_second:")
}
