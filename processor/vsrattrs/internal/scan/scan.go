package scan

import (
	"regexp"
	"strings"
)

// Scanner finds and replaces secrets and personal data. It is immutable and safe for
// concurrent use.
type Scanner struct {
	kinds Set
	// blocked is the operator's blocked_values, one alternation: RE2, linear in the input.
	blocked *regexp.Regexp
}

// New returns a Scanner for kinds; blocked (may be nil) adds the operator's patterns.
func New(kinds Set, blocked *regexp.Regexp) *Scanner {
	kinds &^= 1 << BlockedValue
	if blocked != nil {
		kinds |= 1 << BlockedValue
	}
	return &Scanner{kinds: kinds, blocked: blocked}
}

// Enabled reports whether the scanner looks for anything at all.
func (s *Scanner) Enabled() bool { return s.kinds != 0 }

// minFinding is the shortest string a built-in kind can match (`a@b.co`); minNonEmail, the
// shortest of the other kinds (`+1234567`, `passwd=x`).
const (
	minFinding  = 6
	minNonEmail = 8
)

// String returns in with every finding replaced by its placeholder (`<redacted:email>`),
// counting each; changed is false, and nothing allocated, when nothing was found.
func (s *Scanner) String(in string, counts *Counts) (out string, changed bool) {
	out = in
	if len(in) >= minFinding && s.kinds&^(1<<BlockedValue|1<<PathID) != 0 &&
		(len(in) >= minNonEmail || strings.IndexByte(in, '@') >= 0) {
		r := replacer{in: in}
		s.find(in, func(start, end int, k Kind) {
			counts[k]++
			r.replace(start, end, placeholders[k])
		})
		out, changed = r.result()
	}
	if s.blocked != nil {
		n := 0
		replaced := s.blocked.ReplaceAllStringFunc(out, func(string) string {
			n++
			return placeholders[BlockedValue]
		})
		if n > 0 {
			counts[BlockedValue] += n
			out, changed = replaced, changed || replaced != out
		}
	}
	return out, changed
}

// First returns the kind of the first finding in in.
func (s *Scanner) First(in string) (Kind, bool) {
	found, kind := false, Kind(0)
	if len(in) >= minFinding {
		s.find(in, func(_, _ int, k Kind) {
			if !found {
				found, kind = true, k
			}
		})
	}
	if !found && s.blocked != nil && s.blocked.MatchString(in) {
		return BlockedValue, true
	}
	return kind, found
}

// replacer builds the output only once there is something to replace.
type replacer struct {
	in   string
	b    []byte
	last int
}

func (r *replacer) replace(start, end int, with string) {
	if r.b == nil {
		r.b = make([]byte, 0, len(r.in)+len(with))
	}
	r.b = append(r.b, r.in[r.last:start]...)
	r.b = append(r.b, with...)
	r.last = end
}

func (r *replacer) result() (string, bool) {
	if r.b == nil {
		return r.in, false
	}
	return string(append(r.b, r.in[r.last:]...)), true
}

// Byte classes.
const (
	cDigit = 1 << iota
	cUpper
	cLower
	// cLocal: an e-mail local part.
	cLocal
	// cDomain: an e-mail domain.
	cDomain
	// cWord: base64url, and what a word is for boundaries.
	cWord
	// cToken: a bearer token (RFC 6750 b64token).
	cToken
)

var class = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		switch {
		case b >= '0' && b <= '9':
			t[c] = cDigit | cLocal | cDomain | cWord | cToken
		case b >= 'A' && b <= 'Z':
			t[c] = cUpper | cLocal | cDomain | cWord | cToken
		case b >= 'a' && b <= 'z':
			t[c] = cLower | cLocal | cDomain | cWord | cToken
		}
	}
	for _, b := range []byte("._%+-") {
		t[b] |= cLocal
	}
	t['.'] |= cDomain | cToken
	t['-'] |= cDomain | cWord | cToken
	t['_'] |= cWord | cToken
	for _, b := range []byte("~+/=") {
		t[b] |= cToken
	}
	return t
}()

