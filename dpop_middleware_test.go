package introspection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dpopSetup is an authorization server, a verifier, a prover and tokens:
// one bound to the prover's key, one unbound.
type dpopSetup struct {
	as      *introspectiontest.Server
	v       *Verifier
	key     *prover
	bound   string
	unbound string
	h       http.Handler
	seen    *AccessToken // the token the handler last saw
}

const dpopTarget = "http://mcp.example/mcp"

func newDPoPSetup(t *testing.T, edit func(*Settings)) *dpopSetup {
	t.Helper()
	clock := newFakeClock()
	d := &dpopSetup{as: newAS(t, clock), key: newProver(t, clock.Now)}
	d.v = newVerifier(t, d.as.IntrospectionURL, clock, edit)
	d.bound = d.as.Issue(introspectiontest.TokenOptions{Scopes: []string{"mcp"}, Extra: map[string]any{
		"token_type": "DPoP", "cnf": map[string]any{"jkt": d.key.thumb},
	}})
	d.unbound = d.as.Issue(introspectiontest.TokenOptions{Scopes: []string{"mcp"}})
	d.h = RequireBearerToken(d.v, &MiddlewareOptions{Realm: "mcp", Scopes: []string{"mcp"}})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d.seen, _ = AccessTokenFromContext(r.Context())
			w.WriteHeader(http.StatusNoContent)
		}))
	return d
}

// request returns a request to dpopTarget with the given Authorization
// and DPoP headers, each left out when empty.
func dpopRequest(method, authorization string, proofs ...string) *http.Request {
	r := httptest.NewRequest(method, dpopTarget, nil)
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	for _, p := range proofs {
		r.Header.Add("DPoP", p)
	}
	return r
}

func (d *dpopSetup) serve(r *http.Request) *httptest.ResponseRecorder {
	d.seen = nil
	w := httptest.NewRecorder()
	d.h.ServeHTTP(w, r)
	return w
}

