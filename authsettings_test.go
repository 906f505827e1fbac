package introspection

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNewVerifierClientAuthRules shows the rules NewVerifier holds the
// credentials, the methods, discovery and DiscoveryRefresh to, with each
// bound tested at and just past it.
func TestNewVerifierClientAuthRules(t *testing.T) {
	cert := selfSignedCertificate(t, "rs")
	ecKey := &SigningKey{Key: testECKey(), KeyID: "k1"}
	base := func(s *Settings) { *s = Settings{IntrospectionURL: "https://as.example.com/i", ClientID: "rs"} }
	tests := []struct {
		name       string
		edit       func(*Settings)
		wantErr    string           // "" means accepted
		wantMethod ClientAuthMethod // when accepted
	}{
		{"secret: basic by default", func(s *Settings) { s.ClientSecret = "s" }, "", ClientSecretBasic},
		{"key alone: private_key_jwt by default", func(s *Settings) { s.PrivateKey = ecKey }, "", PrivateKeyJWT},
		{"certificate alone: tls_client_auth by default", func(s *Settings) { s.TLSClientCertificate = &cert }, "", TLSClientAuth},
		{"secret and key: basic by default, as before", func(s *Settings) { s.ClientSecret = "s"; s.PrivateKey = ecKey }, "", ClientSecretBasic},
		{"no credentials", func(s *Settings) {}, "introspection: ClientSecret is required", ""},
		{"client_secret_post without a secret", func(s *Settings) { s.ClientAuthMethod = ClientSecretPost; s.PrivateKey = ecKey },
			"introspection: ClientSecret is required", ""},
		{"client_secret_jwt, secret at the bound", func(s *Settings) {
			s.ClientAuthMethod = ClientSecretJWT
			s.ClientSecret = strings.Repeat("x", MinClientSecretJWTSize)
		}, "", ClientSecretJWT},
		{"client_secret_jwt, secret one byte short", func(s *Settings) {
			s.ClientAuthMethod = ClientSecretJWT
			s.ClientSecret = strings.Repeat("x", MinClientSecretJWTSize-1)
		}, "introspection: ClientSecret must have at least 32 bytes for client_secret_jwt (RFC 7518 §3.2)", ""},
		{"client_secret_jwt without a secret", func(s *Settings) { s.ClientAuthMethod = ClientSecretJWT },
			"introspection: ClientSecret is required", ""},
		{"private_key_jwt without a key", func(s *Settings) { s.ClientAuthMethod = PrivateKeyJWT; s.ClientSecret = "s" },
			"introspection: PrivateKey is required for private_key_jwt", ""},
		{"a key its algorithm does not fit", func(s *Settings) {
			s.ClientSecret = "s"
			s.PrivateKey = &SigningKey{Key: testECKey(), Algorithm: "RS256"}
		}, "introspection: PrivateKey: ", ""},
		{"tls_client_auth without a certificate or client", func(s *Settings) { s.ClientAuthMethod = TLSClientAuth; s.ClientSecret = "s" },
			"introspection: TLSClientCertificate, or an HTTPClient that presents a certificate, is required for tls_client_auth", ""},
		{"self_signed_tls_client_auth with a caller's client", func(s *Settings) {
			s.ClientAuthMethod = SelfSignedTLSClientAuth
			s.HTTPClient = &http.Client{}
		}, "", SelfSignedTLSClientAuth},
		{"a certificate without its key", func(s *Settings) {
			s.TLSClientCertificate = &tls.Certificate{Certificate: cert.Certificate}
		}, "introspection: TLSClientCertificate holds no certificate or no private key", ""},
		{"a certificate with a transport that is no *http.Transport", func(s *Settings) {
			s.TLSClientCertificate = &cert
			s.HTTPClient = &http.Client{Transport: roundTripFunc(nil)}
		}, "introspection: TLSClientCertificate needs HTTPClient.Transport to be an *http.Transport or nil", ""},
		{"a certificate with the default transport", func(s *Settings) {
			s.TLSClientCertificate = &cert
			s.HTTPClient = &http.Client{}
		}, "", TLSClientAuth},
		{"unknown method", func(s *Settings) { s.ClientSecret = "s"; s.ClientAuthMethod = "private_key" },
			`introspection: unsupported ClientAuthMethod "private_key" (want one of "client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth")`, ""},
		{"neither URL nor issuer", func(s *Settings) { s.IntrospectionURL = ""; s.ClientSecret = "s" },
			"introspection: IntrospectionURL is required (or Issuer, to discover it)", ""},
		{"discovery: method left to the metadata", func(s *Settings) {
			s.IntrospectionURL = ""
			s.Issuer = "https://as.example.com"
			s.PrivateKey = ecKey
		}, "", ""},
		{"discovery without credentials", func(s *Settings) { s.IntrospectionURL = ""; s.Issuer = "https://as.example.com" },
			"introspection: ClientSecret is required", ""},
		{"discovery: http issuer not loopback", func(s *Settings) {
			s.IntrospectionURL = ""
			s.Issuer = "http://as.example.com"
			s.ClientSecret = "s"
		}, `introspection: Issuer "http://as.example.com" uses http to a host that is not loopback; use https or set AllowInsecureHTTP`, ""},
		{"discovery: http issuer, loopback", func(s *Settings) {
			s.IntrospectionURL = ""
			s.Issuer = "http://127.0.0.1:9/realms/x"
			s.ClientSecret = "s"
		}, "", ""},
		{"discovery: issuer with a query", func(s *Settings) {
			s.IntrospectionURL = ""
			s.Issuer = "https://as.example.com/?tenant=1"
			s.ClientSecret = "s"
		}, "has a query or fragment", ""},
		{"discovery: issuer with an empty fragment", func(s *Settings) {
			s.IntrospectionURL = ""
			s.Issuer = "https://as.example.com/#"
			s.ClientSecret = "s"
		}, "has a query or fragment", ""},
		{"discovery: issuer with credentials", func(s *Settings) {
			s.IntrospectionURL = ""
			s.Issuer = "https://u:pw@as.example.com"
			s.ClientSecret = "s"
		}, "introspection: Issuer must not carry credentials", ""},
		{"DiscoveryRefresh at its minimum", func(s *Settings) { s.ClientSecret = "s"; s.DiscoveryRefresh = MinDiscoveryRefresh }, "", ClientSecretBasic},
		{"DiscoveryRefresh just under it", func(s *Settings) {
			s.ClientSecret = "s"
			s.DiscoveryRefresh = MinDiscoveryRefresh - time.Nanosecond
		}, "introspection: DiscoveryRefresh must be at least 1m0s, got 59.999999999s", ""},
		{"DiscoveryRefresh negative", func(s *Settings) { s.ClientSecret = "s"; s.DiscoveryRefresh = -time.Minute },
			"introspection: DiscoveryRefresh must not be negative", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s Settings
			base(&s)
			tc.edit(&s)
			v, err := NewVerifier(s)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.True(t, strings.HasPrefix(err.Error(), "introspection: "), err.Error())
				return
			}
			require.NoError(t, err)
			t.Cleanup(func() { _ = v.Close() })
			assert.Equal(t, tc.wantMethod, v.ClientAuthMethod())
		})
	}
}

