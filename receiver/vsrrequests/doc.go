//go:generate go tool mdatagen metadata.yaml

// Package vsrrequests is the vsr_requests receiver: rate, error and duration metrics per router
// request and per model call, over all traffic, from what a vsr_sampler in the same collector
// learns of every trace it decides. Exemplars point only at kept traces. The aggregation lives
// in internal/requestmetrics; this package is the collector glue.
package vsrrequests
