package otel

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// TestObserversOnOneProviderShareTheirMetrics shows that Observers made
// on one MeterProvider record into the same counts and gauges: the
// counters add up both Observers' events, and the gauges report every
// watched verifier, once, also one watched through both.
func TestObserversOnOneProviderShareTheirMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	h := &harness{reader: reader}
	var obs [2]*Observer
	for i := range obs {
		var err error
		obs[i], err = New(Options{MeterProvider: mp, TracerProvider: noop.NewTracerProvider()})
		require.NoError(t, err)
	}
	as := newAS(t, nil)
	v := newVerifier(t, as.IntrospectionURL, obs[0], func(s *introspection.Settings) { s.CacheTTL = time.Minute })
	w := newVerifier(t, as.IntrospectionURL, obs[1], nil)
	for _, x := range []*introspection.Verifier{v, w} {
		_, err := x.Verify(context.Background(), as.Issue(introspectiontest.TokenOptions{}))
		require.NoError(t, err)
		require.NoError(t, x.Close())
	}
	defer obs[0].Watch(v)()
	defer obs[0].Watch(w)()
	defer obs[1].Watch(v)()
	m := h.collect(t)
	assert.Equal(t, 2.0, value(m, "introspection.verifications", "introspection.outcome=accepted introspection.reason=none"))
	assert.Equal(t, 1.0, value(m, "introspection.cache.lookups", "introspection.cache.result=miss"))
	assert.Equal(t, 2.0, value(m, "introspection.breaker.state", "introspection.breaker.state=closed"),
		"two verifiers, one of them watched through both Observers")
	assert.Equal(t, 1.0, value(m, "introspection.cache.entries", ""))
}

// sharedUsers returns how many live Observers share the metrics of mp,
// 0 when none is listed.
func sharedUsers(mp *sdkmetric.MeterProvider) int {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if m, ok := shared.byProvider[mp]; ok {
		return m.users
	}
	return 0
}

// TestSharedMetricsGoWithTheirObservers shows that the metrics shared by
// the Observers of one MeterProvider are dropped, and their callback
// unregistered, once the garbage collector has found those Observers
// unreachable, so that no provider is kept for ever.
func TestSharedMetricsGoWithTheirObservers(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	func() {
		for range 3 {
			obs, err := New(Options{MeterProvider: mp, TracerProvider: noop.NewTracerProvider()})
			require.NoError(t, err)
			obs.VerifyEnd(context.Background(), introspection.VerifyEvent{Outcome: introspection.OutcomeAccepted, Reason: "none"})
		}
	}()
	require.Equal(t, 3, sharedUsers(mp))
	require.Equal(t, 3.0, value((&harness{reader: reader}).collect(t), "introspection.verifications",
		"introspection.outcome=accepted introspection.reason=none"))
	for i := 0; i < 1000 && sharedUsers(mp) > 0; i++ {
		runtime.GC()
		runtime.Gosched()
	}
	assert.Zero(t, sharedUsers(mp), "the Observers are gone, and so are their metrics")
	assert.Empty(t, (&harness{reader: reader}).collect(t)["introspection.verifications"].Data,
		"the callback is unregistered")
}

// TestNoSpansWhileTheGlobalTracerProviderIsUnset shows that an Observer
// made with Options{} while no TracerProvider was set globally, as the
// package example does, starts no span, which would record nothing and
// cost a verification its context, until one is set, and then records
// through it. It runs in a process of its own, as setting the global
// provider cannot be undone.
func TestNoSpansWhileTheGlobalTracerProviderIsUnset(t *testing.T) {
	const child = "INTROSPECTION_OTEL_GLOBAL_CHILD"
	if os.Getenv(child) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestNoSpansWhileTheGlobalTracerProviderIsUnset$", "-test.count=1")
		cmd.Env = append(os.Environ(), child+"=1")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.Contains(t, string(out), "PASS")
		return
	}
	require.True(t, isUnsetGlobal(otel.GetTracerProvider()), "no provider is set in this process")
	obs, err := New(Options{MeterProvider: sdkmetric.NewMeterProvider()})
	require.NoError(t, err)
	srv := httptest.NewServer(jsonHandler(200, `{"active":true}`))
	defer srv.Close()
	v := newVerifier(t, srv.URL, obs, nil)
	ctx := context.Background()
	assert.Equal(t, ctx, obs.VerifyStart(ctx), "no span, no new context")
	assert.Equal(t, ctx, obs.UpstreamStart(ctx, introspection.UpstreamRequest{Method: "POST", URL: srv.URL}))

	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	otel.SetTracerProvider(tp)
	_, err = v.Verify(ctx, "tok")
	require.NoError(t, err)
	require.NoError(t, v.Close())
	var names []string
	for _, s := range rec.Ended() {
		names = append(names, s.Name())
	}
	assert.ElementsMatch(t, []string{"introspection.verify", "POST"}, names, "spans once a provider is set")
	assert.True(t, trace.SpanFromContext(obs.VerifyStart(ctx)).SpanContext().IsValid())
}

// TestRequestAttributesOfADiscoveredEndpoint shows the attributes of the
// request's span for an endpoint the issuer's metadata named: url.full
// has its scheme, host and port, and the path /{introspection} in place
// of the path the metadata names, which is the server's text.
func TestRequestAttributesOfADiscoveredEndpoint(t *testing.T) {
	got := map[string]string{}
	for _, kv := range requestAttributes(introspection.UpstreamRequest{Method: "POST",
		URL: "https://as.example:8443/{introspection}", Discovered: true}) {
		got[string(kv.Key)] = kv.Value.String()
	}
	assert.Equal(t, map[string]string{"http.request.method": "POST", "url.full": "https://as.example:8443/{introspection}",
		"server.address": "as.example", "server.port": "8443"}, got)
}

// TestRequestAttributesBoundTheHost shows that a host of up to 253 bytes,
// the longest DNS name, is recorded, and that a longer one, which names
// no server a request can reach, leaves out the attributes that would
// hold it.
func TestRequestAttributesBoundTheHost(t *testing.T) {
	label := strings.Repeat("a", 62) + "."
	at := strings.Repeat(label, 4)[:maxServerAddress-len("x.example")] + "x.example"
	require.Len(t, at, maxServerAddress)
	tests := []struct {
		host string
		keys []string
	}{
		{at, []string{"http.request.method", "server.address", "server.port", "url.full"}},
		{"b" + at, []string{"http.request.method"}},
	}
	for _, tc := range tests {
		var keys []string
		for _, kv := range requestAttributes(introspection.UpstreamRequest{Method: "POST",
			URL: "https://" + tc.host + "/{introspection}", Discovered: true}) {
			keys = append(keys, string(kv.Key))
			if kv.Key == "server.address" {
				assert.Equal(t, tc.host, kv.Value.AsString())
			}
		}
		assert.Equal(t, tc.keys, keys, "a host of %d bytes", len(tc.host))
	}
}
