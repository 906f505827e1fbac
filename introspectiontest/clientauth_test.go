package introspectiontest

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	jwtClient   = "jwt-client"
	jwtSecret   = "0123456789abcdef0123456789abcdef" // MinClientSecretJWTSize bytes
	shortClient = "short-client"
	shortSecret = "0123456789abcdef0123456789abcde" // one byte short
	rsaClient   = "rsa-client"
	p256Client  = "p256-client"
	p384Client  = "p384-client"
	edClient    = "ed25519-client"
)

// keys are generated once: RSA key generation is slow.
var keys = sync.OnceValue(func() (k struct {
	rsa, rsa2  *rsa.PrivateKey
	p256, p384 *ecdsa.PrivateKey
	p256b      *ecdsa.PrivateKey
	ed, ed2    ed25519.PrivateKey
}) {
	k.rsa, k.rsa2 = newRSAKey(), newRSAKey()
	k.p256, k.p256b = newECKey(elliptic.P256()), newECKey(elliptic.P256())
	k.p384 = newECKey(elliptic.P384())
	k.ed, k.ed2 = newEdKey(), newEdKey()
	return k
})

// authFixture is a server with a client of every kind and a fixed clock.
type authFixture struct {
	s   *Server
	now time.Time
	tok string // an active token
}

func newAuthFixture(t *testing.T) *authFixture {
	t.Helper()
	k := keys()
	f := &authFixture{s: NewServer(), now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	t.Cleanup(f.s.Close)
	f.s.SetNow(func() time.Time { return f.now })
	f.s.AddClient(jwtClient, jwtSecret)
	f.s.AddClient(shortClient, shortSecret)
	f.s.AddKeyClient(rsaClient, &k.rsa.PublicKey)
	f.s.AddKeyClient(p256Client, &k.p256.PublicKey)
	f.s.AddKeyClient(p384Client, &k.p384.PublicKey)
	f.s.AddKeyClient(edClient, k.ed.Public())
	f.tok = f.s.Issue(TokenOptions{})
	return f
}

// authRequest is how a request authenticates: raw Basic credentials (as
// they go on the wire), another Authorization header, and form fields.
type authRequest struct {
	basic         string
	authorization string
	form          url.Values
}

// send posts r to endpoint with the endpoint's own parameters (a token to
// introspect, or a client_credentials grant) and decodes the answer.
func (f *authFixture) send(t *testing.T, endpoint string, r authRequest) (*http.Response, map[string]any) {
	t.Helper()
	form := url.Values{}
	for k, v := range r.form {
		form[k] = v
	}
	if endpoint == f.s.IntrospectionURL {
		form.Set("token", f.tok)
	} else {
		form.Set("grant_type", "client_credentials")
	}
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if r.basic != "" {
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(r.basic)))
	}
	if r.authorization != "" {
		req.Header.Set("Authorization", r.authorization)
	}
	return decode(t, req)
}

// decode sends req and decodes the JSON object it gets back.
func decode(t *testing.T, req *http.Request) (*http.Response, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return resp, body
}

func assertion(a string) url.Values {
	return url.Values{"client_assertion_type": {jwtBearer}, "client_assertion": {a}}
}

// signed returns a form with a client assertion by signer for id, with
// claims edited by edit.
func (f *authFixture) signed(t *testing.T, signer testSigner, id string, edit func(map[string]any)) url.Values {
	t.Helper()
	c := assertionClaims(id, f.s.Issuer, f.now)
	if edit != nil {
		edit(c)
	}
	return assertion(signer.jws(t, nil, c))
}

