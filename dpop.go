package introspection

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultDPoPAlgorithms lists the JWS algorithms (RFC 7518 §3, RFC 8037
// §3.1 and the fully-specified Ed25519 of RFC 9864) that DPoP proofs may
// be signed with when Settings.DPoPAlgorithms is nil: ECDSA on P-256,
// P-384 and P-521, RSA with PKCS #1 v1.5 or PSS and SHA-256, and Ed25519
// under both of its names. A Verifier uses a copy taken when it is made, so
// changing this variable later changes no Verifier; none, the HMAC
// algorithms and any name not in this list are refused whatever the
// settings say.
var DefaultDPoPAlgorithms = []string{"ES256", "ES384", "ES512", "RS256", "PS256", "EdDSA", "Ed25519"}

// MaxDPoPProofSize is the largest DPoP proof, in bytes of the DPoP header
// value, that is read; a longer one is refused before it is decoded.
const MaxDPoPProofSize = 8 << 10

// Bounds of a DPoP proof besides its size.
const (
	// maxJTILength is the longest jti, in bytes, a proof may carry.
	maxJTILength = 256
	// minRSABits and maxRSABits bound the modulus of an RSA key in a
	// proof: shorter keys are weak, and longer ones, with a large
	// exponent, make each proof cost a client's choice of time: a proof is
	// checked before the token is, so any client can send one. With these
	// bounds an RS256 proof costs at most a few times an ES256 one.
	minRSABits = 2048
	maxRSABits = 4096
	// maxRSAExponent is the largest RSA public exponent accepted: 65537,
	// which every common key uses; a larger one makes verifying cost more.
	maxRSAExponent = 65537
)

// The reasons a DPoP proof is refused, as [DPoPProofError.Reason]. Each is
// a fixed text: none quotes the proof, the token or the request.
const (
	reasonProofTooLarge    = "proof is longer than 8192 bytes"
	reasonProofParts       = "proof is not three dot-separated parts"
	reasonProofBase64      = "proof is not base64url without padding"
	reasonHeaderUTF8       = "header is not valid UTF-8"
	reasonHeaderJSON       = "header is not valid JSON"
	reasonHeaderObject     = "header is not a JSON object"
	reasonHeaderDuplicate  = "header has a member more than once"
	reasonType             = "typ is not dpop+jwt"
	reasonAlgSymmetric     = "alg is none or a MAC algorithm"
	reasonAlgNotAllowed    = "alg is not allowed"
	reasonCrit             = "header has crit"
	reasonJWKObject        = "jwk is not a JSON object"
	reasonJWKPrivate       = "jwk is not a public key"
	reasonJWKType          = "jwk key type does not fit alg"
	reasonJWKCurve         = "jwk curve does not fit alg"
	reasonJWKInvalid       = "jwk is not a valid key"
	reasonJWKPoint         = "jwk point is not on the curve"
	reasonRSASize          = "jwk RSA modulus is not 2048 to 4096 bits"
	reasonRSAExponent      = "jwk RSA exponent is not valid"
	reasonSignatureLength  = "signature has the wrong length"
	reasonSignature        = "signature does not verify"
	reasonPayloadUTF8      = "payload is not valid UTF-8"
	reasonPayloadJSON      = "payload is not valid JSON"
	reasonPayloadObject    = "payload is not a JSON object"
	reasonPayloadDuplicate = "payload has a member more than once"
	reasonJTIMissing       = "jti is missing or not a string"
	reasonJTIEmpty         = "jti is empty"
	reasonJTITooLong       = "jti is longer than 256 bytes"
	reasonMethod           = "htm does not match the request method"
	reasonURL              = "htu does not match the request URL"
	reasonIssuedAt         = "iat is missing or not a NumericDate"
	reasonIssuedAtPast     = "iat is too far in the past"
	reasonIssuedAtFuture   = "iat is too far in the future"
	reasonAccessTokenHash  = "ath does not match the token"
	reasonNonce            = "nonce is not a string"
)

// dpopProof is what a verified DPoP proof says.
type dpopProof struct {
	thumbprint string // RFC 7638 SHA-256 JWK thumbprint, base64url without padding
	jti        string
	iat        time.Time
	nonce      string // "" when absent
}

// proofCheck is what a DPoP proof must match.
type proofCheck struct {
	algs   map[string]bool // allowed alg values
	method string          // the request method, compared exactly with htm
	htu    string          // the expected URL, already normalised by normalizeHTU
	token  string          // the access token, for ath
	now    time.Time
	window time.Duration // DPoPProofWindow + Leeway, either side of now
}

// proofAlg is what a JWS algorithm asks of the key and the signature.
type proofAlg struct {
	kty   string // the JWK key type, RFC 7518 §6.1
	crv   string // the curve of an EC or OKP key
	size  int    // bytes of an EC coordinate
	curve elliptic.Curve
	pss   bool // RSASSA-PSS rather than PKCS #1 v1.5
}

// proofAlgs are the algorithms a DPoP proof can be verified with. A name
// that is not here is refused even when proofCheck.algs has it.
var proofAlgs = map[string]proofAlg{
	"ES256":   {kty: "EC", crv: "P-256", size: 32, curve: elliptic.P256()},
	"ES384":   {kty: "EC", crv: "P-384", size: 48, curve: elliptic.P384()},
	"ES512":   {kty: "EC", crv: "P-521", size: 66, curve: elliptic.P521()},
	"RS256":   {kty: "RSA"},
	"PS256":   {kty: "RSA", pss: true},
	"EdDSA":   {kty: "OKP", crv: "Ed25519"},
	"Ed25519": {kty: "OKP", crv: "Ed25519"},
}

// b64 decodes base64url without padding (RFC 7515 §2) and with zero
// trailing bits. It skips CR and LF, so decodeB64 checks the input's
// characters first.
var b64 = base64.RawURLEncoding.Strict()

// proofError returns the error for a proof refused for reason.
func proofError(reason string) (dpopProof, error) {
	return dpopProof{}, &DPoPProofError{Reason: reason}
}

// verifyProof checks the DPoP proof raw, the value of a request's DPoP
// header, as RFC 9449 §4.3 asks, against c, and returns what it says. It is
// strict where the RFC is and where parsers differ:
//   - The proof is at most [MaxDPoPProofSize] bytes, a JWS in compact form
//     of three parts, each base64url without padding, white space or
//     nonzero trailing bits.
//   - Header and payload are JSON objects of valid UTF-8, in which no
//     object has a member name twice (names compare as decoded, so "typ"
//     and "t\u0079p" are the same name). Member names are matched exactly:
//     "Typ" is not typ. Unknown members are ignored.
//   - typ is exactly dpop+jwt; alg is in c.algs and in [proofAlgs], and
//     never none or an HMAC algorithm; crit is refused whatever it lists.
//   - jwk is a public key of the type and curve alg names: EC (RFC 7518
//     §6.2) with full-size coordinates of a point on the curve; RSA
//     (§6.3) of 2048 to 4096 bits in minimal form with an odd exponent
//     from 3 to 65537; OKP Ed25519 (RFC 8037 §2). A jwk with a member of a
//     private or symmetric key (d, p, q, dp, dq, qi, oth, k) or of kty oct
//     is refused.
//   - The signature verifies: ECDSA as r||s of the curve's size (RFC 7518
//     §3.4), RSASSA-PKCS1-v1_5 or RSASSA-PSS with SHA-256 and a salt as
//     long as the hash (§3.5), Ed25519 (RFC 8037 §3.1). The payload's
//     JSON is parsed only after that.
//   - jti is a non-empty string of at most maxJTILength bytes; htm equals
//     c.method exactly; htu, normalised by [normalizeHTU], equals c.htu,
//     so its query and fragment are ignored as §4.3 says; iat is a
//     NumericDate, integral or fractional, at most c.window from c.now
//     either way (both ends accepted); ath is the base64url SHA-256 of
//     c.token; nonce, when present, is a string (checking it is the
//     caller's).
//
// It returns the RFC 7638 thumbprint of the jwk. Every error is a
// [*DPoPProofError] whose Reason is one of the fixed reason texts.
func verifyProof(raw string, c proofCheck) (dpopProof, error) {
	if len(raw) > MaxDPoPProofSize {
		return proofError(reasonProofTooLarge)
	}
	dot1 := strings.IndexByte(raw, '.')
	dot2 := -1
	if dot1 >= 0 {
		if i := strings.IndexByte(raw[dot1+1:], '.'); i >= 0 {
			dot2 = dot1 + 1 + i
		}
	}
	if dot2 < 0 || strings.IndexByte(raw[dot2+1:], '.') >= 0 {
		return proofError(reasonProofParts)
	}
	// One buffer holds the three parts decoded.
	buf := make([]byte, b64.DecodedLen(len(raw)))
	header, ok := decodeB64(buf, raw[:dot1])
	if !ok {
		return proofError(reasonProofBase64)
	}
	payload, ok := decodeB64(buf[len(header):], raw[dot1+1:dot2])
	if !ok {
		return proofError(reasonProofBase64)
	}
	sig, ok := decodeB64(buf[len(header)+len(payload):], raw[dot2+1:])
	if !ok {
		return proofError(reasonProofBase64)
	}

	h, reason := readProofHeader(header)
	if reason != "" {
		return proofError(reason)
	}
	alg, reason := proofAlgorithm(h, c.algs)
	if reason != "" {
		return proofError(reason)
	}
	key, reason := readProofKey(h.jwk, alg)
	if reason != "" {
		return proofError(reason)
	}
	if reason := key.verify(alg, []byte(raw[:dot2]), sig); reason != "" {
		return proofError(reason)
	}

	p, reason := readProofClaims(payload)
	if reason != "" {
		return proofError(reason)
	}
	if reason := p.check(c); reason != "" {
		return proofError(reason)
	}
	return dpopProof{
		thumbprint: key.thumbprint(),
		jti:        string(p.jti),
		iat:        p.iat,
		nonce:      string(p.nonce),
	}, nil
}

// decodeB64 decodes s, base64url without padding, into dst and returns
// the decoded bytes: false when s has a character outside the base64url
// alphabet (padding, '+', '/', white space) or nonzero trailing bits, or
// decodes to more than dst holds.
func decodeB64(dst []byte, s string) ([]byte, bool) {
	if b64.DecodedLen(len(s)) > len(dst) {
		return nil, false
	}
	for i := 0; i < len(s); i++ {
		if !b64Char(s[i]) {
			return nil, false
		}
	}
	n, err := b64.Decode(dst, []byte(s))
	return dst[:n:n], err == nil
}

// b64Char reports whether c is in the base64url alphabet, RFC 4648 §5.
func b64Char(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// proofHeader holds the members of a proof's JOSE header that are read,
// each as the JSON text of its value, or nil when absent.
type proofHeader struct {
	typ, alg, jwk []byte
	crit          bool
}

// readProofHeader parses a decoded JOSE header.
func readProofHeader(data []byte) (proofHeader, string) {
	var h proofHeader
	if reason := strictObject(data, reasonHeaderUTF8, reasonHeaderJSON, reasonHeaderObject, reasonHeaderDuplicate); reason != "" {
		return h, reason
	}
	for m := (members{data: data}); m.next(); {
		switch string(m.name) {
		case "typ":
			h.typ = m.value
		case "alg":
			h.alg = m.value
		case "jwk":
			h.jwk = m.value
		case "crit":
			h.crit = true
		}
	}
	return h, ""
}

// proofAlgorithm checks typ, alg and crit of h and returns the algorithm.
func proofAlgorithm(h proofHeader, allowed map[string]bool) (proofAlg, string) {
	if typ, ok := jsonString(h.typ); !ok || string(typ) != "dpop+jwt" {
		return proofAlg{}, reasonType
	}
	name, ok := jsonString(h.alg)
	if !ok {
		return proofAlg{}, reasonAlgNotAllowed
	}
	if string(name) == "none" || bytes.HasPrefix(name, []byte("HS")) {
		return proofAlg{}, reasonAlgSymmetric
	}
	alg, known := proofAlgs[string(name)]
	if !known || !allowed[string(name)] {
		return proofAlg{}, reasonAlgNotAllowed
	}
	if h.crit {
		return proofAlg{}, reasonCrit
	}
	return alg, ""
}

// proofKey is the public key of a proof's jwk, with the members its
// thumbprint is made of, each a base64url string as the jwk has it.
type proofKey struct {
	kty, crv string
	x, y     []byte // EC and OKP
	n, e     []byte // RSA
	ec       *ecdsa.PublicKey
	rsa      *rsa.PublicKey
	ed       ed25519.PublicKey
}

// readProofKey parses the jwk, the JSON text of the header member, as a
// public key for alg.
func readProofKey(jwk []byte, alg proofAlg) (proofKey, string) {
	k := proofKey{kty: alg.kty, crv: alg.crv}
	if len(jwk) == 0 || jwk[0] != '{' {
		return k, reasonJWKObject
	}
	var kty, crv []byte
	for m := (members{data: jwk}); m.next(); {
		switch string(m.name) {
		case "d", "p", "q", "dp", "dq", "qi", "oth", "k":
			return k, reasonJWKPrivate
		case "kty":
			kty = m.value
		case "crv":
			crv = m.value
		case "x":
			k.x = m.value
		case "y":
			k.y = m.value
		case "n":
			k.n = m.value
		case "e":
			k.e = m.value
		}
	}
	ktyName, _ := jsonString(kty)
	switch {
	case string(ktyName) == "oct":
		return k, reasonJWKPrivate
	case string(ktyName) != alg.kty:
		return k, reasonJWKType
	}
	if alg.crv != "" {
		if name, ok := jsonString(crv); !ok || string(name) != alg.crv {
			return k, reasonJWKCurve
		}
	}
	switch alg.kty {
	case "EC":
		return k.parseEC(alg)
	case "RSA":
		return k.parseRSA()
	default:
		return k.parseOKP()
	}
}

// parseEC reads an EC public key, RFC 7518 §6.2.1: coordinates of exactly
// the curve's size, of a point on the curve other than infinity.
func (k proofKey) parseEC(alg proofAlg) (proofKey, string) {
	var ok bool
	if k.x, ok = jsonString(k.x); !ok {
		return k, reasonJWKInvalid
	}
	if k.y, ok = jsonString(k.y); !ok {
		return k, reasonJWKInvalid
	}
	var point [1 + 2*66]byte
	point[0] = 4 // uncompressed, SEC 1 §2.3.3
	x, okX := decodeB64(point[1:], string(k.x))
	y, okY := decodeB64(point[1+len(x):], string(k.y))
	if !okX || !okY || len(x) != alg.size || len(y) != alg.size {
		return k, reasonJWKInvalid
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(alg.curve, point[:1+2*alg.size])
	if err != nil {
		return k, reasonJWKPoint
	}
	k.ec = pub
	return k, ""
}

// parseRSA reads an RSA public key, RFC 7518 §6.3.1: n and e in minimal
// form (no leading zero octet), n of minRSABits to maxRSABits, e odd and
// from 3 to maxRSAExponent.
func (k proofKey) parseRSA() (proofKey, string) {
	var ok bool
	if k.n, ok = jsonString(k.n); !ok {
		return k, reasonJWKInvalid
	}
	if k.e, ok = jsonString(k.e); !ok {
		return k, reasonJWKInvalid
	}
	if len(k.n) > (maxRSABits/8+1)*4/3+1 {
		return k, reasonRSASize
	}
	var nBuf [maxRSABits/8 + 3]byte
	n, ok := decodeB64(nBuf[:], string(k.n))
	if !ok || len(n) == 0 || n[0] == 0 {
		return k, reasonJWKInvalid
	}
	if size := (len(n)-1)*8 + bits.Len8(n[0]); size < minRSABits || size > maxRSABits {
		return k, reasonRSASize
	}
	var eBuf [8]byte
	e, ok := decodeB64(eBuf[:], string(k.e))
	if !ok || len(e) == 0 || len(e) > 4 || e[0] == 0 {
		return k, reasonRSAExponent
	}
	var exp uint64
	for _, b := range e {
		exp = exp<<8 | uint64(b)
	}
	if exp < 3 || exp > maxRSAExponent || exp%2 == 0 {
		return k, reasonRSAExponent
	}
	k.rsa = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(exp)}
	return k, ""
}

// parseOKP reads an Ed25519 public key, RFC 8037 §2.
func (k proofKey) parseOKP() (proofKey, string) {
	var ok bool
	if k.x, ok = jsonString(k.x); !ok {
		return k, reasonJWKInvalid
	}
	var xBuf [ed25519.PublicKeySize + 3]byte
	x, ok := decodeB64(xBuf[:], string(k.x))
	if !ok || len(x) != ed25519.PublicKeySize {
		return k, reasonJWKInvalid
	}
	k.ed = ed25519.PublicKey(bytes.Clone(x))
	return k, ""
}

// verify checks sig, the decoded signature, over the signing input.
func (k proofKey) verify(alg proofAlg, input, sig []byte) string {
	var valid bool
	switch {
	case k.ec != nil:
		if len(sig) != 2*alg.size {
			return reasonSignatureLength
		}
		r := new(big.Int).SetBytes(sig[:alg.size])
		s := new(big.Int).SetBytes(sig[alg.size:])
		switch alg.size {
		case 32:
			d := sha256.Sum256(input)
			valid = ecdsa.Verify(k.ec, d[:], r, s)
		case 48:
			d := sha512.Sum384(input)
			valid = ecdsa.Verify(k.ec, d[:], r, s)
		default:
			d := sha512.Sum512(input)
			valid = ecdsa.Verify(k.ec, d[:], r, s)
		}
	case k.rsa != nil:
		if len(sig) != k.rsa.Size() {
			return reasonSignatureLength
		}
		d := sha256.Sum256(input)
		if alg.pss {
			valid = rsa.VerifyPSS(k.rsa, crypto.SHA256, d[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
		} else {
			valid = rsa.VerifyPKCS1v15(k.rsa, crypto.SHA256, d[:], sig) == nil
		}
	default:
		if len(sig) != ed25519.SignatureSize {
			return reasonSignatureLength
		}
		valid = ed25519.Verify(k.ed, input, sig)
	}
	if !valid {
		return reasonSignature
	}
	return ""
}

// thumbprint returns the RFC 7638 SHA-256 thumbprint of the key: the hash
// of its required members in lexicographic order, without white space.
// The members are base64url or names of this package's own, so none needs
// escaping.
func (k proofKey) thumbprint() string {
	var buf [1500]byte // more than the longest, of an RSA key of maxRSABits
	b := buf[:0]
	switch k.kty {
	case "EC":
		b = append(b, `{"crv":"`...)
		b = append(b, k.crv...)
		b = append(b, `","kty":"EC","x":"`...)
		b = append(b, k.x...)
		b = append(b, `","y":"`...)
		b = append(b, k.y...)
	case "RSA":
		b = append(b, `{"e":"`...)
		b = append(b, k.e...)
		b = append(b, `","kty":"RSA","n":"`...)
		b = append(b, k.n...)
	default:
		b = append(b, `{"crv":"`...)
		b = append(b, k.crv...)
		b = append(b, `","kty":"OKP","x":"`...)
		b = append(b, k.x...)
	}
	b = append(b, `"}`...)
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// proofClaims holds the claims of a proof's payload that are checked: in
// raw as the JSON texts of their values (nil when absent), and decoded by
// check.
type proofClaims struct {
	jti, htm, htu, ath, nonce []byte
	iat                       time.Time
	raw                       struct{ jti, htm, htu, iat, ath, nonce []byte }
}

// readProofClaims parses a decoded JWT payload.
func readProofClaims(data []byte) (proofClaims, string) {
	var p proofClaims
	if reason := strictObject(data, reasonPayloadUTF8, reasonPayloadJSON, reasonPayloadObject, reasonPayloadDuplicate); reason != "" {
		return p, reason
	}
	for m := (members{data: data}); m.next(); {
		switch string(m.name) {
		case "jti":
			p.raw.jti = m.value
		case "htm":
			p.raw.htm = m.value
		case "htu":
			p.raw.htu = m.value
		case "iat":
			p.raw.iat = m.value
		case "ath":
			p.raw.ath = m.value
		case "nonce":
			p.raw.nonce = m.value
		}
	}
	return p, ""
}

// check checks the claims against c, in the order of RFC 9449 §4.3.
func (p *proofClaims) check(c proofCheck) string {
	var ok bool
	if p.jti, ok = jsonString(p.raw.jti); !ok {
		return reasonJTIMissing
	}
	switch {
	case len(p.jti) == 0:
		return reasonJTIEmpty
	case len(p.jti) > maxJTILength:
		return reasonJTITooLong
	}
	if p.htm, ok = jsonString(p.raw.htm); !ok || string(p.htm) != c.method {
		return reasonMethod
	}
	if p.htu, ok = jsonString(p.raw.htu); !ok {
		return reasonURL
	}
	if htu, err := normalizeHTU(string(p.htu)); err != nil || htu != c.htu {
		return reasonURL
	}
	if p.iat, ok = jsonNumericDate(p.raw.iat); !ok {
		return reasonIssuedAt
	}
	switch {
	case p.iat.Before(c.now.Add(-c.window)):
		return reasonIssuedAtPast
	case p.iat.After(c.now.Add(c.window)):
		return reasonIssuedAtFuture
	}
	if p.ath, ok = jsonString(p.raw.ath); !ok {
		return reasonAccessTokenHash
	}
	sum := sha256.Sum256([]byte(c.token))
	var want [43]byte
	base64.RawURLEncoding.Encode(want[:], sum[:])
	if subtle.ConstantTimeCompare(p.ath, want[:]) != 1 {
		return reasonAccessTokenHash
	}
	if p.raw.nonce != nil {
		if p.nonce, ok = jsonString(p.raw.nonce); !ok {
			return reasonNonce
		}
	}
	return ""
}

// strictObject checks that data is a JSON object as strict as an
// introspection answer: valid UTF-8, valid JSON, an object, and no object
// in it with a member name twice. It returns the reason given for the
// first that fails, or "".
func strictObject(data []byte, notUTF8, notJSON, notObject, duplicate string) string {
	if !utf8.Valid(data) {
		return notUTF8
	}
	if !json.Valid(data) {
		return notJSON
	}
	if data = bytes.TrimLeft(data, " \t\r\n"); data[0] != '{' {
		return notObject
	}
	if scanJSON(data).dup {
		return duplicate
	}
	return ""
}

// members walks the members of a JSON object, whose text data must be
// valid JSON and start with '{' after any white space.
type members struct {
	data  []byte
	i     int
	name  []byte // the current member's name, decoded
	value []byte // the JSON text of the current member's value
}

// next moves to the next member and reports whether there is one.
func (m *members) next() bool {
	if m.i == 0 {
		m.i = skipSpace(m.data, 0) + 1 // past '{'
	}
	m.i = skipSpace(m.data, m.i)
	if m.i < len(m.data) && m.data[m.i] == ',' {
		m.i = skipSpace(m.data, m.i+1)
	}
	if m.i >= len(m.data) || m.data[m.i] != '"' {
		return false
	}
	end := stringEnd(m.data, m.i)
	m.name = m.data[m.i+1 : end-1]
	if bytes.IndexByte(m.name, '\\') >= 0 {
		m.name = appendUnquoted(nil, m.name)
	}
	m.i = skipSpace(m.data, end)
	m.i = skipSpace(m.data, m.i+1) // past ':'
	start := m.i
	m.i = valueEnd(m.data, m.i)
	m.value = m.data[start:m.i]
	return true
}

// skipSpace returns the index of the first byte at or after i in data
// that is not JSON white space.
func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// valueEnd returns the index just past the JSON value that starts at i in
// data, which must be valid JSON.
func valueEnd(data []byte, i int) int {
	if i >= len(data) {
		return i
	}
	switch data[i] {
	case '"':
		return stringEnd(data, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				j = stringEnd(data, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return len(data)
	}
	for j := i; j < len(data); j++ {
		switch data[j] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return j
		}
	}
	return len(data)
}

// jsonString returns the text of the JSON string value, escapes decoded
// as encoding/json decodes them; false when value is not a string.
func jsonString(value []byte) ([]byte, bool) {
	if len(value) < 2 || value[0] != '"' {
		return nil, false
	}
	s := value[1 : len(value)-1]
	if bytes.IndexByte(s, '\\') >= 0 {
		s = appendUnquoted(make([]byte, 0, len(s)), s)
	}
	return s, true
}

// jsonNumericDate reads the JSON value as an RFC 7519 NumericDate: a
// number of seconds, integral or fractional, from 0 to the end of year
// 9999.
func jsonNumericDate(value []byte) (time.Time, bool) {
	// A JSON value other than a number, such as "1" or null, fails to parse.
	f, err := strconv.ParseFloat(string(value), 64)
	if err != nil || f < 0 || f > maxNumericDate {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true
}

// certificateThumbprint returns the RFC 8705 §3.1 x5t#S256 of the DER
// certificate der: the base64url SHA-256 of it, without padding.
func certificateThumbprint(der []byte) string {
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// The ways normalizeHTU refuses a URL. They hold no part of it.
var (
	errHTUNotURL    = errors.New("introspection: DPoP htu is not an absolute http or https URL")
	errHTUUserinfo  = errors.New("introspection: DPoP htu has userinfo")
	errHTUBadHost   = errors.New("introspection: DPoP htu has a host that is not a DNS name or an IP address")
	errHTUBadPort   = errors.New("introspection: DPoP htu has a port that is not a number from 1 to 65535")
	errHTUBadEscape = errors.New("introspection: DPoP htu has a character that a URL may not hold or a malformed percent-encoding")
)

// normalizeHTU returns the http or https URL raw in the normal form that
// RFC 3986 §6.2.2 (syntax-based) and §6.2.3 (scheme-based) normalisation
// gives, without its query and fragment, as RFC 9449 §4.3 compares htu:
//   - the scheme and the host in lower case; an IPv6 literal in its
//     RFC 5952 form;
//   - no port when it is the scheme's default (80 for http, 443 for https)
//     or empty, and no leading zeros in any other;
//   - "/" for an empty path; percent-encodings of unreserved characters
//     decoded, all others with upper-case hex digits;
//   - the dot segments "." and ".." removed (RFC 3986 §5.2.4).
//
// Everything else stays significant, such as a trailing slash, the case of
// the path and an empty segment. '[', ']', '^' and '|' in the path, which
// browsers send unencoded and Go's net/url may encode, are read as their
// percent-encodings. It refuses anything that is not an absolute http or
// https URL with a host: a relative reference, another scheme, userinfo, a
// character a URL may not hold (white space, non-ASCII, '"', '\\', '{'), a
// malformed percent-encoding, a percent-encoded host, an IPv6 zone, or a
// port that is not a number from 1 to 65535.
func normalizeHTU(raw string) (string, error) {
	// The query and the fragment are ignored (RFC 9449 §4.3), whatever
	// they hold.
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i]
	}
	colon := strings.IndexByte(raw, ':')
	if colon < 0 {
		return "", errHTUNotURL
	}
	scheme := raw[:colon]
	var defaultPort string
	switch {
	case asciiEqualFold(scheme, "https"):
		scheme, defaultPort = "https", "443"
	case asciiEqualFold(scheme, "http"):
		scheme, defaultPort = "http", "80"
	default:
		return "", errHTUNotURL
	}
	rest, ok := strings.CutPrefix(raw[colon+1:], "//")
	if !ok {
		return "", errHTUNotURL
	}
	authority, path := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	if strings.IndexByte(authority, '@') >= 0 {
		return "", errHTUUserinfo
	}
	host, port, err := normalizeHost(authority)
	if err != nil {
		return "", err
	}
	if port == defaultPort {
		port = ""
	}
	if !uriText(path, "/") {
		return "", errHTUBadEscape
	}
	var b strings.Builder
	b.Grow(len(scheme) + 3 + len(host) + 1 + len(port) + max(1, len(path)))
	b.WriteString(scheme)
	b.WriteString("://")
	b.WriteString(host)
	if port != "" {
		b.WriteByte(':')
		b.WriteString(port)
	}
	if path == "" {
		b.WriteByte('/')
	} else {
		b.WriteString(removeDotSegments(normalizePercent(path)))
	}
	return b.String(), nil
}

// normalizeHost splits an authority without userinfo into its host, in
// lower case (an IPv6 literal in RFC 5952 form, in brackets), and its
// port, without leading zeros ("" for none or an empty one).
func normalizeHost(authority string) (host, port string, err error) {
	hostEnd := strings.IndexByte(authority, ':')
	if strings.HasPrefix(authority, "[") {
		end := strings.IndexByte(authority, ']')
		if end < 0 {
			return "", "", errHTUBadHost
		}
		// An IPv6 literal; IPvFuture and zones (RFC 6874) are refused.
		addr, err := netip.ParseAddr(authority[1:end])
		if err != nil || !addr.Is6() || addr.Zone() != "" {
			return "", "", errHTUBadHost
		}
		host = "[" + addr.String() + "]"
		switch {
		case end+1 == len(authority):
			return host, "", nil
		case authority[end+1] != ':':
			return "", "", errHTUBadHost
		}
		hostEnd = end + 1
	} else {
		if hostEnd < 0 {
			hostEnd = len(authority)
		}
		name := authority[:hostEnd]
		if name == "" {
			return "", "", errHTUBadHost
		}
		for i := 0; i < len(name); i++ {
			if c := name[i]; !unreserved(c) && !subDelim(c) {
				return "", "", errHTUBadHost
			}
		}
		host = strings.ToLower(name)
		if hostEnd == len(authority) {
			return host, "", nil
		}
	}
	port = strings.TrimLeft(authority[hostEnd+1:], "0")
	if port == "" && len(authority) > hostEnd+1 {
		return "", "", errHTUBadPort // all zeros: port 0
	}
	if len(port) > 5 {
		return "", "", errHTUBadPort
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return "", "", errHTUBadPort
		}
	}
	if n, _ := strconv.Atoi(port); n > 65535 {
		return "", "", errHTUBadPort
	}
	return host, port, nil
}

// uriText reports whether s holds only RFC 3986 pchar characters, the
// characters in extra, well-formed percent-encodings, and the characters
// of lenientChars.
func uriText(s, extra string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return false
			}
			i += 2
		case unreserved(c) || subDelim(c) || c == ':' || c == '@' ||
			strings.IndexByte(extra, c) >= 0 || strings.IndexByte(lenientChars, c) >= 0:
		default:
			return false
		}
	}
	return true
}

// lenientChars are the characters that RFC 3986 does not allow in a path
// but that WHATWG URL parsers (browsers, Node.js) leave unencoded in one,
// while Go's net/url encodes some of them: normalizePercent reads each as
// its percent-encoding, so that "/a|b" and "/a%7Cb" are the same path.
const lenientChars = "[]^|"

// normalizePercent decodes the percent-encodings of unreserved characters
// in s, writes the hex digits of the others in upper case (RFC 3986
// §6.2.2.1, §6.2.2.2), and encodes the characters of lenientChars. s must
// pass uriText.
func normalizePercent(s string) string {
	if strings.IndexByte(s, '%') < 0 && !strings.ContainsAny(s, lenientChars) {
		return s
	}
	b := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '%':
			c = unhex(s[i+1])<<4 | unhex(s[i+2])
			if unreserved(c) {
				b = append(b, c)
			} else {
				b = append(b, '%', upperHex(s[i+1]), upperHex(s[i+2]))
			}
			i += 2
		case strings.IndexByte(lenientChars, c) >= 0:
			b = append(b, '%', "0123456789ABCDEF"[c>>4], "0123456789ABCDEF"[c&15])
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

// removeDotSegments removes the "." and ".." segments from an absolute
// path, as RFC 3986 §5.2.4 does.
func removeDotSegments(path string) string {
	if !strings.Contains(path, "/.") {
		return path
	}
	out := make([]byte, 0, len(path))
	in := path
	for in != "" {
		switch {
		case strings.HasPrefix(in, "/./"):
			in = in[2:]
		case in == "/.":
			in = "/"
		case strings.HasPrefix(in, "/../"):
			in = in[3:]
			out = out[:max(0, bytes.LastIndexByte(out, '/'))]
		case in == "/..":
			in = "/"
			out = out[:max(0, bytes.LastIndexByte(out, '/'))]
		default:
			end := strings.IndexByte(in[1:], '/') + 1
			if end == 0 {
				end = len(in)
			}
			out = append(out, in[:end]...)
			in = in[end:]
		}
	}
	return string(out)
}

// unreserved reports whether c is an RFC 3986 §2.3 unreserved character.
func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// subDelim reports whether c is an RFC 3986 §2.2 sub-delim.
func subDelim(c byte) bool {
	return strings.IndexByte("!$&'()*+,;=", c) >= 0
}

// isHex reports whether c is a hexadecimal digit.
func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// unhex returns the value of the hexadecimal digit c.
func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}

// upperHex returns the hexadecimal digit c in upper case.
func upperHex(c byte) byte {
	if 'a' <= c && c <= 'f' {
		return c - 'a' + 'A'
	}
	return c
}
