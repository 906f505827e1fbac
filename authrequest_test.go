package introspection

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Keys of the client authentication tests, made once.
var (
	testECKey = sync.OnceValue(func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
	testRSAKey = sync.OnceValue(func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return k
	})
	testEdKey = sync.OnceValue(func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
)

// ecPrivateBytes returns the scalar of testECKey.
func ecPrivateBytes(t *testing.T) []byte {
	t.Helper()
	b, err := testECKey().Bytes()
	require.NoError(t, err)
	return b
}

// jwtSecret is a client secret long enough for client_secret_jwt.
const jwtSecret = "jwt-secret-0123456789-abcdefghijklmnop"

// checkJWS verifies the compact JWS s with key (a public key, or the HMAC
// secret as []byte) independently of the verifier's code, and returns its
// header and claims.
func checkJWS(t *testing.T, s string, key any) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(s, ".")
	require.Len(t, parts, 3, "a compact JWS")
	dec := func(p string) []byte {
		b, err := base64.RawURLEncoding.DecodeString(p)
		require.NoError(t, err, "base64url without padding")
		return b
	}
	require.NoError(t, json.Unmarshal(dec(parts[0]), &header))
	require.NoError(t, json.Unmarshal(dec(parts[1]), &claims))
	input := []byte(parts[0] + "." + parts[1])
	sig := dec(parts[2])
	sum := sha256.Sum256(input)
	switch k := key.(type) {
	case []byte:
		require.Equal(t, "HS256", header["alg"])
		m := hmac.New(sha256.New, k)
		m.Write(input)
		require.True(t, hmac.Equal(sig, m.Sum(nil)), "HS256 signature")
	case *ecdsa.PublicKey:
		require.Equal(t, "ES256", header["alg"])
		require.Len(t, sig, 64)
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		require.True(t, ecdsa.Verify(k, sum[:], r, s), "ES256 signature")
	case *rsa.PublicKey:
		require.Equal(t, "RS256", header["alg"])
		require.NoError(t, rsa.VerifyPKCS1v15(k, crypto.SHA256, sum[:], sig), "RS256 signature")
	case ed25519.PublicKey:
		require.Equal(t, "EdDSA", header["alg"])
		require.True(t, ed25519.Verify(k, input, sig), "EdDSA signature")
	default:
		t.Fatalf("no verification for %T", key)
	}
	return header, claims
}

// wireRequest is what an authorization server received.
type wireRequest struct {
	form  url.Values
	auth  string
	certs []*x509.Certificate
}

// wireServer records every introspection request and answers it with an
// active answer; answer, if set, answers instead.
type wireServer struct {
	*httptest.Server
	mu       sync.Mutex
	requests []wireRequest
	answer   func(w http.ResponseWriter, req wireRequest) bool // true: answered
}

