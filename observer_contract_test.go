package introspection

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// unwindingBody is a response body whose Read panics.
type unwindingBody struct{}

func (unwindingBody) Read([]byte) (int, error) { panic("body failed") }
func (unwindingBody) Close() error             { return nil }

// TestObserverEndsEveryUpstreamRequest shows that each UpstreamStart is
// followed by exactly one UpstreamEnd, with FailurePanic and no status
// code, also when the request's goroutine unwinds inside the request: a
// response body that panics, Settings.Now panicking while the client
// assertion is signed, a transport that calls runtime.Goexit.
func TestObserverEndsEveryUpstreamRequest(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Settings)
	}{
		{"response body panics", func(s *Settings) {
			s.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				_ = r.Body.Close()
				return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
					Body: unwindingBody{}, Request: r}, nil
			})}
		}},
		{"Settings.Now panics while the assertion is signed", func(s *Settings) {
			s.ClientAuthMethod = ClientSecretJWT
			s.ClientSecret = "a-client-secret-of-at-least-32-bytes!!"
			s.Now = func() time.Time { panic("clock failed") }
		}},
		{"transport calls runtime.Goexit", func(s *Settings) {
			s.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				_ = r.Body.Close()
				runtime.Goexit()
				return nil, nil
			})}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obs := &recordingObserver{}
			v := newVerifier(t, "http://127.0.0.1:1/introspect", nil, func(s *Settings) {
				s.Observer = obs
				s.BreakerThreshold = -1
				tc.edit(s)
			})
			_, err := v.Verify(context.Background(), "tok")
			require.ErrorIs(t, err, ErrIntrospectionFailed)
			require.NoError(t, v.Close())
			require.Equal(t, uint64(1), v.Stats().UpstreamRequests)
			ev := obs.seen()
			assert.Equal(t, 1, count(ev, "UpstreamStart"))
			assert.Equal(t, 1, count(ev, "UpstreamEnd"), "%v", ev)
			assert.Contains(t, ev, "UpstreamEnd 0 panic")
			assert.Empty(t, obs.lostContexts(), "UpstreamEnd came with UpstreamStart's context")
		})
	}
}

// TestVerifyEndAfterGoexitIsAFailure shows that a verification whose
// goroutine a dependency ends with runtime.Goexit (here
// Settings.ScopeMatcher, as t.FailNow in a test double) is counted by
// Stats and told to the observer as failed with FailurePanic: the one
// VerifyEnd is the verdict Stats counts, never an acceptance.
func TestVerifyEndAfterGoexitIsAFailure(t *testing.T) {
	srv := jsonServer(t, http.StatusOK, `{"active":true,"scope":"tools"}`)
	obs := &recordingObserver{}
	v := newVerifier(t, srv.URL, nil, func(s *Settings) {
		s.Observer = obs
		s.RequiredScopes = []string{"tools:echo"}
		s.ScopeMatcher = func(string, string) bool {
			runtime.Goexit()
			return false
		}
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = v.Verify(context.Background(), "tok")
	}()
	<-done
	require.NoError(t, v.Close())
	st := v.Stats()
	assert.Zero(t, st.Accepted)
	assert.Equal(t, uint64(1), st.Failed)
	assert.Equal(t, uint64(1), st.Failures[FailurePanic])
	ev := obs.seen()
	require.NotEmpty(t, ev)
	assert.Equal(t, "VerifyEnd failed panic", ev[len(ev)-1])
	assert.Equal(t, 1, count(ev, "VerifyEnd"))
}

// wrappingObserver overrides one event of the Observer it embeds.
type wrappingObserver struct {
	Observer
	ends atomic.Int32
}

func (o *wrappingObserver) VerifyEnd(ctx context.Context, e VerifyEvent) {
	o.ends.Add(1)
	o.Observer.VerifyEnd(ctx, e)
}

// TestNewVerifierRefusesAnObserverThatCannotBeCalled shows that
// NewVerifier refuses, with a clear error, an Observer whose methods
// would panic on every event: a nil pointer of a type that embeds
// NopObserver, and a value embedding the Observer interface left nil;
// and that it takes a value wrapping another Observer.
func TestNewVerifierRefusesAnObserverThatCannotBeCalled(t *testing.T) {
	srv := jsonServer(t, http.StatusOK, `{"active":true}`)
	tests := []struct {
		name    string
		obs     Observer
		refused bool
	}{
		{"nil pointer", (*recordingObserver)(nil), true},
		{"embeds a nil Observer", &wrappingObserver{}, true},
		{"embeds a nil pointer", &wrappingObserver{Observer: (*recordingObserver)(nil)}, true},
		{"wraps an Observer", &wrappingObserver{Observer: &recordingObserver{}}, false},
		{"NopObserver", NopObserver{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewVerifier(Settings{IntrospectionURL: srv.URL, ClientID: "rs", ClientSecret: "secret", Observer: tc.obs})
			if tc.refused {
				require.Error(t, err)
				assert.Equal(t, "introspection: Observer cannot be called: it is a nil pointer or embeds a nil Observer; "+
					"embed NopObserver, or set the Observer it wraps", err.Error())
				return
			}
			require.NoError(t, err)
			defer v.Close()
			_, err = v.Verify(context.Background(), "tok")
			require.NoError(t, err)
			assert.Zero(t, v.Stats().Panics)
			if w, ok := tc.obs.(*wrappingObserver); ok {
				assert.Equal(t, int32(1), w.ends.Load())
			}
		})
	}
}

// setFailingCache finds nothing and fails every Set.
type setFailingCache struct{}

func (setFailingCache) Get(context.Context, string) ([]byte, bool, error) { return nil, false, nil }
func (setFailingCache) Set(context.Context, string, []byte, time.Duration) error {
	return errors.New("store is full")
}
func (setFailingCache) Delete(context.Context, string) error { return nil }

// TestObserverSeesAFailedStoreInItsCall shows that the failed store of an
// answer, which runs after the callers have their answer, is told by a
// CacheError with the context of the Set call, between its
// CacheCallStart and CacheCallEnd, so that an observer finds the call it
// belongs to.
func TestObserverSeesAFailedStoreInItsCall(t *testing.T) {
	srv := jsonServer(t, http.StatusOK, `{"active":true}`)
	obs := &recordingObserver{}
	v := newVerifier(t, srv.URL, nil, func(s *Settings) {
		s.Observer = obs
		s.CacheTTL = time.Minute
		s.Cache = setFailingCache{}
	})
	_, err := v.Verify(context.Background(), "tok")
	require.NoError(t, err)
	require.NoError(t, v.Close())
	var set []string // the store's events, in order; the verdict may come among them
	for _, e := range obs.seen() {
		if strings.HasSuffix(e, " set") || strings.Contains(e, " set ") {
			set = append(set, e)
		}
	}
	assert.Equal(t, []string{"CacheCallStart set", "CacheError set", "CacheCallEnd set error"}, set)
	assert.Empty(t, obs.lostContexts())
	assert.Equal(t, uint64(1), v.Stats().CacheErrors)
}
