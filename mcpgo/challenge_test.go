package mcpgo_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/mcpauth/introspection/mcpgo"
	"github.com/stretchr/testify/assert"
)

// TestWithCallerChallengeCarriesResourceMetadata checks each 401 that
// WithCaller answers itself: a token naming no caller, with
// Options.UserIDWithIssuer one without a usable iss, and a request that did
// not pass introspection.RequireBearerToken. With
// Options.ResourceMetadataURL the challenge carries it as resource_metadata,
// formatted as the core middleware formats it; without, it carries none.
func TestWithCallerChallengeCarriesResourceMetadata(t *testing.T) {
	const md = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
	paths := []struct {
		name       string
		token      *introspection.AccessToken // in the context; nil for none
		withIssuer bool
	}{
		{"a token naming no caller", &introspection.AccessToken{Issuer: "https://as.example"}, false},
		{"with UserIDWithIssuer, a token without iss", &introspection.AccessToken{Subject: "alice"}, true},
		{`with UserIDWithIssuer, an iss with "|"`, &introspection.AccessToken{Subject: "alice", Issuer: "https://as.example|x"}, true},
		{"a request that did not pass RequireBearerToken", nil, false},
	}
	for _, p := range paths {
		for _, metadataURL := range []string{"", md} {
			name := p.name + "/without ResourceMetadataURL"
			want := `Bearer error="invalid_token"`
			if metadataURL != "" {
				name = p.name + "/with ResourceMetadataURL"
				want = `Bearer error="invalid_token", resource_metadata="` + md + `"`
			}
			t.Run(name, func(t *testing.T) {
				var reached int
				h := mcpgo.WithCaller(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached++ }),
					&mcpgo.Options{UserIDWithIssuer: p.withIssuer, ResourceMetadataURL: metadataURL})
				req := httptest.NewRequest(http.MethodPost, "/mcp", nil)
				req.Header.Set("Authorization", "Bearer abc")
				if p.token != nil {
					req = req.WithContext(introspection.ContextWithAccessToken(req.Context(), p.token))
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				assert.Equal(t, http.StatusUnauthorized, rec.Code)
				assert.Equal(t, want, rec.Header().Get("WWW-Authenticate"))
				assert.JSONEq(t, `{"error":"invalid_token"}`, rec.Body.String())
				assert.Zero(t, reached, "the handler is never reached")
			})
		}
	}
}

// TestWithCallerChallengeThroughTheMiddleware checks the same behind
// introspection.RequireBearerToken, with a token the authorization server
// issued that names no caller.
func TestWithCallerChallengeThroughTheMiddleware(t *testing.T) {
	const md = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
	st := newStack(t, &mcpgo.Options{ResourceMetadataURL: md})
	r, _ := st.whoami(t, st.as.Issue(introspectiontest.TokenOptions{Extra: map[string]any{"client_id": nil}}), "")
	assert.Equal(t, http.StatusUnauthorized, r.Status)
	assert.Equal(t, `Bearer error="invalid_token", resource_metadata="`+md+`"`, r.Header.Get("WWW-Authenticate"))
	assert.Zero(t, st.calls.Load())
}

// TestWithCallerRefusesInvalidResourceMetadataURL checks that a
// ResourceMetadataURL with a character that RFC 6750 §3 does not allow in
// the attribute is never sent: every request, a CORS preflight and one with
// a token that names its caller included, gets 500 and never reaches the
// handler.
func TestWithCallerRefusesInvalidResourceMetadataURL(t *testing.T) {
	cases := []struct {
		name, url string
	}{
		{"a double quote", `https://mcp.example.com/"x`},
		{"a backslash", `https://mcp.example.com/\x`},
		{"a space", "https://mcp.example.com/ x"},
		{"a line feed", "https://mcp.example.com/\nx"},
		{"a non-ASCII letter", "https://mcp.example.com/é"},
		{"a DEL", "https://mcp.example.com/\x7f"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var reached int
			h := mcpgo.WithCaller(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached++ }),
				&mcpgo.Options{ResourceMetadataURL: tc.url})
			good := httptest.NewRequest(http.MethodPost, "/mcp", nil)
			good = good.WithContext(introspection.ContextWithAccessToken(good.Context(), &introspection.AccessToken{Subject: "alice"}))
			noCaller := httptest.NewRequest(http.MethodPost, "/mcp", nil)
			noCaller = noCaller.WithContext(introspection.ContextWithAccessToken(noCaller.Context(), &introspection.AccessToken{}))
			preflight := httptest.NewRequest(http.MethodOptions, "/mcp", nil)
			preflight.Header.Set("Origin", "https://app.example")
			preflight.Header.Set("Access-Control-Request-Method", "POST")
			for name, req := range map[string]*http.Request{"a good token": good, "no caller": noCaller, "a preflight": preflight} {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				assert.Equal(t, http.StatusInternalServerError, rec.Code, name)
				assert.Empty(t, rec.Header().Get("WWW-Authenticate"), name)
			}
			assert.Zero(t, reached, "the handler is never reached")
		})
	}
}