func isWord(c byte) bool  { return class[c]&cWord != 0 }
func isDigit(c byte) bool { return class[c]&cDigit != 0 }
func isAlnum(c byte) bool { return class[c]&(cDigit|cUpper|cLower) != 0 }

// find calls emit for each finding, in order and without overlap. It reads a word (a run of
// [A-Za-z0-9_-]) at a time: only a word's first bytes and length decide which kinds to try.
func (s *Scanner) find(in string, emit func(start, end int, k Kind)) {
	n := len(in)
	// localStart is where the run of e-mail local-part bytes ending at i began (every word
	// byte is one). After a finding the next byte is at a boundary, as it is beside the
	// placeholder a second pass reads.
	localStart, lastEnd := 0, 0
	for i := 0; i < n; {
		c := in[i]
		cl := class[c]
		start, end, kind := i, 0, Kind(0)
		next := i + 1
		switch {
		case cl&cWord != 0:
			next = run(in, i, cWord)
			if i > lastEnd && in[i-1] == '.' && cl&cDigit != 0 {
				// The digits after a dot are a decimal's or a version's.
				break
			}
			start, end, kind = s.word(in, i, next)
		case c == '@':
			if s.kinds.Has(Email) {
				start, end, kind = localStart, email(in, localStart, i), Email
			}
		case c == ':':
			if s.kinds.Has(URLCredentials) {
				start, end = urlCredentials(in, i)
				kind = URLCredentials
			}
		case c == '+' || c == '(':
			if i+1 < n && (isDigit(in[i+1]) || in[i+1] == '(') {
				end, kind, _ = s.number(in, i)
			}
		}
		if end > 0 {
			emit(start, end, kind)
			i, localStart, lastEnd = end, end, end
			continue
		}
		if cl&cLocal == 0 {
			localStart = next
		}
		i = next
	}
}

// word tries the kinds that start at the word in[i:w].
func (s *Scanner) word(in string, i, w int) (start, end int, kind Kind) {
	c := in[i]
	if class[c]&cDigit != 0 {
		end, kind, _ = s.number(in, i)
		return i, end, kind
	}
	n := w - i
	if c == 'e' && n >= 10 && s.kinds.Has(JWT) {
		if end := jwt(in, i, w); end > 0 {
			return i, end, JWT
		}
	}
	if apiKeyByFirst[c] != nil && n >= 7 && s.kinds.Has(APIKey) {
		if end := apiKey(in, i, w); end > 0 {
			return i, end, APIKey
		}
	}
	if (c == 'b' || c == 'B') && (n == 6 || n == 5) {
		if start, end, kind := s.authScheme(in, i); end > 0 {
			return start, end, kind
		}
	}
	if secretFirst[c] && n >= 6 && n <= maxKeywordLen && s.kinds.Has(SecretAssignment) {
		if start, end := secretAssignment(in, i, w); end > 0 {
			return start, end, SecretAssignment
		}
	}
	if class[c]&cUpper != 0 && n >= 4 && s.kinds.Has(IBAN) {
		if end := iban(in, i); end > 0 {
			return i, end, IBAN
		}
	}
	return 0, 0, 0
}

// endsWord reports whether in[end:] does not continue the word in[..end].
func endsWord(in string, end int) bool { return end >= len(in) || !isWord(in[end]) }

// run returns the end of the run of bytes of class cl from i.
func run(in string, i int, cl uint8) int {
	for i < len(in) && class[in[i]]&cl != 0 {
		i++
	}
	return i
}