// TestDPoPMiddleware shows the middleware's answer to DPoP presentations:
// the status, the challenges and which error each carries.
func TestDPoPMiddleware(t *testing.T) {
	type answer struct {
		status     int
		challenges []string // each WWW-Authenticate value, in order
	}
	const bearer = `Bearer realm="mcp", scope="mcp"`
	const dpop = `DPoP realm="mcp", scope="mcp", algs="ES256 ES384 ES512 RS256 PS256 EdDSA Ed25519"`
	withError := func(challenge, code string) string {
		scheme, rest, _ := strings.Cut(challenge, " ")
		realm, rest, _ := strings.Cut(rest, ", ")
		return scheme + " " + realm + `, error="` + code + `", ` + rest
	}
	tests := []struct {
		name    string
		edit    func(*Settings)
		request func(t *testing.T, d *dpopSetup) *http.Request
		want    answer
		handled bool
	}{
		{
			name: "bound token with its proof",
			request: func(t *testing.T, d *dpopSetup) *http.Request {
				return dpopRequest("GET", "DPoP "+d.bound, d.key.proof(t, "GET", dpopTarget, d.bound, nil))
			},
			want:    answer{http.StatusNoContent, nil},
			handled: true,
		},
		{
			name: "scheme name in another case",
			request: func(t *testing.T, d *dpopSetup) *http.Request {
				return dpopRequest("GET", "dpop "+d.bound, d.key.proof(t, "GET", dpopTarget, d.bound, nil))
			},
			want:    answer{http.StatusNoContent, nil},
			handled: true,
		},
		{
			name: "bound token as Bearer",
			request: func(t *testing.T, d *dpopSetup) *http.Request {
				return dpopRequest("GET", "Bearer "+d.bound)
			},
			want: answer{http.StatusUnauthorized, []string{withError(bearer, "invalid_token"), dpop}},
		},
		{
			name: "bound token as Bearer with a valid proof beside it",
			request: func(t *testing.T, d *dpopSetup) *http.Request {
				return dpopRequest("GET", "Bearer "+d.bound, d.key.proof(t, "GET", dpopTarget, d.bound, nil))
			},
			want: answer{http.StatusUnauthorized, []string{withError(bearer, "invalid_token"), dpop}},
		},
		{
			name: "proof of another key",
			request: func(t *testing.T, d *dpopSetup) *http.Request {
				other := newProver(t, d.key.now)
				return dpopRequest("GET", "DPoP "+d.bound, other.proof(t, "GET", dpopTarget, d.bound, nil))
			},
			want: answer{http.StatusUnauthorized, []string{bearer, withError(dpop, "invalid_token")}},
		},
		{
			name: "no DPoP header",
			request: func(t *testing.T, d *dpopSetup) *http.Request {
				return dpopRequest("GET", "DPoP "+d.bound)
			},
			want: answer{http.StatusUnauthorized, []string{bearer, withError(dpop, "invalid_dpop_proof")}},
		},
		{
			name: "two DPoP headers",
			request: func(t *testing.T, d *dpopSetup) *http.Request {
				p := d.key.proof(t, "GET", dpopTarget, d.bound, nil)
				return dpopRequest("GET", "DPoP "+d.bound, p, p)
			},
			want: answer{http.StatusUnauthorized, []string{bearer, withError(dpop, "invalid_dpop_proof")}},
		},
		{
			name: "proof for another token",
			request: func(t *testing.T, d *dpopSetup) *http.Request {
				return dpopRequest("GET", "DPoP "+d.bound, d.key.proof(t, "GET", dpopTarget, d.unbound, nil))
			},
			want: answer{http.StatusUnauthorized, []string{bearer, withError(dpop, "invalid_dpop_proof")}},
		},
		{
			name: "proof for another method",
			request: func(t *testing.T, d *dpopSetup) *http.Request {
				return dpopRequest("POST", "DPoP "+d.bound, d.key.proof(t, "GET", dpopTarget, d.bound, nil))
			},
			want: answer{http.StatusUnauthorized, []string{bearer, withError(dpop, "invalid_dpop_proof")}},
		},
		{
			name: "proof for another URL",
			request: func(t *testing.T, d *dpopSetup) *http.Request {
				return dpopRequest("GET", "DPoP "+d.bound, d.key.proof(t, "GET", dpopTarget+"/other", d.bound, nil))
			},
			want: answer{http.StatusUnauthorized, []string{bearer, withError(dpop, "invalid_dpop_proof")}},
		},
		{
			name: "unbound token with a proof",
			request: func(t *testing.T, d *dpopSetup) *http.Request {
				return dpopRequest("GET", "DPoP "+d.unbound, d.key.proof(t, "GET", dpopTarget, d.unbound, nil))
			},
			want: answer{http.StatusUnauthorized, []string{bearer, withError(dpop, "invalid_token")}},
		},
		{
			name: "unbound token as Bearer",
			request: func(t *testing.T, d *dpopSetup) *http.Request {
				return dpopRequest("GET", "Bearer "+d.unbound)
			},
			want:    answer{http.StatusNoContent, nil},
			handled: true,
		},
		{
			name: "malformed DPoP credentials",
			request: func(t *testing.T, d *dpopSetup) *http.Request {
				return dpopRequest("GET", "DPoP a b", d.key.proof(t, "GET", dpopTarget, d.bound, nil))
			},
			want: answer{http.StatusBadRequest, []string{`Bearer realm="mcp", error="invalid_request"`, `DPoP realm="mcp", error="invalid_request", algs="ES256 ES384 ES512 RS256 PS256 EdDSA Ed25519"`}},
		},
		{
			name: "no credentials",
			request: func(t *testing.T, d *dpopSetup) *http.Request {
				return dpopRequest("GET", "")
			},
			want: answer{http.StatusUnauthorized, []string{bearer, dpop}},
		},
		{
			name: "required: unbound token with a proof",
			edit: func(s *Settings) { s.DPoP = DPoPRequired },
			request: func(t *testing.T, d *dpopSetup) *http.Request {
				return dpopRequest("GET", "DPoP "+d.unbound, d.key.proof(t, "GET", dpopTarget, d.unbound, nil))
			},
			want: answer{http.StatusUnauthorized, []string{withError(dpop, "invalid_token")}},
		},
		{
			name: "required: Bearer is not a scheme it takes",
			edit: func(s *Settings) { s.DPoP = DPoPRequired },
			request: func(t *testing.T, d *dpopSetup) *http.Request {
				return dpopRequest("GET", "Bearer "+d.unbound)
			},
			want: answer{http.StatusUnauthorized, []string{dpop}},
		},
		{
			name: "required: bound token with its proof",
			edit: func(s *Settings) { s.DPoP = DPoPRequired },
			request: func(t *testing.T, d *dpopSetup) *http.Request {
				return dpopRequest("GET", "DPoP "+d.bound, d.key.proof(t, "GET", dpopTarget, d.bound, nil))
			},
			want:    answer{http.StatusNoContent, nil},
			handled: true,
		},
		{
			name: "off: DPoP is not a scheme it takes",
			edit: func(s *Settings) { s.DPoP = DPoPOff },
			request: func(t *testing.T, d *dpopSetup) *http.Request {
				return dpopRequest("GET", "DPoP "+d.bound, d.key.proof(t, "GET", dpopTarget, d.bound, nil))
			},
			want: answer{http.StatusUnauthorized, []string{bearer}},
		},
		{
			name: "off: bound token as Bearer",
			edit: func(s *Settings) { s.DPoP = DPoPOff },
			request: func(t *testing.T, d *dpopSetup) *http.Request {
				return dpopRequest("GET", "Bearer "+d.bound)
			},
			want: answer{http.StatusUnauthorized, []string{withError(bearer, "invalid_token")}},
		},
		{
			name: "algorithms from the settings",
			edit: func(s *Settings) { s.DPoPAlgorithms = []string{"EdDSA"} },
			request: func(t *testing.T, d *dpopSetup) *http.Request {
				return dpopRequest("GET", "DPoP "+d.bound, d.key.proof(t, "GET", dpopTarget, d.bound, nil))
			},
			want: answer{http.StatusUnauthorized, []string{bearer, `DPoP realm="mcp", error="invalid_dpop_proof", scope="mcp", algs="EdDSA"`}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDPoPSetup(t, tc.edit)
			w := d.serve(tc.request(t, d))
			assert.Equal(t, tc.want.status, w.Code, w.Body.String())
			assert.Equal(t, tc.want.challenges, w.Header().Values("WWW-Authenticate"))
			if tc.handled {
				require.NotNil(t, d.seen)
			} else {
				assert.Nil(t, d.seen)
			}
		})
	}
}

