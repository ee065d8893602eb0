package normalize

import (
	"math"
	"slices"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
)

// span normalizes one router span: its attributes and events, and what its own facts imply.
func (w *work) span(span ptrace.Span) {
	w.stats.Spans++
	w.issues = w.issues[:0]
	// Privacy first: nothing normalization derives, bounds or renames then sees a raw value.
	w.protectSpan(span, true)
	// The span is classified in the same pass, from what the router sent: its own keys tell
	// its era.
	w.classifier.Begin(span)
	attrs := span.Attributes()
	w.attributes(attrs, w.n.spanSources, &w.classifier)
	facts, info := w.classifier.Finish(span, true), w.classifier.Span()
	// Room for what this span gains (renamed keys, derived keys, the schema version) in one
	// allocation, rather than one per key added.
	attrs.EnsureCapacity(attrs.Len() + len(w.writes) + spanKeysAdded)
	w.apply(attrs)
	if w.n.opts.AllowListOnly {
		w.allowListEvents(span)
	}
	if w.n.opts.Mode != ModeReport {
		w.derive(span, info, facts)
	}
	if len(w.issues) > 0 {
		w.writeIssues(attrs)
	}
	attrs.PutStr(routerconv.SchemaVersionKey, SchemaVersion)
	w.writeSummary(attrs)

	tf := w.factsFor(span.TraceID())
	tf.spans++
	tf.eras = routerconv.NarrowEras(tf.eras, facts.Eras)
	if info.Role == routerconv.RoleRoot || info.Role == routerconv.RoleRootEarly {
		tf.hasRoot = true
	}
}

// spanKeysAdded is how many keys a router span typically gains besides its renamed ones:
// vsr.schema.version, openinference.span.kind, and an error.type or the upstream call's
// gen_ai.* keys.
const spanKeysAdded = 4

// foreign protects another service's span; nothing else changes.
func (w *work) foreign(span ptrace.Span) {
	w.protectSpan(span, false)
	w.writeSummary(span.Attributes())
}

// writeIssues adds this pass's issues to those an earlier collector listed, so a second
// normalization in the path neither loses nor repeats them.
func (w *work) writeIssues(attrs pcommon.Map) {
	list, ok := attrs.Get("vsr.normalize.issues")
	if !ok || list.Type() != pcommon.ValueTypeSlice {
		list = attrs.PutEmpty("vsr.normalize.issues")
		list.SetEmptySlice()
	}
	issues := list.Slice()
	for _, issue := range w.issues {
		if issues.Len() >= w.n.opts.MaxIssuesPerSpan {
			return
		}
		if !slices.ContainsFunc(issues.AsRaw(), func(v any) bool { return v == issue }) {
			issues.AppendEmpty().SetStr(issue)
		}
	}
}

// attributes normalizes one attribute map against sources, queueing writes and removals. A
// span's are also fed to classifier; a resource has none.
func (w *work) attributes(attrs pcommon.Map, sources map[string]source, classifier *routerconv.Classifier) {
	w.writes, w.removes = w.writes[:0], w.removes[:0]
	opts := &w.n.opts
	for key, pv := range attrs.All() {
		src := sources[key]
		if src.classified {
			classifier.Attr(src.router, pv)
		}
		if src.attr == nil {
			// A family's key was handled by the privacy walk; allow-list mode filters it all
			// the same.
			if classifier != nil && (opts.AllowListOnly || !w.topRule(w.keyInfo(key), true).matched()) {
				w.unknownKey(key, pv)
			}
			continue
		}
		a := src.attr
		if src.legacy && opts.Mode != ModeReport && !opts.KeepLegacyKeys {
			w.removes = append(w.removes, key)
		}
		if src.legacy {
			w.count(IssueRenamed, key)
			if canonical, present := attrs.Get(a.Key); present {
				// The canonical key is normalized on its own; the legacy one only has to agree.
				var scratch issueSet
				if lv, ok := w.value(a, src.conv, pv, &scratch); ok {
					var cscratch issueSet
					if cv, ok := w.value(a, sources[a.Key].conv, canonical, &cscratch); !ok || !cv.equal(lv) {
						w.count(IssueConflict, a.Key)
					}
				}
				continue
			}
		}
		var issues issueSet
		v, ok := w.value(a, src.conv, pv, &issues)
		switch {
		case !ok:
			issues = 1 << IssueInvalid
		case opts.Mode == ModeStrict && issues.hasAny(strictRejects):
			issues.add(IssueInvalid)
			ok = false
		}
		w.countAll(issues, a.Key)
		if opts.Mode == ModeReport {
			continue
		}
		switch {
		case !ok:
			if !src.legacy {
				w.removes = append(w.removes, key)
			}
		case src.conv == ConvSplitQuery && (src.legacy || strings.ContainsAny(v.s, "?#")):
			w.splitPath(a.Key, v.s)
		case src.legacy || !v.sameAsWire(pv):
			w.writes = append(w.writes, write{a.Key, v})
		}
	}
}

