package introspection

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Answers are fresh for staleTestTTL and may be served stale for
// staleTestWindow after that.
const (
	staleTestTTL    = time.Minute
	staleTestWindow = 10 * time.Minute
)

// staleVerifier returns a verifier of as on clock that keeps active
// answers fresh for staleTestTTL and serves them stale for staleTestWindow
// more, after edit changes its settings.
func staleVerifier(t *testing.T, as *introspectiontest.Server, clock *fakeClock, edit func(*Settings)) *Verifier {
	t.Helper()
	return newVerifier(t, as.IntrospectionURL, clock, func(s *Settings) {
		s.CacheTTL = staleTestTTL
		s.StaleIfError = staleTestWindow
		if edit != nil {
			edit(s)
		}
	})
}

// fill verifies tok with the server up, checks that the answer was fresh,
// and waits until it is stored.
func fill(t *testing.T, v *Verifier, tok string) *AccessToken {
	t.Helper()
	got, err := v.Verify(context.Background(), tok)
	require.NoError(t, err)
	require.False(t, got.Stale, "an answer of the server is not stale")
	waitUntilIdle(t, v)
	return got
}

// down makes as answer every request with 503.
func down(as *introspectiontest.Server) {
	as.SetFault(introspectiontest.Fault{Status: http.StatusServiceUnavailable})
}

// TestStaleAnswerServedWhenServerCannotAnswer shows StaleIfError: when the
// server cannot answer, for each way it can fail to, an answer whose entry
// ended less than StaleIfError ago is used, flagged Stale, and counted as
// served stale and accepted, never as failed; the failed request is still
// counted by its kind.
func TestStaleAnswerServedWhenServerCannotAnswer(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		outage  func(as *introspectiontest.Server)
		kind    FailureKind
	}{
		{"503", 0, down, FailureStatus},
		{"500", 0, func(as *introspectiontest.Server) { as.SetFault(introspectiontest.Fault{Status: 500}) }, FailureStatus},
		{"502", 0, func(as *introspectiontest.Server) { as.SetFault(introspectiontest.Fault{Status: 502}) }, FailureStatus},
		{"429", 0, func(as *introspectiontest.Server) {
			as.SetFault(introspectiontest.Fault{Status: 429, Header: http.Header{"Retry-After": {"30"}}})
		}, FailureStatus},
		{"redirect", 0, func(as *introspectiontest.Server) {
			as.SetFault(introspectiontest.Fault{Status: 307, Header: http.Header{"Location": {"https://elsewhere/"}}})
		}, FailureRedirect},
		{"HTML", 0, func(as *introspectiontest.Server) {
			as.SetFault(introspectiontest.Fault{ContentType: "text/html", Body: "<html>maintenance</html>"})
		}, FailureContentType},
		{"malformed", 0, func(as *introspectiontest.Server) {
			as.SetFault(introspectiontest.Fault{Body: `{"active":"true"}`})
		}, FailureMalformed},
		{"no answer in time", 100 * time.Millisecond, func(as *introspectiontest.Server) {
			as.SetFault(introspectiontest.Fault{Latency: time.Hour})
		}, FailureTimeout},
		{"server stopped", 0, func(as *introspectiontest.Server) { as.Close() }, FailureTransport},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cacheKinds(t, func(t *testing.T, withCache func(*Settings)) {
				clock := newFakeClock()
				as := newAS(t, clock)
				v := staleVerifier(t, as, clock, func(s *Settings) {
					s.Timeout = tc.timeout
					withCache(s)
				})
				tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{"read"}})
				fill(t, v, tok)

				clock.Advance(staleTestTTL) // the entry has ended
				tc.outage(as)
				got, err := v.Verify(context.Background(), tok)
				require.NoError(t, err)
				assert.True(t, got.Stale)
				assert.Equal(t, "alice", got.Subject)
				assert.Equal(t, tok, got.Token)

				st := v.Stats()
				assert.Equal(t, uint64(2), st.UpstreamRequests, "the server was asked")
				assert.Equal(t, uint64(1), st.StaleServed)
				assert.Equal(t, uint64(2), st.Accepted)
				assert.Zero(t, st.Failed, "a stale verdict is not a failed call")
				assert.Equal(t, uint64(2), st.Verifications)
				assert.Equal(t, uint64(1), st.Failures[tc.kind], "the failed request is counted by its kind")
			})
		})
	}
}

