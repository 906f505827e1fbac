package introspection

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestParseSigningKeyErrorsQuoteOnlyKnownNames shows that ParseSigningKey's
// errors never repeat text of the input (a JWK's kty, crv, alg or use, a
// PEM block's type, a PKCS#8 algorithm identifier) unless it is one of a
// fixed set of names it knows, which it quotes; and that its errors are
// at most maxSigningKeyError bytes however long the input's values.
func TestParseSigningKeyErrorsQuoteOnlyKnownNames(t *testing.T) {
	const marker = "CONTENT-OF-THE-FILE-4b1d"
	long := marker + strings.Repeat("x", 64<<10)
	p256 := signingTestKeys()["P-256"]
	ed := signingTestKeys()["Ed25519"]
	unknownPKCS8, err := asn1.Marshal(struct {
		Version    int
		Algorithm  pkix.AlgorithmIdentifier
		PrivateKey []byte
	}{0, pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 3, 4, 987654321}}, []byte{1}})
	require.NoError(t, err)
	for _, tc := range []struct {
		name    string
		data    []byte
		hidden  string // never in the error
		wantErr string // in the error
	}{
		{"JWK kty", []byte(`{"kty":"` + long + `","d":"AQAB"}`), marker, `"kty" is not supported`},
		{"JWK EC crv", []byte(`{"kty":"EC","crv":"` + long + `","d":"AQAB"}`), marker, "curve (not one it knows)"},
		{"JWK OKP crv", []byte(`{"kty":"OKP","crv":"` + long + `","d":"AQAB"}`), marker, "curve (not one it knows)"},
		{"JWK use", signingKeyJWK(p256, map[string]any{"use": long}), marker, `"use" is another value`},
		{"JWK alg", signingKeyJWK(p256, map[string]any{"alg": long}), marker, `"alg" (not a JWS algorithm it knows)`},
		{"PEM private key type", signingKeyPEM(marker+" PRIVATE KEY", []byte{1}), marker, "not supported"},
		{"PEM public key type", signingKeyPEM(marker+" PUBLIC KEY", []byte{1}), marker, "(a block of another type) but no private key"},
		{"PEM certificate type", signingKeyPEM(marker+" CERTIFICATE", []byte{1}), marker, "(a block of another type) but no private key"},
		{"PEM first block type", signingKeyPEM(long, []byte{1}), marker, "the first block is of a type it does not know"},
		{"PKCS#8 algorithm", signingKeyPEM("PRIVATE KEY", unknownPKCS8), "987654321", "PKCS#8 key's algorithm is not supported"},

		// Names it knows are quoted.
		{"JWK curve P-521", signingKeyJWK(p256, map[string]any{"crv": "P-521"}), "", `curve "P-521" is not supported`},
		{"JWK curve X25519", signingKeyJWK(ed, map[string]any{"crv": "X25519"}), "", `curve "X25519" is not supported`},
		{"JWK use enc", signingKeyJWK(p256, map[string]any{"use": "enc"}), "", `"use" is "enc"`},
		{"JWK alg ES512", signingKeyJWK(p256, map[string]any{"alg": "ES512"}), "", `"alg" "ES512" is not supported`},
		{"JWK alg of another key", signingKeyJWK(p256, map[string]any{"alg": "RS256"}), "", `"RS256" does not fit`},
		{"PEM public key", signingKeyPEM("PUBLIC KEY", []byte{1}), "", `("PUBLIC KEY") but no private key`},
		{"PEM certificate", signingKeyPEM("CERTIFICATE", []byte{1}), "", `("CERTIFICATE") but no private key`},
		{"PEM parameters alone", signingKeyPEM("EC PARAMETERS", []byte{1}), "", `the first block is "EC PARAMETERS"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParseSigningKey(tc.data)
			require.Error(t, err)
			assert.Nil(t, k)
			msg := err.Error()
			assert.True(t, strings.HasPrefix(msg, "introspection: "), msg)
			assert.Contains(t, msg, tc.wantErr)
			if tc.hidden != "" {
				assert.NotContains(t, msg, tc.hidden)
			}
			assert.LessOrEqual(t, len(msg), maxSigningKeyError+len("…"))
		})
	}
}

// TestParseSigningKeyErrorsAreBounded shows the bound on the length of
// ParseSigningKey's errors: an error at the bound is kept whole, a longer
// one is cut to it and still wraps the whole.
func TestParseSigningKeyErrorsAreBounded(t *testing.T) {
	at := &testError{strings.Repeat("a", maxSigningKeyError)}
	assert.Same(t, error(at), boundError(at))
	past := &testError{strings.Repeat("a", maxSigningKeyError+1)}
	got := boundError(past)
	assert.Equal(t, strings.Repeat("a", maxSigningKeyError)+"…", got.Error())
	assert.ErrorIs(t, got, past)
}

type testError struct{ msg string }

func (e *testError) Error() string { return e.msg }
