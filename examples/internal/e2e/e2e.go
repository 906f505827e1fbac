// Package e2e tests the example servers end to end with the go-sdk MCP
// client over HTTP.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/examples/internal/demo"
	"github.com/mcpauth/introspection/interop/oidcprovider"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// NewHandler builds an example server's handler.
type NewHandler = demo.NewHandler

type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if b.token != "" {
		r.Header.Set("Authorization", "Bearer "+b.token)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// Whoami calls the whoami tool with the go-sdk client.
func Whoami(ctx context.Context, endpoint, token string) (demo.Caller, error) {
	client := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "v1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint: endpoint, HTTPClient: &http.Client{Transport: bearer{token}}, MaxRetries: -1,
	}, nil)
	if err != nil {
		return demo.Caller{}, err
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami"})
	if err != nil {
		return demo.Caller{}, err
	}
	var c demo.Caller
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		return c, err
	}
	return c, json.Unmarshal(b, &c)
}

func postWhoami(t *testing.T, endpoint, token string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(demo.WhoamiRequest))
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

// Settings returns verifier settings for as with the examples' scope.
func Settings(as *introspectiontest.Server) introspection.Settings {
	return introspection.Settings{
		IntrospectionURL: as.IntrospectionURL,
		ClientID:         introspectiontest.ClientID,
		ClientSecret:     introspectiontest.ClientSecret,
		RequiredScopes:   []string{demo.Scope},
		Timeout:          2 * time.Second,
	}
}

// OtherResource is the resource URL of another server: tokens minted for it
// must be refused.
const OtherResource = "https://other.example.com/mcp"

// Issue mints a token for the resource server at audience with scopes.
type Issue func(audience string, scopes ...string) string

// Run checks an example server's handler against an authorization server
// that the caller controls, with verifier settings s completed as the
// example servers complete them ([demo.Settings]); down stops that server.
func Run(t *testing.T, newHandler NewHandler, s introspection.Settings, issue Issue, revoke func(string), down func()) {
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	clock := &clock{}
	s.Now = clock.Now
	s = demo.Settings(s, demo.ResourceURL(base))
	v, err := introspection.NewVerifier(s)
	require.NoError(t, err)
	defer v.Close()
	h, err := newHandler(v, base, "https://as.example.com")
	require.NoError(t, err)
	srv.Config.Handler = h
	srv.Start()
	defer srv.Close()
	endpoint := demo.ResourceURL(base)
	resource := endpoint
	metadata := base + "/.well-known/oauth-protected-resource/mcp"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	good := issue(resource, demo.Scope, "profile")
	t.Run("valid token: whoami answers with the caller", func(t *testing.T) {
		c, err := Whoami(ctx, endpoint, good)
		require.NoError(t, err)
		assert.Equal(t, []string{demo.Scope, "profile"}, c.Scopes)
		assert.NotEmpty(t, c.ClientID)
	})
	t.Run("no token: 401 with a challenge", func(t *testing.T) {
		resp := postWhoami(t, endpoint, "")
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		assert.Equal(t, `Bearer scope="`+demo.Scope+`", resource_metadata="`+metadata+`"`, resp.Header.Get("WWW-Authenticate"))
		_, err := Whoami(ctx, endpoint, "")
		assert.Error(t, err)
	})
	t.Run("metadata needs no token", func(t *testing.T) {
		resp, err := http.Get(metadata)
		require.NoError(t, err)
		defer resp.Body.Close()
		var md map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&md))
		assert.Equal(t, endpoint, md["resource"])
		assert.Equal(t, []any{"https://as.example.com"}, md["authorization_servers"])
	})
	t.Run("unknown token: 401 invalid_token", func(t *testing.T) {
		resp := postWhoami(t, endpoint, "unknown-token")
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`)
	})
	t.Run("token for another resource: 401 invalid_token", func(t *testing.T) {
		resp := postWhoami(t, endpoint, issue(OtherResource, demo.Scope, "profile"))
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`)
	})
	if revoke != nil {
		t.Run("revoked token: 401 once its cache entry ends", func(t *testing.T) {
			tok := issue(resource, demo.Scope)
			_, err := Whoami(ctx, endpoint, tok)
			require.NoError(t, err)
			revoke(tok)
			resp := postWhoami(t, endpoint, tok)
			assert.Equal(t, http.StatusOK, resp.StatusCode, "the cached answer still holds")
			clock.Advance(s.CacheTTL)
			resp = postWhoami(t, endpoint, tok)
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		})
	}
	t.Run("insufficient scope: 403", func(t *testing.T) {
		tok := issue(resource, "profile")
		resp := postWhoami(t, endpoint, tok)
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
		assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope", scope="`+demo.Scope+`"`)
		_, err := Whoami(ctx, endpoint, tok)
		assert.Error(t, err)
	})
	t.Run("authorization server down: 503", func(t *testing.T) {
		tok := issue(resource, demo.Scope)
		down()
		resp := postWhoami(t, endpoint, tok)
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		assert.NotEmpty(t, resp.Header.Get("Retry-After"))
		assert.Empty(t, resp.Header.Get("WWW-Authenticate"))
		body, _ := io.ReadAll(resp.Body)
		assert.NotContains(t, string(body), "introspection:")
	})
}

