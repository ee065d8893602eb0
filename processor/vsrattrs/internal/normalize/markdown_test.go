package normalize

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var updateReadme = flag.Bool("update-readme", false, "rewrite the README's schema table from Schema")

const (
	schemaBegin = "<!-- schema:begin (make generate) -->\n"
	schemaEnd   = "<!-- schema:end -->"
)

// The README's schema table is the one the code runs.
func TestREADMESchemaTable(t *testing.T) {
	path := filepath.Join("..", "..", "..", "..", "README.md")
	readme, err := os.ReadFile(path)
	require.NoError(t, err)
	text := string(readme)
	begin, end := strings.Index(text, schemaBegin), strings.Index(text, schemaEnd)
	require.True(t, begin >= 0 && end > begin, "README.md lacks the schema markers")
	want := text[:begin+len(schemaBegin)] + SchemaMarkdown() + text[end:]
	if *updateReadme {
		require.NoError(t, os.WriteFile(path, []byte(want), 0o644))
		return
	}
	require.Equal(t, want, text, "README schema table is stale: run make generate")
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