// TestNoStaleWhenServerAnswers shows that a stale answer never replaces an
// answer of the server: fresh lookups return fresh entries only, active
// false refuses (and is not replaced by the older active answer in a later
// outage either), and a 4xx is an error, not a reason to serve stale.
func TestNoStaleWhenServerAnswers(t *testing.T) {
	t.Run("active", func(t *testing.T) {
		cacheKinds(t, func(t *testing.T, withCache func(*Settings)) {
			clock := newFakeClock()
			as := newAS(t, clock)
			v := staleVerifier(t, as, clock, withCache)
			tok := as.Issue(introspectiontest.TokenOptions{})
			fill(t, v, tok)
			clock.Advance(staleTestTTL)
			got, err := v.Verify(context.Background(), tok)
			require.NoError(t, err)
			assert.False(t, got.Stale)
			assert.Equal(t, int64(2), as.RequestsFor(tok), "an entry past its end is not a hit")
			assert.Zero(t, v.Stats().StaleServed)
		})
	})
	t.Run("active false, then an outage", func(t *testing.T) {
		cacheKinds(t, func(t *testing.T, withCache func(*Settings)) {
			clock := newFakeClock()
			as := newAS(t, clock)
			v := staleVerifier(t, as, clock, withCache)
			tok := as.Issue(introspectiontest.TokenOptions{})
			fill(t, v, tok)
			clock.Advance(staleTestTTL)
			as.Revoke(tok)
			_, err := v.Verify(context.Background(), tok)
			require.ErrorIs(t, err, ErrTokenInactive)
			waitUntilIdle(t, v)

			down(as)
			_, err = v.Verify(context.Background(), tok)
			require.ErrorIs(t, err, ErrIntrospectionFailed, "the active answer is gone once the server said inactive")
			assert.NotErrorIs(t, err, ErrInvalidToken)
			st := v.Stats()
			assert.Zero(t, st.StaleServed)
			assert.Equal(t, uint64(1), st.Failed)
		})
	})
	for _, status := range []int{400, 401, 403, 404} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			cacheKinds(t, func(t *testing.T, withCache func(*Settings)) {
				clock := newFakeClock()
				as := newAS(t, clock)
				v := staleVerifier(t, as, clock, withCache)
				tok := as.Issue(introspectiontest.TokenOptions{})
				fill(t, v, tok)
				clock.Advance(staleTestTTL)
				as.SetFault(introspectiontest.Fault{Status: status})
				_, err := v.Verify(context.Background(), tok)
				var ie *IntrospectionError
				require.ErrorAs(t, err, &ie)
				assert.Equal(t, status, ie.StatusCode)
				st := v.Stats()
				assert.Zero(t, st.StaleServed)
				assert.Equal(t, uint64(1), st.Failed)
			})
		})
	}
}

// TestStaleWindowEndsAfterStaleIfError checks the bound: an answer is
// served stale until StaleIfError has passed since its entry ended, and
// from then on the error comes back, also from a store that keeps values
// longer than it was asked to.
func TestStaleWindowEndsAfterStaleIfError(t *testing.T) {
	run := func(t *testing.T, withCache func(*Settings)) {
		tests := []struct {
			name  string
			after time.Duration // since the entry ended
			stale bool
		}{
			{"just after the entry ended", 0, true},
			{"just before the window ends", staleTestWindow - time.Millisecond, true},
			{"when the window ends", staleTestWindow, false},
			{"past the window", staleTestWindow + time.Hour, false},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				clock := newFakeClock()
				as := newAS(t, clock)
				v := staleVerifier(t, as, clock, withCache)
				tok := as.Issue(introspectiontest.TokenOptions{Lifetime: 24 * time.Hour})
				fill(t, v, tok)
				clock.Advance(staleTestTTL + tc.after)
				down(as)
				got, err := v.Verify(context.Background(), tok)
				if tc.stale {
					require.NoError(t, err)
					assert.True(t, got.Stale)
					assert.Equal(t, uint64(1), v.Stats().StaleServed)
					return
				}
				assert.ErrorIs(t, err, ErrIntrospectionFailed)
				assert.Nil(t, got)
				assert.Zero(t, v.Stats().StaleServed)
			})
		}
	}
	cacheKinds(t, run)
	t.Run("a store that keeps values longer", func(t *testing.T) {
		run(t, func(s *Settings) {
			mc := newMapCache(s.Now)
			mc.ignoreTTL = true
			s.Cache = mc
		})
	})
}

