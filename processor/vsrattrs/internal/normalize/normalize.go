// Package normalize is the pure core of vsr_attributes: it rewrites the router's spans, of
// whatever era, into the canonical schema of schema.go. It knows nothing of the collector, so
// it is unit-tested and fuzzed directly.
package normalize

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"hash"
	"regexp"
	"sync"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrattrs/internal/scan"
)

// Mode is what the normaliser does with what it finds.
type Mode uint8

const (
	// ModeFix renames, converts and repairs; values it cannot repair are removed.
	ModeFix Mode = iota
	// ModeReport leaves the router's attributes as they are and only annotates.
	ModeReport
	// ModeStrict is ModeFix, but values of the wrong type or outside their enum are removed
	// rather than coerced.
	ModeStrict
)

// Action is what happens to a family's values.
type Action uint8

const (
	// ActionHash replaces the value with a keyed hash, or removes it when there is no key.
	ActionHash Action = iota
	ActionDrop
	// ActionKeep keeps the value; the scanner still reads it.
	ActionKeep
	// ActionSanitize takes a URL's credentials, IDs and query values out (URL families only).
	ActionSanitize
)

// HashFunction is the keyed hash of hashed values.
type HashFunction uint8

const (
	HashHMACSHA256 HashFunction = iota
	HashHMACSHA512
)

// Summary is what the processor records on a span of what it redacted.
type Summary uint8

const (
	// SummarySilent records nothing.
	SummarySilent Summary = iota
	// SummaryInfo records redaction.redacted.count and redaction.masked.count.
	SummaryInfo
	// SummaryDebug adds the keys: redaction.redacted.keys, redaction.masked.keys.
	SummaryDebug
)

// QueryMode is what happens to a query string split off a path.
type QueryMode uint8

const (
	QueryRedactValues QueryMode = iota
	QueryKeep
	QueryDrop
)

// Options configure a Normalizer.
type Options struct {
	Mode           Mode
	ServiceNames   []string
	KeepLegacyKeys bool
	URLQuery       QueryMode
	// MaxValueBytes bounds string values on router spans; 0 means no bound.
	MaxValueBytes    int
	MaxIssuesPerSpan int
	HashKey          []byte
	HashFunction     HashFunction
	// Prompts, Identifiers and Credentials are the actions of the content, identifier and
	// credential families; Families overrides them family by family (by ID).
	Prompts     Action
	Identifiers Action
	Credentials Action
	Families    map[string]Action
	// IgnoredKeys pass untouched: no family, no scanner.
	IgnoredKeys []string
	// BlockedKeys are the operator's key patterns (family blocked_key_patterns); BlockedValues,
	// value patterns the scanner replaces. Either may be nil.
	BlockedKeys   *regexp.Regexp
	BlockedValues *regexp.Regexp
	// ScanKinds are the kinds the value scanner looks for (0: none).
	ScanKinds scan.Set
	Summary   Summary
	// AllowListOnly removes every router span attribute that is neither in the schema nor in
	// AllowedKeys.
	AllowListOnly bool
	AllowedKeys   []string
}

// Issue is a kind of thing the normaliser fixed, converted or rejected.
type Issue uint8

const (
	// Schema migrations and known router wire formats: counted, not listed on the span.
	IssueRenamed Issue = iota
	IssueConverted
	// IssueRounded undoes the router's float32 widening, which every era sends.
	IssueRounded
	IssueRedacted
	IssueNotAllowed
	// IssueUnknownKey is a key outside the schema on a router span, a sign of a new router version.
	IssueUnknownKey
	// Defects in what the router sent: counted and listed in vsr.normalize.issues.
	IssueCoerced
	IssueCase
	IssueUnknownValue
	IssueInvalid
	IssueConflict
	IssueTruncated
	IssueInvalidUTF8
	// IssueDuplicateKey is a key sent twice in one map: the first is kept.
	IssueDuplicateKey
	// IssueInvalidKey is a key that is not clean (cleanKey); it is rewritten clean.
	IssueInvalidKey
	NumIssues
)

var issueNames = [NumIssues]string{"renamed", "converted", "rounded", "redacted", "not_allowed", "unknown_key",
	"coerced", "case", "unknown_value", "invalid", "conflict", "truncated", "invalid_utf8", "duplicate_key", "invalid_key"}

func (i Issue) String() string { return issueNames[i] }

// listed reports whether the issue is a defect worth naming on the span.
func (i Issue) listed() bool { return i >= IssueCoerced }

