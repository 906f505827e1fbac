package otel

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// lateFailingCache is a Cache that finds nothing and whose Set waits
// until release is closed, then fails.
type lateFailingCache struct{ release chan struct{} }

func (lateFailingCache) Get(context.Context, string) ([]byte, bool, error) { return nil, false, nil }
func (c lateFailingCache) Set(ctx context.Context, _ string, _ []byte, _ time.Duration) error {
	select {
	case <-c.release:
	case <-ctx.Done():
	}
	return errors.New("store is full")
}
func (lateFailingCache) Delete(context.Context, string) error { return nil }

// TestReviewCacheSetErrorIsAnEventOfTheVerifySpan shows where the error
// of a caller's Cache storing the answer appears in the verification's
// trace: the store runs after the callers have their answer, so the
// introspection.verify span may have ended when the Set fails, and an
// event added to it would be dropped. The error is counted
// (introspection.cache.errors{set}) and is the introspection.cache.error
// event of the introspection.cache.set span, which is open when the error
// is told, has status Error and is a child of the verification's span in
// its trace, as the README's event table says.
func TestReviewCacheSetErrorIsAnEventOfTheVerifySpan(t *testing.T) {
	h := newHarness(t)
	srv := httptest.NewServer(jsonHandler(200, `{"active":true}`))
	defer srv.Close()
	c := lateFailingCache{release: make(chan struct{})}
	v := newVerifier(t, srv.URL, h.obs, func(s *introspection.Settings) {
		s.CacheTTL = time.Minute
		s.Cache = c
	})
	_, err := v.Verify(context.Background(), "tok")
	require.NoError(t, err)
	close(c.release) // the Set fails now
	require.NoError(t, v.Close())
	require.Equal(t, uint64(1), v.Stats().CacheErrors, "the failed Set is a cache error")
	require.Equal(t, 1.0, value(h.collect(t), "introspection.cache.errors", "introspection.cache.operation=set"))

	var verify, set sdktrace.ReadOnlySpan
	for _, s := range h.spans.Ended() {
		switch s.Name() {
		case "introspection.verify":
			verify = s
		case "introspection.cache.set":
			set = s
		}
	}
	require.NotNil(t, verify)
	require.NotNil(t, set, "the store's span was exported")
	assert.Equal(t, verify.SpanContext().TraceID(), set.SpanContext().TraceID(), "in the verification's trace")
	assert.Equal(t, verify.SpanContext().SpanID(), set.Parent().SpanID(), "a child of the verification's span")
	assert.Equal(t, codes.Error, set.Status().Code)
	views := named(h.ended(), "introspection.cache.set")
	require.Len(t, views, 1)
	assert.Equal(t, []string{"introspection.cache.error introspection.cache.operation=set"}, views[0].Events,
		"the cache error is an event of the store's span")
	assert.Empty(t, named(h.ended(), "introspection.verify")[0].Events, "not of the ended verification's span")
	checkDocumented(t, h)
}

// TestReviewEndsOnlyItsOwnSpansWhenVerifiersNest shows that the End
// methods can end a span that is not theirs: the marks under which a
// Start method keeps its span are shared by every Observer, so when the
// work of one verification (here the transport of its introspection
// request) runs a verification of another verifier whose Observer starts
// no span (a no-op TracerProvider, as examples/mcpserver uses), that
// Observer's VerifyEnd and UpstreamEnd find the outer verification's
// spans in the context, end them early and overwrite their attributes
// with the inner verdict. The README promises that an End method "leaves
// the caller's span alone".
func TestReviewEndsOnlyItsOwnSpansWhenVerifiersNest(t *testing.T) {
	h := newHarness(t)
	inactive := httptest.NewServer(jsonHandler(200, `{"active":false}`))
	defer inactive.Close()
	active := httptest.NewServer(jsonHandler(200, `{"active":true}`))
	defer active.Close()
	mp := sdkmetric.NewMeterProvider()
	defer func() { _ = mp.Shutdown(context.Background()) }()
	innerObs, err := New(Options{MeterProvider: mp, TracerProvider: noop.NewTracerProvider()})
	require.NoError(t, err)
	inner := newVerifier(t, inactive.URL, innerObs, nil)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	outer := newVerifier(t, active.URL, h.obs, func(s *introspection.Settings) {
		s.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			_, _ = inner.Verify(r.Context(), "inner-token") // rejected: inactive
			return tr.RoundTrip(r)
		})}
	})
	_, err = outer.Verify(context.Background(), "outer-token")
	require.NoError(t, err)
	require.NoError(t, outer.Close())
	require.NoError(t, inner.Close())

	verify := named(h.ended(), "introspection.verify")
	require.Len(t, verify, 1)
	assert.Equal(t, "accepted", verify[0].Attrs["introspection.outcome"], "the outer span has the outer verdict")
}
