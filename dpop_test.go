package introspection

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Fixtures of the DPoP proof tests. The token and its ath are the example
// of RFC 9449 §7.1.
const (
	proofTestToken = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
	proofTestATH   = "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
	proofTestURL   = "https://mcp.example.com/mcp"
	proofTestJTI   = "e1j3V_bKic8-LAEB"
	proofTestWin   = 5 * time.Minute
)

var proofTestNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// proofTestCheck is what the test proofs are checked against: every
// default algorithm, POST to proofTestURL with proofTestToken, at
// proofTestNow with a window of five minutes.
func proofTestCheck() proofCheck {
	algs := make(map[string]bool)
	for _, a := range DefaultDPoPAlgorithms {
		algs[a] = true
	}
	return proofCheck{
		algs:   algs,
		method: "POST",
		htu:    proofTestURL,
		token:  proofTestToken,
		now:    proofTestNow,
		window: proofTestWin,
	}
}

// proofSigner signs DPoP proofs with one test key.
type proofSigner struct {
	alg  string
	jwk  map[string]any // the public key
	sign func(input []byte) []byte
}

// The RSA key of RFC 7517 Appendix A.2, whose public part is the example of
// RFC 7638 §3.1, with the thumbprint given there.
const (
	rfc7517N = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
	rfc7517E = "AQAB"
	rfc7517D = "X4cTteJY_gn4FYPsXB8rdXix5vwsg1FLN5E3EaG6RJoVH-HLLKD9M7dx5oo7GURknchnrRweUkC7hT5fJLM0WbFAKNLWY2vv7B6NqXSzUvxT0_YSfqijwp3RTzlBaCxWp4doFk5N2o8Gy_nHNKroADIkJ46pRUohsXywbReAdYaMwFs9tv8d_cPVY3i07a3t8MN6TNwm0dSawm9v47UiCl3Sk5ZiG7xojPLu4sbg1U2jx4IBTNBznbJSzFHK66jT8bgkuqsk0GjskDJk19Z4qwjwbsnn4j2WBii3RL-Us2lGVkY8fkFzme1z0HbIkfz0Y6mqnOYtqc0X4jfcKoAC8Q"
	rfc7517P = "83i-7IvMGXoMXCskv73TKr8637FiO7Z27zv8oj6pbWUQyLPQBQxtPVnwD20R-60eTDmD2ujnMt5PoqMrm8RfmNhVWDtjjMmCMjOpSXicFHj7XOuVIYQyqVWlWEh6dN36GVZYk93N8Bc9vY41xy8B9RzzOGVQzXvNEvn7O0nVbfs"
	rfc7517Q = "3dfOR9cuYq-0S-mkFLzgItgMEfFzB2q3hWehMuG0oCuqnb3vobLyumqjVZQO1dIrdwgTnCdpYzBcOfW5r370AFXjiWft_NGEiovonizhKpo9VVS78TzFgxkIdrecRezsZ-1kYd_s1qDbxtkDEgfAITAG9LUnADun4vIcb6yelxk"

	rfc7638Thumbprint = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
)

// testProofSigners returns a signer for each default algorithm, under its
// name, and for the keys the rejection tests need besides: "ES256 other"
// (another P-256 key) and "RS256 1024" (a 1024-bit RSA key). The keys are
// fixed, except the 1024-bit one, so that fuzz seeds reproduce.
var testProofSigners = sync.OnceValue(func() map[string]*proofSigner {
	rfcKey := &rsa.PrivateKey{
		PublicKey: rsa.PublicKey{N: b64Int(rfc7517N), E: int(b64Int(rfc7517E).Int64())},
		D:         b64Int(rfc7517D),
		Primes:    []*big.Int{b64Int(rfc7517P), b64Int(rfc7517Q)},
	}
	rfcKey.Precompute()
	if err := rfcKey.Validate(); err != nil {
		panic(err)
	}
	short, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		panic(err)
	}
	edKey := ed25519.NewKeyFromSeed(proofSHA256("dpop test Ed25519"))
	return map[string]*proofSigner{
		"ES256":       ecSigner("ES256", elliptic.P256(), "dpop test P-256"),
		"ES384":       ecSigner("ES384", elliptic.P384(), "dpop test P-384"),
		"ES512":       ecSigner("ES512", elliptic.P521(), "dpop test P-521"),
		"RS256":       rsaSigner("RS256", rfcKey),
		"PS256":       rsaSigner("PS256", rfcKey),
		"EdDSA":       edSigner("EdDSA", edKey),
		"Ed25519":     edSigner("Ed25519", edKey),
		"ES256 other": ecSigner("ES256", elliptic.P256(), "dpop test another P-256"),
		"RS256 1024":  rsaSigner("RS256", short),
	}
})

func b64Int(s string) *big.Int {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return new(big.Int).SetBytes(b)
}