// email returns the end of the address whose '@' is at at and local part starts at start, or 0.
func email(in string, start, at int) int {
	local := in[start:at]
	if local == "" || local[0] == '.' || local[len(local)-1] == '.' {
		return 0
	}
	end := run(in, at+1, cDomain)
	// A sentence's full stop or a dash after the domain is not part of it.
	for end > at+1 && (in[end-1] == '.' || in[end-1] == '-') {
		end--
	}
	domain := in[at+1 : end]
	dot := strings.LastIndexByte(domain, '.')
	if dot <= 0 || strings.Contains(domain, "..") {
		return 0
	}
	tld := domain[dot+1:]
	if len(tld) < 2 {
		return 0
	}
	for i := 0; i < len(tld); i++ {
		if class[tld[i]]&(cUpper|cLower) == 0 {
			return 0
		}
	}
	return end
}

// urlCredentials finds the user information after "://" at the ':' at i.
func urlCredentials(in string, i int) (start, end int) {
	if !strings.HasPrefix(in[i:], "://") {
		return 0, 0
	}
	start = i + 3
	for j := start; j < len(in); j++ {
		switch c := in[j]; {
		case c == '@':
			if j == start {
				return 0, 0
			}
			return start, j
		case isAlnum(c) || strings.IndexByte("._~%!$&'()*+,;=:-", c) >= 0:
		default:
			return 0, 0
		}
	}
	return 0, 0
}

// jwt matches header.payload.signature, header and payload JSON objects (eyJ…); the header is
// the word in[i:h].
func jwt(in string, i, h int) int {
	if !strings.HasPrefix(in[i:], "eyJ") {
		return 0
	}
	if h-i < 10 || h >= len(in) || in[h] != '.' || !strings.HasPrefix(in[h+1:], "eyJ") {
		return 0
	}
	p := run(in, h+1, cWord)
	if p-h-1 < 10 || p >= len(in) || in[p] != '.' {
		return 0
	}
	sig := run(in, p+1, cWord)
	if sig < len(in) && in[sig] == '.' {
		return 0
	}
	return sig
}

// apiKeyPrefix is a provider's published key prefix and the shortest body that follows it.
type apiKeyPrefix struct {
	prefix string
	// min and max bound the body; max 0 means no bound.
	min, max int
	// body is the class of the body's bytes.
	body uint8
}

var apiKeyPrefixes = []apiKeyPrefix{
	{"sk-", 20, 0, cWord}, {"pk-lf-", 20, 0, cWord},
	{"sk_live_", 16, 0, cWord}, {"sk_test_", 16, 0, cWord}, {"rk_live_", 16, 0, cWord}, {"rk_test_", 16, 0, cWord},
	{"ghp_", 30, 0, cWord}, {"gho_", 30, 0, cWord}, {"ghu_", 30, 0, cWord}, {"ghs_", 30, 0, cWord}, {"ghr_", 30, 0, cWord},
	{"github_pat_", 30, 0, cWord}, {"glpat-", 20, 0, cWord},
	{"xoxb-", 20, 0, cWord}, {"xoxp-", 20, 0, cWord}, {"xoxa-", 20, 0, cWord}, {"xoxr-", 20, 0, cWord},
	{"xoxs-", 20, 0, cWord}, {"xapp-", 20, 0, cWord},
	{"AKIA", 16, 16, cUpper | cDigit}, {"ASIA", 16, 16, cUpper | cDigit},
	{"AIza", 35, 35, cWord},
	{"hf_", 30, 0, cWord}, {"gsk_", 20, 0, cWord}, {"r8_", 20, 0, cWord},
	{"nvapi-", 20, 0, cWord}, {"pplx-", 20, 0, cWord}, {"xai-", 20, 0, cWord},
}

// apiKeyByFirst indexes apiKeyPrefixes by their first byte.
var apiKeyByFirst = func() (t [256][]apiKeyPrefix) {
	for _, p := range apiKeyPrefixes {
		t[p.prefix[0]] = append(t[p.prefix[0]], p)
	}
	return t
}()

// apiKey matches a key that is the word in[i:w].
func apiKey(in string, i, w int) int {
	for _, p := range apiKeyByFirst[in[i]] {
		if !strings.HasPrefix(in[i:w], p.prefix) {
			continue
		}
		body := i + len(p.prefix)
		end := run(in, body, p.body)
		n := end - body
		if end == w && n >= p.min && (p.max == 0 || n == p.max) {
			return end
		}
	}
	return 0
}

