// Package scan finds secrets and personal data inside strings and replaces them in place: API
// keys, bearer and basic credentials, JWTs, secrets assigned in text (password=…), credentials in
// URLs, e-mail addresses, phone numbers, Luhn-checked payment card numbers, US social security
// numbers and IBANs (mod-97 checked). It also sanitizes URLs, request targets, paths and query
// strings. One pass over the bytes, no regular expressions (except the operator's own
// blocked_values), no allocation when nothing is found. It knows nothing of the collector.
package scan

import (
	"fmt"
	"maps"
	"slices"
)

// Kind is a kind of secret or personal data.
type Kind uint8

const (
	APIKey Kind = iota
	BearerToken
	BasicAuth
	JWT
	SecretAssignment
	URLCredentials
	Email
	Phone
	PaymentCard
	USSSN
	IBAN
	// PathID is an identifier in a URL path segment: a number, a UUID, a long hex string.
	PathID
	// BlockedValue is a match of the operator's blocked_values patterns.
	BlockedValue
	NumKinds
)

// KindInfo documents a kind; the README's privacy table is rendered from Kinds.
type KindInfo struct {
	Kind Kind
	Name string
	Doc  string
}

// Kinds is every kind with what the scanner takes for it and why.
var Kinds = [NumKinds]KindInfo{
	{APIKey, "api_key", "Provider keys by their published prefixes: `sk-` (OpenAI, Anthropic `sk-ant-`, DeepSeek, Langfuse `sk-lf-`), `pk-lf-`, `sk_live_`/`rk_live_` (Stripe), `ghp_`…`github_pat_` (GitHub), `glpat-`, `xox?-` (Slack), `AKIA`/`ASIA` (AWS), `AIza` (Google), `hf_`, `gsk_`, `r8_`, `nvapi-`, `pplx-`, `xai-`, each with a minimum body length."},
	{BearerToken, "bearer_token", "The token after `Bearer ` (any case), 8 characters or more and not a plain lowercase word."},
	{BasicAuth, "basic_auth", "The base64 credentials after `Basic ` (a multiple of 4 characters, not a plain lowercase word)."},
	{JWT, "jwt", "Three base64url parts, the first two starting `eyJ` (a JSON object)."},
	{SecretAssignment, "secret_assignment", "The value after `password`, `passwd`, `secret`, `client_secret`, `api_key`, `access_token`, `refresh_token`, `auth_token`, `private_key`… (any case, camelCase too) and `=` or `:`, as in logs, JSON and query strings."},
	{URLCredentials, "url_credentials", "The user information of a URL (`scheme://user:password@host`)."},
	{Email, "email", "An address with a dot-separated domain ending in a letters-only TLD."},
	{Phone, "phone", "`+` and 8–15 digits (E.164, separators allowed), or the North American forms `(415) 555-0123`, `415-555-0123`, `415.555.0123`, `1 415 555 0123` (area and exchange codes 2–9). Bare digit runs are not phones: timestamps and IDs look the same."},
	{PaymentCard, "payment_card", "13–19 digits (spaces or dashes between groups) with a valid Luhn check digit and a card network's first digit (2–6)."},
	{USSSN, "us_ssn", "`ddd-dd-dddd` outside the ranges the SSA never issues (area 000, 666, 900–999; group 00; serial 0000). Undashed nine digits are too common to tell."},
	{IBAN, "iban", "Two letters, two check digits (02–98), 11–30 letters or digits (spaces every four allowed), mod-97 remainder 1."},
	{PathID, "path_id", "In URL paths only: a segment that is a number, a UUID or 16+ hex digits, written `{id}`."},
	{BlockedValue, "blocked_value", "A match of `redaction.blocked_values` (the operator's regular expressions)."},
}

func (k Kind) String() string { return Kinds[k].Name }

// Set is a set of kinds.
type Set uint32

// All is every built-in kind (BlockedValue is on when patterns are configured).
const All = Set(1<<NumKinds-1) &^ (1 << BlockedValue)

func (s Set) Has(k Kind) bool { return s&(1<<k) != 0 }

// ParseKinds reads kind names; it names each unknown one.
func ParseKinds(names []string) (Set, error) {
	byName := map[string]Kind{}
	for _, k := range Kinds[:BlockedValue] {
		byName[k.Name] = k.Kind
	}
	var s Set
	for i, n := range names {
		k, ok := byName[n]
		if !ok {
			return 0, fmt.Errorf("[%d]: %q is not one of %v", i, n, slices.Sorted(maps.Keys(byName)))
		}
		s |= 1 << k
	}
	return s, nil
}

// Counts counts findings by kind.
type Counts [NumKinds]int

// segmentPlaceholder is what replaces a path segment holding a finding of kind k.
func segmentPlaceholder(k Kind) string { return segmentPlaceholders[k] }

var placeholders, segmentPlaceholders = func() (p, s [NumKinds]string) {
	for _, k := range Kinds {
		p[k.Kind] = "<redacted:" + k.Name + ">"
		s[k.Kind] = "{" + k.Name + "}"
	}
	s[PathID] = "{id}"
	return p, s
}()

// Redacted replaces a query value, and the user information of a URL (as the HTTP semantic
// conventions write it).
const Redacted = "REDACTED"
