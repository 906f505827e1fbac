package challenge

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestIsPreflight(t *testing.T) {
	tests := []struct {
		name   string
		method string
		header map[string]string
		want   bool
	}{
		{"preflight", http.MethodOptions, map[string]string{"Origin": "https://a", "Access-Control-Request-Method": "POST"}, true},
		{"no origin", http.MethodOptions, map[string]string{"Access-Control-Request-Method": "POST"}, false},
		{"no requested method", http.MethodOptions, map[string]string{"Origin": "https://a"}, false},
		{"with credentials", http.MethodOptions, map[string]string{"Origin": "https://a", "Access-Control-Request-Method": "POST", "Authorization": "Bearer x"}, false},
		{"not OPTIONS", http.MethodPost, map[string]string{"Origin": "https://a", "Access-Control-Request-Method": "POST"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/", nil)
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			assert.Equal(t, tc.want, IsPreflight(r))
		})
	}
}

func TestWriteError(t *testing.T) {
	w := httptest.NewRecorder()
	WriteError(w, http.StatusUnauthorized, "invalid_token")
	assert.Equal(t, http.StatusUnauthorized, w.Code)
	assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
	assert.Equal(t, "no-store", w.Header().Get("Cache-Control"))
	assert.Equal(t, `{"error":"invalid_token"}`+"\n", w.Body.String())
}

func TestValidAttr(t *testing.T) {
	for s, want := range map[string]bool{
		"":                        true,
		"https://a.example/x?y=1": true,
		"mcp:tools":               true,
		"a b":                     false,
		`a"b`:                     false,
		`a\b`:                     false,
		"a\x7f":                   false,
		"é":                       false,
		"a\nb":                    false,
	} {
		assert.Equal(t, want, ValidAttr(s), "%q", s)
	}
}

// TestInvalidTokenAnswersInTheRequestsScheme shows that the 401 challenge
// is of the scheme the request used: DPoP for the DPoP scheme, in any case,
// else Bearer; and that a metadata URL that cannot be sent is refused.
func TestInvalidTokenAnswersInTheRequestsScheme(t *testing.T) {
	refuse, ok := InvalidToken("https://mcp.example/.well-known/oauth-protected-resource")
	require.True(t, ok)
	for _, tc := range []struct{ authorization, want string }{
		{"", `Bearer error="invalid_token", resource_metadata="https://mcp.example/.well-known/oauth-protected-resource"`},
		{"Bearer abc", `Bearer error="invalid_token", resource_metadata="https://mcp.example/.well-known/oauth-protected-resource"`},
		{"DPoP abc", `DPoP error="invalid_token", resource_metadata="https://mcp.example/.well-known/oauth-protected-resource"`},
		{"dpop abc", `DPoP error="invalid_token", resource_metadata="https://mcp.example/.well-known/oauth-protected-resource"`},
		{"DPoPx abc", `Bearer error="invalid_token", resource_metadata="https://mcp.example/.well-known/oauth-protected-resource"`},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if tc.authorization != "" {
			r.Header.Set("Authorization", tc.authorization)
		}
		w := httptest.NewRecorder()
		refuse(w, r)
		assert.Equal(t, http.StatusUnauthorized, w.Code)
		assert.Equal(t, []string{tc.want}, w.Header().Values("WWW-Authenticate"), tc.authorization)
	}
	_, ok = InvalidToken(`https://mcp.example/"`)
	assert.False(t, ok)
}
