package normalize

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
)

// A model server's request span (vLLM's llm_request, SGLang's request span; which spans those
// are is routerconv.LookupModelServer's) is held to the schema rows marked ModelServer: token
// counts move to the current GenAI names, gen_ai.latency.* keep theirs (there is no convention
// yet) and must be seconds in [0, routerconv.MaxLatencySeconds], request parameters get their
// types. Every other key is left as the server sent it, redaction apart.

// modelServerRule is one row of the table: the schema row a key is held to, and the older
// name a server may send it under.
type modelServerRule struct {
	attr   *Attr
	legacy string
}

// modelServerRules is the table, from Schema.
func modelServerRules() []modelServerRule {
	var rules []modelServerRule
	for i := range Schema {
		a := &Schema[i]
		if !a.ModelServer {
			continue
		}
		r := modelServerRule{attr: a}
		if len(a.Legacy) > 0 {
			r.legacy = a.Legacy[0].Key
		}
		rules = append(rules, r)
	}
	return rules
}

// modelServerSpan normalizes a model server's request span: the redaction every service's
// spans get, then its keys against the table.
func (w *work) modelServerSpan(scope pcommon.InstrumentationScope, span ptrace.Span) {
	server, _, _ := routerconv.LookupModelServer(scope, span.Name())
	w.stats.ModelServerSpans[server]++
	w.issues = w.issues[:0]
	w.foreign(span)
	attrs := span.Attributes()
	w.writes, w.removes = w.writes[:0], w.removes[:0]
	for i := range w.n.modelServer {
		w.modelServerAttr(attrs, &w.n.modelServer[i])
	}
	w.apply(attrs)
	if len(w.issues) > 0 {
		w.writeIssues(attrs)
	}
	attrs.PutStr(routerconv.SchemaVersionKey, SchemaVersion)
}

// modelServerAttr normalizes one rule's key, sent under its current or its older name or both.
func (w *work) modelServerAttr(attrs pcommon.Map, r *modelServerRule) {
	opts := &w.n.opts
	canonical, hasCanonical := attrs.Get(r.attr.Key)
	var legacy pcommon.Value
	hasLegacy := false
	if r.legacy != "" {
		legacy, hasLegacy = attrs.Get(r.legacy)
	}
	if hasLegacy {
		w.count(IssueRenamed, r.legacy)
		if opts.Mode != ModeReport && !opts.KeepLegacyKeys {
			w.removes = append(w.removes, r.legacy)
		}
	}
	switch {
	case hasCanonical && hasLegacy:
		// The current key is normalized on its own and the older one has to agree with it,
		// unless the current one cannot be read: then the older one's value replaces it.
		var scratch, cscratch issueSet
		lv, lok := w.value(r.attr, ConvNone, legacy, &scratch)
		cv, cok := w.value(r.attr, ConvNone, canonical, &cscratch)
		if lok && (!cok || !cv.equal(lv)) {
			w.count(IssueConflict, r.attr.Key)
		}
		if lok && !cok {
			w.count(IssueInvalid, r.attr.Key)
			w.modelServerValue(r.attr, r.legacy, legacy, true)
			return
		}
		w.modelServerValue(r.attr, r.attr.Key, canonical, false)
	case hasCanonical:
		w.modelServerValue(r.attr, r.attr.Key, canonical, false)
	case hasLegacy:
		w.modelServerValue(r.attr, r.legacy, legacy, true)
	}
}

// modelServerValue holds a value to its row: written under the current key when renamed or
// coerced, removed when it cannot be read or is out of bounds (report mode only counts).
func (w *work) modelServerValue(a *Attr, key string, pv pcommon.Value, renamed bool) {
	var issues issueSet
	v, ok := w.value(a, ConvNone, pv, &issues)
	switch {
	case !ok:
		issues = 1 << IssueInvalid
	case w.n.opts.Mode == ModeStrict && issues.hasAny(strictRejects):
		issues.add(IssueInvalid)
		ok = false
	}
	w.countAll(issues, a.Key)
	switch {
	case w.n.opts.Mode == ModeReport:
	case !ok && !renamed:
		w.removes = append(w.removes, key)
	case !ok:
		// The older key goes as renamed (or stays, with keep_legacy_keys); nothing is written.
	case renamed || !v.sameAsWire(pv):
		w.writes = append(w.writes, write{a.Key, v})
	}
}