func TestClientAuthenticationMethods(t *testing.T) {
	k := keys()
	hs := testSigner{alg: "HS256", secret: []byte(jwtSecret)}
	rs := testSigner{alg: "RS256", key: k.rsa}
	ps := testSigner{alg: "PS256", key: k.rsa}
	es := testSigner{alg: "ES256", key: k.p256}
	es384 := testSigner{alg: "ES384", key: k.p384}
	ed := testSigner{alg: "EdDSA", key: k.ed}
	set := func(name string, v any) func(map[string]any) { return func(c map[string]any) { c[name] = v } }
	type build func(t *testing.T, f *authFixture) authRequest
	withForm := func(r authRequest, kv ...string) authRequest {
		for i := 0; i < len(kv); i += 2 {
			r.form.Set(kv[i], kv[i+1])
		}
		return r
	}
	basic := func(t *testing.T, f *authFixture) authRequest { return authRequest{basic: encodedCreds} }
	post := func(t *testing.T, f *authFixture) authRequest {
		return authRequest{form: url.Values{"client_id": {ClientID}, "client_secret": {ClientSecret}}}
	}
	signedBy := func(s testSigner, id string, edit func(map[string]any)) build {
		return func(t *testing.T, f *authFixture) authRequest {
			return authRequest{form: f.signed(t, s, id, edit)}
		}
	}
	raw := func(header, claims func(f *authFixture) map[string]any, s testSigner) build {
		return func(t *testing.T, f *authFixture) authRequest {
			c := claims(f)
			return authRequest{form: assertion(s.jws(t, header(f), c))}
		}
	}
	claimsFor := func(id string) func(f *authFixture) map[string]any {
		return func(f *authFixture) map[string]any { return assertionClaims(id, f.s.Issuer, f.now) }
	}
	tests := []struct {
		name   string
		req    build
		replay bool // the same request a second time must fail as want* say
		status int  // 0: accepted
		code   string
		desc   string // a word of error_description, which names the reason
	}{
		{name: "client_secret_basic", req: basic},
		{name: "client_secret_post", req: post},
		{name: "client_secret_jwt", req: signedBy(hs, jwtClient, nil)},
		{name: "client_secret_jwt, client_id sent too", req: func(t *testing.T, f *authFixture) authRequest {
			return withForm(signedBy(hs, jwtClient, nil)(t, f), "client_id", jwtClient)
		}},
		{name: "private_key_jwt RS256", req: signedBy(rs, rsaClient, nil)},
		{name: "private_key_jwt PS256", req: signedBy(ps, rsaClient, nil)},
		{name: "private_key_jwt ES256", req: signedBy(es, p256Client, nil)},
		{name: "private_key_jwt ES384", req: signedBy(es384, p384Client, nil)},
		{name: "private_key_jwt EdDSA", req: signedBy(ed, edClient, nil)},
		{name: "private_key_jwt, typ JWT and kid", req: raw(func(*authFixture) map[string]any {
			return map[string]any{"typ": "JWT", "kid": "k1"}
		}, claimsFor(p256Client), es)},
		{name: "aud token endpoint", req: func(t *testing.T, f *authFixture) authRequest {
			return signedBy(es, p256Client, set("aud", f.s.TokenURL))(t, f)
		}},
		{name: "aud introspection endpoint", req: func(t *testing.T, f *authFixture) authRequest {
			return signedBy(es, p256Client, set("aud", f.s.IntrospectionURL))(t, f)
		}},
		{name: "aud array holding the issuer", req: func(t *testing.T, f *authFixture) authRequest {
			return signedBy(es, p256Client, set("aud", []string{"https://other", f.s.Issuer}))(t, f)
		}},
		{name: "no iat", req: signedBy(es, p256Client, func(c map[string]any) { delete(c, "iat") })},
		{name: "exp at the 5 minute bound", req: func(t *testing.T, f *authFixture) authRequest {
			return signedBy(es, p256Client, set("exp", f.now.Add(maxAssertionLifetime).Unix()))(t, f)
		}},
		{name: "iat at the skew bound", req: func(t *testing.T, f *authFixture) authRequest {
			return signedBy(es, p256Client, set("iat", f.now.Add(assertionSkew).Unix()))(t, f)
		}},

		{name: "basic, wrong secret", req: func(*testing.T, *authFixture) authRequest {
			return authRequest{basic: ClientID + ":nope"}
		}, status: 401, code: "invalid_client", desc: "failed"},
		{name: "post, wrong secret", req: func(*testing.T, *authFixture) authRequest {
			return authRequest{form: url.Values{"client_id": {ClientID}, "client_secret": {"nope"}}}
		}, status: 401, code: "invalid_client", desc: "failed"},
		{name: "no authentication", req: func(*testing.T, *authFixture) authRequest { return authRequest{} },
			status: 401, code: "invalid_client", desc: "no client authentication"},
		{name: "Authorization not Basic", req: func(*testing.T, *authFixture) authRequest {
			return authRequest{authorization: "Bearer abc", form: url.Values{"client_id": {ClientID}, "client_secret": {ClientSecret}}}
		}, status: 401, code: "invalid_client", desc: "Basic"},
		{name: "client_secret_jwt, wrong secret", req: signedBy(testSigner{alg: "HS256", secret: []byte(strings.ToUpper(jwtSecret))}, jwtClient, nil),
			status: 401, code: "invalid_client", desc: "signature"},
		{name: "client_secret_jwt, secret one byte short", req: signedBy(testSigner{alg: "HS256", secret: []byte(shortSecret)}, shortClient, nil),
			status: 401, code: "invalid_client", desc: "32 bytes"},
		{name: "private_key_jwt, wrong key", req: signedBy(testSigner{alg: "ES256", key: k.p256b}, p256Client, nil),
			status: 401, code: "invalid_client", desc: "signature"},
		{name: "private_key_jwt, wrong RSA key", req: signedBy(testSigner{alg: "RS256", key: k.rsa2}, rsaClient, nil),
			status: 401, code: "invalid_client", desc: "signature"},
		{name: "private_key_jwt, wrong Ed25519 key", req: signedBy(testSigner{alg: "EdDSA", key: k.ed2}, edClient, nil),
			status: 401, code: "invalid_client", desc: "signature"},
		{name: "unknown client", req: signedBy(es, "nobody", nil),
			status: 401, code: "invalid_client", desc: "unknown"},
		{name: "replayed jti", req: signedBy(es, p256Client, nil), replay: true,
			status: 401, code: "invalid_client", desc: "jti"},
		{name: "replayed jti, client_secret_jwt", req: signedBy(hs, jwtClient, nil), replay: true,
			status: 401, code: "invalid_client", desc: "jti"},
		{name: "expired", req: func(t *testing.T, f *authFixture) authRequest {
			return signedBy(es, p256Client, set("exp", f.now.Add(-time.Second).Unix()))(t, f)
		}, status: 401, code: "invalid_client", desc: "expired"},
		{name: "exp now", req: func(t *testing.T, f *authFixture) authRequest {
			return signedBy(es, p256Client, set("exp", f.now.Unix()))(t, f)
		}, status: 401, code: "invalid_client", desc: "expired"},
		{name: "exp past the 5 minute bound", req: func(t *testing.T, f *authFixture) authRequest {
			return signedBy(es, p256Client, set("exp", f.now.Add(maxAssertionLifetime+time.Second).Unix()))(t, f)
		}, status: 401, code: "invalid_client", desc: "too far"},
		{name: "iat past the skew bound", req: func(t *testing.T, f *authFixture) authRequest {
			return signedBy(es, p256Client, set("iat", f.now.Add(assertionSkew+time.Second).Unix()))(t, f)
		}, status: 401, code: "invalid_client", desc: "iat"},
		{name: "nbf in the future", req: func(t *testing.T, f *authFixture) authRequest {
			return signedBy(es, p256Client, set("nbf", f.now.Add(assertionSkew+time.Second).Unix()))(t, f)
		}, status: 401, code: "invalid_client", desc: "nbf"},
		{name: "no exp", req: signedBy(es, p256Client, func(c map[string]any) { delete(c, "exp") }),
			status: 401, code: "invalid_client", desc: "exp"},
		{name: "exp a string", req: signedBy(es, p256Client, set("exp", "2026")),
			status: 401, code: "invalid_client", desc: "exp"},
		{name: "no jti", req: signedBy(es, p256Client, func(c map[string]any) { delete(c, "jti") }),
			status: 401, code: "invalid_client", desc: "jti"},
		{name: "wrong aud", req: signedBy(es, p256Client, set("aud", "https://other.example")),
			status: 401, code: "invalid_client", desc: "aud"},
		{name: "no aud", req: signedBy(es, p256Client, func(c map[string]any) { delete(c, "aud") }),
			status: 401, code: "invalid_client", desc: "aud"},
		{name: "iss differs from sub", req: signedBy(es, p256Client, set("iss", "someone")),
			status: 401, code: "invalid_client", desc: "iss"},
		{name: "sub differs from iss", req: signedBy(es, p256Client, set("sub", "someone")),
			status: 401, code: "invalid_client", desc: "sub"},
		{name: "client_id differs from iss", req: func(t *testing.T, f *authFixture) authRequest {
			return withForm(signedBy(es, p256Client, nil)(t, f), "client_id", rsaClient)
		}, status: 401, code: "invalid_client", desc: "iss"},
		{name: "alg none", req: func(t *testing.T, f *authFixture) authRequest {
			h, _ := json.Marshal(map[string]string{"alg": "none"})
			c, _ := json.Marshal(assertionClaims(p256Client, f.s.Issuer, f.now))
			return authRequest{form: assertion(b64(h) + "." + b64(c) + ".")}
		}, status: 401, code: "invalid_client", desc: "alg"},
		{name: "alg HS256 keyed with the client's public key", req: func(t *testing.T, f *authFixture) authRequest {
			pub, err := k.p256.PublicKey.Bytes()
			require.NoError(t, err)
			return signedBy(testSigner{alg: "HS256", secret: pub}, p256Client, nil)(t, f)
		}, status: 401, code: "invalid_client", desc: "secret"},
		{name: "alg mismatch, ES256 for an RSA key", req: signedBy(es, rsaClient, nil),
			status: 401, code: "invalid_client", desc: "alg"},
		{name: "alg mismatch, RS256 for a P-256 key", req: signedBy(rs, p256Client, nil),
			status: 401, code: "invalid_client", desc: "alg"},
		{name: "alg mismatch, ES256 for a P-384 key", req: signedBy(es, p384Client, nil),
			status: 401, code: "invalid_client", desc: "alg"},
		{name: "alg mismatch, ES384 header on an ES256 signature", req: raw(func(*authFixture) map[string]any {
			return map[string]any{"alg": "ES384"}
		}, claimsFor(p256Client), es), status: 401, code: "invalid_client", desc: "alg"},
		{name: "alg HS512", req: raw(func(*authFixture) map[string]any { return map[string]any{"alg": "HS512"} }, claimsFor(jwtClient), hs),
			status: 401, code: "invalid_client", desc: "alg"},
		{name: "crit header", req: raw(func(*authFixture) map[string]any {
			return map[string]any{"crit": []string{"exp"}}
		}, claimsFor(p256Client), es), status: 401, code: "invalid_client", desc: "crit"},
		{name: "two parts", req: func(*testing.T, *authFixture) authRequest {
			return authRequest{form: assertion("eyJhbGciOiJFUzI1NiJ9.e30")}
		}, status: 401, code: "invalid_client", desc: "compact"},
		{name: "padded base64", req: func(t *testing.T, f *authFixture) authRequest {
			a := f.signed(t, es, p256Client, nil).Get("client_assertion")
			return authRequest{form: assertion(a + "=")}
		}, status: 401, code: "invalid_client", desc: "base64"},
		{name: "duplicate claim", req: func(t *testing.T, f *authFixture) authRequest {
			c := assertionClaims(p256Client, f.s.Issuer, f.now)
			cb, _ := json.Marshal(c)
			dup := `{"sub":"x",` + string(cb[1:])
			h, _ := json.Marshal(map[string]string{"alg": "ES256"})
			input := b64(h) + "." + b64([]byte(dup))
			return authRequest{form: assertion(input + "." + b64(es.sign(t, input)))}
		}, status: 401, code: "invalid_client", desc: "duplicate"},
		{name: "assertion type unknown", req: func(t *testing.T, f *authFixture) authRequest {
			r := signedBy(es, p256Client, nil)(t, f)
			r.form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
			return r
		}, status: 401, code: "invalid_client", desc: "client_assertion_type"},
		{name: "assertion without its type", req: func(t *testing.T, f *authFixture) authRequest {
			r := signedBy(es, p256Client, nil)(t, f)
			r.form.Del("client_assertion_type")
			return r
		}, status: 400, code: "invalid_request", desc: "client_assertion_type"},
		{name: "repeated client_id", req: func(*testing.T, *authFixture) authRequest {
			return authRequest{form: url.Values{"client_id": {ClientID, ClientID}, "client_secret": {ClientSecret}}}
		}, status: 400, code: "invalid_request", desc: "client_id"},

		{name: "two methods: basic and post", req: func(*testing.T, *authFixture) authRequest {
			return authRequest{basic: encodedCreds, form: url.Values{"client_id": {ClientID}, "client_secret": {ClientSecret}}}
		}, status: 400, code: "invalid_request", desc: "more than one"},
		{name: "two methods: basic and private_key_jwt", req: func(t *testing.T, f *authFixture) authRequest {
			r := signedBy(es, p256Client, nil)(t, f)
			r.basic = encodedCreds
			return r
		}, status: 400, code: "invalid_request", desc: "more than one"},
		{name: "two methods: client_secret and client_secret_jwt", req: func(t *testing.T, f *authFixture) authRequest {
			return withForm(signedBy(hs, jwtClient, nil)(t, f), "client_secret", jwtSecret)
		}, status: 400, code: "invalid_request", desc: "more than one"},
	}
	for _, endpoint := range []string{"introspection", "token"} {
		t.Run(endpoint, func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					f := newAuthFixture(t)
					target := f.s.IntrospectionURL
					if endpoint == "token" {
						target = f.s.TokenURL
					}
					r := tc.req(t, f)
					if tc.replay {
						resp, body := f.send(t, target, r)
						require.Equal(t, http.StatusOK, resp.StatusCode, "first use: %v", body)
					}
					resp, body := f.send(t, target, r)
					if tc.status == 0 {
						require.Equal(t, http.StatusOK, resp.StatusCode, "%v", body)
						if endpoint == "token" {
							assert.NotEmpty(t, body["access_token"])
						} else {
							assert.Equal(t, true, body["active"])
						}
						return
					}
					assert.Equal(t, tc.status, resp.StatusCode)
					assert.Equal(t, tc.code, body["error"])
					assert.Contains(t, body["error_description"], tc.desc)
					assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
				})
			}
		})
	}
}

