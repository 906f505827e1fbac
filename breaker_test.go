package introspection

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
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

// upstreamMode is how an upstream transport answers.
type upstreamMode int32

const (
	passOn   upstreamMode = iota // send the request on
	refuse                       // fail it as a refused connection, sending nothing
	explode                      // panic, as a broken transport might
	inactive                     // answer {"active":false} itself, sending nothing
)

// errRefused is the transport error of an upstream in refuse mode.
var errRefused = errors.New("dial tcp 127.0.0.1:1: connect: connection refused")

// upstream is a RoundTripper between a verifier and its authorization
// server. It counts every request the verifier tries to send and records
// the fake clock's time of each; it can refuse requests, panic, or hold
// each request until released, ignoring the request's context.
type upstream struct {
	rt    http.RoundTripper
	clock *fakeClock
	mode  atomic.Int32 // an upstreamMode, read once a request is released
	calls atomic.Int64 // requests the verifier tried to send
	held  atomic.Int32 // requests waiting for the gate

	mu    sync.Mutex    // guards times and gate
	times []time.Time   // the clock's time of each request
	gate  chan struct{} // while non-nil, requests wait until it is closed
}

func (u *upstream) RoundTrip(r *http.Request) (*http.Response, error) {
	u.calls.Add(1)
	u.mu.Lock()
	if u.clock != nil {
		u.times = append(u.times, u.clock.Now())
	}
	gate := u.gate
	u.mu.Unlock()
	if gate != nil {
		u.held.Add(1)
		<-gate
		u.held.Add(-1)
	}
	switch upstreamMode(u.mode.Load()) {
	case refuse:
		return nil, errRefused
	case explode:
		panic("transport failed")
	case inactive:
		_ = r.Body.Close()
		return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(`{"active":false}`)), Request: r}, nil
	}
	return u.rt.RoundTrip(r)
}

func (u *upstream) setMode(m upstreamMode) { u.mode.Store(int32(m)) }

// hold makes the following requests wait until release is called.
func (u *upstream) hold() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.gate = make(chan struct{})
}

// release lets the held requests, and the following ones, go on.
func (u *upstream) release() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.gate != nil {
		close(u.gate)
		u.gate = nil
	}
}

// attemptTimes returns the clock's time of every request so far.
func (u *upstream) attemptTimes() []time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]time.Time(nil), u.times...)
}

// breakerVerifier returns a verifier of as's endpoint on clock, sending
// through an upstream, with a breaker that opens after 3 failures and
// backs off from 1 to 8 seconds, after edit changes the settings.
func breakerVerifier(t *testing.T, endpoint string, clock *fakeClock, edit func(*Settings)) (*Verifier, *upstream) {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	u := &upstream{rt: tr, clock: clock}
	v := newVerifier(t, endpoint, clock, func(s *Settings) {
		s.HTTPClient = &http.Client{Transport: u}
		s.BreakerThreshold = 3
		s.BreakerMinBackoff = time.Second
		s.BreakerMaxBackoff = 8 * time.Second
		if edit != nil {
			edit(s)
		}
	})
	t.Cleanup(u.release) // before v.Close, which waits for held requests
	return v, u
}

// noJitter makes v's breaker wait exactly the backoff, for tests that
// compare intervals.
func noJitter(v *Verifier) {
	v.breaker.rand = func(n int64) int64 { return n / 2 }
}

// kindOf returns the FailureKind of err, or "" when it is none.
func kindOf(err error) FailureKind {
	var ie *IntrospectionError
	if errors.As(err, &ie) {
		return ie.Kind
	}
	return ""
}

// receive returns the next value of ch, failing the test if none comes
// within ten seconds.
func receive[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		require.FailNow(t, "nothing received")
		panic("unreachable")
	}
}

// expiring is a context that ends with context.DeadlineExceeded when done
// is closed, as one whose deadline passed.
type expiring struct {
	context.Context
	done chan struct{}
}

func (e *expiring) Done() <-chan struct{} { return e.done }

