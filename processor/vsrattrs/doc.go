//go:generate go tool mdatagen metadata.yaml

// Package vsrattrs is the vsr_attributes processor: it normalizes the vLLM Semantic Router's
// spans, whatever router version sent them, into one canonical, validated and redacted schema.
// The pure logic lives in internal/normalize; this package is the collector glue.
package vsrattrs
