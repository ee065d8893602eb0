//go:build tools

// Package tool pins the Prometheus server the end-to-end tests scrape the collector with.
package tool

import _ "github.com/prometheus/prometheus/cmd/prometheus"
