package scan

import (
	"strings"
	"testing"
)

// FuzzScan: any input is scanned without panic, and what comes out is stable: a second pass
// finds nothing more (so nothing the scanner would find is left).
func FuzzScan(f *testing.F) {
	for _, seed := range []string{
		"mail jane.doe@example.com, card 4111 1111 1111 1111, ssn 123-45-6789, +44 20 7946 0958",
		"Bearer abc.DEF-123_xyz= and sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123",
		"https://bob:pw@api.example.com/v1/users/42?token=abc&alice@example.com#x",
		`{"password": "hunter22"} eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig DE89 3704 0044 0532 0130 00`,
		"(415) 555-0123 1-415-555-0123 415.555.0123", "\xff@\xfe.com 4111\x001111",
	} {
		f.Add(seed)
	}
	s := New(All, nil)
	f.Fuzz(func(t *testing.T, in string) {
		var c Counts
		out, _ := s.String(in, &c)
		if again, changed := s.String(out, &c); changed {
			t.Fatalf("second pass changed %q\n  to %q\n  to %q", in, out, again)
		}
		for _, mode := range []QueryMode{QueryRedact, QueryKeep} {
			u, _ := s.URL(in, mode, &c)
			if again, changed := s.URL(u, mode, &c); changed {
				t.Fatalf("second URL pass (mode %d) changed %q\n  to %q\n  to %q", mode, in, u, again)
			}
		}
	})
}

// A prompt-sized text (4 KiB) with a few findings, and the same without: the cost of scanning
// a kept string, per byte.
func BenchmarkScan(b *testing.B) {
	prose := strings.Repeat("Please summarise the quarterly report for the team, focusing on revenue, churn and the "+
		"three largest accounts; keep it under 200 words and reply in English. ", 30)[:4096]
	withFindings := prose[:1000] + " reach me at jane.doe@example.com or +1 415 555 0123 " + prose[1060:3000] +
		" card 4111 1111 1111 1111, key sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123 " + prose[3075:]
	s := New(All, nil)
	for name, in := range map[string]string{"clean": prose, "findings": withFindings} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			var c Counts
			for b.Loop() {
				s.String(in, &c)
			}
		})
	}
}
