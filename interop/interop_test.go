package interop

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/interop/oidcprovider"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type clock struct {
	mu sync.Mutex
	d  time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.d)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.d += d
}

func verifier(t *testing.T, p *oidcprovider.Provider, edit func(*introspection.Settings)) *introspection.Verifier {
	t.Helper()
	s := introspection.Settings{
		IntrospectionURL: p.IntrospectionURL,
		ClientID:         oidcprovider.BasicClientID,
		ClientSecret:     oidcprovider.ResourceServerSecret,
		Issuer:           p.Issuer,
	}
	if edit != nil {
		edit(&s)
	}
	v, err := introspection.NewVerifier(s)
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	return v
}

func TestOIDCProvider(t *testing.T) {
	p := oidcprovider.Start(t)
	ctx := context.Background()

	t.Run("client credentials token verifies with both auth methods", func(t *testing.T) {
		for _, tc := range []struct {
			method introspection.ClientAuthMethod
			id     string
		}{
			{introspection.ClientSecretBasic, oidcprovider.BasicClientID},
			{introspection.ClientSecretPost, oidcprovider.PostClientID},
		} {
			t.Run(string(tc.method), func(t *testing.T) {
				v := verifier(t, p, func(s *introspection.Settings) {
					s.ClientAuthMethod = tc.method
					s.ClientID = tc.id
					s.RequiredScopes = []string{"mcp:tools"}
				})
				token := p.Token(t, "mcp:tools", "profile")
				require.Len(t, token, 43, "oidc-provider issues 43-character opaque tokens")
				got, err := v.Verify(ctx, token)
				require.NoError(t, err)
				assert.Equal(t, "app", got.ClientID)
				assert.Equal(t, []string{"mcp:tools", "profile"}, got.Scopes)
				assert.Equal(t, p.Issuer, got.Issuer)
				assert.Equal(t, "Bearer", got.TokenType)
				assert.WithinDuration(t, time.Now().Add(10*time.Minute), got.ExpiresAt, time.Minute)
				assert.WithinDuration(t, time.Now(), got.IssuedAt, time.Minute)
			})
		}
	})

	t.Run("unknown token is inactive", func(t *testing.T) {
		_, err := verifier(t, p, nil).Verify(ctx, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
		assert.ErrorIs(t, err, introspection.ErrTokenInactive)
	})

	t.Run("revoked token is rejected at once without cache", func(t *testing.T) {
		v := verifier(t, p, nil)
		token := p.Token(t, "mcp:tools")
		_, err := v.Verify(ctx, token)
		require.NoError(t, err)
		p.Revoke(t, token)
		_, err = v.Verify(ctx, token)
		assert.ErrorIs(t, err, introspection.ErrTokenInactive)
	})

	t.Run("revoked token is rejected once its cache entry ends", func(t *testing.T) {
		c := &clock{}
		v := verifier(t, p, func(s *introspection.Settings) {
			s.CacheTTL = time.Minute
			s.Now = c.Now
		})
		token := p.Token(t, "mcp:tools")
		_, err := v.Verify(ctx, token)
		require.NoError(t, err)
		p.Revoke(t, token)
		_, err = v.Verify(ctx, token)
		require.NoError(t, err, "still cached")
		c.Advance(time.Minute)
		_, err = v.Verify(ctx, token)
		assert.ErrorIs(t, err, introspection.ErrTokenInactive)
		assert.Equal(t, uint64(2), v.Stats().UpstreamRequests)
	})

	t.Run("required scopes are enforced", func(t *testing.T) {
		v := verifier(t, p, func(s *introspection.Settings) { s.RequiredScopes = []string{"mcp:tools"} })
		_, err := v.Verify(ctx, p.Token(t, "profile"))
		var se *introspection.ScopeError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, []string{"mcp:tools"}, se.Missing)
	})

	t.Run("audience: a token for this resource is accepted, others are refused", func(t *testing.T) {
		const resource = "http://127.0.0.1:8080/mcp"
		v := verifier(t, p, func(s *introspection.Settings) { s.Audience = []string{resource} })
		got, err := v.Verify(ctx, p.TokenFor(t, resource, "mcp:tools"))
		require.NoError(t, err)
		assert.Equal(t, []string{resource}, got.Audience)
		assert.Equal(t, []string{"mcp:tools"}, got.Scopes)
		for name, token := range map[string]string{
			"another resource": p.TokenFor(t, "https://other.example.com/mcp", "mcp:tools"),
			"no resource":      p.Token(t, "mcp:tools"),
		} {
			_, err := v.Verify(ctx, token)
			assert.ErrorIs(t, err, introspection.ErrAudienceMismatch, name)
		}
	})

	t.Run("wrong resource-server secret", func(t *testing.T) {
		for _, m := range []introspection.ClientAuthMethod{introspection.ClientSecretBasic, introspection.ClientSecretPost} {
			v := verifier(t, p, func(s *introspection.Settings) {
				s.ClientAuthMethod = m
				if m == introspection.ClientSecretPost {
					s.ClientID = oidcprovider.PostClientID
				}
				s.ClientSecret = "wrong " + oidcprovider.ResourceServerSecret
			})
			_, err := v.Verify(ctx, p.Token(t, "mcp:tools"))
			var ie *introspection.IntrospectionError
			require.ErrorAs(t, err, &ie)
			assert.ErrorIs(t, err, introspection.ErrIntrospectionFailed)
			assert.Equal(t, http.StatusUnauthorized, ie.StatusCode)
			assert.Equal(t, "invalid_client", ie.ErrorCode)
		}
	})

	t.Run("middleware end to end", func(t *testing.T) {
		v := verifier(t, p, func(s *introspection.Settings) { s.CacheTTL = time.Minute })
		srv := httptest.NewServer(introspection.RequireBearerToken(v, &introspection.MiddlewareOptions{
			Scopes: []string{"mcp:tools"},
		})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tok, _ := introspection.AccessTokenFromContext(r.Context())
			_, _ = io.WriteString(w, tok.ClientID)
		})))
		defer srv.Close()
		get := func(token string) (int, string) {
			req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
			require.NoError(t, err)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		code, body := get(p.Token(t, "mcp:tools"))
		assert.Equal(t, 200, code)
		assert.Equal(t, "app", body)
		code, _ = get("")
		assert.Equal(t, 401, code)
		code, _ = get("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
		assert.Equal(t, 401, code)
		code, _ = get(p.Token(t, "profile"))
		assert.Equal(t, 403, code)
	})
}

// TestUnencodedBasicRefused shows why RFC 6749 §2.3.1 encoding matters: the
// same secret sent with a plain SetBasicAuth is refused by oidc-provider.
func TestUnencodedBasicRefused(t *testing.T) {
	p := oidcprovider.Start(t)
	token := p.Token(t, "mcp:tools")
	req, err := http.NewRequest(http.MethodPost, p.IntrospectionURL, nil)
	require.NoError(t, err)
	req.Body = io.NopCloser(strings.NewReader("token=" + token))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(oidcprovider.BasicClientID, oidcprovider.ResourceServerSecret)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
}
