package scan

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFindsEachKind(t *testing.T) {
	s := New(All, nil)
	tests := []struct {
		in, want string
		kind     Kind
	}{
		{"key sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123 leaked", "key <redacted:api_key> leaked", APIKey},
		{"anthropic sk-ant-api03-abcdefghijklmnopqrstuvwxyz012345", "anthropic <redacted:api_key>", APIKey},
		{"aws=AKIAIOSFODNN7EXAMPLE,", "aws=<redacted:api_key>,", APIKey},
		{"google AIzaSyA-1234567890abcdefghijklmnopqrstu ok", "google <redacted:api_key> ok", APIKey},
		{"gh ghp_0123456789abcdefghijABCDEFGHIJ0123", "gh <redacted:api_key>", APIKey},
		{"Authorization: Bearer abc.DEF-123_xyz=", "Authorization: Bearer <redacted:bearer_token>", BearerToken},
		{"authorization: bearer 0123456789abcdef", "authorization: bearer <redacted:bearer_token>", BearerToken},
		{"Basic dXNlcjpwYXNzd29yZA==", "Basic <redacted:basic_auth>", BasicAuth},
		{"t=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U end",
			"t=<redacted:jwt> end", JWT},
		{`{"password": "hunter22", "user": "x"}`, `{"password": "<redacted:secret_assignment>", "user": "x"}`, SecretAssignment},
		{"failed with apiKey=abc123xyz&retry", "failed with apiKey=<redacted:secret_assignment>&retry", SecretAssignment},
		{"dial postgres://admin:s3cret@db:5432/app", "dial postgres://<redacted:url_credentials>@db:5432/app", URLCredentials},
		{"mail jane.doe+llm@mail.example.co.uk.", "mail <redacted:email>.", Email},
		{"Jane.Doe@Example.COM wrote", "<redacted:email> wrote", Email},
		{"call +44 20 7946 0958 now", "call <redacted:phone> now", Phone},
		{"call (415) 555-0123", "call <redacted:phone>", Phone},
		{"call 415.555.0123.", "call <redacted:phone>.", Phone},
		{"call 1-415-555-0123", "call <redacted:phone>", Phone},
		{"card 4111 1111 1111 1111 exp", "card <redacted:payment_card> exp", PaymentCard},
		{"card 4111-1111-1111-1111", "card <redacted:payment_card>", PaymentCard},
		{"amex 378282246310005", "amex <redacted:payment_card>", PaymentCard},
		{"ssn 123-45-6789", "ssn <redacted:us_ssn>", USSSN},
		{"iban DE89 3704 0044 0532 0130 00 THANKS", "iban <redacted:iban> THANKS", IBAN},
		{"iban GB82WEST12345698765432", "iban <redacted:iban>", IBAN},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var c Counts
			got, changed := s.String(tt.in, &c)
			assert.True(t, changed)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, 1, c[tt.kind], "counted as %s: %v", tt.kind, c)
			again, changed := s.String(got, &c)
			assert.False(t, changed, "a second pass changes nothing: %q", again)
		})
	}
}

// What looks like a kind but is not stays: timestamps, IDs, versions, IPs, prose, the hashes
// this processor writes.
func TestLeavesLookalikes(t *testing.T) {
	s := New(All, nil)
	for _, in := range []string{
		"1700000000123", "1700000000123456789", "ts 1700000000", "4111111111111112", "0000000000000000",
		"550e8400-e29b-41d4-a716-446655440000", "v1.2.3", "10.0.0.5:8000", "2024-01-15 10:20:30",
		"123-45-678", "000-12-3456", "666-12-3456", "900-12-3456", "123-00-4567", "123-45-0000",
		"415-155-0123", "4155550123", "+0 123 456 789", "+1 23",
		"DE00 3704 0044 0532 0130 00", "DE89 3704 0044 0532 0130 01",
		"a basic question", "the bearer instrument", "Bearer of bad news", "sk-learn", "sklearn", "skip-this",
		"@mention", "a@b", "user@localhost", "x@y.c1", "see a.@b.com",
		"hmac-sha256:4111111111111111aaaaaaaaaaaaaaaa", "hmac-sha256:0123456789abcdef0123456789abcdef",
		"qwen3-8b", "gpt-4o-2024-08-06", "semantic_router.request.received", "max_tokens: 4096",
		"password", "password:", "the secret is out", "token=abc",
		"<redacted:email>", "{id}", "REDACTED",
	} {
		var c Counts
		got, changed := s.String(in, &c)
		assert.False(t, changed, "%q became %q", in, got)
	}
}