func (e *expiring) Err() error {
	select {
	case <-e.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

// requireUnavailable checks that err is the breaker's answer and returns it.
func requireUnavailable(t *testing.T, err error) *IntrospectionError {
	t.Helper()
	var ie *IntrospectionError
	require.ErrorAs(t, err, &ie)
	require.Equal(t, FailureUnavailable, ie.Kind, "%v", err)
	require.ErrorIs(t, err, ErrIntrospectionFailed)
	require.Positive(t, ie.RetryAfter, "the caller learns when to come back")
	return ie
}

// unknownToken returns a distinct token the authorization server does not
// know, so that it answers active:false.
func unknownToken(i int) string { return "unknown-" + strconv.Itoa(i) }

var statusFault = func(code int) func(*testing.T, *introspectiontest.Server, *upstream) {
	return func(_ *testing.T, as *introspectiontest.Server, _ *upstream) {
		as.SetFault(introspectiontest.Fault{Status: code})
	}
}

// TestBreakerOpensAfterThresholdConsecutiveFailures fails each kind of
// server failure BreakerThreshold times: below the threshold every call
// reaches the server and gets the server's failure; at it the breaker
// opens, and the next call gets FailureUnavailable with a RetryAfter at
// once, without a request.
func TestBreakerOpensAfterThresholdConsecutiveFailures(t *testing.T) {
	tests := []struct {
		name      string
		byDefault bool // BreakerThreshold zero, for the default
		timeout   time.Duration
		fault     func(*testing.T, *introspectiontest.Server, *upstream)
		want      FailureKind
	}{
		{name: "503", fault: statusFault(503), want: FailureStatus},
		{name: "500", fault: statusFault(500), want: FailureStatus},
		{name: "502", fault: statusFault(502), want: FailureStatus},
		{name: "429 with Retry-After", fault: func(_ *testing.T, as *introspectiontest.Server, _ *upstream) {
			as.SetFault(introspectiontest.Fault{Status: 429, Header: http.Header{"Retry-After": {"2"}}})
		}, want: FailureStatus},
		{name: "204", fault: statusFault(204), want: FailureStatus},
		{name: "302", fault: statusFault(302), want: FailureRedirect},
		{name: "malformed body", fault: func(_ *testing.T, as *introspectiontest.Server, _ *upstream) {
			as.SetFault(introspectiontest.Fault{Body: `{"active":"yes"`})
		}, want: FailureMalformed},
		{name: "HTML", fault: func(_ *testing.T, as *introspectiontest.Server, _ *upstream) {
			as.SetFault(introspectiontest.Fault{ContentType: "text/html", Body: "<h1>down</h1>"})
		}, want: FailureContentType},
		{name: "too large", fault: func(_ *testing.T, as *introspectiontest.Server, _ *upstream) {
			as.SetFault(introspectiontest.Fault{Body: strings.Repeat(" ", maxBodySize+1)})
		}, want: FailureTooLarge},
		{name: "timeout", timeout: 200 * time.Millisecond, fault: func(_ *testing.T, as *introspectiontest.Server, _ *upstream) {
			as.SetFault(introspectiontest.Fault{Latency: time.Minute})
		}, want: FailureTimeout},
		{name: "transport error", fault: func(_ *testing.T, _ *introspectiontest.Server, u *upstream) {
			u.setMode(refuse)
		}, want: FailureTransport},
		{name: "server stopped", fault: func(_ *testing.T, as *introspectiontest.Server, _ *upstream) {
			as.Close()
		}, want: FailureTransport},
		{name: "default threshold", byDefault: true, fault: statusFault(503), want: FailureStatus},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			as := newAS(t, clock)
			v, u := breakerVerifier(t, as.IntrospectionURL, clock, func(s *Settings) {
				s.Timeout = tc.timeout
				if tc.byDefault {
					s.BreakerThreshold = 0
				}
			})
			n := 3
			if tc.byDefault {
				n = DefaultBreakerThreshold
			}
			if tc.timeout == 0 { // a short Timeout is for the failures only
				// A working request first: the count starts at zero.
				_, err := v.Verify(t.Context(), as.Issue(introspectiontest.TokenOptions{}))
				require.NoError(t, err)
			}
			sent := u.calls.Load()
			tc.fault(t, as, u)
			for i := 1; i <= n; i++ {
				require.Equal(t, BreakerClosed, v.Stats().Breaker, "after %d failures", i-1)
				before := u.calls.Load()
				_, err := v.Verify(t.Context(), unknownToken(i))
				assert.Equal(t, tc.want, kindOf(err), "failure %d is the server's own: %v", i, err)
				assert.Equal(t, before+1, u.calls.Load(), "failure %d was a request", i)
			}
			s := v.Stats()
			assert.Equal(t, BreakerOpen, s.Breaker)
			assert.EqualValues(t, 1, s.BreakerOpened)
			assert.EqualValues(t, n, s.Failures[tc.want])

			attempts, served := u.calls.Load(), as.Requests()
			for i := range 20 {
				_, err := v.Verify(t.Context(), unknownToken(100+i))
				requireUnavailable(t, err)
			}
			assert.Equal(t, attempts, u.calls.Load(), "no request while open")
			assert.Equal(t, served, as.Requests(), "the server saw none")
			s = v.Stats()
			assert.EqualValues(t, 20, s.Failures[FailureUnavailable])
			assert.EqualValues(t, n+20, s.Failed)
			assert.EqualValues(t, sent+int64(n), s.UpstreamRequests, "refused calls are not upstream requests")
		})
	}
}

// TestBreakerCountsOnlyConsecutiveFailures has the server answer between
// failures: an active answer, an inactive one, or a 4xx about the request
// shows the server is up and starts the count again.
func TestBreakerCountsOnlyConsecutiveFailures(t *testing.T) {
	tests := []struct {
		name   string
		answer func(as *introspectiontest.Server) (token string, fault introspectiontest.Fault)
	}{
		{"active", func(as *introspectiontest.Server) (string, introspectiontest.Fault) {
			return as.Issue(introspectiontest.TokenOptions{}), introspectiontest.Fault{}
		}},
		{"inactive", func(*introspectiontest.Server) (string, introspectiontest.Fault) {
			return "never-issued", introspectiontest.Fault{}
		}},
		{"400", func(*introspectiontest.Server) (string, introspectiontest.Fault) {
			return "bad-request", introspectiontest.Fault{Status: 400, Body: `{"error":"invalid_request"}`}
		}},
		{"401 invalid_client", func(*introspectiontest.Server) (string, introspectiontest.Fault) {
			return "bad-client", introspectiontest.Fault{Status: 401, Body: `{"error":"invalid_client"}`}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			as := newAS(t, clock)
			v, _ := breakerVerifier(t, as.IntrospectionURL, clock, nil)
			fail := func(i int) {
				as.SetFault(introspectiontest.Fault{Status: 503})
				_, err := v.Verify(t.Context(), unknownToken(i))
				require.Equal(t, FailureStatus, kindOf(err), "%v", err)
			}
			fail(1)
			fail(2)
			tok, fault := tc.answer(as)
			as.SetFault(fault)
			_, err := v.Verify(t.Context(), tok)
			require.NotEqual(t, FailureUnavailable, kindOf(err))
			fail(3)
			fail(4)
			assert.Equal(t, BreakerClosed, v.Stats().Breaker, "two failures since the answer")
			fail(5)
			assert.Equal(t, BreakerOpen, v.Stats().Breaker, "the third in a row opens it")
		})
	}
}

