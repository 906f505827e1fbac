package rediscache_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDocSnippetsAreTheExample checks that every line of code in the
// package doc's snippet and in the README's Redis snippet is a line of
// Example, in the same order, so that both compile and do what the tests
// show. Comments, blank lines and alignment are ignored.
func TestDocSnippetsAreTheExample(t *testing.T) {
	src, err := os.ReadFile("example_test.go")
	require.NoError(t, err)
	body := between(t, string(src), "func Example() {\n", "\n}\n")
	example := codeLines(strings.Split(body, "\n"))
	require.NotEmpty(t, example)

	pkg, err := os.ReadFile("rediscache.go")
	require.NoError(t, err)
	var doc []string
	for _, l := range strings.Split(between(t, string(pkg), "", "\npackage rediscache"), "\n") {
		if s, ok := strings.CutPrefix(l, "//\t"); ok {
			doc = append(doc, s)
		}
	}

	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	section := between(t, string(readme), "## A shared cache for replicas (Redis)\n", "\n## ")
	block := between(t, section, "```go\n", "```\n")

	for name, snippet := range map[string][]string{"package doc": doc, "README": strings.Split(block, "\n")} {
		lines := codeLines(snippet)
		require.NotEmpty(t, lines, name)
		i := 0
		for _, l := range lines {
			for i < len(example) && example[i] != l {
				i++
			}
			if !assert.Less(t, i, len(example), "%s: %q is not a line of Example (in order)", name, l) {
				break
			}
			i++
		}
	}
}

// between returns the text of s after the first start and before the next
// end.
func between(t *testing.T, s, start, end string) string {
	t.Helper()
	_, after, ok := strings.Cut(s, start)
	require.True(t, ok, "%q not found", start)
	before, _, ok := strings.Cut(after, end)
	require.True(t, ok, "%q not found after %q", end, start)
	return before
}

var space = regexp.MustCompile(`\s+`)

// codeLines returns the lines of Go code in lines, without comments, with
// runs of white space made one space.
func codeLines(lines []string) []string {
	var out []string
	for _, l := range lines {
		if i := strings.Index(l, " //"); i >= 0 {
			l = l[:i]
		}
		l = strings.TrimSpace(space.ReplaceAllString(l, " "))
		if l == "" || strings.HasPrefix(l, "//") {
			continue
		}
		out = append(out, l)
	}
	return out
}
