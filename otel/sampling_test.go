package otel

import (
	"context"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// sampledParent returns a context that holds the span context of a
// caller's trace that is sampled.
func sampledParent() context.Context {
	sc := trace.SpanContextFromContext(unsampledParent()).WithTraceFlags(trace.FlagsSampled)
	return trace.ContextWithRemoteSpanContext(context.Background(), sc)
}

// localUnsampledParent returns a context that holds a span of the
// caller's, started by tp under a remote parent that is not sampled: a
// span that does not record, as a server's instrumentation starts one.
func localUnsampledParent(t *testing.T, tp trace.TracerProvider) context.Context {
	t.Helper()
	ctx, span := tp.Tracer("caller").Start(unsampledParent(), "caller")
	require.False(t, span.SpanContext().IsSampled())
	require.False(t, span.SpanContext().IsRemote())
	return ctx
}

// TestUnsampledParentStartsNoSpan shows that under a caller's span that
// is not sampled, with the SDK's default sampler, which follows the
// parent, the Start methods start no span (VerifyStart returns the
// context as it was; the others a context of the work whose span is the
// caller's), and nothing is recorded, as the SDK would record nothing; the
// metrics are counted all the same. Under a sampled parent, or none, the
// spans are started.
func TestUnsampledParentStartsNoSpan(t *testing.T) {
	h := newHarness(t) // the SDK's default sampler: ParentBased(AlwaysSample)
	tests := []struct {
		name    string
		ctx     context.Context
		started bool
	}{
		{"remote parent not sampled", unsampledParent(), false},
		{"local parent not sampled", localUnsampledParent(t, sdktrace.NewTracerProvider()), false},
		{"parent sampled", sampledParent(), true},
		{"no parent", context.Background(), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := tc.ctx
			vctx := h.obs.VerifyStart(ctx)
			uctx := h.obs.UpstreamStart(ctx, introspection.UpstreamRequest{Method: "POST", URL: "https://as.example/i"})
			cctx := h.obs.CacheCallStart(ctx, introspection.CacheGet)
			if tc.started {
				assert.True(t, trace.SpanFromContext(vctx).IsRecording())
				assert.True(t, trace.SpanFromContext(uctx).IsRecording())
				assert.True(t, trace.SpanFromContext(cctx).IsRecording())
			} else {
				assert.True(t, vctx == ctx, "VerifyStart returns the context as it was")
				assert.Equal(t, trace.SpanContextFromContext(ctx), trace.SpanContextFromContext(uctx),
					"UpstreamStart starts no span: the context's span is the caller's")
				assert.Equal(t, trace.SpanContextFromContext(ctx), trace.SpanContextFromContext(cctx),
					"CacheCallStart starts no span: the context's span is the caller's")
			}
			h.obs.CacheCallEnd(cctx, introspection.CacheCallEvent{Operation: introspection.CacheGet})
			h.obs.UpstreamEnd(uctx, introspection.UpstreamEvent{StatusCode: 200})
			h.obs.CacheLookup(vctx, introspection.CacheMiss)
			h.obs.VerifyEnd(vctx, introspection.VerifyEvent{Outcome: introspection.OutcomeAccepted, Reason: "none"})
		})
	}
	assert.Len(t, h.spans.Started(), 2*3, "three spans for each of the two cases with a sampled or no parent")
	assert.Equal(t, map[string]float64{"introspection.outcome=accepted introspection.reason=none": 4},
		points(h.collect(t)["introspection.verifications"]), "every verification is counted")
	checkDocumented(t, h)
}

// TestUnsampledParentStartsNoSpanInAVerification runs verifications under
// a caller's span that is not sampled, through each Start method (a
// miss, the request, a caller's Cache and the metadata fetch): the SDK's
// default sampler records no span, the metrics are those of the same
// verifications without a parent, and a refresh of the metadata, a root of
// its own, is still traced.
func TestUnsampledParentStartsNoSpanInAVerification(t *testing.T) {
	run := func(ctx context.Context) *harness {
		h := newHarness(t)
		ms := newMetadataServer(t)
		clock := newFakeClock()
		v := discoveryVerifier(t, ms, h.obs, func(s *introspection.Settings) {
			s.Now = clock.Now
			s.CacheTTL = time.Minute
			s.Cache = newMapCache()
		})
		_, err := v.Verify(ctx, "tok")
		require.NoError(t, err)
		require.NoError(t, v.Close())
		_, err = v.Verify(ctx, "tok") // a hit
		require.NoError(t, err)
		clock.Advance(25 * time.Hour) // the metadata is due for a refresh
		_, err = v.Verify(ctx, "tok2")
		require.NoError(t, err)
		require.Eventually(t, func() bool { return points(h.collect(t)["introspection.metadata.fetches"])[""] == 2 },
			10*time.Second, time.Millisecond, "the refresh ends")
		require.NoError(t, v.Close())
		return h
	}
	unparented, unsampled := run(context.Background()), run(unsampledParent())
	names := func(h *harness) []string {
		var out []string
		for _, s := range h.ended() {
			out = append(out, s.Name+" < "+s.Parent)
		}
		return out
	}
	assert.Equal(t, []string{"introspection.metadata.fetch < "}, names(unsampled),
		"only the refresh, which is a root")
	assert.Greater(t, len(names(unparented)), 5, "without a parent, every span")
	for _, name := range []string{"introspection.verifications", "introspection.cache.lookups", "introspection.metadata.fetches"} {
		assert.Equal(t, points(unparented.collect(t)[name]), points(unsampled.collect(t)[name]), name)
	}
	checkDocumented(t, unsampled)
}

// TestSamplerIgnoresParent shows Options.SamplerIgnoresParent: with a
// sampler that samples every span, whatever its parent, the observer
// starts the spans under a parent that is not sampled, and the sampler
// records them.
func TestSamplerIgnoresParent(t *testing.T) {
	for _, ignores := range []bool{false, true} {
		t.Run(map[bool]string{false: "follows the parent", true: "ignores the parent"}[ignores], func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithSpanProcessor(rec))
			mp := sdkmetric.NewMeterProvider()
			t.Cleanup(func() { _ = tp.Shutdown(context.Background()); _ = mp.Shutdown(context.Background()) })
			obs, err := New(Options{MeterProvider: mp, TracerProvider: tp, SamplerIgnoresParent: ignores})
			require.NoError(t, err)
			ctx := obs.VerifyStart(unsampledParent())
			obs.VerifyEnd(ctx, introspection.VerifyEvent{Outcome: introspection.OutcomeAccepted, Reason: "none"})
			if !ignores {
				assert.Empty(t, rec.Ended(), "the default: no span under a parent not sampled")
				return
			}
			require.Len(t, rec.Ended(), 1)
			assert.Equal(t, trace.SpanContextFromContext(unsampledParent()).SpanID(), rec.Ended()[0].Parent().SpanID())
		})
	}
}
