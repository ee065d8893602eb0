package normalize

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// hashPrefixes start every value this processor hashes, by hash function.
var hashPrefixes = [...]string{HashHMACSHA256: "hmac-sha256:", HashHMACSHA512: "hmac-sha512:"}

// hashHexLen is the hex digits after the prefix: 128 bits.
const hashHexLen = 32

// isHash reports whether s is exactly what hash writes. Only that passes as already
// redacted: a value that merely starts like one is personal data like any other.
func isHash(s, prefix string) bool {
	if len(s) != len(prefix)+hashHexLen || !strings.HasPrefix(s, prefix) {
		return false
	}
	for _, c := range []byte(s[len(prefix):]) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// hash is a keyed HMAC, truncated to 128 bits: enough to tell values apart and to join on,
// without a dictionary attack on short values.
func (w *work) hash(s string) string {
	w.mac.Reset()
	w.mac.Write([]byte(s))
	var sum [sha256.Size * 2]byte
	return w.n.hashPrefix + hex.EncodeToString(w.mac.Sum(sum[:0])[:hashHexLen/2])
}
