package otel

import (
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReview16bREADMEHitTableMatchesTheAllocations reads the README's
// table of what a cache hit costs and checks its allocations column
// against the allocations of a hit with each set-up it names, as the code
// is now: the table describes the current code, not the one before a hit
// lost its span.
func TestReview16bREADMEHitTableMatchesTheAllocations(t *testing.T) {
	b, err := os.ReadFile("README.md")
	require.NoError(t, err)
	rows := map[string]string{ // the README's row: the set-up in observers
		"no observer":                 "none",
		"metrics":                     "otel-metrics",
		"metrics, parent not sampled": "otel-metrics+unsampled-parent",
		"metrics, root not sampled":   "otel-metrics+unsampled-spans",
		"metrics, spans sampled":      "otel-metrics+sampled-spans",
	}
	for row, setup := range rows {
		m := regexp.MustCompile(`(?m)^\| ` + regexp.QuoteMeta(row) + ` \|.*\| (\d+) \|$`).FindSubmatch(b)
		if !assert.NotNil(t, m, "the README's row %q", row) {
			continue
		}
		documented, _ := strconv.ParseFloat(string(m[1]), 64)
		for _, o := range observers {
			if o.name != setup {
				continue
			}
			ctx := o.ctx()
			v := hitVerifier(t, o.new(t))
			got := testing.AllocsPerRun(200, func() {
				if _, err := v.Verify(ctx, benchToken); err != nil {
					t.Fatal(err)
				}
			})
			assert.Equal(t, documented, got, "README row %q (%s): allocations of a hit", row, setup)
		}
	}
}