// TestDPoPErrors shows the error behind each refusal of a DPoP
// presentation, through the same path the middleware takes.
func TestDPoPErrors(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Settings)
		request func(t *testing.T, d *dpopSetup) (*http.Request, string)
		want    error
	}{
		{"bound token without proof", nil, func(t *testing.T, d *dpopSetup) (*http.Request, string) {
			return dpopRequest("GET", ""), d.bound
		}, ErrProofRequired},
		{"proof of another key", nil, func(t *testing.T, d *dpopSetup) (*http.Request, string) {
			other := newProver(t, d.key.now)
			return dpopRequest("GET", "", other.proof(t, "GET", dpopTarget, d.bound, nil)), d.bound
		}, ErrProofMismatch},
		{"unbound token with a proof", nil, func(t *testing.T, d *dpopSetup) (*http.Request, string) {
			return dpopRequest("GET", "", d.key.proof(t, "GET", dpopTarget, d.unbound, nil)), d.unbound
		}, ErrTokenNotBound},
		{"token_type DPoP without cnf", nil, func(t *testing.T, d *dpopSetup) (*http.Request, string) {
			tok := d.as.Issue(introspectiontest.TokenOptions{Extra: map[string]any{"token_type": "DPoP"}})
			return dpopRequest("GET", "", d.key.proof(t, "GET", dpopTarget, tok, nil)), tok
		}, ErrProofMismatch},
		{"required: unbound token without proof", func(s *Settings) { s.DPoP = DPoPRequired }, func(t *testing.T, d *dpopSetup) (*http.Request, string) {
			return dpopRequest("GET", ""), d.unbound
		}, ErrTokenNotBound},
		{"bad proof", nil, func(t *testing.T, d *dpopSetup) (*http.Request, string) {
			return dpopRequest("GET", "", "a.b.c"), d.bound
		}, ErrInvalidDPoPProof},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDPoPSetup(t, tc.edit)
			r, tok := tc.request(t, d)
			var p possession
			var err error
			if len(r.Header.Values("DPoP")) > 0 {
				p.proof, err = d.v.checkProof(r, tok)
			}
			if err == nil {
				_, err = d.v.verify(context.Background(), tok, p)
			}
			assert.ErrorIs(t, err, tc.want)
			assert.ErrorIs(t, err, ErrInvalidToken)
		})
	}
}