// TestStaleNeverPastExp shows RFC 7662 §4 for stale answers: an active
// answer is never used at or past the token's exp, whatever the window
// and Leeway, also from a store that keeps values longer.
func TestStaleNeverPastExp(t *testing.T) {
	run := func(t *testing.T, withCache func(*Settings)) {
		tests := []struct {
			name  string
			at    time.Duration // since the token was issued
			stale bool
		}{
			{"a second before exp", 5*time.Minute - time.Second, true},
			{"at exp", 5 * time.Minute, false},
			{"within Leeway past exp", 5*time.Minute + 30*time.Second, false},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				clock := newFakeClock()
				as := newAS(t, clock)
				v := staleVerifier(t, as, clock, func(s *Settings) {
					s.Leeway = time.Minute
					withCache(s)
				})
				tok := as.Issue(introspectiontest.TokenOptions{Lifetime: 5 * time.Minute})
				fill(t, v, tok)
				clock.Advance(tc.at)
				down(as)
				got, err := v.Verify(context.Background(), tok)
				if tc.stale {
					require.NoError(t, err)
					assert.True(t, got.Stale)
					return
				}
				assert.ErrorIs(t, err, ErrIntrospectionFailed)
				assert.Nil(t, got)
				assert.Zero(t, v.Stats().StaleServed)
			})
		}
	}
	cacheKinds(t, run)
	t.Run("a store that keeps values longer", func(t *testing.T) {
		run(t, func(s *Settings) {
			mc := newMapCache(s.Now)
			mc.ignoreTTL = true
			s.Cache = mc
		})
	})
}

// TestStaleTTLHandedToSharedCache shows what a Cache is handed with
// StaleIfError: the TTL is the fresh TTL plus StaleIfError, never past an
// active token's exp, and the value records when it stops being fresh in
// a line before the answer; without StaleIfError the value is the answer
// alone, as before.
func TestStaleTTLHandedToSharedCache(t *testing.T) {
	tests := []struct {
		name     string
		stale    time.Duration
		local    time.Duration // Settings.LocalCacheTTL
		opts     introspectiontest.TokenOptions
		unknown  bool // an unknown token: inactive
		wantTTL  time.Duration
		wantHead string // before the answer; empty: none
	}{
		{"active", staleTestWindow, 0, introspectiontest.TokenOptions{Lifetime: 24 * time.Hour},
			false, staleTestTTL + staleTestWindow, "fresh_until=%d\n"},
		{"active, exp within the window", staleTestWindow, 0, introspectiontest.TokenOptions{Lifetime: 5 * time.Minute},
			false, 5 * time.Minute, "fresh_until=%d\n"},
		{"active, exp before the entry would end", staleTestWindow, 0, introspectiontest.TokenOptions{Lifetime: 30 * time.Second},
			false, 30 * time.Second, "fresh_until=%d\n"},
		{"inactive", staleTestWindow, 0, introspectiontest.TokenOptions{},
			true, 20*time.Second + staleTestWindow, "fresh_until=%d\n"},
		{"without StaleIfError, with the local tier", 0, 0, introspectiontest.TokenOptions{Lifetime: 24 * time.Hour},
			false, staleTestTTL, "fresh_until=%d\n"},
		{"without StaleIfError and the local tier", 0, -1, introspectiontest.TokenOptions{Lifetime: 24 * time.Hour},
			false, staleTestTTL, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			as := newAS(t, clock)
			mc := newMapCache(clock.Now)
			v := newVerifier(t, as.IntrospectionURL, clock, func(s *Settings) {
				s.CacheTTL = staleTestTTL
				s.NegativeCacheTTL = 20 * time.Second
				s.StaleIfError = tc.stale
				s.LocalCacheTTL = tc.local
				s.Cache = mc
			})
			tok := "unknown"
			if !tc.unknown {
				tok = as.Issue(tc.opts)
			}
			_, _ = v.Verify(context.Background(), tok)
			waitUntilIdle(t, v)
			require.Equal(t, []time.Duration{tc.wantTTL}, mc.ttls)
			fresh := staleTestTTL
			if tc.unknown {
				fresh = 20 * time.Second
			}
			fresh = min(fresh, tc.wantTTL)
			value, ok, err := mc.Get(context.Background(), v.CacheKey(tok))
			require.NoError(t, err)
			require.True(t, ok)
			head := ""
			if tc.wantHead != "" {
				head = fmt.Sprintf(tc.wantHead, clock.Now().Add(fresh).UnixMilli())
			}
			require.True(t, bytes.HasPrefix(value, []byte(head+"{")), "%q", value)
			var claims map[string]any
			require.NoError(t, json.Unmarshal(value[len(head):], &claims), "the rest is the answer")
			assert.Equal(t, !tc.unknown, claims["active"])
		})
	}
}

