package otel

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/mcpauth/introspection"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"
)

// spanIDHandler is a slog handler that keeps the span ID of the context
// of each record, as a handler that correlates logs with traces reads it.
type spanIDHandler struct {
	mu  *sync.Mutex
	ids map[string]trace.SpanID
}

func (h spanIDHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h spanIDHandler) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ids[r.Message] = trace.SpanContextFromContext(ctx).SpanID()
	return nil
}
func (h spanIDHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h spanIDHandler) WithGroup(string) slog.Handler      { return h }

// TestReview16bRejectionIsLoggedInTheVerifySpan rejects a token after a
// request, so that the verification has its span: the Logger's record of
// the rejection, logged inside the verification, carries that span's ID
// for a handler that correlates logs and traces, as it did when the span
// started with the verification.
func TestReview16bRejectionIsLoggedInTheVerifySpan(t *testing.T) {
	h := newHarness(t)
	srv := httptest.NewServer(jsonHandler(http.StatusOK, `{"active":false}`))
	defer srv.Close()
	logs := spanIDHandler{mu: &sync.Mutex{}, ids: map[string]trace.SpanID{}}
	v := newVerifier(t, srv.URL, h.obs, func(s *introspection.Settings) { s.Logger = slog.New(logs) })
	_, err := v.Verify(context.Background(), "tok")
	require.ErrorIs(t, err, introspection.ErrTokenInactive)
	require.NoError(t, v.Close())

	var verify trace.SpanID
	for _, s := range h.spans.Ended() {
		if s.Name() == spanVerify {
			verify = s.SpanContext().SpanID()
		}
	}
	require.True(t, verify.IsValid(), "the verification's span")
	logs.mu.Lock()
	defer logs.mu.Unlock()
	got, ok := logs.ids["introspection: token rejected"]
	require.True(t, ok, "the rejection is logged")
	assert.Equal(t, verify, got, "the record is in the verification's span")
}
