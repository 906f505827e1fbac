package introspection

import (
	"context"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// goexitTransport ends the goroutine of its first round trip with
// runtime.Goexit, as a t.FailNow in a test double does, and answers the
// others from rt.
type goexitTransport struct {
	rt    http.RoundTripper
	calls atomic.Int32
}

func (g *goexitTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if g.calls.Add(1) == 1 {
		runtime.Goexit()
	}
	return g.rt.RoundTrip(r)
}

// TestSharedRequestThatEndsWithoutAnAnswerReleasesTheToken has the
// transport end the shared request's goroutine without a panic or an
// answer. Its callers get an error, and the token is not wedged: the next
// call makes a request of its own and gets the server's verdict.
func TestSharedRequestThatEndsWithoutAnAnswerReleasesTheToken(t *testing.T) {
	cacheKinds(t, func(t *testing.T, withCache func(*Settings)) {
		as := newAS(t, nil)
		tok := as.Issue(introspectiontest.TokenOptions{})
		tr := &goexitTransport{rt: http.DefaultTransport}
		v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
			s.HTTPClient = &http.Client{Transport: tr}
			s.CacheTTL = time.Minute
			withCache(s)
		})
		first, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := v.Verify(first, tok)
		require.ErrorIs(t, err, ErrIntrospectionFailed, "the first call fails, not its context")

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		got, err := v.Verify(ctx, tok)
		require.NoError(t, err, "the token must not stay wedged")
		assert.Equal(t, "app", got.ClientID)
		assert.EqualValues(t, 2, tr.calls.Load())
		waitUntilIdle(t, v)
		s := v.Stats()
		assert.EqualValues(t, 2, s.Verifications)
		assert.EqualValues(t, 1, s.Failed)
	})
}

// backwardClock goes back a minute each time it is read, as a wall clock
// stepped back by NTP would between two readings.
type backwardClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *backwardClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(-time.Minute)
	return c.t
}

// TestBackwardClockNeverLengthensAnEntry has Settings.Now go back while the
// answer is fetched and stored: the TTL handed to the Cache must never
// exceed CacheTTL, nor reach past the token's exp.
func TestBackwardClockNeverLengthensAnEntry(t *testing.T) {
	clock := &backwardClock{t: time.Now()}
	as := newAS(t, nil)
	tok := as.Issue(introspectiontest.TokenOptions{Lifetime: 24 * time.Hour})
	mc := newMapCache(time.Now)
	v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
		s.CacheTTL = time.Minute
		s.Cache = mc
		s.Now = clock.Now
		s.Leeway = time.Hour // the clock's steps never reject the token
	})
	_, err := v.Verify(context.Background(), tok)
	require.NoError(t, err)
	waitUntilIdle(t, v)
	mc.mu.Lock()
	defer mc.mu.Unlock()
	require.Len(t, mc.ttls, 1)
	assert.LessOrEqual(t, mc.ttls[0], time.Minute)
}
