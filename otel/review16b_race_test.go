package otel

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"net/http/httptest"
)

// TestReview16bCallersGivingUpLeaveNoSpanOpen runs verifications whose
// callers give up while their shared requests, reading a caller's Cache
// and asking a slow server whose failures open the breaker, go on: once
// the verifier is closed, every span the Observer started has ended, and
// every request's span is a child of a verification's, however the
// callers' verdicts and the requests' goroutines interleave (run with
// -race -count=20).
func TestReview16bCallersGivingUpLeaveNoSpanOpen(t *testing.T) {
	h := newHarness(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	v := newVerifier(t, srv.URL, h.obs, func(s *introspection.Settings) {
		s.Cache = newMapCache()
		s.CacheTTL = time.Minute
		s.LocalCacheTTL = time.Second
	})
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%4)*time.Millisecond)
			defer cancel()
			_, _ = v.Verify(ctx, []string{"a", "b", "c"}[i%3])
		})
	}
	wg.Wait()
	require.NoError(t, v.Close())
	assert.Len(t, h.spans.Ended(), len(h.spans.Started()), "every span started has ended")
	for _, s := range h.ended() {
		if s.Name == "POST" || s.Name == "introspection.cache.get" {
			assert.Equal(t, spanVerify, s.Parent, "%s under a verification", s.Name)
		}
	}
}
