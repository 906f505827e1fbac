package introspection

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewVerifierValidation(t *testing.T) {
	valid := Settings{IntrospectionURL: "https://as.example.com/introspect", ClientID: "rs", ClientSecret: "s"}
	tests := []struct {
		name    string
		edit    func(*Settings)
		wantErr string // empty: accepted
	}{
		{"valid https", func(*Settings) {}, ""},
		{"missing URL", func(s *Settings) { s.IntrospectionURL = "" }, "IntrospectionURL is required"},
		{"missing client id", func(s *Settings) { s.ClientID = "" }, "ClientID is required"},
		{"missing client secret", func(s *Settings) { s.ClientSecret = "" }, "ClientSecret is required"},
		{"unknown auth method", func(s *Settings) { s.ClientAuthMethod = "none" }, `unsupported ClientAuthMethod "none"`},
		{"client_secret_post", func(s *Settings) { s.ClientAuthMethod = ClientSecretPost }, ""},
		{"negative timeout", func(s *Settings) { s.Timeout = -time.Second }, "Timeout must not be negative"},
		{"negative leeway", func(s *Settings) { s.Leeway = -time.Second }, "Leeway must not be negative"},
		{"negative cache ttl", func(s *Settings) { s.CacheTTL = -time.Second }, "CacheTTL must not be negative"},
		{"negative negative-cache ttl", func(s *Settings) { s.NegativeCacheTTL = -time.Second }, "NegativeCacheTTL must not be negative"},
		{"negative cache size", func(s *Settings) { s.MaxCacheSize = -1 }, "MaxCacheSize must not be negative"},
		{"http to remote host", func(s *Settings) { s.IntrospectionURL = "http://as.example.com/introspect" }, "not loopback"},
		{"http to remote host allowed", func(s *Settings) {
			s.IntrospectionURL = "http://as.internal/introspect"
			s.AllowInsecureHTTP = true
		}, ""},
		{"http to 127.0.0.1", func(s *Settings) { s.IntrospectionURL = "http://127.0.0.1:8080/introspect" }, ""},
		{"http to 127.1.2.3", func(s *Settings) { s.IntrospectionURL = "http://127.1.2.3/introspect" }, ""},
		{"http to ::1", func(s *Settings) { s.IntrospectionURL = "http://[::1]:8080/introspect" }, ""},
		{"http to localhost", func(s *Settings) { s.IntrospectionURL = "http://localhost:8080/introspect" }, ""},
		{"http to a name ending in localhost", func(s *Settings) { s.IntrospectionURL = "http://evil-localhost.com/introspect" }, "not loopback"},
		{"other scheme", func(s *Settings) { s.IntrospectionURL = "ftp://as.example.com/introspect" }, "must use https"},
		{"no host", func(s *Settings) { s.IntrospectionURL = "https:///introspect" }, "has no host"},
		{"credentials in URL", func(s *Settings) { s.IntrospectionURL = "https://u:p@as.example.com/introspect" }, "must not carry credentials"},
		{"unparsable URL", func(s *Settings) { s.IntrospectionURL = "https://as.example.com/%zz" }, "invalid IntrospectionURL"},
		{"empty required scope", func(s *Settings) { s.RequiredScopes = []string{""} }, "invalid required scope"},
		{"required scope with space", func(s *Settings) { s.RequiredScopes = []string{"a b"} }, "invalid required scope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := valid
			tc.edit(&s)
			v, err := NewVerifier(s)
			if tc.wantErr == "" {
				require.NoError(t, err)
				assert.NotNil(t, v)
				return
			}
			require.Error(t, err)
			assert.Nil(t, v)
			assert.Contains(t, err.Error(), tc.wantErr)
			assert.True(t, strings.HasPrefix(err.Error(), "introspection: "), err.Error())
		})
	}
}

func TestNewVerifierDefaultsAndCopy(t *testing.T) {
	s := Settings{
		IntrospectionURL: "https://as.example.com/introspect",
		ClientID:         "rs",
		ClientSecret:     "s",
		RequiredScopes:   []string{"read"},
	}
	v, err := NewVerifier(s)
	require.NoError(t, err)
	assert.Equal(t, 10*time.Second, v.s.Timeout)
	assert.Equal(t, ClientSecretBasic, v.s.ClientAuthMethod)
	assert.Equal(t, 10_000, v.s.MaxCacheSize)
	assert.Nil(t, v.cache, "caching is off by default")

	s.RequiredScopes[0] = "changed"
	assert.Equal(t, []string{"read"}, v.s.RequiredScopes, "settings are copied in")
}

