package introspection

import (
	"context"
	"crypto/rand"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReviewDPoPClockPanicIsRecovered holds the middleware to the
// Verifier's promise that a panic in Settings.Now is recovered, counted in
// Stats.Panics and fails the request (503), also where the middleware reads
// the clock itself: to check a proof's iat and nonce, and to make a
// DPoP-Nonce.
func TestReviewDPoPClockPanicIsRecovered(t *testing.T) {
	keys := [][]byte{[]byte("0123456789abcdef0123456789abcdef")}
	tests := []struct {
		name    string
		edit    func(*Settings)
		request func(t *testing.T, d *dpopSetup) *http.Request
	}{
		{"DPoP request", nil, func(t *testing.T, d *dpopSetup) *http.Request {
			return dpopRequest("GET", "DPoP "+d.bound, d.key.proof(t, "GET", dpopTarget, d.bound, nil))
		}},
		{"Bearer request with nonces on", func(s *Settings) { s.DPoPNonceKeys = keys }, func(t *testing.T, d *dpopSetup) *http.Request {
			return dpopRequest("GET", "Bearer "+d.unbound)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var broken atomic.Bool
			d := newDPoPSetup(t, func(s *Settings) {
				if tc.edit != nil {
					tc.edit(s)
				}
				clock := s.Now
				s.Now = func() time.Time {
					if broken.Load() {
						panic("clock failed")
					}
					return clock()
				}
			})
			r := tc.request(t, d)
			broken.Store(true)
			var w *httptest.ResponseRecorder
			require.NotPanics(t, func() { w = d.serve(r) }, "a panicking Settings.Now escapes the middleware")
			assert.Equal(t, http.StatusServiceUnavailable, w.Code)
			assert.Nil(t, d.seen)
			assert.Equal(t, uint64(1), d.v.Stats().Panics)
		})
	}
}

// TestReviewDPoPHTUOfABrowserPath shows that a proof whose htu is the URL
// as a WHATWG client (browser, Node.js) writes it, which leaves '(' and '|'
// unencoded in a path and sends the path so, is accepted for that request.
// normalizeHTU promises that '|' "which browsers send unencoded and Go's
// net/url may encode" is read as its percent-encoding; but when it does,
// Go's net/url encodes the sub-delims "!'()*" of the path too, which RFC
// 3986 does not make equal to their encodings.
func TestReviewDPoPHTUOfABrowserPath(t *testing.T) {
	for _, path := range []string{"/a(b|c", "/it's^here"} {
		t.Run(path, func(t *testing.T) {
			d := newDPoPSetup(t, nil)
			target := "http://mcp.example" + path
			r := httptest.NewRequest("GET", target, nil)
			r.Header.Set("Authorization", "DPoP "+d.bound)
			r.Header.Set("DPoP", d.key.proof(t, "GET", target, d.bound, nil))
			w := d.serve(r)
			assert.Equal(t, http.StatusNoContent, w.Code, "challenges: %q", w.Header().Values("WWW-Authenticate"))
		})
	}
}

// TestReviewDPoPHTUQueryIsIgnored holds verifyProof to its doc and RFC 9449
// §4.3 (9): htu's "query and fragment are ignored". A query or fragment
// that a WHATWG URL serialiser leaves as it is ('{', '}', '`', '#' in a
// fragment) makes the proof refused instead.
func TestReviewDPoPHTUQueryIsIgnored(t *testing.T) {
	es256 := testProofSigners()["ES256"]
	for _, htu := range []string{
		proofTestURL + "?filter={a}",
		proofTestURL + "?q=`x`",
		proofTestURL + "#a#b",
	} {
		t.Run(htu, func(t *testing.T) {
			_, err := verifyProof(es256.proof(nil, withMember("htu", htu)), proofTestCheck())
			assert.NoError(t, err)
		})
	}
}

// TestReviewDPoPReplayAcrossReplicasWithinLeeway shows replay protection
// across replicas whose clocks differ by no more than Settings.Leeway, "the
// clock skew allowed": a proof that replica A accepted is refused by
// replica B that shares A's ReplayStore. The TTL A gives the store, iat +
// window - now (at least a second), ends while B, whose clock is behind,
// still takes the proof's iat as within the window.
func TestReviewDPoPReplayAcrossReplicasWithinLeeway(t *testing.T) {
	const skew = 2 * time.Second
	clockA := newFakeClock()
	clockB := newFakeClock()
	clockB.Advance(-skew)
	store := newMemoryReplayStore(1024, clockA.Now) // a shared store, on A's time
	d := &dpopSetup{as: newAS(t, clockA), key: newProver(t, clockA.Now)}
	replica := func(clock *fakeClock) http.Handler {
		v := newVerifier(t, d.as.IntrospectionURL, clock, func(s *Settings) {
			s.Leeway = skew
			s.ReplayStore = store
		})
		return RequireBearerToken(v, nil)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusNoContent)
		}))
	}
	a, b := replica(clockA), replica(clockB)
	d.bound = d.as.Issue(introspectiontest.TokenOptions{DPoPKey: d.key.thumb})

	// A proof made a second inside A's window (window plus leeway).
	early := func(_, c map[string]any) {
		c["iat"] = clockA.Now().Add(-DefaultDPoPProofWindow - skew + time.Second).Unix()
	}
	proof := d.key.proof(t, "GET", dpopTarget, d.bound, early)
	w := httptest.NewRecorder()
	a.ServeHTTP(w, dpopRequest("GET", "DPoP "+d.bound, proof))
	require.Equal(t, http.StatusNoContent, w.Code)

	clockA.Advance(1500 * time.Millisecond)
	clockB.Advance(1500 * time.Millisecond)
	w = httptest.NewRecorder()
	b.ServeHTTP(w, dpopRequest("GET", "DPoP "+d.bound, proof))
	assert.Equal(t, http.StatusUnauthorized, w.Code, "replica B accepted a proof replica A accepted 1.5s before")
}

