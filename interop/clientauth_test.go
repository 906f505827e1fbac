package interop

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/interop/oidcprovider"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Metadata paths oidc-provider serves: RFC 8414 §3 and OpenID Connect
// Discovery 1.0 §4.
const (
	oauthMetadataPath  = "/.well-known/oauth-authorization-server"
	openIDMetadataPath = "/.well-known/openid-configuration"
)

// pathRecorder records the path of every request a verifier sends.
type pathRecorder struct {
	rt    http.RoundTripper
	mu    sync.Mutex // guards paths
	paths []string
}

func (r *pathRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.paths = append(r.paths, req.URL.Path)
	r.mu.Unlock()
	return r.rt.RoundTrip(req)
}

// count returns how many requests went to path.
func (r *pathRecorder) count(path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, p := range r.paths {
		if p == path {
			n++
		}
	}
	return n
}

// recordingClient returns an HTTP client whose requests rec records.
func recordingClient(t *testing.T) (*http.Client, *pathRecorder) {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	rec := &pathRecorder{rt: tr}
	return &http.Client{Transport: rec}, rec
}

// caClient returns an HTTP client whose transport trusts the test CA, so
// that it reaches the provider's HTTPS listener; the verifier adds
// Settings.TLSClientCertificate to a clone of it.
func caClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: oidcprovider.TestKeys(t).CA}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// signingKey returns ck as the verifier's signing key with alg.
func signingKey(ck oidcprovider.ClientKey, alg string) *introspection.SigningKey {
	return &introspection.SigningKey{Key: ck.Key, KeyID: ck.KeyID, Algorithm: alg}
}

// privateKeyPEM returns key in PEM: PKCS#1 for RSA when pkcs1, else
// PKCS#8.
func privateKeyPEM(t *testing.T, key any, pkcs1 bool) []byte {
	t.Helper()
	if pkcs1 {
		return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key.(*rsa.PrivateKey))})
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// privateJWK returns an EC P-256 key as an RFC 7517 JWK with its private
// member d, kid and alg.
func privateJWK(t *testing.T, ck oidcprovider.ClientKey, alg string) []byte {
	t.Helper()
	jwk, err := oidcprovider.PublicJWK(ck.Key.Public())
	require.NoError(t, err)
	d, err := ck.Key.(*ecdsa.PrivateKey).Bytes()
	require.NoError(t, err)
	jwk["d"] = base64.RawURLEncoding.EncodeToString(d)
	jwk["kid"] = ck.KeyID
	jwk["alg"] = alg
	b, err := json.Marshal(jwk)
	require.NoError(t, err)
	return b
}

// parsedKey is ParseSigningKey of data, which must succeed.
func parsedKey(t *testing.T, data []byte) *introspection.SigningKey {
	t.Helper()
	k, err := introspection.ParseSigningKey(data)
	require.NoError(t, err)
	return k
}