// TestAuthMethodsAreLimitedBySetAuthMethods shows that a method left out of
// SetAuthMethods is refused with invalid_client at both endpoints, while the
// others still pass.
func TestAuthMethodsAreLimitedBySetAuthMethods(t *testing.T) {
	k := keys()
	f := newAuthFixture(t)
	requests := map[string]func(t *testing.T) authRequest{
		"client_secret_basic": func(*testing.T) authRequest { return authRequest{basic: encodedCreds} },
		"client_secret_post": func(*testing.T) authRequest {
			return authRequest{form: url.Values{"client_id": {ClientID}, "client_secret": {ClientSecret}}}
		},
		"client_secret_jwt": func(t *testing.T) authRequest {
			return authRequest{form: f.signed(t, testSigner{alg: "HS256", secret: []byte(jwtSecret)}, jwtClient, nil)}
		},
		"private_key_jwt": func(t *testing.T) authRequest {
			return authRequest{form: f.signed(t, testSigner{alg: "EdDSA", key: k.ed}, edClient, nil)}
		},
	}
	for _, only := range []string{"client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt"} {
		t.Run(only, func(t *testing.T) {
			f.s.SetAuthMethods(only)
			for method, req := range requests {
				for _, target := range []string{f.s.IntrospectionURL, f.s.TokenURL} {
					resp, body := f.send(t, target, req(t))
					if method == only {
						assert.Equal(t, http.StatusOK, resp.StatusCode, "%s at %s: %v", method, target, body)
						continue
					}
					assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s at %s", method, target)
					assert.Equal(t, "invalid_client", body["error"], "%s at %s", method, target)
					assert.Contains(t, body["error_description"], method, "%s at %s", method, target)
					if only == "client_secret_basic" || method == "client_secret_basic" {
						assert.Equal(t, `Basic realm="introspection"`, resp.Header.Get("WWW-Authenticate"))
					} else {
						assert.Empty(t, resp.Header.Get("WWW-Authenticate"), "no Basic challenge when Basic is neither accepted nor tried")
					}
				}
			}
		})
	}
	f.s.SetAuthMethods()
	for method, req := range requests {
		resp, body := f.send(t, f.s.TokenURL, req(t))
		assert.Equal(t, http.StatusOK, resp.StatusCode, "%s accepted again with all methods: %v", method, body)
	}
}

