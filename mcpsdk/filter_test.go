package mcpsdk_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/mcpauth/introspection/mcpsdk"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// toolScopes is what each test tool needs beyond the server-wide scope.
var toolScopes = map[string][]string{
	"echo":   {"mcp:echo"},
	"admin":  {"mcp:admin", "mcp:echo"},
	"whoami": {},            // listed with no scopes: shown to everyone
	"ghost":  {"mcp:ghost"}, // no such tool
}

// hierarchical is a check under which a scope implies the scopes that
// extend it by ":" and more parts.
func hierarchical(t *introspection.AccessToken, scopes ...string) error {
	for _, required := range scopes {
		if !slices.ContainsFunc(t.Scopes, func(g string) bool { return g == required || strings.HasPrefix(required, g+":") }) {
			return introspection.ErrInsufficientScope
		}
	}
	return nil
}

// listTools lists the tools of the MCP server at endpoint with token, or
// without one when token is empty.
func listTools(t *testing.T, endpoint, token string) (*mcp.ListToolsResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	httpClient := http.DefaultClient
	if token != "" {
		httpClient = &http.Client{Transport: bearer{token}}
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "v1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: httpClient, MaxRetries: -1}, nil)
	if err != nil {
		return nil, err
	}
	defer cs.Close()
	return cs.ListTools(ctx, nil)
}

func toolNames(res *mcp.ListToolsResult) []string {
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}

// newToolsServer returns an MCP server with the tools whoami, echo and
// admin, and middleware added in that order.
func newToolsServer(middleware ...mcp.Middleware) *mcp.Server {
	server := mcp.NewServer(&mcp.Implementation{Name: "test", Version: "v1"}, nil)
	for _, name := range []string{"whoami", "echo", "admin"} {
		mcp.AddTool(server, &mcp.Tool{Name: name},
			func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
				return &mcp.CallToolResult{}, nil, nil
			})
	}
	server.AddReceivingMiddleware(middleware...)
	return server
}

// TestFilterToolsHidesToolsTheTokenCannotCall checks that tools/list shows
// a tool of toolScopes only when check accepts the caller's token for the
// tool's scopes, passes on the scopes of toolScopes, shows tools without
// scopes to everyone, and marks the filtered list private.
func TestFilterToolsHidesToolsTheTokenCannotCall(t *testing.T) {
	cases := []struct {
		name   string
		scopes []string
		exact  bool // a nil check
		want   []string
	}{
		{"server-wide scope only", []string{"mcp:tools"}, false, []string{"whoami"}},
		{"one tool's scope", []string{"mcp:tools", "mcp:echo"}, false, []string{"echo", "whoami"}},
		{"every tool's scopes", []string{"mcp:tools", "mcp:echo", "mcp:admin"}, false, []string{"admin", "echo", "whoami"}},
		{"a part of admin's scopes", []string{"mcp:tools", "mcp:admin"}, false, []string{"whoami"}},
		{"a broader scope under a hierarchy", []string{"mcp"}, false, []string{"admin", "echo", "whoami"}},
		{"a broader scope, nil check: exact", []string{"mcp"}, true, []string{"whoami"}},
		{"every tool's scopes, nil check", []string{"mcp:echo", "mcp:admin"}, true, []string{"admin", "echo", "whoami"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var asked [][]string // the scopes check was asked about
			check := func(tok *introspection.AccessToken, scopes ...string) error {
				mu.Lock()
				asked = append(asked, slices.Clone(scopes))
				mu.Unlock()
				assert.Equal(t, "alice", tok.Subject, "check gets the caller's token")
				return hierarchical(tok, scopes...)
			}
			if tc.exact {
				check = nil
			}
			server := newToolsServer(mcpsdk.FilterTools(toolScopes, check))
			as, v := setup(t, nil)
			h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
			srv := httptest.NewServer(introspection.RequireBearerToken(v, nil)(mcpsdk.WithTokenInfo(h, nil)))
			t.Cleanup(srv.Close)

			res, err := listTools(t, srv.URL, as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: tc.scopes}))
			require.NoError(t, err)
			assert.Equal(t, tc.want, toolNames(res))
			assert.Equal(t, "private", res.CacheScope, "the list differs between callers")
			if !tc.exact {
				mu.Lock()
				defer mu.Unlock()
				assert.ElementsMatch(t, [][]string{{"mcp:echo"}, {"mcp:admin", "mcp:echo"}}, asked,
					"check is asked once per listed tool with scopes, with the tool's scopes")
			}
		})
	}
}

// TestFilterToolsWithoutToken checks that a tools/list request that
// carries no token from this package sees only the tools without scopes,
// that hiding a tool refuses no call of it (the middleware in front does),
// and that FilterTools with no tool scopes leaves the list as the SDK made
// it.
func TestFilterToolsWithoutToken(t *testing.T) {
	serve := func(server *mcp.Server) string {
		h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	url := serve(newToolsServer(mcpsdk.FilterTools(toolScopes, hierarchical)))
	res, err := listTools(t, url, "")
	require.NoError(t, err)
	assert.Equal(t, []string{"whoami"}, toolNames(res))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "v1"}, nil).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, MaxRetries: -1}, nil)
	require.NoError(t, err)
	defer cs.Close()
	called, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo"})
	require.NoError(t, err, "FilterTools only hides")
	assert.False(t, called.IsError)

	res, err = listTools(t, serve(newToolsServer(mcpsdk.FilterTools(nil, hierarchical))), "")
	require.NoError(t, err)
	assert.Equal(t, []string{"admin", "echo", "whoami"}, toolNames(res))
	assert.Equal(t, "public", res.CacheScope, "an unfiltered list keeps the SDK's cacheScope")
}

// TestFilterToolsFailsClosedOnUnknownResult checks that a tools/list
// result of another type than the SDK's, which FilterTools cannot filter,
// is answered with an error rather than passed on.
func TestFilterToolsFailsClosedOnUnknownResult(t *testing.T) {
	other := func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method == "tools/list" {
				return &mcp.CallToolResult{}, nil
			}
			return next(ctx, method, req)
		}
	}
	server := newToolsServer(mcpsdk.FilterTools(toolScopes, hierarchical), other)
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil))
	t.Cleanup(srv.Close)
	res, err := listTools(t, srv.URL, "")
	assert.Error(t, err)
	assert.Nil(t, res)
}
