package routerconv

import (
	"strconv"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Signals are the facts about one span that decide whether its trace must be kept.
type Signals uint8

const (
	// SigError: the span is an error by the router's conventions.
	SigError Signals = 1 << iota
	// SigBlocked: the span says outright that a guard blocked the request.
	SigBlocked
	// SigJailbreakHit, SigPIIHit: a guard matched. In eras A and C this is a block only when
	// the trace has no upstream call, which only the whole trace can tell.
	SigJailbreakHit
	SigPIIHit
	// SigUpstream: the span is the call to the model backend.
	SigUpstream
	// SigCacheHit: the semantic cache answered, so no upstream call will follow.
	SigCacheHit
)

// Block reasons, the values of security.reason.
const (
	ReasonJailbreak = "jailbreak"
	ReasonPII       = "pii"
	// ReasonGuard is a block whose guard the span does not name (era D's 403 root).
	ReasonGuard = "guard"
)

// Facts is what Classify found on a span.
type Facts struct {
	Signals Signals
	// ErrorType is a low-cardinality error class, set with SigError.
	ErrorType string
	// BlockReason is set with SigBlocked.
	BlockReason string
}

// Has reports whether all of s are set.
func (f Facts) Has(s Signals) bool { return f.Signals&s == s }

// HitReason names the guard behind a jailbreak or PII hit.
func (f Facts) HitReason() string {
	if f.Signals&SigJailbreakHit != 0 {
		return ReasonJailbreak
	}
	return ReasonPII
}

// scan accumulates the attributes Classify looks at, whichever era's keys carry them.
type scan struct {
	errorType      string
	httpStatus     int64
	pluginType     string
	pluginStatus   string
	outcome        string
	securityReason string
	blocked        bool
	ragFailed      bool
	jailbreakHit   bool
	piiHit         bool
	cacheHit       bool
}

// field is a fact Classify reads from attributes.
type field uint8

const (
	fieldErrorType field = iota
	fieldHTTPStatus
	fieldPluginType
	fieldPluginStatus
	fieldPluginResult
	fieldOutcome
	fieldSecurityReason
	fieldSecurityAction
	fieldRAGSuccess
	fieldJailbreakDetected
	fieldPIIDetected
	fieldMatchedRules
	fieldCacheHit
)

// signalKeys maps every attribute key that carries an error or block signal, in every era's
// spelling, to the fact it holds.
var signalKeys = map[string]field{
	"error.type":                fieldErrorType,
	"http.response.status_code": fieldHTTPStatus,
	"http.status_code":          fieldHTTPStatus,
	"plugin.type":               fieldPluginType,
	"plugin.status":             fieldPluginStatus,
	"plugin.result":             fieldPluginResult,
	"request.outcome":           fieldOutcome,
	"security.reason":           fieldSecurityReason,
	"security.action":           fieldSecurityAction,
	"rag.success":               fieldRAGSuccess,
	"jailbreak.detected":        fieldJailbreakDetected,
	"pii.detected":              fieldPIIDetected,
	"decision.matched_rules":    fieldMatchedRules,
	"cache.hit":                 fieldCacheHit,
}

// read records one fact. Values of the wrong type are read leniently ("true", "503"), since
// the sampler must work on spans vsr_attributes has not fixed.
func (s *scan) read(f field, v pcommon.Value) {
	switch f {
	case fieldErrorType:
		s.errorType = v.AsString()
	case fieldHTTPStatus:
		s.httpStatus, _ = AsInt(v)
	case fieldPluginType:
		s.pluginType = strings.ToLower(v.AsString())
	case fieldPluginStatus:
		s.pluginStatus = strings.ToLower(v.AsString())
	case fieldPluginResult:
		s.readDetection(v.AsString())
	case fieldOutcome:
		s.outcome = strings.ToLower(v.AsString())
	case fieldSecurityReason:
		s.securityReason = strings.ToLower(v.AsString())
	case fieldSecurityAction:
		s.blocked = strings.EqualFold(v.AsString(), "blocked")
	case fieldRAGSuccess:
		b, ok := AsBool(v)
		s.ragFailed = ok && !b
	case fieldJailbreakDetected:
		b, _ := AsBool(v)
		s.jailbreakHit = s.jailbreakHit || b
	case fieldPIIDetected:
		b, _ := AsBool(v)
		s.piiHit = s.piiHit || b
	case fieldMatchedRules:
		s.readMatchedRules(v)
	case fieldCacheHit:
		b, _ := AsBool(v)
		s.cacheHit = s.cacheHit || b
	}
}

// errorOutcomes are the era D request.outcome values that mean the router failed.
var errorOutcomes = map[string]bool{"server_error": true, "error": true, "timeout": true}

// readDetection reads plugin.result: era B's "jailbreak_detected:<type>" and
// "pii_detected:<types>", and the cache plugin's "cache_hit".
func (s *scan) readDetection(result string) {
	switch {
	case result == "cache_hit":
		s.cacheHit = true
	case strings.HasPrefix(result, "jailbreak_detected"):
		s.jailbreakHit = true
	case strings.HasPrefix(result, "pii_detected"):
		s.piiHit = true
	}
}

// readMatchedRules reads era C's decision.matched_rules, entries "<type>:<name>[:<label>]".
func (s *scan) readMatchedRules(v pcommon.Value) {
	check := func(rule string) {
		switch {
		case strings.HasPrefix(rule, "jailbreak:"):
			s.jailbreakHit = true
		case strings.HasPrefix(rule, "pii:"):
			s.piiHit = true
		}
	}
	if v.Type() != pcommon.ValueTypeSlice {
		for rule := range strings.SplitSeq(v.AsString(), ",") {
			check(strings.TrimSpace(rule))
		}
		return
	}
	for _, item := range v.Slice().All() {
		check(item.AsString())
	}
}

// Classify reads a span's status, attributes and events. router says whether the span is the
// router's own: only then does a 403 error root mean a guard block rather than a failure.
func Classify(span ptrace.Span, router bool) Facts {
	var s scan
	for k, v := range span.Attributes().All() {
		if f, ok := signalKeys[k]; ok {
			s.read(f, v)
		}
	}
	var f Facts
	if spanTable[span.Name()].Role == RoleUpstream {
		f.Signals |= SigUpstream
	}
	if s.jailbreakHit {
		f.Signals |= SigJailbreakHit
	}
	if s.piiHit {
		f.Signals |= SigPIIHit
	}
	if s.cacheHit {
		f.Signals |= SigCacheHit
	}
	statusError := span.Status().Code() == ptrace.StatusCodeError

	switch reason, guard := IsGuardPlugin(s.pluginType); {
	case s.blocked:
		f.Signals |= SigBlocked
		f.BlockReason = blockReason(&s, span.Name())
	case guard && s.pluginStatus == "blocked":
		f.Signals |= SigBlocked
		f.BlockReason = reason
	case router && s.httpStatus == 403 && statusError && IsLocalRoot(span):
		// Era D marks a guard block only by the root's 403 and error status.
		f.Signals |= SigBlocked
		f.BlockReason = blockReason(&s, span.Name())
	}
	if f.Signals&SigBlocked != 0 {
		// A block's error status and 4xx are the guard working, not a failure.
		statusError = false
	}

	if errType := errorType(&s, span, statusError); errType != "" {
		f.Signals |= SigError
		f.ErrorType = errType
	}
	return f
}

// blockReason names the guard behind an explicit block from whatever the span carries.
func blockReason(s *scan, spanName string) string {
	switch {
	case s.securityReason == ReasonJailbreak || s.securityReason == ReasonPII:
		return s.securityReason
	case s.jailbreakHit || strings.Contains(spanName, "jailbreak"):
		return ReasonJailbreak
	case s.piiHit || strings.Contains(spanName, "pii"):
		return ReasonPII
	}
	return ReasonGuard
}

// errorType returns the error class of a span, or "" when it is not an error. The order is
// from the most to the least specific source.
func errorType(s *scan, span ptrace.Span, statusError bool) string {
	if s.errorType != "" {
		return s.errorType
	}
	for _, ev := range span.Events().All() {
		switch ev.Name() {
		case "error":
			return eventAttr(ev, "error.reason", "error")
		case "exception":
			return eventAttr(ev, "exception.type", "exception")
		}
	}
	switch {
	case s.httpStatus >= 500:
		return strconv.FormatInt(s.httpStatus, 10)
	case s.pluginStatus == "error":
		return "plugin_failed"
	case s.ragFailed:
		return "retrieval_failed"
	case errorOutcomes[s.outcome]:
		return s.outcome
	case statusError:
		return boundedReason(span.Status().Message())
	}
	return ""
}

// eventAttr reads a class name (exception.type, error.reason): already bounded, so only its
// length is checked.
func eventAttr(ev ptrace.SpanEvent, key, fallback string) string {
	v, ok := ev.Attributes().Get(key)
	switch {
	case !ok || v.AsString() == "":
		return fallback
	case len(v.AsString()) > maxReasonLen:
		return "_OTHER"
	}
	return v.AsString()
}

// maxReasonLen bounds a reason taken from free text so error.type stays low-cardinality.
const maxReasonLen = 48

// boundedReason turns a status message such as "upstream request failed" into
// "upstream_request_failed". Messages with digits or longer than maxReasonLen are likely to
// carry IDs or values, so they become "_OTHER" (the semantic conventions' fallback).
func boundedReason(msg string) string {
	msg = strings.TrimSpace(msg)
	if msg == "" {
		return "error"
	}
	if len(msg) > maxReasonLen {
		return "_OTHER"
	}
	b := []byte(msg)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c == '_', c == '.':
		case c >= 'A' && c <= 'Z':
			b[i] = c + ('a' - 'A')
		case c == ' ' || c == '-':
			b[i] = '_'
		default:
			return "_OTHER"
		}
	}
	return string(b)
}

