package mcpgo_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/mcpauth/introspection/mcpgo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scopedMetadataURL is the resource_metadata of the scoped stack.
const scopedMetadataURL = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"

// newScopedStack is the wiring the package doc shows, with per-tool scopes:
// every request needs mcp:tools, a call of echo mcp:echo as well, under the
// a:b:c hierarchy. It counts the runs of each tool.
func newScopedStack(t *testing.T) (*stack, map[string]*atomic.Int64) {
	t.Helper()
	st := &stack{as: introspectiontest.NewServer()}
	t.Cleanup(st.as.Close)
	matcher, err := introspection.HierarchicalScopes(":")
	require.NoError(t, err)
	v, err := introspection.NewVerifier(introspection.Settings{
		IntrospectionURL: st.as.IntrospectionURL,
		ClientID:         introspectiontest.ClientID,
		ClientSecret:     introspectiontest.ClientSecret,
		RequiredScopes:   []string{"mcp:tools"},
		ScopeMatcher:     matcher,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	op, err := introspection.MCPOperation(introspection.MCPScopes{
		Tools: map[string][]string{"echo": {"mcp:echo"}},
	})
	require.NoError(t, err)

	runs := map[string]*atomic.Int64{"whoami": new(atomic.Int64), "echo": new(atomic.Int64)}
	s := server.NewMCPServer("test", "v1")
	for name, n := range runs {
		s.AddTool(mcp.NewTool(name), func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			n.Add(1)
			user, _ := mcpgo.UserID(ctx)
			return mcp.NewToolResultText(user), nil
		})
	}
	h := server.NewStreamableHTTPServer(s)
	t.Cleanup(func() { _ = h.Shutdown(context.Background()) })
	ts := httptest.NewServer(introspection.RequireBearerToken(v, &introspection.MiddlewareOptions{
		ResourceMetadataURL: scopedMetadataURL,
		Operation:           op,
	})(mcpgo.WithCaller(h, nil)))
	t.Cleanup(ts.Close)
	st.url = ts.URL + "/mcp"
	return st, runs
}

func TestPerToolScopesThroughMCPGo(t *testing.T) {
	echoChallenge := map[string]string{
		"error":             "insufficient_scope",
		"scope":             "mcp:tools mcp:echo",
		"resource_metadata": scopedMetadataURL,
		"error_description": "tool 'echo' needs mcp:tools mcp:echo",
	}
	tests := []struct {
		name   string
		scopes []string
		// status of a call of whoami and of echo; 0 where initialize is
		// already refused.
		whoami, echo  int
		echoChallenge map[string]string
	}{
		{"the broad scope implies both", []string{"mcp"}, 200, 200, nil},
		{"the server-wide scope alone: echo gets one challenge with both scopes", []string{"mcp:tools"}, 200, 403, echoChallenge},
		{"both scopes", []string{"mcp:tools", "mcp:echo"}, 200, 200, nil},
		{"the tool's scope alone is refused everywhere", []string{"mcp:echo"}, 0, 0, nil},
		{"a narrower scope never implies a broader one", []string{"mcp:tools:read"}, 0, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, runs := newScopedStack(t)
			token := st.as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: tc.scopes})
			if tc.whoami == 0 {
				r := st.send(t, http.MethodPost, token, "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{`+
					`"protocolVersion":"`+legacyVersion+`","capabilities":{},"clientInfo":{"name":"test","version":"v1"}}}`)
				assert.Equal(t, http.StatusForbidden, r.Status)
				c := challenge(r.Header.Get("WWW-Authenticate"))
				assert.Equal(t, "insufficient_scope", c["error"])
				assert.Equal(t, "mcp:tools", c["scope"])
				assert.Zero(t, runs["whoami"].Load()+runs["echo"].Load())
				return
			}
			sid := st.initialize(t, token)
			for _, call := range []struct {
				tool      string
				status    int
				challenge map[string]string
			}{{"whoami", tc.whoami, nil}, {"echo", tc.echo, tc.echoChallenge}} {
				before := runs[call.tool].Load()
				r := st.send(t, http.MethodPost, token, sid,
					`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"`+call.tool+`","arguments":{}}}`)
				assert.Equal(t, call.status, r.Status, "%s: %s", call.tool, r.Body)
				assert.Equal(t, call.challenge, challenge(r.Header.Get("WWW-Authenticate")), call.tool)
				want := before
				if call.status == http.StatusOK {
					want++
					assert.Contains(t, r.Body, `"text":"alice"`)
				}
				assert.Equal(t, want, runs[call.tool].Load(), call.tool)
			}
		})
	}
}

// challengeAttr is one auth-param of an RFC 6750 challenge.
var challengeAttr = regexp.MustCompile(`([a-z_]+)="([^"]*)"`)

// challenge returns the auth-params of a Bearer challenge, nil for none.
func challenge(h string) map[string]string {
	if h == "" {
		return nil
	}
	m := map[string]string{}
	for _, a := range challengeAttr.FindAllStringSubmatch(h, -1) {
		m[a[1]] = a[2]
	}
	return m
}

// TestScopesAndSessionsTogether checks that a token with every scope still
// cannot use another caller's session, and that the per-tool check holds on
// the caller's own session.
func TestScopesAndSessionsTogether(t *testing.T) {
	st, runs := newScopedStack(t)
	alice := st.as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{"mcp:tools"}})
	bob := st.as.Issue(introspectiontest.TokenOptions{Subject: "bob", Scopes: []string{"mcp"}})
	sid := st.initialize(t, alice)
	r := st.send(t, http.MethodPost, bob, sid, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{}}}`)
	assertMismatch(t, r)
	r = st.send(t, http.MethodPost, alice, sid, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{}}}`)
	assert.Equal(t, http.StatusForbidden, r.Status)
	assert.Equal(t, "insufficient_scope", challenge(r.Header.Get("WWW-Authenticate"))["error"])
	// In a batch, too.
	r = st.send(t, http.MethodPost, alice, sid, `[{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}},`+
		`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{}}}]`)
	assert.Equal(t, http.StatusForbidden, r.Status)
	assert.Equal(t, "mcp:tools mcp:echo", challenge(r.Header.Get("WWW-Authenticate"))["scope"])
	assert.Zero(t, runs["echo"].Load())
}

// TestBodiesTheSDKAnswersPassAsWithoutUs sends what the peek hands on to
// mcp-go, through the whole stack and to mcp-go alone, and compares.
func TestBodiesTheSDKAnswersPassAsWithoutUs(t *testing.T) {
	st, _ := newScopedStack(t)
	token := st.as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{"mcp"}})
	sid := st.initialize(t, token)

	bare := &stack{as: st.as}
	h := server.NewStreamableHTTPServer(server.NewMCPServer("test", "v1"))
	t.Cleanup(func() { _ = h.Shutdown(context.Background()) })
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	bare.url = ts.URL + "/mcp"
	bareSid := bare.initialize(t, "")

	for _, body := range []string{
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":`, // not JSON
		`not json at all`,
		`[{"jsonrpc":"2.0","id":2,"method":"ping"},{"jsonrpc":"2.0","id":3,"method":"ping"}]`, // a batch
		`[]`,
	} {
		t.Run(body, func(t *testing.T) {
			got := st.send(t, http.MethodPost, token, sid, body)
			want := bare.send(t, http.MethodPost, "", bareSid, body)
			assert.Equal(t, want.Status, got.Status)
			assert.Equal(t, strings.TrimSpace(want.Body), strings.TrimSpace(got.Body))
		})
	}
}
