package introspection

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReview14TLSFileErrorsNeverShowWhatTheFileHolds shows that
// SettingsFromEnv passes tls.LoadX509KeyPair's error on as it is, and that
// error quotes the files: here the type labels of the PEM blocks in
// TLS_CERT_FILE ("after skipping PEM blocks of the following types:
// [...]"). SettingsFromEnv's doc and the agreed API: errors "never show
// what the file holds". (cmd/introspect knows it: keyPairError replaces
// this very error for its -tls-cert-file flag, "its errors can quote their
// contents", but the same files given by INTROSPECTION_TLS_CERT_FILE reach
// its output raw.)
func TestReview14TLSFileErrorsNeverShowWhatTheFileHolds(t *testing.T) {
	const marker = "CONTENT-OF-THE-FILE-4b1d"
	cert := selfSignedCertificate(t, "rs")
	certFile := tempFile(t, "cert.pem", []byte(
		"-----BEGIN "+marker+"-----\nAAAA\n-----END "+marker+"-----\n"+
			"-----BEGIN OTHER-----\nAAAA\n-----END OTHER-----\n"))
	keyFile := tempFile(t, "key.pem", pkcs8PEM(t, cert.PrivateKey))
	clearEnv(t, "INTROSPECTION_")
	t.Setenv("INTROSPECTION_TLS_CERT_FILE", certFile)
	t.Setenv("INTROSPECTION_TLS_KEY_FILE", keyFile)

	_, err := SettingsFromEnv("")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "INTROSPECTION_TLS_CERT_FILE", "precondition: the error names the variable")
	assert.NotContains(t, err.Error(), marker, "the error shows what the certificate file holds")
}

// TestReview14PrivateKeyFileErrorsNeverShowWhatTheFileHolds shows that an
// unusable PRIVATE_KEY_FILE gives an error that quotes the file: the
// value of a JWK's "kty" (likewise "crv" and "use", and a PEM block's
// type), whole, however long. SettingsFromEnv's doc and the agreed API:
// its errors "never show what the file holds"; the same text reaches
// cmd/introspect's output for -private-key-file.
func TestReview14PrivateKeyFileErrorsNeverShowWhatTheFileHolds(t *testing.T) {
	const marker = "CONTENT-OF-THE-FILE-4b1d"
	long := marker + strings.Repeat("x", 64<<10)
	for _, tc := range []struct {
		name string
		data string
	}{
		{"JWK kty", `{"kty":"` + long + `","d":"AQAB"}`},
		{"JWK crv", `{"kty":"EC","crv":"` + long + `","d":"AQAB"}`},
		{"PEM block type", "-----BEGIN " + marker + " PRIVATE KEY-----\nAAAA\n-----END " + marker + " PRIVATE KEY-----\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t, "INTROSPECTION_")
			t.Setenv("INTROSPECTION_PRIVATE_KEY_FILE", tempFile(t, "key", []byte(tc.data)))
			_, err := SettingsFromEnv("")
			require.Error(t, err)
			msg := err.Error()
			assert.Contains(t, msg[:min(len(msg), 128)], "INTROSPECTION_PRIVATE_KEY_FILE", "precondition: the error names the variable")
			assert.Falsef(t, strings.Contains(msg, marker), "the error shows what the key file holds: %.160s", msg)
			assert.Lessf(t, len(msg), 1024, "the error, %d bytes long, repeats the file's text however long", len(msg))
		})
	}
}
