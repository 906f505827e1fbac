package otel

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// metadataServer is an authorization server whose issuer is its URL: it
// serves its metadata, as answer says, and answers every introspection
// request at /introspect with an active token.
type metadataServer struct {
	*httptest.Server

	mu     sync.Mutex                                    // guards answer
	answer func() (status int, contentType, body string) // nil: good metadata
}

func newMetadataServer(t testing.TB) *metadataServer {
	t.Helper()
	ms := &metadataServer{}
	ms.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/introspect" {
			jsonHandler(http.StatusOK, `{"active":true,"iss":"`+ms.URL+`"}`).ServeHTTP(w, r)
			return
		}
		status, ct, body := http.StatusOK, "application/json", ms.goodMetadata(ms.URL)
		ms.mu.Lock()
		if ms.answer != nil {
			status, ct, body = ms.answer()
		}
		ms.mu.Unlock()
		if status >= 300 && status < 400 {
			http.Redirect(w, r, body, status)
			return
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(ms.Close)
	return ms
}

// goodMetadata returns metadata naming issuer and the server's
// introspection endpoint.
func (ms *metadataServer) goodMetadata(issuer string) string {
	return fmt.Sprintf(`{"issuer":%q,"introspection_endpoint":%q}`, issuer, ms.URL+"/introspect")
}

// setAnswer replaces how metadata requests are answered (nil: good
// metadata).
func (ms *metadataServer) setAnswer(f func() (int, string, string)) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.answer = f
}

// discoveryVerifier returns a verifier that finds its endpoint in the
// metadata of ms, observed by obs, after edit changes its settings.
func discoveryVerifier(t testing.TB, ms *metadataServer, obs introspection.Observer, edit func(*introspection.Settings)) *introspection.Verifier {
	t.Helper()
	return newVerifier(t, "", obs, func(s *introspection.Settings) {
		s.Issuer = ms.URL
		if edit != nil {
			edit(s)
		}
	})
}

// TestMetadataFetches shows the counter and the span of each fetch of
// the issuer's metadata: counted with error.type when it failed, one for
// each kind of failure a fetch can have, and a span
// introspection.metadata.fetch, child of the span of the verification
// that needed the endpoint, with error.type and status Error when it
// failed.
func TestMetadataFetches(t *testing.T) {
	tests := []struct {
		name      string
		answer    func(ms *metadataServer) (int, string, string) // nil: good metadata
		transport func(r *http.Request) (*http.Response, error)  // nil: the network
		failure   string
	}{
		{name: "usable metadata"},
		{name: "server error", answer: func(*metadataServer) (int, string, string) {
			return http.StatusInternalServerError, "text/plain", "down"
		}, failure: "status"},
		{name: "redirect", answer: func(ms *metadataServer) (int, string, string) {
			return http.StatusFound, "", ms.URL + "/elsewhere"
		}, failure: "redirect"},
		{name: "another issuer", answer: func(ms *metadataServer) (int, string, string) {
			return http.StatusOK, "application/json", ms.goodMetadata("https://other.example.com")
		}, failure: "discovery"},
		{name: "no answer", transport: func(*http.Request) (*http.Response, error) {
			return nil, errors.New("connection refused")
		}, failure: "transport"},
		{name: "no answer in time", transport: func(r *http.Request) (*http.Response, error) {
			<-r.Context().Done()
			return nil, r.Context().Err()
		}, failure: "timeout"},
		{name: "transport panics", transport: func(*http.Request) (*http.Response, error) {
			panic("transport failed")
		}, failure: "panic"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			ms := newMetadataServer(t)
			if tc.answer != nil {
				ms.setAnswer(func() (int, string, string) { return tc.answer(ms) })
			}
			v := discoveryVerifier(t, ms, h.obs, func(s *introspection.Settings) {
				s.Timeout = 100 * time.Millisecond
				if tc.transport != nil {
					s.HTTPClient = &http.Client{Transport: roundTripFunc(tc.transport)}
				}
			})
			_, err := v.Verify(context.Background(), "tok")
			assert.Equal(t, tc.failure == "", err == nil, "%v", err)
			require.NoError(t, v.Close())

			attrs, status := "", "Unset"
			if tc.failure != "" {
				attrs, status = "error.type="+tc.failure, "Error "+tc.failure
			}
			assert.Equal(t, map[string]float64{attrs: 1}, points(h.collect(t)["introspection.metadata.fetches"]))
			fetches := named(h.ended(), "introspection.metadata.fetch")
			require.Len(t, fetches, 1)
			want := map[string]string{}
			if tc.failure != "" {
				want["error.type"] = tc.failure
			}
			assert.Equal(t, want, fetches[0].Attrs)
			assert.Equal(t, status, fetches[0].Status)
			assert.Equal(t, "internal", fetches[0].Kind)
			assert.Equal(t, "introspection.verify", fetches[0].Parent, "a child of the verification's span")
			checkDocumented(t, h)
		})
	}
}

