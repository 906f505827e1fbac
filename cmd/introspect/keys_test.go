package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeFile writes data to a new file named name in a temporary
// directory and returns its path.
func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, data, 0o600))
	return p
}

// TestDiscoveryFromIssuer shows that -issuer without -url finds the
// introspection endpoint in the issuer's metadata, and that the output
// names the endpoint and the client authentication method used.
func TestDiscoveryFromIssuer(t *testing.T) {
	as := withServer(t)
	t.Setenv("INTROSPECTION_URL", "")
	tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})

	code, out, errOut := runTool(t, "", "-issuer", as.Issuer, "--", tok)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "verdict: accepted")
	assert.Contains(t, out, "asked:   "+as.IntrospectionURL+" (client_secret_basic)")
	assert.Positive(t, as.MetadataRequests())

	code, out, errOut = runTool(t, "", "-json", "-issuer", as.Issuer, "--", tok)
	require.Equal(t, 0, code, errOut)
	var res map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	assert.Equal(t, as.IntrospectionURL, res["introspection_endpoint"])
	assert.Equal(t, "client_secret_basic", res["client_auth_method"])
}

// TestPrivateKeyFromFile shows that -private-key-file signs private_key_jwt
// client assertions the server accepts, and that a key the server does not
// know gets invalid_client.
func TestPrivateKeyFromFile(t *testing.T) {
	as := withServer(t)
	t.Setenv("INTROSPECTION_CLIENT_SECRET", "")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	as.AddKeyClient("key-client", key.Public())
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	file := writeFile(t, "key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})

	code, out, errOut := runTool(t, "", "-client-id", "key-client", "-private-key-file", file, "-private-key-id", "k1", "--", tok)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "verdict: accepted")
	assert.Contains(t, out, "(private_key_jwt)")

	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err = x509.MarshalPKCS8PrivateKey(other)
	require.NoError(t, err)
	wrong := writeFile(t, "wrong.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	code, out, _ = runTool(t, "", "-json", "-client-id", "key-client", "-private-key-file", wrong, "--", tok)
	assert.Equal(t, 2, code)
	var res struct {
		Failure struct {
			ErrorCode string `json:"error"`
		} `json:"failure"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	assert.Equal(t, "invalid_client", res.Failure.ErrorCode)
}

// TestKeyFlagErrors shows that bad key and certificate flags fail with an
// error that names the flag and never shows what the file holds.
func TestKeyFlagErrors(t *testing.T) {
	withServer(t)
	const secret = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n"
	bad := writeFile(t, "bad.pem", []byte(secret))
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"key that does not parse", []string{"-private-key-file", bad}, "introspect: -private-key-file: "},
		{"missing key file", []string{"-private-key-file", filepath.Join(t.TempDir(), "none")}, "introspect: -private-key-file: "},
		{"key id without key", []string{"-private-key-id", "k1"}, "-private-key-id needs a private key"},
		{"certificate without key", []string{"-tls-cert-file", bad}, "-tls-cert-file and -tls-key-file go together"},
		{"key without certificate", []string{"-tls-key-file", bad}, "-tls-cert-file and -tls-key-file go together"},
		{"certificate that does not parse", []string{"-tls-cert-file", bad, "-tls-key-file", bad}, "not a PEM certificate and its private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runTool(t, "", append(tt.args, "--", "some-token")...)
			assert.Equal(t, 2, code)
			assert.Empty(t, out)
			assert.Contains(t, errOut, tt.wantErr)
			assert.NotContains(t, errOut, "c2VjcmV0")
		})
	}
}
