package otel

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// TestReview16cNestedWorkLeavesTheOuterWorkSpan runs a verification
// inside another's request, and inside another's call of the Cache, under
// a span that is not sampled (as TestNestedVerificationEndsOnlyItself
// does), so that it starts no span of its own; that inner verification
// then has a request, or a Cache call, of its own. Its End methods must
// leave the outer one's request and call spans alone: an End method
// whose Start did not run leaves the caller's span alone.
func TestReview16cNestedWorkLeavesTheOuterWorkSpan(t *testing.T) {
	req := introspection.UpstreamRequest{Method: "POST", URL: "https://as.example/i"}
	tests := []struct {
		name  string
		outer func(o *Observer, vctx context.Context) context.Context
		end   func(o *Observer, ctx context.Context)
		inner func(o *Observer, flight context.Context)
		span  string
	}{
		{"request in a request",
			func(o *Observer, vctx context.Context) context.Context { return o.UpstreamStart(vctx, req) },
			func(o *Observer, ctx context.Context) {
				o.UpstreamEnd(ctx, introspection.UpstreamEvent{StatusCode: 200})
			},
			func(o *Observer, flight context.Context) {
				ictx := o.UpstreamStart(flight, req)
				o.UpstreamEnd(ictx, introspection.UpstreamEvent{StatusCode: 503, Failure: introspection.FailureStatus})
			}, "POST"},
		{"cache call in a cache call",
			func(o *Observer, vctx context.Context) context.Context {
				return o.CacheCallStart(vctx, introspection.CacheGet)
			},
			func(o *Observer, ctx context.Context) {
				o.CacheCallEnd(ctx, introspection.CacheCallEvent{Operation: introspection.CacheGet})
			},
			func(o *Observer, flight context.Context) {
				cctx := o.CacheCallStart(flight, introspection.CacheGet)
				o.CacheError(cctx, introspection.CacheGet)
				o.CacheCallEnd(cctx, introspection.CacheCallEvent{Operation: introspection.CacheGet, Err: errors.New("down")})
			}, "introspection.cache.get"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			outer := h.obs.VerifyStart(context.Background())
			work := tc.outer(h.obs, outer)
			// The transport (or the Cache) put a span context that is not
			// sampled in the context of the inner verification.
			inner := trace.ContextWithSpanContext(work, trace.SpanContextFromContext(unsampledParent()))
			ictx := h.obs.VerifyStart(inner)
			require.True(t, ictx == inner, "no span under a parent not sampled")
			h.obs.CacheLookup(ictx, introspection.CacheMiss)
			tc.inner(h.obs, context.WithoutCancel(ictx))
			h.obs.VerifyEnd(ictx, introspection.VerifyEvent{Outcome: introspection.OutcomeFailed, Reason: "status"})
			assert.Empty(t, h.ended(), "the outer verification's work goes on")

			tc.end(h.obs, work)
			h.obs.VerifyEnd(outer, introspection.VerifyEvent{Outcome: introspection.OutcomeAccepted, Reason: "none"})
			spans := named(h.ended(), tc.span)
			require.Len(t, spans, 1)
			assert.Equal(t, "Unset", spans[0].Status, "the outer one's work succeeded")
			assert.Empty(t, spans[0].Events)
			assert.NotEqual(t, "503", spans[0].Attrs["http.response.status_code"])
		})
	}
}

// recordOnly is a sampler that records every span and samples none, as a
// set-up that decides in a span processor which traces to keep does.
type recordOnly struct{}

func (recordOnly) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	return sdktrace.SamplingResult{Decision: sdktrace.RecordOnly,
		Tracestate: trace.SpanContextFromContext(p.ParentContext).TraceState()}
}
func (recordOnly) Description() string { return "RecordOnly" }

// TestReview16cNestedVerificationUnderARecordOnlySampler nests a
// verification in another's request, end to end, both verifiers sharing
// the Observer, with a sampler that records spans without sampling them:
// the outer verification's span must keep its own verdict, whatever the
// inner one found.
func TestReview16cNestedVerificationUnderARecordOnlySampler(t *testing.T) {
	h := newHarness(t, sdktrace.WithSampler(recordOnly{}))
	innerAS := httptest.NewServer(jsonHandler(http.StatusOK, `{"active":false}`))
	defer innerAS.Close()
	inner := newVerifier(t, innerAS.URL, h.obs, nil)
	outerAS := httptest.NewServer(jsonHandler(http.StatusOK, `{"active":true}`))
	defer outerAS.Close()
	var innerErr error
	outer := newVerifier(t, outerAS.URL, h.obs, func(s *introspection.Settings) {
		s.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			_, innerErr = inner.Verify(r.Context(), "inner-token")
			return http.DefaultTransport.RoundTrip(r)
		})}
	})
	_, err := outer.Verify(context.Background(), "outer-token")
	require.NoError(t, err)
	require.ErrorIs(t, innerErr, introspection.ErrTokenInactive)
	require.NoError(t, outer.Close())
	require.NoError(t, inner.Close())

	verifies := named(h.ended(), spanVerify)
	// The inner verification, under a parent that is not sampled, starts
	// no span of its own: the one span is the outer one's.
	require.Len(t, verifies, 1)
	assert.Equal(t, "", verifies[0].Parent)
	assert.Equal(t, map[string]string{"introspection.outcome": "accepted", "introspection.reason": "none"},
		verifies[0].Attrs, "the outer verification's own verdict")
}

// dropCacheCalls is a sampler that drops the spans of Cache calls and
// samples every other span, as an operator who finds them too many may
// set it.
type dropCacheCalls struct{}

func (dropCacheCalls) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	d := sdktrace.RecordAndSample
	if strings.HasPrefix(p.Name, "introspection.cache.") {
		d = sdktrace.Drop
	}
	return sdktrace.SamplingResult{Decision: d, Tracestate: trace.SpanContextFromContext(p.ParentContext).TraceState()}
}
func (dropCacheCalls) Description() string { return "dropCacheCalls" }

// TestReview16cCacheErrorReachesATraceWhenTheCallHasNoSpan fails a call
// of the Cache whose span the sampler dropped: the error's event, which
// then has no call span to go to, must reach the verification's span,
// which records, as it did before the call's context hid that span.
func TestReview16cCacheErrorReachesATraceWhenTheCallHasNoSpan(t *testing.T) {
	h := newHarness(t, sdktrace.WithSampler(dropCacheCalls{}))
	srv := httptest.NewServer(jsonHandler(http.StatusOK, `{"active":true}`))
	defer srv.Close()
	cache := newMapCache()
	cache.setFail(true)
	v := newVerifier(t, srv.URL, h.obs, func(s *introspection.Settings) {
		s.Cache = cache
		s.CacheTTL = time.Minute
	})
	_, err := v.Verify(context.Background(), "tok")
	require.NoError(t, err)
	require.NoError(t, v.Close())
	require.Equal(t, uint64(1), v.Stats().CacheErrors, "the Get failed; the Set was skipped in the cooldown")

	spans := h.ended()
	require.Empty(t, named(spans, "introspection.cache.get"), "dropped by the sampler")
	verifies := named(spans, spanVerify)
	require.Len(t, verifies, 1)
	assert.Equal(t, []string{"introspection.cache.error introspection.cache.operation=get"}, verifies[0].Events,
		"the failed call shows in the trace")
}
