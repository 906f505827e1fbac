package mcpsdk_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
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

// dpopClient sends token with the DPoP scheme (RFC 9449 §7.1) and a fresh
// proof of key for each request's method and URL, as a DPoP client does.
type dpopClient struct {
	key   *introspectiontest.DPoPKey
	token string
}

func (d dpopClient) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "DPoP "+d.token)
	r.Header.Set("DPoP", d.key.Proof(r.Method, r.URL.String(), d.token))
	return http.DefaultTransport.RoundTrip(r)
}

// sdkSeen counts the requests that reach the go-sdk's handler and records
// the Authorization schemes they carry.
type sdkSeen struct {
	n       atomic.Int64
	mu      sync.Mutex // guards schemes
	schemes map[string]int
}

func (s *sdkSeen) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.n.Add(1)
		scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		s.mu.Lock()
		if s.schemes == nil {
			s.schemes = map[string]int{}
		}
		s.schemes[scheme]++
		s.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (s *sdkSeen) schemeCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.schemes {
		out[k] = v
	}
	return out
}

// TestDPoPThroughWithTokenInfo runs the go-sdk's client, sending a
// DPoP-bound token with a fresh proof per request, through
// introspection.RequireBearerToken, WithTokenInfo and the SDK's streamable
// handler: it opens a session and calls a tool, which sees its caller, and
// the SDK's handler sees the request's own DPoP Authorization header. The
// same token sent as Bearer gets 401 invalid_token before the SDK sees it,
// with the challenges of the mode.
func TestDPoPThroughWithTokenInfo(t *testing.T) {
	const md = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
	const algs = `algs="ES256 ES384 ES512 RS256 PS256 EdDSA Ed25519"`
	for _, tc := range []struct {
		mode       introspection.DPoPMode
		challenges []string // of the bound token sent as Bearer
	}{
		{introspection.DPoPAllowed, []string{
			`Bearer error="invalid_token", resource_metadata="` + md + `"`,
			`DPoP resource_metadata="` + md + `", ` + algs,
		}},
		{introspection.DPoPRequired, []string{
			// Bearer is no scheme of this mode: the request has no credentials.
			`DPoP resource_metadata="` + md + `", ` + algs,
		}},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			as := introspectiontest.NewServer()
			t.Cleanup(as.Close)
			v, err := introspection.NewVerifier(introspection.Settings{
				IntrospectionURL: as.IntrospectionURL,
				ClientID:         introspectiontest.ClientID,
				ClientSecret:     introspectiontest.ClientSecret,
				Timeout:          time.Second,
				DPoP:             tc.mode,
			})
			require.NoError(t, err)
			t.Cleanup(func() { _ = v.Close() })
			seen := &sdkSeen{}
			srv := newMCPServer(t, func(h http.Handler) http.Handler {
				return introspection.RequireBearerToken(v, &introspection.MiddlewareOptions{ResourceMetadataURL: md})(
					mcpsdk.WithTokenInfo(seen.wrap(h), &mcpsdk.Options{ResourceMetadataURL: md}))
			})
			key := introspectiontest.NewDPoPKey()
			token := as.Issue(introspectiontest.TokenOptions{
				Subject: "alice", ClientID: "app", Scopes: []string{"mcp:tools"}, DPoPKey: key.Thumbprint(),
			})

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			client := mcp.NewClient(&mcp.Implementation{Name: "dpop-client", Version: "v1"}, nil)
			cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{
				Endpoint: srv.URL, HTTPClient: &http.Client{Transport: dpopClient{key, token}}, MaxRetries: -1,
			}, nil)
			require.NoError(t, err, "the DPoP client opens a session")
			for range 2 {
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami"})
				require.NoError(t, err)
				require.False(t, res.IsError, "%v", res.Content)
				assert.Equal(t, map[string]any{"subject": "alice", "client_id": "app", "scopes": []any{"mcp:tools"}, "has_token": false},
					res.StructuredContent, "the tool sees the caller, and not the token")
			}
			require.NoError(t, cs.Close())
			schemes := seen.schemeCounts()
			assert.Equal(t, []string{"DPoP"}, keys(schemes), "the SDK's handler sees the request's own scheme")

			before := seen.n.Load()
			resp := post(t, srv.URL, token)
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
			assert.Equal(t, tc.challenges, resp.Header.Values("WWW-Authenticate"))
			assert.Equal(t, before, seen.n.Load(), "the SDK never sees the bound token sent as Bearer")
		})
	}
}

