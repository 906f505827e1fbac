package introspection

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

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
