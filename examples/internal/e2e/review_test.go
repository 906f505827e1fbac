package e2e

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// builtPrograms holds the example programs, built once per test binary as
// `go run ./examples/NAME` builds them, by package name.
var builtPrograms struct {
	once sync.Once
	dir  string
	err  error
}

// programBinary returns the path of the example program pkg, built once.
func programBinary(t *testing.T, pkg string) string {
	t.Helper()
	builtPrograms.once.Do(func() {
		builtPrograms.dir, builtPrograms.err = os.MkdirTemp("", "review-programs")
		if builtPrograms.err != nil {
			return
		}
		for _, p := range programs {
			out, err := exec.Command("go", "build", "-o", filepath.Join(builtPrograms.dir, p.pkg),
				"github.com/mcpauth/introspection/examples/"+p.pkg).CombinedOutput()
			if err != nil {
				builtPrograms.err = &buildError{pkg: p.pkg, out: string(out), err: err}
				return
			}
		}
	})
	require.NoError(t, builtPrograms.err)
	return filepath.Join(builtPrograms.dir, pkg)
}

type buildError struct {
	pkg, out string
	err      error
}

func (e *buildError) Error() string { return "go build " + e.pkg + ": " + e.err.Error() + ": " + e.out }

// program is an example program started by startProgram.
type program struct {
	endpoint string // the MCP endpoint it printed
	listen   string // the address it listens on, dialable
	out      *syncBuffer
}

// startProgram runs the example program pkg with args and, on top of an
// environment without INTROSPECTION_* and MCP_*, env (NAME=value). It stops
// the program with SIGINT when the test ends and requires exit status 0.
func startProgram(t *testing.T, pkg string, args []string, env ...string) *program {
	t.Helper()
	bin := programBinary(t, pkg)
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "INTROSPECTION_") && !strings.HasPrefix(kv, "MCP_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	out, stderr := &syncBuffer{}, &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		clientTransport.CloseIdleConnections()
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case err := <-exited:
			assert.NoError(t, err, "exit after SIGINT; stderr: %s", stderr)
		case <-time.After(testTimeout):
			_ = cmd.Process.Kill()
			t.Errorf("%s did not exit after SIGINT", pkg)
		}
	})
	require.Eventually(t, func() bool {
		return strings.Contains(out.String(), "Accepted token audience: ") || stderr.String() != ""
	}, testTimeout, 5*time.Millisecond)
	require.Contains(t, out.String(), "Accepted token audience: ", "stderr: %s", stderr)
	return &program{
		endpoint: printed(t, out.String(), "MCP endpoint"),
		listen:   listenAddress(t, out.String()),
		out:      out,
	}
}

// configuredEnv is the environment that points a program at as.
func configuredEnv(as *introspectiontest.Server) []string {
	return []string{
		"INTROSPECTION_URL=" + as.IntrospectionURL,
		"INTROSPECTION_CLIENT_ID=" + introspectiontest.ClientID,
		"INTROSPECTION_CLIENT_SECRET=" + introspectiontest.ClientSecret,
		"INTROSPECTION_ISSUER=" + as.Issuer,
	}
}

// TestReviewAdvertisedResourceIsCanonical: the resource both programs
// advertise, print and accept tokens for is the canonical URI of the MCP
// server (RFC 3986 §6.2.2 and §6.2.3, as the MCP authorization spec asks):
// lower-case scheme and host, no default port. A client that normalizes the
// URL it connects to (the TypeScript SDK's URL does) otherwise compares a
// resource that differs from the advertised one.
func TestReviewAdvertisedResourceIsCanonical(t *testing.T) {
	for _, p := range programs {
		for _, tc := range []struct{ publicURL, resource string }{
			{"HTTPS://mcp.example.com", "https://mcp.example.com/mcp"},
			{"https://MCP.Example.COM", "https://mcp.example.com/mcp"},
			{"https://mcp.example.com:443", "https://mcp.example.com/mcp"},
			{"http://mcp.example.com:80/", "http://mcp.example.com/mcp"},
		} {
			t.Run(p.sdk+" "+tc.publicURL, func(t *testing.T) {
				as := introspectiontest.NewServer()
				defer as.Close()
				prog := startProgram(t, p.pkg, []string{"-addr", "127.0.0.1:0", "-public-url", tc.publicURL}, configuredEnv(as)...)
				assert.Equal(t, tc.resource, prog.endpoint, "the printed endpoint")
				assert.Equal(t, tc.resource, getMetadata(t, prog.listen, wellKnown+mcpPath).Resource, "the metadata's resource")
			})
		}
	}
}

