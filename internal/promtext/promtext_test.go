package promtext

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func serve(t *testing.T, body string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(body)) }))
	t.Cleanup(srv.Close)
	return srv.URL
}

// Series are summed per name, those keep turns away and comments left out.
func TestSums(t *testing.T) {
	url := serve(t, `# HELP otelcol_spans spans
# TYPE otelcol_spans counter
otelcol_spans{outcome="kept"} 3
otelcol_spans{outcome="dropped"} 4.5
otelcol_spans_total 7
otelcol_held 1e+06
`)
	sums, err := Sums(http.DefaultClient, url, func(name, line string) bool {
		return name != "otelcol_spans" || !strings.Contains(line, `"dropped"`)
	})
	require.NoError(t, err)
	assert.Equal(t, map[string]float64{"otelcol_spans": 3, "otelcol_spans_total": 7, "otelcol_held": 1e6}, sums)
}

// A value that is not a number is an error naming its line.
func TestSumsUnparsable(t *testing.T) {
	url := serve(t, "otelcol_held{a=\"b\"} many\n")
	_, err := Sums(http.DefaultClient, url, func(string, string) bool { return true })
	require.ErrorContains(t, err, `otelcol_held{a=\"b\"} many`)
}
