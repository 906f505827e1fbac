package interop

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/introspection/interop/oidcprovider"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// jwtBearer is the client_assertion_type of RFC 7523 §2.2.
const jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// postIntrospection sends form to endpoint with client and returns the
// status and the decoded JSON answer.
func postIntrospection(t *testing.T, client *http.Client, endpoint string, form url.Values) (int, map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var answer map[string]any
	require.NoError(t, json.Unmarshal(b, &answer), "the answer is a JSON object")
	return resp.StatusCode, answer
}

// newJTI returns a fresh jti.
func newJTI(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString(b)
}

// assertionClaims returns RFC 7523 §3 claims for clientID with aud and a
// fresh jti, valid for 60 seconds.
func assertionClaims(t *testing.T, clientID string, aud any) map[string]any {
	t.Helper()
	now := time.Now().Unix()
	return map[string]any{"iss": clientID, "sub": clientID, "aud": aud, "jti": newJTI(t), "iat": now, "exp": now + 60}
}

// TestOIDCProviderClientAuthRules pins down, with assertions and TLS
// connections made apart from the verifier's code, what oidc-provider
// accepts at its introspection endpoint, so that the verifier's choices
// rest on a server's behaviour rather than on a reading of the RFCs: its
// metadata, served at both the RFC 8414 and the OpenID path, lists the
// methods only as token_endpoint_auth_methods_supported (there is no
// introspection_endpoint_auth_methods_supported) and the HTTPS listener
// as mtls_endpoint_aliases; a
// client assertion's aud may be the issuer, the token endpoint or the
// introspection endpoint (or a list holding one), never another URL; a
// jti is accepted once; every key type the clients registered signs
// assertions it accepts; tls_client_auth needs the certificate on the TLS
// connection and one that chains to the CA it trusts;
// self_signed_tls_client_auth needs the registered certificate. Every
// refusal is 401 invalid_client.
func TestOIDCProviderClientAuthRules(t *testing.T) {
	p := oidcprovider.StartWith(t, oidcprovider.Options{MTLS: true})
	keys := oidcprovider.TestKeys(t)
	token := p.Token(t, "mcp:tools")
	plain := &http.Client{Timeout: 10 * time.Second}

	assertionForm := func(t *testing.T, clientID, assertion string) url.Values {
		t.Helper()
		return url.Values{
			"token":                 {token},
			"client_id":             {clientID},
			"client_assertion_type": {jwtBearer},
			"client_assertion":      {assertion},
		}
	}
	es256 := func(t *testing.T, claims map[string]any) string {
		t.Helper()
		a, err := oidcprovider.SignJWT(keys.ES256.Key, "ES256", keys.ES256.KeyID, claims)
		require.NoError(t, err)
		return a
	}

	t.Run("metadata", func(t *testing.T) {
		docs := map[string]map[string]any{}
		for _, path := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
			resp, err := plain.Get(p.Issuer + path)
			require.NoError(t, err)
			var doc map[string]any
			err = json.NewDecoder(resp.Body).Decode(&doc)
			resp.Body.Close()
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode, path)
			assert.Contains(t, resp.Header.Get("Content-Type"), "application/json", path)
			docs[path] = doc
		}
		doc := docs["/.well-known/oauth-authorization-server"]
		assert.Equal(t, doc, docs["/.well-known/openid-configuration"], "both paths serve one document")
		assert.Equal(t, p.Issuer, doc["issuer"])
		assert.Equal(t, p.IntrospectionURL, doc["introspection_endpoint"])
		assert.NotContains(t, doc, "introspection_endpoint_auth_methods_supported")
		assert.ElementsMatch(t, []any{
			"client_secret_basic", "client_secret_jwt", "client_secret_post", "private_key_jwt", "none",
			"tls_client_auth", "self_signed_tls_client_auth",
		}, doc["token_endpoint_auth_methods_supported"])
		assert.Equal(t, map[string]any{
			"token_endpoint":         strings.TrimSuffix(p.MTLSIntrospectionURL, "/introspection"),
			"introspection_endpoint": p.MTLSIntrospectionURL,
			"revocation_endpoint":    strings.TrimSuffix(p.MTLSIntrospectionURL, "/introspection") + "/revocation",
		}, doc["mtls_endpoint_aliases"])
	})

	t.Run("aud", func(t *testing.T) {
		for _, tc := range []struct {
			name     string
			aud      any
			accepted bool
		}{
			{"issuer", p.Issuer, true},
			{"token endpoint", p.TokenURL, true},
			{"introspection endpoint", p.IntrospectionURL, true},
			{"list with the issuer", []string{"https://elsewhere.example.com", p.Issuer}, true},
			{"issuer with a trailing slash", p.Issuer + "/", false},
			{"another URL", "https://elsewhere.example.com", false},
			{"revocation endpoint", p.Issuer + "/token/revocation", false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				a := es256(t, assertionClaims(t, oidcprovider.ES256ClientID, tc.aud))
				status, answer := postIntrospection(t, plain, p.IntrospectionURL, assertionForm(t, oidcprovider.ES256ClientID, a))
				if tc.accepted {
					assert.Equal(t, http.StatusOK, status)
					assert.Equal(t, true, answer["active"])
				} else {
					assert.Equal(t, http.StatusUnauthorized, status)
					assert.Equal(t, "invalid_client", answer["error"])
				}
			})
		}
	})

	t.Run("a jti is accepted once", func(t *testing.T) {
		a := es256(t, assertionClaims(t, oidcprovider.ES256ClientID, p.Issuer))
		status, answer := postIntrospection(t, plain, p.IntrospectionURL, assertionForm(t, oidcprovider.ES256ClientID, a))
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, true, answer["active"])
		status, answer = postIntrospection(t, plain, p.IntrospectionURL, assertionForm(t, oidcprovider.ES256ClientID, a))
		assert.Equal(t, http.StatusUnauthorized, status)
		assert.Equal(t, "invalid_client", answer["error"])
		claims := assertionClaims(t, oidcprovider.ES256ClientID, p.Issuer)
		status, _ = postIntrospection(t, plain, p.IntrospectionURL, assertionForm(t, oidcprovider.ES256ClientID, es256(t, claims)))
		assert.Equal(t, http.StatusOK, status, "the same assertion with a new jti is accepted")
	})

	t.Run("keys and algorithms", func(t *testing.T) {
		for _, tc := range []struct {
			alg      string
			clientID string
			key      any
			kid      string
		}{
			{"ES256", oidcprovider.ES256ClientID, keys.ES256.Key, keys.ES256.KeyID},
			{"ES384", oidcprovider.ES384ClientID, keys.ES384.Key, keys.ES384.KeyID},
			{"RS256", oidcprovider.RSAClientID, keys.RSA.Key, keys.RSA.KeyID},
			{"PS256", oidcprovider.RSAClientID, keys.RSA.Key, keys.RSA.KeyID},
			{"EdDSA", oidcprovider.Ed25519ClientID, keys.Ed25519.Key, keys.Ed25519.KeyID},
			{"EdDSA without kid", oidcprovider.Ed25519ClientID, keys.Ed25519.Key, ""},
			{"HS256", oidcprovider.SecretJWTClientID, []byte(oidcprovider.SecretJWTSecret), ""},
		} {
			t.Run(tc.alg, func(t *testing.T) {
				alg, _, _ := strings.Cut(tc.alg, " ")
				a, err := oidcprovider.SignJWT(tc.key, alg, tc.kid, assertionClaims(t, tc.clientID, p.Issuer))
				require.NoError(t, err)
				status, answer := postIntrospection(t, plain, p.IntrospectionURL, assertionForm(t, tc.clientID, a))
				assert.Equal(t, http.StatusOK, status, "%v", answer)
				assert.Equal(t, true, answer["active"])
			})
		}
	})

	t.Run("TLS client certificates", func(t *testing.T) {
		otherCA, err := oidcprovider.SelfSignedCertificate("another CA's client")
		require.NoError(t, err)
		// tlsClient presents cert, if not nil, whatever CAs the server
		// names in its certificate request (RFC 8446 §4.2.4).
		tlsClient := func(cert *tls.Certificate) *http.Client {
			cfg := &tls.Config{RootCAs: keys.CA}
			if cert != nil {
				cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
			}
			tr := &http.Transport{TLSClientConfig: cfg}
			t.Cleanup(tr.CloseIdleConnections)
			return &http.Client{Transport: tr, Timeout: 10 * time.Second}
		}
		// certificatesClient has cert in tls.Config.Certificates, which Go
		// sends only when it chains to a CA the server names.
		certificatesClient := func(cert tls.Certificate) *http.Client {
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: keys.CA, Certificates: []tls.Certificate{cert}}}
			t.Cleanup(tr.CloseIdleConnections)
			return &http.Client{Transport: tr, Timeout: 10 * time.Second}
		}
		for _, tc := range []struct {
			name     string
			clientID string
			endpoint string
			client   *http.Client
			accepted bool
		}{
			{"tls_client_auth", oidcprovider.TLSClientID, p.MTLSIntrospectionURL, tlsClient(&keys.ClientCertificate), true},
			{"tls_client_auth from tls.Config.Certificates", oidcprovider.TLSClientID, p.MTLSIntrospectionURL, certificatesClient(keys.ClientCertificate), true},
			{"tls_client_auth without a certificate", oidcprovider.TLSClientID, p.MTLSIntrospectionURL, tlsClient(nil), false},
			{"tls_client_auth over plain HTTP", oidcprovider.TLSClientID, p.IntrospectionURL, plain, false},
			{"tls_client_auth with a certificate of another CA", oidcprovider.TLSClientID, p.MTLSIntrospectionURL, tlsClient(&otherCA), false},
			{"self_signed_tls_client_auth", oidcprovider.SelfSignedTLSClientID, p.MTLSIntrospectionURL, tlsClient(&keys.SelfSignedCertificate), true},
			{"self_signed_tls_client_auth from tls.Config.Certificates is not sent", oidcprovider.SelfSignedTLSClientID, p.MTLSIntrospectionURL, certificatesClient(keys.SelfSignedCertificate), false},
			{"self_signed_tls_client_auth with another certificate", oidcprovider.SelfSignedTLSClientID, p.MTLSIntrospectionURL, tlsClient(&otherCA), false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				form := url.Values{"token": {token}, "client_id": {tc.clientID}}
				status, answer := postIntrospection(t, tc.client, tc.endpoint, form)
				if tc.accepted {
					assert.Equal(t, http.StatusOK, status, "%v", answer)
					assert.Equal(t, true, answer["active"])
				} else {
					assert.Equal(t, http.StatusUnauthorized, status)
					assert.Equal(t, "invalid_client", answer["error"])
				}
			})
		}
	})
}