// TestBreakerMiddlewareAnswers503WithRetryAfter shows that while the
// breaker is open, RequireBearerToken answers 503 without a challenge and
// with the time to the next probe as Retry-After, in whole seconds rounded
// up, and sends no request.
func TestBreakerMiddlewareAnswers503WithRetryAfter(t *testing.T) {
	clock := newFakeClock()
	as := newAS(t, clock)
	v, u := breakerVerifier(t, as.IntrospectionURL, clock, func(s *Settings) {
		s.BreakerThreshold = 1
		s.BreakerMinBackoff = 7 * time.Second
	})
	noJitter(v)
	as.SetFault(introspectiontest.Fault{Status: 503})
	_, err := v.Verify(t.Context(), unknownToken(0))
	require.Equal(t, FailureStatus, kindOf(err))
	as.SetFault(introspectiontest.Fault{})
	tok := as.Issue(introspectiontest.TokenOptions{})
	attempts := u.calls.Load()

	h := RequireBearerToken(v, &MiddlewareOptions{ResourceMetadataURL: "https://x/md"})(whoami)
	for _, tc := range []struct {
		advance time.Duration
		want    string
	}{
		{0, "7"},
		{2500 * time.Millisecond, "5"}, // 4.5 s left
		{4 * time.Second, "1"},         // 0.5 s left
	} {
		clock.Advance(tc.advance)
		_, err := v.Verify(t.Context(), tok)
		ie := requireUnavailable(t, err)
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		h.ServeHTTP(w, r)
		assert.Equal(t, http.StatusServiceUnavailable, w.Code)
		assert.Equal(t, tc.want, w.Header().Get("Retry-After"), "RetryAfter %v", ie.RetryAfter)
		assert.Equal(t, strconv.Itoa(int((ie.RetryAfter+time.Second-1)/time.Second)), w.Header().Get("Retry-After"))
		assert.Empty(t, w.Header().Get("WWW-Authenticate"))
		assert.Equal(t, `{"error":"temporarily_unavailable"}`, strings.TrimSpace(w.Body.String()))
	}
	assert.Equal(t, attempts, u.calls.Load(), "no request while open")

	clock.Advance(500 * time.Millisecond)
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	h.ServeHTTP(w, r)
	assert.Equal(t, http.StatusOK, w.Code, "the probe succeeds and lets the request through")
	assert.Equal(t, attempts+1, u.calls.Load())
}

// TestBreakerAtMostOneAttemptPerBackoffInterval keeps a server down for
// thirty seconds of the fake clock while three callers a step ask with new
// tokens. The server sees one request per backoff interval: the intervals
// double from BreakerMinBackoff up to BreakerMaxBackoff, each within its
// jitter of ±20% and never outside [min, max].
func TestBreakerAtMostOneAttemptPerBackoffInterval(t *testing.T) {
	const (
		minB = time.Second
		maxB = 4 * time.Second
		step = 50 * time.Millisecond
	)
	clock := newFakeClock()
	as := newAS(t, clock)
	v, u := breakerVerifier(t, as.IntrospectionURL, clock, func(s *Settings) {
		s.BreakerThreshold = 1
		s.BreakerMinBackoff = minB
		s.BreakerMaxBackoff = maxB
	})
	as.SetFault(introspectiontest.Fault{Status: 503})
	calls := 0
	for i := 0; time.Duration(i)*step < 30*time.Second; i++ {
		for j := range 3 {
			_, err := v.Verify(t.Context(), unknownToken(i*3+j))
			require.Contains(t, []FailureKind{FailureStatus, FailureUnavailable}, kindOf(err))
			calls++
		}
		clock.Advance(step)
	}
	times := u.attemptTimes()
	require.GreaterOrEqual(t, len(times), 8, "30 s hold at least 8 intervals of at most 4 s")
	require.LessOrEqual(t, len(times), 31, "30 s hold at most 30 intervals of at least 1 s")
	for k := 1; k < len(times); k++ {
		b := maxB
		if k-1 < 3 {
			b = min(minB<<(k-1), maxB)
		}
		lo, hi := max(minB, b*8/10), min(maxB, b*12/10)
		gap := times[k].Sub(times[k-1])
		assert.GreaterOrEqual(t, gap, lo, "interval %d", k)
		assert.Less(t, gap, hi+step, "interval %d", k)
	}
	assert.EqualValues(t, len(times), as.Requests(), "the server counts the same")
	s := v.Stats()
	assert.EqualValues(t, calls-len(times), s.Failures[FailureUnavailable])
	assert.EqualValues(t, len(times), s.Failures[FailureStatus])
	assert.EqualValues(t, len(times), s.BreakerOpened, "each failed probe opens it again")
}

