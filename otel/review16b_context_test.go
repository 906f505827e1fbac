package otel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type review16bKey struct{}

// TestReview16bVerificationContextPrintsAsAContext prints the context
// VerifyStart returned, as a Logger's handler or a wrapper may, while the
// verification's shared request starts its span on another goroutine:
// it prints as the context it holds does, with no field of the
// Observer's, and printing it races with nothing (run with -race).
func TestReview16bVerificationContextPrintsAsAContext(t *testing.T) {
	h := newHarness(t)
	parent := context.WithValue(context.Background(), review16bKey{}, "v")
	var printed []string
	for range 50 {
		vctx := h.obs.VerifyStart(parent)
		var wg sync.WaitGroup
		wg.Go(func() {
			uctx := h.obs.UpstreamStart(context.WithoutCancel(vctx), introspection.UpstreamRequest{Method: "POST", URL: "https://as.example/i"})
			h.obs.UpstreamEnd(uctx, introspection.UpstreamEvent{StatusCode: 200})
		})
		s := fmt.Sprint(vctx)
		wg.Wait()
		h.obs.CacheLookup(vctx, introspection.CacheMiss)
		h.obs.VerifyEnd(vctx, introspection.VerifyEvent{Outcome: introspection.OutcomeAccepted, Reason: "none"})
		printed = append(printed, s)
	}
	assert.Contains(t, printed[0], fmt.Sprint(parent), "printed as the context it holds")
	assert.NotContains(t, printed[0], "0x", "no pointer of the Observer's")
}

// TestReview16bVerificationContextIsTheCallersContext pins that the
// context VerifyStart returns behaves as the caller's: its deadline,
// cancellation and cause reach the children the verifier derives from it,
// and its values are the caller's. It passes: it pins the behaviour of the
// context type the Observer returns.
func TestReview16bVerificationContextIsTheCallersContext(t *testing.T) {
	h := newHarness(t)
	deadline := time.Now().Add(time.Hour)
	base, cancelBase := context.WithDeadline(context.WithValue(sampledParent(), review16bKey{}, "v"), deadline)
	ctx, cancel := context.WithCancelCause(base)
	defer cancelBase()
	vctx := h.obs.VerifyStart(ctx)
	require.False(t, vctx == ctx, "a verification that may be traced")

	d, ok := vctx.Deadline()
	assert.True(t, ok)
	assert.Equal(t, deadline, d)
	assert.Equal(t, "v", vctx.Value(review16bKey{}))
	child, cancelChild := context.WithCancel(vctx)
	defer cancelChild()
	detached := context.WithoutCancel(vctx)
	fired := make(chan struct{})
	stop := context.AfterFunc(vctx, func() { close(fired) })
	defer stop()

	cause := errors.New("gone")
	cancel(cause)
	<-child.Done()
	<-fired
	assert.ErrorIs(t, vctx.Err(), context.Canceled)
	assert.Equal(t, cause, context.Cause(child))
	assert.NoError(t, detached.Err())
	assert.Equal(t, "v", detached.Value(review16bKey{}))
	h.obs.VerifyEnd(vctx, introspection.VerifyEvent{Outcome: introspection.OutcomeCanceled, Reason: "canceled"})
	assert.Len(t, h.spans.Ended(), 1)
}
