package introspectiontest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The tests sign client assertions with this code of their own, so that the
// server's verifier is checked against an independent signer.

var b64 = base64.RawURLEncoding.EncodeToString

// testSigner signs compact JWS with one algorithm and one key: an HMAC
// secret for HS256, else a crypto.Signer.
type testSigner struct {
	alg    string
	secret []byte
	key    crypto.Signer
}

func (s testSigner) sign(t *testing.T, input string) []byte {
	t.Helper()
	digest := func(h hash.Hash) []byte { h.Write([]byte(input)); return h.Sum(nil) }
	switch s.alg {
	case "HS256":
		m := hmac.New(sha256.New, s.secret)
		m.Write([]byte(input))
		return m.Sum(nil)
	case "RS256":
		sig, err := rsa.SignPKCS1v15(rand.Reader, s.key.(*rsa.PrivateKey), crypto.SHA256, digest(sha256.New()))
		require.NoError(t, err)
		return sig
	case "PS256":
		sig, err := rsa.SignPSS(rand.Reader, s.key.(*rsa.PrivateKey), crypto.SHA256, digest(sha256.New()),
			&rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		require.NoError(t, err)
		return sig
	case "ES256", "ES384":
		k := s.key.(*ecdsa.PrivateKey)
		var d []byte
		if s.alg == "ES256" {
			d = digest(sha256.New())
		} else {
			d = digest(sha512.New384())
		}
		r, ss, err := ecdsa.Sign(rand.Reader, k, d)
		require.NoError(t, err)
		size := (k.Curve.Params().BitSize + 7) / 8
		sig := make([]byte, 2*size)
		r.FillBytes(sig[:size])
		ss.FillBytes(sig[size:])
		return sig
	case "EdDSA":
		return ed25519.Sign(s.key.(ed25519.PrivateKey), []byte(input))
	}
	t.Fatalf("testSigner: no algorithm %q", s.alg)
	return nil
}

// jws returns header.claims.signature with the signer's alg set in header
// (unless header sets one itself).
func (s testSigner) jws(t *testing.T, header, claims map[string]any) string {
	t.Helper()
	h := map[string]any{"alg": s.alg}
	for k, v := range header {
		h[k] = v
	}
	hb, err := json.Marshal(h)
	require.NoError(t, err)
	cb, err := json.Marshal(claims)
	require.NoError(t, err)
	input := b64(hb) + "." + b64(cb)
	return input + "." + b64(s.sign(t, input))
}

var jtiCounter atomic.Int64

// freshJTI returns a jti never returned before.
func freshJTI() string { return fmt.Sprintf("jti-%d-%d", time.Now().UnixNano(), jtiCounter.Add(1)) }

// assertionClaims returns valid client assertion claims for id and aud at now.
func assertionClaims(id, aud string, now time.Time) map[string]any {
	return map[string]any{
		"iss": id, "sub": id, "aud": aud, "jti": freshJTI(),
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
	}
}

// must returns v, or panics with err: key generation does not fail.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func newRSAKey() *rsa.PrivateKey { return must(rsa.GenerateKey(rand.Reader, 2048)) }

func newECKey(c elliptic.Curve) *ecdsa.PrivateKey { return must(ecdsa.GenerateKey(c, rand.Reader)) }

func newEdKey() ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	return must(k, err)
}