// TestDiscoveryInterop configures the verifier with oidc-provider's issuer
// alone, no IntrospectionURL: NewVerifier sends nothing; the first Verify,
// or Discover, reads the RFC 8414 metadata (oidc-provider serves it, so
// the OpenID path is never asked for), and concurrent first calls share
// one fetch. With no ClientAuthMethod, the verifier picks the best method
// that its credentials allow from token_endpoint_auth_methods_supported
// (oidc-provider lists no introspection_endpoint_auth_methods_supported),
// logs it at info, and a token issued to the app client verifies with it:
// client_secret_basic for a secret, private_key_jwt for a key, and
// tls_client_auth for a certificate, which goes to
// mtls_endpoint_aliases.introspection_endpoint, the provider's HTTPS
// listener: the plain endpoint never sees a certificate
// (TestOIDCProviderClientAuthRules). A configured client_secret_jwt, which
// the server lists, is used without that log. An issuer that is not the
// one the metadata names is refused.
func TestDiscoveryInterop(t *testing.T) {
	p := oidcprovider.StartWith(t, oidcprovider.Options{MTLS: true})
	keys := oidcprovider.TestKeys(t)
	ctx := context.Background()

	for _, tc := range []struct {
		name     string
		edit     func(*introspection.Settings)
		method   introspection.ClientAuthMethod
		endpoint string
		secret   string // must not be logged
	}{
		{
			name:     "client secret",
			edit:     func(*introspection.Settings) {},
			method:   introspection.ClientSecretBasic,
			endpoint: p.IntrospectionURL,
			secret:   oidcprovider.ResourceServerSecret,
		},
		{
			name: "client_secret_jwt configured",
			edit: func(s *introspection.Settings) {
				s.ClientAuthMethod = introspection.ClientSecretJWT
				s.ClientID = oidcprovider.SecretJWTClientID
				s.ClientSecret = oidcprovider.SecretJWTSecret
			},
			method:   introspection.ClientSecretJWT,
			endpoint: p.IntrospectionURL,
			secret:   oidcprovider.SecretJWTSecret,
		},
		{
			name: "private key",
			edit: func(s *introspection.Settings) {
				s.ClientID = oidcprovider.ES256ClientID
				s.ClientSecret = ""
				s.PrivateKey = signingKey(keys.ES256, "")
			},
			method:   introspection.PrivateKeyJWT,
			endpoint: p.IntrospectionURL,
		},
		{
			name: "TLS client certificate",
			edit: func(s *introspection.Settings) {
				s.ClientID = oidcprovider.TLSClientID
				s.ClientSecret = ""
				s.HTTPClient = caClient(t)
				s.TLSClientCertificate = &keys.ClientCertificate
			},
			method:   introspection.TLSClientAuth,
			endpoint: p.MTLSIntrospectionURL,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			client, rec := recordingClient(t)
			configured := false
			v := verifier(t, p, func(s *introspection.Settings) {
				s.IntrospectionURL = ""
				s.HTTPClient = client
				s.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
				tc.edit(s)
				configured = s.ClientAuthMethod != ""
			})
			tlsRow := tc.method == introspection.TLSClientAuth
			if !tlsRow {
				assert.Equal(t, 0, rec.count(oauthMetadataPath), "NewVerifier sends nothing")
			}
			assert.Empty(t, v.IntrospectionURL(), "nothing is discovered before the first Verify")

			// Concurrent first calls, each with its own token, share one
			// metadata fetch.
			const callers = 4
			tokens := make([]string, callers)
			for i := range tokens {
				tokens[i] = p.Token(t, "mcp:tools")
			}
			errs := make([]error, callers)
			var wg sync.WaitGroup
			for i := range callers {
				wg.Go(func() {
					got, err := v.Verify(ctx, tokens[i])
					if err == nil && got.ClientID != "app" {
						err = errors.New("the token is not the app client's: " + got.ClientID)
					}
					errs[i] = err
				})
			}
			wg.Wait()
			for i, err := range errs {
				require.NoError(t, err, "caller %d", i)
			}

			assert.Equal(t, tc.endpoint, v.IntrospectionURL())
			assert.Equal(t, tc.method, v.ClientAuthMethod())
			if !tlsRow {
				assert.Equal(t, 1, rec.count(oauthMetadataPath), "one RFC 8414 metadata fetch for %d first calls", callers)
				assert.Equal(t, 0, rec.count(openIDMetadataPath), "the RFC 8414 document was found first")
				assert.Equal(t, callers, rec.count("/token/introspection"))
			}
			require.NoError(t, v.Discover(ctx), "Discover fetches again")
			if !tlsRow {
				assert.Equal(t, 2, rec.count(oauthMetadataPath))
			}
			assert.Equal(t, tc.endpoint, v.IntrospectionURL())

			chosen := 0
			for line := range strings.Lines(logs.String()) {
				var rec map[string]any
				require.NoError(t, json.Unmarshal([]byte(line), &rec))
				if rec["msg"] == "introspection: client authentication method chosen" {
					chosen++
					assert.Equal(t, "INFO", rec["level"])
					assert.Equal(t, string(tc.method), rec["method"])
					assert.Equal(t, tc.endpoint, rec["introspection_endpoint"])
				}
			}
			if configured {
				assert.Equal(t, 0, chosen, "a configured method is not chosen:\n%s", logs.String())
			} else {
				assert.Equal(t, 1, chosen, "the chosen method is logged once:\n%s", logs.String())
			}
			if tc.secret != "" {
				assert.NotContains(t, logs.String(), tc.secret)
			}
		})
	}

	t.Run("an issuer the metadata does not name is refused", func(t *testing.T) {
		// localhost reaches the same provider, whose metadata says
		// 127.0.0.1.
		issuer := strings.Replace(p.Issuer, "127.0.0.1", "localhost", 1)
		v := verifier(t, p, func(s *introspection.Settings) {
			s.IntrospectionURL = ""
			s.Issuer = issuer
		})
		require.Error(t, v.Discover(ctx))
		_, err := v.Verify(ctx, p.Token(t, "mcp:tools"))
		var ie *introspection.IntrospectionError
		require.ErrorAs(t, err, &ie)
		assert.ErrorIs(t, err, introspection.ErrIntrospectionFailed)
		assert.Equal(t, introspection.FailureDiscovery, ie.Kind)
		assert.Empty(t, v.IntrospectionURL())
	})
}