// Stats is what one call to Traces did.
type Stats struct {
	// Spans is the number of router spans normalized.
	Spans  int
	Issues [NumIssues]int
	// Traces counts the router traces of the batch by detected era.
	Traces [routerconv.EraD + 1]int
	// ModelServerSpans counts the model servers' request spans normalized, by server.
	ModelServerSpans [routerconv.NumModelServers]int
	// Redacted counts the values each family hashed or removed, on every service's spans;
	// Masked, the scanner's findings by kind.
	Redacted [NumFamilies]int
	Masked   scan.Counts
}

// source is where a key sends its value, and what the key tells routerconv's Classifier: one
// lookup per attribute serves both.
type source struct {
	// attr is nil for a key outside the schema that only Classify reads.
	attr *Attr
	conv Conv
	// legacy is set when the key is an older name of attr.Key.
	legacy bool
	router routerconv.Key
	// classified: Classify reads the key.
	classified bool
}

// Normalizer rewrites router spans into the canonical schema. It is safe for concurrent use.
type Normalizer struct {
	opts            Options
	services        routerconv.Services
	spanSources     map[string]source
	resourceSources map[string]source
	// allowed are the keys outside the schema that allow-list mode keeps; allowedEvent, the
	// keys of span events it keeps.
	allowed, allowedEvent map[string]bool
	// modelServer is the table a model server's request span is normalized against.
	modelServer []modelServerRule
	// The privacy walk's: families, the action of each, the scanner.
	match      *matcher
	actions    [NumFamilies]Action
	ignored    map[string]bool
	scanner    *scan.Scanner
	queryMode  scan.QueryMode
	hashPrefix string
	pool       sync.Pool
}

// New returns a Normalizer for opts.
func New(opts Options) *Normalizer {
	n := &Normalizer{
		opts:            opts,
		services:        routerconv.NewServices(opts.ServiceNames),
		spanSources:     map[string]source{},
		resourceSources: map[string]source{},
		allowed:         map[string]bool{},
		allowedEvent:    map[string]bool{},
		modelServer:     modelServerRules(),
		match:           newMatcher(opts.BlockedKeys),
		ignored:         map[string]bool{},
		scanner:         scan.New(opts.ScanKinds, opts.BlockedValues),
		queryMode:       [...]scan.QueryMode{QueryRedactValues: scan.QueryRedact, QueryKeep: scan.QueryKeep, QueryDrop: scan.QueryDrop}[opts.URLQuery],
		hashPrefix:      hashPrefixes[opts.HashFunction],
	}
	for i := range Schema {
		a := &Schema[i]
		if a.Event {
			n.allowedEvent[a.Key] = true
			continue
		}
		sources := n.spanSources
		if a.Resource {
			sources = n.resourceSources
		}
		conv := ConvNone
		if a.Key == "url.path" {
			conv = ConvSplitQuery
		}
		sources[a.Key] = source{attr: a, conv: conv}
		for _, l := range a.Legacy {
			sources[l.Key] = source{attr: a, conv: l.Conv, legacy: true}
		}
	}
	for k, key := range routerconv.Keys() {
		src := n.spanSources[k]
		src.router, src.classified = key, true
		n.spanSources[k] = src
	}
	for _, k := range opts.AllowedKeys {
		n.allowed[k] = true
		n.allowedEvent[k] = true
	}
	if opts.Summary != SummarySilent {
		// What this processor writes is not a router key to filter out.
		for _, k := range []string{summaryRedactedCount, summaryMaskedCount, summaryRedactedKeys, summaryMaskedKeys} {
			n.allowed[k] = true
		}
	}
	for _, k := range opts.IgnoredKeys {
		n.ignored[k] = true
	}
	n.actions = resolveActions(opts)
	newHash := sha256.New
	if opts.HashFunction == HashHMACSHA512 {
		newHash = sha512.New
	}
	n.pool.New = func() any {
		w := &work{traces: map[pcommon.TraceID]*traceFacts{}, keys: map[string]*keyInfo{},
			paths: map[string]rule{}, routerPaths: map[string]rule{}, cleanNames: map[string]bool{}}
		if len(opts.HashKey) > 0 {
			w.mac = hmac.New(newHash, opts.HashKey)
		}
		return w
	}
	return n
}

// resolveActions gives each family its action: its class's, or its own from opts.Families;
// hash is drop without a key.
func resolveActions(opts Options) (actions [NumFamilies]Action) {
	for i, f := range Families {
		a := map[Class]Action{ClassContent: opts.Prompts, ClassIdentifier: opts.Identifiers,
			ClassCredential: opts.Credentials, ClassURL: ActionSanitize}[f.Class]
		if own, ok := opts.Families[f.ID]; ok {
			a = own
		}
		if a == ActionHash && len(opts.HashKey) == 0 {
			a = ActionDrop
		}
		actions[i] = a
	}
	return actions
}