func (ws *wireServer) handle(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	req := wireRequest{form: r.PostForm, auth: r.Header.Get("Authorization")}
	if r.TLS != nil {
		req.certs = r.TLS.PeerCertificates
	}
	ws.mu.Lock()
	ws.requests = append(ws.requests, req)
	answer := ws.answer
	ws.mu.Unlock()
	if answer != nil && answer(w, req) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"active":true,"client_id":"app","scope":"read","iss":"https://as.example.com"}`))
}

func (ws *wireServer) received() []wireRequest {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return append([]wireRequest(nil), ws.requests...)
}

func newWireServer(t *testing.T) *wireServer {
	t.Helper()
	ws := &wireServer{}
	ws.Server = httptest.NewServer(http.HandlerFunc(ws.handle))
	t.Cleanup(ws.Close)
	return ws
}

// newTLSWireServer starts a wireServer over TLS that asks for a client
// certificate with clientAuth, naming the certificate authorities of cas.
func newTLSWireServer(t *testing.T, clientAuth tls.ClientAuthType, cas *x509.CertPool) *wireServer {
	t.Helper()
	ws := &wireServer{}
	ws.Server = httptest.NewUnstartedServer(http.HandlerFunc(ws.handle))
	ws.TLS = &tls.Config{ClientAuth: clientAuth, ClientCAs: cas}
	ws.StartTLS()
	t.Cleanup(ws.Close)
	return ws
}

// selfSignedCertificate returns a new self-signed client certificate with
// its key.
func selfSignedCertificate(t *testing.T, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// TestClientAuthOnTheWire shows each client authentication method as the
// authorization server receives it: the form fields and the Authorization
// header, and for the assertion methods an assertion whose signature
// verifies with the client's key, with the header and claims RFC 7523 §3
// asks for: alg, kid when set and no typ; iss = sub = the client id, aud,
// a jti of 16 random bytes, iat now and exp 60 seconds later.
func TestClientAuthOnTheWire(t *testing.T) {
	clock := newFakeClock()
	const issuer = "https://as.example.com"
	tests := []struct {
		name    string
		edit    func(s *Settings)
		key     any    // verifies the assertion; nil: no assertion
		kid     string // expected kid header
		wantAud string // "" means issuer
	}{
		{name: "client_secret_basic", edit: func(s *Settings) {}},
		{name: "client_secret_post", edit: func(s *Settings) { s.ClientAuthMethod = ClientSecretPost }},
		{name: "client_secret_jwt", edit: func(s *Settings) {
			s.ClientAuthMethod = ClientSecretJWT
			s.ClientSecret = jwtSecret
		}, key: []byte(jwtSecret)},
		{name: "private_key_jwt ES256", edit: func(s *Settings) {
			s.ClientSecret = ""
			s.PrivateKey = &SigningKey{Key: testECKey(), KeyID: "ec-1"}
		}, key: &testECKey().PublicKey, kid: "ec-1"},
		{name: "private_key_jwt RS256", edit: func(s *Settings) {
			s.ClientAuthMethod = PrivateKeyJWT
			s.PrivateKey = &SigningKey{Key: testRSAKey()}
		}, key: &testRSAKey().PublicKey},
		{name: "private_key_jwt EdDSA", edit: func(s *Settings) {
			s.ClientAuthMethod = PrivateKeyJWT
			s.PrivateKey = &SigningKey{Key: testEdKey(), KeyID: "ed"}
		}, key: testEdKey().Public(), kid: "ed"},
		{name: "private_key_jwt, audience set", edit: func(s *Settings) {
			s.ClientAuthMethod = PrivateKeyJWT
			s.PrivateKey = &SigningKey{Key: testECKey()}
			s.ClientAssertionAudience = "https://as.example.com/oauth2/v1/introspect"
		}, key: &testECKey().PublicKey, wantAud: "https://as.example.com/oauth2/v1/introspect"},
		{name: "private_key_jwt, no issuer", edit: func(s *Settings) {
			s.ClientAuthMethod = PrivateKeyJWT
			s.PrivateKey = &SigningKey{Key: testECKey()}
			s.Issuer = ""
		}, key: &testECKey().PublicKey, wantAud: "endpoint"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ws := newWireServer(t)
			v := newVerifier(t, ws.URL+"/introspect", clock, func(s *Settings) {
				s.ClientID = "rs:1"
				s.ClientSecret = "secret"
				s.Issuer = issuer
				tc.edit(s)
			})
			_, err := v.Verify(context.Background(), "tok-1")
			require.NoError(t, err)
			got := ws.received()
			require.Len(t, got, 1)
			form, auth := got[0].form, got[0].auth
			assert.Equal(t, "tok-1", form.Get("token"))
			assert.Equal(t, "access_token", form.Get("token_type_hint"))

			switch method := v.ClientAuthMethod(); method {
			case ClientSecretBasic:
				assert.Equal(t, basicAuthHeader("rs:1", "secret"), auth)
				assert.Equal(t, []string{"token", "token_type_hint"}, sortedKeys(form))
			case ClientSecretPost:
				assert.Empty(t, auth)
				assert.Equal(t, "rs:1", form.Get("client_id"))
				assert.Equal(t, "secret", form.Get("client_secret"))
			default:
				assert.Empty(t, auth, "no Authorization header with %s", method)
				assert.Equal(t, []string{"client_assertion", "client_assertion_type", "client_id", "token", "token_type_hint"}, sortedKeys(form))
				assert.Equal(t, "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", form.Get("client_assertion_type"))
				assert.Equal(t, "rs:1", form.Get("client_id"))
				header, claims := checkJWS(t, form.Get("client_assertion"), tc.key)
				if tc.kid != "" {
					assert.Equal(t, tc.kid, header["kid"])
				} else {
					assert.NotContains(t, header, "kid")
				}
				assert.NotContains(t, header, "typ")
				aud := tc.wantAud
				switch aud {
				case "":
					aud = issuer
				case "endpoint":
					aud = ws.URL + "/introspect"
				}
				assert.Equal(t, "rs:1", claims["iss"])
				assert.Equal(t, "rs:1", claims["sub"])
				assert.Equal(t, aud, claims["aud"])
				jti, _ := claims["jti"].(string)
				raw, err := base64.RawURLEncoding.DecodeString(jti)
				require.NoError(t, err)
				assert.Len(t, raw, 16)
				assert.EqualValues(t, clock.Now().Unix(), claims["iat"])
				assert.EqualValues(t, clock.Now().Add(ClientAssertionLifetime).Unix(), claims["exp"])
				assert.Len(t, claims, 6, "iss, sub, aud, jti, iat, exp")
			}
		})
	}
}

// sortedKeys returns the names of the form's fields, sorted.
func sortedKeys(form url.Values) []string {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	for i := range keys {
		for j := i + 1; j < len(keys); j++ {
			if keys[j] < keys[i] {
				keys[i], keys[j] = keys[j], keys[i]
			}
		}
	}
	return keys
}

// TestClientAssertionFreshForEveryRequest shows that every request carries
// an assertion of its own: for the same token asked again, for concurrent
// tokens, and for the circuit breaker's probe after failures. No jti is
// sent twice, at one time of Settings.Now.
func TestClientAssertionFreshForEveryRequest(t *testing.T) {
	clock := newFakeClock()
	ws := newWireServer(t)
	var failing sync.Map
	ws.answer = func(w http.ResponseWriter, req wireRequest) bool {
		if _, ok := failing.Load("on"); ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	v := newVerifier(t, ws.URL, clock, func(s *Settings) {
		s.ClientSecret = ""
		s.PrivateKey = &SigningKey{Key: testECKey()}
		s.BreakerThreshold = 2
	})
	ctx := context.Background()
	for range 3 {
		_, err := v.Verify(ctx, "same-token")
		require.NoError(t, err)
	}
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			_, err := v.Verify(ctx, fmt.Sprintf("token-%d", i))
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	failing.Store("on", true)
	for range 2 {
		_, err := v.Verify(ctx, "same-token")
		require.Error(t, err)
	}
	state, _ := v.breakerStats()
	require.Equal(t, BreakerOpen, state)
	failing.Delete("on")
	clock.Advance(time.Minute)
	_, err := v.Verify(ctx, "same-token")
	require.NoError(t, err, "the probe")

	got := ws.received()
	require.Len(t, got, 16)
	seen := map[string]bool{}
	for _, r := range got {
		_, claims := checkJWS(t, r.form.Get("client_assertion"), &testECKey().PublicKey)
		jti := claims["jti"].(string)
		assert.False(t, seen[jti], "jti %s sent twice", jti)
		seen[jti] = true
	}
}

// TestClientAssertionNotResentByGetBody shows the body net/http asks for
// when it sends a request again on a new connection (Request.GetBody):
// it carries a new assertion, never the one sent, of the same length so
// that Content-Length holds, and every assertion sent is kept to be
// scrubbed from errors.
func TestClientAssertionNotResentByGetBody(t *testing.T) {
	clock := newFakeClock()
	for _, tc := range []struct {
		name string
		edit func(*Settings)
		key  any
	}{
		{"private_key_jwt", func(s *Settings) { s.ClientSecret = ""; s.PrivateKey = &SigningKey{Key: testECKey()} }, &testECKey().PublicKey},
		{"client_secret_jwt", func(s *Settings) { s.ClientAuthMethod = ClientSecretJWT; s.ClientSecret = jwtSecret }, []byte(jwtSecret)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, "https://as.example.com/introspect", clock, tc.edit)
			req, sent, err := v.newRequest(context.Background(), "tok", v.fixed)
			require.NoError(t, err)
			bodies := []string{readAll(t, req.Body)}
			for range 2 {
				rc, err := req.GetBody()
				require.NoError(t, err)
				bodies = append(bodies, readAll(t, rc))
			}
			jtis := map[string]bool{}
			var assertions []string
			for _, b := range bodies {
				assert.EqualValues(t, req.ContentLength, len(b), "the length net/http announced")
				form, err := url.ParseQuery(b)
				require.NoError(t, err)
				a := form.Get("client_assertion")
				assertions = append(assertions, a)
				_, claims := checkJWS(t, a, tc.key)
				jtis[claims["jti"].(string)] = true
				assert.EqualValues(t, clock.Now().Unix(), claims["iat"])
			}
			assert.Len(t, jtis, 3, "a new assertion for every body")
			for _, a := range assertions {
				assert.Contains(t, sent.secrets(), a, "kept to be scrubbed")
			}
		})
	}
}

func readAll(t *testing.T, r io.ReadCloser) string {
	t.Helper()
	defer r.Close()
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	return string(b)
}

// TestWrongKeyGivesInvalidClient shows what a server that refuses the
// client's assertion (a key it does not know for the client) makes of
// Verify: ErrIntrospectionFailed with the server's invalid_client, not a
// rejected token.
func TestWrongKeyGivesInvalidClient(t *testing.T) {
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ws := newWireServer(t)
	ws.answer = func(w http.ResponseWriter, req wireRequest) bool {
		if verifyES256(req.form.Get("client_assertion"), &testECKey().PublicKey) {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"invalid_client","error_description":"client authentication failed"}`))
		return true
	}
	for _, tc := range []struct {
		name string
		key  *ecdsa.PrivateKey
		ok   bool
	}{
		{"registered key", testECKey(), true},
		{"another key", other, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, ws.URL, nil, func(s *Settings) {
				s.ClientSecret = ""
				s.PrivateKey = &SigningKey{Key: tc.key}
			})
			_, err := v.Verify(context.Background(), "tok")
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrIntrospectionFailed)
			assert.NotErrorIs(t, err, ErrInvalidToken)
			ie, ok := err.(*IntrospectionError)
			require.True(t, ok, "%T", err)
			assert.Equal(t, "invalid_client", ie.ErrorCode)
			assert.Equal(t, http.StatusUnauthorized, ie.StatusCode)
			assert.Equal(t, FailureStatus, ie.Kind)
		})
	}
}

