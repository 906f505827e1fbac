package otel

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// documentedMetrics is the README's table of metrics: each metric's
// instrument, unit and attribute keys (those marked "?" are present only
// on some points).
var documentedMetrics = map[string]struct {
	instrument string
	unit       string
	attrs      []string
}{
	"introspection.verifications":       {"counter", "{verification}", []string{"introspection.outcome", "introspection.reason"}},
	"introspection.cache.lookups":       {"counter", "{lookup}", []string{"introspection.cache.result"}},
	"introspection.cache.errors":        {"counter", "{error}", []string{"introspection.cache.operation"}},
	"introspection.collapsed_waiters":   {"counter", "{verification}", nil},
	"introspection.upstream.duration":   {"histogram", "s", []string{"introspection.upstream.status_class", "error.type?"}},
	"introspection.breaker.transitions": {"counter", "{transition}", []string{"introspection.breaker.state"}},
	"introspection.cache.entries":       {"gauge", "{entry}", nil},
	"introspection.breaker.state":       {"gauge", "{breaker}", []string{"introspection.breaker.state"}},
	"introspection.metadata.fetches":    {"counter", "{fetch}", []string{"error.type?"}},
}

// documentedSpans is the README's table of spans: each span's kind and
// attribute keys ("?": only on some), and its events with theirs.
var documentedSpans = map[string]struct {
	kind   string
	attrs  []string
	events map[string][]string
}{
	"introspection.verify": {"internal",
		[]string{"introspection.outcome", "introspection.reason", "introspection.cache.result?", "introspection.collapsed_waiter?"},
		map[string][]string{
			"introspection.cache.error":        {"introspection.cache.operation"},
			"introspection.breaker.transition": {"introspection.breaker.previous_state", "introspection.breaker.state"},
		}},
	"POST": {"client",
		[]string{"http.request.method", "server.address", "server.port", "url.full", "http.response.status_code?", "error.type?"}, nil},
	"introspection.cache.get":        {"internal", []string{"introspection.cache.operation"}, cacheCallEvents},
	"introspection.cache.set":        {"internal", []string{"introspection.cache.operation"}, cacheCallEvents},
	"introspection.cache.delete":     {"internal", []string{"introspection.cache.operation"}, cacheCallEvents},
	"introspection.cache.invalidate": {"internal", []string{"introspection.cache.operation"}, cacheCallEvents},
	"introspection.metadata.fetch":   {"internal", []string{"error.type?"}, nil},
}

// cacheCallEvents are the events of the span of a call of a caller's
// Cache.
var cacheCallEvents = map[string][]string{"introspection.cache.error": {"introspection.cache.operation"}}

// documentedValues are the values the README lists for each attribute
// whose values form a fixed set.
var documentedValues = map[string][]string{
	"introspection.outcome": {"accepted", "rejected", "insufficient_scope", "failed", "canceled", "other"},
	"introspection.reason": {"none", "malformed_token", "inactive", "expired", "not_yet_valid", "issuer_mismatch",
		"audience_mismatch", "not_access_token", "proof_required", "proof_mismatch", "token_not_bound",
		"invalid_dpop_proof", "use_dpop_nonce", "proof_replayed", "invalid_token", "insufficient_scope",
		"transport", "timeout", "status", "redirect", "content_type", "too_large", "malformed", "panic",
		"replay_store", "unavailable", "discovery", "canceled", "deadline_exceeded", "other"},
	"introspection.cache.result":           {"hit", "negative", "miss", "stale", "other"},
	"introspection.cache.operation":        {"get", "set", "delete", "invalidate", "decode", "other"},
	"introspection.upstream.status_class":  {"1xx", "2xx", "3xx", "4xx", "5xx", "none", "other"},
	"error.type":                           {"transport", "timeout", "status", "redirect", "content_type", "too_large", "malformed", "panic", "replay_store", "unavailable", "discovery", "other"},
	"introspection.breaker.state":          {"closed", "open", "half_open", "other"},
	"introspection.breaker.previous_state": {"closed", "open", "half_open", "other"},
	"introspection.collapsed_waiter":       {"true"},
	"http.request.method":                  {"POST"},
}