// RunWithTestServer runs Run against an introspectiontest server.
func RunWithTestServer(t *testing.T, newHandler NewHandler) {
	as := introspectiontest.NewServer()
	var once sync.Once
	down := func() { once.Do(as.Close) }
	defer down()
	issue := func(audience string, scopes ...string) string {
		return as.Issue(introspectiontest.TokenOptions{Subject: "alice", ClientID: "app", Scopes: scopes, Audience: []string{audience}})
	}
	Run(t, newHandler, Settings(as), issue, as.Revoke, down)
}

// RunDemo starts an example's run function with no INTROSPECTION_URL and
// replays the curl command it prints.
func RunDemo(t *testing.T, run func(ctx context.Context, addr string, out io.Writer) error) {
	t.Setenv("INTROSPECTION_URL", "")
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, "127.0.0.1:0", out) }()
	var endpoint, token string
	require.Eventually(t, func() bool {
		m := regexp.MustCompile(`curl -s (\S+) \\\n  -H 'Authorization: Bearer (\S+)'`).FindStringSubmatch(out.String())
		if m == nil {
			return false
		}
		endpoint, token = m[1], m[2]
		return true
	}, 10*time.Second, 10*time.Millisecond, "the demo printed no curl command")

	t.Run("the demo token's aud is the printed resource URL", func(t *testing.T) {
		m := regexp.MustCompile(`in-process test authorization server at (\S+)`).FindStringSubmatch(out.String())
		require.NotNil(t, m, "the demo printed no authorization server")
		v, err := introspection.NewVerifier(introspection.Settings{
			IntrospectionURL: m[1] + introspectiontest.IntrospectionPath,
			ClientID:         introspectiontest.ClientID,
			ClientSecret:     introspectiontest.ClientSecret,
		})
		require.NoError(t, err)
		defer v.Close()
		tok, err := v.Verify(ctx, token)
		require.NoError(t, err)
		assert.Equal(t, []string{printed(t, out.String(), "MCP endpoint")}, tok.Audience)
	})

	resp := postWhoami(t, endpoint, token)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	body, _ := io.ReadAll(resp.Body)
	assert.Contains(t, string(body), `"subject":"demo-user"`)
	c, err := Whoami(ctx, endpoint, token)
	require.NoError(t, err)
	assert.Equal(t, demo.Caller{Subject: "demo-user", ClientID: "demo-client", Scopes: []string{demo.Scope, "profile"}}, c)

	cancel()
	require.NoError(t, <-done)
}

// printed returns what an example server printed after label on a line.
func printed(t *testing.T, out, label string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(label) + `: (\S+)$`).FindStringSubmatch(out)
	require.NotNil(t, m, "no %q in %q", label, out)
	return m[1]
}

// RunConfigured starts an example's run function against an authorization
// server named by INTROSPECTION_* and checks whose tokens it accepts: those
// for its own resource URL when INTROSPECTION_AUDIENCE is unset, those for
// INTROSPECTION_AUDIENCE when it is set.
func RunConfigured(t *testing.T, run func(ctx context.Context, addr string, out io.Writer) error) {
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
			as := introspectiontest.NewServer()
			defer as.Close()
			t.Setenv("INTROSPECTION_URL", as.IntrospectionURL)
			t.Setenv("INTROSPECTION_CLIENT_ID", introspectiontest.ClientID)
			t.Setenv("INTROSPECTION_CLIENT_SECRET", introspectiontest.ClientSecret)
			if tc.audience != "" {
				t.Setenv("INTROSPECTION_AUDIENCE", tc.audience)
			} else {
				t.Setenv("INTROSPECTION_AUDIENCE", "")
				require.NoError(t, os.Unsetenv("INTROSPECTION_AUDIENCE"))
			}
			ctx, cancel := context.WithCancel(context.Background())
			out := &syncBuffer{}
			done := make(chan error, 1)
			go func() { done <- run(ctx, "127.0.0.1:0", out) }()
			defer func() {
				cancel()
				require.NoError(t, <-done)
			}()
			require.Eventually(t, func() bool { return strings.Contains(out.String(), "Authorization server: ") },
				10*time.Second, 10*time.Millisecond, "the server printed no usage")
			endpoint := printed(t, out.String(), "MCP endpoint")
			audience := func(a string) string {
				if a == "" {
					return endpoint // the server's resource URL
				}
				return a
			}
			assert.Equal(t, audience(tc.accepted), printed(t, out.String(), "Accepted token audience"))
			issue := func(aud string) string {
				return as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{demo.Scope}, Audience: []string{aud}})
			}
			resp := postWhoami(t, endpoint, issue(audience(tc.accepted)))
			assert.Equal(t, http.StatusOK, resp.StatusCode, "token for %s", audience(tc.accepted))
			resp = postWhoami(t, endpoint, issue(audience(tc.refused)))
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "token for %s", audience(tc.refused))
		})
	}
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

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// RunWithOIDCProvider runs Run against oidc-provider, a certified OpenID
// provider (see the interop module).
func RunWithOIDCProvider(t *testing.T, newHandler NewHandler) {
	p := oidcprovider.Start(t)
	s := introspection.Settings{
		IntrospectionURL: p.IntrospectionURL,
		ClientID:         oidcprovider.BasicClientID,
		ClientSecret:     oidcprovider.ResourceServerSecret,
		Issuer:           p.Issuer,
		RequiredScopes:   []string{demo.Scope},
		Timeout:          2 * time.Second,
	}
	issue := func(audience string, scopes ...string) string { return p.TokenFor(t, audience, scopes...) }
	revoke := func(token string) { p.Revoke(t, token) }
	Run(t, newHandler, s, issue, revoke, p.Stop)
}