// TestClientAuthInterop verifies a token issued by oidc-provider with each
// client authentication method, configured explicitly: client_secret_basic,
// client_secret_post, client_secret_jwt, private_key_jwt with EC (ES256,
// ES384), RSA (RS256, PS256) and Ed25519 keys, given as a SigningKey, as
// PEM (PKCS#8, PKCS#1) or as a JWK, with the assertion's aud the issuer
// (the default), the token endpoint or, without an issuer, the
// introspection endpoint; then tls_client_auth and
// self_signed_tls_client_auth on the provider's HTTPS listener. Each
// verifier introspects twice, without a cache: oidc-provider accepts an
// assertion's jti once (TestOIDCProviderClientAuthRules), so the second
// success shows a new assertion for each request.
func TestClientAuthInterop(t *testing.T) {
	p := oidcprovider.StartWith(t, oidcprovider.Options{MTLS: true})
	keys := oidcprovider.TestKeys(t)
	ctx := context.Background()

	// jwtClient sets a client that authenticates with a JWT and no
	// secret: the key, or the secret for client_secret_jwt.
	jwtClient := func(id string, key *introspection.SigningKey) func(*introspection.Settings) {
		return func(s *introspection.Settings) {
			s.ClientID = id
			s.ClientSecret = ""
			s.PrivateKey = key
		}
	}
	for _, tc := range []struct {
		name   string
		method introspection.ClientAuthMethod
		edit   func(*introspection.Settings)
	}{
		{"client_secret_basic", introspection.ClientSecretBasic, func(*introspection.Settings) {}},
		{"client_secret_post", introspection.ClientSecretPost, func(s *introspection.Settings) {
			s.ClientID = oidcprovider.PostClientID
		}},
		{"client_secret_jwt", introspection.ClientSecretJWT, func(s *introspection.Settings) {
			s.ClientID = oidcprovider.SecretJWTClientID
			s.ClientSecret = oidcprovider.SecretJWTSecret
		}},
		{"private_key_jwt ES256", introspection.PrivateKeyJWT, jwtClient(oidcprovider.ES256ClientID, signingKey(keys.ES256, "ES256"))},
		{"private_key_jwt ES384", introspection.PrivateKeyJWT, jwtClient(oidcprovider.ES384ClientID, signingKey(keys.ES384, "ES384"))},
		{"private_key_jwt RS256", introspection.PrivateKeyJWT, jwtClient(oidcprovider.RSAClientID, signingKey(keys.RSA, "RS256"))},
		{"private_key_jwt PS256", introspection.PrivateKeyJWT, jwtClient(oidcprovider.RSAClientID, signingKey(keys.RSA, "PS256"))},
		{"private_key_jwt EdDSA", introspection.PrivateKeyJWT, jwtClient(oidcprovider.Ed25519ClientID, signingKey(keys.Ed25519, "EdDSA"))},
		{"private_key_jwt RSA from PKCS#8 PEM, no kid", introspection.PrivateKeyJWT,
			jwtClient(oidcprovider.RSAClientID, parsedKey(t, privateKeyPEM(t, keys.RSA.Key, false)))},
		{"private_key_jwt RSA from PKCS#1 PEM", introspection.PrivateKeyJWT, func(s *introspection.Settings) {
			k := parsedKey(t, privateKeyPEM(t, keys.RSA.Key, true))
			k.KeyID = keys.RSA.KeyID
			jwtClient(oidcprovider.RSAClientID, k)(s)
		}},
		{"private_key_jwt Ed25519 from PKCS#8 PEM", introspection.PrivateKeyJWT,
			jwtClient(oidcprovider.Ed25519ClientID, parsedKey(t, privateKeyPEM(t, keys.Ed25519.Key, false)))},
		{"private_key_jwt EC from a JWK with kid and alg", introspection.PrivateKeyJWT,
			jwtClient(oidcprovider.ES256ClientID, parsedKey(t, privateJWK(t, keys.ES256, "ES256")))},
		{"private_key_jwt with aud the token endpoint", introspection.PrivateKeyJWT, func(s *introspection.Settings) {
			jwtClient(oidcprovider.ES256ClientID, signingKey(keys.ES256, "ES256"))(s)
			s.ClientAssertionAudience = p.TokenURL
		}},
		{"private_key_jwt without an issuer: aud the introspection endpoint", introspection.PrivateKeyJWT, func(s *introspection.Settings) {
			jwtClient(oidcprovider.ES256ClientID, signingKey(keys.ES256, "ES256"))(s)
			s.Issuer = ""
		}},
		{"tls_client_auth", introspection.TLSClientAuth, func(s *introspection.Settings) {
			s.IntrospectionURL = p.MTLSIntrospectionURL
			s.ClientID = oidcprovider.TLSClientID
			s.ClientSecret = ""
			s.HTTPClient = caClient(t)
			s.TLSClientCertificate = &keys.ClientCertificate
		}},
		{"self_signed_tls_client_auth", introspection.SelfSignedTLSClientAuth, func(s *introspection.Settings) {
			s.IntrospectionURL = p.MTLSIntrospectionURL
			s.ClientID = oidcprovider.SelfSignedTLSClientID
			s.ClientSecret = ""
			s.HTTPClient = caClient(t)
			s.TLSClientCertificate = &keys.SelfSignedCertificate
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := verifier(t, p, func(s *introspection.Settings) {
				s.ClientAuthMethod = tc.method
				s.RequiredScopes = []string{"mcp:tools"}
				tc.edit(s)
			})
			assert.Equal(t, tc.method, v.ClientAuthMethod())
			token := p.Token(t, "mcp:tools")
			for i := range 2 {
				got, err := v.Verify(ctx, token)
				require.NoError(t, err, "introspection %d", i+1)
				assert.Equal(t, "app", got.ClientID)
				assert.Equal(t, []string{"mcp:tools"}, got.Scopes)
			}
			assert.Equal(t, uint64(2), v.Stats().UpstreamRequests)
		})
	}
}

