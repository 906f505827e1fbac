package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/interop/oidcprovider"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Issue mints a token for the resource server at audience with scopes.
type Issue func(audience string, scopes ...string) string

// Run checks an example's handler against an authorization server that
// the caller controls, with verifier settings s completed as the examples
// complete them; down stops that server.
func Run(t *testing.T, ex Example, s introspection.Settings, issue Issue, revoke func(string), down func()) {
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	resource := base + mcpPath
	clock := &clock{}
	s.Now = clock.Now
	matcher, err := introspection.HierarchicalScopes(":")
	require.NoError(t, err)
	s.ScopeMatcher = matcher
	s.RequiredScopes = []string{ScopeTools}
	s.Audience = []string{resource}
	s.CacheTTL = 30 * time.Second
	v, err := introspection.NewVerifier(s)
	require.NoError(t, err)
	defer v.Close()
	h, closeSessions, err := ex.NewHandler(v, base, "https://as.example.com")
	require.NoError(t, err)
	srv.Config.Handler = h
	srv.Start()
	defer srv.Close()
	defer closeSessions()
	endpoint := resource
	metadata := base + wellKnown + mcpPath
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	good := issue(resource, ScopeTools, "profile")
	t.Run("valid token: whoami answers with the caller", func(t *testing.T) {
		c, err := Whoami(ctx, endpoint, good)
		require.NoError(t, err)
		assert.Equal(t, []string{ScopeTools, "profile"}, c.Scopes)
		assert.NotEmpty(t, c.ClientID)
		if c.Subject == "" { // client credentials: the client acts for itself
			assert.Equal(t, c.ClientID, c.UserID)
		} else {
			assert.Equal(t, c.Subject, c.UserID)
		}
	})
	t.Run("no token: 401 with a challenge", func(t *testing.T) {
		r := send(t, http.MethodPost, endpoint, "", "", whoamiRequest)
		assert.Equal(t, http.StatusUnauthorized, r.status)
		assert.Equal(t, []string{
			`Bearer realm="mcp", scope="` + ScopeTools + `", resource_metadata="` + metadata + `"`,
			`DPoP realm="mcp", scope="` + ScopeTools + `", resource_metadata="` + metadata + `", ` + dpopAlgs,
		}, r.challenge, "a challenge per scheme, DPoP being allowed by default")
		_, err := Whoami(ctx, endpoint, "")
		assert.Error(t, err)
	})
	t.Run("metadata needs no token", func(t *testing.T) {
		md := getMetadata(t, strings.TrimPrefix(base, "http://"), wellKnown+mcpPath)
		assert.Equal(t, endpoint, md.Resource)
		assert.Equal(t, []string{"https://as.example.com"}, md.AuthorizationServers)
	})
	t.Run("unknown token: 401 invalid_token", func(t *testing.T) {
		r := send(t, http.MethodPost, endpoint, "unknown-token", "", whoamiRequest)
		assert.Equal(t, http.StatusUnauthorized, r.status)
		assert.Contains(t, strings.Join(r.challenge, " "), `error="invalid_token"`)
	})
	t.Run("token for another resource: 401 invalid_token", func(t *testing.T) {
		r := send(t, http.MethodPost, endpoint, issue(OtherResource, ScopeTools, "profile"), "", whoamiRequest)
		assert.Equal(t, http.StatusUnauthorized, r.status)
		assert.Contains(t, strings.Join(r.challenge, " "), `error="invalid_token"`)
	})
	if revoke != nil {
		t.Run("revoked token: 401 once its cache entry ends", func(t *testing.T) {
			tok := issue(resource, ScopeTools)
			session := initialize(t, endpoint, tok)
			revoke(tok)
			r := send(t, http.MethodPost, endpoint, tok, session, whoamiRequest)
			assert.Equal(t, http.StatusOK, r.status, "the cached answer still holds")
			clock.Advance(s.CacheTTL)
			r = send(t, http.MethodPost, endpoint, tok, session, whoamiRequest)
			assert.Equal(t, http.StatusUnauthorized, r.status)
		})
	}
	t.Run("insufficient scope: 403", func(t *testing.T) {
		tok := issue(resource, "profile")
		r := send(t, http.MethodPost, endpoint, tok, "", whoamiRequest)
		assertInsufficientScope(t, r, ScopeTools, "", metadata)
		_, err := Whoami(ctx, endpoint, tok)
		assert.Error(t, err)
	})
	t.Run("echo without mcp:echo: 403", func(t *testing.T) {
		r := send(t, http.MethodPost, endpoint, good, "", echoRequest)
		assertInsufficientScope(t, r, ScopeTools+" "+ScopeEcho, "echo", metadata)
	})
	t.Run("authorization server down: 503", func(t *testing.T) {
		tok := issue(resource, ScopeTools)
		down()
		r := send(t, http.MethodPost, endpoint, tok, "", whoamiRequest)
		assert.Equal(t, http.StatusServiceUnavailable, r.status)
		assert.Empty(t, r.challenge)
		assert.NotContains(t, r.body, "introspection:")
	})
}

