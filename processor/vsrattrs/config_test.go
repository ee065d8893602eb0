package vsrattrs

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrattrs/internal/metadata"
)

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	tests := []struct {
		id      component.ID
		want    *Config
		wantErr []string
	}{
		{id: component.NewID(metadata.Type), want: createDefaultConfig().(*Config)},
		{id: component.NewIDWithName(metadata.Type, "strict"), want: &Config{
			Mode: "strict", ServiceNames: []string{"vllm-sr", "my-router"}, KeepLegacyKeys: true, URLQuery: "drop",
			MaxValueBytes: 1024, MaxIssuesPerSpan: 4,
			Redaction: RedactionConfig{HashKey: "0123456789abcdef0123", Prompts: "drop", Identifiers: "hash",
				AllowListOnly: true, AllowedKeys: []string{"team.name"}},
		}},
		{id: component.NewIDWithName(metadata.Type, "bad_mode"), wantErr: []string{`mode: "fixit" is not one of [fix report strict]`}},
		{id: component.NewIDWithName(metadata.Type, "bad_everything"), wantErr: []string{
			"service_names:", `url_query: "hide"`, "max_value_bytes: must not be negative", "max_issues_per_span: must be between 1 and 64",
			"redaction.hash_key: must be at least 16 bytes", `redaction.prompts: "encrypt"`, "redaction.allowed_keys:",
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
