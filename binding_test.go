package introspection

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBoundTokenNeedsProof shows that a sender-constrained token is never
// accepted as a plain bearer token: not from a fresh answer, not from the
// built-in cache, not from a shared Cache, and not through the middleware.
func TestBoundTokenNeedsProof(t *testing.T) {
	const thumb = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	tests := []struct {
		name  string
		extra map[string]any
		want  error // nil: accepted
	}{
		{"cnf jkt", map[string]any{"cnf": map[string]any{"jkt": thumb}}, ErrProofRequired},
		{"cnf jkt with token_type DPoP", map[string]any{"token_type": "DPoP", "cnf": map[string]any{"jkt": thumb}}, ErrProofRequired},
		{"token_type DPoP without cnf", map[string]any{"token_type": "DPoP"}, ErrProofRequired},
		{"token_type dpop in lower case", map[string]any{"token_type": "dpop"}, ErrProofRequired},
		{"cnf x5t#S256 with token_type Bearer", map[string]any{"token_type": "Bearer", "cnf": map[string]any{"x5t#S256": thumb}}, ErrProofRequired},
		{"cnf with both", map[string]any{"cnf": map[string]any{"jkt": thumb, "x5t#S256": thumb}}, ErrProofRequired},
		{"cnf jkt beside unknown members", map[string]any{"cnf": map[string]any{"jkt": thumb, "kid": "k1"}}, ErrProofRequired},
		{"cnf with unknown members only", map[string]any{"cnf": map[string]any{"kid": "k1", "x5t": "sha1"}}, nil},
		{"empty cnf", map[string]any{"cnf": map[string]any{}}, nil},
		{"null cnf", map[string]any{"cnf": nil}, nil},
		{"token_type Bearer", map[string]any{"token_type": "Bearer"}, nil},
		{"cnf a string", map[string]any{"cnf": thumb}, ErrIntrospectionFailed},
		{"cnf an array", map[string]any{"cnf": []any{thumb}}, ErrIntrospectionFailed},
		{"cnf jkt a number", map[string]any{"cnf": map[string]any{"jkt": 1}}, ErrIntrospectionFailed},
		{"cnf jkt empty", map[string]any{"cnf": map[string]any{"jkt": ""}}, ErrIntrospectionFailed},
		{"cnf jkt null", map[string]any{"cnf": map[string]any{"jkt": nil}}, ErrIntrospectionFailed},
		{"cnf x5t#S256 an object", map[string]any{"cnf": map[string]any{"x5t#S256": map[string]any{}}}, ErrIntrospectionFailed},
	}
	caches := []struct {
		name string
		edit func(*Settings)
	}{
		{"no cache", nil},
		{"built-in cache", func(s *Settings) { s.CacheTTL = time.Minute }},
		{"shared cache", func(s *Settings) { s.CacheTTL = time.Minute; s.Cache = newMapCache(time.Now) }},
	}
	for _, c := range caches {
		for _, tc := range tests {
			t.Run(c.name+"/"+tc.name, func(t *testing.T) {
				as := newAS(t, nil)
				v := newVerifier(t, as.IntrospectionURL, nil, c.edit)
				tok := as.Issue(introspectiontest.TokenOptions{Extra: tc.extra})
				// The second call is a cache hit where there is a cache.
				for range 2 {
					got, err := v.Verify(context.Background(), tok)
					if tc.want == nil {
						require.NoError(t, err)
						assert.NotNil(t, got)
						continue
					}
					assert.ErrorIs(t, err, tc.want)
					assert.Nil(t, got)
				}
			})
		}
	}
}

// TestBoundTokenAsBearerGets401 shows the middleware's answer to a bound
// token presented with the Bearer scheme: 401 invalid_token, and the
// handler never runs.
func TestBoundTokenAsBearerGets401(t *testing.T) {
	as := newAS(t, nil)
	v := newVerifier(t, as.IntrospectionURL, nil, nil)
	h := RequireBearerToken(v, nil)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		t.Error("the handler ran for a bound token presented as Bearer")
	}))
	for _, extra := range []map[string]any{
		{"token_type": "DPoP", "cnf": map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}},
		{"cnf": map[string]any{"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}},
	} {
		tok := as.Issue(introspectiontest.TokenOptions{Extra: extra})
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		assert.Equal(t, http.StatusUnauthorized, w.Code)
		assert.Contains(t, w.Header().Get("WWW-Authenticate"), `error="invalid_token"`)
	}
}
