package otel

import (
	"context"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// panickingBody is a response body whose Read panics.
type panickingBody struct{}

func (panickingBody) Read([]byte) (int, error) { panic("body failed") }
func (panickingBody) Close() error             { return nil }

// TestReviewEveryUpstreamRequestEndsItsSpanAndIsMeasured shows that an
// introspection request that UpstreamStart announced is not always ended:
// when the request's goroutine unwinds inside the request (a caller's
// response body that panics on Read, Settings.Now panicking while the
// client assertion is built, a transport that calls runtime.Goexit), the
// verifier never calls UpstreamEnd. The `POST` client span stays open for
// good and introspection.upstream.duration misses the request, although
// Stats.UpstreamRequests counts it: the README promises the histogram
// counts "introspection requests sent" and the span covers "the
// introspection request".
func TestReviewEveryUpstreamRequestEndsItsSpanAndIsMeasured(t *testing.T) {
	const jwtSecret = "a-client-secret-of-at-least-32-bytes!!"
	tests := []struct {
		name string
		edit func(*introspection.Settings)
	}{
		{"response body panics on Read", func(s *introspection.Settings) {
			s.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				_ = r.Body.Close()
				return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
					Body: panickingBody{}, Request: r}, nil
			})}
		}},
		{"Settings.Now panics while the client assertion is signed", func(s *introspection.Settings) {
			s.ClientAuthMethod = introspection.ClientSecretJWT
			s.ClientSecret = jwtSecret
			s.Now = func() time.Time { panic("clock failed") }
		}},
		{"transport ends the goroutine", func(s *introspection.Settings) {
			s.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				_ = r.Body.Close()
				runtime.Goexit()
				return nil, nil
			})}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			v := newVerifier(t, "http://127.0.0.1:1/introspect", h.obs, func(s *introspection.Settings) {
				s.BreakerThreshold = -1
				tc.edit(s)
			})
			_, err := v.Verify(context.Background(), "tok")
			require.Error(t, err)
			require.NoError(t, v.Close())
			require.Equal(t, uint64(1), v.Stats().UpstreamRequests, "one request was sent")

			var started []string
			for _, s := range h.spans.Started() {
				started = append(started, s.Name())
			}
			require.Contains(t, started, "POST", "UpstreamStart started the client span")
			assert.Len(t, named(h.ended(), "POST"), 1, "the client span is ended")
			var measured float64
			for _, n := range points(h.collect(t)["introspection.upstream.duration"]) {
				measured += n
			}
			assert.Equal(t, 1.0, measured, "the request is in the histogram, as Stats counts it")
		})
	}
}
