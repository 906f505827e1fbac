package introspection

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCoreImportsOnlyTheStandardLibrary lists every package that the core
// module's packages import, directly or not, tests left out: each is from
// the standard library or from the module itself.
func TestCoreImportsOnlyTheStandardLibrary(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("the go command is required in CI")
		}
		t.Skip("skipping: the go command is not on PATH")
	}
	out, err := exec.Command(goCmd, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./...").Output()
	require.NoError(t, err)
	pkgs := strings.Fields(string(out))
	require.NotEmpty(t, pkgs, "the module's own packages are listed")
	for _, p := range pkgs {
		assert.True(t, p == "github.com/mcpauth/introspection" || strings.HasPrefix(p, "github.com/mcpauth/introspection/"),
			"%s is neither in the standard library nor in the module", p)
	}
}
