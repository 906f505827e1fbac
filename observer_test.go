package introspection

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
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

// recordingObserver records every event it sees as a line such as
// "VerifyEnd rejected inactive", in order. The method named by panicIn
// panics instead.
type recordingObserver struct {
	NopObserver
	panicIn string

	mu     sync.Mutex // guards events and lost
	events []string
	lost   []string // events whose context did not come from the Start method it belongs to
}

// Values the Start methods add to the context they return.
type (
	verificationKey struct{}
	upstreamKey     struct{}
	cacheCallKey    struct{}
)

func (o *recordingObserver) record(ctx context.Context, method, detail string, keys ...any) {
	if method == o.panicIn {
		panic("observer failed")
	}
	line := strings.TrimSpace(method + " " + detail)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, line)
	for _, k := range keys {
		if ctx.Value(k) == nil {
			o.lost = append(o.lost, line)
		}
	}
}

func (o *recordingObserver) VerifyStart(ctx context.Context) context.Context {
	o.record(ctx, "VerifyStart", "")
	return context.WithValue(ctx, verificationKey{}, true)
}

func (o *recordingObserver) VerifyEnd(ctx context.Context, e VerifyEvent) {
	o.record(ctx, "VerifyEnd", string(e.Outcome)+" "+e.Reason, verificationKey{})
}

func (o *recordingObserver) CacheLookup(ctx context.Context, r CacheResult) {
	o.record(ctx, "CacheLookup", string(r), verificationKey{})
}

func (o *recordingObserver) CollapsedWaiter(ctx context.Context) {
	o.record(ctx, "CollapsedWaiter", "", verificationKey{})
}

func (o *recordingObserver) UpstreamStart(ctx context.Context, r UpstreamRequest) context.Context {
	o.record(ctx, "UpstreamStart", r.Method+" "+r.URL, verificationKey{})
	return context.WithValue(ctx, upstreamKey{}, true)
}

func (o *recordingObserver) UpstreamEnd(ctx context.Context, e UpstreamEvent) {
	o.record(ctx, "UpstreamEnd", strconv.Itoa(e.StatusCode)+" "+string(e.Failure), verificationKey{}, upstreamKey{})
}

func (o *recordingObserver) CacheCallStart(ctx context.Context, op CacheOperation) context.Context {
	o.record(ctx, "CacheCallStart", string(op), verificationKey{})
	return context.WithValue(ctx, cacheCallKey{}, op)
}

func (o *recordingObserver) CacheCallEnd(ctx context.Context, e CacheCallEvent) {
	result := "ok"
	if e.Err != nil {
		result = "error"
	}
	o.record(ctx, "CacheCallEnd", string(e.Operation)+" "+result, verificationKey{}, cacheCallKey{})
}

func (o *recordingObserver) CacheError(ctx context.Context, op CacheOperation) {
	if op == CacheDecode {
		o.record(ctx, "CacheError", string(op), verificationKey{})
		return
	}
	o.record(ctx, "CacheError", string(op), verificationKey{}, cacheCallKey{}) // the failed call's context
}

func (o *recordingObserver) BreakerChange(ctx context.Context, e BreakerEvent) {
	o.record(ctx, "BreakerChange", string(e.From)+"->"+string(e.To), verificationKey{})
}

// seen returns the events so far and forgets them.
func (o *recordingObserver) seen() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	ev := o.events
	o.events = nil
	return ev
}

// lostContexts returns the events whose context lacked what a Start
// method had added.
func (o *recordingObserver) lostContexts() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.lost...)
}

// count returns how many events of method the observer saw.
func count(events []string, method string) int {
	n := 0
	for _, e := range events {
		if e == method || strings.HasPrefix(e, method+" ") {
			n++
		}
	}
	return n
}