// RunWithTestServer runs Run against an introspectiontest server.
func RunWithTestServer(t *testing.T, ex Example) {
	as := introspectiontest.NewServer()
	var once sync.Once
	down := func() { once.Do(as.Close) }
	defer down()
	issue := func(audience string, scopes ...string) string {
		return as.Issue(introspectiontest.TokenOptions{Subject: "alice", ClientID: "app", Scopes: scopes, Audience: []string{audience}})
	}
	s := introspection.Settings{
		IntrospectionURL: as.IntrospectionURL,
		ClientID:         introspectiontest.ClientID,
		ClientSecret:     introspectiontest.ClientSecret,
		Issuer:           as.Issuer,
		Timeout:          2 * time.Second,
	}
	Run(t, ex, s, issue, as.Revoke, down)
}

// RunWithOIDCProvider runs Run against oidc-provider, a certified OpenID
// provider (see the interop module), whose client-credentials tokens have
// no sub: the caller is the client.
func RunWithOIDCProvider(t *testing.T, ex Example) {
	p := oidcprovider.Start(t)
	s := introspection.Settings{
		IntrospectionURL: p.IntrospectionURL,
		ClientID:         oidcprovider.BasicClientID,
		ClientSecret:     oidcprovider.ResourceServerSecret,
		Issuer:           p.Issuer,
		Timeout:          2 * time.Second,
	}
	issue := func(audience string, scopes ...string) string { return p.TokenFor(t, audience, scopes...) }
	revoke := func(token string) { p.Revoke(t, token) }
	Run(t, ex, s, issue, revoke, p.Stop)
}

// AudienceDefaultsToResourceURL starts an example against an authorization
// server named by INTROSPECTION_* and checks whose tokens it accepts: those
// for its own resource URL when INTROSPECTION_AUDIENCE is unset, those for
// INTROSPECTION_AUDIENCE when it is set.
func AudienceDefaultsToResourceURL(t *testing.T, ex Example) {
	for _, tc := range []struct {
		name     string
		audience string // INTROSPECTION_AUDIENCE; empty leaves it unset
		accepted string // "" stands for the printed resource URL
		refused  string
	}{
		{"INTROSPECTION_AUDIENCE unset: the server's resource URL", "", "", OtherResource},
		{"INTROSPECTION_AUDIENCE set: it wins", OtherResource, OtherResource, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var env []string
			if tc.audience != "" {
				env = []string{"INTROSPECTION_AUDIENCE", tc.audience}
			}
			srv, iss := startConfigured(t, ex, env...)
			audience := func(a string) string {
				if a == "" {
					return srv.endpoint // the server's resource URL
				}
				return a
			}
			assert.Equal(t, audience(tc.accepted), printed(t, srv.out.String(), "Accepted token audience"))
			token := func(aud string) string {
				return iss.as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{ScopeTools}, Audience: []string{aud}})
			}
			r := send(t, http.MethodPost, srv.endpoint, token(audience(tc.accepted)), "", initializeRequest)
			assert.Equal(t, http.StatusOK, r.status, "token for %s", audience(tc.accepted))
			r = send(t, http.MethodPost, srv.endpoint, token(audience(tc.refused)), "", initializeRequest)
			assert.Equal(t, http.StatusUnauthorized, r.status, "token for %s", audience(tc.refused))
		})
	}
}

// DiscoveryFromIssuer starts an example with INTROSPECTION_ISSUER and the
// credentials alone, as StartFromIssuer does, and checks that it accepts
// the issuer's tokens.
func DiscoveryFromIssuer(t *testing.T, ex Example) {
	as := introspectiontest.NewServer()
	t.Cleanup(as.Close)
	endpoint := StartFromIssuer(t, ex, as)
	token := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{ScopeTools}, Audience: []string{endpoint}})
	r := send(t, http.MethodPost, endpoint, token, "", initializeRequest)
	assert.Equal(t, http.StatusOK, r.status, r.body)
	assert.Positive(t, as.MetadataRequests(), "the endpoint came from the issuer's metadata")
	assert.Positive(t, as.Requests(), "the token was introspected there")
}

// StartFromIssuer runs ex on 127.0.0.1 until the test ends, with
// INTROSPECTION_ISSUER set to as's issuer and INTROSPECTION_CLIENT_ID and
// INTROSPECTION_CLIENT_SECRET to its resource server's credentials, and no
// other INTROSPECTION_ or MCP_ variable. It checks that the example found
// the introspection endpoint in the issuer's metadata, rather than
// starting the development server, and announces the issuer, and returns
// the MCP endpoint it printed.
func StartFromIssuer(t *testing.T, ex Example, as *introspectiontest.Server) string {
	t.Helper()
	clearEnv(t)
	t.Setenv("INTROSPECTION_ISSUER", as.Issuer)
	t.Setenv("INTROSPECTION_CLIENT_ID", introspectiontest.ClientID)
	t.Setenv("INTROSPECTION_CLIENT_SECRET", introspectiontest.ClientSecret)
	srv := start(t, ex, "127.0.0.1:0", "")
	out := srv.out.String()
	assert.NotContains(t, out, "development authorization server", "no development server was started")
	assert.Equal(t, as.Issuer, printed(t, out, "Authorization server"), "the metadata names the issuer")
	return srv.endpoint
}

// clock is a clock that tests move forward.
type clock struct {
	mu sync.Mutex    // guards d
	d  time.Duration // how far ahead of time.Now it runs
}

// Now returns the time.
func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.d)
}

// Advance moves the clock forward by d.
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.d += d
}