// value normalizes a wire value for attr: type, conversion, range, rounding, case, enum.
func (w *work) value(a *Attr, conv Conv, pv pcommon.Value, issues *issueSet) (value, bool) {
	if conv == ConvSecondsToMillis {
		secs, ok := coerce(TypeDouble, false, pv, issues)
		if !ok || math.IsNaN(secs.d) || math.IsInf(secs.d, 0) || secs.d < 0 || secs.d*1000 >= 1<<63 {
			return value{}, false
		}
		issues.add(IssueConverted)
		return value{typ: TypeInt, i: int64(math.Round(secs.d * 1000))}, true
	}
	v, ok := coerce(a.Type, a.Duration, pv, issues)
	if !ok {
		return v, false
	}
	maxBytes := w.n.opts.MaxValueBytes
	switch a.Type {
	case TypeInt:
		if a.Duration && v.i < 0 || !a.within(float64(v.i)) {
			return v, false
		}
	case TypeDouble:
		if math.IsNaN(v.d) || math.IsInf(v.d, 0) || a.Duration && v.d < 0 || !a.within(v.d) {
			return v, false
		}
		if a.Float32 {
			if r := roundFloat32(v.d); r != v.d {
				v.d = r
				issues.add(IssueRounded)
			}
		}
	case TypeString:
		v.s = w.enumValue(a, v.s, maxBytes, issues)
	case TypeStringSlice:
		for i, s := range v.ss {
			v.ss[i] = w.enumValue(a, s, maxBytes, issues)
		}
		if a.Set {
			slices.Sort(v.ss)
			v.ss = slices.Compact(v.ss)
		}
	}
	return v, true
}

// enumValue repairs, case-folds and bounds a string, then checks it against the enum. Folding
// comes before the bound because it can change the length.
func (w *work) enumValue(a *Attr, s string, maxBytes int, issues *issueSet) string {
	s = validUTF8(s, issues)
	// A hash is opaque: folded, it would no longer read as one.
	if folded := foldCase(s, a.Case); folded != s && !isHash(s, w.n.hashPrefix) {
		s = folded
		issues.add(IssueCase)
	}
	s = w.bound(a.Key, s, maxBytes, issues)
	if a.Enum != nil && !slices.Contains(a.Enum, s) {
		issues.add(IssueUnknownValue)
	}
	return s
}

// splitPath writes the path without its query, and the query as the configured mode says.
func (w *work) splitPath(key, raw string) {
	path, query := splitQuery(raw)
	w.writes = append(w.writes, write{key, value{typ: TypeString, s: path}})
	if query == "" {
		return
	}
	if w.n.opts.URLQuery == QueryDrop {
		return
	}
	// The privacy walk sanitized the query as url_query says, but the raw path's bound may
	// have cut its last parameter: sanitized again, it is whole.
	query, _ = w.url(query, URLQuery)
	w.writes = append(w.writes, write{"url.query", value{typ: TypeString, s: w.boundedQuery(query)}})
}

// boundedQuery holds a query the normalizer rewrote to max_value_bytes, counting a cut.
// Redacting a query's values can lengthen it past the bound its raw path was held to, and a
// second pass would cut it then; it is cut after its last whole parameter, so that a second
// pass finds every parameter as the first left it.
func (w *work) boundedQuery(q string) string {
	var issues issueSet
	cut := truncate(q, w.n.opts.MaxValueBytes, &issues)
	if len(cut) < len(q) {
		cut = cut[:max(strings.LastIndexByte(cut, '&'), 0)]
	}
	w.countAll(issues, "url.query")
	return cut
}