// TestDPoPProofVerifiedOnEveryRequest shows that a cached answer is never
// taken for a proof: each request's proof is checked, also on a cache hit,
// while the authorization server is asked once.
func TestDPoPProofVerifiedOnEveryRequest(t *testing.T) {
	d := newDPoPSetup(t, func(s *Settings) { s.CacheTTL = time.Minute })
	proof := func() string { return d.key.proof(t, "GET", dpopTarget, d.bound, nil) }
	other := newProver(t, d.key.now)

	require.Equal(t, http.StatusNoContent, d.serve(dpopRequest("GET", "DPoP "+d.bound, proof())).Code)
	require.Equal(t, http.StatusNoContent, d.serve(dpopRequest("GET", "DPoP "+d.bound, proof())).Code)
	assert.Equal(t, http.StatusUnauthorized, d.serve(dpopRequest("GET", "Bearer "+d.bound)).Code)
	assert.Equal(t, http.StatusUnauthorized, d.serve(dpopRequest("GET", "DPoP "+d.bound)).Code)
	assert.Equal(t, http.StatusUnauthorized, d.serve(dpopRequest("GET", "DPoP "+d.bound, other.proof(t, "GET", dpopTarget, d.bound, nil))).Code)
	assert.Equal(t, int64(1), d.as.RequestsFor(d.bound), "the answer was cached")
	st := d.v.Stats()
	assert.Equal(t, uint64(2), st.Accepted)
	assert.Equal(t, uint64(3), st.Rejected)
}

// TestDPoPReplay shows that a proof is accepted once, by one verifier and
// by two verifiers that share a ReplayStore, and that it is recorded only
// once the token is accepted.
func TestDPoPReplay(t *testing.T) {
	t.Run("one verifier", func(t *testing.T) {
		d := newDPoPSetup(t, nil)
		p := d.key.proof(t, "GET", dpopTarget, d.bound, nil)
		require.Equal(t, http.StatusNoContent, d.serve(dpopRequest("GET", "DPoP "+d.bound, p)).Code)
		w := d.serve(dpopRequest("GET", "DPoP "+d.bound, p))
		assert.Equal(t, http.StatusUnauthorized, w.Code)
		assert.Contains(t, w.Header().Values("WWW-Authenticate")[1], `error="invalid_dpop_proof"`)
	})
	t.Run("two verifiers sharing a store", func(t *testing.T) {
		store := NewMemoryReplayStore(0)
		d := newDPoPSetup(t, func(s *Settings) { s.ReplayStore = store })
		replica := newVerifier(t, d.as.IntrospectionURL, nil, func(s *Settings) { s.ReplayStore = store; s.Now = d.key.now })
		p := d.key.proof(t, "GET", dpopTarget, d.bound, nil)
		require.Equal(t, http.StatusNoContent, d.serve(dpopRequest("GET", "DPoP "+d.bound, p)).Code)
		w := httptest.NewRecorder()
		RequireBearerToken(replica, nil)(http.NotFoundHandler()).ServeHTTP(w, dpopRequest("GET", "DPoP "+d.bound, p))
		assert.Equal(t, http.StatusUnauthorized, w.Code)
		proof, err := replica.checkProof(dpopRequest("GET", "", p), d.bound)
		require.NoError(t, err)
		_, err = replica.verify(context.Background(), d.bound, possession{proof: proof})
		assert.ErrorIs(t, err, ErrProofReplayed)
	})
	t.Run("a refused token leaves the proof unrecorded", func(t *testing.T) {
		d := newDPoPSetup(t, nil)
		other := newProver(t, d.key.now)
		// The proof of another key is refused for the binding before its
		// jti is recorded, so the same jti from the right key still works.
		fixed := func(_, c map[string]any) { c["jti"] = "same" }
		require.Equal(t, http.StatusUnauthorized, d.serve(dpopRequest("GET", "DPoP "+d.bound, other.proof(t, "GET", dpopTarget, d.bound, fixed))).Code)
		assert.Equal(t, http.StatusNoContent, d.serve(dpopRequest("GET", "DPoP "+d.bound, d.key.proof(t, "GET", dpopTarget, d.bound, fixed))).Code)
	})
}

