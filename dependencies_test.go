package introspection

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// blockUntilDone is a cache hook that hangs until the call's context ends.
func blockUntilDone(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestSharedCacheCallsAreBounded checks that a Cache that hangs, whether it
// honours its context or not, costs at most the cache call timeout: the
// token still gets the authorization server's answer, the answer is never
// withheld by a hung Set, the timeout counts as a cache error and starts
// the cooldown, and no goroutine is left once the Cache returns.
func TestSharedCacheCallsAreBounded(t *testing.T) {
	tests := []struct {
		name       string
		hang       func(mc *mapCache, release <-chan struct{})
		corrupt    bool   // a corrupt value is stored first, so that it is deleted
		wantErrors uint64 // cache errors after two calls
		wantLog    string
	}{
		{"Get blocks until its context ends", func(mc *mapCache, _ <-chan struct{}) { mc.beforeGet = blockUntilDone }, false, 1, "cache get failed"},
		{"Set blocks until its context ends", func(mc *mapCache, _ <-chan struct{}) { mc.beforeSet = blockUntilDone }, false, 1, "cache set failed"},
		{"Delete blocks until its context ends", func(mc *mapCache, _ <-chan struct{}) { mc.beforeDelete = blockUntilDone }, true, 2, "cache delete failed"},
		{"Get ignores its context", func(mc *mapCache, release <-chan struct{}) {
			mc.beforeGet = func(context.Context) error { <-release; return nil }
		}, false, 1, "cache get failed"},
		{"Set ignores its context", func(mc *mapCache, release <-chan struct{}) {
			mc.beforeSet = func(context.Context) error { <-release; return nil }
		}, false, 1, "cache set failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ignore := goleak.IgnoreCurrent()
			t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs last
			as := newAS(t, nil)
			logs := &recordingHandler{}
			v, mc := sharedCacheVerifier(t, as, func(s *Settings) { s.Logger = slog.New(logs) })
			v.cache.(*sharedStore).timeout = 50 * time.Millisecond
			tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})
			if tc.corrupt {
				require.NoError(t, mc.Set(context.Background(), v.CacheKey(tok), []byte(`{"active":"yes"}`), time.Minute))
			}
			release := make(chan struct{})
			t.Cleanup(func() { close(release) }) // a Cache that ignores its context returns at last
			tc.hang(mc, release)

			// A generous bound of the test's own, so that a wedged
			// verifier fails the test instead of hanging it.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for call := range 2 {
				got, err := v.Verify(ctx, tok)
				require.NoError(t, err, "call %d: the server's answer", call)
				assert.Equal(t, "alice", got.Subject)
				waitUntilIdle(t, v)
			}
			st := v.Stats()
			assert.Equal(t, int64(2), as.RequestsFor(tok), "the cache was left alone after the timeout")
			assert.Equal(t, tc.wantErrors, st.CacheErrors)
			assert.Positive(t, st.CacheSkipped, "the timeout started the cooldown")
			assert.Zero(t, st.Failed)
			if assert.Len(t, logs.matching(tc.wantLog), 1, logs.text()) {
				e, _ := attr(logs.matching(tc.wantLog)[0], "error")
				assert.Contains(t, e, "no answer within")
			}
		})
	}
}

// TestSharedCacheSetNeverHoldsBackTheAnswer checks that callers get the
// authorization server's answer while the Set that stores it still hangs,
// and that callers arriving meanwhile share that answer instead of asking
// the server again.
func TestSharedCacheSetNeverHoldsBackTheAnswer(t *testing.T) {
	as := newAS(t, nil)
	v, mc := sharedCacheVerifier(t, as, nil)
	v.cache.(*sharedStore).timeout = time.Hour // only the release below ends the Set
	release, entered := make(chan struct{}), make(chan struct{})
	var once sync.Once
	mc.beforeSet = func(context.Context) error {
		once.Do(func() { close(entered) })
		<-release
		return nil
	}
	var released sync.Once
	t.Cleanup(func() { released.Do(func() { close(release) }) }) // before Close, should the test fail
	tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	got, err := v.Verify(ctx, tok)
	require.NoError(t, err, "answered while the Set hangs")
	assert.Equal(t, "alice", got.Subject)
	<-entered
	for range 3 {
		got, err := v.Verify(ctx, tok)
		require.NoError(t, err)
		assert.Equal(t, "alice", got.Subject)
	}
	assert.Equal(t, 1, v.inFlight(), "the Set still hangs")
	assert.Equal(t, int64(1), as.RequestsFor(tok), "later callers shared the answer being stored")
	assert.Equal(t, uint64(3), v.Stats().CollapsedWaiters)

	released.Do(func() { close(release) })
	waitUntilIdle(t, v)
	assert.Equal(t, 1, mc.len())
	assert.Zero(t, v.Stats().CacheErrors)
}

