package introspection

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestTransportIgnoringContextNeverHangsCallers gives the verifier an
// HTTPClient whose transport ignores the request's context and never
// answers until the test lets it: every caller, also one without a deadline
// of its own and one that comes later, gets ErrIntrospectionFailed of kind
// timeout once the shared request's bound has passed, and Close does not
// wait for the stuck transport for ever.
func TestTransportIgnoringContextNeverHangsCallers(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	release := make(chan struct{})
	var calls atomic.Int32
	v := newVerifier(t, "https://as.example/introspect", nil, func(s *Settings) {
		s.Timeout = 50 * time.Millisecond
		s.HTTPClient = &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
			calls.Add(1)
			<-release // ignores the request's context
			return nil, context.Canceled
		})}
	})
	verify := func() error {
		done := make(chan error, 1)
		go func() {
			_, err := v.Verify(context.Background(), "stuck")
			done <- err
		}()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second): // a guard against hanging, not a timing assertion
			t.Fatal("Verify did not return")
			return nil
		}
	}
	for i := range 2 {
		err := verify()
		var ie *IntrospectionError
		require.ErrorAs(t, err, &ie, "call %d", i)
		assert.Equal(t, FailureTimeout, ie.Kind, "call %d", i)
	}
	assert.Equal(t, uint64(2), v.Stats().Failures[FailureTimeout])
	assert.Equal(t, uint64(2), v.Stats().Failed)

	closed := make(chan error, 1)
	go func() { closed <- v.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("Close waited for the stuck transport")
	}
	close(release)
	waitUntilIdle(t, v)
	assert.Equal(t, int32(2), calls.Load())
}

// flightOf returns the shared request running for token, or nil.
func (v *Verifier) flightOf(token string) *flight {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.flights[token]
}

// stuckTransport ignores the request's context: each round trip waits
// until the test closes release, then ends as late says.
type stuckTransport struct {
	started chan struct{} // gets a value when a round trip starts
	release chan struct{}
	late    func(*http.Request) (*http.Response, error)
}

func (s *stuckTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	s.started <- struct{}{}
	<-s.release
	return s.late(r)
}

// activeAnswer is a 200 with an answer that accepts the token.
func activeAnswer(r *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: http.StatusOK,
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(strings.NewReader(`{"active":true,"client_id":"app"}`)),
		Request:    r,
	}, nil
}

// verifyAsync calls v.Verify on a goroutine of its own; wait for its
// result with result.
func verifyAsync(v *Verifier, token string) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := v.Verify(context.Background(), token)
		done <- err
	}()
	return done
}

// result waits for the error of a call that verifyAsync started, and
// fails the test if it does not return.
func result(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second): // a guard against hanging, not a timing assertion
		t.Fatal("Verify did not return")
		return nil
	}
}

// waitEnded waits until the goroutine of the flight f has returned.
func waitEnded(t *testing.T, f *flight) {
	t.Helper()
	select {
	case <-f.ended:
	case <-time.After(30 * time.Second):
		t.Fatal("the shared request did not end")
	}
}

// TestResultAfterTheTimeoutIsDropped has the transport end the shared
// request only after its callers were told it timed out. Whatever it ends
// with, the request stays one failure of kind timeout, in Stats and in the
// log, and a late answer is neither handed out nor cached: a token may
// have been revoked while the answer was stuck, and a newer request may
// have cached its own answer meanwhile.
func TestResultAfterTheTimeoutIsDropped(t *testing.T) {
	tests := []struct {
		name       string
		late       func(*http.Request) (*http.Response, error)
		wantPanics uint64
	}{
		{"an error", func(*http.Request) (*http.Response, error) { return nil, errors.New("connection reset") }, 0},
		{"a panic", func(*http.Request) (*http.Response, error) { panic("transport failed") }, 1},
		{"runtime.Goexit", func(*http.Request) (*http.Response, error) { runtime.Goexit(); return nil, nil }, 0},
		{"an answer", activeAnswer, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cacheKinds(t, func(t *testing.T, withCache func(*Settings)) {
				t.Parallel()
				logs := &recordingHandler{}
				tr := &stuckTransport{started: make(chan struct{}, 1), release: make(chan struct{}), late: tc.late}
				var mc *mapCache
				v := newVerifier(t, "https://as.example/introspect", nil, func(s *Settings) {
					s.Timeout = 50 * time.Millisecond
					s.HTTPClient = &http.Client{Transport: tr}
					s.Logger = slog.New(logs)
					s.CacheTTL = time.Minute
					withCache(s)
					mc, _ = s.Cache.(*mapCache)
				})
				done := verifyAsync(v, "stuck")
				<-tr.started
				f := v.flightOf("stuck")
				require.NotNil(t, f)
				var ie *IntrospectionError
				require.ErrorAs(t, result(t, done), &ie)
				require.Equal(t, FailureTimeout, ie.Kind)

				close(tr.release)
				waitEnded(t, f)

				st := v.Stats()
				var failures uint64
				for _, n := range st.Failures {
					failures += n
				}
				assert.Equal(t, uint64(1), failures, "one request, one failure: %v", st.Failures)
				assert.Equal(t, uint64(1), st.Failures[FailureTimeout])
				assert.Equal(t, uint64(1), st.Failed)
				assert.Equal(t, uint64(1), st.Verifications)
				assert.Equal(t, tc.wantPanics, st.Panics)
				if failed := logs.matching("request failed"); assert.Len(t, failed, 1, "logged once:\n%s", logs.text()) {
					assert.Equal(t, slog.LevelWarn, failed[0].Level)
				}
				if mc != nil {
					mc.mu.Lock()
					assert.Empty(t, mc.entries, "a late answer is not cached")
					mc.mu.Unlock()
				} else {
					assert.Zero(t, st.CacheEntries, "a late answer is not cached")
				}
			})
		})
	}
}

