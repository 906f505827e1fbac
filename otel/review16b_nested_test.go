package otel

import (
	"context"
	"testing"

	"github.com/mcpauth/introspection"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"
)

// TestReview16bNestedVerificationEventsStayOffTheOuterSpan runs a
// verification inside another's request under a span that is not
// sampled, so that it starts no span of its own, as the README's
// paragraph on nested verifications describes it: the events of the
// inner one's request (a breaker transition, a stored value that is not
// an answer) do not change the outer verification's span.
func TestReview16bNestedVerificationEventsStayOffTheOuterSpan(t *testing.T) {
	h := newHarness(t)
	outer := h.obs.VerifyStart(context.Background())
	// The inner verification runs in the outer one's request, whose
	// transport put a span context that is not sampled in its context.
	request := h.obs.UpstreamStart(outer, introspection.UpstreamRequest{Method: "POST", URL: "https://as.example/i"})
	inner := trace.ContextWithSpanContext(request, trace.SpanContextFromContext(unsampledParent()))
	ictx := h.obs.VerifyStart(inner)
	require.True(t, ictx == inner, "no span under a parent not sampled")
	flight := context.WithoutCancel(ictx) // the inner one's shared request
	h.obs.BreakerChange(flight, introspection.BreakerEvent{From: introspection.BreakerClosed, To: introspection.BreakerOpen})
	h.obs.CacheError(flight, introspection.CacheDecode)
	h.obs.CacheLookup(ictx, introspection.CacheMiss)
	h.obs.VerifyEnd(ictx, introspection.VerifyEvent{Outcome: introspection.OutcomeFailed, Reason: "unavailable"})

	h.obs.UpstreamEnd(request, introspection.UpstreamEvent{StatusCode: 200})
	h.obs.CacheLookup(outer, introspection.CacheMiss) // a span of its own
	h.obs.VerifyEnd(outer, introspection.VerifyEvent{Outcome: introspection.OutcomeAccepted, Reason: "none"})
	spans := named(h.ended(), spanVerify)
	require.Len(t, spans, 1, "the outer verification's span, which has events")
	assert.Empty(t, spans[0].Events, "no event of the inner verification on the outer span")
}