// authScheme matches "Bearer <token>" and "Basic <credentials>": the credentials are replaced,
// the scheme stays.
func (s *Scanner) authScheme(in string, i int) (start, end int, kind Kind) {
	var scheme string
	switch {
	case len(in)-i >= 7 && strings.EqualFold(in[i:i+6], "bearer") && s.kinds.Has(BearerToken):
		scheme, kind = in[i:i+6], BearerToken
	case strings.HasPrefix(in[i:], "Basic") && s.kinds.Has(BasicAuth):
		scheme, kind = "Basic", BasicAuth
	default:
		return 0, 0, 0
	}
	j := i + len(scheme)
	sp := j
	for j < len(in) && (in[j] == ' ' || in[j] == '\t') {
		j++
	}
	if j == sp {
		return 0, 0, 0
	}
	end = run(in, j, cToken)
	tok := in[j:end]
	if len(tok) < 8 || !endsWord(in, end) || plainLower(tok) || (kind == BasicAuth && len(tok)%4 != 0) {
		return 0, 0, 0
	}
	return j, end, kind
}

// plainLower reports whether s is only lowercase letters: a word, not a credential.
func plainLower(s string) bool {
	for i := 0; i < len(s); i++ {
		if class[s[i]]&cLower == 0 {
			return false
		}
	}
	return true
}

// secretKeywords are the names a secret is assigned to in text, lowercased, as words made of
// [A-Za-z0-9_-].
var secretKeywords = map[string]bool{
	"password": true, "passwd": true, "secret": true, "client_secret": true, "clientsecret": true,
	"api_key": true, "apikey": true, "api-key": true, "x-api-key": true, "secret_key": true, "secretkey": true,
	"access_token": true, "accesstoken": true, "refresh_token": true, "refreshtoken": true,
	"auth_token": true, "authtoken": true, "id_token": true, "private_key": true, "privatekey": true,
}

// secretFirst are the first letters of secretKeywords, in either case.
var secretFirst = func() (t [256]bool) {
	for k := range secretKeywords {
		t[k[0]], t[k[0]-('a'-'A')] = true, true
	}
	return t
}()

// maxKeywordLen is the longest secret keyword.
const maxKeywordLen = 13

// secretAssignment matches `keyword = value` (also `"keyword": "value"`), the keyword being the
// word in[i:w]; the value is replaced.
func secretAssignment(in string, i, w int) (start, end int) {
	j := skipQuotes(in, w)
	if j >= len(in) || (in[j] != '=' && in[j] != ':') {
		return 0, 0
	}
	var lower [maxKeywordLen]byte
	for j := i; j < w; j++ {
		c := in[j]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[j-i] = c
	}
	if !secretKeywords[string(lower[:w-i])] {
		return 0, 0
	}
	j = skipQuotes(in, j+1)
	end = j
	for end < len(in) && !strings.ContainsRune(" \t\r\n\"'\\&,;}])<>", rune(in[end])) {
		end++
	}
	if end-j < 3 {
		return 0, 0
	}
	return j, end
}

// skipQuotes skips up to 4 spaces, quotes and backslashes (JSON, escaped JSON).
func skipQuotes(in string, j int) int {
	for k := 0; k < 4 && j < len(in) && strings.IndexByte(" \t\"'\\", in[j]) >= 0; k++ {
		j++
	}
	return j
}