// checkDocumented fails t for any metric, span, event or attribute that
// the tables above do not list, and any attribute value outside the
// documented set.
func checkDocumented(t *testing.T, h *harness) {
	t.Helper()
	for name, m := range h.collect(t) {
		doc, ok := documentedMetrics[name]
		if !assert.True(t, ok, "metric %s is documented", name) {
			continue
		}
		assert.Equal(t, doc.unit, m.Unit, name)
		switch m.Data.(type) {
		case metricdata.Sum[int64]:
			assert.Equal(t, "counter", doc.instrument, name)
		case metricdata.Gauge[int64]:
			assert.Equal(t, "gauge", doc.instrument, name)
		case metricdata.Histogram[float64]:
			assert.Equal(t, "histogram", doc.instrument, name)
		}
		for attrs := range points(m) {
			checkAttrs(t, name, parseAttrs(attrs), doc.attrs)
		}
	}
	for _, s := range h.ended() {
		doc, ok := documentedSpans[s.Name]
		if !assert.True(t, ok, "span %s is documented", s.Name) {
			continue
		}
		assert.Equal(t, doc.kind, s.Kind, s.Name)
		checkAttrs(t, s.Name, s.Attrs, doc.attrs)
		for _, e := range s.Events {
			name, attrs, _ := strings.Cut(e, " ")
			keys, ok := doc.events[name]
			if assert.True(t, ok, "event %s of %s is documented", name, s.Name) {
				checkAttrs(t, name, parseAttrs(attrs), keys)
			}
		}
	}
}

