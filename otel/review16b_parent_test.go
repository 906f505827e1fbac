package otel

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// TestReview16bRemoteSampledParentKeepsTheRequestSpan verifies a token
// under the span context a propagator extracts from a sampled
// traceparent (trace.ContextWithRemoteSpanContext), as a server that
// propagates without a span of its own has it: the request's span is the
// child of the verification's, and no method of the Observer panics.
func TestReview16bRemoteSampledParentKeepsTheRequestSpan(t *testing.T) {
	tests := []struct {
		name   string
		opts   Options
		parent func(t *testing.T) context.Context
	}{
		{"remote sampled parent", Options{}, func(*testing.T) context.Context { return sampledParent() }},
		{"remote unsampled parent, sampler ignores it", Options{SamplerIgnoresParent: true},
			func(*testing.T) context.Context { return unsampledParent() }},
		{"local unsampled parent of the SDK, sampler ignores it", Options{SamplerIgnoresParent: true},
			func(t *testing.T) context.Context { return localUnsampledParent(t, sdktrace.NewTracerProvider()) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarnessWith(t, tc.opts, sdktrace.WithSampler(sdktrace.AlwaysSample()))
			srv := httptest.NewServer(jsonHandler(http.StatusOK, `{"active":true}`))
			defer srv.Close()
			v := newVerifier(t, srv.URL, h.obs, func(s *introspection.Settings) { s.CacheTTL = time.Minute })
			_, err := v.Verify(tc.parent(t), "tok")
			require.NoError(t, err)
			require.NoError(t, v.Close())

			assert.Zero(t, v.Stats().Panics, "no method of the Observer panicked")
			spans := h.ended()
			require.Len(t, named(spans, spanVerify), 1)
			posts := named(spans, "POST")
			require.Len(t, posts, 1, "the request's span")
			assert.Equal(t, spanVerify, posts[0].Parent)
		})
	}
}
