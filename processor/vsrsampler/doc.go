//go:generate go tool mdatagen metadata.yaml

// Package vsrsampler is the vsr_sampler processor: tail sampling for the vLLM Semantic Router
// that always keeps errors and security blocks, decides as soon as a trace's root ends and
// bounds memory in bytes. The pure logic lives in internal/sampler; this package is the glue.
package vsrsampler