// iban matches a mod-97-valid IBAN, compact or in groups of four.
func iban(in string, i int) int {
	if len(in)-i < 15 || class[in[i+1]]&cUpper == 0 || !isDigit(in[i+2]) || !isDigit(in[i+3]) {
		return 0
	}
	check := int(in[i+2]-'0')*10 + int(in[i+3]-'0')
	if check < 2 || check > 98 {
		return 0
	}
	// Collect up to 34 characters; spaces only between groups. ends are the candidate ends
	// (before each space, and the last character), longest first.
	var chars [34]byte
	var ends [10]int
	var nchars [10]int
	n, ne := 0, 0
	j := i
	for j < len(in) && n < len(chars) {
		c := in[j]
		switch {
		case class[c]&(cUpper|cDigit) != 0:
			chars[n] = c
			n++
			j++
			continue
		case c == ' ' && j+1 < len(in) && class[in[j+1]]&(cUpper|cDigit) != 0 && ne < len(ends)-1:
			ends[ne], nchars[ne] = j, n
			ne++
			j++
			continue
		}
		break
	}
	if !endsWord(in, j) && n < len(chars) {
		// The run goes on into a word: only its earlier groups can be an IBAN.
	} else {
		ends[ne], nchars[ne] = j, n
		ne++
	}
	for k := ne - 1; k >= 0; k-- {
		if nchars[k] >= 15 && ibanValid(chars[:nchars[k]]) {
			return ends[k]
		}
	}
	return 0
}

// ibanValid checks the mod-97 remainder of the rearranged IBAN (ISO 13616).
func ibanValid(b []byte) bool {
	r := 0
	add := func(c byte) {
		if isDigit(c) {
			r = (r*10 + int(c-'0')) % 97
		} else {
			r = (r*100 + int(c-'A') + 10) % 97
		}
	}
	for _, c := range b[4:] {
		add(c)
	}
	for _, c := range b[:4] {
		add(c)
	}
	return r == 1
}

// number classifies the digits at i (also "+…" and "(…"): a phone number, a card number, a
// US SSN. Numbers written one after another read as one run of groups, so the run's prefixes
// are tried too, longest first. It returns the end of a finding, or 0 and where the digits
// that start nothing end.
func (s *Scanner) number(in string, i int) (end int, kind Kind, skip int) {
	var nm numberRun
	nm.read(in, i)
	skip = max(nm.firstGroupEnd, i+1)
	for k := nm.ng; k >= 1; k-- {
		end := nm.ends[k-1]
		if end < len(in) && (isAlnum(in[end]) || in[end] == '@' || in[end] == '_') {
			continue
		}
		nm.use(k)
		switch {
		case s.kinds.Has(USSSN) && nm.ssn(in[i:end]):
			return end, USSSN, 0
		case s.kinds.Has(PaymentCard) && nm.card():
			return end, PaymentCard, 0
		case s.kinds.Has(Phone) && nm.phone():
			return end, Phone, 0
		}
	}
	return 0, 0, skip
}

// numberRun is a run of digit groups with single separators between them.
type numberRun struct {
	digits [19]byte
	// cum[k] is the number of digits in the first k+1 groups; ends[k], where group k ends
	// (after a closing parenthesis).
	cum  [8]uint8
	ends [8]int
	// seps are the separators after each group but the last.
	seps [7]byte
	// ng is the number of groups read; nd and groups describe the prefix in use.
	ng, nd        int
	groups        [8]uint8
	plus, paren   bool
	firstGroupEnd int
}

// read collects up to 19 digits in up to 8 whole groups from i.
func (nm *numberRun) read(in string, i int) {
	j := i
	if in[j] == '+' {
		nm.plus = true
		j++
	}
	if j < len(in) && in[j] == '(' {
		nm.paren = true
		j++
	}
	for nd := 0; ; {
		g := j
		for j < len(in) && isDigit(in[j]) {
			j++
		}
		if nm.firstGroupEnd == 0 {
			nm.firstGroupEnd = j
		}
		if j == g || nd+j-g > len(nm.digits) {
			return
		}
		copy(nm.digits[nd:], in[g:j])
		nd += j - g
		nm.cum[nm.ng] = uint8(nd)
		nm.ends[nm.ng] = j
		nm.ng++
		// A separator: one of " -.", or ")" with an optional space closing the area code.
		sep, next := byte(0), j
		switch {
		case nm.paren && nm.ng == 1:
			if j >= len(in) || in[j] != ')' {
				nm.ng = 0
				return
			}
			nm.ends[0] = j + 1
			sep, next = ')', j+1
			if next < len(in) && in[next] == ' ' {
				next++
			}
		case j < len(in) && (in[j] == ' ' || in[j] == '-' || in[j] == '.'):
			sep, next = in[j], j+1
		}
		if sep == 0 || next >= len(in) || !isDigit(in[next]) || nm.ng == len(nm.cum) {
			return
		}
		nm.seps[nm.ng-1] = sep
		j = next
	}
}