// TestDiscoveryRefreshDefault shows that a zero DiscoveryRefresh means
// DefaultDiscoveryRefresh.
func TestDiscoveryRefreshDefault(t *testing.T) {
	v, err := NewVerifier(Settings{Issuer: "https://as.example.com", ClientID: "rs", ClientSecret: "s"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	assert.Equal(t, DefaultDiscoveryRefresh, v.disc.refresh)
	assert.Equal(t, 24*time.Hour, DefaultDiscoveryRefresh)
}

// tempFile writes data to a new file in t's temporary directory and
// returns its path.
func tempFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, data, 0o600))
	return p
}

// pkcs8PEM returns key in a PKCS#8 PEM block.
func pkcs8PEM(t *testing.T, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// TestSettingsFromEnvKeysAndDiscovery shows the variables of discovery and
// of the key-based methods: ISSUER without URL discovers, PRIVATE_KEY_FILE
// and PRIVATE_KEY_ID set PrivateKey, TLS_CERT_FILE and TLS_KEY_FILE set
// TLSClientCertificate (both or neither), DISCOVERY_REFRESH is a duration;
// a bad value is an error naming the variable that never shows what a
// file holds.
func TestSettingsFromEnvKeysAndDiscovery(t *testing.T) {
	keyPEM := pkcs8PEM(t, testECKey())
	cert := selfSignedCertificate(t, "rs")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
	certKeyPEM := pkcs8PEM(t, cert.PrivateKey)
	const notAKey = "not-a-key-but-a-secret-4b1d"
	keyFile := tempFile(t, "key.pem", keyPEM)
	certFile := tempFile(t, "cert.pem", certPEM)
	certKeyFile := tempFile(t, "certkey.pem", certKeyPEM)
	badFile := tempFile(t, "bad.pem", []byte(notAKey))
	missing := filepath.Join(t.TempDir(), "missing.pem")

	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, s Settings)
	}{
		{"issuer alone discovers", map[string]string{"ISSUER": "https://as.example.com/realms/mcp", "CLIENT_SECRET": "s"}, "",
			func(t *testing.T, s Settings) {
				assert.Empty(t, s.IntrospectionURL)
				v, err := NewVerifier(s)
				require.NoError(t, err)
				defer v.Close()
				assert.NotNil(t, v.disc)
				assert.Equal(t, "https://as.example.com/.well-known/oauth-authorization-server/realms/mcp", v.disc.urls[0])
			}},
		{"private key file", map[string]string{"URL": "https://as/i", "PRIVATE_KEY_FILE": keyFile, "CLIENT_AUTH_METHOD": "private_key_jwt"}, "",
			func(t *testing.T, s Settings) {
				require.NotNil(t, s.PrivateKey)
				assert.True(t, testECKey().Equal(s.PrivateKey.Key))
				assert.Equal(t, PrivateKeyJWT, s.ClientAuthMethod)
				v, err := NewVerifier(s)
				require.NoError(t, err)
				defer v.Close()
				assert.Equal(t, PrivateKeyJWT, v.ClientAuthMethod())
			}},
		{"private key id", map[string]string{"PRIVATE_KEY_FILE": keyFile, "PRIVATE_KEY_ID": "kid-7"}, "",
			func(t *testing.T, s Settings) { assert.Equal(t, "kid-7", s.PrivateKey.KeyID) }},
		{"key id without a key file", map[string]string{"PRIVATE_KEY_ID": "kid-7"},
			"introspection: INTROSPECTION_PRIVATE_KEY_ID is set without INTROSPECTION_PRIVATE_KEY_FILE", nil},
		{"key file missing", map[string]string{"PRIVATE_KEY_FILE": missing}, "introspection: INTROSPECTION_PRIVATE_KEY_FILE: ", nil},
		{"key file holds no key", map[string]string{"PRIVATE_KEY_FILE": badFile}, "introspection: INTROSPECTION_PRIVATE_KEY_FILE: ", nil},
		{"certificate and key files", map[string]string{"TLS_CERT_FILE": certFile, "TLS_KEY_FILE": certKeyFile}, "",
			func(t *testing.T, s Settings) {
				require.NotNil(t, s.TLSClientCertificate)
				assert.Equal(t, cert.Certificate, s.TLSClientCertificate.Certificate)
			}},
		{"certificate file alone", map[string]string{"TLS_CERT_FILE": certFile},
			"introspection: INTROSPECTION_TLS_CERT_FILE is set without INTROSPECTION_TLS_KEY_FILE", nil},
		{"key file alone", map[string]string{"TLS_KEY_FILE": certKeyFile},
			"introspection: INTROSPECTION_TLS_KEY_FILE is set without INTROSPECTION_TLS_CERT_FILE", nil},
		{"certificate file holds no certificate", map[string]string{"TLS_CERT_FILE": badFile, "TLS_KEY_FILE": certKeyFile},
			"introspection: INTROSPECTION_TLS_CERT_FILE and INTROSPECTION_TLS_KEY_FILE: ", nil},
		{"certificate key file holds no key", map[string]string{"TLS_CERT_FILE": certFile, "TLS_KEY_FILE": badFile},
			"introspection: INTROSPECTION_TLS_CERT_FILE and INTROSPECTION_TLS_KEY_FILE: ", nil},
		{"discovery refresh", map[string]string{"DISCOVERY_REFRESH": "2h"}, "",
			func(t *testing.T, s Settings) { assert.Equal(t, 2*time.Hour, s.DiscoveryRefresh) }},
		{"discovery refresh not a duration", map[string]string{"DISCOVERY_REFRESH": "daily"},
			`introspection: INTROSPECTION_DISCOVERY_REFRESH="daily" is not a non-negative duration such as 5s`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t, "INTROSPECTION_")
			t.Setenv("INTROSPECTION_CLIENT_ID", "rs")
			for k, v := range tc.env {
				t.Setenv("INTROSPECTION_"+k, v)
			}
			s, err := SettingsFromEnv("")
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.NotContains(t, err.Error(), notAKey, "never what a file holds")
				assert.NotContains(t, err.Error(), "BEGIN")
				return
			}
			require.NoError(t, err)
			tc.check(t, s)
		})
	}
}

