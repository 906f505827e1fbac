package introspection

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFetchSaysWhoElseHoldsTheAnswer checks the promise of fetch's
// exclusive result, on which the copying of an AccessToken's parts rests:
// only a caller that neither shared the request nor went through a cache
// may keep the answer's parts, and such a caller is told so.
func TestFetchSaysWhoElseHoldsTheAnswer(t *testing.T) {
	tests := []struct {
		name      string
		cached    bool
		joiners   int
		exclusive bool
	}{
		{"alone, no cache", false, 0, true},
		{"with a caller who joined", false, 1, false},
		{"with two callers who joined", false, 2, false},
		{"alone, with a cache", true, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			as := newAS(t, nil)
			tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{"read"}})
			release := make(chan struct{})
			var once sync.Once
			t.Cleanup(func() { once.Do(func() { close(release) }) })
			v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
				if tc.cached {
					s.CacheTTL = time.Minute
				}
				s.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
					<-release // the answer waits until every caller is in
					return http.DefaultTransport.RoundTrip(r)
				})}
			})

			type result struct {
				a         *answer
				exclusive bool
				err       error
			}
			results := make(chan result, 1+tc.joiners)
			call := func() {
				a, exclusive, err := v.fetch(context.Background(), tok)
				results <- result{a, exclusive, err}
			}
			go call()
			require.Eventually(t, func() bool { return v.waiters(tok) == 0 }, 10*time.Second, time.Millisecond)
			for range tc.joiners {
				go call()
			}
			require.Eventually(t, func() bool { return v.waiters(tok) == tc.joiners }, 10*time.Second, time.Millisecond)
			once.Do(func() { close(release) })

			var first *answer
			exclusive := 0
			for range 1 + tc.joiners {
				r := <-results
				require.NoError(t, r.err)
				if first == nil {
					first = r.a
				}
				assert.Same(t, first, r.a, "one request, one answer")
				if r.exclusive {
					exclusive++
				}
			}
			if tc.exclusive {
				assert.Equal(t, 1, exclusive, "the only holder of the answer may keep it")
			} else {
				assert.Zero(t, exclusive, "an answer that others hold is never handed over as the caller's own")
			}
			assert.Equal(t, int64(1), as.RequestsFor(tok))
		})
	}
}

// TestStaleAnswerBeingStoredIsNotShared holds the Set that stores an
// answer until the entry it makes would be over: a caller arriving then
// must not get that answer from the shared request, but ask the
// authorization server, which has revoked the token meanwhile.
func TestStaleAnswerBeingStoredIsNotShared(t *testing.T) {
	clock := newFakeClock()
	as := newAS(t, clock)
	tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Lifetime: 24 * time.Hour})
	mc := newMapCache(clock.Now)
	v := newVerifier(t, as.IntrospectionURL, clock, func(s *Settings) {
		s.CacheTTL = time.Minute
		s.Cache = mc
	})
	entered, release := holdSets(t, v, mc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	got, err := v.Verify(ctx, tok)
	require.NoError(t, err)
	assert.Equal(t, "alice", got.Subject)
	<-entered
	require.Equal(t, 1, v.inFlight(), "the Set still hangs")

	as.Revoke(tok)
	clock.Advance(2 * time.Minute) // past the end of the entry being stored
	_, err = v.Verify(ctx, tok)
	assert.ErrorIs(t, err, ErrTokenInactive, "the authorization server's new answer")
	assert.Equal(t, int64(2), as.RequestsFor(tok))
	assert.Zero(t, v.Stats().CollapsedWaiters)

	release()
	waitUntilIdle(t, v)
}

// jumpingClock reads start for its first reads, then start plus jump:
// a clock that moves on at a chosen point of the verifier's work.
type jumpingClock struct {
	start time.Time
	jump  time.Duration
	after int32 // reads before the jump
	reads atomic.Int32
}

func (c *jumpingClock) Now() time.Time {
	if c.reads.Add(1) > c.after {
		return c.start.Add(c.jump)
	}
	return c.start
}