// TestSharedCacheReadsValuesOfEarlierVersions shows that a value without
// the fresh_until line, as earlier versions wrote, is the answer, fresh as
// long as the store keeps it; and that a value whose line is not exactly
// that is refused as any bad value is: counted, deleted, and the server
// asked.
func TestSharedCacheReadsValuesOfEarlierVersions(t *testing.T) {
	t.Run("a plain answer is fresh while the store keeps it", func(t *testing.T) {
		clock := newFakeClock()
		as := newAS(t, clock)
		mc := newMapCache(clock.Now)
		v := staleVerifier(t, as, clock, func(s *Settings) { s.Cache = mc })
		tok := as.Issue(introspectiontest.TokenOptions{})
		exp := clock.Now().Add(time.Hour).Unix()
		value := fmt.Appendf(nil, `{"active":true,"sub":"from-an-earlier-version","exp":%d}`, exp)
		require.NoError(t, mc.Set(context.Background(), v.CacheKey(tok), value, 5*time.Minute))
		for _, at := range []time.Duration{0, 5*time.Minute - time.Millisecond} {
			clock.Advance(at)
			got, err := v.Verify(context.Background(), tok)
			require.NoError(t, err)
			assert.Equal(t, "from-an-earlier-version", got.Subject)
			assert.False(t, got.Stale)
		}
		assert.Zero(t, as.RequestsFor(tok))
		assert.Zero(t, v.Stats().CacheErrors)
	})
	for _, bad := range []string{
		"fresh_until=\n{\"active\":true}",
		"fresh_until=abc\n{\"active\":true}",
		"fresh_until=-1\n{\"active\":true}",
		"fresh_until=+1\n{\"active\":true}",
		"fresh_until=1 \n{\"active\":true}",
		"fresh_until=1\r\n{\"active\":true}",
		"fresh_until=99999999999999999999\n{\"active\":true}",
		"fresh_until=1764072060000{\"active\":true}",
		"fresh_until=1764072060000",
		"fresh_until=1764072060000\n",
		"fresh_until=1764072060000\nfresh_until=1764072060000\n{\"active\":true}",
		"fresh_until=1764072060000\n{\"active\":\"true\"}",
		"Fresh_until=1764072060000\n{\"active\":true}",
	} {
		t.Run(strconv.Quote(bad), func(t *testing.T) {
			clock := newFakeClock()
			as := newAS(t, clock)
			mc := newMapCache(clock.Now)
			v := staleVerifier(t, as, clock, func(s *Settings) { s.Cache = mc })
			tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})
			require.NoError(t, mc.Set(context.Background(), v.CacheKey(tok), []byte(bad), time.Hour))
			got, err := v.Verify(context.Background(), tok)
			require.NoError(t, err)
			assert.Equal(t, "alice", got.Subject, "the server decided")
			assert.Equal(t, int64(1), as.RequestsFor(tok))
			assert.Positive(t, v.Stats().CacheErrors)
		})
	}
}

