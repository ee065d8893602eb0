// Package promtext reads the collector's own telemetry as its Prometheus reader serves it: the
// bench samples the sampler's gauges with it, and the end-to-end tests their assertions.
package promtext

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Sums fetches the text exposition at url and adds up, per metric name, the values of the
// series keep accepts, given the metric's name and the series' whole line (labels included).
func Sums(client *http.Client, url string, keep func(name, line string) bool) (map[string]float64, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	sums := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		if !keep(name, line) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", line, err)
		}
		sums[name] += v
	}
	return sums, sc.Err()
}