// TestReviewDPoPAttackerKeyCostIsBounded holds the RSA bounds to what they
// are for ("longer ones only cost time"): the signature check runs before
// the token is introspected, so any client, with any token, picks the key
// it costs. A key that costs tens of ES256 verifications (an 8192-bit
// modulus, an exponent of 31 bits) is refused before the signature is
// checked.
func TestReviewDPoPAttackerKeyCostIsBounded(t *testing.T) {
	for _, tc := range []struct {
		name string
		bits int
		e    int64
	}{
		{"8192-bit modulus", 8192, 65537},
		{"4096-bit modulus, exponent 2^31-1", 4096, 1<<31 - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verifyProof(attackerRSAProof(t, tc.bits, tc.e), proofTestCheck())
			var pe *DPoPProofError
			require.True(t, errors.As(err, &pe), "%v", err)
			assert.Contains(t, []string{reasonRSASize, reasonRSAExponent}, pe.Reason,
				"the key was used for a modular exponentiation first")
		})
	}
}

// attackerRSAProof returns a proof with an RSA key of an odd modulus of
// bits bits and exponent e, and a random signature of the modulus' length:
// it can fail only at the signature, after the modular exponentiation.
func attackerRSAProof(t *testing.T, bits int, e int64) string {
	t.Helper()
	n := make([]byte, bits/8)
	_, err := rand.Read(n)
	require.NoError(t, err)
	n[0] |= 0x80
	n[len(n)-1] |= 1
	sig := make([]byte, bits/8)
	_, err = rand.Read(sig)
	require.NoError(t, err)
	sig[0] = 1
	h := map[string]any{"typ": "dpop+jwt", "alg": "RS256", "jwk": map[string]any{
		"kty": "RSA", "n": b64url(n), "e": b64url(big.NewInt(e).Bytes()),
	}}
	return b64url(proofJSON(h)) + "." + b64url(proofJSON(proofTestClaims())) + "." + b64url(sig)
}

// TestReviewDPoPNonceOnEveryDPoPAnswer holds the middleware to "DPoP-Nonce
// on use_dpop_nonce answers and on every answer to a DPoP request when
// nonces are on": also the 413 and 500 answers an Operation causes.
func TestReviewDPoPNonceOnEveryDPoPAnswer(t *testing.T) {
	keys := [][]byte{[]byte("0123456789abcdef0123456789abcdef")}
	for _, tc := range []struct {
		name   string
		op     OperationFunc
		status int
	}{
		{"request too large", func(*http.Request) (Operation, error) { return Operation{}, ErrRequestTooLarge }, http.StatusRequestEntityTooLarge},
		{"operation panics", func(*http.Request) (Operation, error) { panic("operation") }, http.StatusInternalServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDPoPSetup(t, func(s *Settings) { s.DPoPNonceKeys = keys })
			h := RequireBearerToken(d.v, &MiddlewareOptions{Operation: tc.op})(http.NotFoundHandler())
			nonce := d.v.dp.nonces.current(d.v.now())
			withNonce := func(_, c map[string]any) { c["nonce"] = nonce }
			w := httptest.NewRecorder()
			h.ServeHTTP(w, dpopRequest("GET", "DPoP "+d.bound, d.key.proof(t, "GET", dpopTarget, d.bound, withNonce)))
			require.Equal(t, tc.status, w.Code)
			assert.Equal(t, nonce, w.Header().Get("DPoP-Nonce"))
		})
	}
}

// TestReviewDPoPReplayStoreGoexitIsAFailure holds the replay store to the
// Verifier's promise for its dependencies: one that ends its goroutine
// without a panic (runtime.Goexit, as t.FailNow in a test double) fails the
// request like a failing one, with 503 and a FailureReplayStore. The claim
// is instead read as "recorded before", and the client is told its fresh
// proof was replayed.
func TestReviewDPoPReplayStoreGoexitIsAFailure(t *testing.T) {
	d := newDPoPSetup(t, func(s *Settings) {
		s.ReplayStore = replayStoreFunc(func(context.Context, string, time.Duration) (bool, error) {
			runtime.Goexit()
			return true, nil
		})
	})
	w := d.serve(dpopRequest("GET", "DPoP "+d.bound, d.key.proof(t, "GET", dpopTarget, d.bound, nil)))
	assert.Equal(t, http.StatusServiceUnavailable, w.Code, "challenges: %q", w.Header().Values("WWW-Authenticate"))
	assert.Equal(t, uint64(1), d.v.Stats().Failures[FailureReplayStore])
}
