package introspection

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDiscoveryMethodLoggedOnceEachTimeItChanges shows that with no
// ClientAuthMethod the method is chosen again at every fetch of the
// metadata, and logged at info level once each time the choice changes,
// never for a fetch that keeps it.
func TestDiscoveryMethodLoggedOnceEachTimeItChanges(t *testing.T) {
	ds := newDiscoServer(t)
	var methods atomic.Value
	methods.Store(`["private_key_jwt","client_secret_basic"]`)
	ds.setMetadata(func(string) (int, string, string) {
		return http.StatusOK, "application/json",
			ds.goodMetadata(ds.URL, `,"introspection_endpoint_auth_methods_supported":`+methods.Load().(string))
	})
	var logs bytes.Buffer
	v := newDiscoveryVerifier(t, ds.URL, nil, func(s *Settings) {
		s.PrivateKey = &SigningKey{Key: testECKey()}
		s.Logger = newTestLogger(&logs)
	})
	ctx := context.Background()
	for _, step := range []struct {
		methods  string
		want     ClientAuthMethod
		wantLogs int
	}{
		{`["private_key_jwt","client_secret_basic"]`, PrivateKeyJWT, 1},
		{`["private_key_jwt","client_secret_basic"]`, PrivateKeyJWT, 1},
		{`["client_secret_basic"]`, ClientSecretBasic, 2},
		{`["client_secret_basic","client_secret_post"]`, ClientSecretBasic, 2},
		{`["private_key_jwt"]`, PrivateKeyJWT, 3},
	} {
		methods.Store(step.methods)
		require.NoError(t, v.Discover(ctx), step.methods)
		assert.Equal(t, step.want, v.ClientAuthMethod(), step.methods)
		assert.Equal(t, step.wantLogs, strings.Count(logs.String(), "client authentication method chosen"), step.methods)
	}
	assert.Equal(t, 2, strings.Count(logs.String(), `method chosen" method=private_key_jwt`), logs.String())
	assert.Equal(t, 1, strings.Count(logs.String(), `method chosen" method=client_secret_basic`), logs.String())
}

// TestDiscoveryConfiguredMethodTheServerStopsListing shows that a
// configured ClientAuthMethod is never replaced: a refresh whose metadata
// no longer lists it fails with FailureDiscovery and keeps the last good
// metadata, and so does one that lists it but not the algorithm its
// assertions are signed with.
func TestDiscoveryConfiguredMethodTheServerStopsListing(t *testing.T) {
	for _, tc := range []struct {
		name    string
		extra   string
		wantErr []string
	}{
		{"method dropped", `,"introspection_endpoint_auth_methods_supported":["client_secret_basic"]`,
			[]string{`"private_key_jwt"`, `["client_secret_basic"]`}},
		{"algorithm dropped", `,"introspection_endpoint_auth_methods_supported":["private_key_jwt","client_secret_basic"]` +
			`,"introspection_endpoint_auth_signing_alg_values_supported":["RS256"]`,
			[]string{`"private_key_jwt"`, "ES256", `["RS256"]`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := newDiscoServer(t)
			var changed atomic.Bool
			ds.setMetadata(func(string) (int, string, string) {
				if changed.Load() {
					return http.StatusOK, "application/json", ds.goodMetadata(ds.URL, tc.extra)
				}
				return http.StatusOK, "application/json", ds.goodMetadata(ds.URL,
					`,"introspection_endpoint_auth_methods_supported":["private_key_jwt","client_secret_basic"]`)
			})
			v := newDiscoveryVerifier(t, ds.URL, nil, func(s *Settings) {
				s.PrivateKey = &SigningKey{Key: testECKey()}
				s.ClientAuthMethod = PrivateKeyJWT
			})
			ctx := context.Background()
			require.NoError(t, v.Discover(ctx))
			require.Equal(t, PrivateKeyJWT, v.ClientAuthMethod())

			changed.Store(true)
			err := v.Discover(ctx)
			require.Error(t, err)
			ie, ok := errors.AsType[*IntrospectionError](err)
			require.True(t, ok, err.Error())
			assert.Equal(t, FailureDiscovery, ie.Kind)
			for _, w := range tc.wantErr {
				assert.Contains(t, err.Error(), w)
			}
			assert.Equal(t, PrivateKeyJWT, v.ClientAuthMethod(), "the last good metadata is kept")
			assert.Equal(t, ds.URL+"/introspect", v.IntrospectionURL())
		})
	}
}

