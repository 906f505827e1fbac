package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"testing"

	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReview14KeyIDFromEnvWithKeyFileFlag shows that the key id from
// $INTROSPECTION_PRIVATE_KEY_ID cannot go with the key file from
// -private-key-file: the tool exits 2 with "INTROSPECTION_PRIVATE_KEY_ID
// is set without INTROSPECTION_PRIVATE_KEY_FILE" before it reads the flag.
// The help text promises the pair: -private-key-id "default the JWK's
// kid, or $INTROSPECTION_PRIVATE_KEY_ID", and the package doc "Settings
// come from the INTROSPECTION_* environment variables ... and the flags,
// which win".
func TestReview14KeyIDFromEnvWithKeyFileFlag(t *testing.T) {
	as := withServer(t)
	t.Setenv("INTROSPECTION_CLIENT_SECRET", "")
	t.Setenv("INTROSPECTION_PRIVATE_KEY_ID", "k-env")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	as.AddKeyClient("key-client", key.Public())
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	file := writeFile(t, "key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})

	code, out, errOut := runTool(t, "", "-client-id", "key-client", "-private-key-file", file, "--", tok)
	assert.Equal(t, 0, code, "stderr: %s", errOut)
	assert.Contains(t, out, "verdict: accepted")
}
