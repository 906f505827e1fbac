package introspection

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// prover makes DPoP proofs with one P-256 key, for tests of the
// middleware.
type prover struct {
	key   *ecdsa.PrivateKey
	jwk   map[string]any
	thumb string // RFC 7638 thumbprint of jwk
	now   func() time.Time
	n     atomic.Int64
}

func newProver(t testing.TB, now func() time.Time) *prover {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	pub, err := key.PublicKey.Bytes() // 0x04 || X || Y
	require.NoError(t, err)
	b64 := base64.RawURLEncoding.EncodeToString
	x, y := b64(pub[1:33]), b64(pub[33:])
	sum := sha256.Sum256(fmt.Appendf(nil, `{"crv":"P-256","kty":"EC","x":%q,"y":%q}`, x, y))
	if now == nil {
		now = time.Now
	}
	return &prover{
		key:   key,
		jwk:   map[string]any{"kty": "EC", "crv": "P-256", "x": x, "y": y},
		thumb: b64(sum[:]),
		now:   now,
	}
}

// proof returns a proof for a request of method to htu carrying token,
// after edit, if not nil, changes its header and claims.
func (p *prover) proof(t testing.TB, method, htu, token string, edit func(header, claims map[string]any)) string {
	t.Helper()
	ath := sha256.Sum256([]byte(token))
	header := map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": p.jwk}
	claims := map[string]any{
		"jti": fmt.Sprintf("proof-%d", p.n.Add(1)),
		"htm": method,
		"htu": htu,
		"iat": p.now().Unix(),
		"ath": base64.RawURLEncoding.EncodeToString(ath[:]),
	}
	if edit != nil {
		edit(header, claims)
	}
	h, err := json.Marshal(header)
	require.NoError(t, err)
	c, err := json.Marshal(claims)
	require.NoError(t, err)
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	digest := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, p.key, digest[:])
	require.NoError(t, err)
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}
