package introspection

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// assertionWant is what checkClientAssertion expects of an assertion.
type assertionWant struct {
	alg, kid           string
	clientID, audience string
	now                time.Time
}

// checkClientAssertion verifies assertion on its own, with the standard
// library alone: a compact JWS of three base64url parts without padding; a
// header of alg (and kid when want.kid is set) and nothing else; claims
// iss = sub = the client id, aud, a jti of 16 bytes, iat = now and exp = iat
// + 60 s, and nothing else; and a signature that key verifies: an
// *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey, or the []byte
// secret of HS256. It returns the jti.
func checkClientAssertion(t testing.TB, assertion string, key any, want assertionWant) string {
	t.Helper()
	parts := strings.Split(assertion, ".")
	require.Len(t, parts, 3, "a compact JWS has three parts")
	dec := func(what, s string) []byte {
		t.Helper()
		require.NotContains(t, s, "=", "%s has no padding", what)
		b, err := base64.RawURLEncoding.Strict().DecodeString(s)
		require.NoError(t, err, "%s is base64url", what)
		return b
	}
	object := func(what string, b []byte) map[string]any {
		t.Helper()
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var m map[string]any
		require.NoError(t, d.Decode(&m), "%s is a JSON object", what)
		require.False(t, d.More(), "%s has nothing after the object", what)
		return m
	}
	header := object("header", dec("header", parts[0]))
	wantHeader := map[string]any{"alg": want.alg}
	if want.kid != "" {
		wantHeader["kid"] = want.kid
	}
	assert.Equal(t, wantHeader, header, "the header holds alg, kid when set, and no typ")

	claims := object("claims", dec("claims", parts[1]))
	iat := want.now.Unix()
	jti, _ := claims["jti"].(string)
	assert.Equal(t, map[string]any{
		"iss": want.clientID,
		"sub": want.clientID,
		"aud": want.audience,
		"jti": jti,
		"iat": json.Number(fmt.Sprint(iat)),
		"exp": json.Number(fmt.Sprint(iat + 60)),
	}, claims)
	assert.Len(t, dec("jti", jti), 16, "jti is 16 bytes")

	input := []byte(parts[0] + "." + parts[1])
	sig := dec("signature", parts[2])
	switch want.alg {
	case "RS256":
		d := sha256.Sum256(input)
		assert.NoError(t, rsa.VerifyPKCS1v15(key.(*rsa.PublicKey), crypto.SHA256, d[:], sig), "RS256 signature")
	case "PS256":
		d := sha256.Sum256(input)
		// A salt of exactly the hash's length, RFC 7518 §3.5.
		assert.NoError(t, rsa.VerifyPSS(key.(*rsa.PublicKey), crypto.SHA256, d[:], sig, &rsa.PSSOptions{SaltLength: sha256.Size}), "PS256 signature")
	case "ES256", "ES384":
		pub := key.(*ecdsa.PublicKey)
		size := map[string]int{"ES256": 32, "ES384": 48}[want.alg]
		require.Len(t, sig, 2*size, "an ECDSA signature is r||s of fixed width, RFC 7518 §3.4")
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		var d []byte
		if size == 32 {
			h := sha256.Sum256(input)
			d = h[:]
		} else {
			h := sha512.Sum384(input)
			d = h[:]
		}
		assert.True(t, ecdsa.Verify(pub, d, r, s), "%s signature", want.alg)
	case "EdDSA":
		assert.True(t, ed25519.Verify(key.(ed25519.PublicKey), input, sig), "EdDSA signature")
	case "HS256":
		m := hmac.New(sha256.New, key.([]byte))
		m.Write(input)
		assert.True(t, hmac.Equal(m.Sum(nil), sig), "HS256 signature")
	default:
		t.Fatalf("checkClientAssertion: alg %q", want.alg)
	}
	return jti
}