// parseAttrs reads attrString's "key=value key=value".
func parseAttrs(s string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Fields(s) {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// checkAttrs checks that attrs has every key of want not marked "?" and
// no key want does not list, and that each value is documented.
func checkAttrs(t *testing.T, what string, attrs map[string]string, want []string) {
	t.Helper()
	allowed := map[string]bool{}
	for _, k := range want {
		k, optional := strings.CutSuffix(k, "?")
		allowed[k] = true
		if !optional {
			assert.Contains(t, attrs, k, "%s has %s", what, k)
		}
	}
	for k, v := range attrs {
		assert.True(t, allowed[k], "%s has only documented attributes, not %s", what, k)
		if vals, ok := documentedValues[k]; ok {
			assert.Contains(t, vals, v, "%s: %s is a documented value", what, k)
		}
	}
}

// TestVerificationsCacheLookupsAndRequests shows the metrics and spans of
// verifications: each verdict counted with its outcome and reason, each
// cache lookup with its result, each introspection request's duration
// with its status class (and error.type when it failed); a span
// introspection.verify per verification with exactly those attributes,
// and under it the HTTP client span of its request. A verification that
// memory answered, a hit or a negative hit, has no span; its verdict and
// lookup are counted all the same.
func TestVerificationsCacheLookupsAndRequests(t *testing.T) {
	h := newHarness(t)
	clock := newFakeClock()
	as := newAS(t, clock)
	v := newVerifier(t, as.IntrospectionURL, h.obs, func(s *introspection.Settings) {
		s.Now = clock.Now
		s.CacheTTL = time.Minute
		s.NegativeCacheTTL = time.Minute
		s.StaleIfError = time.Hour
	})
	ctx := context.Background()
	tok := as.Issue(introspectiontest.TokenOptions{Lifetime: 24 * time.Hour})
	verify := func(tok string) *introspection.AccessToken {
		t.Helper()
		got, _ := v.Verify(ctx, tok)
		require.NoError(t, v.Close()) // waits for the shared request
		return got
	}
	require.NotNil(t, verify(tok))    // a miss
	require.NotNil(t, verify(tok))    // a hit
	require.Nil(t, verify("unknown")) // inactive
	require.Nil(t, verify("unknown")) // a negative hit
	clock.Advance(2 * time.Minute)    // the entry ends
	as.SetFault(introspectiontest.Fault{Status: http.StatusServiceUnavailable})
	stale := verify(tok)
	require.NotNil(t, stale)
	require.True(t, stale.Stale)

	m := h.collect(t)
	assert.Equal(t, map[string]float64{
		"introspection.outcome=accepted introspection.reason=none":     3,
		"introspection.outcome=rejected introspection.reason=inactive": 2,
	}, points(m["introspection.verifications"]))
	assert.Equal(t, map[string]float64{
		"introspection.cache.result=miss": 3, "introspection.cache.result=hit": 1,
		"introspection.cache.result=negative": 1, "introspection.cache.result=stale": 1,
	}, points(m["introspection.cache.lookups"]))
	assert.Equal(t, map[string]float64{
		"introspection.upstream.status_class=2xx":                   2,
		"error.type=status introspection.upstream.status_class=5xx": 1,
	}, points(m["introspection.upstream.duration"]))
	hist := m["introspection.upstream.duration"].Data.(metricdata.Histogram[float64])
	assert.Equal(t, UpstreamBuckets, hist.DataPoints[0].Bounds, "the documented buckets")

	spans := h.ended()
	verifies := named(spans, "introspection.verify")
	results := []string{"miss", "miss", "stale"}
	verdicts := []string{"accepted none", "rejected inactive", "accepted none"}
	require.Len(t, verifies, len(results))
	for i, s := range verifies {
		outcome, reason, _ := strings.Cut(verdicts[i], " ")
		assert.Equal(t, map[string]string{"introspection.outcome": outcome, "introspection.reason": reason,
			"introspection.cache.result": results[i]}, s.Attrs, "verification %d", i)
		assert.Equal(t, "Unset", s.Status)
		assert.Empty(t, s.Parent)
	}
	u, err := url.Parse(as.IntrospectionURL)
	require.NoError(t, err)
	posts := named(spans, "POST")
	require.Len(t, posts, 3)
	for i, s := range posts {
		want := map[string]string{"http.request.method": "POST", "server.address": "127.0.0.1",
			"server.port": u.Port(), "url.full": as.IntrospectionURL, "http.response.status_code": "200"}
		status := "Unset"
		if i == 2 {
			want["http.response.status_code"], want["error.type"] = "503", "status"
			status = "Error status"
		}
		assert.Equal(t, want, s.Attrs)
		assert.Equal(t, status, s.Status)
		assert.Equal(t, "introspection.verify", s.Parent, "the request's span is a child of the verification's")
	}
	checkDocumented(t, h)
}

// TestEveryVerdictHasItsReason drives one verification to each verdict
// it can reach without DPoP and checks the counter's attributes and the
// span's: the reason is never "other" for a verdict the verifier gives,
// and a failure sets the span's status to Error with the reason.
func TestEveryVerdictHasItsReason(t *testing.T) {
	soon := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		status          int
		body            string
		edit            func(*introspection.Settings)
		ctx             context.Context
		token           string
		outcome, reason string
	}{
		{200, `{"active":true}`, nil, nil, "", "accepted", "none"},
		{200, `{"active":false}`, nil, nil, "", "rejected", "inactive"},
		{200, `{"active":true,"exp":1}`, nil, nil, "", "rejected", "expired"},
		{200, `{"active":true,"nbf":` + soon + `}`, nil, nil, "", "rejected", "not_yet_valid"},
		{200, `{"active":true,"iss":"https://other.example"}`, func(s *introspection.Settings) { s.Issuer = "https://as.example" }, nil, "", "rejected", "issuer_mismatch"},
		{200, `{"active":true,"aud":"x"}`, func(s *introspection.Settings) { s.Audience = []string{"y"} }, nil, "", "rejected", "audience_mismatch"},
		{200, `{"active":true,"token_type":"refresh_token"}`, nil, nil, "", "rejected", "not_access_token"},
		{200, `{"active":true,"cnf":{"jkt":"abc"}}`, nil, nil, "", "rejected", "proof_required"},
		{200, `{"active":true}`, nil, nil, "not a token", "rejected", "malformed_token"},
		{200, `{"active":true,"scope":"a"}`, func(s *introspection.Settings) { s.RequiredScopes = []string{"b"} }, nil, "", "insufficient_scope", "insufficient_scope"},
		{500, `{}`, nil, nil, "", "failed", "status"},
		{302, `{}`, nil, nil, "", "failed", "redirect"},
		{200, `{"active":`, nil, nil, "", "failed", "malformed"},
		{200, `{"active":true}`, nil, canceled, "", "canceled", "canceled"},
	}
	for _, tc := range tests {
		t.Run(tc.outcome+"/"+tc.reason, func(t *testing.T) {
			h := newHarness(t)
			srv := httptest.NewServer(jsonHandler(tc.status, tc.body))
			defer srv.Close()
			v := newVerifier(t, srv.URL, h.obs, tc.edit)
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			token := tc.token
			if token == "" {
				token = "tok"
			}
			_, _ = v.Verify(ctx, token)
			require.NoError(t, v.Close())
			attrs := "introspection.outcome=" + tc.outcome + " introspection.reason=" + tc.reason
			m := h.collect(t)
			assert.Equal(t, map[string]float64{attrs: 1}, points(m["introspection.verifications"]))
			assert.Empty(t, points(m["introspection.cache.lookups"]), "no lookups without a cache")
			spans := named(h.ended(), "introspection.verify")
			require.Len(t, spans, 1)
			assert.Equal(t, map[string]string{"introspection.outcome": tc.outcome, "introspection.reason": tc.reason}, spans[0].Attrs)
			if tc.outcome == "failed" {
				assert.Equal(t, "Error "+tc.reason, spans[0].Status)
			} else {
				assert.Equal(t, "Unset", spans[0].Status)
			}
			checkDocumented(t, h)
		})
	}
}

// TestCacheCallsAndErrors shows the spans of the calls of a caller's
// Cache, children of the verification's span, and the counter of cache
// errors, with an event for each: on the span of the call that failed, or
// on the verification's span for a stored value that is not an answer.
func TestCacheCallsAndErrors(t *testing.T) {
	h := newHarness(t)
	as := newAS(t, nil)
	mc := newMapCache()
	v := newVerifier(t, as.IntrospectionURL, h.obs, func(s *introspection.Settings) {
		s.CacheTTL = time.Minute
		s.Cache = mc
		s.LocalCacheTTL = -1 // every verification reads mc
	})
	ctx := context.Background()
	tok := as.Issue(introspectiontest.TokenOptions{})
	_, err := v.Verify(ctx, tok)
	require.NoError(t, err)
	require.NoError(t, v.Close())

	mc.put(v.CacheKey(tok), []byte("not json"))
	_, err = v.Verify(ctx, tok)
	require.NoError(t, err)
	require.NoError(t, v.Close())

	mc.setFail(true)
	_, err = v.Verify(ctx, tok)
	require.NoError(t, err)
	require.NoError(t, v.Close())

	m := h.collect(t)
	assert.Equal(t, map[string]float64{"introspection.cache.operation=decode": 1, "introspection.cache.operation=get": 1},
		points(m["introspection.cache.errors"]))
	spans := h.ended()
	gets := named(spans, "introspection.cache.get")
	// Each verification's shared request looks up once; the failing
	// store is skipped after its first error.
	require.Len(t, gets, 3)
	for _, s := range gets {
		assert.Equal(t, map[string]string{"introspection.cache.operation": "get"}, s.Attrs)
		assert.Equal(t, "introspection.verify", s.Parent)
	}
	assert.Equal(t, "Error cache call failed", gets[2].Status)
	assert.Equal(t, []string{"introspection.cache.error introspection.cache.operation=get"}, gets[2].Events)
	assert.Len(t, named(spans, "introspection.cache.set"), 2)
	assert.Len(t, named(spans, "introspection.cache.delete"), 1)
	var events []string
	for _, s := range named(spans, "introspection.verify") {
		events = append(events, s.Events...)
	}
	assert.Equal(t, []string{"introspection.cache.error introspection.cache.operation=decode"}, events)
	checkDocumented(t, h)
}

// invalidatingMapCache is a mapCache that is also an Invalidator whose
// subscription is always up and delivers nothing.
type invalidatingMapCache struct{ *mapCache }

func (invalidatingMapCache) Invalidate(context.Context, string) error { return nil }

func (invalidatingMapCache) SubscribeInvalidations(_ string, sub introspection.InvalidationSubscriber) func() {
	sub.Subscribed(true)
	return func() {}
}

// TestForgetCacheCalls shows the calls of Verifier.Forget to a Cache that
// is an Invalidator: a Delete and an Invalidate, each a span of its own,
// here roots, as Forget's context holds no span.
func TestForgetCacheCalls(t *testing.T) {
	h := newHarness(t)
	as := newAS(t, nil)
	v := newVerifier(t, as.IntrospectionURL, h.obs, func(s *introspection.Settings) {
		s.CacheTTL = time.Minute
		s.Cache = invalidatingMapCache{newMapCache()}
	})
	require.NoError(t, v.Forget(context.Background(), as.Issue(introspectiontest.TokenOptions{})))
	spans := h.ended()
	for _, name := range []string{"introspection.cache.delete", "introspection.cache.invalidate"} {
		got := named(spans, name)
		require.Len(t, got, 1, name)
		assert.Equal(t, map[string]string{"introspection.cache.operation": strings.TrimPrefix(name, "introspection.cache.")}, got[0].Attrs)
		assert.Empty(t, got[0].Parent)
	}
	checkDocumented(t, h)
}

// TestCollapsedWaiters shows that each call that got another's answer is
// counted and its span marked, as many as Stats counts.
func TestCollapsedWaiters(t *testing.T) {
	const n = 8
	h := newHarness(t)
	var started atomic.Int32
	obs := &countingObserver{Observer: h.obs, started: &started}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Answer once every caller has started, so that they share this
		// request.
		for deadline := time.Now().Add(10 * time.Second); started.Load() < n && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond) // for the last to join; the checks below hold however many did
		jsonHandler(200, `{"active":true}`).ServeHTTP(w, r)
	}))
	defer srv.Close()
	v := newVerifier(t, srv.URL, obs, nil)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { _, _ = v.Verify(context.Background(), "hot") })
	}
	wg.Wait()
	require.NoError(t, v.Close())
	collapsed := v.Stats().CollapsedWaiters
	require.Positive(t, collapsed)
	assert.Equal(t, map[string]float64{"": float64(collapsed)}, points(h.collect(t)["introspection.collapsed_waiters"]))
	marked := 0
	for _, s := range named(h.ended(), "introspection.verify") {
		if s.Attrs["introspection.collapsed_waiter"] == "true" {
			marked++
		}
	}
	assert.Equal(t, int(collapsed), marked)
	checkDocumented(t, h)
}

