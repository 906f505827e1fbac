package introspection

import (
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// prover makes DPoP proofs for tests of the middleware: claims for a
// request, signed by a fresh P-256 key through the proofSigner of the proof
// tests.
type prover struct {
	*proofSigner
	thumb string // RFC 7638 thumbprint of the key
	now   func() time.Time
	n     atomic.Int64
}

func newProver(t testing.TB, now func() time.Time) *prover {
	t.Helper()
	s := ecSigner("ES256", elliptic.P256(), rand.Text())
	if now == nil {
		now = time.Now
	}
	return &prover{proofSigner: s, thumb: thumbprintOf(s.jwk), now: now}
}

// proof returns a proof for a request of method to htu carrying token,
// after edit, if not nil, changes its header and claims.
func (p *prover) proof(t testing.TB, method, htu, token string, edit func(header, claims map[string]any)) string {
	t.Helper()
	ath := sha256.Sum256([]byte(token))
	header := p.header()
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
	return p.signProof(proofJSON(header), proofJSON(claims))
}
