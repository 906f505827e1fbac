package introspection

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// signingTestKeys holds one key of each kind a SigningKey may have,
// generated once per test binary.
var signingTestKeys = sync.OnceValue(func() map[string]crypto.Signer {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		panic(err)
	}
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		panic(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return map[string]crypto.Signer{"RSA": rsaKey, "P-256": p256, "P-384": p384, "P-521": p521, "Ed25519": ed}
})

// signingKeyAlgs lists each algorithm a SigningKey may use with the test
// key it goes with.
var signingKeyAlgs = []struct{ alg, key string }{
	{"RS256", "RSA"},
	{"PS256", "RSA"},
	{"ES256", "P-256"},
	{"ES384", "P-384"},
	{"EdDSA", "Ed25519"},
}

// signingKeyJWK marshals key as a private JWK with every member RFC 7518 §6 and
// RFC 8037 §2 give it; members adds to those, or removes one given as nil.
func signingKeyJWK(key crypto.Signer, members map[string]any) []byte {
	m := map[string]any{}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		k.Precompute()
		m["kty"] = "RSA"
		m["n"] = b64url(k.N.Bytes())
		m["e"] = b64url(big.NewInt(int64(k.E)).Bytes())
		m["d"] = b64url(k.D.Bytes())
		m["p"] = b64url(k.Primes[0].Bytes())
		m["q"] = b64url(k.Primes[1].Bytes())
		m["dp"] = b64url(k.Precomputed.Dp.Bytes())
		m["dq"] = b64url(k.Precomputed.Dq.Bytes())
		m["qi"] = b64url(k.Precomputed.Qinv.Bytes())
	case *ecdsa.PrivateKey:
		size := (k.Curve.Params().BitSize + 7) / 8
		point, err := k.PublicKey.Bytes()
		if err != nil {
			panic(err)
		}
		d, err := k.Bytes()
		if err != nil {
			panic(err)
		}
		m["kty"] = "EC"
		m["crv"] = k.Curve.Params().Name
		m["x"] = b64url(point[1 : 1+size])
		m["y"] = b64url(point[1+size:])
		m["d"] = b64url(d)
	case ed25519.PrivateKey:
		m["kty"] = "OKP"
		m["crv"] = "Ed25519"
		m["x"] = b64url(k.Public().(ed25519.PublicKey))
		m["d"] = b64url(k.Seed())
	default:
		panic(fmt.Sprintf("signingKeyJWK: %T", key))
	}
	return editedJSON(m, members)
}

