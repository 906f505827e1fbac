package mcpsdk_test

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/mcpauth/introspection/mcpsdk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWithTokenInfoChallengeCarriesResourceMetadata checks each 401 that
// WithTokenInfo answers itself: a token naming no caller, with
// Options.UserIDWithIssuer one without a usable iss, a request that did not
// pass introspection.RequireBearerToken, and one whose token in the context
// is not the one in its Authorization header. With Options.ResourceMetadataURL
// the challenge carries it as resource_metadata, formatted as the core
// middleware formats it; without, it carries none.
func TestWithTokenInfoChallengeCarriesResourceMetadata(t *testing.T) {
	const md = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
	noCaller := introspectiontest.TokenOptions{Extra: map[string]any{"client_id": nil}}
	noIssuer := introspectiontest.TokenOptions{Subject: "alice", Extra: map[string]any{"iss": nil}}
	pipeIssuer := introspectiontest.TokenOptions{Subject: "alice", Extra: map[string]any{"iss": "https://as.example|x"}}

	// wire puts h behind WithTokenInfo with o, and that behind what the
	// path needs in front.
	type wire func(v *introspection.Verifier, h http.Handler, o *mcpsdk.Options) http.Handler
	checked := func(v *introspection.Verifier, h http.Handler, o *mcpsdk.Options) http.Handler {
		return introspection.RequireBearerToken(v, nil)(mcpsdk.WithTokenInfo(h, o))
	}
	unchecked := func(_ *introspection.Verifier, h http.Handler, o *mcpsdk.Options) http.Handler {
		return mcpsdk.WithTokenInfo(h, o)
	}
	otherToken := func(_ *introspection.Verifier, h http.Handler, o *mcpsdk.Options) http.Handler {
		inner := mcpsdk.WithTokenInfo(h, o)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			t := &introspection.AccessToken{Subject: "alice", Token: "another-token"}
			inner.ServeHTTP(w, r.WithContext(introspection.ContextWithAccessToken(r.Context(), t)))
		})
	}
	paths := []struct {
		name       string
		token      introspectiontest.TokenOptions
		withIssuer bool
		wire       wire
		// sdk says that the SDK's middleware behind WithTokenInfo answers,
		// with its own challenge, which has no error attribute.
		sdk bool
	}{
		{name: "a token naming no caller", token: noCaller, wire: checked},
		{name: "with UserIDWithIssuer, a token without iss", token: noIssuer, withIssuer: true, wire: checked},
		{name: `with UserIDWithIssuer, an iss with "|"`, token: pipeIssuer, withIssuer: true, wire: checked},
		{name: "a request that did not pass RequireBearerToken", token: noCaller, wire: unchecked},
		{name: "a token in the context other than the request's", token: noCaller, wire: otherToken, sdk: true},
	}
	for _, p := range paths {
		for _, metadataURL := range []string{"", md} {
			name := p.name + "/without ResourceMetadataURL"
			if metadataURL != "" {
				name = p.name + "/with ResourceMetadataURL"
			}
			t.Run(name, func(t *testing.T) {
				as, v := setup(t, nil)
				var reached atomic.Int64
				srv := httptest.NewServer(p.wire(v, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
					reached.Add(1)
				}), &mcpsdk.Options{UserIDWithIssuer: p.withIssuer, ResourceMetadataURL: metadataURL}))
				t.Cleanup(srv.Close)
				resp := post(t, srv.URL, as.Issue(p.token))
				assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
				assert.Zero(t, reached.Load(), "the handler is never reached")
				want := map[bool]string{false: `Bearer error="invalid_token"`, true: ""}[p.sdk]
				if metadataURL != "" {
					want = map[bool]string{
						false: `Bearer error="invalid_token", resource_metadata="` + md + `"`,
						true:  `Bearer resource_metadata="` + md + `"`,
					}[p.sdk]
				}
				assert.Equal(t, want, resp.Header.Get("WWW-Authenticate"))
			})
		}
	}
}

// TestWithTokenInfoRefusesInvalidResourceMetadataURL checks that a
// ResourceMetadataURL with a character that RFC 6750 §3 does not allow in
// the attribute is never sent: every request, a CORS preflight and one with
// a good token included, gets 500 and never reaches the handler.
func TestWithTokenInfoRefusesInvalidResourceMetadataURL(t *testing.T) {
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
			as, v := setup(t, nil)
			var reached atomic.Int64
			h := introspection.RequireBearerToken(v, nil)(mcpsdk.WithTokenInfo(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
				reached.Add(1)
			}), &mcpsdk.Options{ResourceMetadataURL: tc.url}))
			srv := httptest.NewServer(h)
			t.Cleanup(srv.Close)

			resp := post(t, srv.URL, as.Issue(introspectiontest.TokenOptions{Subject: "alice"}))
			assert.Equal(t, http.StatusInternalServerError, resp.StatusCode, "a good token")
			assert.Empty(t, resp.Header.Get("WWW-Authenticate"))

			resp = post(t, srv.URL, as.Issue(introspectiontest.TokenOptions{Extra: map[string]any{"client_id": nil}}))
			assert.Equal(t, http.StatusInternalServerError, resp.StatusCode, "a token naming no caller")
			assert.Empty(t, resp.Header.Get("WWW-Authenticate"))

			req, err := http.NewRequest(http.MethodOptions, srv.URL, nil)
			require.NoError(t, err)
			req.Header.Set("Origin", "https://app.example")
			req.Header.Set("Access-Control-Request-Method", "POST")
			pre, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			pre.Body.Close()
			assert.Equal(t, http.StatusInternalServerError, pre.StatusCode, "a preflight")

			assert.Zero(t, reached.Load(), "the handler is never reached")
		})
	}
}
