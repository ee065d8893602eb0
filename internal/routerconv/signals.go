package routerconv

import (
	"iter"
	"maps"
	"math"
	"strconv"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Signals are the facts about one span that decide whether its trace must be kept and when
// it is complete.
type Signals uint8

const (
	// SigError: the span is an error by the router's conventions.
	SigError Signals = 1 << iota
	// SigBlocked: the span says outright that a guard blocked the request.
	SigBlocked
	// SigJailbreakHit, SigPIIHit: a guard matched. In eras A and C this is a block only when
	// the request went no further, which only the whole trace can tell.
	SigJailbreakHit
	SigPIIHit
	// SigUpstream: the span is the call to the model backend.
	SigUpstream
	// SigCacheHit: the semantic cache answered, so no upstream call will follow.
	SigCacheHit
	// SigPastGuards: the router started this span only after the request passed its guards.
	SigPastGuards
)

// Block reasons, the values of security.reason.
const (
	ReasonJailbreak = "jailbreak"
	ReasonPII       = "pii"
	// ReasonGuard is a block whose guard the span does not name (era D's 403 root).
	ReasonGuard = "guard"
)

// Cache is what a span says about the semantic cache.
type Cache uint8

const (
	CacheUnknown Cache = iota
	CacheMiss
	CacheHit
)

// Facts is what Classify found on a span: the signals the sampler decides on, and the
// request-level facts the trace summary is made of.
type Facts struct {
	Signals Signals
	// ErrorType is the span's error class, set with SigError: low-cardinality, but read from
	// whatever the span carried (an exception's type, a status message).
	ErrorType string
	// ErrorReason is ErrorType within the fixed set of reasons a request's summary and metrics
	// carry (ErrorReasons), set with SigError.
	ErrorReason string
	// BlockReason is set with SigBlocked.
	BlockReason string
	// Eras is the range of eras the span's name and keys are consistent with; zero when they
	// tell nothing. Root spans tell it by name only: the sampler writes older eras' keys on them.
	Eras          [2]Era
	SelectedModel string
	OriginalModel string
	Category      string
	// Decision is decision.name, without era C's placeholder "decision_evaluation".
	Decision string
	// UpstreamModel is model.name on the upstream call.
	UpstreamModel string
	Cache         Cache
	// Usage is the token count a model server's span reports (gen_ai semantic conventions).
	Usage TokenUsage
}

// TokenUsage is gen_ai.usage.* with the model it was counted for.
type TokenUsage struct {
	Model         string
	Input, Output int64
}

// Has reports whether all of s are set.
func (f Facts) Has(s Signals) bool { return f.Signals&s == s }

// HitReason names the guard behind a jailbreak or PII hit.
func HitReason(s Signals) string {
	if s&SigJailbreakHit != 0 {
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
	cache          Cache
}

// field is a fact Classify reads from attributes.
type field uint8

const (
	fieldNone field = iota
	fieldErrorType
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
	fieldSelectedModel
	fieldOriginalModel
	fieldCategory
	fieldDecision
	fieldModelName
	fieldUsageInput
	fieldUsageOutput
	fieldRequestModel
	fieldResponseModel
)

// readKeys maps every attribute key Classify reads, in every era's spelling, to the fact it
// holds.
var readKeys = map[string]field{
	"error.type":                 fieldErrorType,
	"http.response.status_code":  fieldHTTPStatus,
	"http.status_code":           fieldHTTPStatus,
	"plugin.type":                fieldPluginType,
	"plugin.status":              fieldPluginStatus,
	"plugin.result":              fieldPluginResult,
	"request.outcome":            fieldOutcome,
	"security.reason":            fieldSecurityReason,
	"security.action":            fieldSecurityAction,
	"rag.success":                fieldRAGSuccess,
	"jailbreak.detected":         fieldJailbreakDetected,
	"pii.detected":               fieldPIIDetected,
	"decision.matched_rules":     fieldMatchedRules,
	"cache.hit":                  fieldCacheHit,
	"routing.selected_model":     fieldSelectedModel,
	"routing.original_model":     fieldOriginalModel,
	"category.name":              fieldCategory,
	"decision.name":              fieldDecision,
	UpstreamModelKey:             fieldModelName,
	"gen_ai.usage.input_tokens":  fieldUsageInput,
	"gen_ai.usage.output_tokens": fieldUsageOutput,
	"gen_ai.request.model":       fieldRequestModel,
	"gen_ai.response.model":      fieldResponseModel,
}

// SchemaVersionKey is the attribute vsr_attributes writes on every span it normalizes.
const SchemaVersionKey = "vsr.schema.version"

// UpstreamModelKey names the model on the router's upstream call.
const UpstreamModelKey = "model.name"

// decisionPlaceholder is the decision.name era C's first decision span carries.
const decisionPlaceholder = "decision_evaluation"

// read records one fact. Values of the wrong type are read leniently ("true", "503"), since
// the sampler must work on spans vsr_attributes has not fixed.
func (s *scan) read(f field, v pcommon.Value, out *Facts) {
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
		s.readResult(v.AsString())
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
		switch b, ok := AsBool(v); {
		case ok && b:
			s.cache = CacheHit
		case ok && s.cache == CacheUnknown:
			s.cache = CacheMiss
		}
	case fieldSelectedModel:
		out.SelectedModel = stringValue(v)
	case fieldOriginalModel:
		out.OriginalModel = stringValue(v)
	case fieldCategory:
		out.Category = stringValue(v)
	case fieldDecision:
		if d := stringValue(v); d != decisionPlaceholder {
			out.Decision = d
		}
	case fieldModelName:
		out.UpstreamModel = stringValue(v)
	case fieldUsageInput:
		out.Usage.Input, _ = AsInt(v)
	case fieldUsageOutput:
		out.Usage.Output, _ = AsInt(v)
	case fieldResponseModel:
		out.Usage.Model = stringValue(v)
	case fieldRequestModel:
		if out.Usage.Model == "" {
			out.Usage.Model = stringValue(v)
		}
	}
}

// stringValue reads a name: a string, or a scalar as vsr_attributes coerces it ("46.5"). Maps,
// lists and bytes are not names.
func stringValue(v pcommon.Value) string {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return v.Str()
	case pcommon.ValueTypeInt, pcommon.ValueTypeDouble, pcommon.ValueTypeBool:
		return v.AsString()
	}
	return ""
}

