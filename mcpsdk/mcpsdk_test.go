package mcpsdk_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/mcpauth/introspection/mcpsdk"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type caller struct {
	Subject  string   `json:"subject"`
	ClientID string   `json:"client_id"`
	Scopes   []string `json:"scopes"`
	HasToken bool     `json:"has_token"`
}

// newMCPServer serves an MCP server with a whoami tool behind protect.
func newMCPServer(t *testing.T, protect func(http.Handler) http.Handler) *httptest.Server {
	t.Helper()
	server := mcp.NewServer(&mcp.Implementation{Name: "test", Version: "v1"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "whoami", Description: "reports the caller"},
		func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, caller, error) {
			info := req.Extra.TokenInfo
			tok, ok := mcpsdk.AccessTokenFromInfo(info)
			if info == nil || !ok {
				return nil, caller{}, io.ErrUnexpectedEOF
			}
			return nil, caller{Subject: info.UserID, ClientID: tok.ClientID, Scopes: info.Scopes, HasToken: tok.Token != ""}, nil
		})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
	srv := httptest.NewServer(protect(h))
	t.Cleanup(srv.Close)
	return srv
}

type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

func callWhoami(t *testing.T, endpoint, token string) (caller, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "v1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint: endpoint, HTTPClient: &http.Client{Transport: bearer{token}}, MaxRetries: -1,
	}, nil)
	if err != nil {
		return caller{}, err
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami"})
	if err != nil {
		return caller{}, err
	}
	require.False(t, res.IsError, "%v", res.Content)
	var c caller
	b, err := json.Marshal(res.StructuredContent)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &c))
	return c, nil
}

