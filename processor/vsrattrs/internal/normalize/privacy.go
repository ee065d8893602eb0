package normalize

import (
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrattrs/internal/scan"
)

// The privacy walk: every string a span carries (its name, status message, trace state,
// attributes, events' names and attributes, links' trace states and attributes) and those of
// its scope and resource, at any depth of nested maps and arrays, is either a family's (and
// hashed, removed or sanitized as the family's action says) or kept and scanned for secrets
// and personal data. Duplicate keys collapse to the first, handled; unclean keys are rewritten
// clean and their values treated as content. It runs in every mode, on every service's spans,
// and on the router's before they are normalized, so that nothing normalization derives or
// bounds can carry a raw value.

// maxDepth bounds the nesting the walk follows; deeper values are treated as content.
const maxDepth = 16

// walkCtx is where a map being walked sits.
type walkCtx struct {
	router bool
	// event is the family of the content event whose body the map is, or -1.
	event int16
	depth int
}

// rename moves a handled value to its clean key after the walk of its map.
type rename struct {
	key string
	v   pcommon.Value
}

// summary is what the walk did to one span, for redaction.summary.
type summary struct {
	redacted, masked int
	redactedKeys     []string
	maskedKeys       []string
}

// protectSpan walks everything a span carries.
func (w *work) protectSpan(span ptrace.Span, router bool) {
	w.sum = summary{redactedKeys: w.sum.redactedKeys[:0], maskedKeys: w.sum.maskedKeys[:0]}
	if s, changed := w.name(span.Name()); changed {
		span.SetName(s)
	}
	if s, changed := w.text(span.Status().Message()); changed {
		span.Status().SetMessage(s)
	}
	w.traceState(span.TraceState())
	w.protectMap(span.Attributes(), walkCtx{router: router, event: -1}, -1)
	for _, ev := range span.Events().All() {
		if s, changed := w.text(ev.Name()); changed {
			ev.SetName(s)
		}
		event := w.n.match.event(ev.Name())
		w.protectMap(ev.Attributes(), walkCtx{router: router, event: event}, -1)
	}
	for _, l := range span.Links().All() {
		w.traceState(l.TraceState())
		w.protectMap(l.Attributes(), walkCtx{router: router, event: -1}, -1)
	}
}

// protectScope walks an instrumentation scope.
func (w *work) protectScope(scope pcommon.InstrumentationScope, router bool) {
	if s, changed := w.text(scope.Name()); changed {
		scope.SetName(s)
	}
	if s, changed := w.text(scope.Version()); changed {
		scope.SetVersion(s)
	}
	w.protectMap(scope.Attributes(), walkCtx{router: router, event: -1}, -1)
}

// protectMap handles every entry of m. w.path[:pathLen] is m's own lowercased dotted path;
// pathLen < 0 for an attribute map at the top.
func (w *work) protectMap(m pcommon.Map, c walkCtx, pathLen int) {
	if m.Len() == 0 {
		return
	}
	w.epoch++
	epoch := w.epoch
	// A key seen in this map carries its epoch (duplicates). A nested map's walk restores the
	// stamps it overwrote, so that the map around it still finds its own repeats.
	restore := len(w.restamps)
	// Removals are rare: their indexes are kept, not a flag per entry.
	base := len(w.removals)
	renames := len(w.renames)
	i := -1
	for k, v := range m.All() {
		i++
		ki := w.keyInfo(k)
		if ki.stamp == epoch {
			// OTLP can carry a key twice; every reader but this one sees the first.
			w.countKey(IssueDuplicateKey, ki.cleaned, c.router)
			w.removals = append(w.removals, i)
			continue
		}
		if pathLen >= 0 {
			w.restamps = append(w.restamps, restamp{ki, ki.stamp})
		}
		ki.stamp = epoch
		if len(w.n.ignored) > 0 && w.n.ignored[k] {
			continue
		}
		remove := w.protectValue(v, w.ruleOf(k, ki, c, pathLen), ki, c, pathLen, false)
		if !ki.clean {
			w.countKey(IssueInvalidKey, ki.cleaned, c.router)
			if !remove {
				moved := pcommon.NewValueEmpty()
				v.CopyTo(moved)
				w.renames = append(w.renames, rename{key: ki.cleaned, v: moved})
				remove = true
			}
		}
		if remove {
			w.removals = append(w.removals, i)
		}
	}
	if removals := w.removals[base:]; len(removals) > 0 {
		i, next := -1, 0
		m.RemoveIf(func(string, pcommon.Value) bool {
			i++
			if next < len(removals) && removals[next] == i {
				next++
				return true
			}
			return false
		})
	}
	w.removals = w.removals[:base]
	for _, rn := range w.renames[renames:] {
		// A clean key already present keeps its own value: one handled value per key.
		if _, exists := m.Get(rn.key); !exists {
			rn.v.CopyTo(m.PutEmpty(rn.key))
		}
	}
	w.renames = w.renames[:renames]
	for j := len(w.restamps) - 1; j >= restore; j-- {
		w.restamps[j].ki.stamp = w.restamps[j].stamp
	}
	w.restamps = w.restamps[:restore]
}