// replayStoreFunc is a ReplayStore made of a function.
type replayStoreFunc func(ctx context.Context, key string, ttl time.Duration) (bool, error)

func (f replayStoreFunc) Claim(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	return f(ctx, key, ttl)
}

// TestDPoPReplayStoreFailure shows that a proof whose jti cannot be
// recorded is never accepted: a failing, panicking or hung store gives 503
// and a FailureReplayStore.
func TestDPoPReplayStoreFailure(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var mu sync.Mutex
	var keys []string
	var ttls []time.Duration
	tests := []struct {
		name  string
		store replayStoreFunc
	}{
		{"error", func(context.Context, string, time.Duration) (bool, error) { return false, errors.New("down") }},
		{"error beside true", func(context.Context, string, time.Duration) (bool, error) { return true, errors.New("down") }},
		{"panic", func(context.Context, string, time.Duration) (bool, error) { panic("store") }},
		{"hung, ignoring its context", func(context.Context, string, time.Duration) (bool, error) { <-release; return true, nil }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDPoPSetup(t, func(s *Settings) { s.ReplayStore = tc.store })
			w := d.serve(dpopRequest("GET", "DPoP "+d.bound, d.key.proof(t, "GET", dpopTarget, d.bound, nil)))
			assert.Equal(t, http.StatusServiceUnavailable, w.Code)
			assert.Nil(t, d.seen)
			assert.Equal(t, uint64(1), d.v.Stats().Failures[FailureReplayStore])
		})
	}
	t.Run("key and ttl", func(t *testing.T) {
		d := newDPoPSetup(t, func(s *Settings) {
			s.Leeway = 10 * time.Second
			s.ReplayStore = replayStoreFunc(func(_ context.Context, key string, ttl time.Duration) (bool, error) {
				mu.Lock()
				defer mu.Unlock()
				keys, ttls = append(keys, key), append(ttls, ttl)
				return true, nil
			})
		})
		require.Equal(t, http.StatusNoContent, d.serve(dpopRequest("GET", "DPoP "+d.bound, d.key.proof(t, "GET", dpopTarget, d.bound, nil))).Code)
		mu.Lock()
		defer mu.Unlock()
		require.Len(t, keys, 1)
		assert.Regexp(t, `^dpop:[A-Za-z0-9_-]{43}$`, keys[0])
		assert.NotContains(t, keys[0], d.bound)
		// The proof's iat is now: it stays acceptable for the window plus
		// the leeway here, and for one more leeway on a replica whose
		// clock is behind.
		assert.Equal(t, DefaultDPoPProofWindow+20*time.Second, ttls[0])
	})
}