func post(t *testing.T, url, token string) *http.Response {
	t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}`
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func setup(t *testing.T, required []string) (*introspectiontest.Server, *introspection.Verifier) {
	t.Helper()
	as := introspectiontest.NewServer()
	t.Cleanup(as.Close)
	v, err := introspection.NewVerifier(introspection.Settings{
		IntrospectionURL: as.IntrospectionURL,
		ClientID:         introspectiontest.ClientID,
		ClientSecret:     introspectiontest.ClientSecret,
		RequiredScopes:   required,
		Timeout:          time.Second,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	return as, v
}

// TestThroughSDKMiddleware runs a real MCP client through the SDK's own
// middleware with TokenVerifier, the scope named in the SDK's options.
func TestThroughSDKMiddleware(t *testing.T) {
	const md = "http://127.0.0.1/.well-known/oauth-protected-resource/mcp"
	as, v := setup(t, nil)
	srv := newMCPServer(t, auth.RequireBearerToken(mcpsdk.TokenVerifier(v), &auth.RequireBearerTokenOptions{
		ResourceMetadataURL: md, Scopes: []string{"mcp:tools"},
	}))
	good := as.Issue(introspectiontest.TokenOptions{Subject: "alice", ClientID: "app", Scopes: []string{"mcp:tools", "profile"}})
	noScope := as.Issue(introspectiontest.TokenOptions{Subject: "bob", Scopes: []string{"profile"}})

	c, err := callWhoami(t, srv.URL, good)
	require.NoError(t, err)
	assert.Equal(t, caller{Subject: "alice", ClientID: "app", Scopes: []string{"mcp:tools", "profile"}}, c,
		"the tool sees the caller, and not the bearer token")

	resp := post(t, srv.URL, "")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `resource_metadata="`+md+`"`)
	assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `scope="mcp:tools"`)

	resp = post(t, srv.URL, "unknown-token")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	resp = post(t, srv.URL, noScope)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)

	_, err = callWhoami(t, srv.URL, noScope)
	assert.Error(t, err, "a real client is refused too")

	as.SetFault(introspectiontest.Fault{Status: http.StatusBadGateway, Body: `{"error":"internal detail"}`})
	resp = post(t, srv.URL, good)
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode, "an outage is never 401")
	body, _ := io.ReadAll(resp.Body)
	assert.Equal(t, "authorization server unavailable\n", string(body))
}

// TestTokenVerifierFailsClosed checks that a scope missing from the
// verifier's own settings is refused through the plain TokenVerifier even
// when the SDK options list no scopes.
func TestTokenVerifierFailsClosed(t *testing.T) {
	as, v := setup(t, []string{"admin"})
	tok := as.Issue(introspectiontest.TokenOptions{Scopes: []string{"read"}})
	srv := newMCPServer(t, auth.RequireBearerToken(mcpsdk.TokenVerifier(v), nil))
	resp := post(t, srv.URL, tok)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

// TestOurMiddlewareInFront shows the documented alternative: RFC 6750 error
// attributes and a 503 during an outage.
func TestOurMiddlewareInFront(t *testing.T) {
	as, v := setup(t, []string{"mcp:tools"})
	srv := newMCPServer(t, func(h http.Handler) http.Handler {
		return introspection.RequireBearerToken(v, nil)(mcpsdk.WithTokenInfo(h, nil))
	})
	good := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{"mcp:tools"}})
	c, err := callWhoami(t, srv.URL, good)
	require.NoError(t, err)
	assert.Equal(t, "alice", c.Subject)

	resp := post(t, srv.URL, "unknown-token")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, []string{
		`Bearer error="invalid_token", scope="mcp:tools"`,
		`DPoP scope="mcp:tools", algs="ES256 ES384 ES512 RS256 PS256 EdDSA Ed25519"`,
	}, resp.Header.Values("WWW-Authenticate"), "the error on the scheme used, and a DPoP challenge too")

	as.SetFault(introspectiontest.Fault{Status: 500})
	resp = post(t, srv.URL, good)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))
}

// TestLeewayHoldsInEveryPath checks that a token the verifier accepts within
// Settings.Leeway of its exp is not refused by the SDK's own expiry check
// behind it, and that one expired longer ago is refused, in each way of
// wiring the verifier into the SDK.
func TestLeewayHoldsInEveryPath(t *testing.T) {
	const leeway = time.Minute
	wirings := map[string]func(v *introspection.Verifier) func(http.Handler) http.Handler{
		"auth.RequireBearerToken with TokenVerifier": func(v *introspection.Verifier) func(http.Handler) http.Handler {
			return auth.RequireBearerToken(mcpsdk.TokenVerifier(v), nil)
		},
		"introspection.RequireBearerToken with WithTokenInfo": func(v *introspection.Verifier) func(http.Handler) http.Handler {
			return func(h http.Handler) http.Handler {
				return introspection.RequireBearerToken(v, nil)(mcpsdk.WithTokenInfo(h, nil))
			}
		},
	}
	cases := []struct {
		name       string
		expiredAgo time.Duration
		want       int
	}{
		{"expired less than Leeway ago: accepted", leeway / 6, http.StatusOK},
		{"expired more than Leeway ago: refused", 2 * leeway, http.StatusUnauthorized},
	}
	for name, wire := range wirings {
		t.Run(name, func(t *testing.T) {
			as := introspectiontest.NewServer()
			t.Cleanup(as.Close)
			v, err := introspection.NewVerifier(introspection.Settings{
				IntrospectionURL: as.IntrospectionURL,
				ClientID:         introspectiontest.ClientID,
				ClientSecret:     introspectiontest.ClientSecret,
				Leeway:           leeway,
			})
			require.NoError(t, err)
			t.Cleanup(func() { _ = v.Close() })
			srv := newMCPServer(t, wire(v))
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					// The server still calls the token active, as one whose
					// clock runs behind the resource server's would.
					tok := as.Issue(introspectiontest.TokenOptions{
						Subject: "alice",
						Extra:   map[string]any{"exp": time.Now().Add(-tc.expiredAgo).Unix()},
					})
					resp := post(t, srv.URL, tok)
					body, _ := io.ReadAll(resp.Body)
					assert.Equal(t, tc.want, resp.StatusCode, "%s", body)
				})
			}
		})
	}
}

// TestNilVerifierRefusesEveryRequest checks that TokenVerifier(nil) does
// not panic while the handler is built and that no request reaches the
// handler behind the SDK's middleware: 401 without a token, 500 with one.
func TestNilVerifierRefusesEveryRequest(t *testing.T) {
	var reached atomic.Int64
	var protect func(http.Handler) http.Handler
	require.NotPanics(t, func() {
		protect = auth.RequireBearerToken(mcpsdk.TokenVerifier(nil), &auth.RequireBearerTokenOptions{Scopes: []string{"mcp:tools"}})
	})
	srv := httptest.NewServer(protect(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached.Add(1) })))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		token string
		want  int
	}{
		{"", http.StatusUnauthorized},
		{"some-token", http.StatusInternalServerError},
	} {
		resp := post(t, srv.URL, tc.token)
		assert.Equal(t, tc.want, resp.StatusCode, "token %q", tc.token)
	}
	assert.Zero(t, reached.Load(), "no request reaches the handler")
}

// TestTokenInfoExpirationIncludesLeeway checks what tools read: the SDK's
// Expiration is the last instant the verifier accepts the token, exp plus
// Settings.Leeway, and AccessTokenFromInfo gives the exp itself.
func TestTokenInfoExpirationIncludesLeeway(t *testing.T) {
	const leeway = 30 * time.Second
	as := introspectiontest.NewServer()
	t.Cleanup(as.Close)
	v, err := introspection.NewVerifier(introspection.Settings{
		IntrospectionURL: as.IntrospectionURL,
		ClientID:         introspectiontest.ClientID,
		ClientSecret:     introspectiontest.ClientSecret,
		Leeway:           leeway,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	tok := as.Issue(introspectiontest.TokenOptions{Extra: map[string]any{"exp": exp.Unix()}})

	info, err := mcpsdk.TokenVerifier(v)(context.Background(), tok, nil)
	require.NoError(t, err)
	assert.True(t, exp.Add(leeway).Equal(info.Expiration), "Expiration %v", info.Expiration)
	at, ok := mcpsdk.AccessTokenFromInfo(info)
	require.True(t, ok)
	assert.True(t, exp.Equal(at.ExpiresAt), "ExpiresAt %v", at.ExpiresAt)
}

// TestTokenWithoutExpiry checks what happens to a token whose answer has no
// exp: the SDK's middleware refuses it unless AllowMissingExpiration is set;
// behind our middleware, which accepts it, WithTokenInfo hands it on.
func TestTokenWithoutExpiry(t *testing.T) {
	cases := []struct {
		name string
		wire func(v *introspection.Verifier) func(http.Handler) http.Handler
		want int
	}{
		{"TokenVerifier", func(v *introspection.Verifier) func(http.Handler) http.Handler {
			return auth.RequireBearerToken(mcpsdk.TokenVerifier(v), nil)
		}, http.StatusUnauthorized},
		{"TokenVerifier with AllowMissingExpiration", func(v *introspection.Verifier) func(http.Handler) http.Handler {
			return auth.RequireBearerToken(mcpsdk.TokenVerifier(v), &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})
		}, http.StatusOK},
		{"WithTokenInfo", func(v *introspection.Verifier) func(http.Handler) http.Handler {
			return func(h http.Handler) http.Handler {
				return introspection.RequireBearerToken(v, nil)(mcpsdk.WithTokenInfo(h, nil))
			}
		}, http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			as, v := setup(t, nil)
			srv := newMCPServer(t, tc.wire(v))
			resp := post(t, srv.URL, as.Issue(introspectiontest.TokenOptions{Subject: "alice", NoExpiry: true}))
			assert.Equal(t, tc.want, resp.StatusCode)
		})
	}
}

// TestPreflightReachesCORSLayer checks that a CORS preflight, which
// introspection.RequireBearerToken hands on without a token, passes
// WithTokenInfo too, so a CORS layer between them and the MCP handler can
// answer it; any other request without a token there still gets 401.
func TestPreflightReachesCORSLayer(t *testing.T) {
	_, v := setup(t, nil)
	var reached atomic.Int32
	cors := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.WriteHeader(http.StatusNoContent)
	})
	srv := httptest.NewServer(introspection.RequireBearerToken(v, nil)(mcpsdk.WithTokenInfo(cors, nil)))
	t.Cleanup(srv.Close)

	tests := []struct {
		name    string
		method  string
		header  map[string]string
		want    int
		reached bool
	}{
		{"preflight", http.MethodOptions, map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}, http.StatusNoContent, true},
		{"OPTIONS without Origin", http.MethodOptions, map[string]string{"Access-Control-Request-Method": "POST"}, http.StatusUnauthorized, false},
		{"GET with Origin", http.MethodGet, map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}, http.StatusUnauthorized, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reached.Store(0)
			req, err := http.NewRequest(tc.method, srv.URL, nil)
			require.NoError(t, err)
			for k, val := range tc.header {
				req.Header.Set(k, val)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, tc.want, resp.StatusCode)
			assert.Equal(t, tc.reached, reached.Load() == 1)
		})
	}
}