// countingObserver counts VerifyStart before passing it on.
type countingObserver struct {
	*Observer
	started *atomic.Int32
}

func (o *countingObserver) VerifyStart(ctx context.Context) context.Context {
	o.started.Add(1)
	return o.Observer.VerifyStart(ctx)
}

// TestBreakerAndGauges shows the breaker's transitions, counted by the
// state they went to and added as events to the span of the verification
// whose request caused them, and the gauges of the watched verifiers:
// entries of the built-in cache and breakers in each state.
func TestBreakerAndGauges(t *testing.T) {
	h := newHarness(t)
	clock := newFakeClock()
	as := newAS(t, clock)
	v := newVerifier(t, as.IntrospectionURL, h.obs, func(s *introspection.Settings) {
		s.Now = clock.Now
		s.CacheTTL = time.Minute
		s.BreakerThreshold = 1
		s.BreakerMinBackoff, s.BreakerMaxBackoff = time.Second, time.Second
	})
	stop := h.obs.Watch(v)
	ctx := context.Background()
	gauges := func() (entries, states map[string]float64) {
		m := h.collect(t)
		return points(m["introspection.cache.entries"]), points(m["introspection.breaker.state"])
	}
	state := func(closed, open, halfOpen float64) map[string]float64 {
		return map[string]float64{"introspection.breaker.state=closed": closed,
			"introspection.breaker.state=open": open, "introspection.breaker.state=half_open": halfOpen}
	}

	_, err := v.Verify(ctx, as.Issue(introspectiontest.TokenOptions{}))
	require.NoError(t, err)
	require.NoError(t, v.Close())
	entries, states := gauges()
	assert.Equal(t, map[string]float64{"": 1}, entries)
	assert.Equal(t, state(1, 0, 0), states)

	as.SetFault(introspectiontest.Fault{Status: http.StatusServiceUnavailable})
	_, err = v.Verify(ctx, "unknown-1")
	require.Error(t, err)
	require.NoError(t, v.Close())
	_, states = gauges()
	assert.Equal(t, state(0, 1, 0), states)

	clock.Advance(time.Second)
	as.SetFault(introspectiontest.Fault{})
	_, err = v.Verify(ctx, "unknown-2")
	require.ErrorIs(t, err, introspection.ErrTokenInactive)
	require.NoError(t, v.Close())
	_, states = gauges()
	assert.Equal(t, state(1, 0, 0), states)

	assert.Equal(t, map[string]float64{"introspection.breaker.state=open": 1, "introspection.breaker.state=half_open": 1,
		"introspection.breaker.state=closed": 1}, points(h.collect(t)["introspection.breaker.transitions"]))
	var events []string
	for _, s := range named(h.ended(), "introspection.verify") {
		events = append(events, s.Events...)
	}
	assert.Equal(t, []string{
		"introspection.breaker.transition introspection.breaker.previous_state=closed introspection.breaker.state=open",
		"introspection.breaker.transition introspection.breaker.previous_state=open introspection.breaker.state=half_open",
		"introspection.breaker.transition introspection.breaker.previous_state=half_open introspection.breaker.state=closed",
	}, events)
	checkDocumented(t, h)

	stop()
	stop() // a second call does nothing
	entries, states = gauges()
	assert.Empty(t, entries, "a verifier no longer watched is not reported")
	assert.Empty(t, states)
}

