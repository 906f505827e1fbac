package introspection

import (
	"context"
	"net/http"
	"runtime"
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