func TestKindsCanBeTurnedOff(t *testing.T) {
	kinds, err := ParseKinds([]string{"email"})
	require.NoError(t, err)
	s := New(kinds, nil)
	var c Counts
	got, _ := s.String("a@example.com 4111 1111 1111 1111", &c)
	assert.Equal(t, "<redacted:email> 4111 1111 1111 1111", got)
	_, err = ParseKinds([]string{"email", "ssn"})
	assert.ErrorContains(t, err, `[1]: "ssn" is not one of`)
	assert.False(t, New(0, nil).Enabled())
}

func TestBlockedValues(t *testing.T) {
	s := New(All, regexp.MustCompile(`(?:ACME-\d{4})|(?:internal\.corp)`))
	var c Counts
	got, changed := s.String("ticket ACME-1234 on internal.corp", &c)
	assert.True(t, changed)
	assert.Equal(t, "ticket <redacted:blocked_value> on <redacted:blocked_value>", got)
	assert.Equal(t, 2, c[BlockedValue])
	got, _ = s.String("ab", &c)
	assert.Equal(t, "ab", got, "short strings are still matched against blocked values, and this one is clean")
}

func TestURLs(t *testing.T) {
	s := New(All, nil)
	tests := []struct {
		name, in string
		mode     QueryMode
		want     string
	}{
		{"credentials, ids, query, fragment", "https://bob:pw@api.example.com/v1/users/42/orders/550e8400-e29b-41d4-a716-446655440000?token=abc&alice@example.com#access_token=x",
			QueryRedact, "https://REDACTED:REDACTED@api.example.com/v1/users/{id}/orders/{id}?token=REDACTED&REDACTED#access_token=REDACTED"},
		{"user without password", "https://bob@example.com/", QueryRedact, "https://REDACTED@example.com/"},
		{"address in a path", "http://x/mail/jane%40example.com/inbox", QueryRedact, "http://x/mail/{email}/inbox"},
		{"hex id and phone", "/files/0123456789abcdef0123/+14155550123", QueryRedact, "/files/{id}/{phone}"},
		{"keep mode masks findings", "/v1/chat?user=jane@example.com&debug", QueryKeep, "/v1/chat?user=<redacted:email>&debug"},
		{"drop mode", "/v1/chat?user=jane#frag", QueryDrop, "/v1/chat"},
		{"plain path stays", "/v1/chat/completions", QueryRedact, "/v1/chat/completions"},
		{"no scheme is a target", "api.example.com/a?b=c", QueryRedact, "api.example.com/a?b=REDACTED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Counts
			got, _ := s.URL(tt.in, tt.mode, &c)
			assert.Equal(t, tt.want, got)
			again, changed := s.URL(got, tt.mode, &c)
			assert.False(t, changed, "idempotent: %q", again)
		})
	}
}

func TestQueryValuelessParameters(t *testing.T) {
	s := New(All, nil)
	var c Counts
	got, _ := s.Query("alice@example.com&a=1&&x", QueryRedact, &c)
	assert.Equal(t, "REDACTED&a=REDACTED&&REDACTED", got)
	got, _ = s.Query("jane%40example.com=1", QueryRedact, &c)
	assert.Equal(t, "REDACTED=REDACTED", got, "a name that holds an address goes too")
}

func TestLongInputsAreLinear(t *testing.T) {
	s := New(All, nil)
	for _, in := range []string{
		strings.Repeat("1", 100000), strings.Repeat("1 ", 50000), strings.Repeat("a@", 50000),
		strings.Repeat("eyJ", 30000), strings.Repeat("DE89 ", 20000), strings.Repeat("+(", 50000),
		strings.Repeat("bearer ", 20000), strings.Repeat("://", 30000), strings.Repeat("password=", 10000),
	} {
		var c Counts
		s.String(in, &c)
		s.URL(in, QueryRedact, &c)
	}
}