// TestBreakerBackoffJitterStaysWithinBounds draws the interval after n
// consecutive openings many times: it lies within ±20% of
// BreakerMinBackoff·2ⁿ, never below BreakerMinBackoff nor above
// BreakerMaxBackoff, and varies.
func TestBreakerBackoffJitterStaysWithinBounds(t *testing.T) {
	const (
		minB = time.Second
		maxB = time.Minute
	)
	v := newVerifier(t, "https://as.example/introspect", nil, func(s *Settings) {
		s.BreakerMinBackoff = minB
		s.BreakerMaxBackoff = maxB
	})
	for n := range 70 {
		b := maxB
		if n < 6 {
			b = min(minB<<n, maxB)
		}
		lo, hi := max(minB, b*8/10), min(maxB, b*12/10)
		seen := map[time.Duration]bool{}
		for range 200 {
			d := v.breaker.backoff(n)
			require.GreaterOrEqual(t, d, lo, "after %d openings", n)
			require.LessOrEqual(t, d, hi, "after %d openings", n)
			seen[d] = true
		}
		assert.Greater(t, len(seen), 1, "jitter after %d openings", n)
	}
	// The extremes of the random draw give the bounds exactly.
	v.breaker.rand = func(int64) int64 { return 0 }
	assert.Equal(t, minB, v.breaker.backoff(0), "never below the minimum")
	assert.Equal(t, 3200*time.Millisecond, v.breaker.backoff(2))
	v.breaker.rand = func(n int64) int64 { return n - 1 }
	assert.Equal(t, 1200*time.Millisecond, v.breaker.backoff(0))
	assert.Equal(t, 4800*time.Millisecond, v.breaker.backoff(2))
	assert.Equal(t, maxB, v.breaker.backoff(6), "never above the maximum")
}

// openWithOneFailure makes v's breaker, of threshold 1, open on a 503 and
// returns its RetryAfter.
func openWithOneFailure(t *testing.T, v *Verifier, as *introspectiontest.Server) time.Duration {
	t.Helper()
	as.SetFault(introspectiontest.Fault{Status: 503})
	_, err := v.Verify(t.Context(), "opens-it")
	require.Equal(t, FailureStatus, kindOf(err))
	_, err = v.Verify(t.Context(), "opens-it-2")
	return requireUnavailable(t, err).RetryAfter
}

// TestBreakerSendsOneProbeAtATime has 100 callers with distinct tokens
// arrive once the interval has passed, while the probe is held: exactly one
// request reaches the server, the others get FailureUnavailable at once,
// and the probe's success closes the breaker.
func TestBreakerSendsOneProbeAtATime(t *testing.T) {
	clock := newFakeClock()
	as := newAS(t, clock)
	v, u := breakerVerifier(t, as.IntrospectionURL, clock, func(s *Settings) { s.BreakerThreshold = 1 })
	wait := openWithOneFailure(t, v, as)
	as.SetFault(introspectiontest.Fault{})
	clock.Advance(wait)
	attempts, served := u.calls.Load(), as.Requests()

	u.hold()
	const callers = 100
	toks := make([]string, callers)
	for i := range toks {
		toks[i] = as.Issue(introspectiontest.TokenOptions{})
	}
	type result struct {
		tok string
		err error
	}
	results := make(chan result, callers)
	var wg sync.WaitGroup
	for _, tok := range toks {
		wg.Go(func() {
			_, err := v.Verify(t.Context(), tok)
			results <- result{tok, err}
		})
	}
	for range callers - 1 {
		requireUnavailable(t, receive(t, results).err)
	}
	require.Eventually(t, func() bool { return u.held.Load() == 1 }, 10*time.Second, time.Millisecond)
	assert.Equal(t, BreakerHalfOpen, v.Stats().Breaker)
	assert.Equal(t, attempts+1, u.calls.Load(), "one probe")
	u.release()
	r := receive(t, results)
	wg.Wait()
	require.NoError(t, r.err, "the probe's caller gets its answer")
	assert.Equal(t, served+1, as.Requests())
	assert.EqualValues(t, 1, as.RequestsFor(r.tok))
	assert.Equal(t, BreakerClosed, v.Stats().Breaker, "the probe's success closes it")

	for _, tok := range toks[:10] {
		_, err := v.Verify(t.Context(), tok)
		require.NoError(t, err)
	}
	assert.Equal(t, served+11, as.Requests(), "closed: every call asks the server again")
}

// TestBreakerProbeFailureReopensWithLongerInterval fails each probe: the
// breaker opens again for twice as long, up to BreakerMaxBackoff, and sends
// nothing until the interval has passed. A probe that succeeds closes it
// and the backoff starts over.
func TestBreakerProbeFailureReopensWithLongerInterval(t *testing.T) {
	clock := newFakeClock()
	as := newAS(t, clock)
	v, u := breakerVerifier(t, as.IntrospectionURL, clock, func(s *Settings) {
		s.BreakerThreshold = 1
		s.BreakerMaxBackoff = 4 * time.Second
	})
	noJitter(v)
	wait := openWithOneFailure(t, v, as)
	require.Equal(t, time.Second, wait)
	for i, want := range []time.Duration{2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second} {
		attempts := u.calls.Load()
		clock.Advance(wait - time.Millisecond)
		_, err := v.Verify(t.Context(), unknownToken(i))
		assert.Equal(t, time.Millisecond, requireUnavailable(t, err).RetryAfter, "probe %d not yet", i)
		clock.Advance(time.Millisecond)
		_, err = v.Verify(t.Context(), unknownToken(i))
		require.Equal(t, FailureStatus, kindOf(err), "probe %d is sent", i)
		assert.Equal(t, attempts+1, u.calls.Load())
		assert.Equal(t, BreakerOpen, v.Stats().Breaker)
		_, err = v.Verify(t.Context(), unknownToken(100+i))
		wait = requireUnavailable(t, err).RetryAfter
		assert.Equal(t, want, wait, "after probe %d", i)
	}
	as.SetFault(introspectiontest.Fault{})
	clock.Advance(wait)
	_, err := v.Verify(t.Context(), unknownToken(200))
	require.ErrorIs(t, err, ErrTokenInactive, "an inactive answer is a usable one")
	assert.Equal(t, BreakerClosed, v.Stats().Breaker)
	assert.Equal(t, time.Second, openWithOneFailure(t, v, as), "the backoff starts over")
}