// assertionSigners returns a signer for each algorithm, with the key that
// verifies its assertions, under the algorithm's name.
func assertionSigners(t testing.TB) map[string]struct {
	s   *jwtSigner
	key any
} {
	t.Helper()
	out := map[string]struct {
		s   *jwtSigner
		key any
	}{}
	for _, a := range signingKeyAlgs {
		key := signingTestKeys()[a.key]
		s, err := newKeySigner(&SigningKey{Key: key, Algorithm: a.alg, KeyID: "kid-" + a.alg})
		require.NoError(t, err)
		out[a.alg] = struct {
			s   *jwtSigner
			key any
		}{s, key.Public()}
	}
	secret := strings.Repeat("s3cr3t-", 5)
	s, err := newSecretSigner(secret)
	require.NoError(t, err)
	out["HS256"] = struct {
		s   *jwtSigner
		key any
	}{s, []byte(secret)}
	return out
}

func TestClientAssertionVerifiesWithEveryAlgorithm(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 987654321, time.UTC) // fractional seconds are cut off
	for alg, a := range assertionSigners(t) {
		t.Run(alg, func(t *testing.T) {
			assert.Equal(t, alg, a.s.alg())
			assertion, err := a.s.clientAssertion("my-client", "https://as.example/realms/x", now)
			require.NoError(t, err)
			kid := "kid-" + alg
			if alg == "HS256" {
				kid = ""
			}
			checkClientAssertion(t, assertion, a.key, assertionWant{
				alg: alg, kid: kid, clientID: "my-client", audience: "https://as.example/realms/x", now: now,
			})
		})
	}
}

func TestClientAssertionNeverRepeatsJTI(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for alg, a := range assertionSigners(t) {
		t.Run(alg, func(t *testing.T) {
			n := 500
			if alg == "RS256" || alg == "PS256" {
				n = 50 // RSA signatures are slow
			}
			seen := map[string]bool{}
			previous := ""
			for range n {
				assertion, err := a.s.clientAssertion("c", "https://as.example", now)
				require.NoError(t, err)
				require.NotEqual(t, previous, assertion, "two assertions at the same instant differ")
				previous = assertion
				claims := strings.Split(assertion, ".")[1]
				var c struct{ JTI string }
				require.NoError(t, json.Unmarshal(noErr(base64.RawURLEncoding.DecodeString(claims)), &c))
				require.False(t, seen[c.JTI], "jti %s came twice", c.JTI)
				seen[c.JTI] = true
			}
			assert.Len(t, seen, n)
		})
	}
}

func TestClientAssertionEscapesClaimsAndKeyID(t *testing.T) {
	key := signingTestKeys()["Ed25519"]
	for _, tc := range []struct{ name, clientID, audience, kid string }{
		{"quotes and backslashes", `cl"ie\nt`, `https://as.example/"x"`, `k"i\d`},
		{"non-ASCII", "client-é-日本", "https://as.example/é", "ключ"},
		{"HTML and control characters", "</script><b>&", "https://as.example/?a=1&b=<2>", "k\x01\n\t"},
		{"line separators", "a\u2028b\u2029c", "https://as.example", "k\u2028"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := newKeySigner(&SigningKey{Key: key, KeyID: tc.kid})
			require.NoError(t, err)
			now := time.Unix(1_700_000_000, 0)
			assertion, err := s.clientAssertion(tc.clientID, tc.audience, now)
			require.NoError(t, err)
			checkClientAssertion(t, assertion, key.Public(), assertionWant{
				alg: "EdDSA", kid: tc.kid, clientID: tc.clientID, audience: tc.audience, now: now,
			})
		})
	}
}