// restamp is a key's stamp before a nested map's walk.
type restamp struct {
	ki    *keyInfo
	stamp uint64
}

// ruleOf finds what the families say of key k in a map at c.
func (w *work) ruleOf(k string, ki *keyInfo, c walkCtx, pathLen int) rule {
	var r rule
	if pathLen < 0 {
		r = w.topRule(ki, c.router)
	} else {
		r = w.nestedRule(k, ki, c.router, pathLen)
	}
	switch {
	case c.event >= 0 && !r.matched():
		// A content event's body is content, but for its structure.
		if isStructure(w.pathOf(ki, pathLen)) {
			r.structure = true
		} else {
			r.family = c.event
		}
	case !r.matched() && !ki.clean:
		r.family = int16(familyInvalidKeys)
	}
	if c.depth >= maxDepth {
		r = rule{family: int16(familyInvalidKeys)}
	}
	return r
}

// pathOf is the lowercased path of key ki in a map at w.path[:pathLen].
func (w *work) pathOf(ki *keyInfo, pathLen int) string {
	if pathLen < 0 {
		return ki.lower
	}
	return string(w.path[:pathLen]) + "." + ki.lower
}

// nestedRule is the rule of a nested key: its path joined to its map's.
func (w *work) nestedRule(k string, ki *keyInfo, router bool, pathLen int) rule {
	w.path = append(append(w.path[:pathLen], '.'), k...)
	cache := w.paths
	if router {
		cache = w.routerPaths
	}
	if r, ok := cache[string(w.path)]; ok {
		return r
	}
	if len(cache) >= maxCachedKeys {
		clear(cache)
	}
	r := w.n.match.match(w.pathOf(ki, pathLen), ki.cleaned, router)
	cache[string(w.path)] = r
	return r
}

// protectValue handles one value under rule r, and reports whether it is to be removed. v's own
// path is w.path[:pathLen] when elem (an array's element), else its key's joined to it.
func (w *work) protectValue(v pcommon.Value, r rule, ki *keyInfo, c walkCtx, pathLen int, elem bool) (remove bool) {
	if !r.matched() || r.structure {
		if typ := v.Type(); typ == pcommon.ValueTypeStr {
			// The common case, kept as it is: scanned.
			if s, changed := w.text(v.Str()); changed {
				v.SetStr(s)
				w.masked(ki)
			}
			return false
		}
	}
	act := ActionKeep
	if r.matched() && !r.structure {
		act = w.n.actions[r.family]
	}
	typ := v.Type()
	container := typ == pcommon.ValueTypeMap || typ == pcommon.ValueTypeSlice
	switch act {
	case ActionDrop:
		w.redacted(r.family, ki)
		return true
	case ActionSanitize:
		// A number or bool under a URL key is read as the text it would be: normalization
		// writes it so under a schema key.
		if !container && v.Type() != pcommon.ValueTypeEmpty {
			raw := v.AsString()
			s, changed := w.url(raw, Families[r.family].URL)
			if changed {
				w.stats.Redacted[r.family]++
				w.masked(ki)
			}
			if changed || v.Type() != pcommon.ValueTypeStr {
				v.SetStr(s)
			}
			return false
		}
	case ActionHash:
		// The leaves of a container are hashed one by one where the family's keys (or the
		// content event) carry over to them, so that structure keys stay; otherwise, and past
		// maxDepth, the whole of it.
		if !container || c.depth >= maxDepth || !inherits(r, c) {
			if v.Type() == pcommon.ValueTypeEmpty || v.Type() == pcommon.ValueTypeStr && isHash(v.Str(), w.n.hashPrefix) {
				return false // nothing, or hashed already by this processor in an earlier collector
			}
			v.SetStr(w.hash(v.AsString()))
			w.redacted(r.family, ki)
			return false
		}
	}
	if container {
		self := pathLen
		if !elem {
			self = w.enter(ki, pathLen)
		}
		return w.container(v, r, ki, c, self)
	}
	w.scanLeaf(v, ki)
	return false
}

// inherits reports whether the keys nested under a value of rule r fall under r's family by
// their own paths (a family of Keys), or under the content event being walked.
func inherits(r rule, c walkCtx) bool {
	return r.family == c.event || len(Families[r.family].Keys) > 0
}

