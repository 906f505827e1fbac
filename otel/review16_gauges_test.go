package otel

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/trace/noop"
)

// TestReviewBreakerOpenGaugeSeesEveryObserversVerifiers shows what
// happens when an application follows the package example
// (`otel.New(otel.Options{})`, the global providers) once per verifier:
// two Observers on one MeterProvider, each watching its own verifier.
// Both register a callback for the same gauges without attributes
// distinguishing them, so the SDK keeps one observation per attribute set
// and the other is lost: introspection.cache.entries and
// introspection.breaker.state report only one Observer's verifiers. The
// README's "breaker open" query (`sum(introspection_breaker_state{...="open"})
// > 0`) then misses an open breaker, and the gauge is not "entries in the
// built-in caches of the watched verifiers".
func TestReviewBreakerOpenGaugeSeesEveryObserversVerifiers(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	newObs := func() *Observer {
		obs, err := New(Options{MeterProvider: mp, TracerProvider: noop.NewTracerProvider()})
		require.NoError(t, err)
		return obs
	}
	obsA, obsB := newObs(), newObs()

	as := newAS(t, nil)
	a := newVerifier(t, as.IntrospectionURL, obsA, func(s *introspection.Settings) {
		s.CacheTTL = time.Minute
		s.BreakerThreshold = 1
	})
	b := newVerifier(t, as.IntrospectionURL, obsB, func(s *introspection.Settings) { s.CacheTTL = time.Minute })
	defer obsA.Watch(a)()
	defer obsB.Watch(b)()
	ctx := context.Background()
	for _, v := range []*introspection.Verifier{a, b} {
		_, err := v.Verify(ctx, as.Issue(introspectiontest.TokenOptions{}))
		require.NoError(t, err)
		require.NoError(t, v.Close())
	}
	as.SetFault(introspectiontest.Fault{Status: http.StatusServiceUnavailable})
	_, err := a.Verify(ctx, "unknown")
	require.Error(t, err)
	require.NoError(t, a.Close())
	require.Equal(t, introspection.BreakerOpen, a.Stats().Breaker, "a's breaker is open")

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(ctx, &rm))
	got := map[string]map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			got[m.Name] = points(m)
		}
	}
	assert.Equal(t, 1.0, got["introspection.breaker.state"]["introspection.breaker.state=open"],
		"a watched verifier's breaker is open: %v", got["introspection.breaker.state"])
	assert.Equal(t, 2.0, got["introspection.cache.entries"][""], "one entry in each watched verifier's cache")
	assert.Equal(t, 2.0, got["introspection.verifications"]["introspection.outcome=accepted introspection.reason=none"],
		"two verifications accepted")
}
