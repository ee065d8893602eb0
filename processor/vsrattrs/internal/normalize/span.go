package normalize

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"slices"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
)

// span normalizes one router span and records what it tells about its trace.
func (w *work) span(span ptrace.Span) {
	w.stats.Spans++
	info, known := routerconv.LookupSpan(span.Name())
	w.eras = info.Eras
	attrs := span.Attributes()
	w.attributes(attrs, w.n.spanSources, false)
	w.apply(attrs)

	facts := routerconv.Classify(span, true)
	if w.n.opts.Mode != ModeReport {
		w.derive(span, info, facts)
	}
	if len(w.issues) > 0 {
		w.writeIssues(attrs)
	}
	attrs.PutStr("vsr.schema.version", SchemaVersion)

	tf := w.factsFor(span.TraceID())
	tf.verdict.Add(facts)
	tf.maxEnd = max(tf.maxEnd, span.EndTimestamp())
	if known || w.eras != [2]routerconv.Era{} {
		tf.narrowEras(w.eras)
	}
	if routerconv.IsLocalRoot(span) && (info.Role == routerconv.RoleRoot || info.Role == routerconv.RoleRootEarly || !tf.hasRoot) {
		tf.root, tf.hasRoot = span, true
	}
	w.learn(tf, span, info)
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

// narrowEras intersects the eras a trace can be from with those a span or key allows.
func (tf *traceFacts) narrowEras(eras [2]routerconv.Era) {
	if eras[0] == routerconv.EraUnknown {
		return
	}
	if !tf.erasKnown {
		tf.eras, tf.erasKnown = eras, true
		return
	}
	tf.eras[0] = max(tf.eras[0], eras[0])
	tf.eras[1] = min(tf.eras[1], eras[1])
}

// era is the oldest era consistent with all evidence; unknown when the evidence conflicts or
// is only a root span, which eras A–C share.
func (tf *traceFacts) era(onlyRoot bool) routerconv.Era {
	if !tf.erasKnown || tf.eras[0] > tf.eras[1] || (onlyRoot && tf.eras[0] != tf.eras[1]) {
		return routerconv.EraUnknown
	}
	return tf.eras[0]
}

// learn copies into the trace's facts what the root summary needs from this span.
func (w *work) learn(tf *traceFacts, span ptrace.Span, info routerconv.SpanInfo) {
	attrs := span.Attributes()
	str := func(key string) string {
		if v, ok := attrs.Get(key); ok {
			return v.AsString()
		}
		return ""
	}
	tf.spans++
	if m := str("routing.selected_model"); m != "" {
		tf.selectedModel = m
	}
	if m := str("routing.original_model"); m != "" {
		tf.originalModel = m
	}
	if c := str("category.name"); c != "" && tf.category == "" {
		tf.category = c
	}
	if v, ok := attrs.Get("cache.hit"); ok && v.Type() == pcommon.ValueTypeBool {
		tf.cacheHit, tf.cacheKnown = v.Bool(), true
	} else if r := str("plugin.result"); r == "cache_hit" || r == "cache_miss" {
		tf.cacheHit, tf.cacheKnown = r == "cache_hit", true
	}
	if info.Role == routerconv.RoleUpstream {
		if m := str("model.name"); m != "" {
			if tf.selectedModel == "" {
				tf.selectedModel = m
			}
		} else if w.n.opts.Mode != ModeReport {
			tf.modelessLLMs = append(tf.modelessLLMs, span)
		}
	}
}

// attributes normalizes one attribute map against sources, queueing writes and removals.
func (w *work) attributes(attrs pcommon.Map, sources map[string]source, resource bool) {
	w.writes, w.removes, w.issues = w.writes[:0], w.removes[:0], w.issues[:0]
	opts := &w.n.opts
	for key, pv := range attrs.All() {
		src, known := sources[key]
		if !known {
			if !resource {
				w.unknownKey(key, pv)
			}
			continue
		}
		if src.eras[0] != routerconv.EraUnknown {
			w.narrow(src.eras)
		}
		a := src.attr
		if a.Redact != RedactNone {
			w.redact(key, pv, a.Redact)
			continue
		}
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
		case src.conv == ConvSplitQuery && (src.legacy || strings.Contains(v.s, "?")):
			w.splitPath(a.Key, v.s)
		case src.legacy || !v.sameAsWire(pv):
			w.writes = append(w.writes, write{a.Key, v})
		}
	}
}

