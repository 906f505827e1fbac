package introspectiontest

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
	"math"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// jwtBearer is the client_assertion_type of a JWT client assertion
// (RFC 7523 §2.2).
const jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Bounds of client assertions.
const (
	// maxAssertionSize is the longest client assertion taken, in bytes.
	maxAssertionSize = 8 << 10
	// maxAssertionLifetime is how far ahead of the server's clock a client
	// assertion's exp may lie.
	maxAssertionLifetime = 5 * time.Minute
	// assertionSkew is how far ahead of the server's clock a client
	// assertion's iat and nbf may lie.
	assertionSkew = 30 * time.Second
	// maxSeenJTIs is how many unexpired client assertions' jti values the
	// server remembers. Past it, assertions are refused until some expire.
	maxSeenJTIs = 1 << 20
)

// secretAlg is the algorithm of client_secret_jwt; keyAlgList those of
// private_key_jwt, in the order the metadata lists them.
const secretAlg = "HS256"

var keyAlgList = []string{"RS256", "PS256", "ES256", "ES384", "EdDSA"}

// authenticateAssertion authenticates a client by its RFC 7523 §2.2
// assertion, client_secret_jwt or private_key_jwt, and returns its id.
// The header's alg is checked against the allow-list before the payload
// is read; the signature, with the client's own secret or key, before the
// claims are trusted.
func (s *Server) authenticateAssertion(form url.Values) (string, *failure) {
	typ, a := form.Get("client_assertion_type"), form.Get("client_assertion")
	switch {
	case typ == "":
		return "", &failure{http.StatusBadRequest, "invalid_request", "client_assertion needs client_assertion_type"}
	case a == "":
		return "", &failure{http.StatusBadRequest, "invalid_request", "client_assertion_type needs client_assertion"}
	case typ != jwtBearer:
		return "", invalidClient("unsupported client_assertion_type")
	case len(a) > maxAssertionSize:
		return "", invalidClient("client assertion is too large (more than %d bytes)", maxAssertionSize)
	}
	parts := strings.Split(a, ".")
	if len(parts) != 3 {
		return "", invalidClient("client assertion is not a compact JWS")
	}
	hb, err := decodeSegment(parts[0])
	if err != nil {
		return "", invalidClient("client assertion header: %v", err)
	}
	header, err := parseObject(hb)
	if err != nil {
		return "", invalidClient("client assertion header: %v", err)
	}
	alg, _ := header["alg"].(string)
	var method string
	switch {
	case alg == secretAlg:
		method = methodSecretJWT
	case slices.Contains(keyAlgList, alg):
		method = methodKeyJWT
	default:
		return "", invalidClient("client assertion alg is not one of HS256, %s", strings.Join(keyAlgList, ", "))
	}
	if _, ok := header["crit"]; ok {
		return "", invalidClient("client assertion has a crit header, which the server does not understand")
	}
	if !s.accepts(method) {
		return "", invalidClient("client authentication method %s is not accepted", method)
	}
	sig, err := decodeSegment(parts[2])
	if err != nil {
		return "", invalidClient("client assertion signature: %v", err)
	}
	cb, err := decodeSegment(parts[1])
	if err != nil {
		return "", invalidClient("client assertion claims: %v", err)
	}
	claims, err := parseObject(cb)
	if err != nil {
		return "", invalidClient("client assertion claims: %v", err)
	}
	iss, _ := claims["iss"].(string)
	sub, _ := claims["sub"].(string)
	if iss == "" || iss != sub {
		return "", invalidClient("client assertion iss and sub must both be the client id")
	}
	if _, ok := form["client_id"]; ok && form.Get("client_id") != iss {
		return "", invalidClient("client assertion iss is not the client_id sent")
	}
	id := iss

	s.mu.Lock()
	secret, hasSecret := s.clients[id]
	key, hasKey := s.keyClients[id]
	now := s.now()
	audiences := []string{s.Issuer, s.TokenURL, s.IntrospectionURL}
	s.mu.Unlock()
	input := []byte(parts[0] + "." + parts[1])
	switch {
	case !hasSecret && !hasKey:
		return "", invalidClient("unknown client")
	case method == methodSecretJWT && !hasSecret:
		return "", invalidClient("the client has no secret to sign client_secret_jwt with")
	case method == methodSecretJWT && len(secret) < minSecretJWTSize:
		return "", invalidClient("the client's secret is shorter than %d bytes, too short for client_secret_jwt", minSecretJWTSize)
	case method == methodKeyJWT && !hasKey:
		return "", invalidClient("the client has no key for private_key_jwt")
	case method == methodKeyJWT && !slices.Contains(keyAlgs(key), alg):
		return "", invalidClient("client assertion alg %s does not fit the client's key", alg)
	}
	if !verifySignature(alg, key, secret, input, sig) {
		return "", invalidClient("client assertion signature is invalid")
	}

	if !audienceMatches(claims["aud"], audiences) {
		return "", invalidClient("client assertion aud names neither the issuer nor an endpoint of this server")
	}
	exp, ok := numericDate(claims["exp"])
	switch {
	case !ok:
		return "", invalidClient("client assertion exp is missing or not a NumericDate")
	case !now.Before(exp):
		return "", invalidClient("client assertion has expired")
	case exp.Sub(now) > maxAssertionLifetime:
		return "", invalidClient("client assertion exp is too far ahead (more than %v)", maxAssertionLifetime)
	}
	for _, name := range []string{"iat", "nbf"} {
		v, present := claims[name]
		if !present {
			continue
		}
		t, ok := numericDate(v)
		if !ok {
			return "", invalidClient("client assertion %s is not a NumericDate", name)
		}
		if t.Sub(now) > assertionSkew {
			return "", invalidClient("client assertion %s is in the future", name)
		}
	}
	jti, _ := claims["jti"].(string)
	if jti == "" {
		return "", invalidClient("client assertion has no jti")
	}
	s.mu.Lock()
	err = s.jtis.use(id, jti, exp, now)
	s.mu.Unlock()
	switch {
	case errors.Is(err, errJTIMemoryFull):
		return "", &failure{http.StatusServiceUnavailable, "temporarily_unavailable", "too many unexpired client assertions to remember; try again later"}
	case err != nil:
		return "", invalidClient("client assertion jti was used before")
	}
	return id, nil
}