// TestDPoPNonce shows server nonces: a proof without one gets
// use_dpop_nonce and a DPoP-Nonce to retry with; the retry is accepted;
// a verifier with the same keys (another replica) accepts it too.
func TestDPoPNonce(t *testing.T) {
	keys := [][]byte{[]byte("0123456789abcdef0123456789abcdef")}
	d := newDPoPSetup(t, func(s *Settings) { s.DPoPNonceKeys = keys })
	w := d.serve(dpopRequest("GET", "DPoP "+d.bound, d.key.proof(t, "GET", dpopTarget, d.bound, nil)))
	require.Equal(t, http.StatusUnauthorized, w.Code)
	assert.Equal(t, `DPoP realm="mcp", error="use_dpop_nonce", scope="mcp", algs="ES256 ES384 ES512 RS256 PS256 EdDSA Ed25519"`, w.Header().Values("WWW-Authenticate")[1])
	nonce := w.Header().Get("DPoP-Nonce")
	require.NotEmpty(t, nonce)

	withNonce := func(_, c map[string]any) { c["nonce"] = nonce }
	w = d.serve(dpopRequest("GET", "DPoP "+d.bound, d.key.proof(t, "GET", dpopTarget, d.bound, withNonce)))
	assert.Equal(t, http.StatusNoContent, w.Code)
	assert.Equal(t, nonce, w.Header().Get("DPoP-Nonce"), "a DPoP answer carries the current nonce")

	wrong := func(_, c map[string]any) { c["nonce"] = "x" + nonce[1:] }
	w = d.serve(dpopRequest("GET", "DPoP "+d.bound, d.key.proof(t, "GET", dpopTarget, d.bound, wrong)))
	assert.Equal(t, http.StatusUnauthorized, w.Code)
	assert.Contains(t, w.Header().Values("WWW-Authenticate")[1], `error="use_dpop_nonce"`)

	replica := newVerifier(t, d.as.IntrospectionURL, nil, func(s *Settings) { s.DPoPNonceKeys = keys; s.Now = d.key.now })
	w = httptest.NewRecorder()
	RequireBearerToken(replica, nil)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})).ServeHTTP(w, dpopRequest("GET", "DPoP "+d.bound, d.key.proof(t, "GET", dpopTarget, d.bound, withNonce)))
	assert.Equal(t, http.StatusNoContent, w.Code)
}

// TestDPoPPublicURL shows which URL a proof's htu must name: the one the
// request arrived at, PublicBaseURL joined with the path when set, or the
// forwarded scheme and host only when TrustForwardedHeaders is set.
func TestDPoPPublicURL(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Settings)
		target  string
		forward map[string]string
		htu     string
		ok      bool
	}{
		{"as it arrived", nil, "http://10.0.0.5:8080/mcp", nil, "http://10.0.0.5:8080/mcp", true},
		{"as it arrived, other htu", nil, "http://10.0.0.5:8080/mcp", nil, "https://mcp.example/mcp", false},
		{"public base URL", func(s *Settings) { s.PublicBaseURL = "https://mcp.example" }, "http://10.0.0.5:8080/mcp", nil, "https://mcp.example/mcp", true},
		{"public base URL, the internal htu", func(s *Settings) { s.PublicBaseURL = "https://mcp.example" }, "http://10.0.0.5:8080/mcp", nil, "http://10.0.0.5:8080/mcp", false},
		{"public base URL with a prefix", func(s *Settings) { s.PublicBaseURL = "https://Example.COM:443/tools/" }, "http://10.0.0.5:8080/mcp", nil, "https://example.com/tools/mcp", true},
		{"forwarded headers not trusted", nil, "http://10.0.0.5:8080/mcp", map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "mcp.example"}, "https://mcp.example/mcp", false},
		{"forwarded headers trusted", func(s *Settings) { s.TrustForwardedHeaders = true }, "http://10.0.0.5:8080/mcp", map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "mcp.example"}, "https://mcp.example/mcp", true},
		{"forwarded lists: the first value", func(s *Settings) { s.TrustForwardedHeaders = true }, "http://10.0.0.5:8080/mcp", map[string]string{"X-Forwarded-Proto": "https, http", "X-Forwarded-Host": "mcp.example, 10.0.0.5"}, "https://mcp.example/mcp", true},
		{"forwarded scheme not http", func(s *Settings) { s.TrustForwardedHeaders = true }, "http://10.0.0.5:8080/mcp", map[string]string{"X-Forwarded-Proto": "ftp"}, "ftp://10.0.0.5:8080/mcp", false},
		{"public base URL wins over forwarded headers", func(s *Settings) { s.PublicBaseURL = "https://mcp.example"; s.TrustForwardedHeaders = true }, "http://10.0.0.5:8080/mcp", map[string]string{"X-Forwarded-Host": "evil.example"}, "https://mcp.example/mcp", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDPoPSetup(t, tc.edit)
			r := httptest.NewRequest("GET", tc.target, nil)
			for k, v := range tc.forward {
				r.Header.Set(k, v)
			}
			r.Header.Set("Authorization", "DPoP "+d.bound)
			r.Header.Set("DPoP", d.key.proof(t, "GET", tc.htu, d.bound, nil))
			w := d.serve(r)
			if tc.ok {
				assert.Equal(t, http.StatusNoContent, w.Code)
			} else {
				assert.Equal(t, http.StatusUnauthorized, w.Code)
				assert.Contains(t, w.Header().Get("WWW-Authenticate")+w.Header().Values("WWW-Authenticate")[1], `error="invalid_dpop_proof"`)
			}
		})
	}
}