// TestWatchCountsEachVerifierOnce shows the gauges with two verifiers,
// one with a caller's Cache, which has no entries to count, and one
// watched twice.
func TestWatchCountsEachVerifierOnce(t *testing.T) {
	h := newHarness(t)
	as := newAS(t, nil)
	builtIn := newVerifier(t, as.IntrospectionURL, h.obs, func(s *introspection.Settings) { s.CacheTTL = time.Minute })
	shared := newVerifier(t, as.IntrospectionURL, h.obs, func(s *introspection.Settings) {
		s.CacheTTL = time.Minute
		s.Cache = newMapCache()
	})
	for _, v := range []*introspection.Verifier{builtIn, shared} {
		_, err := v.Verify(context.Background(), as.Issue(introspectiontest.TokenOptions{}))
		require.NoError(t, err)
		require.NoError(t, v.Close())
	}
	stop1, stop2 := h.obs.Watch(builtIn), h.obs.Watch(builtIn)
	defer h.obs.Watch(shared)()
	m := h.collect(t)
	assert.Equal(t, map[string]float64{"": 1}, points(m["introspection.cache.entries"]))
	assert.Equal(t, float64(2), value(m, "introspection.breaker.state", "introspection.breaker.state=closed"))
	stop1()
	assert.Equal(t, float64(2), value(h.collect(t), "introspection.breaker.state", "introspection.breaker.state=closed"))
	stop2()
	assert.Equal(t, float64(1), value(h.collect(t), "introspection.breaker.state", "introspection.breaker.state=closed"))
}

