package mcpsdk_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/mcpauth/introspection/mcpsdk"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// statefulServer serves a stateful MCP server, whose sessions the SDK binds
// to TokenInfo.UserID, behind protect. calls counts the runs of its whoami
// tool.
func statefulServer(t *testing.T, protect func(http.Handler) http.Handler) (url string, calls *atomic.Int64) {
	t.Helper()
	calls = new(atomic.Int64)
	server := mcp.NewServer(&mcp.Implementation{Name: "test", Version: "v1"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "whoami"},
		func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			calls.Add(1)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: req.Extra.TokenInfo.UserID}}}, nil, nil
		})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server },
		&mcp.StreamableHTTPOptions{JSONResponse: true})
	srv := httptest.NewServer(protect(h))
	t.Cleanup(srv.Close)
	return srv.URL, calls
}

// rpc posts a JSON-RPC message with token, on session if it is not empty,
// and returns the status, the Mcp-Session-Id of the answer and its body.
func rpc(t *testing.T, url, token, session, body string) (status int, sessionID, answer string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header.Get("Mcp-Session-Id"), string(b)
}

const (
	initializeBody  = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}`
	initializedBody = `{"jsonrpc":"2.0","method":"notifications/initialized"}`
	whoamiBody      = `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`
)

// openSession initializes a session with token and returns its id.
func openSession(t *testing.T, url, token string) string {
	t.Helper()
	status, session, body := rpc(t, url, token, "", initializeBody)
	require.Equal(t, http.StatusOK, status, body)
	require.NotEmpty(t, session, "the handler is stateful")
	status, _, body = rpc(t, url, token, session, initializedBody)
	require.Equal(t, http.StatusAccepted, status, body)
	return session
}

// TestSessionBoundToCaller checks that the go-sdk binds each session to the
// caller that opened it when wired as the package doc shows: another
// caller's token on its Mcp-Session-Id gets the SDK's 403 "session user
// mismatch" and the tool never runs, while the owner's next call is served.
// Machine clients (client-credentials tokens without sub) are told apart by
// their client id, and with Options.UserIDWithIssuer the same subject from
// two issuers is two callers.
func TestSessionBoundToCaller(t *testing.T) {
	cases := []struct {
		name         string
		opts         *mcpsdk.Options
		owner, other introspectiontest.TokenOptions
		want         int
	}{
		{
			name:  "another user",
			owner: introspectiontest.TokenOptions{Subject: "alice"},
			other: introspectiontest.TokenOptions{Subject: "bob"},
			want:  http.StatusForbidden,
		},
		{
			name:  "another machine client",
			owner: introspectiontest.TokenOptions{ClientID: "billing-job"},
			other: introspectiontest.TokenOptions{ClientID: "report-job"},
			want:  http.StatusForbidden,
		},
		{
			name:  "the same subject from another issuer, with UserIDWithIssuer",
			opts:  &mcpsdk.Options{UserIDWithIssuer: true},
			owner: introspectiontest.TokenOptions{Subject: "alice"},
			other: introspectiontest.TokenOptions{Subject: "alice", Extra: map[string]any{"iss": "https://other.example"}},
			want:  http.StatusForbidden,
		},
		{
			name:  "the same subject from another issuer, without UserIDWithIssuer",
			owner: introspectiontest.TokenOptions{Subject: "alice"},
			other: introspectiontest.TokenOptions{Subject: "alice", Extra: map[string]any{"iss": "https://other.example"}},
			want:  http.StatusOK,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			as, v := setup(t, []string{"mcp:tools"})
			url, calls := statefulServer(t, func(h http.Handler) http.Handler {
				return introspection.RequireBearerToken(v, nil)(mcpsdk.WithTokenInfo(h, tc.opts))
			})
			tc.owner.Scopes = []string{"mcp:tools"}
			tc.other.Scopes = []string{"mcp:tools"}
			owner, other := as.Issue(tc.owner), as.Issue(tc.other)
			session := openSession(t, url, owner)

			status, _, body := rpc(t, url, other, session, whoamiBody)
			assert.Equal(t, tc.want, status, body)
			if tc.want == http.StatusForbidden {
				assert.Equal(t, "session user mismatch\n", body, "the SDK's own answer")
				assert.Zero(t, calls.Load(), "the tool never runs for another caller")
			}

			before := calls.Load()
			status, _, body = rpc(t, url, owner, session, whoamiBody)
			assert.Equal(t, http.StatusOK, status, body)
			assert.Equal(t, before+1, calls.Load(), "the owner is served")
		})
	}
}

// TestTokenInfoUserIDIsCaller checks the UserID that tools and the SDK's
// session binding see: the token's subject, else (a client-credentials
// token) its client id, or with Options.UserIDWithIssuer the issuer, "|"
// and that; a token that names no caller, and with UserIDWithIssuer one
// without iss or whose iss holds "|", gets 401, since a session cannot be
// bound to nobody. TokenVerifier follows the same rule without the option.
func TestTokenInfoUserIDIsCaller(t *testing.T) {
	noCaller := introspectiontest.TokenOptions{Extra: map[string]any{"client_id": nil}}
	machine := introspectiontest.TokenOptions{ClientID: "billing-job"}
	user := introspectiontest.TokenOptions{Subject: "alice", ClientID: "app"}
	noIssuer := introspectiontest.TokenOptions{Subject: "alice", Extra: map[string]any{"iss": nil}}
	pipeIssuer := introspectiontest.TokenOptions{Subject: "alice", Extra: map[string]any{"iss": "https://as.example|x"}}
	withIssuer := &mcpsdk.Options{UserIDWithIssuer: true}
	const issuer = "{issuer}|" // replaced by the test server's issuer and "|"

	cases := []struct {
		name  string
		token introspectiontest.TokenOptions
		opts  *mcpsdk.Options
		// want is the UserID, or "" for 401.
		want string
		// sdk says whether the case runs through TokenVerifier too.
		sdk bool
	}{
		{"user", user, nil, "alice", true},
		{"machine client", machine, nil, "billing-job", true},
		{"no sub and no client_id", noCaller, nil, "", true},
		{"no iss", noIssuer, nil, "alice", true},
		{"user with issuer", user, withIssuer, issuer + "alice", false},
		{"machine client with issuer", machine, withIssuer, issuer + "billing-job", false},
		{"no caller with issuer", noCaller, withIssuer, "", false},
		{"no iss with issuer", noIssuer, withIssuer, "", false},
		{`iss with "|" with issuer`, pipeIssuer, withIssuer, "", false},
	}
	for _, tc := range cases {
		wirings := map[string]func(v *introspection.Verifier) func(http.Handler) http.Handler{
			"WithTokenInfo": func(v *introspection.Verifier) func(http.Handler) http.Handler {
				return func(h http.Handler) http.Handler {
					return introspection.RequireBearerToken(v, nil)(mcpsdk.WithTokenInfo(h, tc.opts))
				}
			},
		}
		if tc.sdk {
			wirings["TokenVerifier"] = func(v *introspection.Verifier) func(http.Handler) http.Handler {
				return auth.RequireBearerToken(mcpsdk.TokenVerifier(v), nil)
			}
		}
		for name, wire := range wirings {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				as, v := setup(t, nil)
				var reached atomic.Int64
				var userID atomic.Value
				srv := httptest.NewServer(wire(v)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					reached.Add(1)
					if info := auth.TokenInfoFromContext(r.Context()); info != nil {
						userID.Store(info.UserID)
					}
				})))
				t.Cleanup(srv.Close)
				resp := post(t, srv.URL, as.Issue(tc.token))
				if tc.want == "" {
					assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
					assert.Zero(t, reached.Load(), "the handler is never reached")
					if name == "WithTokenInfo" {
						assert.Equal(t, `Bearer error="invalid_token"`, resp.Header.Get("WWW-Authenticate"))
					}
					return
				}
				require.Equal(t, http.StatusOK, resp.StatusCode)
				assert.Equal(t, strings.Replace(tc.want, issuer, as.Issuer+"|", 1), userID.Load())
			})
		}
	}
}