// TestStaleAnswersRunEveryCheck shows that every check runs again on a
// stale answer, with the reading verifier's settings and at the current
// time: a verifier that shares a store with one that accepted the token
// refuses it, stale, for its own issuer, audience, scopes and token_use,
// and a bound token needs its proof.
func TestStaleAnswersRunEveryCheck(t *testing.T) {
	tests := []struct {
		name string
		opts introspectiontest.TokenOptions
		edit func(*Settings)
		want error
	}{
		{"issuer", introspectiontest.TokenOptions{}, func(s *Settings) { s.Issuer = "https://other.example" }, ErrIssuerMismatch},
		{"audience", introspectiontest.TokenOptions{Audience: []string{"mcp"}}, func(s *Settings) { s.Audience = []string{"other"} }, ErrAudienceMismatch},
		{"scopes", introspectiontest.TokenOptions{Scopes: []string{"read"}}, func(s *Settings) { s.RequiredScopes = []string{"admin"} }, ErrInsufficientScope},
		{"token_use", introspectiontest.TokenOptions{TokenUse: "refresh_token"}, nil, ErrNotAccessToken},
		{"DPoP-bound", introspectiontest.TokenOptions{Extra: map[string]any{"token_type": "DPoP", "cnf": map[string]any{"jkt": "k"}}}, nil, ErrProofRequired},
		{"certificate-bound", introspectiontest.TokenOptions{Extra: map[string]any{"cnf": map[string]any{"x5t#S256": "c"}}}, nil, ErrProofRequired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			as := newAS(t, clock)
			mc := newMapCache(clock.Now)
			shared := func(s *Settings) { s.Cache = mc }
			writer := staleVerifier(t, as, clock, shared)
			tok := as.Issue(tc.opts)
			_, _ = writer.Verify(context.Background(), tok)
			waitUntilIdle(t, writer)
			require.Equal(t, 1, mc.len(), "the answer is stored")

			reader := staleVerifier(t, as, clock, func(s *Settings) {
				shared(s)
				if tc.edit != nil {
					tc.edit(s)
				}
			})
			clock.Advance(staleTestTTL)
			down(as)
			_, err := reader.Verify(context.Background(), tok)
			assert.ErrorIs(t, err, tc.want)
			st := reader.Stats()
			assert.Equal(t, uint64(1), st.StaleServed)
			assert.Zero(t, st.Accepted)
			assert.Zero(t, st.Failed)
		})
	}

	t.Run("nbf at the current time", func(t *testing.T) {
		cacheKinds(t, func(t *testing.T, withCache func(*Settings)) {
			clock := newFakeClock()
			as := newAS(t, clock)
			v := staleVerifier(t, as, clock, withCache)
			tok := as.Issue(introspectiontest.TokenOptions{NotBefore: clock.Now().Add(3 * time.Minute)})
			_, err := v.Verify(context.Background(), tok)
			require.ErrorIs(t, err, ErrTokenNotYetValid)
			waitUntilIdle(t, v)
			down(as)
			clock.Advance(2 * time.Minute)
			_, err = v.Verify(context.Background(), tok)
			assert.ErrorIs(t, err, ErrTokenNotYetValid, "stale, and not valid yet")
			clock.Advance(time.Minute)
			got, err := v.Verify(context.Background(), tok)
			require.NoError(t, err, "stale, and valid now")
			assert.True(t, got.Stale)
			assert.Equal(t, uint64(2), v.Stats().StaleServed)
		})
	})

	t.Run("certificate binding with the request's certificate", func(t *testing.T) {
		cacheKinds(t, func(t *testing.T, withCache func(*Settings)) {
			mine, other := selfSigned(t, "mine"), selfSigned(t, "other")
			clock := newFakeClock()
			as := newAS(t, clock)
			v := staleVerifier(t, as, clock, withCache)
			tok := as.Issue(introspectiontest.TokenOptions{Extra: map[string]any{"cnf": map[string]any{"x5t#S256": x5t(mine)}}})
			from := func(c tls.Certificate) possession {
				return possession{r: withPeer(httptest.NewRequest("GET", "/", nil), c)}
			}
			_, err := v.verify(context.Background(), tok, from(mine))
			require.NoError(t, err)
			waitUntilIdle(t, v)
			clock.Advance(staleTestTTL)
			down(as)

			got, err := v.verify(context.Background(), tok, from(mine))
			require.NoError(t, err)
			assert.True(t, got.Stale)
			_, err = v.verify(context.Background(), tok, from(other))
			assert.ErrorIs(t, err, ErrProofMismatch)
			_, err = v.Verify(context.Background(), tok)
			assert.ErrorIs(t, err, ErrProofRequired)
			assert.Equal(t, uint64(3), v.Stats().StaleServed)
		})
	})
}

// TestStaleDPoPTokenNeedsItsProof shows a DPoP-bound token served stale
// through the middleware: the proof is checked as for a fresh answer (its
// key, its jti once), and the handler sees the token flagged Stale.
func TestStaleDPoPTokenNeedsItsProof(t *testing.T) {
	cacheKinds(t, func(t *testing.T, withCache func(*Settings)) {
		clock := newFakeClock()
		as := newAS(t, clock)
		key, stranger := newProver(t, clock.Now), newProver(t, clock.Now)
		v := staleVerifier(t, as, clock, withCache)
		tok := as.Issue(introspectiontest.TokenOptions{Scopes: []string{"mcp"}, Extra: map[string]any{
			"token_type": "DPoP", "cnf": map[string]any{"jkt": key.thumb},
		}})
		var seen *AccessToken
		h := RequireBearerToken(v, nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen, _ = AccessTokenFromContext(r.Context())
			w.WriteHeader(http.StatusNoContent)
		}))
		serve := func(proof string) int {
			seen = nil
			w := httptest.NewRecorder()
			h.ServeHTTP(w, dpopRequest("GET", "DPoP "+tok, proof))
			return w.Code
		}
		require.Equal(t, http.StatusNoContent, serve(key.proof(t, "GET", dpopTarget, tok, nil)))
		require.False(t, seen.Stale)
		waitUntilIdle(t, v)

		clock.Advance(staleTestTTL)
		down(as)
		proof := key.proof(t, "GET", dpopTarget, tok, nil)
		assert.Equal(t, http.StatusNoContent, serve(proof))
		require.NotNil(t, seen)
		assert.True(t, seen.Stale, "the handler can tell")
		assert.Equal(t, http.StatusUnauthorized, serve(proof), "the proof's jti was recorded")
		assert.Equal(t, http.StatusUnauthorized, serve(stranger.proof(t, "GET", dpopTarget, tok, nil)), "another key")
		assert.Nil(t, seen)
	})
}