// TestClientAuthWrongKeyInterop shows that a credential oidc-provider does
// not accept fails closed with ErrIntrospectionFailed and the server's
// invalid_client, for each method: an assertion signed with another key
// than the registered one (EC, RSA, or the key of another client), one
// made with another secret, one whose aud is not the server's, and a TLS
// client certificate that does not chain to the trusted CA or is not the
// registered self-signed one.
func TestClientAuthWrongKeyInterop(t *testing.T) {
	p := oidcprovider.StartWith(t, oidcprovider.Options{MTLS: true})
	keys := oidcprovider.TestKeys(t)
	ctx := context.Background()

	otherEC, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	otherRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	_, otherEd, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	otherCert, err := oidcprovider.SelfSignedCertificate(strings.TrimPrefix(oidcprovider.TLSClientSubject, "CN="))
	require.NoError(t, err)

	keyClient := func(id string, key *introspection.SigningKey) func(*introspection.Settings) {
		return func(s *introspection.Settings) {
			s.ClientAuthMethod = introspection.PrivateKeyJWT
			s.ClientID = id
			s.ClientSecret = ""
			s.PrivateKey = key
		}
	}
	tlsClient := func(method introspection.ClientAuthMethod, id string, cert *tls.Certificate) func(*introspection.Settings) {
		return func(s *introspection.Settings) {
			s.ClientAuthMethod = method
			s.IntrospectionURL = p.MTLSIntrospectionURL
			s.ClientID = id
			s.ClientSecret = ""
			s.HTTPClient = caClient(t)
			s.TLSClientCertificate = cert
		}
	}
	for _, tc := range []struct {
		name string
		edit func(*introspection.Settings)
	}{
		{"another EC key with the registered kid", keyClient(oidcprovider.ES256ClientID,
			&introspection.SigningKey{Key: otherEC, KeyID: keys.ES256.KeyID})},
		{"another RSA key", keyClient(oidcprovider.RSAClientID, &introspection.SigningKey{Key: otherRSA})},
		{"another Ed25519 key", keyClient(oidcprovider.Ed25519ClientID, &introspection.SigningKey{Key: otherEd})},
		{"the key of another client", keyClient(oidcprovider.ES256ClientID, signingKey(keys.RSA, "RS256"))},
		{"another secret for client_secret_jwt", func(s *introspection.Settings) {
			s.ClientAuthMethod = introspection.ClientSecretJWT
			s.ClientID = oidcprovider.SecretJWTClientID
			s.ClientSecret = strings.ToUpper(oidcprovider.SecretJWTSecret)
		}},
		{"aud another server", func(s *introspection.Settings) {
			keyClient(oidcprovider.ES256ClientID, signingKey(keys.ES256, "ES256"))(s)
			s.ClientAssertionAudience = "https://as.example.com"
		}},
		{"tls_client_auth with a certificate of another CA", tlsClient(introspection.TLSClientAuth, oidcprovider.TLSClientID, &otherCert)},
		{"self_signed_tls_client_auth with an unregistered certificate", tlsClient(introspection.SelfSignedTLSClientAuth, oidcprovider.SelfSignedTLSClientID, &otherCert)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := verifier(t, p, tc.edit)
			_, err := v.Verify(ctx, p.Token(t, "mcp:tools"))
			require.Error(t, err)
			assert.ErrorIs(t, err, introspection.ErrIntrospectionFailed)
			assert.NotErrorIs(t, err, introspection.ErrInvalidToken)
			var ie *introspection.IntrospectionError
			require.ErrorAs(t, err, &ie)
			assert.Equal(t, http.StatusUnauthorized, ie.StatusCode)
			assert.Equal(t, "invalid_client", ie.ErrorCode)
		})
	}
}
