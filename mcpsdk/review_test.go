package mcpsdk_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/mcpauth/introspection/mcpsdk"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFilterToolsHidesToolsOnEveryPage: with a page size, every page of
// tools/list, its nextCursor included, is free of the tools the caller's
// token cannot call. The go-sdk's cursor is the name of the page's last
// tool, in base64 gob: when FilterTools drops that tool from the page, the
// cursor still names it.
func TestFilterToolsHidesToolsOnEveryPage(t *testing.T) {
	hidden := []string{"admin", "echo"} // for a token with mcp:tools only
	tests := []struct {
		name     string
		pageSize int
	}{
		{"one tool a page", 1},
		{"two tools a page", 2},
		{"the default page size", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			server := mcp.NewServer(&mcp.Implementation{Name: "test", Version: "v1"}, &mcp.ServerOptions{PageSize: tc.pageSize})
			for _, name := range []string{"whoami", "echo", "admin"} {
				mcp.AddTool(server, &mcp.Tool{Name: name},
					func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
						return &mcp.CallToolResult{}, nil, nil
					})
			}
			server.AddReceivingMiddleware(mcpsdk.FilterTools(toolScopes, hierarchical))
			as, v := setup(t, nil)
			h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
			srv := httptest.NewServer(introspection.RequireBearerToken(v, nil)(mcpsdk.WithTokenInfo(h, nil)))
			t.Cleanup(srv.Close)
			token := as.Issue(introspectiontest.TokenOptions{Subject: "bob", Scopes: []string{"mcp:tools"}})

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cs, err := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "v1"}, nil).Connect(ctx,
				&mcp.StreamableClientTransport{Endpoint: srv.URL, HTTPClient: &http.Client{Transport: bearer{token}}, MaxRetries: -1}, nil)
			require.NoError(t, err)
			defer cs.Close()
			var listed []string
			params := &mcp.ListToolsParams{}
			for page := 0; ; page++ {
				require.Less(t, page, 10, "tools/list never ends")
				res, err := cs.ListTools(ctx, params)
				require.NoError(t, err)
				for _, tool := range res.Tools {
					listed = append(listed, tool.Name)
				}
				if res.NextCursor == "" {
					break
				}
				raw, err := base64.URLEncoding.DecodeString(res.NextCursor)
				require.NoError(t, err)
				for _, name := range hidden {
					assert.False(t, bytes.Contains(raw, []byte(name)), "page %d's nextCursor names the hidden tool %s", page, name)
				}
				params.Cursor = res.NextCursor
			}
			assert.Equal(t, []string{"whoami"}, listed)
		})
	}
}

// TestUsersOfOneClientAreNotOneUserID: an answer without sub but with a
// username is a user's token, not the client acting for itself; two users
// of one client do not share a session of the go-sdk.
func TestUsersOfOneClientAreNotOneUserID(t *testing.T) {
	as, v := setup(t, nil)
	url, calls := statefulServer(t, func(h http.Handler) http.Handler {
		return introspection.RequireBearerToken(v, nil)(mcpsdk.WithTokenInfo(h, nil))
	})
	alice := as.Issue(introspectiontest.TokenOptions{ClientID: "app", Username: "alice"})
	bob := as.Issue(introspectiontest.TokenOptions{ClientID: "app", Username: "bob"})
	status, session, body := rpc(t, url, alice, "", initializeBody)
	if status != http.StatusOK {
		// Refusing a token that names its user only by username is closed too.
		assert.Equal(t, http.StatusUnauthorized, status, body)
		return
	}
	require.NotEmpty(t, session)
	status, _, body = rpc(t, url, bob, session, whoamiBody)
	assert.NotEqual(t, http.StatusOK, status, "Bob was served in Alice's session: %s", body)
	assert.Zero(t, calls.Load(), "the tool ran for Bob in Alice's session")
}

// TestFilterToolsCopiesToolScopes: changing the map, or one of its
// slices, after FilterTools returns changes nothing it hides.
func TestFilterToolsCopiesToolScopes(t *testing.T) {
	scopes := map[string][]string{"echo": {"mcp:echo"}}
	server := newToolsServer(mcpsdk.FilterTools(scopes, hierarchical))
	scopes["echo"][0] = "mcp:tools"          // would show echo to a token with mcp:tools
	scopes["whoami"] = []string{"mcp:ghost"} // would hide whoami
	as, v := setup(t, nil)
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
	srv := httptest.NewServer(introspection.RequireBearerToken(v, nil)(mcpsdk.WithTokenInfo(h, nil)))
	t.Cleanup(srv.Close)
	res, err := listTools(t, srv.URL, as.Issue(introspectiontest.TokenOptions{Subject: "bob", Scopes: []string{"mcp:tools"}}))
	require.NoError(t, err)
	assert.Equal(t, []string{"admin", "whoami"}, toolNames(res))
}