// TestInactiveAnswersServedStale shows that an inactive answer is served
// stale too, which only ever refuses: an unknown token, and a revoked
// token whose inactive answer replaced the active one.
func TestInactiveAnswersServedStale(t *testing.T) {
	cacheKinds(t, func(t *testing.T, withCache func(*Settings)) {
		clock := newFakeClock()
		as := newAS(t, clock)
		v := staleVerifier(t, as, clock, func(s *Settings) {
			s.NegativeCacheTTL = 20 * time.Second
			withCache(s)
		})
		revoked := as.Issue(introspectiontest.TokenOptions{})
		fill(t, v, revoked)
		clock.Advance(staleTestTTL)
		as.Revoke(revoked)
		for _, tok := range []string{revoked, "unknown"} {
			_, err := v.Verify(context.Background(), tok)
			require.ErrorIs(t, err, ErrTokenInactive)
		}
		waitUntilIdle(t, v)

		clock.Advance(time.Minute) // past NegativeCacheTTL
		down(as)
		for _, tok := range []string{revoked, "unknown"} {
			_, err := v.Verify(context.Background(), tok)
			assert.ErrorIs(t, err, ErrTokenInactive, "stale, and inactive")
		}
		st := v.Stats()
		assert.Equal(t, uint64(2), st.StaleServed)
		assert.Zero(t, st.Failed)
		assert.Equal(t, uint64(4), st.Rejected)
	})
}

// TestStaleVerdictsLoggedOncePerInterval shows the warning about stale
// answers: at warn level, without the token, at most one record per
// staleLogInterval of Settings.Now, counting the stale verdicts since the
// last one; a clock that steps back does not silence it.
func TestStaleVerdictsLoggedOncePerInterval(t *testing.T) {
	clock := newFakeClock()
	as := newAS(t, clock)
	logs := &recordingHandler{}
	v := staleVerifier(t, as, clock, func(s *Settings) { s.Logger = slog.New(logs) })
	tok := as.Issue(introspectiontest.TokenOptions{Lifetime: 24 * time.Hour})
	fill(t, v, tok)
	clock.Advance(staleTestTTL + time.Minute)
	down(as)
	verify := func() {
		t.Helper()
		got, err := v.Verify(context.Background(), tok)
		require.NoError(t, err)
		require.True(t, got.Stale)
	}
	const msg = "serving stale answers"
	served := func(i int) string {
		t.Helper()
		recs := logs.matching(msg)
		require.Greater(t, len(recs), i)
		assert.Equal(t, slog.LevelWarn, recs[i].Level)
		n, ok := attr(recs[i], "served")
		assert.True(t, ok)
		return n
	}

	for range 5 {
		verify()
	}
	assert.Len(t, logs.matching(msg), 1)
	assert.Equal(t, "1", served(0))
	cause, _ := attr(logs.matching(msg)[0], "error")
	assert.Contains(t, cause, "HTTP 503", "why the server failed")
	clock.Advance(staleLogInterval - time.Nanosecond)
	verify()
	assert.Len(t, logs.matching(msg), 1, "within the interval")
	clock.Advance(time.Nanosecond)
	verify()
	assert.Len(t, logs.matching(msg), 2, "once the interval has passed")
	assert.Equal(t, "6", served(1), "the verdicts since the last record")

	clock.Advance(-30 * time.Second)
	verify()
	assert.Len(t, logs.matching(msg), 3, "a clock that stepped back")
	assert.NotContains(t, logs.text(), tok)
	assert.Equal(t, uint64(8), v.Stats().StaleServed)
}