// TestBreakerHonoursServerRetryAfter has the failure that opens the
// breaker carry a Retry-After: the breaker waits for it when it is longer
// than the backoff, even past BreakerMaxBackoff, up to one hour.
func TestBreakerHonoursServerRetryAfter(t *testing.T) {
	tests := []struct {
		status     int
		retryAfter string
		want       time.Duration
	}{
		{503, "120", 120 * time.Second}, // past BreakerMaxBackoff
		{429, "30", 30 * time.Second},
		{503, "99999", time.Hour}, // capped
		{503, "0", 2 * time.Second},
		{429, "1", 2 * time.Second}, // shorter than the backoff
		{503, "soon", 2 * time.Second},
	}
	for _, tc := range tests {
		t.Run(strconv.Itoa(tc.status)+" "+tc.retryAfter, func(t *testing.T) {
			clock := newFakeClock()
			as := newAS(t, clock)
			v, u := breakerVerifier(t, as.IntrospectionURL, clock, func(s *Settings) {
				s.BreakerThreshold = 1
				s.BreakerMinBackoff = 2 * time.Second
				s.BreakerMaxBackoff = time.Minute
			})
			noJitter(v)
			as.SetFault(introspectiontest.Fault{Status: tc.status, Header: http.Header{"Retry-After": {tc.retryAfter}}})
			_, err := v.Verify(t.Context(), "first")
			require.Equal(t, FailureStatus, kindOf(err))
			_, err = v.Verify(t.Context(), "second")
			assert.Equal(t, tc.want, requireUnavailable(t, err).RetryAfter)
			attempts := u.calls.Load()
			clock.Advance(tc.want - time.Nanosecond)
			_, err = v.Verify(t.Context(), "third")
			requireUnavailable(t, err)
			assert.Equal(t, attempts, u.calls.Load())
			as.SetFault(introspectiontest.Fault{})
			clock.Advance(time.Nanosecond)
			_, err = v.Verify(t.Context(), "fourth")
			require.ErrorIs(t, err, ErrTokenInactive)
			assert.Equal(t, attempts+1, u.calls.Load())
		})
	}
}

// TestBreakerNeverOpensForInvalidTokens sends, with a threshold of one,
// 10,000 unknown tokens (answered active:false by the transport, so that
// the test stays fast under -race), malformed tokens, and requests the
// server refuses with 400, 401, 403 and 404: none opens the breaker, every
// request is sent. A single 503 then does, so the breaker was live.
func TestBreakerNeverOpensForInvalidTokens(t *testing.T) {
	clock := newFakeClock()
	as := newAS(t, clock)
	v, u := breakerVerifier(t, as.IntrospectionURL, clock, func(s *Settings) { s.BreakerThreshold = 1 })
	const unknown = 10_000
	u.setMode(inactive)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := next.Add(1); i <= unknown; i = next.Add(1) {
				_, err := v.Verify(t.Context(), unknownToken(int(i)))
				if !assert.ErrorIs(t, err, ErrTokenInactive) {
					return
				}
			}
		})
	}
	wg.Wait()
	assert.EqualValues(t, unknown, u.calls.Load())
	u.setMode(passOn)
	for _, tok := range []string{"", "has space", strings.Repeat("a", 4097), "é"} {
		_, err := v.Verify(t.Context(), tok)
		require.ErrorIs(t, err, ErrMalformedToken)
	}
	for _, f := range []introspectiontest.Fault{
		{Status: 400, Body: `{"error":"invalid_request"}`},
		{Status: 401, Body: `{"error":"invalid_client"}`},
		{Status: 403},
		{Status: 404},
	} {
		as.SetFault(f)
		for i := range 10 {
			_, err := v.Verify(t.Context(), unknownToken(i))
			require.Equal(t, FailureStatus, kindOf(err))
		}
	}
	s := v.Stats()
	assert.Equal(t, BreakerClosed, s.Breaker)
	assert.Zero(t, s.BreakerOpened)
	assert.Zero(t, s.Failures[FailureUnavailable])
	assert.EqualValues(t, unknown+40, u.calls.Load())
	assert.EqualValues(t, 40, as.Requests())

	as.SetFault(introspectiontest.Fault{Status: 503})
	_, err := v.Verify(t.Context(), unknownToken(0))
	require.Equal(t, FailureStatus, kindOf(err))
	assert.Equal(t, BreakerOpen, v.Stats().Breaker, "a server failure opens it")
}

