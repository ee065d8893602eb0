package normalize

import (
	"fmt"
	"strings"
)

// SchemaMarkdown renders Schema as the README's reference table, so the documentation is the
// table the code runs.
func SchemaMarkdown() string {
	var b strings.Builder
	b.WriteString("| canonical key | type | unit | replaces | allowed values | notes |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, a := range Schema {
		var legacy []string
		for _, l := range a.Legacy {
			s := "`" + l.Key + "`"
			if l.Conv == ConvSecondsToMillis {
				s += " (s → ms)"
			}
			legacy = append(legacy, s)
		}
		var enum []string
		for _, e := range a.Enum {
			if e == "" {
				e = "(empty)"
			}
			enum = append(enum, "`"+e+"`")
		}
		notes := a.Doc
		switch {
		case a.Resource:
			notes = "resource; " + notes
		case a.Event:
			notes = "span event; " + notes
		case a.Summary:
			notes = "summary (vsr_sampler); " + notes
		case a.Derived:
			notes = "derived; " + notes
		case a.ModelServer:
			notes = "model server; " + notes
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s |\n",
			a.Key, a.Type, a.Unit, strings.Join(legacy, ", "), strings.Join(enum, " "), notes)
	}
	return b.String()
}