// TestDPoPSettings shows the checks of the DPoP settings and their
// defaults.
func TestDPoPSettings(t *testing.T) {
	base := Settings{IntrospectionURL: "https://as.example/introspect", ClientID: "rs", ClientSecret: "s"}
	tests := []struct {
		name string
		edit func(*Settings)
		err  string
	}{
		{"defaults", func(*Settings) {}, ""},
		{"unknown mode", func(s *Settings) { s.DPoP = "on" }, `introspection: unknown DPoP mode "on" (want "off", "allowed" or "required")`},
		{"alg none", func(s *Settings) { s.DPoPAlgorithms = []string{"none"} }, `introspection: DPoP algorithm "none" is not one of ES256 ES384 ES512 RS256 PS256 EdDSA Ed25519`},
		{"HS256", func(s *Settings) { s.DPoPAlgorithms = []string{"HS256"} }, `introspection: DPoP algorithm "HS256" is not one of ES256 ES384 ES512 RS256 PS256 EdDSA Ed25519`},
		{"empty algorithms", func(s *Settings) { s.DPoPAlgorithms = []string{} }, "introspection: DPoPAlgorithms is empty; leave it nil for the defaults"},
		{"negative window", func(s *Settings) { s.DPoPProofWindow = -time.Second }, "introspection: DPoPProofWindow must not be negative, got -1s"},
		{"window at the bound", func(s *Settings) { s.DPoPProofWindow = MaxDPoPProofWindow }, ""},
		{"window past the bound", func(s *Settings) { s.DPoPProofWindow = MaxDPoPProofWindow + time.Second }, "introspection: DPoPProofWindow 1h0m1s is longer than 1h0m0s"},
		{"nonce keys with DPoP off", func(s *Settings) { s.DPoP = DPoPOff; s.DPoPNonceKeys = [][]byte{make([]byte, 32)} }, "introspection: DPoPNonceKeys are set while DPoP is off"},
		{"nonce key of 31 bytes", func(s *Settings) { s.DPoPNonceKeys = [][]byte{make([]byte, 32), make([]byte, 31)} }, "introspection: DPoP nonce key 1 is 31 bytes; at least 32 are needed"},
		{"nonce lifetime under 2s", func(s *Settings) { s.DPoPNonceKeys = [][]byte{make([]byte, 32)}; s.DPoPNonceLifetime = time.Second }, "introspection: DPoP nonce lifetime 1s is outside [2s, 24h0m0s]"},
		{"nonce lifetime at 24h", func(s *Settings) { s.DPoPNonceKeys = [][]byte{make([]byte, 32)}; s.DPoPNonceLifetime = 24 * time.Hour }, ""},
		{"public base URL with a query", func(s *Settings) { s.PublicBaseURL = "https://mcp.example/?a=b" }, "introspection: invalid PublicBaseURL: it must not have a query or a fragment"},
		{"public base URL with a fragment", func(s *Settings) { s.PublicBaseURL = "https://mcp.example/#a" }, "introspection: invalid PublicBaseURL: it must not have a query or a fragment"},
		{"public base URL with user information", func(s *Settings) { s.PublicBaseURL = "https://u:p@mcp.example/" }, "introspection: invalid PublicBaseURL: it must not hold user information"},
		{"public base URL not http", func(s *Settings) { s.PublicBaseURL = "ftp://mcp.example/" }, "introspection: invalid PublicBaseURL: want an http or https URL"},
		{"public base URL relative", func(s *Settings) { s.PublicBaseURL = "/mcp" }, "introspection: invalid PublicBaseURL: want an http or https URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := base
			tc.edit(&s)
			v, err := NewVerifier(s)
			if tc.err != "" {
				assert.EqualError(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			defer v.Close()
			if s.DPoP == "" {
				assert.Equal(t, DPoPAllowed, v.DPoPMode())
			}
		})
	}
	t.Run("algorithms for the metadata", func(t *testing.T) {
		for _, tc := range []struct {
			mode DPoPMode
			algs []string
			want []string
		}{
			{"", nil, DefaultDPoPAlgorithms},
			{DPoPRequired, []string{"ES256"}, []string{"ES256"}},
			{DPoPAllowed, []string{"EdDSA", "ES256", "EdDSA"}, []string{"EdDSA", "ES256"}},
			{DPoPOff, nil, nil},
		} {
			s := base
			s.DPoP, s.DPoPAlgorithms = tc.mode, tc.algs
			v, err := NewVerifier(s)
			require.NoError(t, err)
			assert.Equal(t, tc.want, v.DPoPAlgorithms())
			if got := v.DPoPAlgorithms(); len(got) > 0 {
				got[0] = "changed"
				assert.NotEqual(t, "changed", v.DPoPAlgorithms()[0])
			}
			_ = v.Close()
		}
	})
}

// TestDPoPKeyOfTheTestServer shows that introspectiontest's DPoPKey and
// TokenOptions.DPoPKey make a bound token and proofs that the middleware
// accepts, with a nonce too.
func TestDPoPKeyOfTheTestServer(t *testing.T) {
	as := newAS(t, nil)
	keys := [][]byte{[]byte("0123456789abcdef0123456789abcdef")}
	v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) { s.DPoPNonceKeys = keys })
	key := introspectiontest.NewDPoPKey()
	tok := as.Issue(introspectiontest.TokenOptions{DPoPKey: key.Thumbprint()})
	h := RequireBearerToken(v, nil)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	serve := func(proof string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, dpopRequest("POST", "DPoP "+tok, proof))
		return w
	}
	w := serve(key.Proof("POST", dpopTarget+"?q=1#f", tok))
	require.Equal(t, http.StatusUnauthorized, w.Code)
	nonce := w.Header().Get("DPoP-Nonce")
	require.NotEmpty(t, nonce)
	assert.Equal(t, http.StatusNoContent, serve(key.ProofWith("POST", dpopTarget, tok, time.Now(), nonce)).Code)
	assert.Equal(t, http.StatusUnauthorized, serve(introspectiontest.NewDPoPKey().ProofWith("POST", dpopTarget, tok, time.Now(), nonce)).Code)
}

