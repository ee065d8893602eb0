package ports

import (
	"net"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestOutsideEphemeral(t *testing.T) {
	for _, tc := range []struct {
		name   string
		lo, hi int
		want   [][2]int
	}{
		{"linux default", 32768, 60999, [][2]int{{10000, 32767}, {61000, 65535}}},
		{"range from 1024", 1024, 65535, nil},
		{"range above the top", 9000, 65000, [][2]int{{65001, 65535}}},
		{"range starting at lowest", 10000, 20000, [][2]int{{20001, 65535}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, outsideEphemeral(tc.lo, tc.hi))
		})
	}
}

func TestNth(t *testing.T) {
	r := [][2]int{{10, 12}, {20, 21}}
	var got []int
	for i := range 5 {
		got = append(got, nth(r, i))
	}
	require.Equal(t, []int{10, 11, 12, 20, 21}, got)
}

func TestFreeIsOutsideTheEphemeralRangeAndNeverRepeats(t *testing.T) {
	lo, hi := readEphemeral()
	seen := map[int]bool{}
	for range 50 {
		p, err := Free()
		require.NoError(t, err)
		require.False(t, p >= lo && p <= hi, "port %d is in the ephemeral range %d-%d", p, lo, hi)
		require.GreaterOrEqual(t, p, lowest)
		require.False(t, seen[p], "port %d handed out twice", p)
		seen[p] = true
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		require.NoError(t, err, "port %d must be free", p)
		require.NoError(t, l.Close())
	}
}

func TestFreeSkipsAPortInUse(t *testing.T) {
	// A range of three ports, two of them held: Free must find the third, then none.
	mu.Lock()
	saved, savedGiven := ranges, given
	mu.Unlock()
	t.Cleanup(func() {
		mu.Lock()
		ranges, given = saved, savedGiven
		mu.Unlock()
	})
	base, held := threeFree(t)
	require.NoError(t, held[2].Close())
	for _, l := range held[:2] {
		defer l.Close()
	}
	mu.Lock()
	ranges, given = [][2]int{{base, base + 2}}, map[int]bool{}
	mu.Unlock()
	p, err := Free()
	require.NoError(t, err)
	require.Equal(t, base+2, p)
	_, err = Free()
	require.Error(t, err, "the only free port was handed out already")
}

// threeFree listens on three consecutive ports outside the ephemeral range.
func threeFree(t *testing.T) (int, []net.Listener) {
	for base := 20000; base < 30000; base += 3 {
		var held []net.Listener
		for p := base; p < base+3; p++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				break
			}
			held = append(held, l)
		}
		if len(held) == 3 {
			return base, held
		}
		for _, l := range held {
			_ = l.Close()
		}
	}
	t.Fatal("no three consecutive free ports from 20000")
	return 0, nil
}