func TestClientAssertionRefusesEmptyOrInvalidNames(t *testing.T) {
	s, err := newKeySigner(&SigningKey{Key: signingTestKeys()["Ed25519"]})
	require.NoError(t, err)
	for _, tc := range []struct{ name, clientID, audience, want string }{
		{"no client id", "", "https://as.example", "client id"},
		{"no audience", "c", "", "audience"},
		{"client id not UTF-8", "c\xff", "https://as.example", "client id"},
		{"audience not UTF-8", "c", "https://as.example/\xff", "audience"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assertion, err := s.clientAssertion(tc.clientID, tc.audience, time.Now())
			require.Error(t, err)
			assert.Empty(t, assertion)
			assert.True(t, strings.HasPrefix(err.Error(), "introspection: "), err.Error())
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	_, err = newKeySigner(&SigningKey{Key: signingTestKeys()["Ed25519"], KeyID: "k\xff"})
	assert.ErrorContains(t, err, "KeyID", "a kid that is not UTF-8 is refused")
}

func TestClientAssertionLifetimeIsSixtySeconds(t *testing.T) {
	require.Equal(t, 60*time.Second, ClientAssertionLifetime)
	s, err := newSecretSigner(strings.Repeat("k", 32))
	require.NoError(t, err)
	for _, now := range []time.Time{
		time.Unix(1_700_000_000, 0),
		time.Unix(1_700_000_000, 999_999_999),
		time.Date(2038, 1, 19, 3, 14, 8, 0, time.UTC), // past 2^31 seconds
	} {
		assertion, err := s.clientAssertion("c", "a", now)
		require.NoError(t, err)
		var c struct{ IAT, EXP int64 }
		require.NoError(t, json.Unmarshal(noErr(base64.RawURLEncoding.DecodeString(strings.Split(assertion, ".")[1])), &c))
		assert.Equal(t, now.Unix(), c.IAT, "iat is now, in whole seconds")
		assert.Equal(t, int64(60), c.EXP-c.IAT, "exp lies ClientAssertionLifetime after iat")
		assert.LessOrEqual(t, time.Unix(c.EXP, 0).Sub(now), ClientAssertionLifetime, "exp is at most 60 s ahead of now")
	}
}

// TestClientAssertionECDSASignaturesHaveFixedWidth signs until r or s has a
// leading zero byte (about one signature in 128 does) and checks the
// signature still has the curve's full width, RFC 7518 §3.4.
func TestClientAssertionECDSASignaturesHaveFixedWidth(t *testing.T) {
	for _, a := range []struct{ alg, key string }{{"ES256", "P-256"}, {"ES384", "P-384"}} {
		t.Run(a.alg, func(t *testing.T) {
			key := signingTestKeys()[a.key].(*ecdsa.PrivateKey)
			s, err := newKeySigner(&SigningKey{Key: key})
			require.NoError(t, err)
			size := key.Curve.Params().BitSize / 8
			now := time.Unix(1_700_000_000, 0)
			short := 0
			for i := 0; i < 20000 && short < 3; i++ {
				assertion, err := s.clientAssertion("c", "a", now)
				require.NoError(t, err)
				sig := noErr(base64.RawURLEncoding.DecodeString(strings.Split(assertion, ".")[2]))
				require.Len(t, sig, 2*size)
				if sig[0] == 0 || sig[size] == 0 {
					short++
					checkClientAssertion(t, assertion, &key.PublicKey, assertionWant{alg: a.alg, clientID: "c", audience: "a", now: now})
				}
			}
			require.Equal(t, 3, short, "signatures with a short r or s were made and checked")
		})
	}
}

func TestClientAssertionEdDSAKnownAnswer(t *testing.T) {
	// RFC 8037 Appendix A.4: Ed25519 is deterministic, so the signature of
	// the example's signing input is known.
	k, err := ParseSigningKey(readSigningFixture(t, "rfc8037-a1-ed25519.jwk"))
	require.NoError(t, err)
	s, err := newKeySigner(k)
	require.NoError(t, err)
	sig, err := s.sign([]byte("eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"))
	require.NoError(t, err)
	assert.Equal(t, "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg",
		base64.RawURLEncoding.EncodeToString(sig))
}

func TestClientAssertionRS256KnownKey(t *testing.T) {
	// The RSA key of RFC 7517 Appendix A.2, with its kid and alg.
	k, err := ParseSigningKey(readSigningFixture(t, "rfc7517-a2-rsa.jwk"))
	require.NoError(t, err)
	assert.Equal(t, "2011-04-29", k.KeyID)
	assert.Equal(t, "RS256", k.Algorithm)
	assert.Equal(t, b64Int(rfc7517N), k.Key.Public().(*rsa.PublicKey).N)
	s, err := newKeySigner(k)
	require.NoError(t, err)
	now := time.Unix(1_700_000_000, 0)
	assertion, err := s.clientAssertion("c", "a", now)
	require.NoError(t, err)
	checkClientAssertion(t, assertion, k.Key.Public(), assertionWant{alg: "RS256", kid: "2011-04-29", clientID: "c", audience: "a", now: now})
}

// opaqueKeySigner hides the type of its key, as a key in an HSM or a cloud KMS
// does: only crypto.Signer's methods are left.
type opaqueKeySigner struct {
	key   crypto.Signer
	calls int
}

func (s *opaqueKeySigner) Public() crypto.PublicKey { return s.key.Public() }
func (s *opaqueKeySigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	s.calls++
	return s.key.Sign(r, digest, opts)
}

func TestClientAssertionWithAnyCryptoSigner(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for _, a := range signingKeyAlgs {
		t.Run(a.alg, func(t *testing.T) {
			key := &opaqueKeySigner{key: signingTestKeys()[a.key]}
			s, err := newKeySigner(&SigningKey{Key: key, Algorithm: a.alg})
			require.NoError(t, err)
			assertion, err := s.clientAssertion("c", "a", now)
			require.NoError(t, err)
			assert.Equal(t, 1, key.calls, "one signature per assertion")
			checkClientAssertion(t, assertion, key.Public(), assertionWant{alg: a.alg, clientID: "c", audience: "a", now: now})
		})
	}
}

// failingKeySigner is a crypto.Signer whose Sign fails, or returns sig.
type failingKeySigner struct {
	pub crypto.PublicKey
	sig []byte
	err error
}

func (s failingKeySigner) Public() crypto.PublicKey { return s.pub }
func (s failingKeySigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return s.sig, s.err
}

func TestClientAssertionReportsSignerFailures(t *testing.T) {
	keys := signingTestKeys()
	hsmDown := errors.New("hsm: session closed")
	for _, tc := range []struct {
		name string
		key  failingKeySigner
		want string
	}{
		{"RSA signer fails", failingKeySigner{pub: keys["RSA"].Public(), err: hsmDown}, "hsm: session closed"},
		{"EC signer fails", failingKeySigner{pub: keys["P-256"].Public(), err: hsmDown}, "hsm: session closed"},
		{"Ed25519 signer fails", failingKeySigner{pub: keys["Ed25519"].Public(), err: hsmDown}, "hsm: session closed"},
		{"RSA signature of the wrong length", failingKeySigner{pub: keys["RSA"].Public(), sig: make([]byte, 255)}, "length"},
		{"Ed25519 signature of the wrong length", failingKeySigner{pub: keys["Ed25519"].Public(), sig: make([]byte, 63)}, "length"},
		{"EC signature not DER", failingKeySigner{pub: keys["P-256"].Public(), sig: []byte{1, 2, 3}}, "ECDSA"},
		{"EC signature DER with trailing data", failingKeySigner{pub: keys["P-256"].Public(), sig: []byte{0x30, 6, 2, 1, 1, 2, 1, 1, 0}}, "ECDSA"},
		{"EC signature r too large", failingKeySigner{pub: keys["P-256"].Public(), sig: ecdsaDERSignature(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))}, "ECDSA"},
		{"EC signature s zero", failingKeySigner{pub: keys["P-256"].Public(), sig: ecdsaDERSignature(big.NewInt(1), big.NewInt(0))}, "ECDSA"},
		{"EC signature r negative", failingKeySigner{pub: keys["P-256"].Public(), sig: ecdsaDERSignature(big.NewInt(-1), big.NewInt(1))}, "ECDSA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := newKeySigner(&SigningKey{Key: tc.key})
			require.NoError(t, err)
			assertion, err := s.clientAssertion("c", "a", time.Now())
			require.Error(t, err)
			assert.Empty(t, assertion)
			assert.True(t, strings.HasPrefix(err.Error(), "introspection: "), err.Error())
			assert.Contains(t, err.Error(), tc.want)
			if tc.key.err != nil {
				assert.ErrorIs(t, err, hsmDown)
			}
		})
	}
}

