package routerconv

import "strings"

// OtherName replaces a name that is not a bounded identifier.
const OtherName = "other"

// maxNameBytes bounds a name used as a metric label or a summary attribute: model, category
// and decision names of a router config, error reasons.
const maxNameBytes = 96

// BoundedName returns s when it reads as a configured name (a model, category, decision or
// error reason), and OtherName when it could be free text: too long, outside the charset
// config names use, or shaped like an e-mail address. What becomes a metric label must come
// from a bounded vocabulary, whatever a span carried.
func BoundedName(s string) string {
	if s == "" || len(s) > maxNameBytes || s[0] == ' ' || s[len(s)-1] == ' ' || strings.Contains(s, "  ") {
		return OtherName
	}
	for i := 0; i < len(s); i++ {
		if !nameByte[s[i]] {
			return OtherName
		}
	}
	// A version tag after '@' (claude-3-5-sonnet@20240620) has no dot; an address has one.
	if at := strings.LastIndexByte(s, '@'); at >= 0 && (at == 0 || strings.ContainsRune(s[at:], '.')) {
		return OtherName
	}
	return s
}

// nameByte is the charset of configured names: letters, digits, space (category names such
// as "computer science") and the punctuation of model IDs (Qwen/Qwen3-8B, gpt-4o:2024.08).
var nameByte = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range " ._:/+@-" {
		t[c] = true
	}
	return t
}()
