package introspection

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"
)

// benchProofAlgs are the algorithms the DPoP benchmarks measure.
var benchProofAlgs = []string{"ES256", "EdDSA", "RS256"}

// BenchmarkDPoPProof measures verifyProof on a valid proof.
func BenchmarkDPoPProof(b *testing.B) {
	for _, alg := range benchProofAlgs {
		proof := testProofSigners()[alg].proof(nil, nil)
		c := proofTestCheck()
		b.Run(alg, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := verifyProof(proof, c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDPoPBaseline measures, on the same proofs as
// BenchmarkDPoPProof, only the work no verifier of a DPoP proof can skip:
// decoding the three parts, parsing header and claims into maps, making
// the public key of the jwk and verifying the signature.
func BenchmarkDPoPBaseline(b *testing.B) {
	for _, alg := range benchProofAlgs {
		proof := testProofSigners()[alg].proof(nil, nil)
		b.Run(alg, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := baselineProof(proof); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// baselineProof decodes the proof raw with the standard library alone and
// verifies its signature with the key of its jwk, checking nothing else. It
// returns the header and the claims. The fuzz test uses it as a second
// opinion on the proofs verifyProof accepts.
func baselineProof(raw string) (header, claims map[string]any, err error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, nil, errors.New("not three parts")
	}
	var decoded [3][]byte
	for i, p := range parts {
		if decoded[i], err = base64.RawURLEncoding.DecodeString(p); err != nil {
			return nil, nil, err
		}
	}
	if err := json.Unmarshal(decoded[0], &header); err != nil {
		return nil, nil, err
	}
	if err := json.Unmarshal(decoded[1], &claims); err != nil {
		return nil, nil, err
	}
	jwk, _ := header["jwk"].(map[string]any)
	member := func(name string) []byte {
		s, _ := jwk[name].(string)
		b, _ := base64.RawURLEncoding.DecodeString(s)
		return b
	}
	input := []byte(raw[:len(parts[0])+1+len(parts[1])])
	sig := decoded[2]
	valid := false
	switch header["alg"] {
	case "ES256", "ES384", "ES512":
		curve, digest := elliptic.P256(), sha256.Sum256(input)
		d := digest[:]
		switch header["alg"] {
		case "ES384":
			curve = elliptic.P384()
			s := sha512.Sum384(input)
			d = s[:]
		case "ES512":
			curve = elliptic.P521()
			s := sha512.Sum512(input)
			d = s[:]
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, member("x")...), member("y")...))
		if err != nil {
			return nil, nil, err
		}
		half := len(sig) / 2
		valid = ecdsa.Verify(pub, d, new(big.Int).SetBytes(sig[:half]), new(big.Int).SetBytes(sig[half:]))
	case "RS256", "PS256":
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(member("n")), E: int(new(big.Int).SetBytes(member("e")).Int64())}
		d := sha256.Sum256(input)
		if header["alg"] == "PS256" {
			err = rsa.VerifyPSS(pub, crypto.SHA256, d[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		} else {
			err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig)
		}
		valid = err == nil
	case "EdDSA", "Ed25519":
		pub := member("x")
		valid = len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, input, sig)
	}
	if !valid {
		return nil, nil, errors.New("signature does not verify")
	}
	return header, claims, nil
}