// statusOf sends method to endpoint with token and session and returns
// the status, without reading the body (a GET stream never ends).
func statusOf(t *testing.T, method, endpoint, token, session string) int {
	t.Helper()
	req, err := http.NewRequest(method, endpoint, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", session)
	req.Header.Set("Mcp-Protocol-Version", LegacyProtocol)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := httpClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// TestReviewSessionsServeOnlyTheirCallerOnEveryMethod: another caller's
// token on Alice's Mcp-Session-Id gets 403 on GET (her event stream) and
// DELETE (ending her session) too, in both programs, and her session
// still serves her afterwards.
func TestReviewSessionsServeOnlyTheirCallerOnEveryMethod(t *testing.T) {
	for _, p := range programs {
		t.Run(p.sdk, func(t *testing.T) {
			as := introspectiontest.NewServer()
			defer as.Close()
			prog := startProgram(t, p.pkg, []string{"-addr", "127.0.0.1:0"}, configuredEnv(as)...)
			iss := issuer{as: as, resource: prog.endpoint}
			alice := iss.user("alice", ScopeTools)
			for _, tc := range []struct {
				name, method, token string
			}{
				{"another user's GET", http.MethodGet, iss.user("bob", "mcp")},
				{"another user's DELETE", http.MethodDelete, iss.user("bob", "mcp")},
			} {
				t.Run(tc.name, func(t *testing.T) {
					session := initialize(t, prog.endpoint, alice)
					assert.Equal(t, http.StatusForbidden, statusOf(t, tc.method, prog.endpoint, tc.token, session))
					r := send(t, http.MethodPost, prog.endpoint, alice, session, whoamiRequest)
					assert.Equal(t, http.StatusOK, r.status, "her session still serves her: %s", r.body)
				})
			}
		})
	}
}

// rawSend posts body to endpoint with contentType, token and session and
// returns the status and body.
func rawSend(t *testing.T, method, endpoint, contentType, token, session, body string) reply {
	t.Helper()
	req, err := http.NewRequest(method, endpoint, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Accept", "application/json, text/event-stream")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
		req.Header.Set("Mcp-Protocol-Version", LegacyProtocol)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := httpClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return reply{status: resp.StatusCode, challenge: resp.Header.Values("WWW-Authenticate"), body: string(b)}
}

// TestReviewBothProgramsAnswerAlike sends the same requests, in a session,
// with a token that holds mcp:tools but not mcp:echo, to both programs:
// echo never runs for it (its text never comes back), and both answer with
// the same status. (Requests that the middleware hands on unchanged, such
// as GET or DELETE without a session, get each SDK's own answer.)
func TestReviewBothProgramsAnswerAlike(t *testing.T) {
	type endpoint struct{ url, narrow, session string }
	var eps []endpoint
	for _, p := range programs {
		as := introspectiontest.NewServer()
		defer as.Close()
		prog := startProgram(t, p.pkg, []string{"-addr", "127.0.0.1:0"}, configuredEnv(as)...)
		iss := issuer{as: as, resource: prog.endpoint}
		narrow := iss.user("alice", ScopeTools)
		session := initialize(t, prog.endpoint, narrow)
		r := send(t, http.MethodPost, prog.endpoint, narrow, session, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
		require.Equal(t, http.StatusAccepted, r.status, r.body)
		eps = append(eps, endpoint{prog.endpoint, narrow, session})
	}
	const secret = "s3cr3t-echo"
	json := "application/json"
	for _, tc := range []struct {
		name, method, contentType, body string
		noSession                       bool
	}{
		{name: "echo", method: http.MethodPost, contentType: json,
			body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"` + secret + `"}}}`},
		{name: `"Name"`, method: http.MethodPost, contentType: json,
			body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"Name":"echo","arguments":{"text":"` + secret + `"}}}`},
		{name: `"name" then "NAME"`, method: http.MethodPost, contentType: json,
			body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","NAME":"echo","arguments":{"text":"` + secret + `"}}}`},
		{name: "duplicate name", method: http.MethodPost, contentType: json,
			body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","name":"echo","arguments":{"text":"` + secret + `"}}}`},
		{name: `escaped name`, method: http.MethodPost, contentType: json,
			body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"na\u006de":"\u0065cho","arguments":{"text":"` + secret + `"}}}`},
		{name: `"Method"`, method: http.MethodPost, contentType: json,
			body: `{"jsonrpc":"2.0","id":1,"Method":"tools/call","params":{"name":"echo","arguments":{"text":"` + secret + `"}}}`},
		{name: "echo as a notification", method: http.MethodPost, contentType: json,
			body: `{"jsonrpc":"2.0","method":"tools/call","params":{"name":"echo","arguments":{"text":"` + secret + `"}}}`},
		{name: "echo in a batch", method: http.MethodPost, contentType: json,
			body: `[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"` + secret + `"}}}]`},
		{name: "echo, Content-Type text/plain", method: http.MethodPost, contentType: "text/plain",
			body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"` + secret + `"}}}`},
		{name: "echo, no Content-Type", method: http.MethodPost,
			body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"` + secret + `"}}}`},
		{name: "echo, Content-Type with parameters", method: http.MethodPost, contentType: "Application/JSON; charset=utf-8",
			body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"` + secret + `"}}}`},
		{name: "echo outside a session", method: http.MethodPost, contentType: json, noSession: true,
			body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"` + secret + `"}}}`},
		{name: "whoami", method: http.MethodPost, contentType: json,
			body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`},
		{name: "ping", method: http.MethodPost, contentType: json, body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`},
		{name: "a notification", method: http.MethodPost, contentType: json,
			body: `{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}`},
		{name: "invalid JSON", method: http.MethodPost, contentType: json, body: `{"jsonrpc":"2.0","id":1,"method":`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var statuses []int
			for _, ep := range eps {
				session := ep.session
				if tc.noSession {
					session = ""
				}
				r := rawSend(t, tc.method, ep.url, tc.contentType, ep.narrow, session, tc.body)
				assert.NotContains(t, r.body, secret, "echo ran for a token without mcp:echo")
				statuses = append(statuses, r.status)
			}
			assert.Equal(t, statuses[0], statuses[1], "go-sdk, then mcp-go")
		})
	}
}
