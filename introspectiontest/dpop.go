package introspectiontest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
)

// DPoPKey is a client's DPoP key, an ECDSA P-256 key that signs ES256
// proofs (RFC 9449 §4), for tests of servers that accept DPoP-bound
// tokens. It is safe for concurrent use.
type DPoPKey struct {
	key   *ecdsa.PrivateKey
	jwk   map[string]string
	thumb string
	n     atomic.Uint64
}

// NewDPoPKey returns a new random key.
func NewDPoPKey() *DPoPKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic("introspectiontest: " + err.Error())
	}
	pub, err := key.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		panic("introspectiontest: " + err.Error())
	}
	b64 := base64.RawURLEncoding.EncodeToString
	x, y := b64(pub[1:33]), b64(pub[33:])
	sum := sha256.Sum256(fmt.Appendf(nil, `{"crv":"P-256","kty":"EC","x":%q,"y":%q}`, x, y))
	return &DPoPKey{
		key:   key,
		jwk:   map[string]string{"kty": "EC", "crv": "P-256", "x": x, "y": y},
		thumb: b64(sum[:]),
	}
}

// Thumbprint returns the key's RFC 7638 SHA-256 JWK thumbprint, the cnf.jkt
// of tokens bound to it: pass it as [TokenOptions].DPoPKey.
func (k *DPoPKey) Thumbprint() string { return k.thumb }

// Proof returns a proof for one request: method and url (htu; its query
// and fragment are left out, as RFC 9449 §4.2 asks), with ath for token,
// iat now and a jti never used before.
func (k *DPoPKey) Proof(method, url, token string) string {
	return k.ProofWith(method, url, token, time.Now(), "")
}

// ProofWith is Proof with the given iat and, when not empty, nonce.
func (k *DPoPKey) ProofWith(method, url, token string, iat time.Time, nonce string) string {
	if i := strings.IndexAny(url, "?#"); i >= 0 {
		url = url[:i]
	}
	ath := sha256.Sum256([]byte(token))
	claims := map[string]any{
		"jti": fmt.Sprintf("%s-%d", k.thumb[:8], k.n.Add(1)),
		"htm": method,
		"htu": url,
		"iat": iat.Unix(),
		"ath": base64.RawURLEncoding.EncodeToString(ath[:]),
	}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	h, _ := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": k.jwk})
	c, _ := json.Marshal(claims)
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	digest := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, k.key, digest[:])
	if err != nil {
		panic("introspectiontest: " + err.Error())
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}