func proofSHA256(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// ecSigner returns an ECDSA signer for alg with a key derived from label.
func ecSigner(alg string, curve elliptic.Curve, label string) *proofSigner {
	size := (curve.Params().BitSize + 7) / 8
	seed := sha512.Sum512([]byte(label))
	d := make([]byte, size)
	copy(d[max(0, size-len(seed)):], seed[:min(size, len(seed))])
	key, err := ecdsa.ParseRawPrivateKey(curve, d)
	if err != nil {
		panic(err)
	}
	pub, err := key.PublicKey.Bytes()
	if err != nil {
		panic(err)
	}
	return &proofSigner{
		alg: alg,
		jwk: map[string]any{
			"kty": "EC",
			"crv": curve.Params().Name,
			"x":   b64url(pub[1 : 1+size]),
			"y":   b64url(pub[1+size:]),
		},
		sign: func(input []byte) []byte {
			var digest []byte
			switch size {
			case 32:
				s := sha256.Sum256(input)
				digest = s[:]
			case 48:
				s := sha512.Sum384(input)
				digest = s[:]
			default:
				s := sha512.Sum512(input)
				digest = s[:]
			}
			r, s, err := ecdsa.Sign(rand.Reader, key, digest)
			if err != nil {
				panic(err)
			}
			sig := make([]byte, 2*size)
			r.FillBytes(sig[:size])
			s.FillBytes(sig[size:])
			return sig
		},
	}
}

// rsaSigner returns an RS256 or PS256 signer with key.
func rsaSigner(alg string, key *rsa.PrivateKey) *proofSigner {
	return &proofSigner{
		alg: alg,
		jwk: map[string]any{
			"kty": "RSA",
			"n":   b64url(key.N.Bytes()),
			"e":   b64url(big.NewInt(int64(key.E)).Bytes()),
		},
		sign: func(input []byte) []byte {
			digest := sha256.Sum256(input)
			var sig []byte
			var err error
			if alg == "PS256" {
				sig, err = rsa.SignPSS(rand.Reader, key, crypto.SHA256, digest[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
			} else {
				sig, err = rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:])
			}
			if err != nil {
				panic(err)
			}
			return sig
		},
	}
}

// edSigner returns an Ed25519 signer for alg, EdDSA or Ed25519.
func edSigner(alg string, key ed25519.PrivateKey) *proofSigner {
	return &proofSigner{
		alg: alg,
		jwk: map[string]any{
			"kty": "OKP",
			"crv": "Ed25519",
			"x":   b64url(key.Public().(ed25519.PublicKey)),
		},
		sign: func(input []byte) []byte { return ed25519.Sign(key, input) },
	}
}

// header returns the JOSE header of a valid proof by s.
func (s *proofSigner) header() map[string]any {
	return map[string]any{"typ": "dpop+jwt", "alg": s.alg, "jwk": maps.Clone(s.jwk)}
}

// proofTestClaims returns the claims of a valid proof for proofTestCheck.
func proofTestClaims() map[string]any {
	return map[string]any{
		"jti": proofTestJTI,
		"htm": "POST",
		"htu": proofTestURL,
		"iat": proofTestNow.Unix(),
		"ath": proofTestATH,
	}
}

// signProof returns the compact JWS of the JSON texts header and payload,
// signed by s.
func (s *proofSigner) signProof(header, payload []byte) string {
	input := b64url(header) + "." + b64url(payload)
	return input + "." + b64url(s.sign([]byte(input)))
}

// proof returns a proof by s of a valid header and valid claims, after
// editHeader and editClaims, when not nil, change them.
func (s *proofSigner) proof(editHeader, editClaims func(map[string]any)) string {
	h, c := s.header(), proofTestClaims()
	if editHeader != nil {
		editHeader(h)
	}
	if editClaims != nil {
		editClaims(c)
	}
	return s.signProof(proofJSON(h), proofJSON(c))
}

// mustJSON returns v as json.Marshal writes it: members in the order of
// their names, no white space.
func proofJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// proofOfSize returns a valid proof by s, which must sign with ECDSA on
// P-256, of exactly size bytes, padded with members that no check reads.
func proofOfSize(t testing.TB, s *proofSigner, size int) string {
	t.Helper()
	const sigLen = 86 // 64 bytes in base64url
	for h := range 4 {
		header := s.header()
		header["pad"] = strings.Repeat("h", h)
		headerJSON := proofJSON(header)
		want := size - len(b64url(headerJSON)) - 2 - sigLen // characters of payload
		claims := proofTestClaims()
		claims["pad"] = ""
		unpadded := len(proofJSON(claims))
		for c := max(0, want*3/4-unpadded-3); c <= want*3/4-unpadded+3; c++ {
			claims["pad"] = strings.Repeat("c", c)
			if payload := proofJSON(claims); len(b64url(payload)) == want {
				return s.signProof(headerJSON, payload)
			}
		}
	}
	t.Fatalf("no proof of %d bytes", size)
	return ""
}

// thumbprintOf computes the RFC 7638 thumbprint of jwk as the RFC says,
// independently of verifyProof: the required members, marshalled in the
// order of their names without white space, hashed with SHA-256.
func thumbprintOf(jwk map[string]any) string {
	required := map[string][]string{"EC": {"crv", "x", "y"}, "RSA": {"e", "n"}, "OKP": {"crv", "x"}}
	m := map[string]any{"kty": jwk["kty"]}
	for _, name := range required[jwk["kty"].(string)] {
		m[name] = jwk[name]
	}
	sum := sha256.Sum256(proofJSON(m))
	return b64url(sum[:])
}

// Edits of a proof's header and claims.

func withMember(name string, v any) func(map[string]any) {
	return func(m map[string]any) { m[name] = v }
}

func withoutMember(name string) func(map[string]any) {
	return func(m map[string]any) { delete(m, name) }
}

func withJWKMember(name string, v any) func(map[string]any) {
	return func(m map[string]any) { m["jwk"].(map[string]any)[name] = v }
}

func withoutJWKMember(name string) func(map[string]any) {
	return func(m map[string]any) { delete(m["jwk"].(map[string]any), name) }
}

func TestDPoPProofAccepts(t *testing.T) {
	signers := testProofSigners()
	cases := []struct {
		name       string
		signer     string
		header     func(map[string]any)
		claims     func(map[string]any)
		raw        func(s *proofSigner) (header, payload string) // the JSON texts, instead
		check      func(*proofCheck)
		thumbprint string // when known from elsewhere than the key
		iat        time.Time
		nonce      string
	}{
		{name: "ES256", signer: "ES256"},
		{name: "ES384", signer: "ES384"},
		{name: "ES512", signer: "ES512"},
		{name: "RS256 with the key of RFC 7638 §3.1", signer: "RS256", thumbprint: rfc7638Thumbprint},
		{name: "PS256 with the key of RFC 7638 §3.1", signer: "PS256", thumbprint: rfc7638Thumbprint},
		{name: "EdDSA", signer: "EdDSA"},
		{name: "Ed25519, the fully-specified name", signer: "Ed25519"},
		{name: "only the algorithm allowed", signer: "PS256", check: func(c *proofCheck) { c.algs = map[string]bool{"PS256": true} }},
		{name: "iat at the start of the window", claims: withMember("iat", proofTestNow.Add(-proofTestWin).Unix()), iat: proofTestNow.Add(-proofTestWin)},
		{name: "iat at the end of the window", claims: withMember("iat", proofTestNow.Add(proofTestWin).Unix()), iat: proofTestNow.Add(proofTestWin)},
		{name: "fractional iat", claims: withMember("iat", float64(proofTestNow.Unix())+0.25), iat: proofTestNow.Add(250 * time.Millisecond)},
		{name: "iat with an exponent", claims: withMember("iat", json.Number(strconv.FormatFloat(float64(proofTestNow.Unix()), 'e', -1, 64)))},
		{name: "zero window, iat now", check: func(c *proofCheck) { c.window = 0 }},
		{name: "jti of 256 bytes", claims: withMember("jti", strings.Repeat("j", maxJTILength))},
		{name: "nonce returned", claims: withMember("nonce", "eyJ7S_zG.eyJH0-Z.HX4w-7v"), nonce: "eyJ7S_zG.eyJH0-Z.HX4w-7v"},
		{name: "htu with a query, which is ignored", claims: withMember("htu", proofTestURL+"?session=1")},
		{name: "htu with a fragment, which is ignored", claims: withMember("htu", proofTestURL+"#top")},
		{name: "htu with an upper-case scheme and host and the default port", claims: withMember("htu", "HTTPS://MCP.Example.COM:443/mcp")},
		{name: "htu with dot segments and percent-encoded unreserved characters", claims: withMember("htu", "https://mcp.example.com/a/../%6Dcp")},
		{name: "unknown header and claim members are ignored", header: withMember("kid", "k1"), claims: withMember("exp", "never")},
		{name: "member names are case-sensitive: HTM is not htm", claims: withMember("HTM", "GET")},
		{name: "escapes in member names and values", raw: func(s *proofSigner) (string, string) {
			return `{"\u0074yp":"\u0064pop\u002bjwt","alg":"ES256","jwk":` + jwkText(s) + `}`,
				validClaims(`,"nonce":"n\u00e9\/1"`)
		}, nonce: "n\u00e9/1"},
		{name: "white space around members and values", raw: func(s *proofSigner) (string, string) {
			h, err := json.MarshalIndent(s.header(), " ", "\t")
			if err != nil {
				panic(err)
			}
			c, err := json.MarshalIndent(proofTestClaims(), "\r\n", "  ")
			if err != nil {
				panic(err)
			}
			return "\n " + string(h) + " ", "\t" + string(c) + "\r\n"
		}},
		{name: "jwk with optional members keeps its thumbprint", header: func(h map[string]any) {
			withJWKMember("kid", "2011-04-29")(h)
			withJWKMember("alg", "ES256")(h)
			withJWKMember("use", "sig")(h)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := signers[orDefault(tc.signer, "ES256")]
			c := proofTestCheck()
			if tc.check != nil {
				tc.check(&c)
			}
			proof := s.proof(tc.header, tc.claims)
			if tc.raw != nil {
				h, p := tc.raw(s)
				proof = s.signProof([]byte(h), []byte(p))
			}
			got, err := verifyProof(proof, c)
			require.NoError(t, err)
			assert.Equal(t, thumbprintOf(s.jwk), got.thumbprint, "thumbprint computed as RFC 7638 says")
			if tc.thumbprint != "" {
				assert.Equal(t, tc.thumbprint, got.thumbprint, "thumbprint the RFC gives")
			}
			var claims map[string]any
			require.NoError(t, json.Unmarshal(unb64(strings.Split(proof, ".")[1]), &claims))
			assert.Equal(t, claims["jti"], got.jti)
			assert.True(t, timeOr(tc.iat, proofTestNow).Equal(got.iat), "iat %v", got.iat)
			assert.Equal(t, tc.nonce, got.nonce)
		})
	}
}

func orDefault(s, otherwise string) string {
	if s == "" {
		return otherwise
	}
	return s
}

func timeOr(t, otherwise time.Time) time.Time {
	if t.IsZero() {
		return otherwise
	}
	return t
}

// unb64 decodes the base64url s, which must be valid.
func unb64(s string) []byte {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// asn1Signature is an ECDSA signature in the ASN.1 form of X.509, not the
// r||s of JWS.
func asn1Signature(r, s *big.Int) ([]byte, error) {
	return asn1.Marshal(struct{ R, S *big.Int }{r, s})
}

// TestDPoPProofRFC9449Example verifies the proof of RFC 9449 §7.1, made by
// another implementation than this package, and finds the jkt the RFC
// gives for its key in §6.1.
func TestDPoPProofRFC9449Example(t *testing.T) {
	const proof = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6Ik" +
		"VDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCR" +
		"nMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JE" +
		"QSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIj" +
		"oiR0VUIiwiaHR1IjoiaHR0cHM6Ly9yZXNvdXJjZS5leGFtcGxlLm9yZy9wcm90ZWN0Z" +
		"WRyZXNvdXJjZSIsImlhdCI6MTU2MjI2MjYxOCwiYXRoIjoiZlVIeU8ycjJaM0RaNTNF" +
		"c05yV0JiMHhXWG9hTnk1OUlpS0NBcWtzbVFFbyJ9.2oW9RP35yRqzhrtNP86L-Ey71E" +
		"OptxRimPPToA1plemAgR6pxHF8y6-yqyVnmcw6Fy1dqd-jfxSYoMxhAJpLjA"
	c := proofTestCheck()
	c.method = "GET"
	c.htu = "https://resource.example.org/protectedresource"
	c.now = time.Unix(1562262618, 0)
	got, err := verifyProof(proof, c)
	require.NoError(t, err)
	assert.Equal(t, dpopProof{
		thumbprint: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
		jti:        "e1j3V_bKic8-LAEB",
		iat:        time.Unix(1562262618, 0).UTC(),
	}, got)

	c.token = "another token"
	_, err = verifyProof(proof, c)
	assert.EqualError(t, err, "introspection: invalid DPoP proof: ath does not match the token")
}

// proofCase is a DPoP proof that must be refused for one reason.
type proofCase struct {
	name   string
	signer string // the key that signs; "" for ES256
	header func(map[string]any)
	claims func(map[string]any)
	// raw, when set, makes the proof from the header and payload texts it
	// returns instead; edit, when set, changes the signed proof.
	raw    func(s *proofSigner) (header, payload string)
	edit   func(t testing.TB, proof string) string
	check  func(*proofCheck)
	reason string
}

// build returns the proof of tc.
func (tc proofCase) build(t testing.TB) string {
	t.Helper()
	s := testProofSigners()[orDefault(tc.signer, "ES256")]
	var p string
	if tc.raw != nil {
		h, c := tc.raw(s)
		p = s.signProof([]byte(h), []byte(c))
	} else {
		p = s.proof(tc.header, tc.claims)
	}
	if tc.edit != nil {
		p = tc.edit(t, p)
	}
	return p
}

// jwkText is the JSON text of the jwk of s.
func jwkText(s *proofSigner) string { return string(proofJSON(s.jwk)) }

// validHeader is the JSON text of a valid header by s, with extra members
// written after the others.
func validHeader(s *proofSigner, extra string) string {
	return `{"typ":"dpop+jwt","alg":"` + s.alg + `","jwk":` + jwkText(s) + extra + `}`
}

// validClaims is the JSON text of the valid claims, with extra members
// written after the others.
func validClaims(extra string) string {
	b := proofJSON(proofTestClaims())
	return string(b[:len(b)-1]) + extra + "}"
}

// parts returns the three parts of proof.
func jwsParts(proof string) []string { return strings.Split(proof, ".") }

// replaceSignature returns proof with the decoded signature changed by f.
func replaceSignature(f func(sig []byte) []byte) func(testing.TB, string) string {
	return func(_ testing.TB, proof string) string {
		p := jwsParts(proof)
		return p[0] + "." + p[1] + "." + b64url(f(unb64(p[2])))
	}
}

// rsaModulus returns a base64url odd modulus of exactly bits bits.
func rsaModulus(bits int) string {
	n := make([]byte, (bits+7)/8)
	for i := range n {
		n[i] = 0xA7
	}
	n[0] = 0xFF >> (8*len(n) - bits)
	return b64url(n)
}

// flipLastBit returns the base64url value s with the last bit of its
// decoded bytes flipped.
func flipLastBit(s string) string {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	b[len(b)-1] ^= 1
	return b64url(b)
}

// proofRejectionCases are the DPoP proofs refused, each for one reason.
func proofRejectionCases() []proofCase {
	signers := testProofSigners()
	es256, p384, ed, rs := signers["ES256"], signers["ES384"], signers["EdDSA"], signers["RS256"]
	withJWK := func(of *proofSigner) func(map[string]any) { return withMember("jwk", maps.Clone(of.jwk)) }
	withAlgAndJWK := func(alg string, of *proofSigner) func(map[string]any) {
		return func(h map[string]any) { h["alg"] = alg; h["jwk"] = maps.Clone(of.jwk) }
	}
	claimsFor := func(token string) func(map[string]any) {
		sum := sha256.Sum256([]byte(token))
		return withMember("ath", b64url(sum[:]))
	}
	return []proofCase{
		// The compact serialisation.
		{name: "one byte over MaxDPoPProofSize", edit: func(t testing.TB, _ string) string {
			return proofOfSize(t, es256, MaxDPoPProofSize+1)
		}, reason: "proof is longer than 8192 bytes"},
		{name: "empty", edit: func(testing.TB, string) string { return "" }, reason: "proof is not three dot-separated parts"},
		{name: "two parts", edit: func(_ testing.TB, p string) string { return p[:strings.LastIndexByte(p, '.')] }, reason: "proof is not three dot-separated parts"},
		{name: "an empty part before the signature", edit: func(_ testing.TB, p string) string {
			i := strings.LastIndexByte(p, '.')
			return p[:i] + "." + p[i:]
		}, reason: "proof is not three dot-separated parts"},
		{name: "an extra part", edit: func(_ testing.TB, p string) string { return p + ".e30" }, reason: "proof is not three dot-separated parts"},
		{name: "JWS JSON serialisation", edit: func(testing.TB, string) string { return `{"payload":"e30","signatures":[]}` }, reason: "proof is not three dot-separated parts"},
		{name: "padding in the signature", edit: func(_ testing.TB, p string) string { return p + "==" }, reason: "proof is not base64url without padding"},
		{name: "padded header", raw: func(s *proofSigner) (string, string) { return validHeader(s, ""), validClaims("") }, edit: func(_ testing.TB, p string) string {
			q := jwsParts(p)
			h := unb64(q[0])
			for len(h)%3 == 0 {
				h = append(h, ' ')
			}
			return base64.URLEncoding.EncodeToString(h) + "." + q[1] + "." + q[2]
		}, reason: "proof is not base64url without padding"},
		{name: "standard base64 alphabet", edit: func(_ testing.TB, p string) string {
			return strings.NewReplacer("-", "+", "_", "/").Replace(p) + "+/"
		}, reason: "proof is not base64url without padding"},
		{name: "a line break, which Go's decoder skips", edit: func(_ testing.TB, p string) string { return p[:10] + "\n" + p[10:] }, reason: "proof is not base64url without padding"},
		{name: "a space", edit: func(_ testing.TB, p string) string { return p[:10] + " " + p[10:] }, reason: "proof is not base64url without padding"},
		{name: "nonzero trailing bits", edit: func(testing.TB, string) string { return "e31.e30.AA" }, reason: "proof is not base64url without padding"},
		{name: "a part of 4n+1 characters", edit: func(testing.TB, string) string { return "e30.e30AA.AA" }, reason: "proof is not base64url without padding"},

		// The header as JSON.
		{name: "empty header", edit: func(_ testing.TB, p string) string { return p[strings.IndexByte(p, '.'):] }, reason: "header is not valid JSON"},
		{name: "header not UTF-8", raw: func(s *proofSigner) (string, string) { return validHeader(s, `,"x":"`+"\xff"+`"`), validClaims("") }, reason: "header is not valid UTF-8"},
		{name: "header not JSON", raw: func(s *proofSigner) (string, string) { return `{"typ":"dpop+jwt",`, validClaims("") }, reason: "header is not valid JSON"},
		{name: "header with trailing data", raw: func(s *proofSigner) (string, string) { return validHeader(s, "") + "{}", validClaims("") }, reason: "header is not valid JSON"},
		{name: "header an array", raw: func(s *proofSigner) (string, string) { return `["dpop+jwt"]`, validClaims("") }, reason: "header is not a JSON object"},
		{name: "header a string", raw: func(s *proofSigner) (string, string) { return `"dpop+jwt"`, validClaims("") }, reason: "header is not a JSON object"},
		{name: "duplicate alg", raw: func(s *proofSigner) (string, string) { return validHeader(s, `,"alg":"ES256"`), validClaims("") }, reason: "header has a member more than once"},
		{name: "duplicate typ, one escaped", raw: func(s *proofSigner) (string, string) { return validHeader(s, `,"t\u0079p":"JWT"`), validClaims("") }, reason: "header has a member more than once"},
		{name: "duplicate member in jwk", raw: func(s *proofSigner) (string, string) {
			jwk := jwkText(s)
			return `{"typ":"dpop+jwt","alg":"ES256","jwk":` + jwk[:len(jwk)-1] + `,"x":"AAAA"}}`, validClaims("")
		}, reason: "header has a member more than once"},

		// typ, alg, crit.
		{name: "wrong typ", header: withMember("typ", "JWT"), reason: "typ is not dpop+jwt"},
		{name: "typ in another case", header: withMember("typ", "DPoP+JWT"), reason: "typ is not dpop+jwt"},
		{name: "typ as a full media type", header: withMember("typ", "application/dpop+jwt"), reason: "typ is not dpop+jwt"},
		{name: "missing typ", header: withoutMember("typ"), reason: "typ is not dpop+jwt"},
		{name: "typ not a string", header: withMember("typ", true), reason: "typ is not dpop+jwt"},
		{name: "Typ is not typ", raw: func(s *proofSigner) (string, string) {
			return `{"Typ":"dpop+jwt","alg":"ES256","jwk":` + jwkText(s) + `}`, validClaims("")
		}, reason: "typ is not dpop+jwt"},
		{name: "alg none", header: withMember("alg", "none"), reason: "alg is none or a MAC algorithm"},
		{name: "alg none, even when allowed", header: withMember("alg", "none"), check: func(c *proofCheck) { c.algs["none"] = true }, reason: "alg is none or a MAC algorithm"},
		{name: "alg HS256", header: withMember("alg", "HS256"), reason: "alg is none or a MAC algorithm"},
		{name: "alg HS512, even when allowed", header: withMember("alg", "HS512"), check: func(c *proofCheck) { c.algs["HS512"] = true }, reason: "alg is none or a MAC algorithm"},
		{name: "alg not allowed by the settings", signer: "RS256", check: func(c *proofCheck) { c.algs = map[string]bool{"ES256": true} }, reason: "alg is not allowed"},
		{name: "alg unknown, even when allowed", header: withMember("alg", "ES256K"), check: func(c *proofCheck) { c.algs["ES256K"] = true }, reason: "alg is not allowed"},
		{name: "alg in another case", header: withMember("alg", "es256"), reason: "alg is not allowed"},
		{name: "missing alg", header: withoutMember("alg"), reason: "alg is not allowed"},
		{name: "alg not a string", header: withMember("alg", []string{"ES256"}), reason: "alg is not allowed"},
		{name: "crit header", header: withMember("crit", []string{"exp"}), reason: "header has crit"},
		{name: "crit header, empty", header: withMember("crit", []string{}), reason: "header has crit"},

		// jwk.
		{name: "missing jwk", header: withoutMember("jwk"), reason: "jwk is not a JSON object"},
		{name: "jwk a string", header: withMember("jwk", jwkText(es256)), reason: "jwk is not a JSON object"},
		{name: "EC private key", header: withJWKMember("d", "VEmDZpDXXK8p8N0Cndsxs924q6nS1RXFASRl6BfUqdw"), reason: "jwk is not a public key"},
		{name: "RSA private key", signer: "RS256", header: withJWKMember("d", rfc7517D), reason: "jwk is not a public key"},
		{name: "RSA prime without d", signer: "RS256", header: withJWKMember("p", rfc7517P), reason: "jwk is not a public key"},
		{name: "RSA other primes", signer: "RS256", header: withJWKMember("oth", []any{}), reason: "jwk is not a public key"},
		{name: "OKP private key", signer: "EdDSA", header: withJWKMember("d", b64url(proofSHA256("dpop test Ed25519"))), reason: "jwk is not a public key"},
		{name: "private member even when null", header: withJWKMember("d", nil), reason: "jwk is not a public key"},
		{name: "kty oct", header: withMember("jwk", map[string]any{"kty": "oct", "alg": "ES256"}), reason: "jwk is not a public key"},
		{name: "kty oct with k", header: withMember("jwk", map[string]any{"kty": "oct", "k": "GawgguFyGrWKav7AX4VKUg"}), reason: "jwk is not a public key"},
		{name: "EdDSA with an EC key", header: withAlgAndJWK("EdDSA", es256), reason: "jwk key type does not fit alg"},
		{name: "ES256 with an RSA key", header: withJWK(rs), reason: "jwk key type does not fit alg"},
		{name: "RS256 with an OKP key", signer: "RS256", header: withJWK(ed), reason: "jwk key type does not fit alg"},
		{name: "missing kty", header: withoutJWKMember("kty"), reason: "jwk key type does not fit alg"},
		{name: "ES256 with a P-384 key", header: withJWK(p384), reason: "jwk curve does not fit alg"},
		{name: "ES512 with a P-256 key", signer: "ES512", header: withJWK(es256), reason: "jwk curve does not fit alg"},
		{name: "EdDSA with an X25519 key", signer: "EdDSA", header: withJWKMember("crv", "X25519"), reason: "jwk curve does not fit alg"},
		{name: "EdDSA with an Ed448 key", signer: "EdDSA", header: withJWKMember("crv", "Ed448"), reason: "jwk curve does not fit alg"},
		{name: "missing crv", header: withoutJWKMember("crv"), reason: "jwk curve does not fit alg"},
		{name: "EC x not a string", header: withJWKMember("x", 7), reason: "jwk is not a valid key"},
		{name: "EC y missing", header: withoutJWKMember("y"), reason: "jwk is not a valid key"},
		{name: "EC x with padding", header: func(h map[string]any) { withJWKMember("x", es256.jwk["x"].(string)+"=")(h) }, reason: "jwk is not a valid key"},
		{name: "EC x one byte short", header: func(h map[string]any) {
			withJWKMember("x", b64url(unb64(es256.jwk["x"].(string))[1:]))(h)
		}, reason: "jwk is not a valid key"},
		{name: "EC x with a leading zero byte", header: func(h map[string]any) {
			withJWKMember("x", b64url(append([]byte{0}, unb64(es256.jwk["x"].(string))...)))(h)
		}, reason: "jwk is not a valid key"},
		{name: "EC x far too long", header: withJWKMember("x", strings.Repeat("A", 300)), reason: "jwk is not a valid key"},
		{name: "Ed25519 x far too long", signer: "EdDSA", header: withJWKMember("x", strings.Repeat("A", 300)), reason: "jwk is not a valid key"},
		{name: "Ed25519 x not a string", signer: "EdDSA", header: withJWKMember("x", nil), reason: "jwk is not a valid key"},
		{name: "RSA n not a string", signer: "RS256", header: withJWKMember("n", []int{1}), reason: "jwk is not a valid key"},
		{name: "EC point not on the curve", header: withJWKMember("y", flipLastBit(es256.jwk["y"].(string))), reason: "jwk point is not on the curve"},
		{name: "EC point (0, 0)", header: func(h map[string]any) {
			withJWKMember("x", b64url(make([]byte, 32)))(h)
			withJWKMember("y", b64url(make([]byte, 32)))(h)
		}, reason: "jwk point is not on the curve"},
		{name: "Ed25519 x one byte short", signer: "EdDSA", header: withJWKMember("x", b64url(make([]byte, 31))), reason: "jwk is not a valid key"},
		{name: "RSA n with a leading zero byte", signer: "RS256", header: withJWKMember("n", b64url(append([]byte{0}, unb64(rfc7517N)...))), reason: "jwk is not a valid key"},
		{name: "RSA 1024-bit key", signer: "RS256 1024", reason: "jwk RSA modulus is not 2048 to 4096 bits"},
		{name: "RSA 2047-bit modulus", signer: "RS256", header: withJWKMember("n", rsaModulus(2047)), reason: "jwk RSA modulus is not 2048 to 4096 bits"},
		{name: "RSA 4097-bit modulus", signer: "RS256", header: withJWKMember("n", rsaModulus(4097)), reason: "jwk RSA modulus is not 2048 to 4096 bits"},
		{name: "RSA 16384-bit modulus", signer: "RS256", header: withJWKMember("n", rsaModulus(16384)), reason: "jwk RSA modulus is not 2048 to 4096 bits"},
		{name: "RSA 8192-bit modulus", signer: "RS256", header: withJWKMember("n", rsaModulus(8192)), reason: "jwk RSA modulus is not 2048 to 4096 bits"},
		{name: "RSA 4096-bit modulus goes on to the signature", signer: "RS256", header: withJWKMember("n", rsaModulus(4096)), reason: "signature has the wrong length"},
		{name: "RSA exponent 1", signer: "RS256", header: withJWKMember("e", "AQ"), reason: "jwk RSA exponent is not valid"},
		{name: "RSA exponent even", signer: "RS256", header: withJWKMember("e", "AQAA"), reason: "jwk RSA exponent is not valid"},
		{name: "RSA exponent 2^32+1", signer: "RS256", header: withJWKMember("e", "AQAAAAE"), reason: "jwk RSA exponent is not valid"},
		{name: "RSA exponent 3 goes on to the signature", signer: "RS256", header: withJWKMember("e", "Aw"), reason: "signature does not verify"},
		{name: "RSA exponent 2^31-1", signer: "RS256", header: withJWKMember("e", "f____w"), reason: "jwk RSA exponent is not valid"},
		{name: "RSA exponent 65539", signer: "RS256", header: withJWKMember("e", "AQAD"), reason: "jwk RSA exponent is not valid"},
		{name: "RSA exponent 2^31+1", signer: "RS256", header: withJWKMember("e", "gAAAAQ"), reason: "jwk RSA exponent is not valid"},
		{name: "RSA exponent of 9 bytes", signer: "RS256", header: withJWKMember("e", "AQAAAAAAAAAB"), reason: "jwk RSA exponent is not valid"},
		{name: "RSA exponent not a string", signer: "RS256", header: withJWKMember("e", 65537), reason: "jwk is not a valid key"},
		{name: "RSA n not base64url", signer: "RS256", header: withJWKMember("n", "n+/="), reason: "jwk is not a valid key"},
		{name: "RSA exponent with a leading zero byte", signer: "RS256", header: withJWKMember("e", "AAEAAQ"), reason: "jwk RSA exponent is not valid"},

		// The signature.
		{name: "bad signature", edit: replaceSignature(func(sig []byte) []byte { sig[5] ^= 0x40; return sig }), reason: "signature does not verify"},
		{name: "signature by another key", signer: "ES256 other", header: withJWK(es256), reason: "signature does not verify"},
		{name: "signature of another proof", edit: func(_ testing.TB, p string) string {
			other := jwsParts(es256.proof(nil, withMember("jti", "another")))
			return jwsParts(p)[0] + "." + jwsParts(p)[1] + "." + other[2]
		}, reason: "signature does not verify"},
		{name: "ECDSA signature one byte short", edit: replaceSignature(func(sig []byte) []byte { return sig[1:] }), reason: "signature has the wrong length"},
		{name: "ECDSA signature in ASN.1", edit: replaceSignature(func(sig []byte) []byte {
			r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
			der, err := asn1Signature(r, s)
			if err != nil {
				panic(err)
			}
			return der
		}), reason: "signature has the wrong length"},
		{name: "ECDSA signature zero", edit: replaceSignature(func(sig []byte) []byte { return make([]byte, 64) }), reason: "signature does not verify"},
		{name: "empty signature", edit: func(_ testing.TB, p string) string { return p[:strings.LastIndexByte(p, '.')+1] }, reason: "signature has the wrong length"},
		{name: "Ed25519 signature one byte short", signer: "EdDSA", edit: replaceSignature(func(sig []byte) []byte { return sig[:63] }), reason: "signature has the wrong length"},
		{name: "RS256 proof with a PS256 signature", signer: "PS256", header: withMember("alg", "RS256"), reason: "signature does not verify"},
		{name: "PS256 proof with an RS256 signature", signer: "RS256", header: withMember("alg", "PS256"), reason: "signature does not verify"},

		// The payload as JSON.
		{name: "payload not UTF-8", raw: func(s *proofSigner) (string, string) {
			return validHeader(s, ""), validClaims(`,"x":"` + "\xc3\x28" + `"`)
		}, reason: "payload is not valid UTF-8"},
		{name: "empty payload", raw: func(s *proofSigner) (string, string) { return validHeader(s, ""), "" }, reason: "payload is not valid JSON"},
		{name: "payload not JSON", raw: func(s *proofSigner) (string, string) { return validHeader(s, ""), validClaims(",") }, reason: "payload is not valid JSON"},
		{name: "payload an array", raw: func(s *proofSigner) (string, string) { return validHeader(s, ""), "[" + validClaims("") + "]" }, reason: "payload is not a JSON object"},
		{name: "duplicate claim", raw: func(s *proofSigner) (string, string) { return validHeader(s, ""), validClaims(`,"htm":"GET"`) }, reason: "payload has a member more than once"},
		{name: "duplicate member in a claim", raw: func(s *proofSigner) (string, string) {
			return validHeader(s, ""), validClaims(`,"cnf":{"a":1,"a":2}`)
		}, reason: "payload has a member more than once"},

		// The claims.
		{name: "missing jti", claims: withoutMember("jti"), reason: "jti is missing or not a string"},
		{name: "jti a number", claims: withMember("jti", 42), reason: "jti is missing or not a string"},
		{name: "empty jti", claims: withMember("jti", ""), reason: "jti is empty"},
		{name: "jti of 257 bytes", claims: withMember("jti", strings.Repeat("j", maxJTILength+1)), reason: "jti is longer than 256 bytes"},
		{name: "htm of another method", claims: withMember("htm", "GET"), reason: "htm does not match the request method"},
		{name: "htm in lower case", claims: withMember("htm", "post"), reason: "htm does not match the request method"},
		{name: "missing htm", claims: withoutMember("htm"), reason: "htm does not match the request method"},
		{name: "htm not a string", claims: withMember("htm", []string{"POST"}), reason: "htm does not match the request method"},
		{name: "htu of another host", claims: withMember("htu", "https://evil.example.com/mcp"), reason: "htu does not match the request URL"},
		{name: "htu of another scheme", claims: withMember("htu", "http://mcp.example.com/mcp"), reason: "htu does not match the request URL"},
		{name: "htu with another port", claims: withMember("htu", "https://mcp.example.com:8443/mcp"), reason: "htu does not match the request URL"},
		{name: "htu with a trailing slash", claims: withMember("htu", proofTestURL+"/"), reason: "htu does not match the request URL"},
		{name: "htu path in another case", claims: withMember("htu", "https://mcp.example.com/MCP"), reason: "htu does not match the request URL"},
		{name: "htu with another path and a query", claims: withMember("htu", "https://mcp.example.com/admin?/mcp"), reason: "htu does not match the request URL"},
		{name: "htu with an encoded ? in the path", claims: withMember("htu", proofTestURL+"%3Fa=b"), reason: "htu does not match the request URL"},
		{name: "htu with an encoded # in the path", claims: withMember("htu", proofTestURL+"%23top"), reason: "htu does not match the request URL"},
		{name: "htu whose dot segments lead elsewhere", claims: withMember("htu", proofTestURL+"/.."), reason: "htu does not match the request URL"},
		{name: "htu relative", claims: withMember("htu", "/mcp"), reason: "htu does not match the request URL"},
		{name: "htu with userinfo", claims: withMember("htu", "https://user@mcp.example.com/mcp"), reason: "htu does not match the request URL"},
		{name: "missing htu", claims: withoutMember("htu"), reason: "htu does not match the request URL"},
		{name: "htu not a string", claims: withMember("htu", 1), reason: "htu does not match the request URL"},
		{name: "iat half a second too old", claims: withMember("iat", float64(proofTestNow.Add(-proofTestWin).Unix())-0.5), reason: "iat is too far in the past"},
		{name: "iat an hour old", claims: withMember("iat", proofTestNow.Add(-time.Hour).Unix()), reason: "iat is too far in the past"},
		{name: "iat half a second too far in the future", claims: withMember("iat", float64(proofTestNow.Add(proofTestWin).Unix())+0.5), reason: "iat is too far in the future"},
		{name: "iat a string", claims: withMember("iat", strconv.FormatInt(proofTestNow.Unix(), 10)), reason: "iat is missing or not a NumericDate"},
		{name: "missing iat", claims: withoutMember("iat"), reason: "iat is missing or not a NumericDate"},
		{name: "iat 0", claims: withMember("iat", 0), reason: "iat is too far in the past"},
		{name: "iat the last second of year 9999", claims: withMember("iat", maxNumericDate), reason: "iat is too far in the future"},
		{name: "iat null", claims: withMember("iat", nil), reason: "iat is missing or not a NumericDate"},
		{name: "iat an object", claims: withMember("iat", map[string]int{"s": 1}), reason: "iat is missing or not a NumericDate"},
		{name: "iat negative", claims: withMember("iat", -1), reason: "iat is missing or not a NumericDate"},
		{name: "iat past year 9999", claims: withMember("iat", maxNumericDate+1), reason: "iat is missing or not a NumericDate"},
		{name: "iat out of range", claims: withMember("iat", json.Number("1e400")), reason: "iat is missing or not a NumericDate"},
		{name: "missing ath", claims: withoutMember("ath"), reason: "ath does not match the token"},
		{name: "ath of another token", claims: claimsFor("another token"), reason: "ath does not match the token"},
		{name: "proof for another token, checked for this one", check: func(c *proofCheck) { c.token = "another token" }, reason: "ath does not match the token"},
		{name: "ath with padding", claims: withMember("ath", proofTestATH+"="), reason: "ath does not match the token"},
		{name: "ath in standard base64", claims: func(c map[string]any) {
			sum := sha256.Sum256([]byte(proofTestToken))
			c["ath"] = base64.StdEncoding.EncodeToString(sum[:])
		}, reason: "ath does not match the token"},
		{name: "ath of the token itself", claims: withMember("ath", proofTestToken), reason: "ath does not match the token"},
		{name: "ath not a string", claims: withMember("ath", 0), reason: "ath does not match the token"},
		{name: "nonce not a string", claims: withMember("nonce", 7), reason: "nonce is not a string"},
	}
}

func TestDPoPProofRejections(t *testing.T) {
	cases := proofRejectionCases()
	require.GreaterOrEqual(t, len(cases), 40)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			proof := tc.build(t)
			c := proofTestCheck()
			if tc.check != nil {
				tc.check(&c)
			}
			got, err := verifyProof(proof, c)
			var pe *DPoPProofError
			require.ErrorAs(t, err, &pe)
			assert.ErrorIs(t, err, ErrInvalidDPoPProof)
			assert.ErrorIs(t, err, ErrInvalidToken)
			assert.Equal(t, "introspection: invalid DPoP proof: "+tc.reason, err.Error())
			assert.Contains(t, proofReasons, pe.Reason)
			assert.Equal(t, dpopProof{}, got)
		})
	}
}

