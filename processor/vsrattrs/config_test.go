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
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrattrs/internal/normalize"
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
		{id: component.NewIDWithName(metadata.Type, "strict"), want: func() *Config {
			cfg := createDefaultConfig().(*Config)
			cfg.Mode, cfg.ServiceNames, cfg.KeepLegacyKeys, cfg.URLQuery = "strict", []string{"vllm-sr", "my-router"}, true, "drop"
			cfg.MaxValueBytes, cfg.MaxIssuesPerSpan = 1024, 4
			r := &cfg.Redaction
			r.HashKey, r.Prompts, r.AllowListOnly, r.AllowedKeys = "0123456789abcdef0123", "drop", true, []string{"team.name"}
			return cfg
		}()},
		{id: component.NewIDWithName(metadata.Type, "contrib_names"), want: func() *Config {
			cfg := createDefaultConfig().(*Config)
			r := &cfg.Redaction
			r.HashKey, r.HashFunction, r.Credentials = "0123456789abcdef0123", "hmac-sha512", "drop"
			r.Families = map[string]string{"exception_text": "keep", "url_full": "drop"}
			r.IgnoredKeys, r.BlockedKeyPatterns, r.BlockedValues = []string{"safe.attribute"}, []string{".*internal_note.*"}, []string{"ACME-[0-9]{6}"}
			r.ValueScanner.Kinds, r.Summary = []string{"email", "payment_card"}, "info"
			return cfg
		}()},
		{id: component.NewIDWithName(metadata.Type, "scanner_off"), want: func() *Config {
			cfg := createDefaultConfig().(*Config)
			cfg.Redaction.ValueScanner.Enabled = false
			return cfg
		}()},
		{id: component.NewIDWithName(metadata.Type, "bad_mode"), wantErr: []string{`mode: "fixit" is not one of [fix report strict]`}},
		{id: component.NewIDWithName(metadata.Type, "bad_everything"), wantErr: []string{
			"service_names:", `url_query: "hide"`, "max_value_bytes: must not be negative", "max_issues_per_span: must be between 1 and 64",
			"redaction.hash_key: must be at least 16 bytes", `redaction.prompts: "encrypt"`, "redaction.allowed_keys:",
			`redaction.credentials: "show"`, `redaction.hash_function: "md5" is not keyed`,
			`redaction.families.no_such_family: no such family`, `redaction.families.user_identity: "sanitize" is not one of [drop hash keep]`,
			"redaction.blocked_key_patterns[0]: error parsing regexp", `redaction.blocked_values[1]: "a*" matches the empty string`,
			`redaction.value_scanner.kinds[1]: "ssn" is not one of`, `redaction.summary: "verbose"`,
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
			assert.NotPanics(t, func() { normalize.New(cfg.(*Config).options()) })
		})
	}
}
