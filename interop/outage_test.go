package interop

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/interop/oidcprovider"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fixedClock is a Settings.Now that moves only when told to.
type fixedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fixedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fixedClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// countingTransport counts the introspection requests a verifier tries to
// send, whether or not they reach the server.
type countingTransport struct {
	rt    http.RoundTripper
	tries atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.tries.Add(1)
	return c.rt.RoundTrip(r)
}

// Breaker settings of TestOutageInterop: it opens after outageThreshold
// failures for outageBackoff, up to a fifth longer with jitter.
const (
	outageThreshold = 3
	outageBackoff   = 30 * time.Second
)

// TestOutageInterop stops oidc-provider while tokens are verified through
// RequireBearerToken, with CacheTTL, StaleIfError and the circuit breaker,
// and starts it again on the same port: an unknown token gets 503 with
// Retry-After; the breaker opens after its threshold of refused
// connections, and then Verify fails at once without a request; the
// middleware's Retry-After is the breaker's RetryAfter in whole seconds and
// shrinks with it; a token verified before the outage keeps working, with
// AccessToken.Stale set; once the provider is back, the probe verifies a
// new token and closes the breaker, and the restarted provider, which
// forgot the old tokens, refuses them: a stale answer never replaces the
// server's.
func TestOutageInterop(t *testing.T) {
	p := oidcprovider.Start(t)
	clock := &fixedClock{t: time.Now()}
	rt := &http.Transport{}
	t.Cleanup(rt.CloseIdleConnections)
	ct := &countingTransport{rt: rt}
	v := verifier(t, p, func(s *introspection.Settings) {
		s.HTTPClient = &http.Client{Transport: ct}
		s.Now = clock.Now
		s.CacheTTL = time.Minute
		s.StaleIfError = 10 * time.Minute
		s.BreakerThreshold = outageThreshold
		s.BreakerMinBackoff = outageBackoff
		s.BreakerMaxBackoff = 2 * outageBackoff
	})
	srv := httptest.NewServer(introspection.RequireBearerToken(v, &introspection.MiddlewareOptions{
		Scopes: []string{"mcp:tools"},
	})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := introspection.AccessTokenFromContext(r.Context())
		freshness := "fresh"
		if tok.Stale {
			freshness = "stale"
		}
		_, _ = fmt.Fprintf(w, "%s %s", freshness, tok.ClientID)
	})))
	t.Cleanup(srv.Close)
	type answer struct {
		code       int
		retryAfter string
		body       string
	}
	get := func(token string) answer {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return answer{resp.StatusCode, resp.Header.Get("Retry-After"), string(b)}
	}
	unknown := func(i int) string { return fmt.Sprintf("unknown-token-%040d", i) }

	seen := p.Token(t, "mcp:tools")
	unseen := p.Token(t, "mcp:tools")
	assert.Equal(t, answer{200, "", "fresh app"}, get(seen))
	require.Eventually(t, func() bool { return v.Stats().CacheEntries == 1 }, 10*time.Second, time.Millisecond,
		"the answer is stored")
	clock.Advance(time.Minute) // the cached answer ended
	p.Stop()

	tries := ct.tries.Load()
	assert.Equal(t, answer{200, "", "stale app"}, get(seen), "a stale answer while the provider is down")
	got := get(unseen)
	assert.Equal(t, http.StatusServiceUnavailable, got.code, "a token never verified")
	assert.Equal(t, "5", got.retryAfter, "a refused connection gives no delay: the default")
	got = get(unknown(0))
	assert.Equal(t, http.StatusServiceUnavailable, got.code)
	assert.Contains(t, got.body, "temporarily_unavailable")
	assert.Equal(t, tries+outageThreshold, ct.tries.Load(), "one request tried per call until the breaker opens")
	st := v.Stats()
	require.Equal(t, introspection.BreakerOpen, st.Breaker)
	assert.Equal(t, uint64(1), st.BreakerOpened)
	assert.Equal(t, uint64(outageThreshold), st.Failures[introspection.FailureTransport])

	tries = ct.tries.Load()
	const fast = 100
	for i := range fast {
		_, err := v.Verify(t.Context(), unknown(1+i))
		var ie *introspection.IntrospectionError
		require.ErrorAs(t, err, &ie)
		require.ErrorIs(t, err, introspection.ErrIntrospectionFailed)
		require.Equal(t, introspection.FailureUnavailable, ie.Kind)
		require.Positive(t, ie.RetryAfter)
		require.LessOrEqual(t, ie.RetryAfter, outageBackoff+outageBackoff/5)
	}
	assert.Equal(t, tries, ct.tries.Load(), "the open breaker sends nothing")
	assert.Equal(t, uint64(fast), v.Stats().Failures[introspection.FailureUnavailable])

	var last int
	for step := range 2 {
		_, err := v.Verify(t.Context(), unknown(1000+step))
		var ie *introspection.IntrospectionError
		require.ErrorAs(t, err, &ie)
		require.Equal(t, introspection.FailureUnavailable, ie.Kind)
		want := int((ie.RetryAfter + time.Second - 1) / time.Second)
		got := get(unknown(2000 + step))
		assert.Equal(t, http.StatusServiceUnavailable, got.code)
		assert.Equal(t, strconv.Itoa(want), got.retryAfter, "the breaker's RetryAfter, rounded up")
		if step > 0 {
			assert.Equal(t, last-10, want, "ten seconds later")
		}
		last = want
		clock.Advance(10 * time.Second)
	}
	tok, err := v.Verify(t.Context(), seen)
	require.NoError(t, err)
	assert.True(t, tok.Stale)
	assert.Equal(t, answer{200, "", "stale app"}, get(seen), "stale while the breaker is open")
	assert.Equal(t, tries, ct.tries.Load(), "the open breaker sends nothing")
	assert.Equal(t, introspection.BreakerOpen, v.Stats().Breaker)

	p.Restart(t)
	clock.Advance(outageBackoff) // past the interval, its jitter included
	fresh := p.Token(t, "mcp:tools")
	assert.Equal(t, answer{200, "", "fresh app"}, get(fresh), "the probe")
	assert.Equal(t, tries+1, ct.tries.Load())
	st = v.Stats()
	assert.Equal(t, introspection.BreakerClosed, st.Breaker)
	assert.Equal(t, uint64(1), st.BreakerOpened)

	// The restarted provider keeps no tokens of its earlier run: it calls
	// them inactive, and a stale answer never replaces that.
	for name, token := range map[string]string{"seen": seen, "unseen": unseen} {
		assert.Equal(t, http.StatusUnauthorized, get(token).code, name)
	}
	assert.Equal(t, answer{200, "", "fresh app"}, get(fresh), "cached")
	assert.Equal(t, tries+3, ct.tries.Load(), "the probe, then one request for each old token")
}