// ecdsaDERSignature encodes r and s as an ASN.1 ECDSA-Sig-Value.
func ecdsaDERSignature(r, s *big.Int) []byte {
	integer := func(v *big.Int) []byte {
		var b []byte
		switch v.Sign() {
		case 0:
			b = []byte{0}
		case 1:
			b = v.Bytes()
			if b[0]&0x80 != 0 {
				b = append([]byte{0}, b...)
			}
		default: // -1 only
			b = []byte{0xff}
		}
		return append([]byte{2, byte(len(b))}, b...)
	}
	body := append(integer(r), integer(s)...)
	return append([]byte{0x30, byte(len(body))}, body...)
}

func TestNewSecretSignerNeedsThirtyTwoBytes(t *testing.T) {
	require.Equal(t, 32, MinClientSecretJWTSize)
	for _, tc := range []struct {
		name   string
		secret string
		ok     bool
	}{
		{"empty", "", false},
		{"31 bytes, just under the bound", "pa55word-pa55word-pa55word-pa55", false},
		{"32 bytes, at the bound", "pa55word-pa55word-pa55word-pa55w", true},
		{"31 bytes in 16 characters", strings.Repeat("é", 15) + "x", false},
		{"64 bytes", strings.Repeat("Zz", 32), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := newSecretSigner(tc.secret)
			if !tc.ok {
				require.Error(t, err)
				assert.Nil(t, s)
				assert.True(t, strings.HasPrefix(err.Error(), "introspection: "), err.Error())
				assert.Contains(t, err.Error(), "32")
				if tc.secret != "" {
					assert.NotContains(t, err.Error(), tc.secret[:8], "the error never shows the secret")
				}
				return
			}
			require.NoError(t, err)
			now := time.Unix(1_700_000_000, 0)
			assertion, err := s.clientAssertion("c", "a", now)
			require.NoError(t, err)
			checkClientAssertion(t, assertion, []byte(tc.secret), assertionWant{alg: "HS256", clientID: "c", audience: "a", now: now})
			for _, verb := range []string{"%v", "%+v", "%#v", "%x", "%s"} {
				out := fmt.Sprintf(verb, s) + fmt.Sprintf(verb, *s)
				assert.NotContains(t, out, tc.secret[:8], "fmt %s of the signer shows the secret", verb)
				assert.NotContains(t, out, fmt.Sprintf("%x", tc.secret[:8]), "fmt %s of the signer shows the secret", verb)
			}
		})
	}
}

