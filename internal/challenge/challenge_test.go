package challenge

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
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