// TestValuesOutsideTheSetsAreOther calls the observer with values no
// verifier of this version gives, as a later one might: each is recorded
// as "other", so that the attribute sets stay the documented ones.
func TestValuesOutsideTheSetsAreOther(t *testing.T) {
	h := newHarness(t)
	ctx := h.obs.VerifyStart(context.Background())
	h.obs.CacheLookup(ctx, "warm")
	h.obs.CacheError(ctx, "scan")
	h.obs.BreakerChange(ctx, introspection.BreakerEvent{From: "ajar", To: "shut"})
	uctx := h.obs.UpstreamStart(ctx, introspection.UpstreamRequest{Method: "POST", URL: "https://as.example/i"})
	h.obs.UpstreamEnd(uctx, introspection.UpstreamEvent{StatusCode: 700, Failure: "quantum"})
	h.obs.VerifyEnd(ctx, introspection.VerifyEvent{Outcome: "rejected", Reason: "moon_phase"})
	ctx2 := h.obs.VerifyStart(context.Background())
	h.obs.VerifyEnd(ctx2, introspection.VerifyEvent{Outcome: "postponed", Reason: "later"})

	m := h.collect(t)
	assert.Equal(t, map[string]float64{
		"introspection.outcome=rejected introspection.reason=other": 1,
		"introspection.outcome=other introspection.reason=other":    1,
	}, points(m["introspection.verifications"]))
	assert.Equal(t, map[string]float64{"introspection.cache.result=other": 1}, points(m["introspection.cache.lookups"]))
	assert.Equal(t, map[string]float64{"introspection.cache.operation=other": 1}, points(m["introspection.cache.errors"]))
	assert.Equal(t, map[string]float64{"introspection.breaker.state=other": 1}, points(m["introspection.breaker.transitions"]))
	assert.Equal(t, map[string]float64{"error.type=other introspection.upstream.status_class=other": 1},
		points(m["introspection.upstream.duration"]))
	checkDocumented(t, h)
}

// TestEndsOnlyItsOwnSpans shows that an End method whose Start did not
// run (its Start panicked, and the verifier went on with the caller's
// context) leaves the caller's span alone.
func TestEndsOnlyItsOwnSpans(t *testing.T) {
	h := newHarness(t)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(h.spans))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	ctx, caller := tp.Tracer("caller").Start(context.Background(), "caller")
	h.obs.UpstreamEnd(ctx, introspection.UpstreamEvent{StatusCode: 500, Failure: introspection.FailureStatus})
	h.obs.CacheCallEnd(ctx, introspection.CacheCallEvent{Operation: introspection.CacheGet})
	h.obs.VerifyEnd(ctx, introspection.VerifyEvent{Outcome: introspection.OutcomeFailed, Reason: "status"})
	h.obs.CacheLookup(ctx, introspection.CacheHit)
	assert.Empty(t, h.spans.Ended(), "the caller's span is not ended")
	caller.End()
	spans := h.ended()
	require.Len(t, spans, 1)
	assert.Empty(t, spans[0].Attrs, "nor given attributes")
	assert.Equal(t, "Unset", spans[0].Status)
}

// TestNoSpansUnlessSampled shows that with spans not sampled the observer
// still counts, and records no span.
func TestNoSpansUnlessSampled(t *testing.T) {
	h := newHarness(t, sdktrace.WithSampler(sdktrace.NeverSample()))
	srv := httptest.NewServer(jsonHandler(200, `{"active":true}`))
	defer srv.Close()
	v := newVerifier(t, srv.URL, h.obs, nil)
	_, err := v.Verify(context.Background(), "tok")
	require.NoError(t, err)
	require.NoError(t, v.Close())
	assert.Empty(t, h.spans.Started())
	assert.Equal(t, map[string]float64{"introspection.outcome=accepted introspection.reason=none": 1},
		points(h.collect(t)["introspection.verifications"]))
}

// randomText returns n random printable bytes.
func randomText(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(0x21 + r.IntN(0x5e))
	}
	return string(b)
}