// assertChoice checks what chooseMethod returned: want, or, when wantErr
// is set, an error that holds each of wantErr.
func assertChoice(t *testing.T, got ClientAuthMethod, err error, want ClientAuthMethod, wantErr []string) {
	t.Helper()
	if wantErr != nil {
		require.Error(t, err)
		assert.Empty(t, got)
		assert.True(t, strings.HasPrefix(err.Error(), "introspection: "), err.Error())
		for _, w := range wantErr {
			assert.Contains(t, err.Error(), w)
		}
		return
	}
	require.NoError(t, err)
	assert.Equal(t, want, got)
}

func TestChooseMethod(t *testing.T) {
	secret := clientCredentials{secret: true}
	longSecret := clientCredentials{secret: true, secretJWT: true}
	key := clientCredentials{key: true}
	cert := clientCredentials{certificate: true}
	all := clientCredentials{secret: true, secretJWT: true, key: true, keyAlg: "ES256", certificate: true}
	selfSignedCert := clientCredentials{certificate: true, selfSigned: true}
	none := clientCredentials{}
	everything := []string{"none", "client_secret_post", "client_secret_basic", "client_secret_jwt",
		"self_signed_tls_client_auth", "tls_client_auth", "private_key_jwt"}
	for _, tc := range []struct {
		name       string
		configured ClientAuthMethod
		supported  []string
		c          clientCredentials
		want       ClientAuthMethod
		wantErr    []string // in the error, when set
	}{
		// The server lists nothing, which RFC 8414 §2 reads as
		// client_secret_basic: the configured method unchecked, or the
		// default without discovery: the secret, then the key, then the
		// certificate.
		{"nil list, secret", "", nil, secret, ClientSecretBasic, nil},
		{"nil list, long secret", "", nil, longSecret, ClientSecretBasic, nil},
		{"nil list, key", "", nil, key, PrivateKeyJWT, nil},
		{"nil list, certificate", "", nil, cert, TLSClientAuth, nil},
		{"nil list, self-signed certificate", "", nil, selfSignedCert, SelfSignedTLSClientAuth, nil},
		{"nil list, all", "", nil, all, ClientSecretBasic, nil},
		{"nil list, key and certificate", "", nil, clientCredentials{key: true, certificate: true}, PrivateKeyJWT, nil},
		{"nil list, configured jwt", ClientSecretJWT, nil, longSecret, ClientSecretJWT, nil},
		{"nil list, configured post", ClientSecretPost, nil, secret, ClientSecretPost, nil},
		{"nil list, configured self-signed", SelfSignedTLSClientAuth, nil, cert, SelfSignedTLSClientAuth, nil},
		{"nil list, no credentials", "", nil, none, "", []string{"no client credentials"}},
		{"nil list, configured without its credentials", PrivateKeyJWT, nil, secret, "", []string{`"private_key_jwt"`, "PrivateKey"}},

		// An empty list says the server accepts no method.
		{"empty list", "", []string{}, all, "", []string{"lists no client authentication method"}},
		{"empty list, configured", ClientSecretBasic, []string{}, secret, "", []string{`"client_secret_basic"`, "[]"}},

		// The order of preference.
		{"everything, all", "", everything, all, PrivateKeyJWT, nil},
		{"everything, certificate and secret", "", everything, clientCredentials{secret: true, secretJWT: true, certificate: true}, TLSClientAuth, nil},
		{"only self-signed listed, certificate", "", []string{"self_signed_tls_client_auth", "client_secret_basic"}, cert, SelfSignedTLSClientAuth, nil},
		{"both TLS methods, certificate from a CA", "", []string{"self_signed_tls_client_auth", "tls_client_auth"}, cert, TLSClientAuth, nil},
		{"both TLS methods, self-signed certificate", "", []string{"tls_client_auth", "self_signed_tls_client_auth"}, selfSignedCert, SelfSignedTLSClientAuth, nil},
		{"only tls_client_auth listed, self-signed certificate", "", []string{"tls_client_auth"}, selfSignedCert, TLSClientAuth, nil},
		{"everything, self-signed certificate and key", "", everything, clientCredentials{key: true, certificate: true, selfSigned: true}, PrivateKeyJWT, nil},
		{"everything, long secret", "", everything, longSecret, ClientSecretBasic, nil},
		{"jwt alone, long secret", "", []string{"client_secret_jwt"}, longSecret, ClientSecretJWT, nil},
		{"jwt and post, long secret", "", []string{"client_secret_jwt", "client_secret_post"}, longSecret, ClientSecretPost, nil},
		{"everything, short secret", "", everything, secret, ClientSecretBasic, nil},
		{"post before basic in the list", "", []string{"client_secret_post", "client_secret_basic"}, secret, ClientSecretBasic, nil},
		{"post alone", "", []string{"client_secret_post"}, longSecret, ClientSecretPost, nil},
		{"jwt alone, short secret", "", []string{"client_secret_jwt"}, secret, "", []string{`["client_secret_jwt"]`, "ClientSecret (shorter than 32 bytes)"}},
		{"key listed, secret held", "", []string{"private_key_jwt", "client_secret_basic"}, secret, ClientSecretBasic, nil},

		// Values chooseMethod does not know are never chosen.
		{"unknown methods", "", []string{"attest_jwt_client_auth", "Client_Secret_Basic", "client_secret_basic "}, all, "",
			[]string{`"attest_jwt_client_auth"`, "ClientSecret, PrivateKey, TLSClientCertificate"}},
		{"unknown methods and one known", "", []string{"x", "client_secret_post", "y"}, secret, ClientSecretPost, nil},
		{"none alone", "", []string{"none"}, all, "", []string{`["none"]`}},
		{"none first", "", []string{"none", "client_secret_basic"}, secret, ClientSecretBasic, nil},

		// A configured method is checked against the list.
		{"configured and listed", ClientSecretPost, everything, secret, ClientSecretPost, nil},
		{"configured jwt and listed", ClientSecretJWT, everything, longSecret, ClientSecretJWT, nil},
		{"configured key and listed", PrivateKeyJWT, []string{"private_key_jwt"}, all, PrivateKeyJWT, nil},
		{"configured not listed", PrivateKeyJWT, []string{"client_secret_basic", "client_secret_post"}, all, "",
			[]string{`"private_key_jwt"`, `["client_secret_basic" "client_secret_post"]`}},
		{"configured listed but its credentials missing", TLSClientAuth, everything, secret, "", []string{`"tls_client_auth"`, "TLSClientCertificate"}},
		{"configured jwt, short secret", ClientSecretJWT, everything, secret, "", []string{`"client_secret_jwt"`, "32"}},
		{"configured unknown", "client_secret", everything, all, "", []string{`"client_secret"`, "unsupported"}},
		{"configured none", "none", []string{"none"}, all, "", []string{`"none"`, "unsupported"}},

		{"nothing allowed", "", []string{"tls_client_auth", "private_key_jwt"}, longSecret, "",
			[]string{`["tls_client_auth" "private_key_jwt"]`, "(ClientSecret)"}},
		{"nothing allowed, no credentials", "", everything, none, "", []string{"no client credentials"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := chooseMethod(tc.configured, tc.supported, nil, tc.c)
			assertChoice(t, got, err, tc.want, tc.wantErr)
		})
	}
}

