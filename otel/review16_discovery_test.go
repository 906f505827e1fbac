package otel

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// discoveryServer serves RFC 8414 metadata naming its own introspection
// endpoint at endpointPath, which answers every token active; while
// failing is set the metadata answers 503.
func discoveryServer(t *testing.T, endpointPath string) (srv *httptest.Server, failing *atomic.Bool, fetches *atomic.Int32) {
	t.Helper()
	failing, fetches = &atomic.Bool{}, &atomic.Int32{}
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/.well-known/") {
			fetches.Add(1)
			if failing.Load() {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
			jsonHandler(200, `{"issuer":"`+srv.URL+`","introspection_endpoint":"`+srv.URL+endpointPath+`"}`).ServeHTTP(w, r)
			return
		}
		jsonHandler(200, `{"active":true,"iss":"`+srv.URL+`"}`).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, failing, fetches
}

// TestReviewDiscoveryRefreshesAreObserved shows that the observer hook
// has no event for the discovery of the introspection endpoint, which the
// issue lists ("discovery refreshes"): a refresh of the issuer's metadata
// that fails while the last good metadata stays in use leaves no trace in
// any exported metric or span. Verdicts stay "accepted", no
// introspection.reason or error.type is "discovery", and the metadata
// fetches themselves make no client span, so an operator sees the
// authorization server's metadata failing only once the verifier has none
// left.
func TestReviewDiscoveryRefreshesAreObserved(t *testing.T) {
	h := newHarness(t)
	srv, failing, fetches := discoveryServer(t, "/introspect")
	clock := newFakeClock()
	v, err := introspection.NewVerifier(introspection.Settings{
		Issuer: srv.URL, ClientID: "rs", ClientSecret: "secret",
		Observer: h.obs, Now: clock.Now, DiscoveryRefresh: time.Minute,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	ctx := context.Background()
	_, err = v.Verify(ctx, "tok-1")
	require.NoError(t, err)

	failing.Store(true)
	clock.Advance(2 * time.Minute) // the metadata is due for a refresh
	_, err = v.Verify(ctx, "tok-2")
	require.NoError(t, err, "the last good metadata stays in use")
	err = v.Discover(ctx) // joins the refresh, or fetches again
	require.ErrorIs(t, err, introspection.ErrIntrospectionFailed)
	require.GreaterOrEqual(t, fetches.Load(), int32(2), "the metadata was fetched again and failed")
	require.NoError(t, v.Close())

	out := h.dump(t)
	require.Contains(t, out, "introspection.verifications")
	assert.Contains(t, out, "introspection.metadata.fetch", "a failed refresh of the metadata has its span")
	assert.GreaterOrEqual(t, value(h.collect(t), "introspection.metadata.fetches", "error.type=status"), float64(1),
		"a failed refresh of the metadata is counted by its kind of failure")
}

// TestReviewNoTextOfTheServerInAttributesWithDiscovery shows that with
// discovery the url.full, server.address and server.port of the `POST`
// span are what the authorization server's metadata says
// (introspection_endpoint), its text taken as is: the README's "What
// never leaves" promises that no "text of the authorization server is put
// in a metric, a span name, an attribute", and the core's Observer
// documentation that events never hold "text of the authorization
// server". A marker in the path the metadata names reaches the exported
// span.
func TestReviewNoTextOfTheServerInAttributesWithDiscovery(t *testing.T) {
	h := newHarness(t)
	srv, _, _ := discoveryServer(t, "/introspect/S3CRET-server-text")
	v, err := introspection.NewVerifier(introspection.Settings{
		Issuer: srv.URL, ClientID: "rs", ClientSecret: "secret", Observer: h.obs,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	_, err = v.Verify(context.Background(), "tok")
	require.NoError(t, err)
	require.NoError(t, v.Close())
	posts := named(h.ended(), "POST")
	require.Len(t, posts, 1, "the request's span was exported")
	assert.NotContains(t, posts[0].Attrs["url.full"], "S3CRET", "no text of the authorization server")
}
