package store

import (
	"fmt"
	"testing"

	"github.com/golang/snappy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
)

// A parked part reads back as its plain records, packed blocks unpacked, in order; a part it
// cannot read is an error with the records before it kept, never a panic.
func TestAppendUnpacked(t *testing.T) {
	plain := func(payload string) []byte { return protowire.AppendString([]byte{plainTag}, payload) }
	join := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	packed := func(records ...[]byte) []byte {
		block := snappy.Encode(nil, join(records...))
		return append(protowire.AppendVarint([]byte{packedTag}, uint64(len(block))), block...)
	}
	a, b, c := plain("resource spans a"), plain("b"), plain("resource spans c, longer")
	for i, tc := range []struct {
		part, want []byte
		wantError  bool
	}{
		{part: join(a, b), want: join(a, b)},
		{part: join(packed(a, b), c), want: join(a, b, c)},
		{part: join(a, packed(b), c), want: join(a, b, c)},
		{part: join(a, []byte{0x12, 1, 0}), want: a, wantError: true},                        // not a record of ours
		{part: join(a, b[:len(b)-1]), want: a, wantError: true},                              // truncated
		{part: []byte{plainTag, 0xff, 0xff, 0xff, 0xff, 0x0f}, wantError: true},              // length past the end
		{part: join(a, []byte{packedTag, 3, 0xff, 0xff, 0xff}, c), want: a, wantError: true}, // corrupt block
	} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			got, err := appendUnpacked(nil, tc.part)
			if tc.wantError {
				require.ErrorIs(t, err, errPartUnreadable)
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, string(tc.want), string(got))
		})
	}
}