// use makes the first k groups the number the checks below read.
func (nm *numberRun) use(k int) {
	nm.nd = int(nm.cum[k-1])
	prev := uint8(0)
	nm.groups = [8]uint8{}
	for g := 0; g < k; g++ {
		nm.groups[g] = nm.cum[g] - prev
		prev = nm.cum[g]
	}
}

// ngroups is the number of groups in use.
func (nm *numberRun) ngroups() int {
	n := 0
	for n < len(nm.groups) && nm.groups[n] != 0 {
		n++
	}
	return n
}

func (nm *numberRun) sepsAll(ok func(byte) bool) bool {
	for _, s := range nm.seps[:nm.ngroups()-1] {
		if !ok(s) {
			return false
		}
	}
	return true
}

// ssn: ddd-dd-dddd outside the never-issued ranges.
func (nm *numberRun) ssn(text string) bool {
	if nm.plus || nm.paren || len(text) != 11 || nm.groups != [8]uint8{3, 2, 4} ||
		nm.seps[0] != '-' || nm.seps[1] != '-' {
		return false
	}
	d := nm.digits
	area := int(d[0]-'0')*100 + int(d[1]-'0')*10 + int(d[2]-'0')
	group := int(d[3]-'0')*10 + int(d[4]-'0')
	serial := string(d[5:9])
	return area != 0 && area != 666 && area < 900 && group != 0 && serial != "0000"
}

// card: 13–19 digits, printed as cards are, a network's first digit, a valid Luhn digit.
func (nm *numberRun) card() bool {
	if nm.plus || nm.paren || nm.nd < 13 || nm.digits[0] < '2' || nm.digits[0] > '6' {
		return false
	}
	if nm.ngroups() > 1 {
		first := nm.seps[0]
		if first != ' ' && first != '-' || !nm.sepsAll(func(s byte) bool { return s == first }) || !cardGroups[nm.groups] {
			return false
		}
	}
	sum := 0
	for k := 0; k < nm.nd; k++ {
		d := int(nm.digits[nm.nd-1-k] - '0')
		if k%2 == 1 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

// cardGroups are the ways cards are printed in groups: 4-4-4-4 and its shorter and longer
// forms, 4-6-5 (American Express), 4-6-4 (Diners Club).
var cardGroups = map[[8]uint8]bool{
	{4, 4, 4, 1}: true, {4, 4, 4, 2}: true, {4, 4, 4, 3}: true, {4, 4, 4, 4}: true, {4, 4, 4, 4, 3}: true,
	{4, 6, 5}: true, {4, 6, 4}: true,
}

// phone: "+" and 8–15 digits, or a North American number in one of its written forms.
func (nm *numberRun) phone() bool {
	if nm.plus && !nm.paren {
		return nm.nd >= 8 && nm.nd <= 15 && nm.digits[0] != '0'
	}
	g := nm.groups
	d := nm.digits[:nm.nd]
	switch {
	case g == [8]uint8{3, 3, 4}:
	case g == [8]uint8{1, 3, 3, 4} && d[0] == '1' && !nm.paren:
		d = d[1:]
	default:
		return false
	}
	if nm.paren {
		if nm.seps[0] != ')' || (nm.seps[1] != '-' && nm.seps[1] != '.' && nm.seps[1] != ' ') {
			return false
		}
	} else if !nm.sepsAll(func(s byte) bool { return s == '-' || s == '.' || s == ' ' }) {
		return false
	}
	return d[0] >= '2' && d[3] >= '2'
}