func (w *work) narrow(eras [2]routerconv.Era) {
	w.eras[0] = max(w.eras[0], eras[0])
	if w.eras[1] == routerconv.EraUnknown {
		w.eras[1] = eras[1]
	} else {
		w.eras[1] = min(w.eras[1], eras[1])
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
		if a.Duration && v.i < 0 {
			return v, false
		}
	case TypeDouble:
		if math.IsNaN(v.d) || math.IsInf(v.d, 0) {
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
	if folded := foldCase(s, a.Case); folded != s {
		s = folded
		issues.add(IssueCase)
	}
	s = truncate(s, maxBytes, issues)
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
	switch w.n.opts.URLQuery {
	case QueryKeep:
		w.writes = append(w.writes, write{"url.query", value{typ: TypeString, s: query}})
	case QueryRedactValues:
		w.writes = append(w.writes, write{"url.query", value{typ: TypeString, s: redactQueryValues(query)}})
	}
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
	s := sanitizeString(pv.Str(), opts.MaxValueBytes, &issues)
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

// redact hashes or removes personal data. It applies in every mode: report mode is about the
// schema, not about letting prompts through.
func (w *work) redact(key string, pv pcommon.Value, kind Redact) {
	action := w.n.opts.Prompts
	if kind == RedactIdentifier {
		action = w.n.opts.Identifiers
	}
	switch action {
	case ActionKeep:
		return
	case ActionDrop:
		w.removes = append(w.removes, key)
	case ActionHash:
		s := pv.AsString()
		if len(s) > len(hashPrefix) && s[:len(hashPrefix)] == hashPrefix {
			return // hashed already
		}
		w.writes = append(w.writes, write{key, value{typ: TypeString, s: w.hash(s)}})
	}
	w.count(IssueRedacted, key)
}

// hash is a keyed HMAC-SHA256, truncated to 128 bits: enough to tell values apart and to join
// on, without a dictionary attack on short values.
func (w *work) hash(s string) string {
	w.mac.Reset()
	w.mac.Write([]byte(s))
	var sum [sha256.Size]byte
	return hashPrefix + hex.EncodeToString(w.mac.Sum(sum[:0])[:16])
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

// putAbsent writes a derived string only where the router did not set the key itself.
func putAbsent(attrs pcommon.Map, key, v string) {
	if _, ok := attrs.Get(key); !ok && v != "" {
		attrs.PutStr(key, v)
	}
}

// derive adds what the router's conventions imply but its spans do not say.
func (w *work) derive(span ptrace.Span, info routerconv.SpanInfo, facts routerconv.Facts) {
	attrs := span.Attributes()
	if facts.Has(routerconv.SigError) {
		putAbsent(attrs, "error.type", facts.ErrorType)
		if span.Status().Code() == ptrace.StatusCodeUnset {
			// Eras A–C only record an exception event; Jaeger's error=true needs the status.
			span.Status().SetCode(ptrace.StatusCodeError)
			span.Status().SetMessage(facts.ErrorType)
		}
	}
	if facts.Has(routerconv.SigBlocked) {
		putAbsent(attrs, "security.reason", facts.BlockReason)
	}
	kind := info.OpenInferenceKind
	if info.Role == routerconv.RolePlugin {
		if t, ok := attrs.Get("plugin.type"); ok {
			if _, guard := routerconv.IsGuardPlugin(t.AsString()); guard {
				kind = "GUARDRAIL"
			}
		}
	}
	putAbsent(attrs, "openinference.span.kind", kind)
	if info.Role == routerconv.RoleUpstream {
		putAbsent(attrs, "gen_ai.operation.name", "chat")
		if m, ok := attrs.Get("model.name"); ok {
			putModel(attrs, m.AsString())
		}
	}
}

func putModel(attrs pcommon.Map, model string) {
	putAbsent(attrs, "gen_ai.request.model", model)
	putAbsent(attrs, "gen_ai.response.model", model)
	putAbsent(attrs, "llm.model_name", model)
}

// summarize writes the trace-level summary on the root, as the router's guide promises for
// filtering, from whichever spans of the batch carry it.
func (w *work) summarize(tf *traceFacts) {
	era := tf.era(tf.spans == 1)
	w.stats.Traces[era]++
	if tf.hasRoot {
		// The first collector saw the router's own keys; a second one sees canonical keys only.
		putAbsent(tf.root.Attributes(), "vsr.era", era.String())
	}
	if w.n.opts.Mode == ModeReport {
		return
	}
	for _, llm := range tf.modelessLLMs {
		putModel(llm.Attributes(), tf.selectedModel)
	}
	if !tf.hasRoot {
		return
	}
	attrs := tf.root.Attributes()
	putAbsent(attrs, "routing.selected_model", tf.selectedModel)
	putAbsent(attrs, "category.name", tf.category)
	putAbsent(attrs, "gen_ai.request.model", tf.originalModel)
	putAbsent(attrs, "gen_ai.response.model", tf.selectedModel)
	if _, ok := attrs.Get("cache.hit"); !ok && tf.cacheKnown {
		attrs.PutBool("cache.hit", tf.cacheHit)
	}
	if _, ok := attrs.Get("processing.time_ms"); !ok && tf.maxEnd >= tf.root.StartTimestamp() && tf.root.StartTimestamp() != 0 {
		attrs.PutInt("processing.time_ms", int64(tf.maxEnd-tf.root.StartTimestamp())/1e6)
	}
	switch reason, blocked := tf.verdict.Blocked(true); {
	case blocked:
		attrs.PutStr("security.action", "blocked")
		attrs.PutStr("security.reason", reason)
	case tf.verdict.Signals&routerconv.SigUpstream != 0:
		putAbsent(attrs, "security.action", "allowed")
	}
}
