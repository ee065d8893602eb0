package normalize

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var updateReadme = flag.Bool("update-readme", false, "rewrite the README's generated tables from Schema and Families")

// readmeTables are the README's generated tables, each between its markers.
var readmeTables = []struct {
	begin, end string
	render     func() string
}{
	{"<!-- schema:begin (make generate) -->\n", "<!-- schema:end -->", SchemaMarkdown},
	{"<!-- privacy:begin (make generate) -->\n", "<!-- privacy:end -->", PrivacyMarkdown},
}

// The README's schema and privacy tables are the ones the code runs.
func TestREADMESchemaTable(t *testing.T) {
	path := filepath.Join("..", "..", "..", "..", "README.md")
	readme, err := os.ReadFile(path)
	require.NoError(t, err)
	text := string(readme)
	want := text
	for _, tbl := range readmeTables {
		begin, end := strings.Index(want, tbl.begin), strings.Index(want, tbl.end)
		require.True(t, begin >= 0 && end > begin, "README.md lacks the markers %q", tbl.begin)
		want = want[:begin+len(tbl.begin)] + tbl.render() + want[end:]
	}
	if *updateReadme {
		require.NoError(t, os.WriteFile(path, []byte(want), 0o644))
		return
	}
	if want != text {
		t.Fatal("README tables are stale: run make generate")
	}
}

// Every key is defined once, across canonical and legacy names.
func TestSchemaKeysUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, a := range Schema {
		keys := []string{a.Key}
		for _, l := range a.Legacy {
			keys = append(keys, l.Key)
		}
		for _, k := range keys {
			require.False(t, seen[k], "%s defined twice", k)
			seen[k] = true
		}
	}
}
