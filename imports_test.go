package introspection

import (
	"os/exec"
	"path/filepath"
	"runtime"
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
	goCmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(goCmd, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./...").Output()
	require.NoError(t, err)
	pkgs := strings.Fields(string(out))
	require.NotEmpty(t, pkgs, "the module's own packages are listed")
	for _, p := range pkgs {
		assert.True(t, p == "github.com/mcpauth/introspection" || strings.HasPrefix(p, "github.com/mcpauth/introspection/"),
			"%s is neither in the standard library nor in the module", p)
	}
}