// TestObserverSeesEachVerdictWithItsReason shows that every verification
// ends with one VerifyEnd whose outcome is how Stats counts it and whose
// reason names the sentinel error or FailureKind, and that the events of a
// verification come in order, each with the context VerifyStart returned.
func TestObserverSeesEachVerdictWithItsReason(t *testing.T) {
	soon := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	tests := []struct {
		name   string
		status int
		body   string
		edit   func(*Settings)
		ctx    context.Context
		token  string
		want   string // the VerifyEnd event
		sent   bool   // a request reached the server
	}{
		{name: "accepted", body: `{"active":true}`, want: "accepted none", sent: true},
		{name: "inactive", body: `{"active":false}`, want: "rejected inactive", sent: true},
		{name: "expired", body: `{"active":true,"exp":1}`, want: "rejected expired", sent: true},
		{name: "not yet valid", body: `{"active":true,"nbf":` + soon + `}`, want: "rejected not_yet_valid", sent: true},
		{name: "issuer", body: `{"active":true,"iss":"https://other.example"}`, want: "rejected issuer_mismatch", sent: true,
			edit: func(s *Settings) { s.Issuer = "https://as.example" }},
		{name: "audience", body: `{"active":true,"aud":"https://other.example"}`, want: "rejected audience_mismatch", sent: true,
			edit: func(s *Settings) { s.Audience = []string{"https://mcp.example"} }},
		{name: "not an access token", body: `{"active":true,"token_use":"id"}`, want: "rejected not_access_token", sent: true},
		{name: "sender-constrained", body: `{"active":true,"token_type":"DPoP"}`, want: "rejected proof_required", sent: true},
		{name: "scope", body: `{"active":true,"scope":"read"}`, want: "insufficient_scope insufficient_scope", sent: true,
			edit: func(s *Settings) { s.RequiredScopes = []string{"write"} }},
		{name: "malformed token", body: `{"active":true}`, token: "not a token", want: "rejected malformed_token"},
		{name: "server error", status: http.StatusInternalServerError, body: `{}`, want: "failed status", sent: true},
		{name: "malformed answer", body: `[]`, want: "failed malformed", sent: true},
		{name: "canceled", body: `{"active":true}`, ctx: canceled, want: "canceled canceled"},
		{name: "deadline", body: `{"active":true}`, ctx: expired, want: "canceled deadline_exceeded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := jsonServer(t, cmpOr(tc.status, http.StatusOK), tc.body)
			obs := &recordingObserver{}
			v := newVerifier(t, srv.URL, nil, func(s *Settings) {
				s.Observer = obs
				if tc.edit != nil {
					tc.edit(s)
				}
			})
			ctx, token := tc.ctx, cmpOr(tc.token, "tok")
			if ctx == nil {
				ctx = context.Background()
			}
			_, _ = v.Verify(ctx, token)
			waitUntilIdle(t, v)

			want := []string{"VerifyStart"}
			if tc.sent {
				status := cmpOr(tc.status, http.StatusOK)
				failure := ""
				if tc.want == "failed status" || tc.want == "failed malformed" {
					failure = strings.TrimPrefix(tc.want, "failed ")
				}
				want = append(want, "UpstreamStart POST "+srv.URL, strings.TrimSpace(fmt.Sprintf("UpstreamEnd %d %s", status, failure)))
			}
			want = append(want, "VerifyEnd "+tc.want)
			assert.Equal(t, want, obs.seen())
			assert.Empty(t, obs.lostContexts(), "every event has the context of its Start method")

			st := v.Stats()
			outcome := strings.Fields(tc.want)[0]
			for name, n := range map[string]uint64{
				"accepted": st.Accepted, "rejected": st.Rejected, "insufficient_scope": st.InsufficientScope,
				"failed": st.Failed, "canceled": st.Canceled,
			} {
				if name == outcome {
					assert.Equal(t, uint64(1), n, "Stats counts the verdict as %s", name)
				} else {
					assert.Zero(t, n, name)
				}
			}
		})
	}
}

func cmpOr[T comparable](a, b T) T {
	var zero T
	if a != zero {
		return a
	}
	return b
}

