package introspection

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTokenSizeBoundAtAndPastMaxTokenSize checks the bound on a bearer
// token's length: a token of exactly maxTokenSize bytes is sent to the
// authorization server (which calls it inactive), one byte more is refused
// as malformed without a request.
func TestTokenSizeBoundAtAndPastMaxTokenSize(t *testing.T) {
	as := newAS(t, nil)
	v := newVerifier(t, as.IntrospectionURL, nil, nil)
	tests := []struct {
		name    string
		token   string
		wantErr error
		sent    bool
	}{
		{"one byte", "a", ErrTokenInactive, true},
		{"at the bound", strings.Repeat("a", maxTokenSize), ErrTokenInactive, true},
		{"at the bound with padding", strings.Repeat("a", maxTokenSize-2) + "==", ErrTokenInactive, true},
		{"past the bound", strings.Repeat("a", maxTokenSize+1), ErrMalformedToken, false},
		{"past the bound by padding", strings.Repeat("a", maxTokenSize) + "=", ErrMalformedToken, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.sent, validToken(tc.token))
			_, err := v.Verify(context.Background(), tc.token)
			require.ErrorIs(t, err, tc.wantErr)
			want := int64(0)
			if tc.sent {
				want = 1
			}
			assert.Equal(t, want, as.RequestsFor(tc.token))
		})
	}
}