// TestSettingsNeverPrintNonceKeys shows that fmt and log/slog show only the
// number of DPoP nonce keys, under every verb, in hexadecimal too.
func TestSettingsNeverPrintNonceKeys(t *testing.T) {
	key := []byte("nonce-key-0123456789-abcdefghijkl")
	s := Settings{
		IntrospectionURL: "https://as.example/introspect", ClientID: "rs", ClientSecret: "s",
		DPoPNonceKeys: [][]byte{key, key}, PublicBaseURL: "https://user:pw@mcp.example",
	}
	var out strings.Builder
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X"} {
		fmt.Fprintf(&out, verb+"\n", s)
		fmt.Fprintf(&out, verb+"\n", &s)
	}
	slog.New(slog.NewJSONHandler(&out, nil)).Info("settings", "s", s)
	slog.New(slog.NewTextHandler(&out, nil)).Info("settings", "s", s)
	for _, secret := range []string{string(key), fmt.Sprintf("%x", key), fmt.Sprintf("%X", key), fmt.Sprint(key), "pw"} {
		assert.NotContains(t, out.String(), secret)
	}
	assert.Contains(t, out.String(), "DPoPNonceKeys:2 REDACTED")
	assert.Contains(t, out.String(), `"dpop_nonce_keys":"2 REDACTED"`)
}