// AsBool reads a bool, also from the strings "true"/"false" in any case.
func AsBool(v pcommon.Value) (bool, bool) {
	switch v.Type() {
	case pcommon.ValueTypeBool:
		return v.Bool(), true
	case pcommon.ValueTypeStr:
		b, err := strconv.ParseBool(strings.ToLower(strings.TrimSpace(v.Str())))
		return b, err == nil
	}
	return false, false
}

// AsInt reads an integer, also from a whole double or a decimal string.
func AsInt(v pcommon.Value) (int64, bool) {
	switch v.Type() {
	case pcommon.ValueTypeInt:
		return v.Int(), true
	case pcommon.ValueTypeDouble:
		d := v.Double()
		if d == float64(int64(d)) {
			return int64(d), true
		}
	case pcommon.ValueTypeStr:
		n, err := strconv.ParseInt(strings.TrimSpace(v.Str()), 10, 64)
		return n, err == nil
	}
	return 0, false
}

// Verdict accumulates the Facts of a trace's spans.
type Verdict struct {
	Signals     Signals
	ErrorType   string
	BlockReason string
}

// Add merges one span's facts; the first error type and block reason seen are kept.
func (v *Verdict) Add(f Facts) {
	v.Signals |= f.Signals
	if v.ErrorType == "" {
		v.ErrorType = f.ErrorType
	}
	if v.BlockReason == "" {
		v.BlockReason = f.BlockReason
	}
}

// Error reports whether any span is an error.
func (v Verdict) Error() bool { return v.Signals&SigError != 0 }

// Blocked reports whether the trace is a guard block, and why. A guard hit without an explicit
// block counts only when the trace is known to be complete and made no upstream call.
func (v Verdict) Blocked(complete bool) (string, bool) {
	if v.Signals&SigBlocked != 0 {
		return v.BlockReason, true
	}
	if complete && v.Signals&(SigJailbreakHit|SigPIIHit) != 0 && v.Signals&SigUpstream == 0 {
		return Facts{Signals: v.Signals}.HitReason(), true
	}
	return "", false
}