// work is the scratch state of one call, pooled so a batch allocates little.
type work struct {
	n     *Normalizer
	stats *Stats
	own   Stats
	// Per span, reset by each span.
	writes  []write
	removes []string
	issues  []string
	sum     summary
	// The privacy walk's: caches of keys and nested paths (by raw key and path), the entries
	// of the maps being walked, the path of the value being walked, the scanner's counts.
	keys               map[string]*keyInfo
	paths, routerPaths map[string]rule
	cleanNames         map[string]bool
	removals           []int
	renames            []rename
	restamps           []restamp
	path               []byte
	epoch              uint64
	counts             scan.Counts
	// Per batch.
	traces  map[pcommon.TraceID]*traceFacts
	spare   []*traceFacts
	pending []ptrace.Span
	mac     hash.Hash
	// classifier reads each router span in the normalizing pass.
	classifier routerconv.Classifier
}

type write struct {
	key string
	v   value
}

// traceFacts is what the batch's spans of one trace tell: whether its router root is here,
// for parse_request, and its era, for telemetry. Facts about the whole request are written
// by vsr_sampler, which sees every span of the trace.
type traceFacts struct {
	hasRoot bool
	spans   int
	eras    [2]routerconv.Era
}

// Traces normalizes every router span of td in place, and redacts personal data on every
// span, event, scope and resource. It never removes a span.
func (n *Normalizer) Traces(td ptrace.Traces) Stats {
	w := n.pool.Get().(*work)
	// The stats live in the pooled work: a batch's counters cost no allocation.
	w.own = Stats{}
	w.n, w.stats = n, &w.own
	if len(w.keys) >= maxCachedKeys {
		clear(w.keys)
	}
	stats := w.stats
	defer func() {
		for _, tf := range w.traces {
			*tf = traceFacts{}
			w.spare = append(w.spare, tf)
		}
		clear(w.traces)
		w.pending = w.pending[:0]
		w.counts = scan.Counts{}
		w.stats = nil
		n.pool.Put(w)
	}()

	for _, rs := range td.ResourceSpans().All() {
		routerResource := n.services.Router(rs.Resource())
		holdsRouterSpans := false
		for _, ss := range rs.ScopeSpans().All() {
			routerScope := n.services.RouterScope(rs.Resource(), ss.Scope())
			w.protectScope(ss.Scope(), routerScope)
			for _, span := range ss.Spans().All() {
				switch {
				case routerScope || routerconv.IsRouterSpanName(span.Name()):
					w.span(span)
					holdsRouterSpans = true
				case span.Name() == "parse_request":
					w.pending = append(w.pending, span)
				case routerconv.IsModelServerSpan(ss.Scope(), span.Name()):
					w.modelServerSpan(ss.Scope(), span)
				default:
					w.foreign(span)
				}
			}
		}
		router := routerResource || holdsRouterSpans
		w.protectMap(rs.Resource().Attributes(), walkCtx{router: router, event: -1}, -1)
		if router {
			w.issues = w.issues[:0]
			w.attributes(rs.Resource().Attributes(), n.resourceSources, nil)
			w.apply(rs.Resource().Attributes())
		}
	}
	// parse_request has no prefix: it is the router's when its trace has a router root.
	for _, span := range w.pending {
		if tf := w.traces[span.TraceID()]; tf != nil && tf.hasRoot {
			w.span(span)
		} else {
			w.foreign(span)
		}
	}
	for _, tf := range w.traces {
		stats.Traces[routerconv.SingleEra(tf.eras)]++
	}
	stats.Masked = w.counts
	return *stats
}

// maxIssueKeyBytes bounds the key quoted in an issue, which may be any key the router sent.
const maxIssueKeyBytes = 64

func (w *work) count(i Issue, key string) {
	w.stats.Issues[i]++
	if i.listed() && len(w.issues) < w.n.opts.MaxIssuesPerSpan {
		var ignored issueSet
		// Scanned whole, as a second pass scans the list: a key clean alone can read as a
		// finding after its issue's name (`invalid_key://0@` is a URL with credentials).
		entry, _ := w.text(i.String() + ":" + sanitizeString(key, maxIssueKeyBytes, &ignored))
		w.issues = append(w.issues, entry)
	}
}

func (w *work) countAll(set issueSet, key string) {
	for i := range NumIssues {
		if set.has(i) {
			w.count(i, key)
		}
	}
}

// factsFor returns the facts of a trace, reusing those of earlier batches.
func (w *work) factsFor(traceID pcommon.TraceID) *traceFacts {
	if tf := w.traces[traceID]; tf != nil {
		return tf
	}
	var tf *traceFacts
	if n := len(w.spare); n > 0 {
		tf = w.spare[n-1]
		w.spare = w.spare[:n-1]
	} else {
		tf = &traceFacts{}
	}
	w.traces[traceID] = tf
	return tf
}
