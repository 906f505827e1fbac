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
