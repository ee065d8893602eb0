package vsrrequests

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/otelcol-vsr/otelcol-vsr/receiver/vsrrequests/internal/metadata"
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
		{id: component.NewIDWithName(metadata.Type, "custom"), want: &Config{
			Sampler: "vsr_sampler/gateway", CollectionInterval: 30 * time.Second,
			Dimensions: []string{"routing.selected_model", "security.action"}, MaxSeries: 100,
			DurationBuckets: []float64{0.1, 1, 10},
			ModelServer:     ModelServerConfig{Dimensions: []string{"gen_ai.response.model", "category.name"}, Buckets: []float64{0.01, 0.1, 1, 10}},
		}},
		{id: component.NewIDWithName(metadata.Type, "bad"), wantErr: []string{
			`sampler: must be the ID of a vsr_sampler`, "collection_interval: must be positive",
			`dimensions[0]: "request.id" takes a value per request`, "max_series: must be positive",
			`model_server.dimensions[0]: "gen_ai.request.id" takes a value per request`, "model_server.buckets[1]: bounds must be positive, finite and increasing",
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
