package normalize

import (
	"fmt"
	"strings"

	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrattrs/internal/scan"
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

// classDefaults is what the privacy table says of each class's default action.
var classDefaults = [NumClasses]string{
	ClassContent:    "`redaction.prompts` (hash)",
	ClassIdentifier: "`redaction.identifiers` (hash)",
	ClassCredential: "`redaction.credentials` (hash)",
	ClassURL:        "sanitize",
}

// PrivacyMarkdown renders Families, ContentStructure and the scanner's kinds as the README's
// privacy tables, so the documentation is the rules the code runs.
func PrivacyMarkdown() string {
	var b strings.Builder
	b.WriteString("| family | source | class, default action | keys (and everything under them), events, key words | stays | notes |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	code := func(items []string, sep string) string {
		var out []string
		for _, it := range items {
			if w, last := strings.CutSuffix(it, " $"); last {
				out = append(out, "`"+w+"` (the last word)")
				continue
			}
			out = append(out, "`"+it+"`")
		}
		return strings.Join(out, sep)
	}
	for _, f := range Families {
		var what []string
		if len(f.Keys) > 0 {
			what = append(what, code(f.Keys, ", "))
		}
		if len(f.Events) > 0 {
			what = append(what, "events "+code(f.Events, ", "))
		}
		if len(f.Words) > 0 {
			what = append(what, "words "+code(f.Words, ", "))
		}
		class := f.Class.String() + ", " + classDefaults[f.Class]
		if f.RouterOnly {
			class += ", router spans only"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s |\n",
			f.ID, f.Source, class, strings.Join(what, "; "), code(f.Except, ", "), f.Doc)
	}
	b.WriteString("\nUnder a content family, and in a content event's body, these keys are structure and stay: ")
	b.WriteString(code(ContentStructure, ", ") + ".\n\n")
	b.WriteString("| scanner kind | what is found |\n|---|---|\n")
	for _, k := range scan.Kinds {
		fmt.Fprintf(&b, "| `%s` | %s |\n", k.Name, k.Doc)
	}
	return b.String()
}