// TestEnvErrorNamesTheKeyVariables shows EnvError's restatements of the
// errors about the settings of discovery and the key-based methods in
// terms of the variables to set.
func TestEnvErrorNamesTheKeyVariables(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"neither URL nor issuer", map[string]string{"CLIENT_SECRET": "s"},
			"introspection: INTROSPECTION_URL is not set (nor INTROSPECTION_ISSUER, to discover it)"},
		{"http issuer", map[string]string{"ISSUER": "http://as.example.com", "CLIENT_SECRET": "s"},
			`introspection: INTROSPECTION_ISSUER "http://as.example.com" uses http to a host that is not loopback; use https or set INTROSPECTION_ALLOW_INSECURE_HTTP=true`},
		{"issuer with a query", map[string]string{"ISSUER": "https://as.example.com?x=1", "CLIENT_SECRET": "s"},
			`introspection: INTROSPECTION_ISSUER "https://as.example.com?x=1" has a query or fragment, which an issuer identifier never has (RFC 8414 §2)`},
		{"private_key_jwt without a key", map[string]string{"URL": "https://as/i", "CLIENT_SECRET": "s", "CLIENT_AUTH_METHOD": "private_key_jwt"},
			"introspection: INTROSPECTION_PRIVATE_KEY_FILE is not set, which private_key_jwt needs"},
		{"tls_client_auth without a certificate", map[string]string{"URL": "https://as/i", "CLIENT_SECRET": "s", "CLIENT_AUTH_METHOD": "tls_client_auth"},
			"introspection: INTROSPECTION_TLS_CERT_FILE and INTROSPECTION_TLS_KEY_FILE are not set, which tls_client_auth needs"},
		{"client_secret_jwt with a short secret", map[string]string{"URL": "https://as/i", "CLIENT_SECRET": "short", "CLIENT_AUTH_METHOD": "client_secret_jwt"},
			"introspection: INTROSPECTION_CLIENT_SECRET must have at least 32 bytes for client_secret_jwt (RFC 7518 §3.2)"},
		{"discovery refresh too short", map[string]string{"URL": "https://as/i", "CLIENT_SECRET": "s", "DISCOVERY_REFRESH": "30s"},
			"introspection: INTROSPECTION_DISCOVERY_REFRESH must be at least 1m0s, got 30s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t, "INTROSPECTION_")
			t.Setenv("INTROSPECTION_CLIENT_ID", "rs")
			for k, v := range tc.env {
				t.Setenv("INTROSPECTION_"+k, v)
			}
			s, err := SettingsFromEnv("")
			require.NoError(t, err)
			_, verr := NewVerifier(s)
			require.Error(t, verr)
			err = EnvError("", verr)
			assert.Equal(t, tc.want, err.Error())
			assert.ErrorIs(t, err, verr)
			assert.NotContains(t, err.Error(), "short", "never the secret")
		})
	}
}

