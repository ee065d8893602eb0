package normalize

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxKeyBytes bounds a clean key; a longer one is suspect.
const maxKeyBytes = 256

// cleanKey returns key as a clean key: valid UTF-8 without control, format (invisible) or
// space characters, at most maxKeyBytes long. clean reports whether key was already so, and
// printable ASCII: a key that is not is suspect, whatever it matches.
func cleanKey(key string) (cleaned string, clean bool) {
	clean = len(key) <= maxKeyBytes && len(key) > 0
	for i := 0; i < len(key) && clean; i++ {
		clean = key[i] > ' ' && key[i] < 0x7f
	}
	if clean {
		return key, true
	}
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(key, "") {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.IsSpace(r) || r == utf8.RuneError {
			continue
		}
		if b.Len()+utf8.RuneLen(r) > maxKeyBytes {
			break
		}
		b.WriteRune(r)
	}
	if b.Len() == 0 {
		return "invalid_key", false
	}
	return b.String(), false
}

// rule is what the families say of a key.
type rule struct {
	// family is an index into Families, or -1.
	family int16
	// structure: under a content family (or in a content event), but structure: kept.
	structure bool
}

var noRule = rule{family: -1}

func (r rule) matched() bool { return r.family >= 0 }

// patternRef is a family key, lowercased.
type patternRef struct {
	family   int16
	anchored bool
}

// matcher finds a key's family. It is built once from Families and is read-only.
type matcher struct {
	patterns map[string]patternRef
	// firstParts are the first parts of every pattern: a scan for patterns starts only there.
	firstParts map[string]bool
	// words are the Words of every family, as phrases.
	words  []phrase
	except []map[string]bool
	// events maps a content event name to its family.
	events  map[string]int16
	blocked *regexp.Regexp
	// schema are the schema's keys and their older names: named for what they are, not for
	// a credential a word in them suggests (gen_ai.latency.time_to_first_token).
	schema map[string]bool
}

type phrase struct {
	words  []string
	atEnd  bool
	family int16
}

func newMatcher(blocked *regexp.Regexp) *matcher {
	m := &matcher{patterns: map[string]patternRef{}, firstParts: map[string]bool{}, events: map[string]int16{}, blocked: blocked,
		schema: map[string]bool{}}
	for _, a := range Schema {
		m.schema[strings.ToLower(a.Key)] = true
		for _, l := range a.Legacy {
			m.schema[strings.ToLower(l.Key)] = true
		}
	}
	for i, f := range Families {
		for _, k := range f.Keys {
			k = strings.ToLower(k)
			m.patterns[k] = patternRef{family: int16(i), anchored: !strings.Contains(k, ".")}
			first, _, _ := strings.Cut(k, ".")
			m.firstParts[first] = true
		}
		for _, e := range f.Events {
			m.events[e] = int16(i)
		}
		for _, w := range f.Words {
			p := phrase{family: int16(i)}
			for _, part := range strings.Fields(w) {
				if part == "$" {
					p.atEnd = true
					continue
				}
				p.words = append(p.words, part)
			}
			m.words = append(m.words, p)
		}
		except := map[string]bool{}
		for _, e := range f.Except {
			except[e] = true
		}
		m.except = append(m.except, except)
	}
	return m
}

// event is the family of a content event by its name, in any case and spacing, or -1.
func (m *matcher) event(name string) int16 {
	if f, ok := m.events[name]; ok {
		return f
	}
	cleaned, _ := cleanKey(name)
	if f, ok := m.events[strings.ToLower(cleaned)]; ok {
		return f
	}
	return -1
}

// match finds the family of a clean, lowercased key (or path of nested keys, joined with
// dots); cleaned is the same key with its letter case, for camelCase words and the operator's
// patterns. Of the family keys found in it, the one that ends last wins (`user.id` in
// `langfuse.trace.metadata.user.id`); under a content family, structure keys are kept.
func (m *matcher) match(lower, cleaned string, router bool) rule {
	best, bestEnd, bestStart := noRule, -1, 0
	for start := 0; start < len(lower); {
		firstEnd := strings.IndexByte(lower[start:], '.')
		if firstEnd < 0 {
			firstEnd = len(lower)
		} else {
			firstEnd += start
		}
		if m.firstParts[lower[start:firstEnd]] {
			for end := firstEnd; ; {
				if ref, ok := m.patterns[lower[start:end]]; ok && (!ref.anchored || start == 0) &&
					(!Families[ref.family].RouterOnly || router) && end >= bestEnd {
					if end > bestEnd || start < bestStart {
						best, bestEnd, bestStart = rule{family: ref.family}, end, start
					}
				}
				if end == len(lower) {
					break
				}
				next := strings.IndexByte(lower[end+1:], '.')
				if next < 0 {
					end = len(lower)
				} else {
					end += 1 + next
				}
			}
		}
		start = firstEnd + 1
	}
	if best.matched() && bestEnd < len(lower) {
		rest := lower[bestEnd+1:]
		f := &Families[best.family]
		if m.isExcept(best.family, rest) || (f.Class == ClassContent && isStructure(rest)) {
			best.structure = true
		}
		return best
	}
	if best.matched() {
		return best
	}
	if m.schema[lower] {
		return noRule
	}
	if r := m.matchWords(cleaned); r.matched() {
		return r
	}
	if m.blocked != nil && m.blocked.MatchString(cleaned) {
		return rule{family: int16(familyBlockedKeyPatterns)}
	}
	return noRule
}

