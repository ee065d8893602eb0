// Command gen writes the dashboards of package grafana as JSON beside it (make generate).
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/otelcol-vsr/otelcol-vsr/distro/grafana"
)

func main() {
	dir := "."
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	for name, b := range map[string]*dashboard.DashboardBuilder{"router.json": grafana.Router(), "collector.json": grafana.Collector()} {
		if err := write(filepath.Join(dir, name), b); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
	}
}

func write(path string, b *dashboard.DashboardBuilder) error {
	d, err := b.Build()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	raw, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(raw, '\n'), 0o644)
}