// proofReasons are all the reasons verifyProof gives.
var proofReasons = []string{
	reasonProofTooLarge, reasonProofParts, reasonProofBase64, reasonHeaderUTF8, reasonHeaderJSON,
	reasonHeaderObject, reasonHeaderDuplicate, reasonType, reasonAlgSymmetric, reasonAlgNotAllowed,
	reasonCrit, reasonJWKObject, reasonJWKPrivate, reasonJWKType, reasonJWKCurve, reasonJWKInvalid,
	reasonJWKPoint, reasonRSASize, reasonRSAExponent, reasonSignatureLength, reasonSignature,
	reasonPayloadUTF8, reasonPayloadJSON, reasonPayloadObject, reasonPayloadDuplicate, reasonJTIMissing,
	reasonJTIEmpty, reasonJTITooLong, reasonMethod, reasonURL, reasonIssuedAt, reasonIssuedAtPast,
	reasonIssuedAtFuture, reasonAccessTokenHash, reasonNonce,
}

// TestDPoPProofRejectionsCoverEveryReason holds the rejection matrix to
// every reason verifyProof has.
func TestDPoPProofRejectionsCoverEveryReason(t *testing.T) {
	seen := map[string]bool{}
	for _, tc := range proofRejectionCases() {
		seen[tc.reason] = true
	}
	for _, r := range proofReasons {
		assert.True(t, seen[r], "no rejection case for %q", r)
	}
}

