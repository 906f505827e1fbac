package otel

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// typicalAnswer is a 10-member introspection answer of about 300 bytes, as
// the core module's benchmarks use.
func typicalAnswer() string {
	return fmt.Sprintf(`{"active":true,"client_id":"mcp-client-0","sub":"user-0@example.com","username":"user0",`+
		`"scope":"mcp:tools mcp:resources profile email","aud":["https://mcp.example.com/mcp"],`+
		`"exp":%d,"iat":%d,"iss":"https://auth.example.com","token_type":"Bearer"}`,
		time.Now().Add(24*time.Hour).Unix(), time.Now().Unix())
}

const benchToken = "f3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// observers are the set-ups the cache-hit path is measured with: none
// (also in the context of a trace that is not sampled, the baseline of
// the case that has one), and this module's Observer recording metrics
// into the SDK, with spans off (a no-op TracerProvider), not sampled at
// the root (NeverSample, no span in the caller's context), not sampled
// because the caller's span is not (the SDK's default sampler, which
// follows the parent), or sampled. A hit has no span in any of them: the
// verifier tells the Observer of it by VerifyFromMemory.
var observers = []struct {
	name string
	new  func(tb testing.TB) introspection.Observer
	ctx  func() context.Context // of the calls of Verify
}{
	{"none", func(testing.TB) introspection.Observer { return nil }, context.Background},
	{"none+unsampled-parent", func(testing.TB) introspection.Observer { return nil }, unsampledParent},
	{"otel-metrics", func(tb testing.TB) introspection.Observer {
		return benchObserver(tb, noop.NewTracerProvider())
	}, context.Background},
	{"otel-metrics+unsampled-spans", func(tb testing.TB) introspection.Observer {
		return benchObserver(tb, sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample())))
	}, context.Background},
	{"otel-metrics+unsampled-parent", func(tb testing.TB) introspection.Observer {
		return benchObserver(tb, sdktrace.NewTracerProvider())
	}, unsampledParent},
	{"otel-metrics+sampled-spans", func(tb testing.TB) introspection.Observer {
		return benchObserver(tb, sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample())))
	}, context.Background},
}

// unsampledParent returns a context that holds the span context of a
// caller's trace that is not sampled, as a request whose traceparent
// says so brings it.
func unsampledParent() context.Context {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:  trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		Remote:  true,
	})
	return trace.ContextWithRemoteSpanContext(context.Background(), sc)
}

// benchObserver returns an Observer recording metrics into the SDK with a
// manual reader, and spans with tp.
func benchObserver(tb testing.TB, tp trace.TracerProvider) introspection.Observer {
	tb.Helper()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	tb.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	obs, err := New(Options{MeterProvider: mp, TracerProvider: tp})
	require.NoError(tb, err)
	return obs
}

// hitVerifier returns a verifier observed by obs whose cache holds the
// answer for benchToken.
func hitVerifier(tb testing.TB, obs introspection.Observer) *introspection.Verifier {
	tb.Helper()
	srv := httptest.NewServer(jsonHandler(http.StatusOK, typicalAnswer()))
	tb.Cleanup(srv.Close)
	v := newVerifier(tb, srv.URL, obs, func(s *introspection.Settings) {
		s.ClientID, s.ClientSecret = "rs", "secret"
		s.RequiredScopes = []string{"mcp:tools"}
		s.CacheTTL = time.Hour
	})
	_, err := v.Verify(context.Background(), benchToken)
	require.NoError(tb, err)
	require.NoError(tb, v.Close())
	return v
}

// BenchmarkVerifyCacheHit measures a cache hit with each set-up of
// observers.
func BenchmarkVerifyCacheHit(b *testing.B) {
	for _, o := range observers {
		// Each set-up is built in its own benchmark, so that a run of one
		// holds none of the others, whose live objects would make the
		// garbage collector's work differ from one set-up to the next.
		b.Run("observer="+o.name, func(b *testing.B) {
			ctx := o.ctx()
			v := hitVerifier(b, o.new(b))
			b.Run("serial", func(b *testing.B) {
				b.ReportAllocs()
				cpu := cpuTime()
				for b.Loop() {
					if _, err := v.Verify(ctx, benchToken); err != nil {
						b.Fatal(err)
					}
				}
				reportCPU(b, cpu)
			})
			b.Run("parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := v.Verify(ctx, benchToken); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		})
	}
}

// reportCPU reports the CPU time per operation since cpu, a figure that
// other processes on the machine disturb less than the wall clock's.
func reportCPU(b *testing.B, cpu time.Duration) {
	if d := cpuTime() - cpu; d > 0 {
		b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

// TestCacheHitAllocationsWithTheObserver shows that the observer adds
// nothing to a cache hit's allocations, whatever the TracerProvider and
// the caller's span: a hit starts no span.
func TestCacheHitAllocationsWithTheObserver(t *testing.T) {
	allocs := map[string]float64{}
	for _, o := range observers {
		ctx := o.ctx()
		v := hitVerifier(t, o.new(t))
		allocs[o.name] = testing.AllocsPerRun(200, func() {
			if _, err := v.Verify(ctx, benchToken); err != nil {
				t.Fatal(err)
			}
		})
	}
	require.Positive(t, allocs["none"])
	for name, n := range allocs {
		assert.Equal(t, allocs["none"], n, "%s adds no allocation", name)
	}
}
