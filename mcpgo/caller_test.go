package mcpgo_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/server"
	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/mcpauth/introspection/mcpgo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestUserIDIsTheCaller(t *testing.T) {
	tests := []struct {
		name       string
		withIssuer bool
		token      introspectiontest.TokenOptions
		want       string // the user id; empty for 401 invalid_token
	}{
		{"a user's token: its subject", false,
			introspectiontest.TokenOptions{Subject: "alice", ClientID: "app"}, "alice"},
		{"a machine client's token without sub: its client id", false,
			introspectiontest.TokenOptions{ClientID: "robot"}, "robot"},
		{"opt-in issuer: iss|sub", true,
			introspectiontest.TokenOptions{Subject: "alice"}, "{iss}|alice"},
		{"opt-in issuer, machine client: iss|client_id", true,
			introspectiontest.TokenOptions{ClientID: "robot"}, "{iss}|robot"},
		{"a token that names no caller", false,
			introspectiontest.TokenOptions{Extra: map[string]any{"client_id": nil}}, ""},
		{"a token whose client_id is empty", false,
			introspectiontest.TokenOptions{Extra: map[string]any{"client_id": ""}}, ""},
		{"opt-in issuer, a token without iss", true,
			introspectiontest.TokenOptions{Subject: "alice", Extra: map[string]any{"iss": nil}}, ""},
		{"opt-in issuer, a token with an empty iss", true,
			introspectiontest.TokenOptions{Subject: "alice", Extra: map[string]any{"iss": ""}}, ""},
		{"opt-in issuer, an iss with the separator in it", true,
			introspectiontest.TokenOptions{Subject: "alice", Extra: map[string]any{"iss": "https://a.example|b"}}, ""},
		{"without the option, a token without iss", false,
			introspectiontest.TokenOptions{Subject: "alice", Extra: map[string]any{"iss": nil}}, "alice"},
	}
	for _, tc := range tests {
		for _, mode := range []struct {
			name string
			opts []server.StreamableHTTPOption
		}{{"stateful", []server.StreamableHTTPOption{server.WithStateful(true)}}, {"stateless", []server.StreamableHTTPOption{server.WithStateLess(true)}}} {
			t.Run(tc.name+"/"+mode.name, func(t *testing.T) {
				st := newStack(t, &mcpgo.Options{UserIDWithIssuer: tc.withIssuer}, mode.opts...)
				token := st.as.Issue(tc.token)
				if tc.want == "" {
					r := st.send(t, http.MethodPost, token, "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{`+
						`"protocolVersion":"`+legacyVersion+`","capabilities":{},"clientInfo":{"name":"test","version":"v1"}}}`)
					assertInvalidToken(t, r)
					r, _ = st.whoami(t, token, "")
					assertInvalidToken(t, r)
					assert.Zero(t, st.calls.Load())
					return
				}
				want := tc.want
				if tc.withIssuer {
					want = st.as.Issuer + want[len("{iss}"):]
				}
				sid := st.initialize(t, token)
				r, text := st.whoami(t, token, sid)
				require.Equal(t, http.StatusOK, r.Status, r.Body)
				assert.Equal(t, want, text)
				run := st.lastRun(t)
				assert.True(t, run.HasUser)
				assert.Equal(t, want, run.User)
				assert.Equal(t, want[strings.LastIndexByte(want, '|')+1:], run.Caller, "the token is not in the context")
			})
		}
	}
}

// assertInvalidToken checks that r refuses the token as naming no caller.
func assertInvalidToken(t *testing.T, r reply) {
	t.Helper()
	assert.Equal(t, http.StatusUnauthorized, r.Status)
	assert.Equal(t, `Bearer error="invalid_token"`, r.Header.Get("WWW-Authenticate"))
	assert.JSONEq(t, `{"error":"invalid_token"}`, r.Body)
	assert.Empty(t, r.Session)
}

func TestUserIDWithIssuerTellsIssuersApart(t *testing.T) {
	st := newStack(t, &mcpgo.Options{UserIDWithIssuer: true})
	token := st.token("alice")
	sid := st.initialize(t, token)
	// The same subject from another issuer is another user.
	other := st.as.Issue(introspectiontest.TokenOptions{Subject: "alice", Extra: map[string]any{"iss": "https://other.example"}})
	r, _ := st.whoami(t, other, sid)
	assertMismatch(t, r)
	r, text := st.whoami(t, token, sid)
	require.Equal(t, http.StatusOK, r.Status, r.Body)
	assert.Equal(t, st.as.Issuer+"|alice", text)
}

func TestUserIDOutsideWithCaller(t *testing.T) {
	id, ok := mcpgo.UserID(context.Background())
	assert.False(t, ok)
	assert.Empty(t, id)
	// The token alone, as introspection.RequireBearerToken leaves it, is
	// not a user id: only WithCaller makes one.
	ctx := introspection.ContextWithAccessToken(context.Background(), &introspection.AccessToken{Subject: "alice"})
	_, ok = mcpgo.UserID(ctx)
	assert.False(t, ok)
}

func TestRequestWithoutTokenIsRefused(t *testing.T) {
	var reached int
	h := mcpgo.WithCaller(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached++ }), nil)
	tests := []struct {
		name   string
		header http.Header
	}{
		{"no token in the context", http.Header{}},
		{"a bearer token that no middleware checked", http.Header{"Authorization": {"Bearer abc"}}},
		{"OPTIONS without the preflight headers", http.Header{"Origin": {"https://app.example"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodOptions, "/mcp", nil)
			req.Header = tc.header
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			assert.Equal(t, http.StatusUnauthorized, rec.Code)
			assert.Equal(t, `Bearer error="invalid_token"`, rec.Header().Get("WWW-Authenticate"))
			assert.JSONEq(t, `{"error":"invalid_token"}`, rec.Body.String())
		})
	}
	assert.Zero(t, reached)
}

func TestPreflightReachesTheHandlerUnchanged(t *testing.T) {
	var got *http.Request
	h := mcpgo.WithCaller(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		w.WriteHeader(http.StatusNoContent)
	}), nil)
	req := httptest.NewRequest(http.MethodOptions, "/mcp", nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusNoContent, rec.Code)
	require.NotNil(t, got)
	assert.Same(t, req, got)
}