// TestAttributeSetsStayBounded runs verifications against a server that
// answers with random status codes, random error codes and descriptions,
// random token_type, iss and aud values and random members, for random
// tokens, and through a transport that answers any status code from -500
// to 2499: however many distinct answers, every attribute keeps to its
// documented values, and the numbers of distinct attribute sets and span
// names stay within the documented sets.
func TestAttributeSetsStayBounded(t *testing.T) {
	const n = 600
	h := newHarness(t)
	r := rand.New(rand.NewPCG(1, 2))
	var mu sync.Mutex
	answer := func() (int, string) {
		mu.Lock()
		defer mu.Unlock()
		switch r.IntN(3) {
		case 0:
			code := 100 + r.IntN(900)
			return code, `{"error":"` + randomText(r, 12) + `","error_description":"` + randomText(r, 40) + `"}`
		case 1:
			return 200, `{"active":true,"token_type":"` + randomText(r, 8) + `","iss":"` + randomText(r, 10) +
				`","aud":"` + randomText(r, 10) + `","` + randomText(r, 6) + `":1}`
		}
		return 200, `{"active":` + strconv.FormatBool(r.IntN(2) == 0) + `,"sub":"` + randomText(r, 16) + `"}`
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		code, body := answer()
		if code >= 100 && code < 200 {
			code = 200 // net/http's server refuses to send 1xx as a final answer
		}
		jsonHandler(code, strings.ReplaceAll(body, `\`, "")).ServeHTTP(w, req)
	}))
	defer srv.Close()
	v := newVerifier(t, srv.URL, h.obs, func(s *introspection.Settings) {
		s.BreakerThreshold = -1 // every request reaches the server
		s.Issuer = "https://as.example"
	})
	for i := range n {
		_, _ = v.Verify(context.Background(), "tok-"+strconv.Itoa(i)+"-"+randomText(r, 8))
	}
	require.NoError(t, v.Close())
	// A transport of the caller's may answer any status code at all.
	odd := newVerifier(t, srv.URL, h.obs, func(s *introspection.Settings) {
		s.BreakerThreshold = -1
		s.HTTPClient = &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
			_ = req.Body.Close()
			mu.Lock()
			code := r.IntN(3000) - 500
			mu.Unlock()
			return &http.Response{StatusCode: code, Header: http.Header{"Content-Type": {"application/json"}},
				Body: io.NopCloser(strings.NewReader(`{}`)), Request: req}, nil
		})}
	})
	for i := range 200 {
		_, _ = odd.Verify(context.Background(), "odd-"+strconv.Itoa(i))
	}
	require.NoError(t, odd.Close())
	checkDocumented(t, h)
	m := h.collect(t)
	assert.LessOrEqual(t, len(points(m["introspection.verifications"])), 30, "reasons")
	assert.LessOrEqual(t, len(points(m["introspection.upstream.duration"])), 7*13, "status classes by error.type")
	names := map[string]bool{}
	for _, s := range h.ended() {
		names[s.Name] = true
		if code, ok := s.Attrs["http.response.status_code"]; ok {
			c, err := strconv.Atoi(code)
			require.NoError(t, err)
			assert.True(t, c >= 100 && c <= 999, "a status code, not text: %s", code)
		}
	}
	assert.Equal(t, map[string]bool{"introspection.verify": true, "POST": true}, names)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestExportedDataHoldsNoSecret runs verifications whose token, subject,
// user name, client id, scopes, the resource server's secret, the
// introspection URL's query and the server's error description each hold
// a marker, through every event (cache hits, errors, a failing server, the
// breaker), and scans everything exported, metrics and spans, for them.
func TestExportedDataHoldsNoSecret(t *testing.T) {
	const secret = "S3CRET-client-secret"
	h := newHarness(t)
	clock := newFakeClock()
	as := newAS(t, clock)
	as.AddClient("rs-client", secret)
	mc := newMapCache()
	var failing atomic.Bool
	target, err := url.Parse(as.URL)
	require.NoError(t, err)
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			_ = r.ParseForm()
			jsonHandler(401, `{"error":"invalid_client","error_description":"bad token `+r.Form.Get("token")+
				` for S3CRET-subject"}`).ServeHTTP(w, r)
			return
		}
		r.URL.RawQuery = "" // the authorization server takes no query
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	v := newVerifier(t, proxy.URL+"/introspect?api_key=S3CRET-query#S3CRET-fragment", h.obs, func(s *introspection.Settings) {
		s.ClientID, s.ClientSecret = "rs-client", secret
		s.Now = clock.Now
		s.CacheTTL = time.Minute
		s.Cache = mc
		s.BreakerThreshold = 1
		s.RequiredScopes = []string{"S3CRET-scope"}
	})
	h.obs.Watch(v)
	tok := as.Issue(introspectiontest.TokenOptions{ClientID: "S3CRET-client", Subject: "S3CRET-subject",
		Username: "S3CRET-user", Scopes: []string{"S3CRET-scope"}, Extra: map[string]any{"email": "S3CRET@example.com"}})
	ctx := context.Background()
	for range 2 {
		_, err := v.Verify(ctx, tok)
		require.NoError(t, err)
		require.NoError(t, v.Close())
	}
	mc.put(v.CacheKey(tok), []byte(`S3CRET-value`))
	_, _ = v.Verify(ctx, tok)
	require.NoError(t, v.Close())
	failing.Store(true)
	mc.setFail(true)
	_, err = v.Verify(ctx, "S3CRET-other-token")
	require.Error(t, err)
	require.NoError(t, v.Close())

	out := h.dump(t)
	require.Contains(t, out, "introspection.verify", "the dump holds the spans")
	require.Contains(t, out, "introspection.verifications", "and the metrics")
	for _, s := range []string{"S3CRET", tok, secret, "api_key"} {
		assert.NotContains(t, out, s)
	}
	assert.Regexp(t, regexp.MustCompile(`url\.full.{0,20}`+regexp.QuoteMeta(proxy.URL+"/introspect")+`"`), out, "the URL without its query")
}

// TestREADMETablesAreTheContract checks that the module's README lists
// every metric with its instrument, unit and attributes, and every span
// with its attributes, as the tables of these tests have them.
func TestREADMETablesAreTheContract(t *testing.T) {
	b, err := os.ReadFile("README.md")
	require.NoError(t, err)
	readme := string(b)
	row := func(cells ...string) string { return "| " + strings.Join(cells, " | ") + " |" }
	code := func(ss []string) string {
		var out []string
		for _, s := range ss {
			if k, ok := strings.CutSuffix(s, "?"); ok {
				out = append(out, "`"+k+"` (when set)")
			} else {
				out = append(out, "`"+s+"`")
			}
		}
		if len(out) == 0 {
			return "none"
		}
		return strings.Join(out, ", ")
	}
	for name, m := range documentedMetrics {
		assert.Contains(t, readme, row("`"+name+"`", m.instrument, "`"+m.unit+"`", code(m.attrs)), "README row of %s", name)
	}
	for name, s := range documentedSpans {
		assert.Contains(t, readme, row("`"+name+"`", s.kind, code(s.attrs)), "README row of %s", name)
	}
	for name, s := range documentedSpans {
		for event, keys := range s.events {
			assert.Contains(t, readme, row("`"+event+"`", "`"+name+"`", code(keys)), "README row of %s", event)
		}
	}
	for k, vals := range documentedValues {
		assert.Contains(t, readme, row("`"+k+"`", code(vals)), "README row of %s's values", k)
	}
}

// TestTracerProviderFromOptions shows that the Observer's spans come from
// the TracerProvider it was given and have the module's scope.
func TestTracerProviderFromOptions(t *testing.T) {
	h := newHarness(t)
	ctx := h.obs.VerifyStart(context.Background())
	assert.True(t, trace.SpanFromContext(ctx).SpanContext().IsValid())
	h.obs.VerifyEnd(ctx, introspection.VerifyEvent{Outcome: introspection.OutcomeAccepted, Reason: "none"})
	ended := h.spans.Ended()
	require.Len(t, ended, 1)
	assert.Equal(t, ScopeName, ended[0].InstrumentationScope().Name)
}

// TestRequestAttributesLeaveOutQueryAndUser shows the attributes of the
// request's span for URLs the verifier would not hand over: a query, a
// fragment or user information never reaches url.full, and a default port
// is named.
func TestRequestAttributesLeaveOutQueryAndUser(t *testing.T) {
	tests := []struct {
		url, full, address, port string
	}{
		{"https://user:pass@as.example/introspect?key=S3CRET#frag", "https://as.example/introspect", "as.example", "443"},
		{"http://127.0.0.1:8080/i?", "http://127.0.0.1:8080/i", "127.0.0.1", "8080"},
		{"http://[::1]/i", "http://[::1]/i", "::1", "80"},
	}
	for _, tc := range tests {
		got := map[string]string{}
		for _, kv := range requestAttributes(introspection.UpstreamRequest{Method: "POST", URL: tc.url}) {
			got[string(kv.Key)] = kv.Value.String()
		}
		assert.Equal(t, map[string]string{"http.request.method": "POST", "url.full": tc.full,
			"server.address": tc.address, "server.port": tc.port}, got, tc.url)
	}
}