// TestStaleServedToConcurrentCallersWithOneRequest shows that during an
// outage the callers of one token share one request, as ever, and each
// gets the stale verdict from it.
func TestStaleServedToConcurrentCallersWithOneRequest(t *testing.T) {
	cacheKinds(t, func(t *testing.T, withCache func(*Settings)) {
		const n = 200
		clock := newFakeClock()
		var (
			v        *Verifier
			outage   atomic.Bool
			failures atomic.Int32
		)
		exp := clock.Now().Add(time.Hour).Unix()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			if !outage.Load() {
				fmt.Fprintf(w, `{"active":true,"sub":"alice","exp":%d}`, exp)
				return
			}
			failures.Add(1)
			// Fail once every caller has joined the request (or, if one
			// never does, after a while, so that the test fails on the
			// count rather than hangs).
			for deadline := time.Now().Add(30 * time.Second); v.waiters("hot") < n-1 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			w.WriteHeader(http.StatusServiceUnavailable)
		}))
		t.Cleanup(srv.Close)
		v = newVerifier(t, srv.URL, clock, func(s *Settings) {
			s.CacheTTL = staleTestTTL
			s.StaleIfError = staleTestWindow
			withCache(s)
		})
		fill(t, v, "hot")
		clock.Advance(staleTestTTL)
		outage.Store(true)

		var wg sync.WaitGroup
		var stale atomic.Int32
		for range n {
			wg.Go(func() {
				got, err := v.Verify(context.Background(), "hot")
				if err == nil && got.Stale && got.Subject == "alice" {
					stale.Add(1)
				}
			})
		}
		wg.Wait()
		assert.Equal(t, int32(n), stale.Load())
		assert.Equal(t, int32(1), failures.Load(), "one upstream request during the outage")
		st := v.Stats()
		assert.Equal(t, uint64(n), st.StaleServed)
		assert.Equal(t, uint64(n-1), st.CollapsedWaiters)
		assert.Equal(t, uint64(1), st.Failures[FailureStatus])
		assert.Zero(t, st.Failed)
	})
}

// TestStaleNotServedToACallerWhoLeft shows that a caller whose own context
// ends gets its context's error, not a stale verdict.
func TestStaleNotServedToACallerWhoLeft(t *testing.T) {
	clock := newFakeClock()
	as := newAS(t, clock)
	v := staleVerifier(t, as, clock, nil)
	tok := as.Issue(introspectiontest.TokenOptions{})
	fill(t, v, tok)
	clock.Advance(staleTestTTL)
	as.SetFault(introspectiontest.Fault{Latency: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for v.waiters(tok) < 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	_, err := v.Verify(ctx, tok)
	assert.ErrorIs(t, err, context.Canceled)
	st := v.Stats()
	assert.Zero(t, st.StaleServed)
	assert.Equal(t, uint64(1), st.Canceled)
	assert.Zero(t, st.Failed)
	as.Close() // ends the shared request
}

// TestStaleEntriesCountAgainstMaxCacheSize shows that entries kept for
// StaleIfError count against MaxCacheSize: at the bound, storing one more
// answer evicts one, an entry past its end before a fresh one, even one
// used since.
func TestStaleEntriesCountAgainstMaxCacheSize(t *testing.T) {
	clock := newFakeClock()
	c := newMemoryCache(3, clock.Now)
	c.stale = staleTestWindow
	a := &answer{active: true}
	ctx := context.Background()
	c.set(ctx, "old", a, staleTestTTL)
	clock.Advance(staleTestTTL)
	c.set(ctx, "fresh-1", a, staleTestTTL)
	c.set(ctx, "fresh-2", a, staleTestTTL)
	require.Equal(t, 3, c.len(), "at the bound")
	_, _, ok := c.lookup(ctx, "old", clock.Now()) // used, stale
	require.True(t, ok)

	c.set(ctx, "new", a, staleTestTTL)
	assert.Equal(t, 3, c.len(), "one past the bound")
	_, _, ok = c.lookup(ctx, "old", clock.Now())
	assert.False(t, ok, "the entry past its end left first")
	for _, k := range []string{"fresh-1", "fresh-2", "new"} {
		_, ok := c.get(ctx, k, clock.Now())
		assert.True(t, ok, k)
	}
}

// TestStaleEntriesLeaveAtTheirEnd shows that the built-in cache keeps an
// entry StaleIfError past its end and no longer: the sweep removes it then.
func TestStaleEntriesLeaveAtTheirEnd(t *testing.T) {
	clock := newFakeClock()
	c := newMemoryCache(10, clock.Now)
	c.stale = staleTestWindow
	a := &answer{active: true}
	ctx := context.Background()
	c.set(ctx, "tok", a, staleTestTTL)
	clock.Advance(staleTestTTL + staleTestWindow - time.Nanosecond)
	_, ok := c.get(ctx, "tok", clock.Now())
	assert.False(t, ok, "past its end, not fresh")
	_, fresh, ok := c.lookup(ctx, "tok", clock.Now())
	require.True(t, ok, "kept until StaleIfError has passed")
	assert.Equal(t, clock.Now().Add(-staleTestWindow+time.Nanosecond), fresh)
	clock.Advance(time.Nanosecond)
	_, _, ok = c.lookup(ctx, "tok", clock.Now())
	assert.False(t, ok)
	clock.Advance(sweepInterval)
	c.set(ctx, "other", a, staleTestTTL) // sweeps
	assert.Equal(t, 1, c.len())
}

// TestServerCouldNotAnswer checks which failures of the fetch let a stale
// answer be used: every kind but a 4xx other than 429, which is the
// server's answer about the request.
func TestServerCouldNotAnswer(t *testing.T) {
	tests := []struct {
		err  *IntrospectionError
		want bool
	}{
		{&IntrospectionError{Kind: FailureTransport}, true},
		{&IntrospectionError{Kind: FailureTimeout}, true},
		{&IntrospectionError{Kind: FailureRedirect, StatusCode: 302}, true},
		{&IntrospectionError{Kind: FailureContentType, StatusCode: 200}, true},
		{&IntrospectionError{Kind: FailureTooLarge, StatusCode: 200}, true},
		{&IntrospectionError{Kind: FailureMalformed, StatusCode: 200}, true},
		{&IntrospectionError{Kind: FailurePanic}, true},
		{&IntrospectionError{Kind: FailureKind("unavailable")}, true},
		{&IntrospectionError{Kind: FailureStatus, StatusCode: 204}, true},
		{&IntrospectionError{Kind: FailureStatus, StatusCode: 399}, true},
		{&IntrospectionError{Kind: FailureStatus, StatusCode: 400}, false},
		{&IntrospectionError{Kind: FailureStatus, StatusCode: 401}, false},
		{&IntrospectionError{Kind: FailureStatus, StatusCode: 428}, false},
		{&IntrospectionError{Kind: FailureStatus, StatusCode: 429}, true},
		{&IntrospectionError{Kind: FailureStatus, StatusCode: 430}, false},
		{&IntrospectionError{Kind: FailureStatus, StatusCode: 499}, false},
		{&IntrospectionError{Kind: FailureStatus, StatusCode: 500}, true},
		{&IntrospectionError{Kind: FailureStatus, StatusCode: 503}, true},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s %d", tc.err.Kind, tc.err.StatusCode), func(t *testing.T) {
			assert.Equal(t, tc.want, serverCouldNotAnswer(tc.err))
		})
	}
}

