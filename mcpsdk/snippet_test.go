package mcpsdk_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPackageDocSnippet checks that the snippet of the package doc, its
// first code block, handles every error and compiles, inside a function that
// has settings, toolScopes, metadataURL and getServer.
func TestPackageDocSnippet(t *testing.T) {
	src, err := os.ReadFile("mcpsdk.go")
	require.NoError(t, err)
	doc, _, _ := strings.Cut(string(src), "\npackage mcpsdk")
	var body []string
	for _, line := range strings.Split(doc, "\n") {
		code, ok := strings.CutPrefix(line, "//\t")
		if !ok && len(body) > 0 {
			break
		}
		if ok {
			body = append(body, code)
		}
	}
	require.NotEmpty(t, body, "the package doc has no snippet")
	fragment := strings.Join(body, "\n")
	assert.NotContains(t, fragment, ", _ :=", "no error is ignored")
	assert.Contains(t, fragment, "if err != nil {")

	goTool, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("the go command is required in CI")
		}
		t.Skip("skipping: the go command is not on PATH")
	}
	// Build in the repository's workspace, whose modules' versions are the
	// ones the module cache holds.
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	work, err := os.ReadFile(filepath.Join(root, "go.work"))
	require.NoError(t, err)
	workSum, _ := os.ReadFile(filepath.Join(root, "go.work.sum"))
	dir := t.TempDir()
	var uses []string
	for _, line := range strings.Split(string(work), "\n") {
		if p := strings.TrimSpace(line); strings.HasPrefix(p, ".") {
			uses = append(uses, "\t"+filepath.Join(root, p))
		}
	}
	require.NotEmpty(t, uses, "go.work uses no module")
	files := map[string]string{
		"main.go": `package main

import (
	"net/http"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/mcpsdk"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func snippet(settings introspection.Settings, toolScopes map[string][]string, metadataURL string,
	getServer func(*http.Request) *mcp.Server) error {
` + fragment + `
	_ = handler
	return nil
}

func main() { _ = snippet(introspection.Settings{}, nil, "", nil) }
`,
		"go.mod":      "module snippet\n\ngo 1.26.0\n",
		"go.work":     "go 1.26.0\n\nuse (\n\t.\n" + strings.Join(uses, "\n") + "\n)\n",
		"go.work.sum": string(workSum),
	}
	for name, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600))
	}
	cmd := exec.Command(goTool, "build", "-o", os.DevNull, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK="+filepath.Join(dir, "go.work"), "GOFLAGS=", "GOPROXY=off", "GOTOOLCHAIN=local")
	out, err := cmd.CombinedOutput()
	assert.NoError(t, err, "go build:\n%s\n%s", out, files["main.go"])
}