// TestChooseMethodSigningAlgorithms shows that the algorithms the server
// lists for client assertions
// (introspection_endpoint_auth_signing_alg_values_supported, RFC 8414 §2)
// decide whether private_key_jwt and client_secret_jwt can be used: the key's
// algorithm, or HS256, must be listed; a configured method whose algorithm
// is not is an error naming the algorithm and the list; no list means no
// check.
func TestChooseMethodSigningAlgorithms(t *testing.T) {
	ecKey := clientCredentials{key: true, keyAlg: "ES256"}
	ecKeyAndSecret := clientCredentials{secret: true, secretJWT: true, key: true, keyAlg: "ES256"}
	longSecret := clientCredentials{secret: true, secretJWT: true}
	jwts := []string{"private_key_jwt", "client_secret_jwt", "client_secret_basic"}
	for _, tc := range []struct {
		name       string
		configured ClientAuthMethod
		supported  []string
		algs       []string
		c          clientCredentials
		want       ClientAuthMethod
		wantErr    []string // in the error, when set
	}{
		{"no algorithm list", "", jwts, nil, ecKeyAndSecret, PrivateKeyJWT, nil},
		{"the key's algorithm listed", "", jwts, []string{"RS256", "ES256"}, ecKeyAndSecret, PrivateKeyJWT, nil},
		{"the key's algorithm not listed", "", jwts, []string{"RS256"}, ecKeyAndSecret, ClientSecretBasic, nil},
		{"empty algorithm list", "", jwts, []string{}, ecKeyAndSecret, ClientSecretBasic, nil},
		{"HS256 listed, for the secret", "", []string{"private_key_jwt", "client_secret_jwt"}, []string{"HS256"}, ecKeyAndSecret, ClientSecretJWT, nil},
		{"HS256 not listed", "", []string{"client_secret_jwt", "client_secret_post"}, []string{"RS256"}, longSecret, ClientSecretPost, nil},
		{"nothing left, key", "", []string{"private_key_jwt"}, []string{"RS256", "PS256"}, ecKey, "",
			[]string{`["private_key_jwt"]`, `["RS256" "PS256"]`, "ES256 (PrivateKey)"}},
		{"nothing left, key and secret", "", []string{"private_key_jwt", "client_secret_jwt"}, []string{"EdDSA"}, ecKeyAndSecret, "",
			[]string{`["EdDSA"]`, "ES256 (PrivateKey) or HS256 (ClientSecret)"}},
		{"no method list, the key's algorithm not listed", "", nil, []string{"RS256"}, ecKey, "",
			[]string{"lists no client authentication methods", `["RS256"]`, "ES256 (PrivateKey)"}},
		{"no method list, the key's algorithm listed", "", nil, []string{"ES256"}, ecKey, PrivateKeyJWT, nil},

		{"configured key, algorithm listed", PrivateKeyJWT, jwts, []string{"ES256"}, ecKey, PrivateKeyJWT, nil},
		{"configured key, algorithm not listed", PrivateKeyJWT, jwts, []string{"RS256"}, ecKeyAndSecret, "",
			[]string{`"private_key_jwt"`, "ES256", `["RS256"]`}},
		{"configured key, no method list, algorithm not listed", PrivateKeyJWT, nil, []string{"RS256"}, ecKey, "",
			[]string{`"private_key_jwt"`, "ES256", `["RS256"]`}},
		{"configured jwt, HS256 not listed", ClientSecretJWT, jwts, []string{"ES256"}, ecKeyAndSecret, "",
			[]string{`"client_secret_jwt"`, "HS256", `["ES256"]`}},
		{"configured basic, algorithms irrelevant", ClientSecretBasic, jwts, []string{}, ecKeyAndSecret, ClientSecretBasic, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := chooseMethod(tc.configured, tc.supported, tc.algs, tc.c)
			assertChoice(t, got, err, tc.want, tc.wantErr)
		})
	}
}