// TestDPoPProofSizeBound accepts a valid proof of exactly MaxDPoPProofSize
// bytes; the rejection matrix refuses one a byte longer.
func TestDPoPProofSizeBound(t *testing.T) {
	proof := proofOfSize(t, testProofSigners()["ES256"], MaxDPoPProofSize)
	require.Len(t, proof, MaxDPoPProofSize)
	_, err := verifyProof(proof, proofTestCheck())
	assert.NoError(t, err)
}

// TestDPoPProofBoundsInReasons keeps the numbers in the reason texts equal
// to the bounds.
func TestDPoPProofBoundsInReasons(t *testing.T) {
	assert.Contains(t, reasonProofTooLarge, " "+strconv.Itoa(MaxDPoPProofSize)+" bytes")
	assert.Contains(t, reasonJTITooLong, " "+strconv.Itoa(maxJTILength)+" bytes")
	assert.Contains(t, reasonRSASize, fmt.Sprintf(" %d to %d bits", minRSABits, maxRSABits))
}

// TestDefaultDPoPAlgorithmsAreVerifiable holds DefaultDPoPAlgorithms and the
// algorithms verifyProof knows to the same set, without none or HMAC.
func TestDefaultDPoPAlgorithmsAreVerifiable(t *testing.T) {
	known := slices.Sorted(maps.Keys(proofAlgs))
	assert.Equal(t, known, slices.Sorted(slices.Values(DefaultDPoPAlgorithms)))
	for _, a := range DefaultDPoPAlgorithms {
		assert.NotEqual(t, "none", a)
		assert.False(t, strings.HasPrefix(a, "HS"), a)
	}
}