// TestMetadataRefreshIsARootSpan shows a refresh in the background, which
// fails here: it is counted with its error.type, while the verifier goes
// on with the metadata it held and the verifications are accepted; its
// span is the root of a trace of its own, linked to the span of the
// verification that started it, which did not wait for it.
func TestMetadataRefreshIsARootSpan(t *testing.T) {
	h := newHarness(t)
	ms := newMetadataServer(t)
	clock := newFakeClock()
	v := discoveryVerifier(t, ms, h.obs, func(s *introspection.Settings) {
		s.Now = clock.Now
		s.DiscoveryRefresh = time.Hour
	})
	ctx := context.Background()
	_, err := v.Verify(ctx, "tok")
	require.NoError(t, err)
	ms.setAnswer(func() (int, string, string) { return http.StatusServiceUnavailable, "text/plain", "down" })
	clock.Advance(time.Hour)
	_, err = v.Verify(ctx, "tok")
	require.NoError(t, err, "the metadata in use answers while the refresh runs")
	require.Eventually(t, func() bool { return len(named(h.ended(), "introspection.metadata.fetch")) == 2 },
		10*time.Second, time.Millisecond, "the refresh ends")
	_, err = v.Verify(ctx, "tok")
	require.NoError(t, err, "the failed refresh kept the metadata")

	m := h.collect(t)
	assert.Equal(t, map[string]float64{"": 1, "error.type=status": 1}, points(m["introspection.metadata.fetches"]))
	assert.Equal(t, map[string]float64{"introspection.outcome=accepted introspection.reason=none": 3},
		points(m["introspection.verifications"]))
	var verifies, fetches []sdktrace.ReadOnlySpan
	for _, s := range h.spans.Ended() {
		switch s.Name() {
		case "introspection.verify":
			verifies = append(verifies, s)
		case "introspection.metadata.fetch":
			fetches = append(fetches, s)
		}
	}
	require.Len(t, verifies, 3)
	require.Len(t, fetches, 2)
	first, refresh := fetches[0], fetches[1]
	assert.Equal(t, verifies[0].SpanContext().SpanID(), first.Parent().SpanID(), "the first fetch is a child of the verification")
	assert.Empty(t, first.Links())
	assert.False(t, first.StartTime().Before(verifies[0].StartTime()), "the fetch's span starts in the verification's")
	assert.False(t, first.EndTime().After(verifies[0].EndTime()), "and ends in it")
	assert.True(t, first.StartTime().Before(first.EndTime()))
	assert.False(t, refresh.Parent().IsValid(), "the refresh is a root")
	require.Len(t, refresh.Links(), 1)
	assert.Equal(t, verifies[1].SpanContext(), refresh.Links()[0].SpanContext, "linked to the verification that started it")
	assert.Equal(t, "Error", refresh.Status().Code.String())
	assert.Equal(t, "status", refresh.Status().Description)
	assert.True(t, refresh.StartTime().Before(refresh.EndTime()))
	checkDocumented(t, h)
}

// panickyObserver is the Observer whose MetadataFetch panics after it has
// recorded.
type panickyObserver struct{ *Observer }

func (o panickyObserver) MetadataFetch(ctx context.Context, e introspection.MetadataEvent) {
	o.Observer.MetadataFetch(ctx, e)
	panic("observer failed")
}

// TestPanicDuringDiscoveryChangesNothing shows that an observer that
// panics while it is told of a fetch of the metadata changes no verdict:
// the panic is counted in Stats.Panics, and what was recorded before it
// is kept.
func TestPanicDuringDiscoveryChangesNothing(t *testing.T) {
	h := newHarness(t)
	ms := newMetadataServer(t)
	v := discoveryVerifier(t, ms, panickyObserver{h.obs}, nil)
	_, err := v.Verify(context.Background(), "tok")
	require.NoError(t, err)
	require.NoError(t, v.Close())
	assert.Equal(t, ms.URL+"/introspect", v.IntrospectionURL())
	assert.Equal(t, uint64(1), v.Stats().Panics)
	m := h.collect(t)
	assert.Equal(t, map[string]float64{"": 1}, points(m["introspection.metadata.fetches"]))
	assert.Equal(t, map[string]float64{"introspection.outcome=accepted introspection.reason=none": 1},
		points(m["introspection.verifications"]))
	assert.Len(t, named(h.ended(), "introspection.metadata.fetch"), 1)
	checkDocumented(t, h)
}