// editedJSON marshals m after members are added to it, or removed where
// given as nil.
func editedJSON(m, members map[string]any) []byte {
	for name, v := range members {
		if v == nil {
			delete(m, name)
		} else {
			m[name] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// signingKeyPEM encodes der as one PEM block of type typ.
func signingKeyPEM(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// signingKeyEncodings returns key in each form ParseSigningKey reads that
// can hold it: PKCS#8, PKCS#1 (RSA), SEC1 (EC) and JWK (with kid and alg
// members when set).
func signingKeyEncodings(t testing.TB, key crypto.Signer, kid, alg string) map[string][]byte {
	t.Helper()
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	members := map[string]any{}
	if kid != "" {
		members["kid"] = kid
	}
	if alg != "" {
		members["alg"] = alg
	}
	enc := map[string][]byte{
		"PKCS#8": signingKeyPEM("PRIVATE KEY", pkcs8),
		"JWK":    signingKeyJWK(key, members),
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		enc["PKCS#1"] = signingKeyPEM("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k))
	case *ecdsa.PrivateKey:
		sec1, err := x509.MarshalECPrivateKey(k)
		require.NoError(t, err)
		enc["SEC1"] = signingKeyPEM("EC PRIVATE KEY", sec1)
	}
	return enc
}

// readSigningFixture returns the file of testdata/signingkeys.
func readSigningFixture(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "signingkeys", name))
	require.NoError(t, err)
	return data
}

func TestParseSigningKeyReadsEveryFormat(t *testing.T) {
	for _, a := range signingKeyAlgs {
		key := signingTestKeys()[a.key]
		for format, data := range signingKeyEncodings(t, key, "key-"+a.alg, a.alg) {
			t.Run(a.alg+" "+format, func(t *testing.T) {
				k, err := ParseSigningKey(data)
				require.NoError(t, err)
				require.NotNil(t, k)
				assert.True(t, key.(interface{ Equal(crypto.PrivateKey) bool }).Equal(k.Key), "the parsed key is the one encoded")
				if format == "JWK" {
					assert.Equal(t, "key-"+a.alg, k.KeyID, "kid comes from the JWK")
					assert.Equal(t, a.alg, k.Algorithm, "alg comes from the JWK")
				} else {
					assert.Empty(t, k.KeyID)
					assert.Empty(t, k.Algorithm)
					k.Algorithm = a.alg
				}
				s, err := newKeySigner(k)
				require.NoError(t, err)
				assert.Equal(t, a.alg, s.alg())
				now := time.Unix(1_700_000_000, 0)
				assertion, err := s.clientAssertion("client", "https://as.example", now)
				require.NoError(t, err)
				checkClientAssertion(t, assertion, key.Public(), assertionWant{
					alg: a.alg, kid: k.KeyID, clientID: "client", audience: "https://as.example", now: now,
				})
			})
		}
	}
}

func TestParseSigningKeyDefaultsAlgorithmByKey(t *testing.T) {
	want := map[string]string{"RSA": "RS256", "P-256": "ES256", "P-384": "ES384", "Ed25519": "EdDSA"}
	for name, alg := range want {
		for format, data := range signingKeyEncodings(t, signingTestKeys()[name], "", "") {
			t.Run(name+" "+format, func(t *testing.T) {
				k, err := ParseSigningKey(data)
				require.NoError(t, err)
				s, err := newKeySigner(k)
				require.NoError(t, err)
				assert.Equal(t, alg, s.alg())
				assert.Contains(t, k.String(), `Algorithm:"`+alg+`"`, "String shows the algorithm in use")
			})
		}
	}
}

func TestParseSigningKeyReadsOpenSSLFiles(t *testing.T) {
	for _, tc := range []struct{ file, alg string }{
		{"p256-ecparams-sec1.pem", "ES256"}, // openssl ecparam -genkey: EC PARAMETERS before the key
		{"p384-pkcs8.pem", "ES384"},         // openssl genpkey
		{"p384-cert-then-key.pem", "ES384"}, // a certificate before the key
		{"ed25519-pkcs8.pem", "EdDSA"},      // openssl genpkey -algorithm ed25519
		{"rsa2048-pkcs8.pem", "RS256"},      // openssl genpkey -algorithm RSA
		{"rsa8192-pkcs1.pem", "RS256"},      // openssl genrsa -traditional 8192
		{"rfc7517-a2-rsa.jwk", "RS256"},     // RFC 7517 Appendix A.2
		{"rfc7515-a3-p256.jwk", "ES256"},    // RFC 7515 Appendix A.3
		{"rfc8037-a1-ed25519.jwk", "EdDSA"}, // RFC 8037 Appendix A.1
		{"rsa2048-pkcs8-crlf.pem", "RS256"}, // Windows line ends
		{"p256-leading-text.pem", "ES256"},  // openssl pkcs12 output: attributes before the block
	} {
		t.Run(tc.file, func(t *testing.T) {
			k, err := ParseSigningKey(readSigningFixture(t, tc.file))
			require.NoError(t, err)
			s, err := newKeySigner(k)
			require.NoError(t, err)
			assert.Equal(t, tc.alg, s.alg())
			now := time.Unix(1_700_000_000, 0)
			assertion, err := s.clientAssertion("c", "https://as.example", now)
			require.NoError(t, err)
			checkClientAssertion(t, assertion, k.Key.Public(), assertionWant{
				alg: tc.alg, kid: k.KeyID, clientID: "c", audience: "https://as.example", now: now,
			})
		})
	}
}

func TestParseSigningKeyRefusesOtherKeysAndForms(t *testing.T) {
	for _, tc := range []struct {
		file string
		want string // in the error
	}{
		{"p256-encrypted-pkcs8.pem", "encrypted"},
		{"rsa2047-encrypted-pkcs1.pem", "encrypted"},
		{"p256-encrypted-sec1.pem", "encrypted"},
		{"p384-public.pem", "public key"},
		{"rsa2047-public-pkcs1.pem", "public key"},
		{"p384-cert.pem", "certificate"},
		{"dsa-pkcs8.pem", "DSA"},
		{"dsa-traditional.pem", "DSA"},
		{"secp256k1-sec1.pem", "curve"},
		{"secp256k1-pkcs8.pem", "curve"},
		{"p521-pkcs8.pem", "P-521"},
		{"p224-sec1.pem", "P-224"},
		{"x25519-pkcs8.pem", "X25519"},
		{"ed448-pkcs8.pem", "not supported"},
		{"ed25519-openssh.pem", "OpenSSH"},
		{"rsa2047-pkcs1.pem", "2047"},
		{"rsa8193-pkcs1.pem", "8193"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			data := readSigningFixture(t, tc.file)
			k, err := ParseSigningKey(data)
			require.Error(t, err)
			assert.Nil(t, k)
			assert.True(t, strings.HasPrefix(err.Error(), "introspection: "), err.Error())
			assert.Contains(t, err.Error(), tc.want)
			assertNoPEMBody(t, err.Error(), data)
		})
	}
}

// assertNoPEMBody fails when text holds a line of the base64 body of any
// PEM block in data, or the first 16 characters of one.
func assertNoPEMBody(t *testing.T, text string, data []byte) {
	t.Helper()
	for line := range strings.SplitSeq(string(data), "\n") {
		line = strings.TrimSpace(line)
		if len(line) < 16 || strings.HasPrefix(line, "-----") || strings.Contains(line, ":") {
			continue
		}
		assert.NotContains(t, text, line[:16])
	}
}

func TestParseSigningKeyRefusesBadInput(t *testing.T) {
	keys := signingTestKeys()
	rsaKey, p256, ed := keys["RSA"], keys["P-256"], keys["Ed25519"]
	p256DER, err := x509.MarshalECPrivateKey(p256.(*ecdsa.PrivateKey))
	require.NoError(t, err)
	other := signingTestKeys()["P-384"].(*ecdsa.PrivateKey)
	otherPoint, _ := other.PublicKey.Bytes()
	for _, tc := range []struct {
		name string
		data []byte
		want string // in the error
	}{
		{"empty", nil, "no PEM"},
		{"white space", []byte(" \n\t"), "no PEM"},
		{"text", []byte("not a key"), "no PEM"},
		{"PEM block of unknown type", signingKeyPEM("SOMETHING", []byte{1, 2}), "no private key"},
		{"PKCS#8 garbage", signingKeyPEM("PRIVATE KEY", []byte("garbage")), "PKCS#8"},
		{"PKCS#1 garbage", signingKeyPEM("RSA PRIVATE KEY", []byte("garbage")), "PKCS#1"},
		{"SEC1 garbage", signingKeyPEM("EC PRIVATE KEY", []byte("garbage")), "SEC1"},
		{"SEC1 in a PKCS#8 block", signingKeyPEM("PRIVATE KEY", p256DER), "PKCS#8"},
		{"PEM with encryption headers", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY",
			Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00"}, Bytes: p256DER}), "encrypted"},
		{"unknown private key type", signingKeyPEM("FOO PRIVATE KEY", []byte{1}), "private key of a type that is not supported"},

		{"JWK not JSON", []byte(`{"kty":`), "JSON"},
		{"JWK not UTF-8", []byte("{\"kty\":\"EC\xff\"}"), "UTF-8"},
		{"JWK trailing data", append(signingKeyJWK(p256, nil), `{}`...), "JSON"},
		{"JWK duplicate member", []byte(`{"kty":"OKP","kty":"OKP"}`), "twice"},
		{"JWK duplicate d", bytes.Replace(signingKeyJWK(ed, nil), []byte(`"d":`), []byte(`"d":"AAAA","d":`), 1), "twice"},
		{"JWK kty not a string", signingKeyJWK(p256, map[string]any{"kty": 1}), `"kty"`},
		{"JWK kid not a string", signingKeyJWK(p256, map[string]any{"kid": 7}), `"kid"`},
		{"JWK alg not a string", signingKeyJWK(p256, map[string]any{"alg": true}), `"alg"`},
		{"JWK d not a string", signingKeyJWK(p256, map[string]any{"d": []int{1}}), `"d"`},
		{"JWK no kty", signingKeyJWK(p256, map[string]any{"kty": nil}), "kty"},
		{"JWK set", []byte(`{"keys":[` + string(signingKeyJWK(p256, nil)) + `]}`), "JWK Set"},
		{"JWK symmetric", []byte(`{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}`), "oct"},
		{"JWK unknown kty", []byte(`{"kty":"DSA","d":"AA"}`), `"kty" is not supported`},
		{"JWK EC public", signingKeyJWK(p256, map[string]any{"d": nil}), "public key"},
		{"JWK RSA public", signingKeyJWK(rsaKey, map[string]any{"d": nil, "p": nil, "q": nil, "dp": nil, "dq": nil, "qi": nil}), "public key"},
		{"JWK OKP public", signingKeyJWK(ed, map[string]any{"d": nil}), "public key"},
		{"JWK EC P-521", signingKeyJWK(keys["P-521"], nil), "P-521"},
		{"JWK EC secp256k1", signingKeyJWK(p256, map[string]any{"crv": "secp256k1"}), "secp256k1"},
		{"JWK EC no crv", signingKeyJWK(p256, map[string]any{"crv": nil}), "crv"},
		{"JWK EC x of another key", signingKeyJWK(p256, map[string]any{"x": b64url(otherPoint[1:33])}), "match"},
		{"JWK EC short d", signingKeyJWK(p256, map[string]any{"d": b64url(make([]byte, 31))}), `"d"`},
		{"JWK EC zero d", signingKeyJWK(p256, map[string]any{"d": b64url(make([]byte, 32))}), `"d"`},
		{"JWK EC short x", signingKeyJWK(p256, map[string]any{"x": "AAAA"}), `"x"`},
		{"JWK EC no y", signingKeyJWK(p256, map[string]any{"y": nil}), `"y"`},
		{"JWK d padded", signingKeyJWK(p256, map[string]any{"d": jwkMember(signingKeyJWK(p256, nil), "d") + "="}), "base64url"},
		{"JWK d in standard base64", signingKeyJWK(p256, map[string]any{"d": strings.NewReplacer("-", "+", "_", "/").Replace(jwkMember(signingKeyJWK(p256, nil), "d")) + "+/"}), "base64url"},
		{"JWK OKP Ed448", signingKeyJWK(ed, map[string]any{"crv": "Ed448"}), "Ed448"},
		{"JWK OKP X25519", signingKeyJWK(ed, map[string]any{"crv": "X25519"}), "X25519"},
		{"JWK OKP x of another key", signingKeyJWK(ed, map[string]any{"x": b64url(make([]byte, 32))}), "match"},
		{"JWK OKP short d", signingKeyJWK(ed, map[string]any{"d": b64url(make([]byte, 31))}), `"d"`},
		{"JWK RSA no p", signingKeyJWK(rsaKey, map[string]any{"p": nil}), `"p"`},
		{"JWK RSA some CRT members", signingKeyJWK(rsaKey, map[string]any{"qi": nil}), `"qi"`},
		{"JWK RSA wrong d", signingKeyJWK(rsaKey, map[string]any{"d": b64url(big.NewInt(12345).Bytes())}), "not a valid RSA key"},
		{"JWK RSA wrong dp", signingKeyJWK(rsaKey, map[string]any{"dp": b64url(big.NewInt(12345).Bytes())}), "not a valid RSA key"},
		{"JWK RSA multi-prime", signingKeyJWK(rsaKey, map[string]any{"oth": []any{map[string]string{"r": "AQAB", "d": "AQAB", "t": "AQAB"}}}), "oth"},
		{"JWK RSA e zero", signingKeyJWK(rsaKey, map[string]any{"e": "AA"}), `"e"`},
		{"JWK RSA e too long", signingKeyJWK(rsaKey, map[string]any{"e": b64url([]byte{1, 0, 0, 0, 1})}), `"e"`},
		{"JWK use enc", signingKeyJWK(p256, map[string]any{"use": "enc"}), "use"},
		{"JWK key_ops without sign", signingKeyJWK(p256, map[string]any{"key_ops": []string{"verify"}}), "key_ops"},
		{"JWK key_ops not strings", signingKeyJWK(p256, map[string]any{"key_ops": []int{1}}), "key_ops"},
		{"JWK alg of another key", signingKeyJWK(p256, map[string]any{"alg": "RS256"}), "RS256"},
		{"JWK alg unknown", signingKeyJWK(p256, map[string]any{"alg": "ES512"}), "ES512"},
		{"JWK alg none", signingKeyJWK(p256, map[string]any{"alg": "none"}), "none"},
		{"JWK alg HS256", signingKeyJWK(p256, map[string]any{"alg": "HS256"}), "HS256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParseSigningKey(tc.data)
			require.Error(t, err)
			assert.Nil(t, k)
			assert.True(t, strings.HasPrefix(err.Error(), "introspection: "), err.Error())
			assert.Contains(t, err.Error(), tc.want)
			if bytes.HasPrefix(bytes.TrimSpace(tc.data), []byte("{")) {
				for _, name := range []string{"d", "p", "q", "dp", "dq", "qi"} {
					if v := jwkMember(tc.data, name); len(v) >= 8 {
						assert.NotContains(t, err.Error(), v[:8], "the error shows %s", name)
					}
				}
			} else {
				assertNoPEMBody(t, err.Error(), tc.data)
			}
		})
	}
}

// jwkMember returns the string member name of the JSON object data, or "".
func jwkMember(data []byte, name string) string {
	var m map[string]any
	if json.Unmarshal(data, &m) != nil {
		return ""
	}
	s, _ := m[name].(string)
	return s
}

func TestParseSigningKeyAcceptsJWKExtras(t *testing.T) {
	key := signingTestKeys()["P-256"]
	for _, tc := range []struct {
		name    string
		members map[string]any
	}{
		{"use sig", map[string]any{"use": "sig"}},
		{"key_ops sign", map[string]any{"key_ops": []string{"sign", "verify"}}},
		{"unknown members", map[string]any{"x5t#S256": "abc", "ext": true, "iat": 1, "nested": map[string]any{"d": 1}}},
		{"kid with escapes", map[string]any{"kid": "k\"1\u00e9</"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParseSigningKey(signingKeyJWK(key, tc.members))
			require.NoError(t, err)
			if kid, ok := tc.members["kid"]; ok {
				assert.Equal(t, kid, k.KeyID)
			}
			_, err = newKeySigner(k)
			assert.NoError(t, err)
		})
	}
	t.Run("byte order mark", func(t *testing.T) {
		for _, data := range [][]byte{signingKeyJWK(key, nil), signingKeyPEM("PRIVATE KEY", noErr(x509.MarshalPKCS8PrivateKey(key)))} {
			_, err := ParseSigningKey(append([]byte("\ufeff"), data...))
			assert.NoError(t, err)
		}
	})
	t.Run("white space around", func(t *testing.T) {
		data := append(append([]byte(" \r\n\t"), signingKeyJWK(key, nil)...), " \n"...)
		_, err := ParseSigningKey(data)
		assert.NoError(t, err)
	})
}

// zitadelKeyFile returns a key file as ZITADEL hands out for the keys of
// its API applications and service accounts: JSON with the key id and the
// PEM key.
func zitadelKeyFile(t testing.TB, members map[string]any) []byte {
	t.Helper()
	m := map[string]any{
		"type":     "application",
		"keyId":    "281693565968962154",
		"key":      string(signingKeyPEM("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(signingTestKeys()["RSA"].(*rsa.PrivateKey)))),
		"appId":    "281693565968830000",
		"clientId": "281693565968830001@mcp",
	}
	return editedJSON(m, members)
}

func TestParseSigningKeyReadsZitadelKeyFile(t *testing.T) {
	k, err := ParseSigningKey(zitadelKeyFile(t, nil))
	require.NoError(t, err)
	assert.Equal(t, "281693565968962154", k.KeyID, "the kid is the file's keyId")
	assert.True(t, signingTestKeys()["RSA"].(*rsa.PrivateKey).Equal(k.Key))
	s, err := newKeySigner(k)
	require.NoError(t, err)
	now := time.Unix(1_700_000_000, 0)
	assertion, err := s.clientAssertion("281693565968830001@mcp", "https://zitadel.example", now)
	require.NoError(t, err)
	checkClientAssertion(t, assertion, k.Key.Public(), assertionWant{
		alg: "RS256", kid: "281693565968962154", clientID: "281693565968830001@mcp", audience: "https://zitadel.example", now: now,
	})

	for _, tc := range []struct {
		name    string
		members map[string]any
		want    string
	}{
		{"key not a string", map[string]any{"key": 1}, `"key"`},
		{"keyId not a string", map[string]any{"keyId": 1}, `"keyId"`},
		{"key not PEM", map[string]any{"key": "not a key"}, "no PEM"},
		{"key a public key", map[string]any{"key": string(signingKeyPEM("PUBLIC KEY", noErr(x509.MarshalPKIXPublicKey(signingTestKeys()["RSA"].Public()))))}, "public key"},
		{"key of a refused size", map[string]any{"key": string(readSigningFixture(t, "rsa2047-pkcs1.pem"))}, "2047"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := zitadelKeyFile(t, tc.members)
			_, err := ParseSigningKey(data)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assertNoPEMBody(t, err.Error(), []byte(jwkMember(data, "key")))
		})
	}
}

func TestParseSigningKeyTakesFirstPrivateKeyBlock(t *testing.T) {
	keys := signingTestKeys()
	first, second := keys["P-256"], keys["Ed25519"]
	der1, err := x509.MarshalPKCS8PrivateKey(first)
	require.NoError(t, err)
	der2, err := x509.MarshalPKCS8PrivateKey(second)
	require.NoError(t, err)
	pub, err := x509.MarshalPKIXPublicKey(second.Public())
	require.NoError(t, err)
	data := bytes.Join([][]byte{signingKeyPEM("PUBLIC KEY", pub), signingKeyPEM("PRIVATE KEY", der1), signingKeyPEM("PRIVATE KEY", der2)}, nil)
	k, err := ParseSigningKey(data)
	require.NoError(t, err)
	assert.True(t, first.(*ecdsa.PrivateKey).Equal(k.Key))
}

func TestParseSigningKeyInputSizeBound(t *testing.T) {
	key := signingKeyPEM("PRIVATE KEY", noErr(x509.MarshalPKCS8PrivateKey(signingTestKeys()["Ed25519"])))
	pad := func(n int) []byte { // n bytes: a line of text, then the key
		return bytes.Join([][]byte{bytes.Repeat([]byte("x"), n-len(key)-1), key}, []byte("\n"))
	}
	k, err := ParseSigningKey(pad(maxSigningKeyInput))
	require.NoError(t, err, "a key file of maxSigningKeyInput bytes is read")
	assert.NotNil(t, k)
	_, err = ParseSigningKey(pad(maxSigningKeyInput + 1))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "larger than")

	jwk := signingKeyJWK(signingTestKeys()["Ed25519"], nil)
	padded := append(bytes.Repeat([]byte(" "), maxSigningKeyInput-len(jwk)), jwk...)
	_, err = ParseSigningKey(padded)
	require.NoError(t, err)
	_, err = ParseSigningKey(append([]byte(" "), padded...))
	require.Error(t, err)
}

func noErr[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestSigningKeyRSASizeBounds(t *testing.T) {
	rsaKey := func(t *testing.T, file string) *rsa.PrivateKey {
		block, _ := pem.Decode(readSigningFixture(t, file))
		require.NotNil(t, block)
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		require.NoError(t, err)
		return k
	}
	require.Equal(t, 2048, minSigningKeyRSABits)
	require.Equal(t, 8192, maxSigningKeyRSABits)
	for _, tc := range []struct {
		name string
		key  *rsa.PrivateKey
		ok   bool
	}{
		{"2047 bits, just under the bound", rsaKey(t, "rsa2047-pkcs1.pem"), false},
		{"2048 bits, at the bound", signingTestKeys()["RSA"].(*rsa.PrivateKey), true},
		{"8192 bits, at the bound", rsaKey(t, "rsa8192-pkcs1.pem"), true},
		{"8193 bits, just past the bound", rsaKey(t, "rsa8193-pkcs1.pem"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, alg := range []string{"RS256", "PS256", ""} {
				s, err := newKeySigner(&SigningKey{Key: tc.key, Algorithm: alg})
				if !tc.ok {
					require.Error(t, err, alg)
					assert.Contains(t, err.Error(), fmt.Sprint(tc.key.N.BitLen()))
					continue
				}
				require.NoError(t, err, alg)
				assertion, err := s.clientAssertion("c", "https://as.example", time.Unix(1_700_000_000, 0))
				require.NoError(t, err)
				checkClientAssertion(t, assertion, tc.key.Public(), assertionWant{
					alg: s.alg(), clientID: "c", audience: "https://as.example", now: time.Unix(1_700_000_000, 0),
				})
			}
			for format, data := range signingKeyEncodings(t, tc.key, "", "") {
				_, err := ParseSigningKey(data)
				if tc.ok {
					assert.NoError(t, err, format)
				} else {
					assert.ErrorContains(t, err, fmt.Sprint(tc.key.N.BitLen()), format)
				}
			}
		})
	}
	t.Run("fixture sizes", func(t *testing.T) {
		for file, bits := range map[string]int{"rsa2047-pkcs1.pem": 2047, "rsa8192-pkcs1.pem": 8192, "rsa8193-pkcs1.pem": 8193} {
			assert.Equal(t, bits, rsaKey(t, file).N.BitLen(), file)
		}
	})
}

// unsupportedKeySigner is a crypto.Signer with a public key of a type SigningKey
// does not support.
type unsupportedKeySigner struct{ pub crypto.PublicKey }

func (s unsupportedKeySigner) Public() crypto.PublicKey { return s.pub }
func (s unsupportedKeySigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("unsupportedKeySigner cannot sign")
}

func TestNewKeySignerChecksAlgorithmAgainstKey(t *testing.T) {
	keys := signingTestKeys()
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	require.NoError(t, err)
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	algs := []string{"", "RS256", "PS256", "ES256", "ES384", "EdDSA", "ES512", "RS384", "PS384", "HS256", "none", "Ed25519", "es256", "ES256 "}
	allowed := map[string]map[string]bool{
		"RSA":     {"": true, "RS256": true, "PS256": true},
		"P-256":   {"": true, "ES256": true},
		"P-384":   {"": true, "ES384": true},
		"Ed25519": {"": true, "EdDSA": true},
	}
	for _, name := range []string{"RSA", "P-256", "P-384", "Ed25519", "P-521", "P-224", "X25519", "DSA-like"} {
		var key crypto.Signer
		switch name {
		case "P-224":
			key = p224
		case "X25519":
			key = unsupportedKeySigner{x25519.PublicKey()}
		case "DSA-like":
			key = unsupportedKeySigner{struct{ Y *big.Int }{big.NewInt(5)}}
		default:
			key = keys[name]
		}
		for _, alg := range algs {
			t.Run(name+" "+alg, func(t *testing.T) {
				s, err := newKeySigner(&SigningKey{Key: key, Algorithm: alg, KeyID: "k"})
				if !allowed[name][alg] {
					require.Error(t, err)
					assert.Nil(t, s)
					assert.True(t, strings.HasPrefix(err.Error(), "introspection: "), err.Error())
					return
				}
				require.NoError(t, err)
				if alg != "" {
					assert.Equal(t, alg, s.alg())
				}
			})
		}
	}
}

func TestNewKeySignerRefusesIncompleteKeys(t *testing.T) {
	for _, tc := range []struct {
		name string
		k    *SigningKey
	}{
		{"nil SigningKey", nil},
		{"nil Key", &SigningKey{}},
		{"nil *rsa.PrivateKey", &SigningKey{Key: (*rsa.PrivateKey)(nil)}},
		{"zero rsa.PrivateKey", &SigningKey{Key: &rsa.PrivateKey{}}},
		{"nil *ecdsa.PrivateKey", &SigningKey{Key: (*ecdsa.PrivateKey)(nil)}},
		{"zero ecdsa.PrivateKey", &SigningKey{Key: &ecdsa.PrivateKey{}}},
		{"ecdsa.PrivateKey with a curve alone", &SigningKey{Key: &ecdsa.PrivateKey{PublicKey: ecdsa.PublicKey{Curve: elliptic.P256()}}}},
		{"nil ed25519.PrivateKey", &SigningKey{Key: ed25519.PrivateKey(nil)}},
		{"short ed25519.PrivateKey", &SigningKey{Key: ed25519.PrivateKey(make([]byte, 32))}},
		{"ecdsa.PrivateKey without its scalar", &SigningKey{Key: &ecdsa.PrivateKey{PublicKey: signingTestKeys()["P-256"].(*ecdsa.PrivateKey).PublicKey}}},
		{"ecdsa.PrivateKey with another key's public half", &SigningKey{Key: func() *ecdsa.PrivateKey {
			other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			require.NoError(t, err)
			k := *signingTestKeys()["P-256"].(*ecdsa.PrivateKey)
			k.PublicKey = other.PublicKey
			return &k
		}()}},
		{"ed25519.PrivateKey with another key's public half", &SigningKey{Key: func() ed25519.PrivateKey {
			k := slices.Clone(signingTestKeys()["Ed25519"].(ed25519.PrivateKey))
			k[40] ^= 1
			return k
		}()}},
		{"rsa.PrivateKey with a nil prime", &SigningKey{Key: func() *rsa.PrivateKey {
			k := *signingTestKeys()["RSA"].(*rsa.PrivateKey)
			k.Primes = []*big.Int{k.Primes[0], nil}
			return &k
		}()}},
		{"rsa.PrivateKey with another key's modulus", &SigningKey{Key: func() *rsa.PrivateKey {
			k := *signingTestKeys()["RSA"].(*rsa.PrivateKey)
			k.N = new(big.Int).Add(k.N, big.NewInt(2))
			k.Precomputed = rsa.PrecomputedValues{}
			return &k
		}()}},
		{"a crypto.Signer whose Public panics", &SigningKey{Key: panickingPublicSigner{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s *jwtSigner
			var err error
			require.NotPanics(t, func() { s, err = newKeySigner(tc.k) })
			require.Error(t, err, "the key is refused when the signer is made, not when it signs")
			assert.Nil(t, s)
			assert.True(t, strings.HasPrefix(err.Error(), "introspection: "), err.Error())
		})
	}
}

// panickingPublicSigner is a crypto.Signer of the caller's, such as a KMS
// client, whose Public panics.
type panickingPublicSigner struct{}

func (panickingPublicSigner) Public() crypto.PublicKey { panic("kms: no connection") }
func (panickingPublicSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("panickingPublicSigner cannot sign")
}

// TestSigningKeyWhosePublicPanicsStillPrints shows that printing a
// SigningKey whose Public panics, as settings are printed and logged at
// start, shows no algorithm rather than panicking.
func TestSigningKeyWhosePublicPanicsStillPrints(t *testing.T) {
	k := &SigningKey{Key: panickingPublicSigner{}, KeyID: "k1"}
	want := `introspection.SigningKey{Algorithm:"" KeyID:"k1" Key:REDACTED}`
	require.NotPanics(t, func() { assert.Equal(t, want, k.String()) })
	require.NotPanics(t, func() { assert.Equal(t, want, fmt.Sprintf("%+v", *k)) })
	require.NotPanics(t, func() {
		b, err := json.Marshal(k)
		require.NoError(t, err)
		assert.JSONEq(t, `{"algorithm":"","key_id":"k1","key":"REDACTED"}`, string(b))
	})
}

// keyMaterial returns texts that would show the private parts of key, or
// of data that encodes it: each private value in decimal, hex, base64 and
// base64url, its bytes as fmt prints a byte slice, and the lines of a PEM
// body. Each text is a prefix of 16 characters, so that a part of a value
// is found too.
func keyMaterial(key crypto.Signer, encodings ...[]byte) []string {
	var private [][]byte
	switch k := key.(type) {
	case *rsa.PrivateKey:
		k.Precompute()
		for _, v := range []*big.Int{k.D, k.Primes[0], k.Primes[1], k.Precomputed.Dp, k.Precomputed.Dq, k.Precomputed.Qinv} {
			private = append(private, v.Bytes())
		}
	case *ecdsa.PrivateKey:
		d, _ := k.Bytes()
		private = append(private, d)
	case ed25519.PrivateKey:
		private = append(private, k.Seed())
	}
	var out []string
	add := func(s string) {
		if len(s) > 16 {
			s = s[:16]
		}
		out = append(out, s)
	}
	for _, b := range private {
		n := new(big.Int).SetBytes(b)
		add(n.String())
		add(n.Text(16))
		add(strings.ToUpper(n.Text(16)))
		add(fmt.Sprintf("%x", b))
		add(base64.StdEncoding.EncodeToString(b))
		add(base64.RawURLEncoding.EncodeToString(b))
		add(strings.Trim(fmt.Sprint(b[:8]), "[]"))
		add(fmt.Sprintf("%#v", b[:4])[len("[]byte{"):])
	}
	for _, data := range encodings {
		for line := range strings.SplitSeq(string(data), "\n") {
			if line = strings.TrimSpace(line); len(line) >= 16 && !strings.HasPrefix(line, "-----") && !strings.HasPrefix(line, "{") {
				add(line)
			}
		}
		if d := jwkMember(data, "d"); d != "" {
			add(d)
		}
	}
	return out
}

func TestSigningKeyNeverShowsKeyMaterial(t *testing.T) {
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3v", "%-40s", "%T"}
	for _, a := range signingKeyAlgs {
		key := signingTestKeys()[a.key]
		encodings := signingKeyEncodings(t, key, "kid-"+a.alg, a.alg)
		k, err := ParseSigningKey(encodings["JWK"])
		require.NoError(t, err)
		var all [][]byte
		for _, e := range encodings {
			all = append(all, e)
		}
		material := keyMaterial(key, all...)
		require.NotEmpty(t, material)
		check := func(t *testing.T, what, text string) {
			t.Helper()
			for _, m := range material {
				assert.NotContains(t, text, m, "%s shows key material", what)
			}
		}
		t.Run(a.alg, func(t *testing.T) {
			assert.Equal(t, `introspection.SigningKey{Algorithm:"`+a.alg+`" KeyID:"kid-`+a.alg+`" Key:REDACTED}`, k.String())
			type holder struct {
				Name string
				Key  SigningKey
				Ptr  *SigningKey
			}
			for _, verb := range verbs {
				for what, v := range map[string]any{
					"pointer":         k,
					"value":           *k,
					"struct":          holder{"h", *k, k},
					"slice":           []*SigningKey{k},
					"map":             map[string]SigningKey{"k": *k},
					"pointer to hold": &holder{"h", *k, k},
				} {
					out := fmt.Sprintf(verb, v)
					check(t, verb+" of "+what, out)
					if verb != "%T" && what == "pointer" {
						assert.Contains(t, out, "REDACTED", verb)
					}
				}
			}
			for _, h := range []struct {
				name string
				new  func(io.Writer) slog.Handler
			}{
				{"JSON", func(w io.Writer) slog.Handler { return slog.NewJSONHandler(w, nil) }},
				{"text", func(w io.Writer) slog.Handler { return slog.NewTextHandler(w, nil) }},
			} {
				var buf bytes.Buffer
				log := slog.New(h.new(&buf))
				log.Info("m", "key", k)
				log.Info("m", "value", *k)
				log.Info("m", slog.Group("g", "key", k, "held", holder{"h", *k, k}))
				log.Info("m", "any", slog.AnyValue(k))
				out := buf.String()
				check(t, "slog "+h.name, out)
				assert.Contains(t, out, "kid-"+a.alg, "slog %s shows the key id", h.name)
				assert.Contains(t, out, a.alg, "slog %s shows the algorithm", h.name)
				assert.Contains(t, out, "REDACTED", "slog %s", h.name)
			}
			for what, v := range map[string]any{"pointer": k, "value": *k, "struct": holder{"h", *k, k}} {
				b, err := json.Marshal(v)
				require.NoError(t, err)
				check(t, "json.Marshal of "+what, string(b))
			}
		})
	}
	t.Run("nil", func(t *testing.T) {
		var k *SigningKey
		assert.Equal(t, "<nil>", k.String())
		assert.Equal(t, "<nil>", fmt.Sprintf("%v", k))
		assert.Equal(t, "<nil>", fmt.Sprintf("%+v", k))
		assert.Equal(t, slog.StringValue("<nil>"), k.LogValue())
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "key", k)
		assert.Contains(t, buf.String(), `"key":"<nil>"`)
		b, err := json.Marshal(k)
		require.NoError(t, err)
		assert.Equal(t, "null", string(b))
	})
	t.Run("no key", func(t *testing.T) {
		assert.Equal(t, `introspection.SigningKey{Algorithm:"" KeyID:"" Key:<nil>}`, (&SigningKey{}).String())
	})
	t.Run("key id with control characters", func(t *testing.T) {
		k := &SigningKey{Key: signingTestKeys()["Ed25519"], KeyID: "a\"b\nc"}
		assert.Equal(t, `introspection.SigningKey{Algorithm:"EdDSA" KeyID:"a\"b\nc" Key:REDACTED}`, k.String())
	})
}

// FuzzParseSigningKey checks that ParseSigningKey never panics, and that a
// key it returns can sign a client assertion its own public half verifies.
func FuzzParseSigningKey(f *testing.F) {
	for _, a := range signingKeyAlgs {
		for _, data := range signingKeyEncodings(f, signingTestKeys()[a.key], "k", a.alg) {
			f.Add(data)
		}
	}
	for _, file := range []string{"p256-ecparams-sec1.pem", "p384-cert-then-key.pem", "ed25519-pkcs8.pem", "rfc8037-a1-ed25519.jwk", "rfc7515-a3-p256.jwk", "p256-encrypted-sec1.pem", "secp256k1-sec1.pem"} {
		f.Add(readSigningFixture(f, file))
	}
	f.Add(zitadelKeyFile(f, map[string]any{"key": string(readSigningFixture(f, "p256-ecparams-sec1.pem"))}))
	f.Add([]byte(`{"kty":"OKP","crv":"Ed25519","d":"","x":""}`))
	f.Add([]byte(`{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQAB","p":"AQAB","q":"AQAB"}`))
	now := time.Unix(1_700_000_000, 0)
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseSigningKey(data)
		if err != nil {
			require.Nil(t, k)
			require.True(t, strings.HasPrefix(err.Error(), "introspection: "), err.Error())
			return
		}
		s, err := newKeySigner(k)
		require.NoError(t, err, "a parsed key makes a signer")
		assertion, err := s.clientAssertion("c", "https://as.example", now)
		require.NoError(t, err)
		checkClientAssertion(t, assertion, k.Key.Public(), assertionWant{
			alg: s.alg(), kid: k.KeyID, clientID: "c", audience: "https://as.example", now: now,
		})
	})
}
