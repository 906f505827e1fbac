package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testTimeout bounds the MCP calls of one test.
const testTimeout = 30 * time.Second

// assertInsufficientScope checks a 403 to a Bearer request, DPoP being
// allowed: a Bearer challenge that says insufficient_scope, names every
// scope in scope, the metadata URL and, when tool is set, the tool; then a
// DPoP challenge without error that names the same scopes.
func assertInsufficientScope(t *testing.T, r reply, scope, tool, metadataURL string) {
	t.Helper()
	require.Equal(t, http.StatusForbidden, r.status, r.body)
	require.Len(t, r.challenge, 2, "a Bearer and a DPoP challenge")
	c := r.challenge[0]
	assert.True(t, strings.HasPrefix(c, "Bearer "), c)
	assert.Contains(t, c, `error="insufficient_scope"`)
	assert.Contains(t, c, `scope="`+scope+`"`)
	assert.Contains(t, c, `resource_metadata="`+metadataURL+`"`)
	if tool != "" {
		assert.Contains(t, c, `error_description="tool '`+tool+`'`)
	}
	assert.Equal(t, `DPoP realm="mcp", scope="`+scope+`", resource_metadata="`+metadataURL+`", `+dpopAlgs, r.challenge[1],
		"the error goes on the scheme the request used")
}

// PerToolScopes checks who may call which tool: every request needs
// mcp:tools, a call of echo needs mcp:echo too, and a broader scope implies
// the narrower ones under the a:b:c hierarchy, never the reverse. A call
// refused for a tool's scope gets one challenge that names every scope the
// call needs.
func PerToolScopes(t *testing.T, ex Example) {
	srv, iss := startConfigured(t, ex)
	metadataURL, err := introspection.MetadataURL(srv.endpoint)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	for _, tc := range []struct {
		name         string
		scopes       []string
		whoami, echo bool // whether the token may call them
	}{
		{"mcp:tools calls whoami, not echo", []string{ScopeTools}, true, false},
		{"mcp:tools and mcp:echo call both", []string{ScopeTools, ScopeEcho}, true, true},
		{"mcp implies both", []string{"mcp"}, true, true},
		{"mcp:echo alone calls nothing", []string{ScopeEcho}, false, false},
		{"mcp:tools:x, narrower than mcp:tools, calls nothing", []string{"mcp:tools:x", ScopeEcho}, false, false},
		{"mcpx is no part of mcp", []string{"mcpx"}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			token := iss.user("alice", tc.scopes...)
			if !tc.whoami {
				// Refused before any session: every request, whatever it asks.
				for _, req := range []struct{ method, body, scope, tool string }{
					{http.MethodPost, initializeRequest, ScopeTools, ""},
					{http.MethodPost, whoamiRequest, ScopeTools, ""},
					{http.MethodPost, echoRequest, ScopeTools + " " + ScopeEcho, "echo"},
					{http.MethodPost, listRequest, ScopeTools, ""},
					{http.MethodGet, "", ScopeTools, ""},
					{http.MethodDelete, "", ScopeTools, ""},
				} {
					r := send(t, req.method, srv.endpoint, token, "", req.body)
					assertInsufficientScope(t, r, req.scope, req.tool, metadataURL)
				}
				return
			}
			cs, err := Connect(ctx, srv.endpoint, token)
			require.NoError(t, err)
			defer cs.Close()
			c, err := CallWhoami(ctx, cs)
			require.NoError(t, err)
			assert.Equal(t, tc.scopes, c.Scopes)
			if tc.echo {
				said, err := CallEcho(ctx, cs, "hi")
				require.NoError(t, err)
				assert.Equal(t, "hi", said)
				return
			}
			r := send(t, http.MethodPost, srv.endpoint, token, cs.ID(), echoRequest)
			assertInsufficientScope(t, r, ScopeTools+" "+ScopeEcho, "echo", metadataURL)
			_, err = CallWhoami(ctx, cs)
			assert.NoError(t, err, "the session goes on")
			_, err = CallEcho(ctx, cs, "hi")
			assert.Error(t, err, "the client's call of echo fails")
			_, err = CallWhoami(ctx, cs)
			assert.Error(t, err, "and the go-sdk's client ends its session on the 403")
		})
	}
}

// ToolsListShowsOnlyCallableTools checks that tools/list hides echo from a
// token that cannot call it.
func ToolsListShowsOnlyCallableTools(t *testing.T, ex Example) {
	srv, iss := startConfigured(t, ex)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for _, tc := range []struct {
		scopes []string
		listed []string
	}{
		{[]string{ScopeTools}, []string{"whoami"}},
		{[]string{ScopeTools, ScopeEcho}, []string{"echo", "whoami"}},
		{[]string{"mcp"}, []string{"echo", "whoami"}},
	} {
		t.Run(strings.Join(tc.scopes, " "), func(t *testing.T) {
			cs, err := Connect(ctx, srv.endpoint, iss.user("alice", tc.scopes...))
			require.NoError(t, err)
			defer cs.Close()
			names, err := ToolNames(ctx, cs)
			require.NoError(t, err)
			assert.Equal(t, tc.listed, names)
		})
	}
}

// MachineClient checks that a client-credentials token, which has no sub,
// is served with the client id as its user id.
func MachineClient(t *testing.T, ex Example) {
	srv, iss := startConfigured(t, ex)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, err := Whoami(ctx, srv.endpoint, iss.machine("robot", ScopeTools))
	require.NoError(t, err)
	assert.Equal(t, Caller{UserID: "robot", ClientID: "robot", Scopes: []string{ScopeTools}}, c)
}

// SessionsServeOnlyTheirCaller checks that a session serves only the caller who
// opened it: another user's token, or a machine client's, on its
// Mcp-Session-Id gets 403 and the tool never runs.
func SessionsServeOnlyTheirCaller(t *testing.T, ex Example) {
	srv, iss := startConfigured(t, ex)
	alice := iss.user("alice", ScopeTools)
	session := initialize(t, srv.endpoint, alice)
	for _, tc := range []struct {
		name   string
		token  string
		status int
	}{
		{"the caller who opened it", alice, http.StatusOK},
		{"the same caller with another token", iss.user("alice", "mcp"), http.StatusOK},
		{"another user", iss.user("bob", "mcp"), http.StatusForbidden},
		{"a machine client", iss.machine("robot", "mcp"), http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := send(t, http.MethodPost, srv.endpoint, tc.token, session, whoamiRequest)
			assert.Equal(t, tc.status, r.status, r.body)
			if tc.status == http.StatusOK {
				assert.Contains(t, r.body, `"user_id":"alice"`)
			} else {
				assert.NotContains(t, r.body, `user_id`)
			}
		})
	}
}