func keys(m map[string]int) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestDPoPSessionServesOnlyItsCaller checks that WithTokenInfo binds a
// session opened with a DPoP-bound token to its caller, as it does for a
// Bearer token: another user's DPoP request on its Mcp-Session-Id gets the
// SDK's 403, and the owner's next request is served.
func TestDPoPSessionServesOnlyItsCaller(t *testing.T) {
	as, v := setup(t, nil)
	srv := newMCPServer(t, func(h http.Handler) http.Handler {
		return introspection.RequireBearerToken(v, nil)(mcpsdk.WithTokenInfo(h, nil))
	})
	aliceKey, bobKey := introspectiontest.NewDPoPKey(), introspectiontest.NewDPoPKey()
	alice := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{"mcp:tools"}, DPoPKey: aliceKey.Thumbprint()})
	bob := as.Issue(introspectiontest.TokenOptions{Subject: "bob", Scopes: []string{"mcp:tools"}, DPoPKey: bobKey.Thumbprint()})

	send := func(key *introspectiontest.DPoPKey, token, session, body string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if session != "" {
			req.Header.Set("Mcp-Session-Id", session)
			req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
		}
		resp, err := (&http.Client{Transport: dpopClient{key, token}}).Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}`
	const list = `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`
	resp := send(aliceKey, alice, "", initialize)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	session := resp.Header.Get("Mcp-Session-Id")
	require.NotEmpty(t, session)

	resp = send(bobKey, bob, session, list)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "another caller's request on the session")
	resp = send(aliceKey, alice, session, list)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the caller's own request on the session")
}

// TestTokenVerifierRefusesBoundTokens checks the SDK's own middleware
// path: auth.RequireBearerToken reads only the Bearer scheme, so it can
// never hand a DPoP proof on, and TokenVerifier refuses a DPoP-bound token
// (Verify's ErrProofRequired) as auth.ErrInvalidToken, 401, sent as Bearer
// or as DPoP with a valid proof, and no request reaches the handler.
func TestTokenVerifierRefusesBoundTokens(t *testing.T) {
	as, v := setup(t, nil)
	key := introspectiontest.NewDPoPKey()
	bound := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{"mcp:tools"}, DPoPKey: key.Thumbprint()})
	unbound := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{"mcp:tools"}})

	ctx := context.Background()
	_, err := v.Verify(ctx, bound)
	require.ErrorIs(t, err, introspection.ErrProofRequired)
	verify := mcpsdk.TokenVerifier(v)
	req := httptest.NewRequest(http.MethodPost, "http://mcp.example.com/mcp", nil)
	req.Header.Set("DPoP", key.Proof(http.MethodPost, "http://mcp.example.com/mcp", bound))
	info, err := verify(ctx, bound, req)
	assert.Nil(t, info)
	assert.ErrorIs(t, err, auth.ErrInvalidToken, "a proof beside the token changes nothing")

	var reached atomic.Int64
	srv := httptest.NewServer(auth.RequireBearerToken(verify, nil)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		reached.Add(1)
		w.WriteHeader(http.StatusNoContent)
	})))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		name   string
		client http.RoundTripper
		want   int
	}{
		{"bound token as Bearer", bearer{bound}, http.StatusUnauthorized},
		{"bound token as DPoP with its proof", dpopClient{key, bound}, http.StatusUnauthorized},
		{"unbound token as Bearer", bearer{unbound}, http.StatusNoContent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := reached.Load()
			resp, err := (&http.Client{Transport: tc.client}).Post(srv.URL, "application/json", strings.NewReader("{}"))
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, tc.want, resp.StatusCode)
			reached := reached.Load() - before
			if tc.want == http.StatusNoContent {
				assert.Equal(t, int64(1), reached)
			} else {
				assert.Zero(t, reached, "the handler never runs")
			}
		})
	}
}

// TestTokenVerifierUnderDPoPRequired checks that under DPoPRequired the
// SDK's own middleware path refuses every token, unbound ones too: no
// proof ever reaches TokenVerifier.
func TestTokenVerifierUnderDPoPRequired(t *testing.T) {
	as := introspectiontest.NewServer()
	t.Cleanup(as.Close)
	v, err := introspection.NewVerifier(introspection.Settings{
		IntrospectionURL: as.IntrospectionURL,
		ClientID:         introspectiontest.ClientID,
		ClientSecret:     introspectiontest.ClientSecret,
		DPoP:             introspection.DPoPRequired,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	unbound := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{"mcp:tools"}})
	var reached atomic.Int64
	srv := httptest.NewServer(auth.RequireBearerToken(mcpsdk.TokenVerifier(v), nil)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		reached.Add(1)
	})))
	t.Cleanup(srv.Close)
	resp := post(t, srv.URL, unbound)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Zero(t, reached.Load())
}

// TestWithTokenInfoChecksTheDPoPToken checks WithTokenInfo alone with the
// DPoP scheme: the token of the request's Authorization header must be the
// one in the context, as with Bearer, and the handler behind gets the
// request's own Authorization and DPoP headers.
func TestWithTokenInfoChecksTheDPoPToken(t *testing.T) {
	var got []http.Header
	h := mcpsdk.WithTokenInfo(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Clone())
		w.WriteHeader(http.StatusNoContent)
	}), nil)
	for _, tc := range []struct {
		name          string
		authorization string
		want          int
	}{
		{"the context's token", "DPoP the-token", http.StatusNoContent},
		{"the scheme in lower case", "dpop the-token", http.StatusNoContent},
		{"another token", "DPoP another-token", http.StatusUnauthorized},
		{"no token", "DPoP", http.StatusUnauthorized},
		{"another scheme", "Basic the-token", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got = nil
			r := httptest.NewRequest(http.MethodPost, "http://mcp.example.com/mcp", nil)
			r.Header.Set("Authorization", tc.authorization)
			r.Header.Set("DPoP", "the-proof")
			r = r.WithContext(introspection.ContextWithAccessToken(r.Context(),
				&introspection.AccessToken{Subject: "alice", Token: "the-token"}))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			assert.Equal(t, tc.want, w.Code)
			if tc.want != http.StatusNoContent {
				assert.Empty(t, got, "the handler never runs")
				return
			}
			require.Len(t, got, 1)
			assert.Equal(t, tc.authorization, got[0].Get("Authorization"))
			assert.Equal(t, "the-proof", got[0].Get("DPoP"))
			assert.Equal(t, tc.authorization, r.Header.Get("Authorization"), "the caller's request is left as it came")
		})
	}
}
