package introspection

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCallerIsSubjectElseClientElseNobody(t *testing.T) {
	tests := []struct {
		name   string
		answer string
		want   string
	}{
		{"user token", `{"active":true,"sub":"alice","client_id":"app"}`, "alice"},
		{"client credentials", `{"active":true,"client_id":"robot"}`, "robot"},
		{"neither", `{"active":true}`, ""},
		{"user token with username and sub", `{"active":true,"sub":"alice","username":"Alice","client_id":"app"}`, "alice"},
		{"username without sub", `{"active":true,"username":"alice","client_id":"app"}`, ""},
		{"empty username, client credentials", `{"active":true,"username":"","client_id":"robot"}`, "robot"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, jsonServer(t, 200, tc.answer).URL, nil, nil)
			tok, err := v.Verify(context.Background(), "tok")
			require.NoError(t, err)
			assert.Equal(t, tc.want, tok.Caller())
		})
	}
}

// TestNilAccessTokenHasNoCallerAndNoScope: a nil token speaks for nobody
// and holds no scope, rather than panicking in the code that asks.
func TestNilAccessTokenHasNoCallerAndNoScope(t *testing.T) {
	var tok *AccessToken
	assert.NotPanics(t, func() {
		assert.Empty(t, tok.Caller())
		assert.False(t, tok.HasScope("mcp:tools"))
	})
}

func TestCallerWithIssuer(t *testing.T) {
	tests := []struct {
		name string
		tok  *AccessToken
		want string
	}{
		{"subject", &AccessToken{Issuer: "https://as", Subject: "alice"}, "https://as|alice"},
		{"client", &AccessToken{Issuer: "https://as", Claims: map[string]any{"client_id": "robot"}}, "https://as|robot"},
		{"no issuer", &AccessToken{Subject: "alice"}, ""},
		{"issuer with a bar", &AccessToken{Issuer: "https://a|b", Subject: "c"}, ""},
		{"no caller", &AccessToken{Issuer: "https://as"}, ""},
		{"nil", nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.tok.CallerWithIssuer())
		})
	}
}
