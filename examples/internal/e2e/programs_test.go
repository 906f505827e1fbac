package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpauth/introspection/examples/internal/demo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// programs are the example servers, as `go run ./examples/NAME` builds them.
var programs = []struct{ sdk, pkg string }{
	{"go-sdk", "mcpserver"},
	{"mcp-go", "mcpgo"},
}

// TestProgramsRunWithNothingConfigured builds each example program and runs
// it as the README says, on a machine with nothing configured: it starts
// the development server, prints its endpoint and two tokens, serves the
// first token's whoami, and exits with status 0 on SIGINT and on SIGTERM.
// Told a bad -public-url, it exits with status 1 and says why, after its
// name, on stderr.
func TestProgramsRunWithNothingConfigured(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("sends POSIX signals")
	}
	goTool, err := exec.LookPath("go")
	require.NoError(t, err, "go test runs with go on the PATH")
	var env []string // the test's environment without what the examples read
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "INTROSPECTION_") && !strings.HasPrefix(kv, "MCP_") {
			env = append(env, kv)
		}
	}
	for _, p := range programs {
		t.Run(p.sdk, func(t *testing.T) {
			bin := filepath.Join(t.TempDir(), p.pkg)
			build := exec.Command(goTool, "build", "-o", bin, "github.com/mcpauth/introspection/examples/"+p.pkg)
			out, err := build.CombinedOutput()
			require.NoError(t, err, "go build: %s", out)

			for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
				t.Run(sig.String(), func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
					defer cancel()
					cmd := exec.CommandContext(ctx, bin, "-addr", "127.0.0.1:0")
					cmd.Env = env
					stdout, stderr := &syncBuffer{}, &syncBuffer{}
					cmd.Stdout, cmd.Stderr = stdout, stderr
					require.NoError(t, cmd.Start())
					require.Eventually(t, func() bool { return strings.Contains(stdout.String(), demo.NarrowLabel+": ") },
						testTimeout, 10*time.Millisecond, "stderr: %s", stderr)
					c, err := Whoami(ctx, printed(t, stdout.String(), "MCP endpoint"), printed(t, stdout.String(), demo.FullLabel))
					require.NoError(t, err)
					assert.Equal(t, demo.Subject, c.UserID)

					require.NoError(t, cmd.Process.Signal(sig))
					assert.NoError(t, cmd.Wait(), "stderr: %s", stderr.String())
				})
			}

			t.Run("a bad -public-url", func(t *testing.T) {
				cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-public-url", "https://mcp.example.com/base")
				cmd.Env = env
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				err := cmd.Run()
				var exit *exec.ExitError
				require.ErrorAs(t, err, &exit)
				assert.Equal(t, 1, exit.ExitCode())
				assert.True(t, strings.HasPrefix(stderr.String(), p.pkg+": the public URL"), stderr.String())
			})
		})
	}
}
