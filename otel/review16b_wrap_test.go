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
)

// teeObserver tells two Observers of each event, as an operator who
// exports to two backends writes one: each Start method's context goes
// through both.
type teeObserver struct {
	introspection.Observer // the first
	second                 introspection.Observer
}

func (t teeObserver) VerifyStart(ctx context.Context) context.Context {
	return t.second.VerifyStart(t.Observer.VerifyStart(ctx))
}

func (t teeObserver) VerifyEnd(ctx context.Context, e introspection.VerifyEvent) {
	t.Observer.VerifyEnd(ctx, e)
	t.second.VerifyEnd(ctx, e)
}

func (t teeObserver) CacheLookup(ctx context.Context, r introspection.CacheResult) {
	t.Observer.CacheLookup(ctx, r)
	t.second.CacheLookup(ctx, r)
}

func (t teeObserver) CollapsedWaiter(ctx context.Context) {
	t.Observer.CollapsedWaiter(ctx)
	t.second.CollapsedWaiter(ctx)
}

func (t teeObserver) UpstreamStart(ctx context.Context, r introspection.UpstreamRequest) context.Context {
	return t.second.UpstreamStart(t.Observer.UpstreamStart(ctx, r), r)
}

func (t teeObserver) UpstreamEnd(ctx context.Context, e introspection.UpstreamEvent) {
	t.second.UpstreamEnd(ctx, e)
	t.Observer.UpstreamEnd(ctx, e)
}

func (t teeObserver) CacheCallStart(ctx context.Context, op introspection.CacheOperation) context.Context {
	return t.second.CacheCallStart(t.Observer.CacheCallStart(ctx, op), op)
}

func (t teeObserver) CacheCallEnd(ctx context.Context, e introspection.CacheCallEvent) {
	t.second.CacheCallEnd(ctx, e)
	t.Observer.CacheCallEnd(ctx, e)
}

// taggingObserver is the Observer it embeds, whose VerifyStart puts a
// value of its own in the verification's context, as a wrapper that
// carries a request ID does.
type taggingObserver struct{ *Observer }

type tagKey struct{}

func (w taggingObserver) VerifyStart(ctx context.Context) context.Context {
	return context.WithValue(w.Observer.VerifyStart(ctx), tagKey{}, "request-1")
}

// TestReview16bWrappedObserverEndsEverySpanItStarts runs a miss through
// Observers that wrap this one, each passing on the contexts the
// Observer returned as the core's Observer contract lets a wrapper do:
// every span the Observer starts is ended, and the verification's span
// has its cache result.
func TestReview16bWrappedObserverEndsEverySpanItStarts(t *testing.T) {
	srv := httptest.NewServer(jsonHandler(http.StatusOK, `{"active":true}`))
	defer srv.Close()
	run := func(t *testing.T, obs introspection.Observer, hs ...*harness) {
		t.Helper()
		v := newVerifier(t, srv.URL, obs, func(s *introspection.Settings) { s.CacheTTL = time.Minute })
		_, err := v.Verify(context.Background(), "tok")
		require.NoError(t, err)
		require.NoError(t, v.Close())
		require.Zero(t, v.Stats().Panics)
		for i, h := range hs {
			assert.Len(t, h.spans.Ended(), len(h.spans.Started()), "observer %d: every span it started is ended", i)
			verifies := named(h.ended(), spanVerify)
			if assert.Len(t, verifies, 1, "observer %d: the verification's span", i) {
				assert.Equal(t, "miss", verifies[0].Attrs["introspection.cache.result"], "observer %d", i)
				assert.Equal(t, "accepted", verifies[0].Attrs["introspection.outcome"], "observer %d", i)
			}
		}
	}
	t.Run("two Observers in one", func(t *testing.T) {
		a, b := newHarness(t), newHarness(t)
		run(t, teeObserver{Observer: a.obs, second: b.obs}, a, b)
	})
	t.Run("a wrapper that adds a value", func(t *testing.T) {
		h := newHarness(t)
		run(t, taggingObserver{h.obs}, h)
	})
}
