package introspection

import (
	"context"
	"testing"
	"time"

	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStaleServedWhileBreakerOpen opens the breaker with failures of the
// server and then verifies one token, 20 times, as each row says: a stale
// answer within its window is served, or an inactive one refuses, where
// Verify would otherwise fail at once with FailureUnavailable, as it does
// for a token never seen, once the window has ended, and at the token's
// exp. No call reaches the server while the breaker is open: each counts
// as a request the breaker did not send.
func TestStaleServedWhileBreakerOpen(t *testing.T) {
	const calls = 20
	tests := []struct {
		name     string
		lifetime time.Duration // of the token; zero: a token the server never issued
		fill     bool          // verified while the server was up
		after    time.Duration // since the breaker opened, when the entry had just ended
		want     error         // nil: accepted stale
		stale    bool          // the verdict comes from a stale answer
	}{
		{"active answer", 24 * time.Hour, true, 0, nil, true},
		{"active answer, just before the window ends", 24 * time.Hour, true, staleTestWindow - time.Millisecond, nil, true},
		{"active answer, the window ended", 24 * time.Hour, true, staleTestWindow, ErrIntrospectionFailed, false},
		{"active answer, at exp", 5 * time.Minute, true, 5*time.Minute - staleTestTTL, ErrIntrospectionFailed, false},
		{"inactive answer", 0, true, 0, ErrTokenInactive, true},
		{"token never seen", 24 * time.Hour, false, 0, ErrIntrospectionFailed, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cacheKinds(t, func(t *testing.T, withCache func(*Settings)) {
				clock := newFakeClock()
				as := newAS(t, clock)
				v, u := breakerVerifier(t, as.IntrospectionURL, clock, func(s *Settings) {
					s.CacheTTL = staleTestTTL
					s.NegativeCacheTTL = staleTestTTL
					s.StaleIfError = staleTestWindow
					// Open longer than the window: no probe in this test.
					s.BreakerMinBackoff = time.Hour
					s.BreakerMaxBackoff = time.Hour
					withCache(s)
				})
				tok := unknownToken(1000)
				if tc.lifetime != 0 {
					tok = as.Issue(introspectiontest.TokenOptions{Subject: "alice", Lifetime: tc.lifetime})
				}
				switch {
				case tc.fill && tc.lifetime != 0:
					fill(t, v, tok)
				case tc.fill:
					_, err := v.Verify(context.Background(), tok)
					require.ErrorIs(t, err, ErrTokenInactive)
					waitUntilIdle(t, v)
				}

				clock.Advance(staleTestTTL) // the entry has ended
				down(as)
				for i := range 3 { // BreakerThreshold
					_, err := v.Verify(context.Background(), unknownToken(i))
					require.Equal(t, FailureStatus, kindOf(err), "failure %d: %v", i+1, err)
				}
				require.Equal(t, BreakerOpen, v.Stats().Breaker)
				clock.Advance(tc.after)
				before, tried, served := v.Stats(), u.calls.Load(), as.Requests()

				for range calls {
					got, err := v.Verify(context.Background(), tok)
					if tc.want == nil {
						require.NoError(t, err)
						assert.True(t, got.Stale)
						assert.Equal(t, "alice", got.Subject)
						continue
					}
					require.ErrorIs(t, err, tc.want)
					assert.Nil(t, got)
					if tc.want == ErrIntrospectionFailed {
						requireUnavailable(t, err)
					}
				}
				_, err := v.Verify(context.Background(), unknownToken(2000))
				requireUnavailable(t, err) // what every call got from the breaker

				st := v.Stats()
				assert.Equal(t, tried, u.calls.Load(), "no request tried while the breaker is open")
				assert.Equal(t, served, as.Requests(), "no request served while the breaker is open")
				assert.Equal(t, before.UpstreamRequests, st.UpstreamRequests)
				assert.Equal(t, before.Failures[FailureUnavailable]+calls+1, st.Failures[FailureUnavailable],
					"each call's request is one the breaker did not send")
				assert.Equal(t, BreakerOpen, st.Breaker)
				assert.Equal(t, uint64(1), st.BreakerOpened)
				if tc.stale {
					assert.Equal(t, before.StaleServed+calls, st.StaleServed)
					assert.Equal(t, before.Failed+1, st.Failed, "a stale verdict is not a failed call")
				} else {
					assert.Equal(t, before.StaleServed, st.StaleServed)
					assert.Equal(t, before.Failed+calls+1, st.Failed)
				}
			})
		})
	}
}
