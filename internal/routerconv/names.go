// Package routerconv holds what the vLLM Semantic Router's spans mean, across its four
// layouts (eras A–D, see docs/router-spans.md): which spans are roots, which are
// guards, which one is the upstream call, and which attributes or events mark a trace as an
// error or a security block. Both processors use it, so "is this an error" has one answer.
package routerconv

import (
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// SpanPrefix starts every router span name except era A's parse_request.
const SpanPrefix = "semantic_router."

// TracerName is the instrumentation scope the router creates its spans with.
const TracerName = "semantic-router"

// DefaultServiceNames are the service.name values router deployments use: vllm-sr in new
// defaults, vllm-semantic-router in older configs and the Helm chart.
var DefaultServiceNames = []string{"vllm-sr", "vllm-semantic-router"}

// Role is what a span does in a router trace.
type Role uint8

const (
	RoleUnknown Role = iota
	// RoleRootEarly is the era A–C root: it ends after header processing, before its children.
	RoleRootEarly
	// RoleRoot is the era D root: it stays open until the response is done.
	RoleRoot
	RoleParse
	RoleGuard
	RoleCache
	RoleClassify
	RoleSignal
	RoleDecision
	RolePlugin
	RoleRetrieval
	RoleSelection
	RoleSystemPrompt
	RoleUpstream
)

// Era is a router span layout generation.
type Era uint8

const (
	EraUnknown Era = iota
	EraA
	EraB
	EraC
	EraD
)

func (e Era) String() string {
	return [...]string{"unknown", "A", "B", "C", "D"}[e]
}

// SpanInfo is the static knowledge about one router span name.
type SpanInfo struct {
	Role Role
	// Eras is the range of eras that emit this name, for era detection.
	Eras [2]Era
	// OpenInferenceKind is the openinference.span.kind the span gets.
	OpenInferenceKind string
	// PastGuards: the router only starts this span once the request has passed its guards, so
	// a guard match in the same trace routed the request instead of blocking it.
	PastGuards bool
}

// spanTable lists every span name the router has emitted, by era.
var spanTable = map[string]SpanInfo{
	"semantic_router.request.received":             {RoleRootEarly, [2]Era{EraA, EraC}, "CHAIN", false},
	"semantic_router.request":                      {RoleRoot, [2]Era{EraD, EraD}, "CHAIN", false},
	"parse_request":                                {RoleParse, [2]Era{EraA, EraA}, "CHAIN", false},
	"semantic_router.security.jailbreak_detection": {RoleGuard, [2]Era{EraA, EraA}, "GUARDRAIL", false},
	"semantic_router.security.pii_detection":       {RoleGuard, [2]Era{EraA, EraA}, "GUARDRAIL", false},
	"semantic_router.cache.lookup":                 {RoleCache, [2]Era{EraA, EraA}, "CHAIN", true},
	"semantic_router.classification":               {RoleClassify, [2]Era{EraA, EraA}, "CHAIN", true},
	"semantic_router.routing.decision":             {RoleDecision, [2]Era{EraA, EraA}, "CHAIN", true},
	"semantic_router.backend.selection":            {RoleSelection, [2]Era{EraA, EraA}, "CHAIN", true},
	"semantic_router.system_prompt.injection":      {RoleSystemPrompt, [2]Era{EraA, EraA}, "CHAIN", true},
	"semantic_router.signal.evaluation":            {RoleSignal, [2]Era{EraB, EraD}, "CHAIN", false},
	"semantic_router.decision.evaluation":          {RoleDecision, [2]Era{EraB, EraD}, "CHAIN", false},
	"semantic_router.plugin.execution":             {RolePlugin, [2]Era{EraB, EraD}, "CHAIN", false},
	"semantic_router.rag.retrieval":                {RoleRetrieval, [2]Era{EraC, EraD}, "RETRIEVER", true},
	"semantic_router.algorithm.selection":          {RoleSelection, [2]Era{EraD, EraD}, "CHAIN", true},
	"semantic_router.upstream.request":             {RoleUpstream, [2]Era{EraA, EraD}, "LLM", true},
}

// guardPluginTypes are plugin.type values of plugins that can block a request (era B).
var guardPluginTypes = map[string]string{"jailbreak": ReasonJailbreak, "pii": ReasonPII}

// LookupSpan returns what is known about a span name. Unknown names under the router prefix
// are still router spans, with RoleUnknown.
func LookupSpan(name string) (SpanInfo, bool) {
	info, ok := spanTable[name]
	return info, ok
}

// IsRouterSpanName reports whether a span name alone identifies a router span.
func IsRouterSpanName(name string) bool {
	return strings.HasPrefix(name, SpanPrefix)
}

// IsGuardPlugin reports whether an era B plugin type is a security guard, and which.
func IsGuardPlugin(pluginType string) (reason string, ok bool) {
	reason, ok = guardPluginTypes[strings.ToLower(pluginType)]
	return reason, ok
}

// Span flags from OTLP: whether the parent is known to be remote (the client's span).
const (
	flagHasIsRemote = 0x100
	flagIsRemote    = 0x200
)

// IsLocalRoot reports whether a span is the first span of its trace in this process: no
// parent, a parent flagged remote (the router continues the client's traceparent), or a
// router root span name.
func IsLocalRoot(span ptrace.Span) bool {
	if startsHere(span.ParentSpanID(), span.Flags()) {
		return true
	}
	role := spanTable[span.Name()].Role
	return role == RoleRoot || role == RoleRootEarly
}

// IsEncodedLocalRoot is IsLocalRoot for a span read from its OTLP encoding.
func IsEncodedLocalRoot(parent pcommon.SpanID, flags uint32, name []byte) bool {
	if startsHere(parent, flags) {
		return true
	}
	role := spanTable[string(name)].Role
	return role == RoleRoot || role == RoleRootEarly
}

func startsHere(parent pcommon.SpanID, flags uint32) bool {
	return parent.IsEmpty() || flags&flagHasIsRemote != 0 && flags&flagIsRemote != 0
}

// Services are the service.name values of router deployments.
type Services map[string]bool

// NewServices returns the set of names.
func NewServices(names []string) Services {
	s := Services{}
	for _, n := range names {
		s[n] = true
	}
	return s
}

// Router reports whether a resource is a router deployment's.
func (s Services) Router(res pcommon.Resource) bool {
	name, ok := res.Attributes().Get("service.name")
	return ok && s[name.AsString()]
}

// RouterScope reports whether spans of a scope are the router's: its resource is, or the
// scope is the router's tracer.
func (s Services) RouterScope(res pcommon.Resource, scope pcommon.InstrumentationScope) bool {
	return scope.Name() == TracerName || s.Router(res)
}
