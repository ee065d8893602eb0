package scan

import (
	"strings"
)

// QueryMode is what happens to a query string's values.
type QueryMode uint8

const (
	// QueryRedact keeps parameter names and writes REDACTED for every value, and for every
	// parameter without a value (`?alice@example.com`), which is a value itself.
	QueryRedact QueryMode = iota
	// QueryKeep keeps the query; findings are replaced in place like in any text.
	QueryKeep
	// QueryDrop removes the query.
	QueryDrop
)

// URL sanitizes an absolute URL (url.full, http.url): user information becomes
// REDACTED:REDACTED, the path's segments that hold an ID or a finding become `{id}`,
// `{email}`…, the query and the fragment follow mode. Without a scheme it is a Target.
func (s *Scanner) URL(u string, mode QueryMode, counts *Counts) (string, bool) {
	i := strings.Index(u, "://")
	if i < 0 || strings.ContainsAny(u[:i], "/?#") {
		return s.Target(u, mode, counts)
	}
	rest := u[i+3:]
	authEnd := strings.IndexAny(rest, "/?#")
	if authEnd < 0 {
		authEnd = len(rest)
	}
	authority, tail := rest[:authEnd], rest[authEnd:]
	userinfo, host := "", authority
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		userinfo, host = authority[:at+1], authority[at+1:]
	}
	changed := false
	if userinfo != "" {
		user := Redacted + "@"
		if strings.ContainsRune(userinfo, ':') {
			user = Redacted + ":" + Redacted + "@"
		}
		if userinfo != user {
			counts[URLCredentials]++
			userinfo, changed = user, true
		}
	}
	host, hostChanged := s.String(host, counts)
	tail, tailChanged := s.Target(tail, mode, counts)
	if !changed && !hostChanged && !tailChanged {
		return u, false
	}
	return u[:i+3] + userinfo + host + tail, true
}

// Target sanitizes a request target: path, query, fragment (http.target, a raw http.path).
func (s *Scanner) Target(t string, mode QueryMode, counts *Counts) (string, bool) {
	end := strings.IndexAny(t, "?#")
	if end < 0 {
		return s.Path(t, counts)
	}
	path, changed := s.Path(t[:end], counts)
	rest := t[end:]
	var b strings.Builder
	b.WriteString(path)
	// The query, then the fragment, which carries tokens as often as the query (OAuth).
	for rest != "" {
		sep := rest[0]
		part := rest[1:]
		next := len(part)
		if sep == '?' {
			if k := strings.IndexByte(part, '#'); k >= 0 {
				next = k
			}
		}
		q, qChanged := s.Query(part[:next], mode, counts)
		switch {
		case mode == QueryDrop:
			changed = true
		default:
			b.WriteByte(sep)
			b.WriteString(q)
			changed = changed || qChanged
		}
		rest = part[next:]
	}
	if !changed {
		return t, false
	}
	return b.String(), true
}

// Query sanitizes a query string (url.query) as mode says.
func (s *Scanner) Query(q string, mode QueryMode, counts *Counts) (string, bool) {
	switch {
	case q == "":
		return q, false
	case mode == QueryDrop:
		return "", true
	case mode == QueryKeep:
		return s.String(q, counts)
	}
	var b strings.Builder
	changed := false
	for i, param := range strings.Split(q, "&") {
		if i > 0 {
			b.WriteByte('&')
		}
		name, value, hasValue := strings.Cut(param, "=")
		switch {
		case !hasValue && (name == "" || name == Redacted):
			b.WriteString(name)
		case !hasValue:
			b.WriteString(Redacted)
			changed = true
		default:
			if _, found := s.First(decode(name)); found {
				name, changed = Redacted, true
			}
			b.WriteString(name)
			b.WriteByte('=')
			b.WriteString(Redacted)
			changed = changed || value != Redacted
		}
	}
	if !changed {
		return q, false
	}
	return b.String(), true
}

// Path replaces each segment that holds an identifier or a finding by a placeholder:
// `/users/alice@example.com/orders/42` becomes `/users/{email}/orders/{id}`.
func (s *Scanner) Path(p string, counts *Counts) (string, bool) {
	if p == "" {
		return p, false
	}
	var b []byte
	last := 0
	for start := 0; start <= len(p); {
		end := strings.IndexByte(p[start:], '/')
		if end < 0 {
			end = len(p)
		} else {
			end += start
		}
		if seg := p[start:end]; seg != "" {
			if k, found := s.segment(seg); found {
				counts[k]++
				if b == nil {
					b = make([]byte, 0, len(p))
				}
				b = append(b, p[last:start]...)
				b = append(b, segmentPlaceholder(k)...)
				last = end
			}
		}
		start = end + 1
	}
	if b == nil {
		return p, false
	}
	return string(append(b, p[last:]...)), true
}

// segment says whether a path segment is an identifier or holds a finding.
func (s *Scanner) segment(seg string) (Kind, bool) {
	seg = decode(seg)
	if s.kinds.Has(PathID) && isID(seg) {
		return PathID, true
	}
	return s.First(seg)
}

// isID: a number, a UUID, or 16 or more hex digits. Numbers in paths are records' keys (users,
// orders); versions (`v1`), dates with dashes and words stay.
func isID(seg string) bool {
	digits, hex := 0, 0
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		switch {
		case isDigit(c):
			digits++
			hex++
		case (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'):
			hex++
		case c == '-' && len(seg) == 36 && (i == 8 || i == 13 || i == 18 || i == 23):
		default:
			return false
		}
	}
	return digits == len(seg) || (len(seg) == 36 && hex == 32) || (hex == len(seg) && hex >= 16)
}

// decode undoes percent-encoding, leniently, so that alice%40example.com is seen as an address.
func decode(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '%' && i+2 < len(s) && unhex(s[i+1]) >= 0 && unhex(s[i+2]) >= 0:
			b = append(b, byte(unhex(s[i+1])<<4|unhex(s[i+2])))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
