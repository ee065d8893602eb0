package routerconv

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBoundedName(t *testing.T) {
	for _, name := range []string{
		"qwen3-8b", "Qwen/Qwen3-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct", "gpt-4o-2024-08-06",
		"claude-3-5-sonnet@20240620", "computer science", "math_decision", "upstream_5xx",
		"jailbreak_blocked", "gpt-4o:2024.08", strings.Repeat("m", maxNameBytes),
	} {
		require.Equal(t, name, BoundedName(name), "a configured name is kept")
	}
	for _, text := range []string{
		"", "alice@example.com", "mail alice@example.com now", "@home", " leading", "trailing ",
		"two  spaces", "line\nbreak", "quote\"d", "über", "k=v", "a,b", "50% off",
		strings.Repeat("m", maxNameBytes+1), "(555) 123-4567", "<script>",
	} {
		require.Equal(t, OtherName, BoundedName(text), "%q is not a bounded name", text)
	}
}