// panickingTransport panics in RoundTrip once open is closed.
type panickingTransport struct{ open <-chan struct{} }

func (p panickingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	<-p.open
	panic("transport failed")
}

// TestDependencyPanicsAreRecovered checks that a panic in any dependency
// the verifier calls (a Cache, the HTTPClient's transport, the Logger's
// handler, Settings.Now) never reaches the process: it is recovered where
// it happens, counted in Stats().Panics and logged once with its stack. In
// the transport or Now it fails the request for every caller sharing it; a
// panicking Cache counts as a failing one and the authorization server
// decides; a panicking Logger loses its record, never the verdict.
func TestDependencyPanicsAreRecovered(t *testing.T) {
	type env struct {
		as   *introspectiontest.Server
		mc   *mapCache
		logs *recordingHandler
		open chan struct{} // closing it lets the transport panic
	}
	tests := []struct {
		name        string
		setup       func(e *env, s *Settings)
		token       string // "" is a token the server calls active
		callers     int
		wantErr     error // nil means accepted
		wantKind    FailureKind
		wantFailed  uint64
		wantCacheEr uint64
		wantIn      string // where the one record with the stack says the panic was
	}{
		{"Cache.Get", func(e *env, s *Settings) {
			s.Cache = e.mc
			e.mc.beforeGet = func(context.Context) error { panic("cache get failed") }
		}, "", 1, nil, "", 0, 1, "Cache.Get"},
		{"Cache.Set", func(e *env, s *Settings) {
			s.Cache = e.mc
			e.mc.beforeSet = func(context.Context) error { panic("cache set failed") }
		}, "", 1, nil, "", 0, 1, "Cache.Set"},
		{"Cache.Delete", func(e *env, s *Settings) {
			s.Cache = e.mc
			e.mc.beforeDelete = func(context.Context) error { panic("cache delete failed") }
		}, "corrupt", 1, ErrTokenInactive, "", 0, 2, "Cache.Delete"},
		{"HTTPClient transport", func(e *env, s *Settings) {
			s.HTTPClient = &http.Client{Transport: panickingTransport{e.open}}
		}, "", 10, ErrIntrospectionFailed, FailurePanic, 10, 0, "HTTPClient"},
		{"Logger handler, logging a failed request", func(e *env, s *Settings) {
			e.logs.panicOn = "request failed"
			e.as.SetFault(introspectiontest.Fault{Status: http.StatusInternalServerError})
		}, "", 1, ErrIntrospectionFailed, FailureStatus, 1, 0, "Logger"},
		{"Logger handler, logging a rejection", func(e *env, s *Settings) {
			e.logs.panicOn = "token rejected"
		}, "never-issued", 1, ErrTokenInactive, "", 0, 0, "Logger"},
		{"Settings.Now, in the caller's call", func(e *env, s *Settings) {
			s.Now = func() time.Time { panic("clock failed") }
		}, "", 1, ErrIntrospectionFailed, FailurePanic, 1, 0, "Verify"},
		{"Settings.Now, in the shared request", func(e *env, s *Settings) {
			// The clock fails once the request has reached the server,
			// when the answer is about to be cached.
			var sent atomic.Bool
			tr := &http.Transport{}
			s.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				<-e.open
				resp, err := tr.RoundTrip(r)
				sent.Store(true)
				return resp, err
			})}
			s.Now = func() time.Time {
				if sent.Load() {
					panic("clock failed")
				}
				return time.Now()
			}
		}, "", 3, ErrIntrospectionFailed, FailurePanic, 3, 0, "shared request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := &env{as: newAS(t, nil), mc: newMapCache(time.Now), logs: &recordingHandler{}, open: make(chan struct{})}
			if tc.callers == 1 {
				close(e.open)
			}
			v := newVerifier(t, e.as.IntrospectionURL, nil, func(s *Settings) {
				s.CacheTTL = time.Minute
				s.Logger = slog.New(e.logs)
				tc.setup(e, s)
			})
			tok := tc.token
			switch tok {
			case "":
				tok = e.as.Issue(introspectiontest.TokenOptions{Subject: "alice"})
			case "corrupt":
				tok = "never-issued"
				require.NoError(t, e.mc.Set(context.Background(), v.CacheKey(tok), []byte(`{"active":"yes"}`), time.Minute))
			}

			errs := make([]error, tc.callers)
			var wg sync.WaitGroup
			for i := range tc.callers {
				wg.Go(func() { _, errs[i] = v.Verify(context.Background(), tok) })
			}
			if tc.callers > 1 {
				// Every caller shares the one request before it fails.
				require.Eventually(t, func() bool { return v.waiters(tok) == tc.callers-1 }, 10*time.Second, time.Millisecond)
				close(e.open)
			}
			wg.Wait()
			waitUntilIdle(t, v)

			for i, err := range errs {
				if tc.wantErr == nil {
					assert.NoError(t, err, "caller %d", i)
					continue
				}
				assert.ErrorIs(t, err, tc.wantErr, "caller %d", i)
				var ie *IntrospectionError
				if tc.wantKind != "" && assert.ErrorAs(t, err, &ie, "caller %d", i) {
					assert.Equal(t, tc.wantKind, ie.Kind, "caller %d", i)
					assert.NotContains(t, ie.Error(), tok)
				}
			}
			st := v.Stats()
			assert.Equal(t, uint64(1), st.Panics)
			assert.Equal(t, tc.wantFailed, st.Failed)
			assert.Equal(t, tc.wantCacheEr, st.CacheErrors)
			if tc.wantKind == FailurePanic {
				assert.Equal(t, uint64(1), st.Failures[FailurePanic], "one failed request, however many callers")
			}
			var withStack []slog.Record
			for _, r := range e.logs.matching("") {
				if _, ok := attr(r, "stack"); ok {
					withStack = append(withStack, r)
				}
			}
			if assert.Len(t, withStack, 1, "logged once, with its stack:\n%s", e.logs.text()) {
				r := withStack[0]
				assert.Equal(t, "introspection: recovered from a panic", r.Message)
				assert.Equal(t, slog.LevelError, r.Level)
				in, _ := attr(r, "in")
				assert.Contains(t, in, tc.wantIn)
				stack, _ := attr(r, "stack")
				assert.Contains(t, stack, "goroutine")
				assert.Contains(t, stack, "panic")
			}
			assert.NotContains(t, e.logs.text(), tok)
			assert.False(t, errors.Is(errs[0], context.Canceled))
			assert.NotContains(t, e.logs.text(), introspectiontest.ClientSecret)
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestMiddlewareLoggerPanicKeepsTheAnswer has the Logger's handler panic on
// the record of a rejection that RequireBearerToken decides itself: the
// client still gets its 400 or 401, and the panic is counted and logged
// once with its stack.
func TestMiddlewareLoggerPanicKeepsTheAnswer(t *testing.T) {
	tests := []struct {
		name   string
		header string
		want   int
	}{
		{"no credentials", "", http.StatusUnauthorized},
		{"malformed credentials", "Bearer a b", http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logs := &recordingHandler{panicOn: "request rejected"}
			as := newAS(t, nil)
			v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) { s.Logger = slog.New(logs) })
			h := RequireBearerToken(v, nil)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
				t.Error("the next handler must not run")
			}))
			r := httptest.NewRequest(http.MethodGet, "/mcp", nil)
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			w := httptest.NewRecorder()
			require.NotPanics(t, func() { h.ServeHTTP(w, r) })
			assert.Equal(t, tc.want, w.Code)
			assert.Equal(t, uint64(1), v.Stats().Panics)
			recs := logs.matching("recovered from a panic")
			require.Len(t, recs, 1)
			_, ok := attr(recs[0], "stack")
			assert.True(t, ok, "logged with its stack")
		})
	}
}