// container walks a map or an array whose own path is w.path[:self]; an array's elements
// take the array's rule, a map's entries their own. It reports whether the container is to
// be removed (never: what goes is removed inside it).
func (w *work) container(v pcommon.Value, r rule, ki *keyInfo, c walkCtx, self int) bool {
	inner := walkCtx{router: c.router, event: c.event, depth: c.depth + 1}
	if v.Type() == pcommon.ValueTypeMap {
		w.protectMap(v.Map(), inner, self)
		return false
	}
	// Array indexes are all "0" in paths: the rules ignore numbered parts, and the cache
	// stays small.
	w.path = append(w.path[:self], ".0"...)
	elem := len(w.path)
	er := r
	if inner.depth >= maxDepth {
		er = rule{family: int16(familyInvalidKeys)}
	}
	var drop []bool
	for i, e := range v.Slice().All() {
		w.path = w.path[:elem]
		if w.protectValue(e, er, ki, inner, elem, true) {
			if drop == nil {
				drop = make([]bool, v.Slice().Len())
			}
			drop[i] = true
		}
	}
	if drop != nil {
		i := 0
		v.Slice().RemoveIf(func(pcommon.Value) bool {
			i++
			return drop[i-1]
		})
	}
	return false
}

// scanLeaf scans a kept string, bytes that are text, or an integer long enough to be a card.
func (w *work) scanLeaf(v pcommon.Value, ki *keyInfo) {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		if s, changed := w.text(v.Str()); changed {
			v.SetStr(s)
			w.masked(ki)
		}
	case pcommon.ValueTypeBytes:
		if b := v.Bytes().AsRaw(); utf8.Valid(b) {
			if s, changed := w.text(string(b)); changed {
				v.SetEmptyBytes().FromRaw([]byte(s))
				w.masked(ki)
			}
		}
	case pcommon.ValueTypeInt:
		if n := v.Int(); (n >= 1e12 || n <= -1e12) && w.n.scanner.Enabled() {
			if s, changed := w.text(v.AsString()); changed {
				v.SetStr(s)
				w.masked(ki)
			}
		}
	}
}

// enter puts a container's path (its map's joined with its key) in w.path, and returns its
// length.
func (w *work) enter(ki *keyInfo, pathLen int) int {
	if pathLen < 0 {
		w.path = append(w.path[:0], ki.lower...)
	} else {
		w.path = append(append(w.path[:pathLen], '.'), ki.lower...)
	}
	return len(w.path)
}

// text scans a kept string. A hash this processor wrote is opaque: its hex digits can read
// as something the scanner finds, and a second pass would change it.
func (w *work) text(s string) (string, bool) {
	if s == "" || isHash(s, w.n.hashPrefix) {
		return s, false
	}
	return w.n.scanner.String(s, &w.counts)
}

// name scans a span name; its paths and URLs (`GET /users/42`) are sanitized like url.path
// and url.full. Names repeat (the router has a dozen): a name found clean is remembered.
func (w *work) name(s string) (string, bool) {
	if w.cleanNames[s] {
		return s, false
	}
	out, changed := w.nameOnce(s)
	if !changed {
		if len(w.cleanNames) >= maxCachedKeys {
			clear(w.cleanNames)
		}
		w.cleanNames[strings.Clone(s)] = true
	}
	return out, changed
}

func (w *work) nameOnce(s string) (string, bool) {
	if !strings.Contains(s, "/") {
		return w.text(s)
	}
	parts := strings.Split(s, " ")
	changed := false
	for i, p := range parts {
		var c bool
		switch {
		case strings.HasPrefix(p, "/"):
			parts[i], c = w.url(p, URLTarget)
		case strings.Contains(p, "://"):
			parts[i], c = w.url(p, URLFull)
		}
		changed = changed || c
	}
	// Then the whole name, as what it finds can span words (`card 4111 1111 …`).
	out, c := w.text(strings.Join(parts, " "))
	return out, changed || c
}

// url sanitizes a URL part as url_query says.
func (w *work) url(s string, part URLPart) (string, bool) {
	sc, mode := w.n.scanner, w.n.queryMode
	switch part {
	case URLFull:
		return sc.URL(s, mode, &w.counts)
	case URLQuery:
		out, changed := sc.Query(s, mode, &w.counts)
		return out, changed
	}
	return sc.Target(s, mode, &w.counts)
}

// traceState scans the values of a W3C trace state but OpenTelemetry's own (`ot=th:…;rv:…`),
// which vsr_sampler reads and writes: vendors' entries are opaque, but can be anything.
func (w *work) traceState(ts pcommon.TraceState) {
	raw := ts.AsRaw()
	if raw == "" || !w.n.scanner.Enabled() {
		return
	}
	members := strings.Split(raw, ",")
	changed := false
	for i, m := range members {
		key, value, ok := strings.Cut(m, "=")
		if !ok || strings.TrimSpace(key) == "ot" {
			continue
		}
		if s, c := w.text(value); c {
			members[i], changed = key+"="+s, true
		}
	}
	if changed {
		ts.FromRaw(strings.Join(members, ","))
	}
}

