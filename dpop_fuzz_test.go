package introspection

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fuzzProofSigners sign the header and payload a fuzzed input gives, so
// that the fuzzer reaches the checks past the signature. They are the fast
// ones; RSA keys are reached through the proof input.
var fuzzProofSigners = []string{"ES256", "EdDSA", "Ed25519"}

// FuzzDPoPProof holds verifyProof to two promises for any input: it never
// panics and refuses with one of its fixed reasons, which never quote the
// proof; and a proof it accepts passes, read again by encoding/json and
// verified again by the standard library alone, every check of RFC 9449
// §4.3, and verifies again to the same result.
//
// Each input is a proof, tried as it is, and a header and a payload, tried
// as a proof signed by one of fuzzProofSigners.
func FuzzDPoPProof(f *testing.F) {
	signers := testProofSigners()
	for i, alg := range DefaultDPoPAlgorithms {
		s := signers[alg]
		f.Add(s.proof(nil, nil), proofJSON(s.header()), proofJSON(proofTestClaims()), uint8(i))
	}
	es := signers["ES256"]
	headerJSON := validHeader(es, "")
	for _, extra := range []string{
		`,"nonce":"n-1"`, `,"nonce":7`, `,"iat":1.5`, `,"htm":"GET"`, `,"x":"\ud800"`, `,"x":{"y":[1,{"z":null}]}`,
	} {
		f.Add("", []byte(headerJSON), []byte(validClaims(extra)), uint8(0))
	}
	for _, tc := range proofRejectionCases() {
		f.Add(tc.build(f), []byte(headerJSON), []byte(validClaims("")), uint8(0))
	}
	c := proofTestCheck()
	f.Fuzz(func(t *testing.T, proof string, header, payload []byte, signer uint8) {
		checkFuzzedProof(t, proof, c)
		if len(header)+len(payload) <= MaxDPoPProofSize {
			s := signers[fuzzProofSigners[int(signer)%len(fuzzProofSigners)]]
			checkFuzzedProof(t, s.signProof(header, payload), c)
		}
	})
}

// checkFuzzedProof verifies proof against c and holds the result to the
// promises of FuzzDPoPProof.
func checkFuzzedProof(t *testing.T, proof string, c proofCheck) {
	t.Helper()
	got, err := verifyProof(proof, c)
	if err != nil {
		var pe *DPoPProofError
		require.ErrorAs(t, err, &pe)
		require.Contains(t, proofReasons, pe.Reason)
		require.Equal(t, dpopProof{}, got)
		if len(proof) >= 16 {
			require.NotContains(t, err.Error(), proof)
		}
		return
	}
	again, err := verifyProof(proof, c)
	require.NoError(t, err)
	require.Equal(t, got, again)

	header, claims, err := baselineProof(proof)
	require.NoError(t, err, "the standard library alone verifies the signature")
	assert.Equal(t, "dpop+jwt", header["typ"])
	alg, _ := header["alg"].(string)
	assert.True(t, c.algs[alg], "alg %q", alg)
	assert.Contains(t, DefaultDPoPAlgorithms, alg)
	assert.NotContains(t, header, "crit")
	jwk, ok := header["jwk"].(map[string]any)
	require.True(t, ok)
	for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"} {
		assert.NotContains(t, jwk, private)
	}
	assert.Equal(t, proofAlgs[alg].kty, jwk["kty"])
	assert.Equal(t, thumbprintOf(jwk), got.thumbprint)

	jti, _ := claims["jti"].(string)
	assert.NotEmpty(t, jti)
	assert.LessOrEqual(t, len(jti), maxJTILength)
	assert.Equal(t, jti, got.jti)
	assert.Equal(t, c.method, claims["htm"])
	htu, _ := claims["htu"].(string)
	normal, err := normalizeHTU(htu)
	assert.NoError(t, err)
	assert.Equal(t, c.htu, normal)
	iat, ok := claims["iat"].(float64)
	require.True(t, ok, "iat is a number")
	assert.InDelta(t, float64(c.now.Unix()), iat, c.window.Seconds())
	assert.WithinDuration(t, time.Unix(0, int64(iat*1e9)), got.iat, time.Microsecond)
	assert.Equal(t, proofTestATH, claims["ath"])
	if n, present := claims["nonce"]; present {
		assert.Equal(t, n, got.nonce)
	} else {
		assert.Empty(t, got.nonce)
	}
	assert.False(t, strings.ContainsAny(got.thumbprint, "=+/"))
}
