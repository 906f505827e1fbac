package introspection

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReview14RefreshChoosesTheMethodAgainWhenTheServerDropsIt shows that
// a method the verifier chose itself (Settings.ClientAuthMethod empty) is
// not chosen again when a refresh of the metadata lists other methods: the
// server stops listing private_key_jwt and lists client_secret_basic only,
// which the configured ClientSecret allows, yet the refresh is taken for a
// failure ("ClientAuthMethod "private_key_jwt" is not among the server's
// ..." although no ClientAuthMethod was configured), the verifier keeps
// signing assertions the server now refuses (401 at every miss), and it
// stays so until restart. The issue: "With no method set and metadata
// present, pick the best method from introspection_endpoint_auth_methods_
// supported"; good new metadata is not a failed refresh.
func TestReview14RefreshChoosesTheMethodAgainWhenTheServerDropsIt(t *testing.T) {
	clock := newFakeClock()
	ds := newDiscoServer(t)
	var keyDropped atomic.Bool
	ds.setMetadata(func(string) (int, string, string) {
		methods := `["private_key_jwt","client_secret_basic"]`
		if keyDropped.Load() {
			methods = `["client_secret_basic"]`
		}
		return http.StatusOK, "application/json",
			ds.goodMetadata(ds.URL, `,"introspection_endpoint_auth_methods_supported":`+methods)
	})
	v := newDiscoveryVerifier(t, ds.URL, clock, func(s *Settings) {
		s.PrivateKey = &SigningKey{Key: testECKey()}
		s.DiscoveryRefresh = time.Hour
	})
	ctx := context.Background()
	require.NoError(t, v.Discover(ctx))
	require.Equal(t, PrivateKeyJWT, v.ClientAuthMethod(), "precondition: the key is preferred while the server lists it")

	keyDropped.Store(true)
	assert.NoError(t, v.Discover(ctx), "the new metadata is good: it lists a method the credentials allow")
	assert.Equal(t, ClientSecretBasic, v.ClientAuthMethod(), "the method is chosen again from the new list")
}

// TestReview14OmittedMethodListsMeanClientSecretBasic shows that metadata
// listing neither introspection_endpoint_auth_methods_supported nor
// token_endpoint_auth_methods_supported is read as "any method", so that a
// verifier holding a secret and a key signs private_key_jwt assertions.
// RFC 8414 §2 (and OpenID Connect Discovery 1.0 §3) give the omitted
// token_endpoint_auth_methods_supported a default: "If omitted, the
// default is client_secret_basic". A server that omits both lists thus
// says it takes client_secret_basic, and the verifier should choose it
// (the issue: pick from the server's methods, "not a silent 401").
func TestReview14OmittedMethodListsMeanClientSecretBasic(t *testing.T) {
	ds := newDiscoServer(t) // good metadata with neither list
	v := newDiscoveryVerifier(t, ds.URL, nil, func(s *Settings) {
		s.PrivateKey = &SigningKey{Key: testECKey()}
	})
	require.NoError(t, v.Discover(context.Background()))
	assert.Equal(t, ClientSecretBasic, v.ClientAuthMethod(),
		"RFC 8414 §2: an omitted token_endpoint_auth_methods_supported means client_secret_basic")
}

// TestReview14ChoiceHonoursTheServersSigningAlgorithms shows that the
// choice of private_key_jwt ignores
// introspection_endpoint_auth_signing_alg_values_supported (RFC 8414 §2):
// the server lists private_key_jwt and client_secret_basic but accepts
// only RS256 assertions; the verifier holds an ES256 key and a secret, and
// chooses private_key_jwt, whose every request the server must refuse
// with 401 invalid_client, rather than client_secret_basic, which the
// credentials allow and the server accepts. The issue: pick the best
// method "that the configured credentials allow", "not a silent 401".
func TestReview14ChoiceHonoursTheServersSigningAlgorithms(t *testing.T) {
	ds := newDiscoServer(t)
	ds.setMetadata(func(string) (int, string, string) {
		return http.StatusOK, "application/json", ds.goodMetadata(ds.URL,
			`,"introspection_endpoint_auth_methods_supported":["private_key_jwt","client_secret_basic"]`+
				`,"introspection_endpoint_auth_signing_alg_values_supported":["RS256"]`)
	})
	v := newDiscoveryVerifier(t, ds.URL, nil, func(s *Settings) {
		s.PrivateKey = &SigningKey{Key: testECKey()} // ES256
	})
	require.NoError(t, v.Discover(context.Background()))
	assert.Equal(t, ClientSecretBasic, v.ClientAuthMethod(),
		"an ES256 key cannot make an assertion the server takes (it lists RS256 only)")
}

// TestReview14SelfSignedCertificateChoosesSelfSignedMethod shows that a
// verifier whose TLSClientCertificate is self-signed chooses
// tls_client_auth when the server lists both TLS methods. RFC 8705 §2.1
// has the server validate a tls_client_auth certificate against its
// trusted certificate authorities (PKI), which a self-signed certificate
// does not chain to; §2.2's self_signed_tls_client_auth is the method for
// it. The verifier can tell a self-signed certificate (it verifies with
// its own key), yet picks the method the server must refuse.
func TestReview14SelfSignedCertificateChoosesSelfSignedMethod(t *testing.T) {
	cert := selfSignedCertificate(t, "rs")
	require.NoError(t, cert.Leaf.CheckSignatureFrom(cert.Leaf), "precondition: the certificate is self-signed")
	ds := newDiscoServer(t)
	ds.setMetadata(func(string) (int, string, string) {
		return http.StatusOK, "application/json", ds.goodMetadata(ds.URL,
			fmt.Sprintf(`,"introspection_endpoint_auth_methods_supported":[%q,%q]`, TLSClientAuth, SelfSignedTLSClientAuth))
	})
	v := newDiscoveryVerifier(t, ds.URL, nil, func(s *Settings) {
		s.ClientSecret = ""
		s.TLSClientCertificate = &cert
	})
	require.NoError(t, v.Discover(context.Background()))
	assert.Equal(t, SelfSignedTLSClientAuth, v.ClientAuthMethod())
}