// TestSettingsNeverShowKeys formats Settings with a private key and a TLS
// client certificate with every fmt verb and both slog handlers: the key
// shows only as its algorithm and key id, the certificate only as set,
// and no key material appears in any encoding.
func TestSettingsNeverShowKeys(t *testing.T) {
	cert := selfSignedCertificate(t, "rs")
	s := Settings{IntrospectionURL: "https://as/i", ClientID: "rs", ClientSecret: jwtSecret,
		PrivateKey: &SigningKey{Key: testECKey(), KeyID: "kid-9"}, TLSClientCertificate: &cert,
		ClientAssertionAudience: "https://as", DiscoveryRefresh: time.Hour}
	forbidden := []string{jwtSecret, fmt.Sprintf("%x", ecPrivateBytes(t)), new(big.Int).SetBytes(ecPrivateBytes(t)).Text(10),
		base64.RawURLEncoding.EncodeToString(ecPrivateBytes(t)), string(pkcs8PEM(t, testECKey())),
		base64.StdEncoding.EncodeToString(ecPrivateBytes(t))}
	for _, k := range []any{testECKey(), cert.PrivateKey} {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		require.NoError(t, err)
		forbidden = append(forbidden, base64.StdEncoding.EncodeToString(der), fmt.Sprintf("%x", der))
	}
	var texts []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		texts = append(texts, fmt.Sprintf(verb, s), fmt.Sprintf(verb, &s))
	}
	for _, h := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var b bytes.Buffer
		slog.New(h(&b)).Info("settings", "s", s)
		texts = append(texts, b.String())
	}
	for _, text := range texts {
		for _, f := range forbidden {
			assert.NotContains(t, text, f)
		}
		assert.Contains(t, text, "kid-9", "the key id shows")
	}
	assert.Contains(t, texts[0], "TLSClientCertificate:set")
	assert.Contains(t, texts[0], "DiscoveryRefresh:1h0m0s")
	assert.Contains(t, texts[0], `ClientAssertionAudience:"https://as"`)
	assert.Contains(t, texts[len(texts)-2], "s.tls_client_certificate=set")
	assert.Contains(t, fmt.Sprint(Settings{}), "PrivateKey:none TLSClientCertificate:none")
}

// TestVerifyErrorsNeverShowTheKey shows that a verifier with a private key
// and an unreachable server fails without key material in its error or
// its logs.
func TestVerifyErrorsNeverShowTheKey(t *testing.T) {
	var logs bytes.Buffer
	srv := jsonServer(t, http.StatusBadRequest, `{"error":"invalid_request"}`)
	v := newVerifier(t, srv.URL, nil, func(s *Settings) {
		s.ClientSecret = ""
		s.PrivateKey = &SigningKey{Key: testRSAKey()}
		s.Logger = newTestLogger(&logs)
	})
	_, err := v.Verify(context.Background(), "tok")
	require.Error(t, err)
	for _, text := range []string{err.Error(), logs.String(), fmt.Sprintf("%+v", v)} {
		assert.NotContains(t, text, testRSAKey().D.Text(16))
		assert.NotContains(t, text, testRSAKey().Primes[0].Text(10))
	}
}