// TestLateEndOfAReplacedRequestLeavesItsSuccessorAlone has a request that
// timed out end while a newer request for the same token runs, with a
// caller waiting for it: the newer request stays the one later callers
// join, and its callers get its answer.
func TestLateEndOfAReplacedRequestLeavesItsSuccessorAlone(t *testing.T) {
	first, second := make(chan struct{}), make(chan struct{})
	started := make(chan struct{}, 2)
	var calls atomic.Int32
	v := newVerifier(t, "https://as.example/introspect", nil, func(s *Settings) {
		s.Timeout = 50 * time.Millisecond
		s.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			started <- struct{}{}
			if calls.Add(1) == 1 {
				<-first
				return nil, errors.New("connection reset")
			}
			<-second
			return activeAnswer(r)
		})}
	})
	done := verifyAsync(v, "stuck")
	<-started
	old := v.flightOf("stuck")
	require.NotNil(t, old)
	require.ErrorIs(t, result(t, done), ErrIntrospectionFailed)

	errs := []<-chan error{verifyAsync(v, "stuck"), verifyAsync(v, "stuck")}
	require.Eventually(t, func() bool { return v.waiters("stuck") == 1 }, 10*time.Second, time.Millisecond)
	newer := v.flightOf("stuck")
	require.NotSame(t, old, newer)

	close(first)
	waitEnded(t, old)
	assert.Same(t, newer, v.flightOf("stuck"), "the old request's end must not remove the newer one")

	close(second)
	for _, done := range errs {
		assert.NoError(t, result(t, done))
	}
	assert.Equal(t, int32(2), calls.Load())
	st := v.Stats()
	assert.Equal(t, uint64(1), st.CollapsedWaiters)
	assert.Equal(t, uint64(2), st.Accepted)
	assert.Equal(t, uint64(1), st.Failures[FailureTimeout])
}

// TestStatsAddUpWhenCallersLeaveAHungRequest has callers share a request
// whose transport ignores its context, some of them leaving when their own
// context ends: every call is counted once, as canceled or failed, the
// request once as a timeout, and its late end adds nothing.
func TestStatsAddUpWhenCallersLeaveAHungRequest(t *testing.T) {
	tr := &stuckTransport{started: make(chan struct{}, 1), release: make(chan struct{}), late: activeAnswer}
	v := newVerifier(t, "https://as.example/introspect", nil, func(s *Settings) {
		s.Timeout = 50 * time.Millisecond
		s.HTTPClient = &http.Client{Transport: tr}
	})
	const staying, leaving = 3, 3
	var done []<-chan error
	done = append(done, verifyAsync(v, "stuck"))
	<-tr.started
	f := v.flightOf("stuck")
	require.NotNil(t, f)
	for range staying - 1 {
		done = append(done, verifyAsync(v, "stuck"))
	}
	ctx, cancel := context.WithCancel(context.Background())
	left := make(chan error, leaving)
	for range leaving {
		go func() {
			_, err := v.Verify(ctx, "stuck")
			left <- err
		}()
	}
	require.Eventually(t, func() bool { return v.waiters("stuck") == staying+leaving-1 }, 10*time.Second, time.Millisecond)
	cancel()
	for range leaving {
		assert.ErrorIs(t, result(t, left), context.Canceled)
	}
	for _, d := range done {
		assert.ErrorIs(t, result(t, d), ErrIntrospectionFailed)
	}
	close(tr.release)
	waitEnded(t, f)

	st := v.Stats()
	assert.Equal(t, uint64(staying+leaving), st.Verifications)
	assert.Equal(t, uint64(leaving), st.Canceled)
	assert.Equal(t, uint64(staying), st.Failed)
	assert.Equal(t, uint64(staying-1), st.CollapsedWaiters)
	assert.Equal(t, uint64(1), st.UpstreamRequests)
	assert.Equal(t, uint64(1), st.Failures[FailureTimeout])
	assert.Zero(t, st.Accepted, "the late answer is handed to no one")
}

// TestCloseWhileVerifying calls Close again and again while callers verify
// tokens, some shared, some cached: every call gets its answer, and once
// the callers are done and Close has returned no goroutine of the verifier
// is left.
func TestCloseWhileVerifying(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs last
	cacheKinds(t, func(t *testing.T, withCache func(*Settings)) {
		as := newAS(t, nil)
		v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
			s.CacheTTL = 50 * time.Millisecond
			withCache(s)
		})
		toks := []string{
			as.Issue(introspectiontest.TokenOptions{Subject: "a"}),
			as.Issue(introspectiontest.TokenOptions{Subject: "b"}),
			as.Issue(introspectiontest.TokenOptions{Subject: "c"}),
		}
		const callers, calls = 4, 30
		stop := make(chan struct{})
		closer := make(chan struct{})
		go func() {
			defer close(closer)
			for {
				select {
				case <-stop:
					return
				default:
					assert.NoError(t, v.Close())
				}
			}
		}()
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				for j := range calls {
					tok := toks[(i+j)%len(toks)]
					_, err := v.Verify(context.Background(), tok)
					assert.NoError(t, err)
				}
			})
		}
		wg.Wait()
		close(stop)
		<-closer
		require.NoError(t, v.Close())
		assert.Zero(t, v.inFlight())
		st := v.Stats()
		assert.Equal(t, uint64(callers*calls), st.Verifications)
		assert.Equal(t, uint64(callers*calls), st.Accepted)
	})
}