// verifyES256 reports whether the compact JWS s verifies with key.
func verifyES256(s string, key *ecdsa.PublicKey) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return false
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	return ecdsa.Verify(key, sum[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
}

// TestClientAssertionScrubbedFromServerErrors has the server quote the
// assertion, its signature and the HMAC secret in its error: the error,
// its fields and the logs show REDACTED in their place.
func TestClientAssertionScrubbedFromServerErrors(t *testing.T) {
	for _, method := range []ClientAuthMethod{ClientSecretJWT, PrivateKeyJWT} {
		t.Run(string(method), func(t *testing.T) {
			ws := newWireServer(t)
			ws.answer = func(w http.ResponseWriter, req wireRequest) bool {
				a := req.form.Get("client_assertion")
				sig := a[strings.LastIndexByte(a, '.')+1:]
				body, _ := json.Marshal(map[string]string{
					"error":             "invalid_client " + sig,
					"error_description": "assertion " + a + " (" + url.QueryEscape(a) + ") with key " + jwtSecret + " refused",
				})
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write(body)
				return true
			}
			var logs bytes.Buffer
			v := newVerifier(t, ws.URL, nil, func(s *Settings) {
				s.ClientAuthMethod = method
				s.ClientSecret = jwtSecret
				s.PrivateKey = &SigningKey{Key: testECKey()}
				s.Logger = newTestLogger(&logs)
			})
			_, err := v.Verify(context.Background(), "tok")
			ie, ok := err.(*IntrospectionError)
			require.True(t, ok, "%v", err)
			assert.Equal(t, "invalid_client REDACTED", ie.ErrorCode)
			assert.Equal(t, "assertion REDACTED (REDACTED) with key REDACTED refused", ie.ErrorDescription)
			a := ws.received()[0].form.Get("client_assertion")
			sig := a[strings.LastIndexByte(a, '.')+1:]
			for name, text := range map[string]string{"Error": err.Error(), "%#v": fmt.Sprintf("%#v", ie), "logs": logs.String()} {
				require.NotEmpty(t, text, name)
				for _, leak := range []string{a, sig, jwtSecret, url.QueryEscape(a)} {
					assert.NotContains(t, text, leak, name)
				}
			}
		})
	}
}

// TestAssertionsNeverLogged runs verifications with each assertion method
// and a logger at debug level, accepted, rejected and failed: no log
// record holds an assertion, its signature or a key.
func TestAssertionsNeverLogged(t *testing.T) {
	ws := newWireServer(t)
	var calls sync.Map
	ws.answer = func(w http.ResponseWriter, req wireRequest) bool {
		n, _ := calls.LoadOrStore(req.form.Get("token"), 0)
		calls.Store(req.form.Get("token"), n.(int)+1)
		switch req.form.Get("token") {
		case "inactive":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"active":false}`))
			return true
		case "broken":
			w.WriteHeader(http.StatusBadGateway)
			return true
		}
		return false
	}
	for _, method := range []ClientAuthMethod{ClientSecretJWT, PrivateKeyJWT} {
		t.Run(string(method), func(t *testing.T) {
			var logs bytes.Buffer
			v := newVerifier(t, ws.URL, nil, func(s *Settings) {
				s.ClientAuthMethod = method
				s.ClientSecret = jwtSecret
				s.PrivateKey = &SigningKey{Key: testECKey(), KeyID: "k"}
				s.Logger = newTestLogger(&logs)
			})
			for _, tok := range []string{"good", "inactive", "broken"} {
				_, _ = v.Verify(context.Background(), tok)
			}
			slogOut := &bytes.Buffer{}
			newTestLogger(slogOut).Info("v", "verifier", v, "settings", v.s)
			text := logs.String() + slogOut.String() + fmt.Sprintf("%v %+v %#v", v, v.s, v.s)
			require.NotEmpty(t, logs.String())
			for _, r := range ws.received() {
				a := r.form.Get("client_assertion")
				assert.NotContains(t, text, a)
				assert.NotContains(t, text, a[strings.LastIndexByte(a, '.')+1:])
			}
			assert.NotContains(t, text, jwtSecret)
			d := fmt.Sprintf("%x", ecPrivateBytes(t))
			assert.NotContains(t, text, d)
			assert.NotContains(t, text, base64.RawURLEncoding.EncodeToString(ecPrivateBytes(t)))
		})
	}
}

// TestTLSClientAuthPresentsTheCertificate shows tls_client_auth and
// self_signed_tls_client_auth on the wire: the certificate on the TLS
// connection, also when the server names certificate authorities that did
// not issue it, client_id in the form, and no Authorization header. With
// a caller's HTTPClient the certificate goes on a clone of its transport,
// which is left as it was.
func TestTLSClientAuthPresentsTheCertificate(t *testing.T) {
	cert := selfSignedCertificate(t, "rs")
	unrelated := selfSignedCertificate(t, "some CA")
	cas := x509.NewCertPool()
	cas.AddCert(unrelated.Leaf)
	for _, tc := range []struct {
		name   string
		method ClientAuthMethod
		cas    *x509.CertPool
	}{
		{"tls_client_auth", TLSClientAuth, nil},
		{"self_signed_tls_client_auth", SelfSignedTLSClientAuth, nil},
		{"server names other authorities", SelfSignedTLSClientAuth, cas},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws := newTLSWireServer(t, tls.RequireAnyClientCert, tc.cas)
			client := ws.Client()
			callers := client.Transport.(*http.Transport)
			v := newVerifier(t, ws.URL, nil, func(s *Settings) {
				s.ClientID = "rs"
				s.ClientSecret = ""
				s.ClientAuthMethod = tc.method
				s.TLSClientCertificate = &cert
				s.HTTPClient = client
			})
			_, err := v.Verify(context.Background(), "tok")
			require.NoError(t, err)
			got := ws.received()
			require.Len(t, got, 1)
			require.Len(t, got[0].certs, 1)
			assert.Equal(t, cert.Leaf.Raw, got[0].certs[0].Raw)
			assert.Equal(t, "rs", got[0].form.Get("client_id"))
			assert.Empty(t, got[0].auth)
			assert.Equal(t, []string{"client_id", "token", "token_type_hint"}, sortedKeys(got[0].form))
			assert.Nil(t, callers.TLSClientConfig.GetClientCertificate, "the caller's transport is left alone")
			assert.Empty(t, callers.TLSClientConfig.Certificates)
			assert.NotSame(t, callers, v.transport)
		})
	}
	t.Run("no certificate, refused by the server", func(t *testing.T) {
		ws := newTLSWireServer(t, tls.RequireAnyClientCert, nil)
		v := newVerifier(t, ws.URL, nil, func(s *Settings) {
			s.ClientSecret = ""
			s.ClientAuthMethod = TLSClientAuth
			s.HTTPClient = ws.Client()
		})
		_, err := v.Verify(context.Background(), "tok")
		require.ErrorIs(t, err, ErrIntrospectionFailed)
		assert.Empty(t, ws.received())
	})
	t.Run("the verifier's own transport", func(t *testing.T) {
		v := newVerifier(t, "https://as.example.com/i", nil, func(s *Settings) {
			s.ClientSecret = ""
			s.TLSClientCertificate = &cert
		})
		assert.Equal(t, TLSClientAuth, v.ClientAuthMethod())
		require.NotNil(t, v.transport.TLSClientConfig.GetClientCertificate)
		got, err := v.transport.TLSClientConfig.GetClientCertificate(&tls.CertificateRequestInfo{})
		require.NoError(t, err)
		assert.Equal(t, cert.Certificate, got.Certificate)
	})
}

// TestTLSClientCertificateRefusedWithACallersTLSDialer shows that
// TLSClientCertificate is never silently dropped when the caller's
// HTTPClient has an *http.Transport with DialTLSContext (or the older
// DialTLS) set: net/http then ignores the TLSClientConfig the verifier
// would add the certificate to ("the TLSClientConfig and
// TLSHandshakeTimeout are ignored"), so NewVerifier refuses the settings
// with an error that says to present the certificate in that dialer. The
// same transport without TLSClientCertificate, presenting a certificate
// itself, is accepted, and the server receives its certificate.
func TestTLSClientCertificateRefusedWithACallersTLSDialer(t *testing.T) {
	cert := selfSignedCertificate(t, "rs")
	ws := newTLSWireServer(t, tls.RequestClientCert, nil)
	roots := ws.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	dial := func(certs []tls.Certificate) func(ctx context.Context, network, addr string) (net.Conn, error) {
		return func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := tls.Dialer{Config: &tls.Config{RootCAs: roots, Certificates: certs}}
			return d.DialContext(ctx, network, addr)
		}
	}
	for _, tc := range []struct {
		name      string
		transport func(dial func(context.Context, string, string) (net.Conn, error)) *http.Transport
	}{
		{"DialTLSContext", func(d func(context.Context, string, string) (net.Conn, error)) *http.Transport {
			return &http.Transport{DialTLSContext: d}
		}},
		{"DialTLS", func(d func(context.Context, string, string) (net.Conn, error)) *http.Transport {
			//lint:ignore SA1019 the deprecated field is what is refused
			return &http.Transport{DialTLS: func(network, addr string) (net.Conn, error) {
				return d(context.Background(), network, addr)
			}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			callers := tc.transport(dial(nil))
			t.Cleanup(callers.CloseIdleConnections)
			_, err := NewVerifier(Settings{
				IntrospectionURL:     ws.URL,
				ClientID:             "rs",
				ClientAuthMethod:     TLSClientAuth,
				TLSClientCertificate: &cert,
				HTTPClient:           &http.Client{Transport: callers},
			})
			require.Error(t, err, "the certificate would never be presented")
			for _, w := range []string{"introspection: TLSClientCertificate", "DialTLSContext", "present the certificate in that dialer", "leave TLSClientCertificate unset"} {
				assert.Contains(t, err.Error(), w)
			}

			// As the error says: the dialer presents the certificate.
			presenting := tc.transport(dial([]tls.Certificate{cert}))
			t.Cleanup(presenting.CloseIdleConnections)
			v, err := NewVerifier(Settings{
				IntrospectionURL: ws.URL,
				ClientID:         "rs",
				ClientAuthMethod: TLSClientAuth,
				HTTPClient:       &http.Client{Transport: presenting},
			})
			require.NoError(t, err)
			t.Cleanup(func() { _ = v.Close() })
			before := len(ws.received())
			_, err = v.Verify(context.Background(), "tok-"+tc.name)
			require.NoError(t, err, "precondition: the server answers")
			got := ws.received()
			require.Len(t, got, before+1)
			assert.Len(t, got[before].certs, 1, "the dialer's certificate reached the server")
		})
	}
}

// signingTransport makes one client assertion, which it drops, before each
// request it forwards to http.DefaultTransport.
type signingTransport struct{ signer *jwtSigner }

func (t signingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if _, err := t.signer.clientAssertion("rs", "https://as.example.com", time.Now()); err != nil {
		return nil, err
	}
	return http.DefaultTransport.RoundTrip(r)
}

// BenchmarkMissClientAuth measures a cache miss, one introspection request
// to an httptest server, with each client authentication method, and the
// making of one assertion alone (assertion_<alg>), so that a
// private_key_jwt miss compares with a client_secret_basic miss plus one
// signature, made alone or (client_secret_basic_plus_ES256_signature) in
// the request.
func BenchmarkMissClientAuth(b *testing.B) {
	ctx := context.Background()
	srv := benchServer(b)
	for _, bc := range []struct {
		name string
		edit func(*Settings)
	}{
		{"client_secret_basic", func(s *Settings) {}},
		{"client_secret_jwt", func(s *Settings) { s.ClientAuthMethod = ClientSecretJWT; s.ClientSecret = jwtSecret }},
		{"private_key_jwt_ES256", func(s *Settings) { s.ClientSecret = ""; s.PrivateKey = &SigningKey{Key: testECKey()} }},
		{"private_key_jwt_RS256", func(s *Settings) { s.ClientSecret = ""; s.PrivateKey = &SigningKey{Key: testRSAKey()} }},
		// client_secret_basic whose transport makes, and drops, one ES256
		// assertion per request: the signature's cost where a
		// private_key_jwt request pays it, on the request's goroutine
		// between its other work, rather than in a loop of its own.
		{"client_secret_basic_plus_ES256_signature", func(s *Settings) {
			signer, err := newKeySigner(&SigningKey{Key: testECKey()})
			if err != nil {
				b.Fatal(err)
			}
			s.HTTPClient = &http.Client{Transport: signingTransport{signer: signer}}
		}},
	} {
		s := Settings{IntrospectionURL: srv.URL, ClientID: "rs", ClientSecret: "secret", RequiredScopes: []string{"mcp:tools"}}
		bc.edit(&s)
		v, err := NewVerifier(s)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, benchToken); err != nil {
					b.Fatal(err)
				}
			}
		})
		if v.fixed.signer != nil {
			b.Run("assertion_"+v.fixed.signer.alg(), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := v.fixed.signer.clientAssertion("rs", srv.URL, time.Now()); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		_ = v.Close()
	}
}
