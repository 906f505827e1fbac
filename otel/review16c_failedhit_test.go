package otel

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"
)

// TestReview16cFailedHitIsLoggedInItsSpan makes a cache hit fail (the
// ScopeMatcher panics): the README says such a verification has its span
// all the same, "so that the failure shows in its trace". The Logger's
// record of the failure, logged inside that verification, must carry the
// span's ID for a handler that correlates logs with traces, as it does for
// a verification that sent a request
// (TestReview16bRejectionIsLoggedInTheVerifySpan).
func TestReview16cFailedHitIsLoggedInItsSpan(t *testing.T) {
	h := newHarness(t)
	srv := httptest.NewServer(jsonHandler(http.StatusOK, `{"active":true,"scope":"mcp"}`))
	defer srv.Close()
	logs := spanIDHandler{mu: &sync.Mutex{}, ids: map[string]trace.SpanID{}}
	var panicking bool
	v := newVerifier(t, srv.URL, h.obs, func(s *introspection.Settings) {
		s.CacheTTL = time.Minute
		s.Logger = slog.New(logs)
		s.RequiredScopes = []string{"mcp:read"}
		s.ScopeMatcher = func(granted, required string) bool {
			if panicking {
				panic("matcher failed")
			}
			return granted == "mcp"
		}
	})
	_, err := v.Verify(context.Background(), "tok")
	require.NoError(t, err)
	require.NoError(t, v.Close())
	panicking = true
	_, err = v.Verify(context.Background(), "tok") // a hit
	require.ErrorIs(t, err, introspection.ErrIntrospectionFailed)

	var failed trace.SpanID
	for _, s := range h.spans.Ended() {
		if s.Name() == spanVerify && s.Status().Description == "panic" {
			failed = s.SpanContext().SpanID()
		}
	}
	require.True(t, failed.IsValid(), "the failed hit's span")
	logs.mu.Lock()
	defer logs.mu.Unlock()
	got, ok := logs.ids["introspection: recovered from a panic"]
	require.True(t, ok, "the panic is logged")
	assert.Equal(t, failed, got, "the record of the failure is in the failed verification's span")
}