func TestNormalizeHTU(t *testing.T) {
	cases := []struct {
		in   string
		want string
		err  error
	}{
		{in: "https://mcp.example.com/mcp", want: "https://mcp.example.com/mcp"},
		{in: "HTTPS://MCP.Example.COM/mcp", want: "https://mcp.example.com/mcp"},
		{in: "https://mcp.example.com/MCP", want: "https://mcp.example.com/MCP"},
		{in: "https://mcp.example.com:443/mcp", want: "https://mcp.example.com/mcp"},
		{in: "http://mcp.example.com:80/mcp", want: "http://mcp.example.com/mcp"},
		{in: "http://mcp.example.com:443/mcp", want: "http://mcp.example.com:443/mcp"},
		{in: "https://mcp.example.com:80/mcp", want: "https://mcp.example.com:80/mcp"},
		{in: "https://mcp.example.com:/mcp", want: "https://mcp.example.com/mcp"},
		{in: "https://mcp.example.com:0443/mcp", want: "https://mcp.example.com/mcp"},
		{in: "https://mcp.example.com:08443/mcp", want: "https://mcp.example.com:8443/mcp"},
		{in: "https://mcp.example.com:65535/mcp", want: "https://mcp.example.com:65535/mcp"},
		{in: "https://mcp.example.com:9099/mcp", want: "https://mcp.example.com:9099/mcp"},
		{in: "https://AZaz09-._~!$&'()*+,;=.example/", want: "https://azaz09-._~!$&'()*+,;=.example/"},
		{in: "https://mcp.example.com/AZaz09-._~", want: "https://mcp.example.com/AZaz09-._~"},
		{in: "https://mcp.example.com/%41%5A%61%7A%30%39%2d%2e%5f%7e", want: "https://mcp.example.com/AZaz09-._~"},
		{in: "https://mcp.example.com/%40%5B%60%7B%2F%3A%2f%3a%ff", want: "https://mcp.example.com/%40%5B%60%7B%2F%3A%2F%3A%FF"},
		{in: "https://mcp.example.com", want: "https://mcp.example.com/"},
		{in: "https://mcp.example.com?x=1", want: "https://mcp.example.com/"},
		{in: "https://mcp.example.com/mcp?x=1&y=/a?b#frag", want: "https://mcp.example.com/mcp"},
		{in: "https://mcp.example.com/mcp#", want: "https://mcp.example.com/mcp"},
		{in: "https://mcp.example.com/mcp/", want: "https://mcp.example.com/mcp/"},
		{in: "https://mcp.example.com/%6d%63%70", want: "https://mcp.example.com/mcp"},
		{in: "https://mcp.example.com/%7Euser/%2D%2E%5F", want: "https://mcp.example.com/~user/-._"},
		{in: "https://mcp.example.com/a%2fb%c3%a9", want: "https://mcp.example.com/a%2Fb%C3%A9"},
		{in: "https://mcp.example.com/a/./b/../c", want: "https://mcp.example.com/a/c"},
		{in: "https://mcp.example.com/../../mcp", want: "https://mcp.example.com/mcp"},
		{in: "https://mcp.example.com/a/%2E%2E/mcp", want: "https://mcp.example.com/mcp"},
		{in: "https://mcp.example.com/a/.", want: "https://mcp.example.com/a/"},
		{in: "https://mcp.example.com/a/..", want: "https://mcp.example.com/"},
		{in: "https://mcp.example.com/.well-known/oauth-protected-resource", want: "https://mcp.example.com/.well-known/oauth-protected-resource"},
		{in: "https://mcp.example.com/a/..b/c.", want: "https://mcp.example.com/a/..b/c."},
		{in: "https://mcp.example.com//mcp", want: "https://mcp.example.com//mcp"},
		{in: "https://mcp.example.com/a;b=c/d:e@f!$&'()*+,=", want: "https://mcp.example.com/a;b=c/d:e@f!$&'()*+,="},
		{in: "https://mcp.example.com/a[1]|b^c", want: "https://mcp.example.com/a%5B1%5D%7Cb%5Ec"},
		{in: "https://mcp.example.com/a%5b1%5d%7cb%5ec", want: "https://mcp.example.com/a%5B1%5D%7Cb%5Ec"},
		{in: "https://mcp.example.com/mcp?a[]=1|2#x^", want: "https://mcp.example.com/mcp"},
		{in: "https://[2001:DB8::1]/mcp", want: "https://[2001:db8::1]/mcp"},
		{in: "https://[2001:db8:0:0:0:0:0:1]:443/mcp", want: "https://[2001:db8::1]/mcp"},
		{in: "http://[::1]:8080/mcp", want: "http://[::1]:8080/mcp"},
		{in: "http://[::FFFF:127.0.0.1]/", want: "http://[::ffff:127.0.0.1]/"},
		{in: "https://127.0.0.1:8443/mcp", want: "https://127.0.0.1:8443/mcp"},

		{in: "", err: errHTUNotURL},
		{in: "/mcp", err: errHTUNotURL},
		{in: "mcp.example.com/mcp", err: errHTUNotURL},
		{in: "ftp://mcp.example.com/mcp", err: errHTUNotURL},
		{in: "wss://mcp.example.com/mcp", err: errHTUNotURL},
		{in: " https://mcp.example.com/mcp", err: errHTUNotURL},
		{in: "https:/mcp.example.com/mcp", err: errHTUNotURL},
		{in: "https:mcp", err: errHTUNotURL},
		{in: "https://user:pw@mcp.example.com/mcp", err: errHTUUserinfo},
		{in: "https://@mcp.example.com/mcp", err: errHTUUserinfo},
		{in: "https:///mcp", err: errHTUBadHost},
		{in: "https://:443/mcp", err: errHTUBadHost},
		{in: "https://mcp example.com/mcp", err: errHTUBadHost},
		{in: `https://mcp.example.com\mcp`, err: errHTUBadHost},
		{in: "https://m%63p.example.com/", err: errHTUBadHost},
		{in: "https://mcp.exämple.com/", err: errHTUBadHost},
		{in: "https://[fe80::1%25eth0]/mcp", err: errHTUBadHost},
		{in: "https://[v1.fe80::1]/mcp", err: errHTUBadHost},
		{in: "https://[127.0.0.1]/mcp", err: errHTUBadHost},
		{in: "https://[::1/mcp", err: errHTUBadHost},
		{in: "https://[::1]x/mcp", err: errHTUBadHost},
		{in: "https://mcp.example.com:65536/mcp", err: errHTUBadPort},
		{in: "https://mcp.example.com:100000/mcp", err: errHTUBadPort},
		{in: "https://mcp.example.com:0/mcp", err: errHTUBadPort},
		{in: "https://mcp.example.com:443x/mcp", err: errHTUBadPort},
		{in: "https://mcp.example.com:-443/mcp", err: errHTUBadPort},
		{in: "https://mcp.example.com:1:2/mcp", err: errHTUBadPort},
		{in: "https://[::1]:99999/mcp", err: errHTUBadPort},
		{in: "https://mcp.example.com/m cp", err: errHTUBadEscape},
		{in: "https://mcp.example.com/mcp\t", err: errHTUBadEscape},
		{in: "https://mcp.example.com/mcp%2", err: errHTUBadEscape},
		{in: "https://mcp.example.com/mcp%zz", err: errHTUBadEscape},
		{in: "https://mcp.example.com/é", err: errHTUBadEscape},
		{in: "https://mcp.example.com/mcp{x}", err: errHTUBadEscape},
		{in: "https://mcp.example.com/mcp`x", err: errHTUBadEscape},
		{in: `https://mcp.example.com/mcp"x`, err: errHTUBadEscape},
		{in: `https://mcp.example.com/a\b`, err: errHTUBadEscape},
		{in: "https://mcp.example.com/a<b>", err: errHTUBadEscape},
		{in: "https://mcp.example.com/mcp?a b", want: "https://mcp.example.com/mcp"},
		{in: "https://mcp.example.com/mcp#a#b", want: "https://mcp.example.com/mcp"},
		{in: "https://mcp.example.com/mcp?%", want: "https://mcp.example.com/mcp"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := normalizeHTU(tc.in)
			if tc.err != nil {
				assert.ErrorIs(t, err, tc.err)
				assert.Empty(t, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			again, err := normalizeHTU(got)
			require.NoError(t, err)
			assert.Equal(t, got, again, "normalising twice changes nothing")
		})
	}
}

// TestCertificateThumbprint checks the RFC 8705 §3.1 thumbprint against
// SHA-256 test vectors (FIPS 180-2 "abc", and the empty input).
func TestCertificateThumbprint(t *testing.T) {
	assert.Equal(t, "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0", certificateThumbprint([]byte("abc")))
	assert.Equal(t, "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU", certificateThumbprint(nil))
}

// TestDPoPProofConcurrent verifies proofs from many goroutines at once:
// verifyProof shares nothing that it changes (run with -race).
func TestDPoPProofConcurrent(t *testing.T) {
	signers := testProofSigners()
	proofs := map[string]string{}
	for _, alg := range DefaultDPoPAlgorithms {
		proofs[alg] = signers[alg].proof(nil, nil)
	}
	bad := signers["ES256"].proof(nil, withMember("htm", "GET"))
	c := proofTestCheck()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for alg, p := range proofs {
				got, err := verifyProof(p, c)
				assert.NoError(t, err, alg)
				assert.Equal(t, thumbprintOf(signers[alg].jwk), got.thumbprint)
				_, err = verifyProof(bad, c)
				assert.EqualError(t, err, "introspection: invalid DPoP proof: htm does not match the request method")
			}
		})
	}
	wg.Wait()
}
