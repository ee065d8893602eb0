package main

import (
	"fmt"
	"os"
	"strings"
)

// curveSetups are the setups the throughput curve steps through.
var curveSetups = []string{rowPass, rowTuned, rowOurs}

// curvePoint is one setup at one offered rate.
type curvePoint struct {
	setup string
	result
	sustained bool
}

// runCurve steps each setup's offered rate up until it no longer keeps up: traffic generated
// at the rate, nothing refused, every must-keep trace whole.
func runCurve(o options, s *sink) ([]curvePoint, error) {
	var points []curvePoint
	for _, setup := range curveSetups {
		sc := scenarioNamed(setup)
		for _, rate := range o.curveSteps {
			fmt.Fprintf(os.Stderr, "bench: curve: %s at %.0f traces/s\n", setup, rate)
			r, err := runScenario(o, sc, s, rate, o.curveDuration, true)
			if err != nil {
				return nil, fmt.Errorf("%s at %.0f: %w", setup, rate, err)
			}
			p := curvePoint{setup: setup, result: r}
			p.sustained = r.achieved >= 0.95*rate && r.failedSpans == 0 && r.mustKeepSeen == r.mustKeep
			points = append(points, p)
			if !p.sustained {
				break
			}
		}
	}
	return points, nil
}

func scenarioNamed(name string) scenario {
	for _, sc := range scenarios {
		if sc.name == name {
			return sc
		}
	}
	panic("no scenario " + name)
}

func (p curvePoint) cpuPerMillion() float64 { return p.cpu.Seconds() / float64(p.spansIn) * 1e6 }

func writeCurve(b *strings.Builder, points []curvePoint, svg string) {
	b.WriteString("\n## Throughput curve\n\nEach setup's offered rate is stepped up until it no longer keeps up (traffic generated at the rate, nothing refused, every must-keep trace whole); the load generator runs on the same machine.")
	if svg != "" {
		fmt.Fprintf(b, " Drawn in [%s](%s).\n\n![CPU per span against offered load](%s)\n\n", svg, svg, svg)
	} else {
		b.WriteString("\n\n")
	}
	b.WriteString("| setup | highest rate sustained, traces/s |\n|---|---|\n")
	for _, setup := range curveSetups {
		best := 0.0
		for _, p := range points {
			if p.setup == setup && p.sustained {
				best = max(best, p.offered)
			}
		}
		fmt.Fprintf(b, "| %s | %.0f |\n", setup, best)
	}
	b.WriteString("\n| setup | offered traces/s | achieved | CPU s / 1M spans | peak RSS MiB | refused spans | must-keep whole | kept up |\n|---|---|---|---|---|---|---|---|\n")
	for _, p := range points {
		fmt.Fprintf(b, "| %s | %.0f | %.0f | %.2f | %.0f | %d | %d / %d | %s |\n", p.setup, p.offered, p.achieved,
			p.cpuPerMillion(), float64(p.peakRSSKiB)/1024, p.failedSpans, p.mustKeepSeen, p.mustKeep, map[bool]string{true: "yes", false: "**no**"}[p.sustained])
	}
}

// curveSVG draws CPU per span against offered rate, one line per setup; a step that did not
// keep up is a hollow mark.
func curveSVG(points []curvePoint) string {
	const w, h, left, bottom, top, right = 720.0, 420.0, 70.0, 50.0, 40.0, 200.0
	maxX, maxY := 0.0, 0.0
	for _, p := range points {
		maxX, maxY = max(maxX, p.offered), max(maxY, p.cpuPerMillion())
	}
	maxY *= 1.1
	x := func(v float64) float64 { return left + v/maxX*(w-left-right) }
	y := func(v float64) float64 { return h - bottom - v/maxY*(h-bottom-top) }
	colors := map[string]string{rowPass: "#777777", rowTuned: "#d95f02", rowOurs: "#1b9e77"}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="22" font-size="14">CPU per span against offered load (lower is cheaper)</text>`+"\n", left)
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`+"\n", left, h-bottom, w-right, h-bottom)
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`+"\n", left, top, left, h-bottom)
	for i := 0; i <= 5; i++ {
		vx, vy := maxX*float64(i)/5, maxY*float64(i)/5
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%.0f</text>`+"\n", x(vx), h-bottom+18, vx)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%.1f</text>`+"\n", left-6, y(vy)+4, vy)
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#eeeeee"/>`+"\n", left+1, y(vy), w-right, y(vy))
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="middle">offered traces/s</text>`+"\n", (left+w-right)/2, h-12)
	fmt.Fprintf(&b, `<text x="16" y="%.0f" transform="rotate(-90 16 %.0f)" text-anchor="middle">CPU s per 1M spans</text>`+"\n", (top+h-bottom)/2, (top+h-bottom)/2)
	for i, setup := range curveSetups {
		var pts []string
		for _, p := range points {
			if p.setup == setup {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p.offered), y(p.cpuPerMillion())))
			}
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", colors[setup], strings.Join(pts, " "))
		for _, p := range points {
			if p.setup != setup {
				continue
			}
			fill := colors[setup]
			if !p.sustained {
				fill = "white"
			}
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="4" fill="%s" stroke="%s" stroke-width="2"/>`+"\n", x(p.offered), y(p.cpuPerMillion()), fill, colors[setup])
		}
		ly := top + 20 + float64(i)*20
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="%s" stroke-width="2"/>`+"\n", w-right+10, ly, w-right+30, ly, colors[setup])
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f">%s</text>`+"\n", w-right+36, ly+4, legendName(setup))
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" fill="#555555">hollow: did not keep up</text>`+"\n", w-right+10, top+20+float64(len(curveSetups))*20)
	b.WriteString("</svg>\n")
	return b.String()
}

func legendName(setup string) string {
	if setup == rowTuned {
		return "tuned contrib"
	}
	return setup
}