// TestCacheNeverGetsAnEntryThatIsOver has Settings.Now reach the end of the
// entry between the answer and its store: a Cache must then be handed
// nothing, as its TTL is always positive (a store such as Redis keeps a key
// with no TTL for ever).
func TestCacheNeverGetsAnEntryThatIsOver(t *testing.T) {
	as := newAS(t, nil)
	tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Lifetime: 24 * time.Hour})
	// Verify reads the clock for its cache lookup, the shared request for
	// its own lookup and for the time of the answer; the store (and the
	// check of the answer) read it after the jump, at the entry's end.
	clock := &jumpingClock{start: time.Now(), jump: time.Minute, after: 3}
	mc := newMapCache(time.Now)
	v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
		s.CacheTTL = time.Minute
		s.Cache = mc
		s.Now = clock.Now
	})
	got, err := v.Verify(context.Background(), tok)
	require.NoError(t, err)
	assert.Equal(t, "alice", got.Subject)
	waitUntilIdle(t, v)
	require.GreaterOrEqual(t, clock.reads.Load(), int32(5), "the store read the clock")
	mc.mu.Lock()
	defer mc.mu.Unlock()
	assert.Empty(t, mc.ttls, "an entry that is over is not handed to the Cache")
	assert.Zero(t, v.Stats().CacheErrors)
}

// TestCloseWaitsForASharedRequestUsingItsBounds has a shared request use
// nearly all its time for the cache lookup and the store (each honours its
// context and ends within the cache call timeout): Close returns only once
// that request is over, not when the request alone would have been.
func TestCloseWaitsForASharedRequestUsingItsBounds(t *testing.T) {
	as := newAS(t, nil)
	tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})
	mc := newMapCache(time.Now)
	v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
		s.CacheTTL = time.Minute
		s.Cache = mc
		s.Timeout = 500 * time.Millisecond
	})
	var gets atomic.Int32
	mc.beforeGet = func(ctx context.Context) error {
		if gets.Add(1) == 1 {
			return nil // the caller's own lookup, before the shared request
		}
		// The shared request's lookup: slow, yet within its bound.
		select {
		case <-time.After(cacheCallTimeout * 9 / 10):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	mc.beforeSet = blockUntilDone // the store takes its whole bound
	got, err := v.Verify(context.Background(), tok)
	require.NoError(t, err)
	assert.Equal(t, "alice", got.Subject)
	require.Equal(t, 1, v.inFlight(), "the answer is being stored")

	require.NoError(t, v.Close())
	assert.Zero(t, v.inFlight(), "Close returned once the shared request was over")
	assert.Equal(t, uint64(1), v.Stats().CacheErrors, "the store ran out of its time")
}

// TestVerificationsAddUpEveryOutcome checks that Stats.Verifications is
// the sum of its parts, with each outcome counted once.
func TestVerificationsAddUpEveryOutcome(t *testing.T) {
	as := newAS(t, nil)
	v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) { s.RequiredScopes = []string{"read"} })
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	bg := context.Background()

	_, err := v.Verify(bg, as.Issue(introspectiontest.TokenOptions{Scopes: []string{"read"}}))
	require.NoError(t, err)
	_, err = v.Verify(bg, "never-issued")
	require.ErrorIs(t, err, ErrInvalidToken)
	_, err = v.Verify(bg, as.Issue(introspectiontest.TokenOptions{Scopes: []string{"write"}}))
	require.ErrorIs(t, err, ErrInsufficientScope)
	_, err = v.Verify(canceled, "any-token")
	require.ErrorIs(t, err, context.Canceled)
	as.SetFault(introspectiontest.Fault{Status: http.StatusInternalServerError})
	_, err = v.Verify(bg, as.Issue(introspectiontest.TokenOptions{}))
	require.ErrorIs(t, err, ErrIntrospectionFailed)

	st := v.Stats()
	for name, n := range map[string]uint64{"Accepted": st.Accepted, "Rejected": st.Rejected,
		"InsufficientScope": st.InsufficientScope, "Failed": st.Failed, "Canceled": st.Canceled} {
		assert.Equal(t, uint64(1), n, name)
	}
	assert.Equal(t, uint64(5), st.Verifications)
}

// TestOwnTransportNeverWaitsForever checks the verifier's own transport:
// net/http reads a zero timeout as no limit, so each one it sets must be
// positive, and its idle connections must end by themselves.
func TestOwnTransportNeverWaitsForever(t *testing.T) {
	v := newVerifier(t, "https://as.example/introspect", nil, nil)
	require.NotNil(t, v.transport)
	for name, d := range map[string]time.Duration{
		"TLSHandshakeTimeout":   v.transport.TLSHandshakeTimeout,
		"IdleConnTimeout":       v.transport.IdleConnTimeout,
		"ExpectContinueTimeout": v.transport.ExpectContinueTimeout,
	} {
		assert.Positive(t, d, name)
		assert.LessOrEqual(t, d, 5*time.Minute, name)
	}
	assert.Same(t, v.transport, v.client.Transport)
	assert.True(t, errors.Is(v.client.CheckRedirect(nil, nil), http.ErrUseLastResponse), "redirects are never followed")
}