// isExcept: rest, without its numbered parts, is one of the family's Except keys.
func (m *matcher) isExcept(family int16, rest string) bool {
	if len(m.except[family]) == 0 {
		return false
	}
	return m.except[family][withoutNumbers(rest)]
}

// isStructure: key, without its numbered parts, ends with a ContentStructure key.
func isStructure(key string) bool {
	key = withoutNumbers(key)
	for _, s := range ContentStructure {
		if key == s || (strings.HasSuffix(key, s) && key[len(key)-len(s)-1] == '.') {
			return true
		}
	}
	return false
}

// withoutNumbers drops the parts of a dotted key that are numbers: array indexes.
func withoutNumbers(key string) string {
	hasNumber := false
	for part := range strings.SplitSeq(key, ".") {
		if isNumber(part) {
			hasNumber = true
			break
		}
	}
	if !hasNumber {
		return key
	}
	var parts []string
	for part := range strings.SplitSeq(key, ".") {
		if !isNumber(part) {
			parts = append(parts, part)
		}
	}
	return strings.Join(parts, ".")
}

func isNumber(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// matchWords finds a family phrase among the words of key.
func (m *matcher) matchWords(key string) rule {
	words := splitWords(key)
	for _, p := range m.words {
		for i := 0; i+len(p.words) <= len(words); i++ {
			if p.atEnd && i+len(p.words) != len(words) {
				continue
			}
			match := true
			for j, w := range p.words {
				if words[i+j] != w {
					match = false
					break
				}
			}
			if match {
				return rule{family: p.family}
			}
		}
	}
	return noRule
}

// splitWords splits a key into lowercase words at anything not a letter or digit, and where
// a lowercase letter is followed by an uppercase one (camelCase).
func splitWords(key string) []string {
	var words []string
	start := -1
	for i := 0; i <= len(key); i++ {
		var c byte
		if i < len(key) {
			c = key[i]
		}
		alnum := (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80
		camel := i > 0 && alnum && c >= 'A' && c <= 'Z' && key[i-1] >= 'a' && key[i-1] <= 'z'
		if start >= 0 && (!alnum || camel) {
			words = append(words, strings.ToLower(key[start:i]))
			start = -1
		}
		if alnum && start < 0 {
			start = i
		}
	}
	return words
}

// keyInfo is what the walk knows of a raw key, cached per work.
type keyInfo struct {
	// cleaned is the key made clean (itself when it was); lower, the same lowercased.
	cleaned, lower string
	clean          bool
	// top is the rule for the key at the top of an attribute map, computed once.
	top, topRouter rule
	topDone        uint8
	// stamp marks the key as seen in the map being walked (duplicates): the walk's count of
	// maps, which does not wrap.
	stamp uint64
}

// maxCachedKeys bounds the per-work caches of keys, paths and names; a full cache starts over
// (the cache of keys between batches only: its entries carry the duplicate stamps of the maps
// being walked).
const maxCachedKeys = 8192

// keyInfo returns (and caches) what the walk knows of a raw key.
func (w *work) keyInfo(key string) *keyInfo {
	if ki := w.keys[key]; ki != nil {
		return ki
	}
	// A key can hold what a value does (an address, a token): such a key is rewritten and
	// its value is suspect. It is scanned before cleaning too, which joins the words its
	// spaces kept apart (`user 4111…` would hide its card as `user4111…`).
	cleaned, clean := cleanKey(key)
	raw, rewritten := w.n.scanner.String(strings.ToValidUTF8(key, ""), &w.counts)
	if rewritten {
		cleaned, _ = cleanKey(raw)
	}
	if s, changed := w.n.scanner.String(cleaned, &w.counts); changed {
		cleaned, rewritten = s, true
	}
	clean = clean && !rewritten
	ki := &keyInfo{cleaned: cleaned, lower: strings.ToLower(cleaned), clean: clean}
	w.keys[strings.Clone(key)] = ki
	return ki
}

// topRule is the rule of a key at the top of a map.
func (w *work) topRule(ki *keyInfo, router bool) rule {
	bit := uint8(1)
	if router {
		bit = 2
	}
	if ki.topDone&bit == 0 {
		r := w.n.match.match(ki.lower, ki.cleaned, router)
		if router {
			ki.topRouter = r
		} else {
			ki.top = r
		}
		ki.topDone |= bit
	}
	if router {
		return ki.topRouter
	}
	return ki.top
}
