package otel

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"
)

// TestLocalTierHitHasNoSpan shows the spans of the two tiers: a
// verification that the local tier answers has none, one that the shared
// Cache answers has its span with the call's under it, as has one that
// asked the authorization server.
func TestLocalTierHitHasNoSpan(t *testing.T) {
	h := newHarness(t)
	clock := newFakeClock()
	as := newAS(t, clock)
	cache := newMapCache()
	v := newVerifier(t, as.IntrospectionURL, h.obs, func(s *introspection.Settings) {
		s.Now = clock.Now
		s.Cache = cache
		s.CacheTTL = time.Hour
		s.LocalCacheTTL = time.Minute
	})
	tok := as.Issue(introspectiontest.TokenOptions{Lifetime: 24 * time.Hour})
	verify := func() {
		t.Helper()
		_, err := v.Verify(context.Background(), tok)
		require.NoError(t, err)
		require.NoError(t, v.Close())
	}
	verify()                       // both tiers miss: a request
	verify()                       // the local tier
	clock.Advance(2 * time.Minute) // the local entry ends, the shared one stays
	verify()                       // the shared tier

	spans := h.ended()
	verifies := named(spans, spanVerify)
	require.Len(t, verifies, 2, "no span for the local tier's hit")
	assert.Equal(t, "miss", verifies[0].Attrs["introspection.cache.result"])
	assert.Equal(t, "hit", verifies[1].Attrs["introspection.cache.result"])
	gets := named(spans, "introspection.cache.get")
	require.Len(t, gets, 2)
	for _, g := range gets {
		assert.Equal(t, spanVerify, g.Parent)
	}
	require.Len(t, named(spans, "POST"), 1)
	assert.Equal(t, float64(3), value(h.collect(t), "introspection.verifications",
		"introspection.outcome=accepted introspection.reason=none"), "every verification counted")
	checkDocumented(t, h)
}

// TestCollapsedWaitersOnASharedCacheHaveSpans shows that a verification
// that waited for another's request has its span even when that request
// found the answer in the shared Cache, which counts as a hit: it waited
// for the Cache's call.
func TestCollapsedWaitersOnASharedCacheHaveSpans(t *testing.T) {
	const n = 4
	h := newHarness(t)
	cache := &gatedCache{mapCache: newMapCache(), gate: make(chan struct{})}
	srv := httptest.NewServer(jsonHandler(http.StatusOK, `{"active":true}`))
	defer srv.Close()
	shared := func(s *introspection.Settings) {
		s.Cache = cache
		s.CacheTTL = time.Hour
	}
	filler := newVerifier(t, srv.URL, nil, shared)
	_, err := filler.Verify(context.Background(), "hot") // fills the shared Cache
	require.NoError(t, err)
	require.NoError(t, filler.Close())
	v := newVerifier(t, srv.URL, h.obs, shared) // a replica with an empty local tier
	cache.held.Store(true)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { _, _ = v.Verify(context.Background(), "hot") })
	}
	require.Eventually(t, func() bool { return cache.waiting.Load() == 1 }, 10*time.Second, time.Millisecond)
	time.Sleep(20 * time.Millisecond) // for the others to join; the checks below hold however many did
	close(cache.gate)
	wg.Wait()
	require.NoError(t, v.Close())

	collapsed := int(v.Stats().CollapsedWaiters)
	require.Positive(t, collapsed)
	verifies := 0
	marked := 0
	for _, s := range h.spans.Ended() {
		if s.Name() != spanVerify {
			continue
		}
		verifies++
		for _, a := range s.Attributes() {
			if a.Key == keyCollapsed {
				marked++
			}
		}
	}
	assert.Equal(t, collapsed+1, verifies, "the one that read the Cache and each that waited for it")
	assert.Equal(t, collapsed, marked)
}

// TestNestedVerificationEndsOnlyItself shows that a verification whose
// context holds another verification of the same Observer, one run in
// the outer one's request, never ends or changes the outer one's span,
// also when it started no span of its own (its caller's span was not
// sampled).
func TestNestedVerificationEndsOnlyItself(t *testing.T) {
	h := newHarness(t)
	outer := h.obs.VerifyStart(context.Background())
	request := h.obs.UpstreamStart(outer, introspection.UpstreamRequest{Method: "POST", URL: "https://as.example/i"})
	inner := trace.ContextWithSpanContext(request, trace.SpanContextFromContext(unsampledParent())) // the transport's
	ictx := h.obs.VerifyStart(inner)
	require.True(t, ictx == inner, "no span under a parent not sampled")
	h.obs.CacheLookup(ictx, introspection.CacheHit)
	h.obs.CollapsedWaiter(ictx)
	h.obs.VerifyEnd(ictx, introspection.VerifyEvent{Outcome: introspection.OutcomeRejected, Reason: "inactive"})
	require.Empty(t, h.spans.Ended(), "the outer verification goes on")

	h.obs.UpstreamEnd(request, introspection.UpstreamEvent{StatusCode: 200})
	h.obs.CacheLookup(outer, introspection.CacheMiss)
	h.obs.VerifyEnd(outer, introspection.VerifyEvent{Outcome: introspection.OutcomeAccepted, Reason: "none"})
	spans := named(h.ended(), spanVerify)
	require.Len(t, spans, 1)
	assert.Equal(t, map[string]string{"introspection.outcome": "accepted", "introspection.reason": "none",
		"introspection.cache.result": "miss"}, spans[0].Attrs)
}