// TestBreakerIgnoresCallersContext has callers give up, by cancellation
// or their own deadline, while the shared request is held: their context
// ending is not a failure of the server. The request's own outcome still
// counts once it ends.
func TestBreakerIgnoresCallersContext(t *testing.T) {
	clock := newFakeClock()
	as := newAS(t, clock)
	v, u := breakerVerifier(t, as.IntrospectionURL, clock, func(s *Settings) { s.BreakerThreshold = 1 })

	done, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := v.Verify(done, unknownToken(0))
	require.ErrorIs(t, err, context.Canceled)
	assert.Zero(t, u.calls.Load(), "no request for a caller already gone")

	u.hold()
	canceled, cancel := context.WithCancel(t.Context())
	deadline := &expiring{Context: t.Context(), done: make(chan struct{})}
	errs := make(chan error, 2)
	go func() { _, err := v.Verify(canceled, unknownToken(1)); errs <- err }()
	go func() { _, err := v.Verify(deadline, unknownToken(2)); errs <- err }()
	require.Eventually(t, func() bool { return u.held.Load() == 2 }, 10*time.Second, time.Millisecond)
	cancel()
	close(deadline.done)
	got := []error{receive(t, errs), receive(t, errs)}
	assert.ErrorIs(t, errors.Join(got...), context.Canceled)
	assert.ErrorIs(t, errors.Join(got...), context.DeadlineExceeded)
	u.release()
	waitUntilIdle(t, v)
	s := v.Stats()
	assert.Equal(t, BreakerClosed, s.Breaker, "callers leaving is no failure")
	assert.EqualValues(t, 3, s.Canceled)

	// Once the callers have gone, a failing shared request still counts.
	u.hold()
	gone, cancel := context.WithCancel(t.Context())
	go func() { _, err := v.Verify(gone, unknownToken(3)); errs <- err }()
	require.Eventually(t, func() bool { return u.held.Load() == 1 }, 10*time.Second, time.Millisecond)
	cancel()
	require.ErrorIs(t, receive(t, errs), context.Canceled)
	u.setMode(refuse)
	u.release()
	// The flight leaves the table before the breaker hears of it: wait
	// for the breaker, not for the table.
	assert.Eventually(t, func() bool { return v.Stats().Breaker == BreakerOpen }, 10*time.Second, time.Millisecond,
		"the server's failure counts")
}

// TestBreakerCountsOneFailurePerFlight has 100 callers share one request
// for a token, and that request fail: it is one failure, not 100.
func TestBreakerCountsOneFailurePerFlight(t *testing.T) {
	clock := newFakeClock()
	as := newAS(t, clock)
	v, u := breakerVerifier(t, as.IntrospectionURL, clock, func(s *Settings) { s.BreakerThreshold = 2 })
	u.hold()
	const callers = 100
	errs := make(chan error, callers)
	for range callers {
		go func() { _, err := v.Verify(t.Context(), "shared"); errs <- err }()
	}
	require.Eventually(t, func() bool { return v.waiters("shared") == callers-1 && u.held.Load() == 1 },
		10*time.Second, time.Millisecond)
	u.setMode(refuse)
	u.release()
	for range callers {
		assert.Equal(t, FailureTransport, kindOf(receive(t, errs)))
	}
	s := v.Stats()
	assert.Equal(t, BreakerClosed, s.Breaker, "one shared request is one failure")
	assert.EqualValues(t, 1, s.Failures[FailureTransport])
	assert.EqualValues(t, callers, s.Failed)

	_, err := v.Verify(t.Context(), "another")
	require.Equal(t, FailureTransport, kindOf(err))
	assert.Equal(t, BreakerOpen, v.Stats().Breaker, "the second request opens it")
}

// TestBreakerStatsAndLogTransitions walks the breaker through closed,
// open, half-open, open again, half-open and closed. Stats show each state
// and count the openings; each transition is logged once (opening at
// warn, the others at info), never with a token.
func TestBreakerStatsAndLogTransitions(t *testing.T) {
	clock := newFakeClock()
	as := newAS(t, clock)
	h := &recordingHandler{}
	v, _ := breakerVerifier(t, as.IntrospectionURL, clock, func(s *Settings) {
		s.BreakerThreshold = 2
		s.Logger = slog.New(h)
	})
	noJitter(v)
	var tokens []string
	verify := func() error {
		tok := fmt.Sprintf("Secret-Token-%d", len(tokens))
		tokens = append(tokens, tok)
		_, err := v.Verify(t.Context(), tok)
		return err
	}
	transitions := func() []string {
		var out []string
		for _, r := range h.matching("circuit breaker") {
			out = append(out, r.Level.String()+" "+r.Message)
		}
		return out
	}
	const (
		opened   = "WARN introspection: circuit breaker opened"
		halfOpen = "INFO introspection: circuit breaker half-open: sending a probe"
		closed   = "INFO introspection: circuit breaker closed"
	)

	assert.Equal(t, BreakerClosed, v.Stats().Breaker)
	as.SetFault(introspectiontest.Fault{Status: 503})
	require.Equal(t, FailureStatus, kindOf(verify()))
	assert.Empty(t, transitions())
	require.Equal(t, FailureStatus, kindOf(verify()))
	assert.Equal(t, []string{opened}, transitions())
	for range 5 {
		requireUnavailable(t, verify())
	}
	s := v.Stats()
	assert.Equal(t, BreakerOpen, s.Breaker)
	assert.EqualValues(t, 1, s.BreakerOpened)
	assert.Len(t, transitions(), 1, "refused calls log nothing")
	assert.Len(t, h.matching("request failed"), 2, "nor count as failed requests in the log")

	clock.Advance(time.Second)
	require.Equal(t, FailureStatus, kindOf(verify()), "the probe fails")
	s = v.Stats()
	assert.Equal(t, BreakerOpen, s.Breaker)
	assert.EqualValues(t, 2, s.BreakerOpened)
	assert.Equal(t, []string{opened, halfOpen, opened}, transitions())

	as.SetFault(introspectiontest.Fault{})
	clock.Advance(2 * time.Second)
	require.ErrorIs(t, verify(), ErrTokenInactive, "the probe succeeds")
	s = v.Stats()
	assert.Equal(t, BreakerClosed, s.Breaker)
	assert.EqualValues(t, 2, s.BreakerOpened)
	assert.Equal(t, []string{opened, halfOpen, opened, halfOpen, closed}, transitions())

	recs := h.matching("circuit breaker opened")
	failures, _ := attr(recs[0], "failures")
	assert.Equal(t, "2", failures)
	kind, _ := attr(recs[0], "kind")
	assert.Equal(t, "status", kind)
	retry, _ := attr(recs[1], "retry_in")
	assert.Equal(t, "2s", retry)
	openFor, _ := attr(h.matching("circuit breaker closed")[0], "open_for")
	assert.Equal(t, "3s", openFor)
	text := h.text()
	for _, tok := range tokens {
		assert.NotContains(t, text, tok)
	}
}