// decodeSegment decodes one part of a compact JWS: base64url without
// padding, every character from its alphabet (the decoder would skip line
// breaks), unused bits zero.
func decodeSegment(seg string) ([]byte, error) {
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return nil, errors.New("not base64url without padding")
		}
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(seg)
	if err != nil {
		return nil, errors.New("not base64url without padding")
	}
	return b, nil
}

// parseObject decodes a JSON object, refusing duplicate member names and
// anything after it. Numbers are json.Number.
func parseObject(b []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	m := make(map[string]any)
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return nil, errors.New("not a JSON object")
		}
		name, _ := t.(string)
		if _, dup := m[name]; dup {
			return nil, errors.New("duplicate member " + strconvQuote(name))
		}
		var v any
		if err := d.Decode(&v); err != nil {
			return nil, errors.New("not a JSON object")
		}
		m[name] = v
	}
	if t, err := d.Token(); err != nil || t != json.Delim('}') {
		return nil, errors.New("not a JSON object")
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return m, nil
}

// strconvQuote quotes a member name for an error, cut short if long.
func strconvQuote(s string) string {
	if len(s) > 32 {
		s = s[:32] + "..."
	}
	return fmt.Sprintf("%q", s)
}

// numericDate reads an RFC 7519 NumericDate.
func numericDate(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f < 0 || f >= 1<<53 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// audienceMatches reports whether aud, a string or an array of strings,
// holds one of want.
func audienceMatches(aud any, want []string) bool {
	var list []string
	switch a := aud.(type) {
	case string:
		list = []string{a}
	case []any:
		for _, v := range a {
			s, ok := v.(string)
			if !ok {
				return false
			}
			list = append(list, s)
		}
	}
	for _, a := range list {
		if a != "" && slices.Contains(want, a) {
			return true
		}
	}
	return false
}

// verifySignature checks sig over input by alg: HS256 with secret, the
// others with key, whose type must fit alg.
func verifySignature(alg string, key crypto.PublicKey, secret string, input, sig []byte) bool {
	h256 := sha256.Sum256(input)
	switch alg {
	case "HS256":
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(input)
		return hmac.Equal(m.Sum(nil), sig)
	case "RS256":
		k, ok := key.(*rsa.PublicKey)
		return ok && rsa.VerifyPKCS1v15(k, crypto.SHA256, h256[:], sig) == nil
	case "PS256":
		k, ok := key.(*rsa.PublicKey)
		// RFC 7518 §3.5: the salt is as long as the hash.
		return ok && rsa.VerifyPSS(k, crypto.SHA256, h256[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}) == nil
	case "ES256":
		return verifyECDSA(key, h256[:], sig)
	case "ES384":
		h384 := sha512.Sum384(input)
		return verifyECDSA(key, h384[:], sig)
	case "EdDSA":
		k, ok := key.(ed25519.PublicKey)
		return ok && len(sig) == ed25519.SignatureSize && ed25519.Verify(k, input, sig)
	}
	return false
}

// verifyECDSA checks a JWS ECDSA signature: R and S as fixed-length
// big-endian integers, one after the other (RFC 7518 §3.4).
func verifyECDSA(key crypto.PublicKey, digest, sig []byte) bool {
	k, ok := key.(*ecdsa.PublicKey)
	if !ok {
		return false
	}
	size := (k.Curve.Params().BitSize + 7) / 8
	if len(sig) != 2*size {
		return false
	}
	r := new(big.Int).SetBytes(sig[:size])
	s := new(big.Int).SetBytes(sig[size:])
	return ecdsa.Verify(k, digest, r, s)
}

var (
	errJTIReplayed   = errors.New("introspectiontest: jti was used before")
	errJTIMemoryFull = errors.New("introspectiontest: too many unexpired jti values")
)

// jtiMemory remembers the jti of each client assertion used until the
// assertion expires (RFC 7523 §3), at most max of them. It is guarded by
// the Server's mu.
type jtiMemory struct {
	max  int
	seen map[[16]byte]time.Time // hash of client id and jti to exp
}

func newJTIMemory(max int) *jtiMemory {
	return &jtiMemory{max: max, seen: make(map[[16]byte]time.Time)}
}

// use records the jti of an assertion by clientID that expires at exp. It
// fails if the jti is remembered from an unexpired assertion, or if max
// unexpired ones are remembered: never is a live one forgotten.
func (m *jtiMemory) use(clientID, jti string, exp, now time.Time) error {
	sum := sha256.Sum256([]byte(strconv.Itoa(len(clientID)) + ":" + clientID + jti))
	k := [16]byte(sum[:16])
	if e, ok := m.seen[k]; ok && now.Before(e) {
		return errJTIReplayed
	}
	if _, ok := m.seen[k]; !ok && len(m.seen) >= m.max {
		for key, e := range m.seen {
			if !now.Before(e) {
				delete(m.seen, key)
			}
		}
		if len(m.seen) >= m.max {
			return errJTIMemoryFull
		}
	}
	m.seen[k] = exp
	return nil
}

func (m *jtiMemory) len() int { return len(m.seen) }