// errorOutcomes are the era D request.outcome values that mean the router failed.
var errorOutcomes = map[string]bool{"server_error": true, "error": true, "timeout": true}

// readResult reads plugin.result: era B's "jailbreak_detected:<type>" and
// "pii_detected:<types>", and the cache plugin's "cache_hit" and "cache_miss".
func (s *scan) readResult(result string) {
	switch {
	case result == "cache_hit":
		s.cache = CacheHit
	case result == "cache_miss" && s.cache == CacheUnknown:
		s.cache = CacheMiss
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

// Key is what one attribute key tells Classify: the fact its value holds, and the eras whose
// routers spell it so.
type Key struct {
	field field
	eras  [2]Era
	// renamed: vsr_attributes also writes this key from another era's spelling.
	renamed bool
	// schema is vsr.schema.version: the span was normalized.
	schema bool
}

// keys joins readKeys and keyEras: one lookup per attribute.
var keys = func() map[string]Key {
	m := map[string]Key{SchemaVersionKey: {schema: true}}
	for k, f := range readKeys {
		m[k] = Key{field: f}
	}
	for k, eras := range keyEras {
		key := m[k]
		key.eras, key.renamed = eras, RenameTargets[k]
		m[k] = key
	}
	return m
}()

// LookupKey returns what Classify reads from an attribute key, for a caller that visits a
// span's attributes in its own pass and feeds them to a Classifier.
func LookupKey(k string) (Key, bool) {
	key, ok := keys[k]
	return key, ok
}

// Keys lists every attribute key Classify reads, with what it tells.
func Keys() iter.Seq2[string, Key] { return maps.All(keys) }

// Classifier reads one span in its caller's pass over the attributes: Begin, then Attr for
// each attribute whose key LookupKey knows, then Finish.
type Classifier struct {
	f       Facts
	s       scan
	info    SpanInfo
	root    bool
	renamed [2]Era
	// normalized: vsr_attributes has normalized the span (vsr.schema.version).
	normalized bool
}

// Begin starts reading span.
func (c *Classifier) Begin(span ptrace.Span) {
	*c = Classifier{}
	var known bool
	c.info, known = spanTable[span.Name()]
	c.root = IsLocalRoot(span)
	if known {
		c.f.Eras = c.info.Eras
	}
}

// Span is what the span's name tells (SpanInfo's zero value for a name the table lacks).
func (c *Classifier) Span() SpanInfo { return c.info }

// Attr reads one attribute.
func (c *Classifier) Attr(key Key, v pcommon.Value) {
	if key.field != fieldNone {
		c.s.read(key.field, v, &c.f)
	}
	c.normalized = c.normalized || key.schema
	// Root spans tell their era by name only: the sampler writes older eras' keys on them.
	if c.root || key.eras[0] == EraUnknown {
		return
	}
	if key.renamed {
		c.renamed = NarrowEras(c.renamed, key.eras)
	} else {
		c.f.Eras = NarrowEras(c.f.Eras, key.eras)
	}
}

// Classify reads a span's name, status, attributes and events in one pass. router says
// whether the span is the router's own: only then does a 403 error root mean a guard block
// rather than a failure.
func Classify(span ptrace.Span, router bool) Facts {
	var c Classifier
	c.Begin(span)
	for k, v := range span.Attributes().All() {
		if key, ok := keys[k]; ok {
			c.Attr(key, v)
		}
	}
	return c.Finish(span, router)
}

// Finish reads the span's status and events and returns its facts.
func (c *Classifier) Finish(span ptrace.Span, router bool) Facts {
	f, s, info, root := c.f, &c.s, c.info, c.root
	// Keys vsr_attributes also writes from another era's spelling count only on a span it
	// has not normalized.
	if !c.normalized {
		f.Eras = NarrowEras(f.Eras, c.renamed)
	}
	if info.Role == RoleUpstream {
		f.Signals |= SigUpstream
	}
	guardReason, guard := IsGuardPlugin(s.pluginType)
	if info.PastGuards || (info.Role == RolePlugin && s.pluginType != "" && !guard) {
		f.Signals |= SigPastGuards
	}
	if guard && !root {
		// Only era B ran the guards as plugins.
		f.Eras = NarrowEras(f.Eras, [2]Era{EraB, EraB})
	}
	if s.jailbreakHit {
		f.Signals |= SigJailbreakHit
	}
	if s.piiHit {
		f.Signals |= SigPIIHit
	}
	f.Cache = s.cache
	if s.cache == CacheHit {
		f.Signals |= SigCacheHit
	}
	statusError := span.Status().Code() == ptrace.StatusCodeError

	switch {
	case s.blocked:
		f.Signals |= SigBlocked
		f.BlockReason = blockReason(s, span.Name())
	case guard && s.pluginStatus == "blocked":
		f.Signals |= SigBlocked
		f.BlockReason = guardReason
	case router && s.httpStatus == 403 && statusError && root:
		// Era D marks a guard block only by the root's 403 and error status.
		f.Signals |= SigBlocked
		f.BlockReason = blockReason(s, span.Name())
	}
	if f.Signals&SigBlocked != 0 {
		// A block's error status and 4xx are the guard working, not a failure.
		statusError = false
	}

	if errType := errorType(s, span, statusError); errType != "" {
		f.Signals |= SigError
		f.ErrorType = errType
		f.ErrorReason = errorReason(errType, span)
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
	if s.errorType != "" && !strings.HasSuffix(s.errorType, blockedErrorSuffix) {
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

// OtherErrorType is the error.type of a failure outside ErrorReasons: the semantic
// conventions' fallback value.
const OtherErrorType = "_OTHER"

// ErrorReasons are the error.type values a request's summary and the request metrics carry,
// besides the HTTP server error codes (500 to 599, as the semantic conventions write a failed
// HTTP call's error.type): the classes errorType derives by the router's conventions, the
// reasons era D's router gives, the reasons of the router's own llm_request_errors_total, and
// the guard blocks of a root with status ERROR. A span's free text (an exception's type, a
// status message, an error.type another tool wrote) never becomes a label.
var ErrorReasons = []string{
	"error", "exception", "timeout", "server_error", "plugin_failed", "retrieval_failed",
	"upstream_request_failed", "request_canceled", "request_deadline_exceeded",
	"parse_error", "serialization_error", "classification_failed", "upstream_4xx", "upstream_5xx",
	BlockedErrorType(ReasonJailbreak), BlockedErrorType(ReasonPII), BlockedErrorType(ReasonGuard),
	OtherErrorType,
}

var errorReasonSet = func() map[string]bool {
	m := map[string]bool{}
	for _, r := range ErrorReasons {
		m[r] = true
	}
	return m
}()

// BoundedErrorType returns s when it is one of ErrorReasons or an HTTP server error code, and
// OtherErrorType otherwise.
func BoundedErrorType(s string) string {
	if errorReasonSet[s] || isServerErrorCode(s) {
		return s
	}
	return OtherErrorType
}

func isServerErrorCode(s string) bool {
	digit := func(c byte) bool { return c >= '0' && c <= '9' }
	return len(s) == 3 && s[0] == '5' && digit(s[1]) && digit(s[2])
}

// errorReason bounds a span's error class: a class outside the set that came from an exception
// or error event is "exception" or "error", anything else OtherErrorType.
func errorReason(errType string, span ptrace.Span) string {
	if r := BoundedErrorType(errType); r != OtherErrorType {
		return r
	}
	for _, ev := range span.Events().All() {
		if name := ev.Name(); name == "exception" || name == "error" {
			return name
		}
	}
	return OtherErrorType
}

// blockedErrorSuffix ends the error.type the trace summary gives a blocked root whose status
// the router set to ERROR ("jailbreak_blocked"): a guard working, not a failure.
const blockedErrorSuffix = "_blocked"

// BlockedErrorType is the error.type of a blocked root with status ERROR, named after its reason.
func BlockedErrorType(reason string) string { return reason + blockedErrorSuffix }

// eventAttr reads a class name (exception.type, error.reason): already bounded, so only its
// length is checked.
func eventAttr(ev ptrace.SpanEvent, key, fallback string) string {
	v, ok := ev.Attributes().Get(key)
	switch {
	case !ok || v.AsString() == "":
		return fallback
	case len(v.AsString()) > maxReasonLen:
		return OtherErrorType
	}
	return v.AsString()
}

// maxReasonLen bounds a reason taken from free text so error.type stays low-cardinality.
const maxReasonLen = 48

// boundedReason turns a status message such as "upstream request failed" into
// "upstream_request_failed". Messages with digits or longer than maxReasonLen are likely to
// carry IDs or values, so they become OtherErrorType.
func boundedReason(msg string) string {
	msg = strings.TrimSpace(msg)
	if msg == "" {
		return "error"
	}
	if len(msg) > maxReasonLen {
		return OtherErrorType
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
			return OtherErrorType
		}
	}
	return string(b)
}

// AsBool reads a bool, also from a string ParseBool accepts.
func AsBool(v pcommon.Value) (bool, bool) {
	switch v.Type() {
	case pcommon.ValueTypeBool:
		return v.Bool(), true
	case pcommon.ValueTypeStr:
		return ParseBool(v.Str())
	case pcommon.ValueTypeInt:
		return v.Int() == 1, v.Int() == 0 || v.Int() == 1
	}
	return false, false
}

// ParseBool reads the bools routers send as strings: "true", "FALSE", " 1 ".
func ParseBool(s string) (bool, bool) {
	b, err := strconv.ParseBool(strings.ToLower(strings.TrimSpace(s)))
	return b, err == nil
}

// AsInt reads an integer, also from a whole double or a decimal string ("503", " 5.03e2 ").
func AsInt(v pcommon.Value) (int64, bool) {
	if v.Type() == pcommon.ValueTypeInt {
		return v.Int(), true
	}
	if v.Type() == pcommon.ValueTypeStr {
		if n, err := strconv.ParseInt(strings.TrimSpace(v.Str()), 10, 64); err == nil {
			return n, true
		}
	}
	d, ok := AsFloat(v)
	if !ok || math.IsNaN(d) || math.IsInf(d, 0) || math.Abs(d) >= 1<<63 || d != math.Trunc(d) {
		return 0, false
	}
	return int64(d), true
}

// AsFloat reads a number: a double, an integer or a decimal string.
func AsFloat(v pcommon.Value) (float64, bool) {
	switch v.Type() {
	case pcommon.ValueTypeDouble:
		return v.Double(), true
	case pcommon.ValueTypeInt:
		return float64(v.Int()), true
	case pcommon.ValueTypeStr:
		d, err := strconv.ParseFloat(strings.TrimSpace(v.Str()), 64)
		return d, err == nil
	}
	return 0, false
}
