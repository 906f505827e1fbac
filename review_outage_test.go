package introspection

import (
	"context"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// inactiveWithIllTypedMember are 200 answers that say active:false and
// carry one member of the wrong type, which RFC 7662 §2.2 lets an
// authorization server add to an inactive answer (it SHOULD NOT, but the
// verdict is "active": false all the same).
var inactiveWithIllTypedMember = []struct{ name, body string }{
	{"exp negative", `{"active":false,"exp":-1}`},
	{"client_id a number", `{"active":false,"client_id":7}`},
}

// TestReviewNoStaleWhenServerSaysInactiveWithAnIllTypedMember: "Nothing
// stale is used when the server answered, even with active: false", and no
// token is accepted after the server called it inactive. An answer that
// says active:false is the server's answer about the token, whatever else
// it holds: the older active answer must not be served in its place.
func TestReviewNoStaleWhenServerSaysInactiveWithAnIllTypedMember(t *testing.T) {
	for _, tc := range inactiveWithIllTypedMember {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			as := newAS(t, clock)
			v := staleVerifier(t, as, clock, nil)
			tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})
			fill(t, v, tok)

			clock.Advance(staleTestTTL) // the entry has ended; the token is revoked
			as.SetFault(introspectiontest.Fault{Body: tc.body})
			got, err := v.Verify(context.Background(), tok)
			assert.Nil(t, got, "the server called the token inactive, yet it was accepted (stale=%v)", got != nil && got.Stale)
			assert.Error(t, err)
			assert.Zero(t, v.Stats().StaleServed, "nothing stale once the server answered")
		})
	}
}

// TestReviewBreakerNeverOpensForInactiveAnswersWithAnIllTypedMember:
// "active: false ... never trip it (a flood of invalid tokens must not take
// the verifier down)". A server whose inactive answers carry a member of
// the wrong type answers every unknown token: a flood of them must not
// open the breaker.
func TestReviewBreakerNeverOpensForInactiveAnswersWithAnIllTypedMember(t *testing.T) {
	for _, tc := range inactiveWithIllTypedMember {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			as := newAS(t, clock)
			v, u := breakerVerifier(t, as.IntrospectionURL, clock, nil)
			as.SetFault(introspectiontest.Fault{Body: tc.body})
			for i := range 10 {
				_, _ = v.Verify(context.Background(), unknownToken(i))
			}
			s := v.Stats()
			assert.Equal(t, BreakerClosed, s.Breaker, "invalid tokens opened the breaker")
			assert.Zero(t, s.BreakerOpened)
			assert.EqualValues(t, 10, u.calls.Load(), "every unknown token reached the server")
		})
	}
}

// TestReviewBreakerCountsAStatusThatIsNoAnswer: the breaker doc says any
// answer other than a usable one or a 4xx (other than 429) is a failure of
// the server, and stale answers are served for a 2xx other than 200
// (TestServerCouldNotAnswer: 204 and 399 "could not answer"). A server that
// answers 202 or 204 to everything gives no usable answer: the breaker must
// open, as it would for a 5xx, and agree with the stale answers' reading.
func TestReviewBreakerCountsAStatusThatIsNoAnswer(t *testing.T) {
	for _, status := range []int{http.StatusAccepted, http.StatusNoContent} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			clock := newFakeClock()
			srv := jsonServer(t, status, "")
			v, u := breakerVerifier(t, srv.URL, clock, nil)
			for i := range 3 {
				_, err := v.Verify(context.Background(), unknownToken(i))
				var ie *IntrospectionError
				require.ErrorAs(t, err, &ie)
				require.Equal(t, FailureStatus, ie.Kind)
				require.True(t, serverCouldNotAnswer(ie), "stale answers read %d as no answer", status)
				assert.Equal(t, failed, outcomeOf(err), "the breaker reads %d as an answer (1) instead of a failure (2)", status)
			}
			_, err := v.Verify(context.Background(), unknownToken(3))
			assert.Equal(t, FailureUnavailable, kindOf(err), "after three %d in a row: %v", status, err)
			assert.EqualValues(t, 3, u.calls.Load(), "no request once open")
		})
	}
}

// TestReviewCallersNeverWaitForTheDeleteOfAnInactiveAnswer: the Cache doc
// promises "Callers get the authorization server's answer without waiting
// for the Set that stores it". With StaleIfError, an inactive answer that
// is not kept (no NegativeCacheTTL) makes the verifier delete the older
// value from the shared Cache, and it does so before the callers have the
// answer: every unknown token now waits for a Delete round trip, up to its
// one-second deadline. The Delete here returns as soon as the caller has
// its answer; if the caller waits for it, it ends at its deadline instead
// and counts as a cache error.
func TestReviewCallersNeverWaitForTheDeleteOfAnInactiveAnswer(t *testing.T) {
	clock := newFakeClock()
	as := newAS(t, clock)
	answered := make(chan struct{})
	mc := newMapCache(clock.Now)
	mc.beforeDelete = func(ctx context.Context) error {
		select {
		case <-answered:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	v := staleVerifier(t, as, clock, func(s *Settings) { s.Cache = mc })

	_, err := v.Verify(context.Background(), unknownToken(1))
	close(answered)
	require.ErrorIs(t, err, ErrTokenInactive)
	waitUntilIdle(t, v)
	assert.Zero(t, v.Stats().CacheErrors, "the caller waited for the Delete until its deadline")
}

// TestReviewSharedCacheTTLIsAlwaysPositive: the Cache doc promises that
// Set gets a TTL that "is always positive", and StaleIfError has no upper
// bound. With the largest StaleIfError, the fresh TTL plus StaleIfError
// overflows and the Cache is handed a negative TTL (rediscache then stores
// nothing, so no stale answer is ever served). Refusing such a setting
// would keep the promise too.
func TestReviewSharedCacheTTLIsAlwaysPositive(t *testing.T) {
	clock := newFakeClock()
	as := newAS(t, clock)
	mc := newMapCache(clock.Now)
	v, err := NewVerifier(Settings{
		IntrospectionURL: as.IntrospectionURL,
		ClientID:         introspectiontest.ClientID,
		ClientSecret:     introspectiontest.ClientSecret,
		Now:              clock.Now,
		CacheTTL:         staleTestTTL,
		StaleIfError:     math.MaxInt64,
		Cache:            mc,
	})
	if err != nil {
		return // a bound on StaleIfError keeps the promise
	}
	t.Cleanup(func() { _ = v.Close() })
	fill(t, v, as.Issue(introspectiontest.TokenOptions{NoExpiry: true}))
	mc.mu.Lock()
	ttls := append([]time.Duration(nil), mc.ttls...)
	mc.mu.Unlock()
	require.Len(t, ttls, 1)
	assert.Positive(t, ttls[0], "the TTL handed to Set")
}