// unknownKey handles a key outside the schema: allow-list, then string hygiene.
func (w *work) unknownKey(key string, pv pcommon.Value) {
	opts := &w.n.opts
	if opts.AllowListOnly && !w.n.allowed[key] {
		w.count(IssueNotAllowed, key)
		if opts.Mode != ModeReport {
			w.removes = append(w.removes, key)
		}
		return
	}
	w.count(IssueUnknownKey, key)
	if pv.Type() != pcommon.ValueTypeStr {
		return
	}
	var issues issueSet
	s := w.bound(key, validUTF8(pv.Str(), &issues), opts.MaxValueBytes, &issues)
	if issues == 0 {
		return
	}
	w.countAll(issues, key)
	switch opts.Mode {
	case ModeFix:
		w.writes = append(w.writes, write{key, value{typ: TypeString, s: s}})
	case ModeStrict:
		w.removes = append(w.removes, key)
	}
}

// apply performs the queued writes, then the removals.
func (w *work) apply(attrs pcommon.Map) {
	for _, wr := range w.writes {
		wr.v.put(attrs, wr.key)
	}
	if len(w.removes) > 0 {
		attrs.RemoveIf(func(k string, _ pcommon.Value) bool { return slices.Contains(w.removes, k) })
	}
}

// putAbsent writes a constant only where the router did not set the key itself.
func putAbsent(attrs pcommon.Map, key, v string) {
	if _, ok := attrs.Get(key); !ok && v != "" {
		attrs.PutStr(key, v)
	}
}

// putDerived writes a string derived from the span's facts, only where the router did not set
// the key itself, held to the key's schema like any value the router sent: a fact read from an
// exception message or a model name can carry invalid UTF-8 or an unbounded length. It returns
// what it wrote.
func (w *work) putDerived(attrs pcommon.Map, key, v string) string {
	if _, ok := attrs.Get(key); ok || v == "" {
		return ""
	}
	var issues issueSet
	if src := w.n.spanSources[key]; src.attr != nil {
		v = w.enumValue(src.attr, v, w.n.opts.MaxValueBytes, &issues)
	} else {
		v = w.bound(key, validUTF8(v, &issues), w.n.opts.MaxValueBytes, &issues)
	}
	w.countAll(issues, key)
	attrs.PutStr(key, v)
	return v
}

// derive adds what the span's own facts imply but the router did not say. Facts about the
// whole request (the root summary, the guard verdict, the model era A's upstream call used)
// are vsr_sampler's to write, once the trace is whole.
func (w *work) derive(span ptrace.Span, info routerconv.SpanInfo, facts routerconv.Facts) {
	attrs := span.Attributes()
	if facts.Has(routerconv.SigError) {
		w.putDerived(attrs, "error.type", facts.ErrorType)
		if span.Status().Code() == ptrace.StatusCodeUnset {
			// Eras A–C only record an exception event; Jaeger's error=true needs the status.
			errorType, _ := attrs.Get("error.type")
			span.Status().SetCode(ptrace.StatusCodeError)
			span.Status().SetMessage(errorType.AsString())
		}
	}
	if facts.Has(routerconv.SigBlocked) && facts.BlockReason != routerconv.ReasonGuard {
		// The span names its guard (era A's guard span, era B's plugin).
		w.putDerived(attrs, "security.reason", facts.BlockReason)
	}
	kind := info.OpenInferenceKind
	if info.Role == routerconv.RolePlugin {
		if t, ok := attrs.Get("plugin.type"); ok {
			if _, guard := routerconv.IsGuardPlugin(t.AsString()); guard {
				kind = "GUARDRAIL"
			}
		}
	}
	// Constants of the schema's enums: nothing to check.
	putAbsent(attrs, "openinference.span.kind", kind)
	if info.Role == routerconv.RoleUpstream {
		putAbsent(attrs, "gen_ai.operation.name", "chat")
		// The model as normalized above, so that a second pass finds what the first wrote from.
		if model, ok := attrs.Get(routerconv.UpstreamModelKey); ok && model.Type() == pcommon.ValueTypeStr {
			routerconv.WriteModel(span, model.Str())
		}
	}
}
