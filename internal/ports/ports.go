// Package ports hands out loopback TCP ports for servers a test or benchmark starts later, by
// number, in another process (a collector, Jaeger, Prometheus). A port taken from the kernel
// (":0") is in its ephemeral range, where every outgoing connection of the same machine takes
// its source port, so between closing the probe and the server's start another connection
// can take it. Ports outside that range are taken only by servers that ask for them by number.
package ports

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// rangeFile is where Linux keeps the ephemeral range.
const rangeFile = "/proc/sys/net/ipv4/ip_local_port_range"

// lowest is the first port handed out: below it are well-known and registered services.
const lowest = 10000

var (
	mu     sync.Mutex
	given  = map[int]bool{}
	ranges [][2]int
)

// Free returns a loopback port outside the ephemeral range that nothing listens on and that
// this process has not handed out before. It starts at a random place so that concurrent
// processes (go test runs packages in parallel) rarely probe the same ports.
func Free() (int, error) {
	mu.Lock()
	defer mu.Unlock()
	if ranges == nil {
		ranges = outsideEphemeral(readEphemeral())
	}
	total := 0
	for _, r := range ranges {
		total += r[1] - r[0] + 1
	}
	if total == 0 {
		return 0, errors.New("ports: the ephemeral range leaves no port above 10000")
	}
	start := rand.IntN(total)
	for i := range total {
		port := nth(ranges, (start+i)%total)
		if given[port] {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		_ = l.Close()
		given[port] = true
		return port, nil
	}
	return 0, fmt.Errorf("ports: no free port in %v", ranges)
}

// readEphemeral reads the kernel's ephemeral range, or Linux's default where it cannot.
func readEphemeral() (lo, hi int) {
	lo, hi = 32768, 60999
	raw, err := os.ReadFile(rangeFile)
	if err != nil {
		return lo, hi
	}
	f := strings.Fields(string(raw))
	if len(f) != 2 {
		return lo, hi
	}
	l, err1 := strconv.Atoi(f[0])
	h, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || l > h {
		return lo, hi
	}
	return l, h
}

// outsideEphemeral is the ports from lowest up that are not in [lo, hi], as inclusive ranges.
func outsideEphemeral(lo, hi int) [][2]int {
	var out [][2]int
	if lo-1 >= lowest {
		out = append(out, [2]int{lowest, lo - 1})
	}
	if from := max(hi+1, lowest); from <= 65535 {
		out = append(out, [2]int{from, 65535})
	}
	return out
}

func nth(ranges [][2]int, i int) int {
	for _, r := range ranges {
		if n := r[1] - r[0] + 1; i >= n {
			i -= n
			continue
		}
		return r[0] + i
	}
	panic("ports: index out of the ranges")
}
