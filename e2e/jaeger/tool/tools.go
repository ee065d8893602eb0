//go:build tools

// Package tool pins the Jaeger v2 release the end-to-end tests run against. Jaeger's go.mod
// has a replace directive, so it cannot be `go install`ed; building it from this module is the
// way (see ../install.sh).
package tool

import _ "github.com/jaegertracing/jaeger/cmd/jaeger"