// TestBreakerHalfOpenInStats holds a probe and reads Stats meanwhile.
func TestBreakerHalfOpenInStats(t *testing.T) {
	clock := newFakeClock()
	as := newAS(t, clock)
	v, u := breakerVerifier(t, as.IntrospectionURL, clock, func(s *Settings) { s.BreakerThreshold = 1 })
	clock.Advance(openWithOneFailure(t, v, as))
	as.SetFault(introspectiontest.Fault{})
	u.hold()
	errs := make(chan error, 1)
	go func() { _, err := v.Verify(t.Context(), "probe"); errs <- err }()
	require.Eventually(t, func() bool { return u.held.Load() == 1 }, 10*time.Second, time.Millisecond)
	assert.Equal(t, BreakerHalfOpen, v.Stats().Breaker)
	_, err := v.Verify(t.Context(), "waits")
	ie := requireUnavailable(t, err)
	assert.LessOrEqual(t, ie.RetryAfter, time.Second, "the probe may end any moment")
	u.release()
	require.ErrorIs(t, receive(t, errs), ErrTokenInactive)
	assert.Equal(t, BreakerClosed, v.Stats().Breaker)
}

// TestBreakerServerStoppedMidRun stops a real server (its listener
// closed, so connections are refused) while tokens are verified, then
// starts it again on the same address: the breaker opens after the
// threshold, fails calls fast without dialing, and closes with the first
// probe once the server is back.
func TestBreakerServerStoppedMidRun(t *testing.T) {
	clock := newFakeClock()
	as := newAS(t, clock)
	target, err := url.Parse(as.URL)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(proxy)
	addr := front.Listener.Addr().String()
	v, u := breakerVerifier(t, front.URL+introspectiontest.IntrospectionPath, clock, nil)
	tok := as.Issue(introspectiontest.TokenOptions{Lifetime: time.Hour})

	_, err = v.Verify(t.Context(), tok)
	require.NoError(t, err)
	front.Close()
	for i := range 3 {
		_, err = v.Verify(t.Context(), tok)
		require.Equal(t, FailureTransport, kindOf(err), "failure %d: %v", i+1, err)
	}
	attempts := u.calls.Load()
	for range 50 {
		_, err = v.Verify(t.Context(), tok)
		requireUnavailable(t, err)
	}
	assert.Equal(t, attempts, u.calls.Load(), "no dial while open")
	assert.EqualValues(t, 1, as.Requests())

	l, err := net.Listen("tcp", addr)
	require.NoError(t, err, "the same address again")
	back := httptest.NewUnstartedServer(proxy)
	_ = back.Listener.Close()
	back.Listener = l
	back.Start()
	defer back.Close()
	clock.Advance(2 * time.Second) // past the first interval with its jitter
	got, err := v.Verify(t.Context(), tok)
	require.NoError(t, err, "the probe reaches the server again")
	assert.Equal(t, "app", got.ClientID)
	assert.Equal(t, BreakerClosed, v.Stats().Breaker)
	assert.EqualValues(t, 2, as.Requests())
}

// TestBreakerProbeThatNeverAnswersReopens has the probe's transport ignore
// its context and never answer: once the callers are told it timed out,
// the breaker opens again instead of waiting for the probe forever, and a
// later probe closes it.
func TestBreakerProbeThatNeverAnswersReopens(t *testing.T) {
	clock := newFakeClock()
	as := newAS(t, clock)
	v, u := breakerVerifier(t, as.IntrospectionURL, clock, func(s *Settings) {
		s.BreakerThreshold = 1
		s.Timeout = 10 * time.Millisecond
	})
	noJitter(v)
	// The transport answers itself, so that no request of this test
	// depends on how soon the machine serves it.
	u.setMode(refuse)
	_, err := v.Verify(t.Context(), "opens-it")
	require.Equal(t, FailureTransport, kindOf(err))
	clock.Advance(time.Second)
	u.setMode(inactive)
	u.hold()
	_, err = v.Verify(t.Context(), "hung-probe")
	require.Equal(t, FailureTimeout, kindOf(err), "%v", err)
	s := v.Stats()
	assert.Equal(t, BreakerOpen, s.Breaker)
	assert.EqualValues(t, 2, s.BreakerOpened)
	_, err = v.Verify(t.Context(), "refused")
	assert.Equal(t, 2*time.Second, requireUnavailable(t, err).RetryAfter)

	attempts := u.calls.Load()
	u.release() // the hung probe ends; what it brings is dropped
	waitUntilIdle(t, v)
	assert.Equal(t, BreakerOpen, v.Stats().Breaker, "a late answer changes nothing")
	clock.Advance(2 * time.Second)
	_, err = v.Verify(t.Context(), "next-probe")
	require.ErrorIs(t, err, ErrTokenInactive)
	assert.Equal(t, attempts+1, u.calls.Load())
	assert.Equal(t, BreakerClosed, v.Stats().Breaker)
}