// TestRequest checks the RFC 7662 §2.1 request for both client
// authentication methods, with a secret that needs RFC 6749 §2.3.1 encoding.
func TestRequest(t *testing.T) {
	const secret = "p@ss:w+rd%/ x"
	tests := []struct {
		name   string
		method ClientAuthMethod
	}{
		{"default is client_secret_basic", ""},
		{"client_secret_basic", ClientSecretBasic},
		{"client_secret_post", ClientSecretPost},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				assert.Equal(t, http.MethodPost, r.Method)
				assert.Equal(t, "application/x-www-form-urlencoded", r.Header.Get("Content-Type"))
				assert.Equal(t, "application/json", r.Header.Get("Accept"))
				assert.Empty(t, r.URL.RawQuery, "nothing goes in the query")
				require.NoError(t, r.ParseForm())
				assert.Equal(t, "tok-123", r.PostForm.Get("token"))
				assert.Equal(t, "access_token", r.PostForm.Get("token_type_hint"))
				if tc.method == ClientSecretPost {
					assert.Empty(t, r.Header.Get("Authorization"))
					assert.Equal(t, "rs client", r.PostForm.Get("client_id"))
					assert.Equal(t, secret, r.PostForm.Get("client_secret"))
				} else {
					assert.NotContains(t, r.PostForm, "client_id")
					assert.NotContains(t, r.PostForm, "client_secret")
					auth := r.Header.Get("Authorization")
					require.True(t, strings.HasPrefix(auth, "Basic "), auth)
					raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(auth, "Basic "))
					require.NoError(t, err)
					assert.Equal(t, "rs+client:p%40ss%3Aw%2Brd%25%2F+x", string(raw))
				}
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"active":true,"client_id":"app","scope":"read"}`))
			}))
			defer srv.Close()
			v := newVerifier(t, srv.URL, nil, func(s *Settings) {
				s.ClientID = "rs client"
				s.ClientSecret = secret
				s.ClientAuthMethod = tc.method
			})
			tok, err := v.Verify(context.Background(), "tok-123")
			require.NoError(t, err)
			assert.Equal(t, "app", tok.ClientID)
			assert.Equal(t, int32(1), calls.Load())
		})
	}
}

// TestCredentialsAgainstTestServer checks that the test server's RFC 6749
// §2.3.1 decoding and the verifier's encoding meet, for both methods.
func TestCredentialsAgainstTestServer(t *testing.T) {
	for _, m := range []ClientAuthMethod{ClientSecretBasic, ClientSecretPost} {
		t.Run(string(m), func(t *testing.T) {
			as := newAS(t, nil)
			tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{"read"}})
			v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) { s.ClientAuthMethod = m })
			got, err := v.Verify(context.Background(), tok)
			require.NoError(t, err)
			assert.Equal(t, "alice", got.Subject)

			bad := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
				s.ClientAuthMethod = m
				s.ClientSecret = "wrong"
			})
			_, err = bad.Verify(context.Background(), tok)
			var ie *IntrospectionError
			require.ErrorAs(t, err, &ie)
			assert.ErrorIs(t, err, ErrIntrospectionFailed)
			assert.Equal(t, http.StatusUnauthorized, ie.StatusCode)
			assert.Equal(t, "invalid_client", ie.ErrorCode)
			assert.Equal(t, "client authentication failed", ie.ErrorDescription)
		})
	}
}

// TestAnswerDecoding covers the shapes of answers real servers send.
func TestAnswerDecoding(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		check func(t *testing.T, tok *AccessToken)
	}{
		{"scope as string", `{"active":true,"scope":"read write"}`, func(t *testing.T, tok *AccessToken) {
			assert.Equal(t, []string{"read", "write"}, tok.Scopes)
		}},
		{"scope as array", `{"active":true,"scope":["read","write"]}`, func(t *testing.T, tok *AccessToken) {
			assert.Equal(t, []string{"read", "write"}, tok.Scopes)
		}},
		{"scope with extra whitespace", `{"active":true,"scope":"  read \t write\n "}`, func(t *testing.T, tok *AccessToken) {
			assert.Equal(t, []string{"read", "write"}, tok.Scopes)
		}},
		{"empty scope", `{"active":true,"scope":""}`, func(t *testing.T, tok *AccessToken) {
			assert.Empty(t, tok.Scopes)
		}},
		{"no scope", `{"active":true}`, func(t *testing.T, tok *AccessToken) {
			assert.Empty(t, tok.Scopes)
		}},
		{"scp fallback", `{"active":true,"scp":["a","b"]}`, func(t *testing.T, tok *AccessToken) {
			assert.Equal(t, []string{"a", "b"}, tok.Scopes)
		}},
		{"scope wins over scp", `{"active":true,"scope":"a","scp":["b"]}`, func(t *testing.T, tok *AccessToken) {
			assert.Equal(t, []string{"a"}, tok.Scopes)
		}},
		{"aud as string", `{"active":true,"aud":"api"}`, func(t *testing.T, tok *AccessToken) {
			assert.Equal(t, []string{"api"}, tok.Audience)
		}},
		{"aud as array", `{"active":true,"aud":["api","mcp"]}`, func(t *testing.T, tok *AccessToken) {
			assert.Equal(t, []string{"api", "mcp"}, tok.Audience)
		}},
		{"null members are absent", `{"active":true,"scope":null,"aud":null,"exp":null,"sub":null,"client_id":null}`, func(t *testing.T, tok *AccessToken) {
			assert.Empty(t, tok.Scopes)
			assert.Empty(t, tok.Audience)
			assert.True(t, tok.ExpiresAt.IsZero())
			assert.Equal(t, "unknown", tok.ClientID)
		}},
		{"fractional dates", `{"active":true,"exp":4102444800.5,"iat":1700000000.25,"nbf":1700000000}`, func(t *testing.T, tok *AccessToken) {
			assert.Equal(t, time.Unix(4102444800, 500_000_000).UTC(), tok.ExpiresAt)
			assert.Equal(t, time.Unix(1700000000, 250_000_000).UTC(), tok.IssuedAt)
			assert.Equal(t, time.Unix(1700000000, 0).UTC(), tok.NotBefore)
		}},
		{"all members", `{"active":true,"client_id":"app","sub":"alice","username":"Alice","iss":"https://as","token_type":"Bearer","jti":"j1","ext":{"k":[1,2]}}`, func(t *testing.T, tok *AccessToken) {
			assert.Equal(t, "app", tok.ClientID)
			assert.Equal(t, "alice", tok.Subject)
			assert.Equal(t, "Alice", tok.Username)
			assert.Equal(t, "https://as", tok.Issuer)
			assert.Equal(t, "Bearer", tok.TokenType)
			assert.Equal(t, "j1", tok.Claims["jti"])
			assert.Equal(t, map[string]any{"k": []any{1.0, 2.0}}, tok.Claims["ext"])
			assert.Equal(t, true, tok.Claims["active"])
		}},
		{"client_id falls back to sub", `{"active":true,"sub":"alice"}`, func(t *testing.T, tok *AccessToken) {
			assert.Equal(t, "alice", tok.ClientID)
			assert.Equal(t, "alice", tok.Subject)
		}},
		{"client_id falls back to unknown", `{"active":true}`, func(t *testing.T, tok *AccessToken) {
			assert.Equal(t, "unknown", tok.ClientID)
			assert.Empty(t, tok.Subject)
		}},
		{"token_use access_token", `{"active":true,"token_use":"access_token"}`, func(t *testing.T, tok *AccessToken) {
			assert.Equal(t, "access_token", tok.Claims["token_use"])
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := jsonServer(t, http.StatusOK, tc.body)
			v := newVerifier(t, srv.URL, nil, nil)
			tok, err := v.Verify(context.Background(), "tok")
			require.NoError(t, err)
			assert.Equal(t, "tok", tok.Token)
			tc.check(t, tok)
		})
	}
}

// TestVerdicts checks each rejection of the token itself and each
// acceptance, against the test authorization server.
func TestVerdicts(t *testing.T) {
	clock := newFakeClock()
	now := clock.Now()
	as := newAS(t, clock)
	tests := []struct {
		name    string
		opts    introspectiontest.TokenOptions
		token   string // overrides the issued token
		revoke  bool
		edit    func(*Settings)
		wantErr error
	}{
		{name: "valid", opts: introspectiontest.TokenOptions{Scopes: []string{"read"}}},
		{name: "no exp", opts: introspectiontest.TokenOptions{NoExpiry: true}},
		{name: "no scope and none required", opts: introspectiontest.TokenOptions{}},
		{name: "unknown token is inactive", token: "never-issued", wantErr: ErrTokenInactive},
		{name: "revoked token is inactive", revoke: true, wantErr: ErrTokenInactive},
		{name: "expired by the verifier's clock", opts: introspectiontest.TokenOptions{Lifetime: time.Minute}, edit: func(s *Settings) {
			s.Now = func() time.Time { return now.Add(time.Minute) }
		}, wantErr: ErrTokenExpired},
		{name: "expired one second before", opts: introspectiontest.TokenOptions{Lifetime: time.Minute}, edit: func(s *Settings) {
			s.Now = func() time.Time { return now.Add(time.Minute - time.Second) }
		}},
		{name: "expired but within leeway", opts: introspectiontest.TokenOptions{Lifetime: time.Minute}, edit: func(s *Settings) {
			s.Now = func() time.Time { return now.Add(time.Minute + 10*time.Second) }
			s.Leeway = 30 * time.Second
		}},
		{name: "not valid yet", opts: introspectiontest.TokenOptions{NotBefore: now.Add(time.Minute)}, wantErr: ErrTokenNotYetValid},
		{name: "not valid yet but within leeway", opts: introspectiontest.TokenOptions{NotBefore: now.Add(time.Minute)}, edit: func(s *Settings) {
			s.Leeway = time.Minute
		}},
		{name: "required scopes granted", opts: introspectiontest.TokenOptions{Scopes: []string{"read", "write", "admin"}}, edit: func(s *Settings) {
			s.RequiredScopes = []string{"write", "read"}
		}},
		{name: "required scope missing", opts: introspectiontest.TokenOptions{Scopes: []string{"read"}}, edit: func(s *Settings) {
			s.RequiredScopes = []string{"read", "write"}
		}, wantErr: ErrInsufficientScope},
		{name: "required scope and no scope", opts: introspectiontest.TokenOptions{}, edit: func(s *Settings) {
			s.RequiredScopes = []string{"read"}
		}, wantErr: ErrInsufficientScope},
		{name: "issuer matches", edit: func(s *Settings) { s.Issuer = as.Issuer }},
		{name: "issuer differs", edit: func(s *Settings) { s.Issuer = "https://other" }, wantErr: ErrIssuerMismatch},
		{name: "issuer missing", opts: introspectiontest.TokenOptions{Extra: map[string]any{"iss": nil}}, edit: func(s *Settings) { s.Issuer = as.Issuer }, wantErr: ErrIssuerMismatch},
		{name: "audience matches one", opts: introspectiontest.TokenOptions{Audience: []string{"a", "mcp"}}, edit: func(s *Settings) {
			s.Audience = []string{"mcp", "other"}
		}},
		{name: "audience differs", opts: introspectiontest.TokenOptions{Audience: []string{"a"}}, edit: func(s *Settings) {
			s.Audience = []string{"mcp"}
		}, wantErr: ErrAudienceMismatch},
		{name: "audience missing", edit: func(s *Settings) { s.Audience = []string{"mcp"} }, wantErr: ErrAudienceMismatch},
		{name: "refresh token by token_use", opts: introspectiontest.TokenOptions{TokenUse: "refresh_token"}, wantErr: ErrNotAccessToken},
		{name: "refresh token by token_type", opts: introspectiontest.TokenOptions{Extra: map[string]any{"token_type": "refresh_token"}}, wantErr: ErrNotAccessToken},
		{name: "access token by token_use", opts: introspectiontest.TokenOptions{TokenUse: "access_token"}},
		{name: "exp zero is expired", opts: introspectiontest.TokenOptions{Extra: map[string]any{"exp": 0}}, wantErr: ErrTokenExpired},
		{name: "empty token", token: "", wantErr: ErrMalformedToken},
		{name: "token with space", token: "a b", wantErr: ErrMalformedToken},
		{name: "token with padding inside", token: "ab=c", wantErr: ErrMalformedToken},
		{name: "token of padding only", token: "==", wantErr: ErrMalformedToken},
		{name: "token with non-ASCII", token: "tökén", wantErr: ErrMalformedToken},
		{name: "token over 4 KiB", token: strings.Repeat("a", 4097), wantErr: ErrMalformedToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok := as.Issue(tc.opts)
			if tc.revoke {
				as.Revoke(tok)
			}
			if tc.token != "" || tc.wantErr == ErrMalformedToken {
				tok = tc.token
			}
			v := newVerifier(t, as.IntrospectionURL, clock, tc.edit)
			got, err := v.Verify(context.Background(), tok)
			if tc.wantErr == nil {
				require.NoError(t, err)
				assert.Equal(t, tok, got.Token)
				assert.Equal(t, uint64(1), v.Stats().Accepted)
				return
			}
			assert.Nil(t, got)
			require.ErrorIs(t, err, tc.wantErr)
			if tc.wantErr == ErrInsufficientScope {
				assert.NotErrorIs(t, err, ErrInvalidToken)
				var se *ScopeError
				require.ErrorAs(t, err, &se)
				assert.NotEmpty(t, se.Missing)
				assert.Equal(t, uint64(1), v.Stats().InsufficientScope)
			} else {
				assert.ErrorIs(t, err, ErrInvalidToken)
				assert.NotErrorIs(t, err, ErrIntrospectionFailed)
				assert.Equal(t, uint64(1), v.Stats().Rejected)
			}
			if tc.wantErr == ErrMalformedToken {
				assert.Zero(t, as.RequestsFor(tok), "a malformed token is not sent")
			}
		})
	}
}

func TestScopeErrorNamesMissing(t *testing.T) {
	as := newAS(t, nil)
	tok := as.Issue(introspectiontest.TokenOptions{Scopes: []string{"read"}})
	v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) { s.RequiredScopes = []string{"read", "write", "admin"} })
	_, err := v.Verify(context.Background(), tok)
	var se *ScopeError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, []string{"write", "admin"}, se.Missing)
	assert.Equal(t, "introspection: insufficient scope: missing write admin", err.Error())
}

func TestMissingContentTypeTolerated(t *testing.T) {
	as := newAS(t, nil)
	as.SetFault(introspectiontest.Fault{ContentType: "-"})
	tok := as.Issue(introspectiontest.TokenOptions{})
	v := newVerifier(t, as.IntrospectionURL, nil, nil)
	_, err := v.Verify(context.Background(), tok)
	require.NoError(t, err)
}

func TestJSONContentTypes(t *testing.T) {
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "application/token-introspection+json", "APPLICATION/JSON"} {
		t.Run(ct, func(t *testing.T) {
			as := newAS(t, nil)
			as.SetFault(introspectiontest.Fault{ContentType: ct})
			tok := as.Issue(introspectiontest.TokenOptions{})
			v := newVerifier(t, as.IntrospectionURL, nil, nil)
			_, err := v.Verify(context.Background(), tok)
			require.NoError(t, err)
		})
	}
}

func TestBodyTooLarge(t *testing.T) {
	big := `{"active":true,"pad":"` + strings.Repeat("x", maxBodySize) + `"}`
	as := newAS(t, nil)
	as.SetFault(introspectiontest.Fault{Body: big})
	v := newVerifier(t, as.IntrospectionURL, nil, nil)
	_, err := v.Verify(context.Background(), as.Issue(introspectiontest.TokenOptions{}))
	var ie *IntrospectionError
	require.ErrorAs(t, err, &ie)
	assert.Equal(t, FailureTooLarge, ie.Kind)
}

// TestRedirectsNotFollowed sends the verifier to a server that redirects to
// one that would say active, with the verifier's client and a caller's.
func TestRedirectsNotFollowed(t *testing.T) {
	as := newAS(t, nil)
	tok := as.Issue(introspectiontest.TokenOptions{})
	for _, status := range []int{301, 302, 303, 307, 308} {
		for _, own := range []bool{true, false} {
			t.Run(fmt.Sprintf("%d own client %t", status, own), func(t *testing.T) {
				before := as.Requests()
				redirector := httptest.NewServer(http.RedirectHandler(as.IntrospectionURL, status))
				defer redirector.Close()
				v := newVerifier(t, redirector.URL, nil, func(s *Settings) {
					if !own {
						s.HTTPClient = &http.Client{}
					}
				})
				_, err := v.Verify(context.Background(), tok)
				var ie *IntrospectionError
				require.ErrorAs(t, err, &ie)
				assert.Equal(t, FailureRedirect, ie.Kind)
				assert.Equal(t, status, ie.StatusCode)
				assert.Equal(t, before, as.Requests(), "the redirect target received nothing")
			})
		}
	}
}

func TestCallerHTTPClientNotModified(t *testing.T) {
	c := &http.Client{}
	as := newAS(t, nil)
	newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) { s.HTTPClient = c })
	assert.Nil(t, c.CheckRedirect)
}

func TestRetryAfter(t *testing.T) {
	as := newAS(t, nil)
	as.SetFault(introspectiontest.Fault{Status: 429, Header: http.Header{"Retry-After": {"7"}}})
	v := newVerifier(t, as.IntrospectionURL, nil, nil)
	_, err := v.Verify(context.Background(), as.Issue(introspectiontest.TokenOptions{}))
	var ie *IntrospectionError
	require.ErrorAs(t, err, &ie)
	assert.Equal(t, 429, ie.StatusCode)
	assert.Equal(t, 7*time.Second, ie.RetryAfter)
}

// TestTimeout checks that Settings.Timeout bounds a stalled server and that
// the error is a failed introspection, not the caller's deadline.
func TestTimeout(t *testing.T) {
	as := newAS(t, nil)
	as.SetFault(introspectiontest.Fault{Latency: time.Minute})
	v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) { s.Timeout = 50 * time.Millisecond })
	_, err := v.Verify(context.Background(), as.Issue(introspectiontest.TokenOptions{}))
	var ie *IntrospectionError
	require.ErrorAs(t, err, &ie)
	assert.Equal(t, FailureTimeout, ie.Kind)
	assert.NotErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "50ms")
}

func TestTransportError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	v := newVerifier(t, "http://"+addr+"/introspect", nil, nil)
	_, err = v.Verify(context.Background(), "tok")
	var ie *IntrospectionError
	require.ErrorAs(t, err, &ie)
	assert.Equal(t, FailureTransport, ie.Kind)
	assert.Zero(t, ie.StatusCode)
}

// TestCallerContext checks that a caller whose context ends gets its own
// context error, and that other callers sharing the request are unaffected.
func TestCallerContext(t *testing.T) {
	t.Run("already canceled", func(t *testing.T) {
		as := newAS(t, nil)
		v := newVerifier(t, as.IntrospectionURL, nil, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := v.Verify(ctx, as.Issue(introspectiontest.TokenOptions{}))
		assert.ErrorIs(t, err, context.Canceled)
		assert.NotErrorIs(t, err, ErrInvalidToken)
		assert.Zero(t, as.Requests())
	})
	t.Run("deadline while waiting", func(t *testing.T) {
		as := newAS(t, nil)
		as.SetFault(introspectiontest.Fault{Latency: 200 * time.Millisecond})
		v := newVerifier(t, as.IntrospectionURL, nil, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		_, err := v.Verify(ctx, as.Issue(introspectiontest.TokenOptions{}))
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.NotErrorIs(t, err, ErrInvalidToken)
		assert.NotErrorIs(t, err, ErrIntrospectionFailed)
		assert.Equal(t, uint64(1), v.Stats().Canceled)
	})
	t.Run("one canceled caller does not fail the others", func(t *testing.T) {
		release := make(chan struct{})
		var calls atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			<-release
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"active":true,"sub":"alice"}`))
		}))
		defer srv.Close()
		defer close(release)
		v := newVerifier(t, srv.URL, nil, nil)

		leaderCtx, cancelLeader := context.WithCancel(context.Background())
		leaderErr := make(chan error, 1)
		go func() {
			_, err := v.Verify(leaderCtx, "shared")
			leaderErr <- err
		}()
		require.Eventually(t, func() bool { return calls.Load() == 1 }, 5*time.Second, time.Millisecond)

		waiter := make(chan error, 1)
		go func() {
			tok, err := v.Verify(context.Background(), "shared")
			if err == nil && tok.Subject != "alice" {
				err = errors.New("wrong subject")
			}
			waiter <- err
		}()
		cancelLeader()
		assert.ErrorIs(t, <-leaderErr, context.Canceled)
		// Wait until the second caller has joined the flight, then let the
		// server answer.
		require.Eventually(t, func() bool {
			return v.Stats().Canceled == 1 && v.waiters("shared") == 1
		}, 5*time.Second, time.Millisecond)
		release <- struct{}{}
		require.NoError(t, <-waiter)
		assert.Equal(t, int32(1), calls.Load(), "the second caller shared the first request")
	})
}