func TestSetAuthMethodsRefusesUnknownMethods(t *testing.T) {
	s := NewServer()
	defer s.Close()
	for _, m := range []string{"tls_client_auth", "none", "client_secret"} {
		assert.Panics(t, func() { s.SetAuthMethods(m) }, m)
	}
}

func TestAddKeyClientRefusesUnusableKeys(t *testing.T) {
	s := NewServer()
	defer s.Close()
	k := keys()
	assert.Panics(t, func() { s.AddKeyClient("c", []byte("secret")) }, "not a public key")
	assert.Panics(t, func() { s.AddKeyClient("c", &newECKey(elliptic.P224()).PublicKey) }, "P-224")
	assert.NotPanics(t, func() { s.AddKeyClient("c", k.p256) }, "a private key stands for its public key")
}

// TestAssertionSizeBound shows the bound on a client assertion's length:
// one of exactly maxAssertionSize bytes is accepted, one byte more refused.
func TestAssertionSizeBound(t *testing.T) {
	f := newAuthFixture(t)
	hs := testSigner{alg: "HS256", secret: []byte(jwtSecret)}
	sized := func(t *testing.T, size int) string {
		t.Helper()
		// The pad claim grows the payload by 4/3 of a character a byte;
		// kid grows the header, so that every total length can be reached.
		c := assertionClaims(jwtClient, f.s.Issuer, f.now)
		build := func(pad, kid int) string {
			c["pad"] = strings.Repeat("p", pad)
			return hs.jws(t, map[string]any{"kid": strings.Repeat("k", kid)}, c)
		}
		start := max(0, (size-len(build(0, 0)))*3/4-8)
		for pad := start; pad < start+16; pad++ {
			for kid := range 4 {
				if a := build(pad, kid); len(a) == size {
					return build(pad, kid)
				}
			}
		}
		t.Fatalf("no assertion of %d bytes", size)
		return ""
	}
	for _, tc := range []struct {
		size int
		ok   bool
	}{{maxAssertionSize, true}, {maxAssertionSize + 1, false}} {
		resp, body := f.send(t, f.s.TokenURL, authRequest{form: assertion(sized(t, tc.size))})
		if tc.ok {
			assert.Equal(t, http.StatusOK, resp.StatusCode, "%d bytes: %v", tc.size, body)
		} else {
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%d bytes", tc.size)
			assert.Contains(t, body["error_description"], "too large")
		}
	}
}