func TestChooseMethodBoundsTheListInErrors(t *testing.T) {
	list := func(n, length int) []string {
		l := make([]string, n)
		for i := range l {
			l[i] = fmt.Sprintf("m%03d", i) + strings.Repeat("x", length-4)
		}
		return l
	}
	t.Run("at the bounds", func(t *testing.T) {
		l := list(maxShownMethods, maxShownMethodLength)
		_, err := chooseMethod(PrivateKeyJWT, l, nil, clientCredentials{key: true})
		require.Error(t, err)
		assert.Contains(t, err.Error(), fmt.Sprintf("%q", l), "every method is shown in full")
		assert.NotContains(t, err.Error(), "more")
	})
	t.Run("past the bounds", func(t *testing.T) {
		l := list(maxShownMethods+1, maxShownMethodLength+1)
		_, err := chooseMethod(PrivateKeyJWT, l, nil, clientCredentials{key: true})
		require.Error(t, err)
		assert.Contains(t, err.Error(), fmt.Sprintf("%q", l[0][:maxShownMethodLength]+"..."), "a long method is cut")
		assert.NotContains(t, err.Error(), l[0])
		assert.NotContains(t, err.Error(), l[maxShownMethods][:maxShownMethodLength], "the methods past the bound are counted, not shown")
		assert.Contains(t, err.Error(), "and 1 more")
	})
	t.Run("huge list", func(t *testing.T) {
		_, err := chooseMethod("", list(10_000, 100), nil, clientCredentials{secret: true}) // 1 MB, as large as metadata gets
		require.Error(t, err)
		assert.Less(t, len(err.Error()), 2000)
	})
}

func BenchmarkClientAssertion(b *testing.B) {
	signers := assertionSigners(b)
	now := time.Unix(1_700_000_000, 0)
	for _, alg := range []string{"HS256", "EdDSA", "ES256", "ES384", "RS256", "PS256"} {
		s := signers[alg].s
		b.Run(alg, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.clientAssertion("my-client", "https://as.example/realms/mcp", now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