// TestCollapsing checks that concurrent calls for one token send one
// request, without a cache. The server holds its answer until every other
// caller has joined the flight, which the verifier counts: no timing.
func TestCollapsing(t *testing.T) {
	const n = 1000
	var calls atomic.Int32
	var v *Verifier
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		// Answer once every other caller has joined the flight (or, if
		// one never does, after a while, so that the test fails on the
		// count rather than hangs).
		for deadline := time.Now().Add(30 * time.Second); v.waiters("hot") < n-1 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"active":true,"scope":"read"}`))
	}))
	defer srv.Close()
	v = newVerifier(t, srv.URL, nil, nil)

	var wg sync.WaitGroup
	var accepted atomic.Int32
	for range n {
		wg.Go(func() {
			tok, err := v.Verify(context.Background(), "hot")
			if err == nil && tok.Token == "hot" {
				accepted.Add(1)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(n), accepted.Load())
	assert.Equal(t, int32(1), calls.Load())
	st := v.Stats()
	assert.Equal(t, uint64(1), st.UpstreamRequests)
	assert.Equal(t, uint64(n-1), st.CollapsedWaiters)
}

// TestNoSecretsInOutput captures every place the secret or a token could
// show: fmt and slog output of Settings, errors, and the verifier's logs.
func TestNoSecretsInOutput(t *testing.T) {
	const secret = "s3cr3t-value"
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	as := newAS(t, nil)
	as.AddClient("rs", secret)
	s := Settings{IntrospectionURL: as.IntrospectionURL, ClientID: "rs", ClientSecret: secret, Logger: logger}

	var out bytes.Buffer
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		fmt.Fprintf(&out, verb+"\n", s)
		fmt.Fprintf(&out, verb+"\n", &s)
	}
	fmt.Fprintln(&out, s)
	logger.Info("settings", "settings", s)
	assert.Contains(t, out.String(), "REDACTED")

	v, err := NewVerifier(s)
	require.NoError(t, err)
	tok := as.Issue(introspectiontest.TokenOptions{Scopes: []string{"read"}})
	got := v.VerifyToken(context.Background(), tok)
	require.NotNil(t, got)
	fmt.Fprintf(&out, "%v %+v %s\n", got, got, got)

	// Rejections and failures, with their errors and logs.
	for _, fault := range []introspectiontest.Fault{
		{},
		{Status: 500, Body: `{"error":"server_error"}`},
		{Body: `{"active":"yes"}`},
		{Latency: time.Second},
	} {
		as.SetFault(fault)
		v, err := NewVerifier(Settings{IntrospectionURL: as.IntrospectionURL, ClientID: "rs", ClientSecret: secret,
			Logger: logger, RequiredScopes: []string{"admin"}, Timeout: 100 * time.Millisecond})
		require.NoError(t, err)
		assert.Nil(t, v.VerifyToken(context.Background(), tok))
		_, err = v.Verify(context.Background(), tok)
		require.Error(t, err)
		fmt.Fprintln(&out, err.Error())
	}
	bad, err := NewVerifier(Settings{IntrospectionURL: as.IntrospectionURL, ClientID: "rs", ClientSecret: "wrong-" + secret, Logger: logger})
	require.NoError(t, err)
	_, err = bad.Verify(context.Background(), tok)
	require.Error(t, err)
	fmt.Fprintln(&out, err.Error())

	assert.Contains(t, logs.String(), "token rejected")
	assert.Contains(t, logs.String(), "request failed")
	for name, text := range map[string]string{"fmt and errors": out.String(), "logs": logs.String()} {
		assert.NotContains(t, text, secret, name)
		assert.NotContains(t, text, tok, name)
	}
}

func TestVerifyTokenLogsReason(t *testing.T) {
	var logs bytes.Buffer
	as := newAS(t, nil)
	v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
		s.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	assert.Nil(t, v.VerifyToken(context.Background(), "unknown-token"))
	assert.Contains(t, logs.String(), "level=DEBUG")
	assert.Contains(t, logs.String(), "token is not active")

	tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})
	got := v.VerifyToken(context.Background(), tok)
	require.NotNil(t, got)
	assert.Equal(t, "alice", got.Subject)
}

// TestRejectionsLoggedOnce checks that every rejection is logged once, at
// debug level, with its reason and without the token, whichever way the
// token came in: Verify, VerifyToken or the middleware.
func TestRejectionsLoggedOnce(t *testing.T) {
	as := newAS(t, nil)
	const resource = "https://mcp.example.com/mcp"
	issue := func(aud string, scopes []string, extra map[string]any) string {
		return as.Issue(introspectiontest.TokenOptions{Audience: []string{aud}, Scopes: scopes, Extra: extra})
	}
	tokens := []struct {
		name       string
		token      string
		wantReason string
		viaHeader  bool // the middleware hands it to Verify
	}{
		{"malformed", "not a b64token", "b64token", false},
		{"inactive", "never-issued", "not active", true},
		{"expired", issue(resource, []string{"mcp:tools"}, map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}), "expired", true},
		{"audience", issue("https://other.example.com", []string{"mcp:tools"}, nil), "audience", true},
		{"scope", issue(resource, []string{"read"}, nil), "missing mcp:tools", true},
	}
	entries := []struct {
		name string
		call func(v *Verifier, token string)
	}{
		{"Verify", func(v *Verifier, token string) { _, _ = v.Verify(context.Background(), token) }},
		{"VerifyToken", func(v *Verifier, token string) { _ = v.VerifyToken(context.Background(), token) }},
		{"RequireBearerToken", func(v *Verifier, token string) {
			r := httptest.NewRequest(http.MethodGet, "/mcp", nil)
			r.Header.Set("Authorization", "Bearer "+token)
			w := httptest.NewRecorder()
			RequireBearerToken(v, nil)(whoami).ServeHTTP(w, r)
			require.Contains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, w.Code)
		}},
	}
	for _, tc := range tokens {
		for _, entry := range entries {
			if entry.name == "RequireBearerToken" && !tc.viaHeader {
				continue
			}
			t.Run(tc.name+"/"+entry.name, func(t *testing.T) {
				logs := &recordingHandler{}
				v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
					s.Logger = slog.New(logs)
					s.Audience = []string{resource}
					s.RequiredScopes = []string{"mcp:tools"}
				})
				entry.call(v, tc.token)
				got := logs.matching("token rejected")
				require.Len(t, got, 1, logs.text())
				assert.Equal(t, slog.LevelDebug, got[0].Level)
				reason, _ := attr(got[0], "reason")
				assert.Contains(t, reason, tc.wantReason)
				assert.NotContains(t, logs.text(), tc.token)
			})
		}
	}
}

// TestConnectionReuse checks that the default client keeps its connection.
func TestConnectionReuse(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"active":true}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	v := newVerifier(t, srv.URL, nil, nil)
	for i := range 20 {
		_, err := v.Verify(context.Background(), fmt.Sprintf("tok%d", i))
		require.NoError(t, err)
	}
	assert.Equal(t, int32(1), conns.Load())
}

func TestSettingsFromEnv(t *testing.T) {
	secretFile := t.TempDir() + "/secret"
	require.NoError(t, writeFile(secretFile, "from-file\n"))
	tests := []struct {
		name    string
		prefix  string
		env     map[string]string
		want    Settings
		wantErr string
	}{
		{name: "all values", env: map[string]string{
			"INTROSPECTION_URL":                 "https://as/introspect",
			"INTROSPECTION_CLIENT_ID":           "rs",
			"INTROSPECTION_CLIENT_SECRET":       " se cret ",
			"INTROSPECTION_CLIENT_AUTH_METHOD":  "client_secret_post",
			"INTROSPECTION_TIMEOUT":             "5s",
			"INTROSPECTION_REQUIRED_SCOPES":     "read, write  admin",
			"INTROSPECTION_AUDIENCE":            "mcp,api",
			"INTROSPECTION_ISSUER":              "https://as",
			"INTROSPECTION_LEEWAY":              "30s",
			"INTROSPECTION_CACHE_TTL":           "1m",
			"INTROSPECTION_MAX_CACHE_SIZE":      "500",
			"INTROSPECTION_NEGATIVE_CACHE_TTL":  "10s",
			"INTROSPECTION_ALLOW_INSECURE_HTTP": "true",
		}, want: Settings{
			IntrospectionURL: "https://as/introspect", ClientID: "rs", ClientSecret: " se cret ",
			ClientAuthMethod: ClientSecretPost, Timeout: 5 * time.Second,
			RequiredScopes: []string{"read", "write", "admin"}, Audience: []string{"mcp", "api"},
			Issuer: "https://as", Leeway: 30 * time.Second, CacheTTL: time.Minute, MaxCacheSize: 500,
			NegativeCacheTTL: 10 * time.Second, AllowInsecureHTTP: true,
		}},
		{name: "custom prefix", prefix: "MCP_AUTH_", env: map[string]string{
			"MCP_AUTH_URL": "https://as/i", "MCP_AUTH_CLIENT_ID": "rs", "INTROSPECTION_CLIENT_ID": "ignored",
		}, want: Settings{IntrospectionURL: "https://as/i", ClientID: "rs"}},
		{name: "secret from file", env: map[string]string{"INTROSPECTION_CLIENT_SECRET_FILE": secretFile},
			want: Settings{ClientSecret: "from-file"}},
		{name: "secret and file", env: map[string]string{"INTROSPECTION_CLIENT_SECRET_FILE": secretFile, "INTROSPECTION_CLIENT_SECRET": "x"},
			wantErr: "set only one of"},
		{name: "missing secret file", env: map[string]string{"INTROSPECTION_CLIENT_SECRET_FILE": secretFile + ".missing"},
			wantErr: "INTROSPECTION_CLIENT_SECRET_FILE"},
		{name: "bad timeout", env: map[string]string{"INTROSPECTION_TIMEOUT": "10"}, wantErr: "INTROSPECTION_TIMEOUT"},
		{name: "negative leeway", env: map[string]string{"INTROSPECTION_LEEWAY": "-1s"}, wantErr: "INTROSPECTION_LEEWAY"},
		{name: "bad cache ttl", env: map[string]string{"INTROSPECTION_CACHE_TTL": "soon"}, wantErr: "INTROSPECTION_CACHE_TTL"},
		{name: "bad negative cache ttl", env: map[string]string{"INTROSPECTION_NEGATIVE_CACHE_TTL": "x"}, wantErr: "INTROSPECTION_NEGATIVE_CACHE_TTL"},
		{name: "bad cache size", env: map[string]string{"INTROSPECTION_MAX_CACHE_SIZE": "-5"}, wantErr: "INTROSPECTION_MAX_CACHE_SIZE"},
		{name: "bad bool", env: map[string]string{"INTROSPECTION_ALLOW_INSECURE_HTTP": "perhaps"}, wantErr: "INTROSPECTION_ALLOW_INSECURE_HTTP"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t, "INTROSPECTION_")
			for k, val := range tc.env {
				t.Setenv(k, val)
			}
			got, err := SettingsFromEnv(tc.prefix)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.NotContains(t, err.Error(), "from-file")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestSettingsFromEnvUnknownAuthMethodFailsInNewVerifier(t *testing.T) {
	t.Setenv("INTROSPECTION_URL", "https://as/introspect")
	t.Setenv("INTROSPECTION_CLIENT_ID", "rs")
	t.Setenv("INTROSPECTION_CLIENT_SECRET", "s")
	t.Setenv("INTROSPECTION_CLIENT_AUTH_METHOD", "client_secret_jws")
	s, err := SettingsFromEnv("")
	require.NoError(t, err)
	_, err = NewVerifier(s)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"client_secret_jws"`)
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"120", 2 * time.Minute},
		{"0", 0},
		{"-5", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, parseRetryAfter(tc.in, now), tc.in)
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct{ in, want string }{
		{"short", "short"},
		{"a\r\nb\x00", "a  b "},
		{"x \xff y", "x ? y"},
		{strings.Repeat("é", 10), strings.Repeat("é", 4) + "…"}, // cut on a rune boundary
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, truncate(tc.in, 9), "%q", tc.in)
	}
}

func TestAccessTokenHelpers(t *testing.T) {
	as := newAS(t, nil)
	v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) { s.RequiredScopes = []string{"read"} })
	tok, err := v.Verify(context.Background(), as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{"read", "write"}}))
	require.NoError(t, err)
	assert.True(t, tok.HasScope("write"))
	assert.False(t, tok.HasScope("admin"))
	assert.NotContains(t, tok.String(), tok.Token)
	assert.Contains(t, tok.String(), "alice")

	scopes := v.RequiredScopes()
	assert.Equal(t, []string{"read"}, scopes)
	scopes[0] = "changed"
	assert.Equal(t, []string{"read"}, v.RequiredScopes(), "a copy")
}