// TestJTIMemoryBound shows that the memory of used jtis holds at most its
// capacity of unexpired entries: at the bound a new jti is refused (never
// is a live one forgotten), and once entries expire they make room.
func TestJTIMemoryBound(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	m := newJTIMemory(3)
	for i, jti := range []string{"a", "b", "c"} {
		require.NoError(t, m.use("client", jti, now.Add(time.Duration(i+1)*time.Minute), now), jti)
	}
	assert.ErrorIs(t, m.use("client", "a", now.Add(time.Hour), now), errJTIReplayed)
	assert.ErrorIs(t, m.use("client", "d", now.Add(time.Minute), now), errJTIMemoryFull, "past the bound")
	assert.ErrorIs(t, m.use("client", "b", now.Add(time.Hour), now.Add(time.Minute)), errJTIReplayed, "b lives until 2 min")
	// At +1 min, a has expired and gives way to d; b and c still live.
	assert.NoError(t, m.use("client", "d", now.Add(5*time.Minute), now.Add(time.Minute)))
	assert.ErrorIs(t, m.use("client", "e", now.Add(5*time.Minute), now.Add(time.Minute)), errJTIMemoryFull)
	assert.Equal(t, 3, m.len())

	perClient := newJTIMemory(2)
	require.NoError(t, perClient.use("client", "x", now.Add(time.Minute), now))
	assert.NoError(t, perClient.use("other-client", "x", now.Add(time.Minute), now), "jtis are per client")

	s := NewServer()
	defer s.Close()
	assert.Equal(t, maxSeenJTIs, s.jtis.max, "the server's memory has the documented bound")
}

// TestJTIMemoryFullAnswers503 shows the answer when the memory is full:
// temporarily_unavailable, not acceptance of an assertion it cannot record.
func TestJTIMemoryFullAnswers503(t *testing.T) {
	f := newAuthFixture(t)
	f.s.jtis = newJTIMemory(1)
	hs := testSigner{alg: "HS256", secret: []byte(jwtSecret)}
	resp, body := f.send(t, f.s.TokenURL, authRequest{form: f.signed(t, hs, jwtClient, nil)})
	require.Equal(t, http.StatusOK, resp.StatusCode, "%v", body)
	resp, body = f.send(t, f.s.TokenURL, authRequest{form: f.signed(t, hs, jwtClient, nil)})
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "temporarily_unavailable", body["error"])
}