// TestObserverSeesCacheResults shows the CacheLookup of each verification
// with the cache on: a miss, a hit, a hit of an inactive answer
// (negative), and a stale answer that gave the verdict.
func TestObserverSeesCacheResults(t *testing.T) {
	clock := newFakeClock()
	as := newAS(t, clock)
	obs := &recordingObserver{}
	v := staleVerifier(t, as, clock, func(s *Settings) {
		s.NegativeCacheTTL = time.Minute
		s.Observer = obs
	})
	tok := as.Issue(introspectiontest.TokenOptions{Lifetime: 24 * time.Hour})
	ctx := context.Background()
	url := "UpstreamStart POST " + as.IntrospectionURL

	_, err := v.Verify(ctx, tok)
	require.NoError(t, err)
	waitUntilIdle(t, v)
	assert.Equal(t, []string{"VerifyStart", "CacheLookup miss", url, "UpstreamEnd 200", "VerifyEnd accepted none"}, obs.seen())

	_, err = v.Verify(ctx, tok)
	require.NoError(t, err)
	assert.Equal(t, []string{"VerifyStart", "CacheLookup hit", "VerifyEnd accepted none"}, obs.seen())

	_, err = v.Verify(ctx, "unknown")
	require.ErrorIs(t, err, ErrTokenInactive)
	waitUntilIdle(t, v)
	_, err = v.Verify(ctx, "unknown")
	require.ErrorIs(t, err, ErrTokenInactive)
	assert.Equal(t, []string{
		"VerifyStart", "CacheLookup miss", url, "UpstreamEnd 200", "VerifyEnd rejected inactive",
		"VerifyStart", "CacheLookup negative", "VerifyEnd rejected inactive",
	}, obs.seen())

	clock.Advance(staleTestTTL + time.Second)
	down(as)
	got, err := v.Verify(ctx, tok)
	require.NoError(t, err)
	require.True(t, got.Stale)
	waitUntilIdle(t, v)
	assert.Equal(t, []string{"VerifyStart", "CacheLookup miss", url, "UpstreamEnd 503 status", "CacheLookup stale", "VerifyEnd accepted none"}, obs.seen())
	assert.Empty(t, obs.lostContexts())

	st := v.Stats()
	assert.Equal(t, uint64(2), st.CacheHits, "hit and negative")
	assert.Equal(t, uint64(3), st.CacheMisses)
	assert.Equal(t, uint64(1), st.StaleServed)
}

// TestObserverSeesCacheCallsAndErrors shows the calls of a caller's Cache,
// each between CacheCallStart and CacheCallEnd with the context
// CacheCallStart returned, and a CacheError for each error Stats counts:
// a failing Get, with the context of that call before its CacheCallEnd,
// and a stored value that is not an answer.
func TestObserverSeesCacheCallsAndErrors(t *testing.T) {
	as := newAS(t, nil)
	obs := &recordingObserver{}
	mc := newMapCache(time.Now)
	var calls atomic.Int32 // calls that came with CacheCallStart's context
	mc.beforeGet = func(ctx context.Context) error {
		if ctx.Value(cacheCallKey{}) == CacheGet {
			calls.Add(1)
		}
		return nil
	}
	v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
		s.CacheTTL = time.Minute
		s.Cache = mc
		s.LocalCacheTTL = -1 // every call reads mc
		s.Observer = obs
	})
	tok := as.Issue(introspectiontest.TokenOptions{})
	ctx := context.Background()

	_, err := v.Verify(ctx, tok)
	require.NoError(t, err)
	waitUntilIdle(t, v)
	ev := obs.seen()
	assert.Equal(t, []string{
		"VerifyStart", "CacheCallStart get", "CacheCallEnd get ok", // the shared request looks, once
		"UpstreamStart POST " + as.IntrospectionURL, "UpstreamEnd 200",
	}, ev[:5])
	// The lookup is over when the shared request has an answer; the store
	// runs after the callers have it.
	assert.ElementsMatch(t, []string{"CacheLookup miss", "VerifyEnd accepted none", "CacheCallStart set", "CacheCallEnd set ok"}, ev[5:])
	assert.Less(t, slices.Index(ev, "CacheLookup miss"), slices.Index(ev, "VerifyEnd accepted none"))
	assert.Equal(t, int32(1), calls.Load(), "the Get runs with the context CacheCallStart returned")

	// A value that is not an answer: a cache error, the value deleted.
	mc.mu.Lock()
	mc.entries[v.CacheKey(tok)] = mapEntry{value: []byte("not json"), expires: time.Now().Add(time.Hour)}
	mc.mu.Unlock()
	_, err = v.Verify(ctx, tok)
	require.NoError(t, err)
	waitUntilIdle(t, v)
	ev = obs.seen()
	assert.Equal(t, []string{"VerifyStart", "CacheCallStart get", "CacheCallEnd get ok", "CacheError decode",
		"CacheCallStart delete", "CacheCallEnd delete ok"}, ev[:6])
	assert.Contains(t, ev, "CacheLookup miss")

	// A failing store: a cache error, and the server decides.
	mc.setFail(true)
	_, err = v.Verify(ctx, "unknown")
	require.ErrorIs(t, err, ErrTokenInactive)
	waitUntilIdle(t, v)
	ev = obs.seen()
	assert.Equal(t, []string{"VerifyStart", "CacheCallStart get", "CacheError get", "CacheCallEnd get error"}, ev[:4])
	assert.Contains(t, ev, "CacheLookup miss")
	assert.Empty(t, obs.lostContexts())
	assert.Equal(t, uint64(2), v.Stats().CacheErrors)
}