// TestStaleIfErrorSettings checks the setting: negative is an error, it
// needs CacheTTL, and Settings shows it.
func TestStaleIfErrorSettings(t *testing.T) {
	valid := Settings{IntrospectionURL: "https://as.example.com/introspect", ClientID: "rs", ClientSecret: "s", CacheTTL: time.Minute}
	tests := []struct {
		name    string
		edit    func(*Settings)
		wantErr string
	}{
		{"zero", func(*Settings) {}, ""},
		{"positive", func(s *Settings) { s.StaleIfError = time.Nanosecond }, ""},
		{"negative", func(s *Settings) { s.StaleIfError = -time.Nanosecond }, "introspection: StaleIfError must not be negative, got -1ns"},
		{"without CacheTTL", func(s *Settings) {
			s.CacheTTL = 0
			s.NegativeCacheTTL = time.Minute
			s.StaleIfError = time.Minute
		}, "introspection: StaleIfError needs CacheTTL: stale answers are cache entries kept longer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := valid
			tc.edit(&s)
			v, err := NewVerifier(s)
			if tc.wantErr == "" {
				require.NoError(t, err)
				require.NoError(t, v.Close())
				return
			}
			assert.EqualError(t, err, tc.wantErr)
		})
	}
	s := valid
	s.StaleIfError = 5 * time.Minute
	assert.Contains(t, s.String(), "StaleIfError:5m0s")
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("settings", "s", s)
	assert.Contains(t, b.String(), "s.stale_if_error=5m0s")
}

// TestAccessTokenShowsStale shows that String and LogValue say when a
// token was served stale, and say nothing of it otherwise; JSON leaves it
// out.
func TestAccessTokenShowsStale(t *testing.T) {
	for _, stale := range []bool{false, true} {
		t.Run(fmt.Sprint(stale), func(t *testing.T) {
			tok := &AccessToken{Token: "secret-token", ClientID: "app", Stale: stale}
			assert.Equal(t, stale, strings.Contains(tok.String(), "Stale:true"), tok.String())
			var b strings.Builder
			slog.New(slog.NewTextHandler(&b, nil)).Info("verified", "token", tok)
			assert.Equal(t, stale, strings.Contains(b.String(), "token.stale=true"), b.String())
			assert.NotContains(t, tok.String()+b.String(), "secret-token")
			j, err := json.Marshal(tok)
			require.NoError(t, err)
			assert.NotContains(t, strings.ToLower(string(j)), "stale")
		})
	}
}