// redacted counts a value a family hashed or removed.
func (w *work) redacted(f int16, ki *keyInfo) {
	w.stats.Redacted[f]++
	w.stats.Issues[IssueRedacted]++
	w.sum.redacted++
	if w.n.opts.Summary == SummaryDebug {
		w.sum.redactedKeys = appendKey(w.sum.redactedKeys, ki.cleaned)
	}
}

// masked counts a kept value the scanner changed.
func (w *work) masked(ki *keyInfo) {
	w.sum.masked++
	if w.n.opts.Summary == SummaryDebug {
		w.sum.maskedKeys = appendKey(w.sum.maskedKeys, ki.cleaned)
	}
}

func appendKey(keys []string, k string) []string {
	for _, have := range keys {
		if have == k {
			return keys
		}
	}
	return append(keys, k)
}

// countKey counts an issue with a key, listed on router spans only.
func (w *work) countKey(i Issue, key string, router bool) {
	if !router {
		w.stats.Issues[i]++
		return
	}
	w.count(i, key)
}

// The summary attributes, named as contrib's redaction processor names them.
const (
	summaryRedactedCount = "redaction.redacted.count"
	summaryMaskedCount   = "redaction.masked.count"
	summaryRedactedKeys  = "redaction.redacted.keys"
	summaryMaskedKeys    = "redaction.masked.keys"
)

// writeSummary records on the span what the walk did to it, as redaction.summary says.
func (w *work) writeSummary(attrs pcommon.Map) {
	if w.n.opts.Summary == SummarySilent || (w.sum.redacted == 0 && w.sum.masked == 0) {
		return
	}
	if w.sum.redacted > 0 {
		attrs.PutInt(summaryRedactedCount, int64(w.sum.redacted))
	}
	if w.sum.masked > 0 {
		attrs.PutInt(summaryMaskedCount, int64(w.sum.masked))
	}
	if w.n.opts.Summary == SummaryDebug {
		if len(w.sum.redactedKeys) > 0 {
			attrs.PutStr(summaryRedactedKeys, strings.Join(w.sum.redactedKeys, ","))
		}
		if len(w.sum.maskedKeys) > 0 {
			attrs.PutStr(summaryMaskedKeys, strings.Join(w.sum.maskedKeys, ","))
		}
	}
}

// allowListEvents removes, in allow-list mode, a router span's event attributes outside the
// schema's event keys and allowed_keys.
func (w *work) allowListEvents(span ptrace.Span) {
	allowed := w.n.allowedEvent
	for _, ev := range span.Events().All() {
		ev.Attributes().RemoveIf(func(k string, _ pcommon.Value) bool {
			if allowed[k] {
				return false
			}
			w.stats.Issues[IssueNotAllowed]++
			return w.n.opts.Mode != ModeReport
		})
	}
}

// bound cuts a string written under key on a router span to max_value_bytes. The walk scanned
// it whole, and a cut can make a finding of what was none (a run of hex letters cut before its
// first other letter reads as an ID) or undo a replacement (`b=REDACTED` cut to `b=RED`): the
// cut is scanned again as the key's rule says, so that a second pass leaves it as it is. Where
// the scan lengthens the cut past the bound again, the cut steps back to its previous separator.
func (w *work) bound(key, s string, maxBytes int, issues *issueSet) string {
	cut := truncate(s, maxBytes, issues)
	if len(cut) == len(s) {
		return s
	}
	for range maxBoundSteps {
		out, changed := w.rescan(key, cut)
		switch {
		case !changed:
			return cut
		case len(out) <= maxBytes:
			return out
		}
		i := strings.LastIndexAny(cut, boundSeparators)
		if i < 0 {
			break
		}
		cut = cut[:i]
	}
	return truncate(scan.Redacted, maxBytes, issues)
}

// boundSeparators end the parts of paths, queries and text a scan replaces whole.
const boundSeparators = "/&?#;= "

// maxBoundSteps bounds bound's steps back; past it the value is REDACTED.
const maxBoundSteps = 8

// rescan scans s, written under key on a router span, as the walk does.
func (w *work) rescan(key, s string) (string, bool) {
	r := w.topRule(w.keyInfo(key), true)
	if r.matched() && !r.structure {
		switch w.n.actions[r.family] {
		case ActionSanitize:
			return w.url(s, Families[r.family].URL)
		case ActionHash, ActionDrop:
			return s, false
		}
	}
	return w.text(s)
}
