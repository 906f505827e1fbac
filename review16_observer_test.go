package introspection

import (
	"context"
	"net/http"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// partialObserver implements Observer without NopObserver, the common
// Go way of implementing part of an interface: it embeds the interface
// itself, left nil, and overrides one method.
type partialObserver struct {
	Observer
	ends int
}

func (o *partialObserver) VerifyEnd(context.Context, VerifyEvent) { o.ends++ }

// TestReviewObserverCannotBeImplementedWithoutNopObserver shows that the
// Observer documentation's "Observer cannot be implemented without
// NopObserver" does not hold, and that NewVerifier takes an observer
// whose methods cannot be called: a struct embedding the Observer
// interface (nil) compiles and is accepted, as is a nil pointer of a type
// that embeds NopObserver. Every event then panics in the verifier (a nil
// dereference), which is recovered, counted in Stats.Panics and logged at
// error level with its stack, on every verification, instead of the
// settings being refused with a clear error.
func TestReviewObserverCannotBeImplementedWithoutNopObserver(t *testing.T) {
	tests := []struct {
		name string
		obs  Observer
	}{
		{"embeds the Observer interface", &partialObserver{}},
		{"nil pointer", (*recordingObserver)(nil)},
	}
	srv := jsonServer(t, http.StatusOK, `{"active":true}`)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewVerifier(Settings{IntrospectionURL: srv.URL, ClientID: "rs", ClientSecret: "secret", Observer: tc.obs})
			if err != nil {
				return // refused: the promise holds
			}
			defer v.Close()
			_, err = v.Verify(context.Background(), "tok")
			require.NoError(t, err)
			assert.Zero(t, v.Stats().Panics, "an observer NewVerifier accepted can be called")
		})
	}
}

// TestReviewVerifyEndIsTheVerdictStatsCounts shows a verification that
// ends without a verdict being told to the observer as accepted: when a
// dependency that runs on the caller's goroutine (here
// Settings.ScopeMatcher) ends it with runtime.Goexit, as t.FailNow in a
// test double does, the deferred VerifyEnd runs with no error set and
// reports OutcomeAccepted, reason "none", although Verify returned no
// token and Stats counts no acceptance. The Observer documentation
// promises one VerifyEnd "whose outcome is the one Stats counts"; the
// otel module turns this into introspection_verifications_total
// {outcome="accepted"} for a token that was never accepted.
func TestReviewVerifyEndIsTheVerdictStatsCounts(t *testing.T) {
	srv := jsonServer(t, http.StatusOK, `{"active":true,"scope":"tools"}`)
	obs := &recordingObserver{}
	v := newVerifier(t, srv.URL, nil, func(s *Settings) {
		s.Observer = obs
		s.RequiredScopes = []string{"tools:echo"}
		s.ScopeMatcher = func(granted, required string) bool {
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
	require.Zero(t, st.Accepted, "Stats counts no acceptance")
	ev := obs.seen()
	require.NotEmpty(t, ev)
	assert.NotEqual(t, "VerifyEnd accepted none", ev[len(ev)-1],
		"the observer is not told of an acceptance Stats does not count (Stats: %+v)", st)
}
