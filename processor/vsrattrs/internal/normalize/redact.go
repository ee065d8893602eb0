package normalize

import (
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// hashPrefix starts every value this processor hashes.
const hashPrefix = "hmac-sha256:"

// hashHexLen is the hex digits after hashPrefix: 128 bits.
const hashHexLen = 32

// isHash reports whether v is exactly what hash writes. Only that passes as already
// redacted: a value that merely starts like one is personal data like any other.
func isHash(v pcommon.Value) bool {
	if v.Type() != pcommon.ValueTypeStr {
		return false
	}
	s := v.Str()
	if len(s) != len(hashPrefix)+hashHexLen || !strings.HasPrefix(s, hashPrefix) {
		return false
	}
	for _, c := range []byte(s[len(hashPrefix):]) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// redactRule is what the schema says of a personal data key.
type redactRule struct {
	kind       Redact
	routerOnly bool
}

// redactionRules find the personal data keys of the schema in any letter case, and the
// numbered keys of indexed ones (gen_ai.prompt.0.content).
type redactionRules struct {
	exact   map[string]redactRule
	indexed []indexedRule
}

type indexedRule struct {
	prefix string
	rule   redactRule
}

func newRedactionRules() redactionRules {
	r := redactionRules{exact: map[string]redactRule{}}
	for _, a := range Schema {
		if a.Redact == RedactNone {
			continue
		}
		rule := redactRule{kind: a.Redact, routerOnly: a.RouterOnly}
		r.exact[a.Key] = rule
		if a.Indexed {
			r.indexed = append(r.indexed, indexedRule{prefix: a.Key + ".", rule: rule})
		}
	}
	return r
}

// lookup says whether key holds personal data on a span of the router (router) or of
// another service, and which kind.
func (r *redactionRules) lookup(key string, router bool) (Redact, bool) {
	rule, ok := r.exact[key]
	if !ok {
		lower := key
		if hasUpper(key) {
			lower = strings.ToLower(key)
			rule, ok = r.exact[lower]
		}
		for _, ir := range r.indexed {
			if !ok && strings.HasPrefix(lower, ir.prefix) {
				rule, ok = ir.rule, true
			}
		}
	}
	if !ok || (rule.routerOnly && !router) {
		return RedactNone, false
	}
	return rule.kind, true
}

func hasUpper(s string) bool {
	for _, c := range []byte(s) {
		if c >= 'A' && c <= 'Z' {
			return true
		}
	}
	return false
}

// redactOnly hashes or removes the personal data in attrs, and changes nothing else.
func (w *work) redactOnly(attrs pcommon.Map, router bool) {
	w.redactMap(attrs, router, nil)
}

// redactMap hashes or removes the personal data in attrs; with allowed, it also removes
// every key not in it (allow-list mode).
func (w *work) redactMap(attrs pcommon.Map, router bool, allowed map[string]bool) {
	if attrs.Len() == 0 {
		return
	}
	w.writes, w.removes = w.writes[:0], w.removes[:0]
	for key, pv := range attrs.All() {
		switch kind, personal := w.n.redaction.lookup(key, router); {
		case personal:
			w.redact(key, pv, kind)
		case allowed != nil && !allowed[key]:
			w.stats.Issues[IssueNotAllowed]++
			if w.n.opts.Mode != ModeReport {
				w.removes = append(w.removes, key)
			}
		}
	}
	w.apply(attrs)
}

// events redacts the attributes of a span's events and links, where routers and model
// servers also record text (exception messages, prompts as gen_ai events). On a router span
// in allow-list mode, event attributes outside the schema's event keys and allowed_keys go.
func (w *work) events(span ptrace.Span, router bool) {
	var allowed map[string]bool
	if router && w.n.opts.AllowListOnly {
		allowed = w.n.allowedEvent
	}
	for _, ev := range span.Events().All() {
		w.redactMap(ev.Attributes(), router, allowed)
	}
	for _, l := range span.Links().All() {
		w.redactMap(l.Attributes(), router, nil)
	}
}