// TestVerifySpanStartsOnceWhileItsRequestRaces shows that when a
// verification ends (its caller gave up) while its shared request starts,
// on another goroutine, its span starts once and ends once, and the
// request's span is its child.
func TestVerifySpanStartsOnceWhileItsRequestRaces(t *testing.T) {
	const rounds = 100
	h := newHarness(t)
	for range rounds {
		vctx := h.obs.VerifyStart(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() {
			uctx := h.obs.UpstreamStart(context.WithoutCancel(vctx), introspection.UpstreamRequest{Method: "POST", URL: "https://as.example/i"})
			h.obs.UpstreamEnd(uctx, introspection.UpstreamEvent{StatusCode: 200})
		})
		h.obs.CacheLookup(vctx, introspection.CacheMiss)
		h.obs.VerifyEnd(vctx, introspection.VerifyEvent{Outcome: introspection.OutcomeCanceled, Reason: "canceled"})
		wg.Wait()
	}
	ended := h.spans.Ended()
	verifies := map[trace.SpanID]bool{}
	for _, s := range ended {
		if s.Name() == spanVerify {
			assert.False(t, verifies[s.SpanContext().SpanID()], "ended once")
			verifies[s.SpanContext().SpanID()] = true
		}
	}
	require.Len(t, verifies, rounds)
	posts := 0
	for _, s := range ended {
		if s.Name() == "POST" {
			posts++
			assert.True(t, verifies[s.Parent().SpanID()], "the request's span is a verification's child")
		}
	}
	assert.Equal(t, rounds, posts)
	assert.Len(t, h.spans.Started(), 2*rounds, "no span started and left open")
}

// TestVerifyFromMemory shows what the Observer makes of a verification
// that memory answered: its verdict and lookup counted, and no span,
// unless it failed, which has its span with the verdict and status Error
// where a span may be sampled.
func TestVerifyFromMemory(t *testing.T) {
	tests := []struct {
		name   string
		ctx    context.Context
		r      introspection.CacheResult
		e      introspection.VerifyEvent
		spans  []spanView
		counts map[string]float64
	}{
		{"hit", context.Background(), introspection.CacheHit,
			introspection.VerifyEvent{Outcome: introspection.OutcomeAccepted, Reason: "none"}, nil,
			map[string]float64{"introspection.outcome=accepted introspection.reason=none": 1}},
		{"negative hit", context.Background(), introspection.CacheNegative,
			introspection.VerifyEvent{Outcome: introspection.OutcomeRejected, Reason: "inactive"}, nil,
			map[string]float64{"introspection.outcome=rejected introspection.reason=inactive": 1}},
		{"failed hit", context.Background(), introspection.CacheHit,
			introspection.VerifyEvent{Outcome: introspection.OutcomeFailed, Reason: "panic"},
			[]spanView{{Name: spanVerify, Kind: "internal", Status: "Error panic", Attrs: map[string]string{
				"introspection.outcome": "failed", "introspection.reason": "panic", "introspection.cache.result": "hit"}}},
			map[string]float64{"introspection.outcome=failed introspection.reason=panic": 1}},
		{"failed hit under a parent not sampled", unsampledParent(), introspection.CacheHit,
			introspection.VerifyEvent{Outcome: introspection.OutcomeFailed, Reason: "panic"}, nil,
			map[string]float64{"introspection.outcome=failed introspection.reason=panic": 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.obs.VerifyFromMemory(tc.ctx, tc.r, tc.e)
			assert.Equal(t, tc.spans, h.ended())
			m := h.collect(t)
			assert.Equal(t, tc.counts, points(m["introspection.verifications"]))
			assert.Equal(t, map[string]float64{"introspection.cache.result=" + string(tc.r): 1},
				points(m["introspection.cache.lookups"]))
			checkDocumented(t, h)
		})
	}
}

// gatedCache is a mapCache whose Get, while held, waits for gate.
type gatedCache struct {
	*mapCache
	gate    chan struct{}
	held    atomic.Bool
	waiting atomic.Int32 // Gets that waited
}

func (c *gatedCache) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if c.held.Load() {
		c.waiting.Add(1)
		<-c.gate
	}
	return c.mapCache.Get(ctx, key)
}