// TestBreakerProbeThatPanicsFreesTheSlot has the probe's transport panic:
// a panic says nothing about the server, so the breaker stays half-open
// and the next call sends the next probe.
func TestBreakerProbeThatPanicsFreesTheSlot(t *testing.T) {
	clock := newFakeClock()
	as := newAS(t, clock)
	h := &recordingHandler{}
	v, u := breakerVerifier(t, as.IntrospectionURL, clock, func(s *Settings) {
		s.BreakerThreshold = 1
		s.Logger = slog.New(h)
	})
	clock.Advance(openWithOneFailure(t, v, as))
	as.SetFault(introspectiontest.Fault{})
	u.setMode(explode)
	_, err := v.Verify(t.Context(), "panics")
	require.Equal(t, FailurePanic, kindOf(err))
	s := v.Stats()
	assert.Equal(t, BreakerHalfOpen, s.Breaker)
	assert.EqualValues(t, 1, s.BreakerOpened)
	u.setMode(passOn)
	attempts := u.calls.Load()
	_, err = v.Verify(t.Context(), "next")
	require.ErrorIs(t, err, ErrTokenInactive)
	assert.Equal(t, attempts+1, u.calls.Load())
	assert.Equal(t, BreakerClosed, v.Stats().Breaker)
	assert.Len(t, h.matching("circuit breaker half-open"), 1, "one transition, two probes")
}

// TestBreakerBackwardClockNeverLengthensTheWait sets Settings.Now back an
// hour while the breaker is open: the wait is never longer than the
// interval it opened for.
func TestBreakerBackwardClockNeverLengthensTheWait(t *testing.T) {
	clock := newFakeClock()
	as := newAS(t, clock)
	v, u := breakerVerifier(t, as.IntrospectionURL, clock, func(s *Settings) { s.BreakerThreshold = 1 })
	noJitter(v)
	require.Equal(t, time.Second, openWithOneFailure(t, v, as))
	clock.Advance(-time.Hour)
	_, err := v.Verify(t.Context(), "after-the-step")
	assert.Equal(t, time.Second, requireUnavailable(t, err).RetryAfter)
	as.SetFault(introspectiontest.Fault{})
	attempts := u.calls.Load()
	clock.Advance(time.Second)
	_, err = v.Verify(t.Context(), "probe")
	require.ErrorIs(t, err, ErrTokenInactive)
	assert.Equal(t, attempts+1, u.calls.Load())
}

// TestBreakerSettings checks the breaker's settings in NewVerifier:
// negative backoffs, a minimum above the maximum and a maximum past one
// hour are errors; zero means the defaults; a negative threshold turns
// the breaker off.
func TestBreakerSettings(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Settings)
		wantErr string
	}{
		{"defaults", func(*Settings) {}, ""},
		{"negative min", func(s *Settings) { s.BreakerMinBackoff = -time.Nanosecond },
			"introspection: BreakerMinBackoff must not be negative, got -1ns"},
		{"negative max", func(s *Settings) { s.BreakerMaxBackoff = -time.Nanosecond },
			"introspection: BreakerMaxBackoff must not be negative, got -1ns"},
		{"min above max", func(s *Settings) { s.BreakerMinBackoff, s.BreakerMaxBackoff = 2*time.Second, time.Second },
			"introspection: BreakerMinBackoff (2s) must not be longer than BreakerMaxBackoff (1s)"},
		{"min above the default max", func(s *Settings) { s.BreakerMinBackoff = 2 * time.Minute },
			"introspection: BreakerMinBackoff (2m0s) must not be longer than BreakerMaxBackoff (1m0s)"},
		{"min equal to max", func(s *Settings) { s.BreakerMinBackoff, s.BreakerMaxBackoff = time.Second, time.Second }, ""},
		{"max at one hour", func(s *Settings) { s.BreakerMaxBackoff = time.Hour }, ""},
		{"max past one hour", func(s *Settings) { s.BreakerMaxBackoff = time.Hour + time.Nanosecond },
			"introspection: BreakerMaxBackoff must be at most 1h0m0s, got 1h0m0.000000001s"},
		{"threshold off", func(s *Settings) { s.BreakerThreshold = -1 }, ""},
		{"threshold one", func(s *Settings) { s.BreakerThreshold = 1 }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Settings{IntrospectionURL: "https://as.example/i", ClientID: "rs", ClientSecret: "s"}
			tc.edit(&s)
			v, err := NewVerifier(s)
			if tc.wantErr != "" {
				assert.EqualError(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			defer v.Close()
			assert.Equal(t, BreakerClosed, v.Stats().Breaker)
		})
	}
	t.Run("zero means the defaults", func(t *testing.T) {
		v := newVerifier(t, "https://as.example/i", nil, nil)
		assert.Equal(t, DefaultBreakerThreshold, v.s.BreakerThreshold)
		assert.Equal(t, DefaultBreakerMinBackoff, v.s.BreakerMinBackoff)
		assert.Equal(t, DefaultBreakerMaxBackoff, v.s.BreakerMaxBackoff)
	})
}

// TestBreakerOff has a negative BreakerThreshold: every call reaches the
// server however many fail.
func TestBreakerOff(t *testing.T) {
	clock := newFakeClock()
	as := newAS(t, clock)
	v, u := breakerVerifier(t, as.IntrospectionURL, clock, func(s *Settings) { s.BreakerThreshold = -1 })
	u.setMode(refuse)
	for i := range 50 {
		_, err := v.Verify(t.Context(), unknownToken(i))
		require.Equal(t, FailureTransport, kindOf(err))
	}
	assert.EqualValues(t, 50, u.calls.Load())
	s := v.Stats()
	assert.Equal(t, BreakerClosed, s.Breaker)
	assert.Zero(t, s.BreakerOpened)
}