// TestDiscoverySigningAlgorithmsFromTheTokenEndpoint shows that without
// introspection_endpoint_auth_signing_alg_values_supported the token
// endpoint's list is honoured, and that the introspection endpoint's list,
// when present, wins over it.
func TestDiscoverySigningAlgorithmsFromTheTokenEndpoint(t *testing.T) {
	const methods = `,"introspection_endpoint_auth_methods_supported":["private_key_jwt","client_secret_basic"]`
	for _, tc := range []struct {
		name  string
		extra string
		want  ClientAuthMethod
	}{
		{"token endpoint's list without ES256", `,"token_endpoint_auth_signing_alg_values_supported":["RS256"]`, ClientSecretBasic},
		{"token endpoint's list with ES256", `,"token_endpoint_auth_signing_alg_values_supported":["ES256"]`, PrivateKeyJWT},
		{"introspection endpoint's list wins", `,"introspection_endpoint_auth_signing_alg_values_supported":["ES256"]` +
			`,"token_endpoint_auth_signing_alg_values_supported":["RS256"]`, PrivateKeyJWT},
		{"null list", `,"introspection_endpoint_auth_signing_alg_values_supported":null`, PrivateKeyJWT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := newDiscoServer(t)
			ds.setMetadata(func(string) (int, string, string) {
				return http.StatusOK, "application/json", ds.goodMetadata(ds.URL, methods+tc.extra)
			})
			v := newDiscoveryVerifier(t, ds.URL, nil, func(s *Settings) { s.PrivateKey = &SigningKey{Key: testECKey()} })
			require.NoError(t, v.Discover(context.Background()))
			assert.Equal(t, tc.want, v.ClientAuthMethod())
		})
	}
}

// TestDecodeMetadataSigningAlgorithms shows how the signing algorithm
// lists are read: absent or null as no list, [] as an empty one, and a
// list that is not of strings as an error naming the member.
func TestDecodeMetadataSigningAlgorithms(t *testing.T) {
	const base = `{"issuer":"https://as.example.com","introspection_endpoint":"https://as.example.com/i"`
	for _, tc := range []struct {
		name    string
		extra   string
		want    []string
		wantErr string
	}{
		{"absent", ``, nil, ""},
		{"empty", `,"introspection_endpoint_auth_signing_alg_values_supported":[]`, []string{}, ""},
		{"token endpoint's", `,"token_endpoint_auth_signing_alg_values_supported":["PS256"]`, []string{"PS256"}, ""},
		{"not strings", `,"introspection_endpoint_auth_signing_alg_values_supported":[1]`, nil,
			`"introspection_endpoint_auth_signing_alg_values_supported"`},
		{"not an array", `,"token_endpoint_auth_signing_alg_values_supported":"RS256"`, nil,
			`"token_endpoint_auth_signing_alg_values_supported"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := decodeMetadata([]byte(base + tc.extra + "}"))
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, m.authSigningAlgs)
		})
	}
}

// TestIsSelfSigned shows which TLS client certificates count as
// self-signed (RFC 8705 §2.2): the issuer is the subject and the signature
// verifies with the certificate's own key, whether or not it is a CA and
// whether or not Leaf is set; a certificate a CA issued, or one that names
// itself as issuer but is signed by another key, is not.
func TestIsSelfSigned(t *testing.T) {
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		return k
	}
	issue := func(subject, issuer *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) tls.Certificate {
		der, err := x509.CreateCertificate(rand.Reader, subject, issuer, pub, signer)
		require.NoError(t, err)
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: signer}
	}
	tmpl := func(cn string, ca bool) *x509.Certificate {
		return &x509.Certificate{
			SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
			IsCA:     ca, BasicConstraintsValid: true,
		}
	}
	leafKey, caKey := newKey(), newKey()
	withLeaf := selfSignedCertificate(t, "rs")
	withoutLeaf := withLeaf
	withoutLeaf.Leaf = nil
	fromCA := issue(tmpl("rs", false), tmpl("ca", true), &leafKey.PublicKey, caKey)
	// Names itself as issuer, but the CA's key signed it.
	impostor := issue(tmpl("rs", false), tmpl("rs", true), &leafKey.PublicKey, caKey)
	for _, tc := range []struct {
		name string
		c    *tls.Certificate
		want bool
	}{
		{"self-signed CA certificate, Leaf set", &withLeaf, true},
		{"self-signed, Leaf nil", &withoutLeaf, true},
		{"self-signed, not a CA", ptr(issue(tmpl("rs", false), tmpl("rs", false), &leafKey.PublicKey, leafKey)), true},
		{"issued by a CA", &fromCA, false},
		{"issuer is subject, signed by another key", &impostor, false},
		{"not DER", &tls.Certificate{Certificate: [][]byte{[]byte("not a certificate")}}, false},
		{"no certificate", &tls.Certificate{}, false},
		{"nil", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, isSelfSigned(tc.c))
		})
	}
}

func ptr[T any](v T) *T { return &v }