// TestObserverSeesCollapsedWaiters shows a CollapsedWaiter for each call
// that got the answer of a request another call had started, as many as
// Stats counts, and one request for them all.
func TestObserverSeesCollapsedWaiters(t *testing.T) {
	const n = 10
	var v *Verifier
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for deadline := time.Now().Add(10 * time.Second); v.waiters("hot") < n-1 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"active":true}`))
	}))
	defer srv.Close()
	obs := &recordingObserver{}
	v = newVerifier(t, srv.URL, nil, func(s *Settings) { s.Observer = obs })
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { _, _ = v.Verify(context.Background(), "hot") })
	}
	wg.Wait()
	ev := obs.seen()
	assert.Equal(t, n-1, count(ev, "CollapsedWaiter"))
	assert.Equal(t, 1, count(ev, "UpstreamStart"))
	assert.Equal(t, n, count(ev, "VerifyEnd accepted none"))
	assert.Equal(t, uint64(n-1), v.Stats().CollapsedWaiters)
	assert.Empty(t, obs.lostContexts())
}

// TestObserverSeesBreakerTransitions shows each transition of the circuit
// breaker once, in the shared request that caused it: closed to open,
// open to half-open as the probe goes out, half-open to open when it
// fails and half-open to closed when it succeeds. A call the open breaker
// refuses sends nothing and ends failed, unavailable.
func TestObserverSeesBreakerTransitions(t *testing.T) {
	clock := newFakeClock()
	as := newAS(t, clock)
	obs := &recordingObserver{}
	v, _ := breakerVerifier(t, as.IntrospectionURL, clock, func(s *Settings) {
		s.BreakerThreshold = 1
		s.Observer = obs
	})
	noJitter(v)
	url := "UpstreamStart POST " + as.IntrospectionURL
	verify := func(i int) {
		_, _ = v.Verify(context.Background(), unknownToken(i))
		waitUntilIdle(t, v)
	}

	as.SetFault(introspectiontest.Fault{Status: http.StatusServiceUnavailable})
	verify(1)
	assert.Equal(t, []string{"VerifyStart", url, "UpstreamEnd 503 status", "BreakerChange closed->open", "VerifyEnd failed status"}, obs.seen())
	verify(2)
	assert.Equal(t, []string{"VerifyStart", "VerifyEnd failed unavailable"}, obs.seen())

	clock.Advance(time.Second)
	verify(3)
	assert.Equal(t, []string{"VerifyStart", "BreakerChange open->half_open", url, "UpstreamEnd 503 status",
		"BreakerChange half_open->open", "VerifyEnd failed status"}, obs.seen())

	clock.Advance(2 * time.Second)
	as.SetFault(introspectiontest.Fault{})
	verify(4)
	assert.Equal(t, []string{"VerifyStart", "BreakerChange open->half_open", url, "UpstreamEnd 200",
		"BreakerChange half_open->closed", "VerifyEnd rejected inactive"}, obs.seen())
	assert.Empty(t, obs.lostContexts())
	assert.Equal(t, uint64(2), v.Stats().BreakerOpened)
}

// TestObserverSeesMiddlewareRejections shows that a token the middleware
// refuses for its DPoP proof, before asking the server, ends as a
// verification too, as Stats counts it.
func TestObserverSeesMiddlewareRejections(t *testing.T) {
	obs := &recordingObserver{}
	d := newDPoPSetup(t, func(s *Settings) { s.Observer = obs })
	w := d.serve(dpopRequest("GET", "DPoP "+d.bound)) // no DPoP header
	require.Equal(t, http.StatusUnauthorized, w.Code)
	assert.Equal(t, []string{"VerifyStart", "VerifyEnd rejected invalid_dpop_proof"}, obs.seen())
	assert.Equal(t, uint64(1), d.v.Stats().Rejected)

	w = d.serve(dpopRequest("GET", "DPoP "+d.bound, d.key.proof(t, "GET", dpopTarget, d.bound, nil)))
	require.Equal(t, http.StatusNoContent, w.Code)
	ev := obs.seen()
	assert.Equal(t, "VerifyEnd accepted none", ev[len(ev)-1])
}

// TestObserverUpstreamURLHasNoQuery shows that the URL an observer gets
// for the introspection request is the endpoint without its query and
// fragment, which may hold what is not meant for metrics and traces.
func TestObserverUpstreamURLHasNoQuery(t *testing.T) {
	srv := jsonServer(t, http.StatusOK, `{"active":true}`)
	obs := &recordingObserver{}
	v := newVerifier(t, srv.URL+"/introspect?tenant=acme&key=k3y#frag", nil, func(s *Settings) { s.Observer = obs })
	_, err := v.Verify(context.Background(), "tok")
	require.NoError(t, err)
	ev := obs.seen()
	require.Len(t, ev, 4)
	assert.Equal(t, "UpstreamStart POST "+srv.URL+"/introspect", ev[1])
}

// TestObserverUpstreamURLIsTheDiscoveredEndpoint shows that with the
// issuer alone the URL an observer gets is the scheme, host and port of
// the endpoint its metadata names, with the path "/{introspection}" in
// place of the path the metadata names, which is the server's text.
func TestObserverUpstreamURLIsTheDiscoveredEndpoint(t *testing.T) {
	as := newAS(t, nil)
	obs := &recordingObserver{}
	v := newDiscoveryVerifier(t, as.Issuer, nil, func(s *Settings) {
		s.ClientID, s.ClientSecret = introspectiontest.ClientID, introspectiontest.ClientSecret
		s.Observer = obs
	})
	_, err := v.Verify(context.Background(), as.Issue(introspectiontest.TokenOptions{}))
	require.NoError(t, err)
	u, err := url.Parse(as.IntrospectionURL)
	require.NoError(t, err)
	require.NotEqual(t, "/{introspection}", u.Path)
	assert.Equal(t, []string{"VerifyStart", "MetadataFetch ok 200", "UpstreamStart POST " + u.Scheme + "://" + u.Host + "/{introspection}",
		"UpstreamEnd 200", "VerifyEnd accepted none"}, obs.seen())
}

// TestObserverContextReachesTheRequest shows that the introspection
// request runs with the context UpstreamStart returned, which carries
// what VerifyStart added, so that a span started there is the parent of
// the HTTP client's work.
func TestObserverContextReachesTheRequest(t *testing.T) {
	as := newAS(t, nil)
	var both atomic.Int32
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Context().Value(verificationKey{}) != nil && r.Context().Value(upstreamKey{}) != nil {
			both.Add(1)
		}
		return tr.RoundTrip(r)
	})}
	v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
		s.Observer = &recordingObserver{}
		s.HTTPClient = client
	})
	_, err := v.Verify(context.Background(), as.Issue(introspectiontest.TokenOptions{}))
	require.NoError(t, err)
	assert.Equal(t, int32(1), both.Load())
}

// observerScenario runs a fixed sequence of verifications that makes
// every event of an Observer happen, with obs as the observer (nil for
// none), and returns each verdict, what Stats counted and the log.
func observerScenario(t *testing.T, obs Observer) (verdicts []string, st Stats, logs *recordingHandler) {
	t.Helper()
	clock := newFakeClock()
	as := newAS(t, clock)
	mc := newMapCache(clock.Now)
	logs = &recordingHandler{}
	v, up := breakerVerifier(t, as.IntrospectionURL, clock, func(s *Settings) {
		s.BreakerThreshold = 1
		s.BreakerMaxBackoff = time.Second
		s.CacheTTL = time.Minute
		s.NegativeCacheTTL = time.Minute
		s.StaleIfError = time.Hour
		s.Cache = mc
		s.LocalCacheTTL = -1 // every lookup reads mc
		s.Observer = obs
		s.Logger = slog.New(logs)
	})
	ctx := context.Background()
	verify := func(tok string) {
		t.Helper()
		got, err := v.Verify(ctx, tok)
		switch {
		case err != nil:
			verdicts = append(verdicts, err.Error())
		case got.Stale:
			verdicts = append(verdicts, "accepted stale")
		default:
			verdicts = append(verdicts, "accepted")
		}
		waitUntilIdle(t, v)
	}
	tok := as.Issue(introspectiontest.TokenOptions{Lifetime: 24 * time.Hour})
	verify(tok)          // a miss, the request, the store
	verify(tok)          // a hit
	verify("unknown-1")  // inactive
	verify("unknown-1")  // a negative hit
	verify("not valid!") // malformed

	// Two callers share one request.
	hot := as.Issue(introspectiontest.TokenOptions{Lifetime: 24 * time.Hour})
	up.hold()
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range 2 {
		wg.Go(func() {
			_, err := v.Verify(ctx, hot)
			mu.Lock()
			verdicts = append(verdicts, fmt.Sprint("shared: ", err))
			mu.Unlock()
		})
		require.Eventually(t, func() bool { return up.held.Load() == 1 }, 10*time.Second, time.Millisecond)
	}
	require.Eventually(t, func() bool { return v.waiters(hot) == 1 }, 10*time.Second, time.Millisecond)
	up.release()
	wg.Wait()
	waitUntilIdle(t, v)

	// A stored value that is not an answer.
	mc.mu.Lock()
	mc.entries[v.CacheKey(hot)] = mapEntry{value: []byte("not json"), expires: clock.Now().Add(time.Hour)}
	mc.mu.Unlock()
	verify(hot)

	// The server fails: the breaker opens, a stale answer gives the
	// verdict, and another token fails at once.
	clock.Advance(2 * time.Minute)
	as.SetFault(introspectiontest.Fault{Status: http.StatusServiceUnavailable})
	verify(tok)
	verify("unknown-2")
	// The server is back: the probe closes the breaker.
	clock.Advance(time.Second)
	as.SetFault(introspectiontest.Fault{})
	verify("unknown-3")
	// The store fails.
	mc.setFail(true)
	verify("unknown-4")

	// The middleware refuses a DPoP presentation without a proof.
	h := RequireBearerToken(v, nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "DPoP "+tok)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	verdicts = append(verdicts, "middleware: "+strconv.Itoa(w.Code))
	return verdicts, v.Stats(), logs
}

// observerMethods are the methods of Observer, each of which the
// scenario calls.
var observerMethods = []string{
	"VerifyStart", "VerifyEnd", "CacheLookup", "CollapsedWaiter", "UpstreamStart", "UpstreamEnd",
	"CacheCallStart", "CacheCallEnd", "CacheError", "BreakerChange",
}

// TestObserverPanicsNeverChangeAVerdict shows that a panic in any method
// of the observer is recovered, counted in Stats.Panics once per call and
// logged with where it happened, and changes no verdict nor any other
// count: every verification ends as it does without an observer.
func TestObserverPanicsNeverChangeAVerdict(t *testing.T) {
	want, wantStats, _ := observerScenario(t, nil)
	rec := &recordingObserver{}
	got, st, _ := observerScenario(t, rec)
	require.Equal(t, want, got, "an observer changes nothing")
	require.Equal(t, wantStats, st)
	calls := rec.seen()
	for _, m := range observerMethods {
		require.Positive(t, count(calls, m), "the scenario calls %s", m)
	}
	for _, m := range observerMethods {
		t.Run(m, func(t *testing.T) {
			got, st, logs := observerScenario(t, &recordingObserver{panicIn: m})
			assert.Equal(t, want, got)
			assert.Equal(t, uint64(count(calls, m)), st.Panics, "each panic is counted")
			st.Panics = 0
			assert.Equal(t, wantStats, st)
			n := 0
			for _, r := range logs.matching("recovered from a panic") {
				if in, _ := attr(r, "in"); in == "Observer."+m {
					n++
				}
			}
			assert.Equal(t, count(calls, m), n, "each panic is logged, naming the method")
		})
	}
}

// TestObserverThatBlocksHoldsNoCallerPastItsBound shows that an observer
// that never returns from an event of the shared request does not hold
// its callers longer than a hung request would: they get FailureTimeout.
func TestObserverThatBlocksHoldsNoCallerPastItsBound(t *testing.T) {
	as := newAS(t, nil)
	release := make(chan struct{})
	obs := &blockingObserver{release: release}
	v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
		s.Observer = obs
		s.Timeout = 50 * time.Millisecond
	})
	t.Cleanup(func() { close(release); waitUntilIdle(t, v) })
	_, err := v.Verify(context.Background(), as.Issue(introspectiontest.TokenOptions{}))
	assert.Equal(t, FailureTimeout, kindOf(err), "%v", err)
}

// blockingObserver blocks in UpstreamEnd until release is closed.
type blockingObserver struct {
	NopObserver
	release chan struct{}
}

func (o *blockingObserver) UpstreamEnd(context.Context, UpstreamEvent) { <-o.release }

// TestObserverBlockingInBreakerChangeHoldsTheCallers shows the limit of
// that bound: BreakerChange is called before the callers of the request
// that changed the breaker get their answer, so one that blocks holds
// them until their own contexts end.
func TestObserverBlockingInBreakerChangeHoldsTheCallers(t *testing.T) {
	as := newAS(t, nil)
	as.SetFault(introspectiontest.Fault{Status: http.StatusServiceUnavailable})
	release := make(chan struct{})
	v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
		s.Observer = &blockingBreakerObserver{release: release}
		s.BreakerThreshold = 1
	})
	t.Cleanup(func() { close(release); waitUntilIdle(t, v) })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := v.Verify(ctx, "tok")
	assert.ErrorIs(t, err, context.DeadlineExceeded, "the caller waited until its context ended")
	assert.Equal(t, uint64(1), v.Stats().BreakerOpened)
}

// blockingBreakerObserver blocks in BreakerChange until release is
// closed.
type blockingBreakerObserver struct {
	NopObserver
	release chan struct{}
}

func (o *blockingBreakerObserver) BreakerChange(context.Context, BreakerEvent) { <-o.release }

// nilContextObserver returns no context from its Start methods.
type nilContextObserver struct{ NopObserver }

func (nilContextObserver) VerifyStart(context.Context) context.Context { return nil }

func (nilContextObserver) UpstreamStart(context.Context, UpstreamRequest) context.Context { return nil }

func (nilContextObserver) CacheCallStart(context.Context, CacheOperation) context.Context { return nil }

// TestObserverReturningNoContext shows that a Start method that returns
// a nil context leaves the verification's context as it was.
func TestObserverReturningNoContext(t *testing.T) {
	as := newAS(t, nil)
	v, _ := sharedCacheVerifier(t, as, func(s *Settings) { s.Observer = nilContextObserver{} })
	_, err := v.Verify(context.Background(), as.Issue(introspectiontest.TokenOptions{}))
	require.NoError(t, err)
	assert.Zero(t, v.Stats().Panics)
}

// TestCacheHitAllocations shows what a cache hit of a typical answer
// allocates, as BenchmarkVerifyCacheHit measures it: nine allocations
// without an observer, and not one more with an observer that does
// nothing.
func TestCacheHitAllocations(t *testing.T) {
	srv := jsonServer(t, http.StatusOK, typicalAnswer(0))
	tok := benchToken
	ctx := context.Background()
	hitAllocs := func(obs Observer) float64 {
		v := newVerifier(t, srv.URL, nil, func(s *Settings) {
			s.CacheTTL = time.Hour
			s.RequiredScopes = []string{"mcp:tools"}
			s.Observer = obs
		})
		_, err := v.Verify(ctx, tok)
		require.NoError(t, err)
		waitUntilIdle(t, v)
		return testing.AllocsPerRun(100, func() {
			if _, err := v.Verify(ctx, tok); err != nil {
				t.Fatal(err)
			}
		})
	}
	assert.Equal(t, 9.0, hitAllocs(nil), "without an observer")
	assert.Equal(t, 9.0, hitAllocs(NopObserver{}), "with one that does nothing")
}
