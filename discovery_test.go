package introspection

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// discoServer is an authorization server for the discovery tests. It
// answers metadata requests with metadata (by default: good metadata at
// the RFC 8414 path, 404 elsewhere) and introspection requests at
// /introspect and /mtls/introspect with an active answer, and records
// both.
type discoServer struct {
	*httptest.Server

	mu         sync.Mutex
	issuer     string                                                   // the iss of its answers; guarded by mu
	metadata   func(path string) (status int, contentType, body string) // guarded by mu
	metaPaths  []string                                                 // metadata requests, in order; guarded by mu
	introPaths []string                                                 // introspection requests, in order; guarded by mu
	forms      []url.Values                                             // of the introspection requests; guarded by mu
	auths      []string                                                 // their Authorization headers; guarded by mu
	metaN      atomic.Int64
	introN     atomic.Int64
}

// newDiscoServer starts a discoServer; its issuer is its URL.
func newDiscoServer(t *testing.T) *discoServer {
	t.Helper()
	ds := &discoServer{}
	ds.Server = httptest.NewServer(http.HandlerFunc(ds.serve))
	ds.issuer = ds.URL
	ds.metadata = func(path string) (int, string, string) {
		if path == oauthMetadataPath {
			return http.StatusOK, "application/json", ds.goodMetadata(ds.URL, "")
		}
		return http.StatusNotFound, "text/plain", "not found"
	}
	t.Cleanup(ds.Close)
	return ds
}

// goodMetadata returns metadata of issuer with the server's introspection
// endpoint and, if set, the members extra (",..." without braces).
func (ds *discoServer) goodMetadata(issuer, extra string) string {
	return fmt.Sprintf(`{"issuer":%q,"introspection_endpoint":%q,"token_endpoint":%q%s}`,
		issuer, ds.URL+"/introspect", ds.URL+"/token", extra)
}

// setMetadata replaces how metadata requests are answered.
func (ds *discoServer) setMetadata(f func(path string) (status int, contentType, body string)) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	ds.metadata = f
}

func (ds *discoServer) serve(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/introspect") {
		_ = r.ParseForm()
		ds.mu.Lock()
		ds.introPaths = append(ds.introPaths, r.URL.Path)
		ds.forms = append(ds.forms, r.PostForm)
		ds.auths = append(ds.auths, r.Header.Get("Authorization"))
		issuer := ds.issuer
		ds.mu.Unlock()
		ds.introN.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"active":true,"client_id":"app","scope":"read","iss":%q}`, issuer)
		return
	}
	ds.mu.Lock()
	ds.metaPaths = append(ds.metaPaths, r.URL.Path)
	answer := ds.metadata
	ds.mu.Unlock()
	ds.metaN.Add(1)
	if r.Method != http.MethodGet || r.Header.Get("Accept") != "application/json" || r.Header.Get("Authorization") != "" {
		http.Error(w, "want a GET that accepts JSON, without credentials", http.StatusTeapot)
		return
	}
	status, ct, body := answer(r.URL.Path)
	if status >= 300 && status < 400 {
		http.Redirect(w, r, body, status)
		return
	}
	if ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// requestedMetadata returns the paths of the metadata requests so far.
func (ds *discoServer) requestedMetadata() []string {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	return append([]string(nil), ds.metaPaths...)
}

// newDiscoveryVerifier builds a verifier that discovers its endpoint from
// issuer, with the client secret "secret" of client "rs", after edit
// changes the settings.
func newDiscoveryVerifier(t *testing.T, issuer string, clock *fakeClock, edit func(*Settings)) *Verifier {
	t.Helper()
	s := Settings{Issuer: issuer, ClientID: "rs", ClientSecret: "secret"}
	if clock != nil {
		s.Now = clock.Now
	}
	if edit != nil {
		edit(&s)
	}
	v, err := NewVerifier(s)
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	return v
}

// waitForFetch waits until the fetch of the metadata started last has
// ended.
func waitForFetch(t *testing.T, v *Verifier) {
	t.Helper()
	v.disc.mu.Lock()
	f := v.disc.last
	v.disc.mu.Unlock()
	require.NotNil(t, f, "no fetch was started")
	select {
	case <-f.ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the fetch of the metadata did not end")
	}
}

// waitForNoFetch waits until no fetch of the metadata runs, in any
// verifier: it polls the goroutines, as a fetch left behind after its
// deadline is no longer tracked.
func waitForNoFetch(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool { return goroutinesIn("(*Verifier).runFetch") == 0 },
		10*time.Second, time.Millisecond)
}

// goroutinesIn counts the goroutines whose stack holds fn.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), fn+"(")
}

// discoveryFailure returns err as an *IntrospectionError of kind
// FailureDiscovery, failing the test if it is not one.
func discoveryFailure(t *testing.T, err error) *IntrospectionError {
	t.Helper()
	require.ErrorIs(t, err, ErrIntrospectionFailed)
	ie, ok := errors.AsType[*IntrospectionError](err)
	require.True(t, ok, "%v", err)
	require.Equal(t, FailureDiscovery, ie.Kind, "%v", err)
	return ie
}

// TestDiscoveryFromTheIssuerAlone shows that Settings.Issuer without an
// IntrospectionURL finds the endpoint in the issuer's metadata: NewVerifier
// sends nothing, the first Verify fetches the metadata once and introspects
// at the endpoint it names, and IntrospectionURL and ClientAuthMethod tell
// what is in use.
func TestDiscoveryFromTheIssuerAlone(t *testing.T) {
	ds := newDiscoServer(t)
	v := newDiscoveryVerifier(t, ds.URL, nil, nil)
	assert.Zero(t, ds.metaN.Load(), "NewVerifier does no I/O")
	assert.Empty(t, v.IntrospectionURL())
	assert.Empty(t, v.ClientAuthMethod())

	for range 3 {
		tok, err := v.Verify(context.Background(), "tok-1")
		require.NoError(t, err)
		assert.Equal(t, "app", tok.ClientID)
	}
	assert.EqualValues(t, 1, ds.metaN.Load(), "the metadata is fetched once")
	assert.EqualValues(t, 3, ds.introN.Load())
	assert.Equal(t, ds.URL+"/introspect", v.IntrospectionURL())
	assert.Equal(t, ClientSecretBasic, v.ClientAuthMethod(), "the only method the secret allows that the server lists (it lists none)")
	assert.Equal(t, []string{oauthMetadataPath}, ds.requestedMetadata())
}

// TestMetadataURLs shows the order of the metadata URLs: RFC 8414's with
// the issuer's path inserted after the well-known path, OpenID Connect's
// appended to the issuer, and for an issuer with a path OpenID Connect's
// inserted too. A terminating "/" of the path is dropped.
func TestMetadataURLs(t *testing.T) {
	tests := []struct {
		issuer string
		want   []string
	}{
		{"https://as.example.com", []string{
			"https://as.example.com/.well-known/oauth-authorization-server",
			"https://as.example.com/.well-known/openid-configuration"}},
		{"https://as.example.com/", []string{
			"https://as.example.com/.well-known/oauth-authorization-server",
			"https://as.example.com/.well-known/openid-configuration"}},
		{"https://as.example.com:8443/realms/mcp", []string{
			"https://as.example.com:8443/.well-known/oauth-authorization-server/realms/mcp",
			"https://as.example.com:8443/realms/mcp/.well-known/openid-configuration",
			"https://as.example.com:8443/.well-known/openid-configuration/realms/mcp"}},
		{"https://as.example.com/tenant/", []string{
			"https://as.example.com/.well-known/oauth-authorization-server/tenant",
			"https://as.example.com/tenant/.well-known/openid-configuration",
			"https://as.example.com/.well-known/openid-configuration/tenant"}},
	}
	for _, tc := range tests {
		t.Run(tc.issuer, func(t *testing.T) {
			u, err := url.Parse(tc.issuer)
			require.NoError(t, err)
			assert.Equal(t, tc.want, metadataURLs(u))
		})
	}
}

// TestDiscoveryFallsThroughNotFound shows, against an issuer with a path,
// that a 404, 405, 400 or 410 at one metadata URL moves on to the next in
// order, until one serves the metadata; and that when none does, the
// error names every URL tried.
func TestDiscoveryFallsThroughNotFound(t *testing.T) {
	const tenant = "/tenant"
	inserted := oauthMetadataPath + tenant
	appended := tenant + openIDMetadataPath
	openIDInserted := openIDMetadataPath + tenant
	tests := []struct {
		name      string
		servedAt  string // the path that serves the metadata; "" for none
		notFound  int    // the status of the others
		wantPaths []string
	}{
		{"RFC 8414 path inserted", inserted, http.StatusNotFound, []string{inserted}},
		{"OpenID appended after a 404", appended, http.StatusNotFound, []string{inserted, appended}},
		{"OpenID inserted after two 404s", openIDInserted, http.StatusNotFound, []string{inserted, appended, openIDInserted}},
		{"after 405s", openIDInserted, http.StatusMethodNotAllowed, []string{inserted, appended, openIDInserted}},
		{"after 400s", appended, http.StatusBadRequest, []string{inserted, appended}},
		{"after 410s", appended, http.StatusGone, []string{inserted, appended}},
		{"nowhere", "", http.StatusNotFound, []string{inserted, appended, openIDInserted}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ds := newDiscoServer(t)
			issuer := ds.URL + tenant
			ds.issuer = issuer
			ds.setMetadata(func(path string) (int, string, string) {
				if path == tc.servedAt {
					return http.StatusOK, "application/json", ds.goodMetadata(issuer, "")
				}
				return tc.notFound, "application/json", `{"error":"not_found"}`
			})
			v := newDiscoveryVerifier(t, issuer, nil, nil)
			_, err := v.Verify(context.Background(), "tok")
			assert.Equal(t, tc.wantPaths, ds.requestedMetadata())
			if tc.servedAt != "" {
				require.NoError(t, err)
				assert.EqualValues(t, 1, ds.introN.Load())
				return
			}
			ie := discoveryFailure(t, err)
			assert.Equal(t, tc.notFound, ie.StatusCode)
			for _, p := range tc.wantPaths {
				assert.Contains(t, err.Error(), ds.URL+p)
			}
			assert.Zero(t, ds.introN.Load(), "no introspection request without an endpoint")
		})
	}
}

// TestDiscoveryRefusesUnusableMetadata shows each rule of the metadata: a
// document that breaks one fails the fetch with FailureDiscovery, and no
// introspection request is sent. A failure other than not-found ends the
// fetch at the first URL.
func TestDiscoveryRefusesUnusableMetadata(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("a redirect was followed to %s", r.URL)
	}))
	t.Cleanup(other.Close)
	tests := []struct {
		name   string
		answer func(ds *discoServer) (status int, contentType, body string)
		edit   func(*Settings)
		want   string // in the error
	}{
		{"issuer differs", func(ds *discoServer) (int, string, string) {
			return 200, "application/json", ds.goodMetadata("https://evil.example.com", "")
		}, nil, `names the issuer "https://evil.example.com"`},
		{"issuer differs by a trailing slash", func(ds *discoServer) (int, string, string) {
			return 200, "application/json", ds.goodMetadata(ds.URL+"/", "")
		}, nil, "names the issuer"},
		{"issuer differs in case", func(ds *discoServer) (int, string, string) {
			return 200, "application/json", ds.goodMetadata(strings.ToUpper(ds.URL[:4])+ds.URL[4:], "")
		}, nil, "names the issuer"},
		{"no issuer", func(ds *discoServer) (int, string, string) {
			return 200, "application/json", `{"introspection_endpoint":"` + ds.URL + `/introspect"}`
		}, nil, `no "issuer"`},
		{"no introspection endpoint", func(ds *discoServer) (int, string, string) {
			return 200, "application/json", `{"issuer":"` + ds.URL + `"}`
		}, nil, `no "introspection_endpoint"`},
		{"http endpoint to a host that is not loopback", func(ds *discoServer) (int, string, string) {
			return 200, "application/json", `{"issuer":"` + ds.URL + `","introspection_endpoint":"http://as.example.com/introspect"}`
		}, nil, `"http://as.example.com/introspect" uses http to a host that is not loopback`},
		{"endpoint of another scheme", func(ds *discoServer) (int, string, string) {
			return 200, "application/json", `{"issuer":"` + ds.URL + `","introspection_endpoint":"ftp://as.example.com/i"}`
		}, nil, "must use https"},
		{"endpoint with credentials", func(ds *discoServer) (int, string, string) {
			return 200, "application/json", `{"issuer":"` + ds.URL + `","introspection_endpoint":"https://u:p@as.example.com/i"}`
		}, nil, "must not carry credentials"},
		{"http mTLS alias to a host that is not loopback", func(ds *discoServer) (int, string, string) {
			return 200, "application/json", ds.goodMetadata(ds.URL, `,"mtls_endpoint_aliases":{"introspection_endpoint":"http://mtls.example.com/i"}`)
		}, nil, `mtls_endpoint_aliases introspection_endpoint "http://mtls.example.com/i" uses http`},
		{"redirect", func(ds *discoServer) (int, string, string) {
			return http.StatusFound, "", other.URL + oauthMetadataPath
		}, nil, "a redirect, which is not followed"},
		{"permanent redirect", func(ds *discoServer) (int, string, string) {
			return http.StatusPermanentRedirect, "", other.URL + oauthMetadataPath
		}, nil, "a redirect, which is not followed"},
		{"wrong Content-Type", func(ds *discoServer) (int, string, string) {
			return 200, "text/html", ds.goodMetadata(ds.URL, "")
		}, nil, `Content-Type "text/html"`},
		{"no Content-Type", func(ds *discoServer) (int, string, string) {
			return 200, "", ds.goodMetadata(ds.URL, "")
		}, nil, "Content-Type"},
		{"duplicate member", func(ds *discoServer) (int, string, string) {
			return 200, "application/json", `{"issuer":"` + ds.URL + `","introspection_endpoint":"` + ds.URL + `/introspect","introspection_endpoint":"https://evil.example.com/i"}`
		}, nil, `member "introspection_endpoint" more than once`},
		{"duplicate member, escaped", func(ds *discoServer) (int, string, string) {
			return 200, "application/json", `{"issuer":"` + ds.URL + `","\u0069ssuer":"` + ds.URL + `","introspection_endpoint":"` + ds.URL + `/introspect"}`
		}, nil, `member "issuer" more than once`},
		{"duplicate member in the mTLS aliases", func(ds *discoServer) (int, string, string) {
			return 200, "application/json", ds.goodMetadata(ds.URL, `,"mtls_endpoint_aliases":{"introspection_endpoint":"https://a/i","introspection_endpoint":"https://b/i"}`)
		}, nil, "more than once"},
		{"issuer not a string", func(ds *discoServer) (int, string, string) {
			return 200, "application/json", `{"issuer":1,"introspection_endpoint":"` + ds.URL + `/introspect"}`
		}, nil, `member "issuer" is not a JSON string`},
		{"methods not an array", func(ds *discoServer) (int, string, string) {
			return 200, "application/json", ds.goodMetadata(ds.URL, `,"introspection_endpoint_auth_methods_supported":"client_secret_basic"`)
		}, nil, "is not a JSON array"},
		{"method not a string", func(ds *discoServer) (int, string, string) {
			return 200, "application/json", ds.goodMetadata(ds.URL, `,"token_endpoint_auth_methods_supported":["client_secret_basic",1]`)
		}, nil, "holds a value that is not a JSON string"},
		{"mTLS aliases not an object", func(ds *discoServer) (int, string, string) {
			return 200, "application/json", ds.goodMetadata(ds.URL, `,"mtls_endpoint_aliases":["https://a/i"]`)
		}, nil, "is not a JSON object"},
		{"not an object", func(ds *discoServer) (int, string, string) {
			return 200, "application/json", `["` + ds.URL + `"]`
		}, nil, "not a JSON object"},
		{"not JSON", func(ds *discoServer) (int, string, string) {
			return 200, "application/json", `{"issuer":`
		}, nil, "not valid JSON"},
		{"not UTF-8", func(ds *discoServer) (int, string, string) {
			return 200, "application/json", "{\"issuer\":\"\xff\"}"
		}, nil, "not valid UTF-8"},
		{"server error", func(ds *discoServer) (int, string, string) {
			return http.StatusInternalServerError, "application/json", `{"error":"server_error"}`
		}, nil, "HTTP status 500"},
		{"forbidden", func(ds *discoServer) (int, string, string) {
			return http.StatusForbidden, "application/json", `{}`
		}, nil, "HTTP status 403"},
		{"configured method not listed", func(ds *discoServer) (int, string, string) {
			return 200, "application/json", ds.goodMetadata(ds.URL, `,"introspection_endpoint_auth_methods_supported":["client_secret_basic","private_key_jwt"]`)
		}, func(s *Settings) { s.ClientAuthMethod = ClientSecretPost }, "client_secret_post"},
		{"no listed method the credentials allow", func(ds *discoServer) (int, string, string) {
			return 200, "application/json", ds.goodMetadata(ds.URL, `,"introspection_endpoint_auth_methods_supported":["private_key_jwt","tls_client_auth"]`)
		}, nil, "private_key_jwt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ds := newDiscoServer(t)
			ds.setMetadata(func(path string) (int, string, string) { return tc.answer(ds) })
			v := newDiscoveryVerifier(t, ds.URL, nil, tc.edit)
			_, err := v.Verify(context.Background(), "tok")
			ie := discoveryFailure(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Positive(t, ie.RetryAfter, "the failure says when the next attempt is")
			assert.Zero(t, ds.introN.Load(), "no introspection request")
			assert.EqualValues(t, 1, ds.metaN.Load(), "the fetch ends at the first URL")
			assert.Empty(t, v.IntrospectionURL())
			require.Error(t, v.Discover(context.Background()), "Discover reports the same")
		})
	}
}

// TestDiscoveryConfiguredMethodNotListed shows that a ClientAuthMethod the
// server does not list fails with FailureDiscovery naming the method and
// the server's list, rather than with the server's 401.
func TestDiscoveryConfiguredMethodNotListed(t *testing.T) {
	ds := newDiscoServer(t)
	ds.setMetadata(func(string) (int, string, string) {
		return 200, "application/json", ds.goodMetadata(ds.URL,
			`,"introspection_endpoint_auth_methods_supported":["client_secret_basic","private_key_jwt"]`)
	})
	v := newDiscoveryVerifier(t, ds.URL, nil, func(s *Settings) {
		s.ClientAuthMethod = ClientSecretJWT
		s.ClientSecret = strings.Repeat("k", MinClientSecretJWTSize)
	})
	err := v.Discover(context.Background())
	discoveryFailure(t, err)
	for _, want := range []string{"client_secret_jwt", "client_secret_basic", "private_key_jwt"} {
		assert.Contains(t, err.Error(), want)
	}
	assert.NotContains(t, err.Error(), strings.Repeat("k", MinClientSecretJWTSize))
	_, err = v.Verify(context.Background(), "tok")
	discoveryFailure(t, err)
	assert.Zero(t, ds.introN.Load())
}

// TestDiscoveryTimeout shows that a metadata fetch is bounded by
// Settings.Timeout: a server that does not answer in time fails it with
// FailureDiscovery.
func TestDiscoveryTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	v := newDiscoveryVerifier(t, srv.URL, nil, func(s *Settings) { s.Timeout = 50 * time.Millisecond })
	_, err := v.Verify(context.Background(), "tok")
	discoveryFailure(t, err)
	assert.Contains(t, err.Error(), "no answer within 50ms")
}

// TestDiscoveryMetadataSizeBound shows the bound on the metadata document:
// maxBodySize bytes are read, one byte more fails the fetch.
func TestDiscoveryMetadataSizeBound(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
		ok   bool
	}{
		{"at the bound", maxBodySize, true},
		{"one byte past it", maxBodySize + 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := newDiscoServer(t)
			ds.setMetadata(func(string) (int, string, string) {
				doc := ds.goodMetadata(ds.URL, `,"x":""`)
				pad := tc.size - len(doc)
				require.Positive(t, pad)
				return 200, "application/json", strings.Replace(doc, `"x":""`, `"x":"`+strings.Repeat("a", pad)+`"`, 1)
			})
			v := newDiscoveryVerifier(t, ds.URL, nil, nil)
			err := v.Discover(context.Background())
			if tc.ok {
				require.NoError(t, err)
				assert.Equal(t, ds.URL+"/introspect", v.IntrospectionURL())
				return
			}
			discoveryFailure(t, err)
			assert.Contains(t, err.Error(), fmt.Sprintf("larger than %d bytes", maxBodySize))
		})
	}
}

// TestDiscoveryRetriesWithBackoff shows that a failed fetch is never kept
// for good: Verify fails at once, without a request, until the backoff
// ends (1 second, then 2, 4, ... up to 5 minutes, here without jitter),
// with RetryAfter the time left; the first call at its end fetches again;
// and the first good metadata ends the backoff.
func TestDiscoveryRetriesWithBackoff(t *testing.T) {
	clock := newFakeClock()
	ds := newDiscoServer(t)
	var failing atomic.Bool
	failing.Store(true)
	ds.setMetadata(func(path string) (int, string, string) {
		if failing.Load() {
			return http.StatusServiceUnavailable, "application/json", `{"error":"temporarily_unavailable"}`
		}
		return 200, "application/json", ds.goodMetadata(ds.URL, "")
	})
	v := newDiscoveryVerifier(t, ds.URL, clock, nil)
	v.disc.rand = func(n int64) int64 { return n / 2 } // no jitter

	ctx := context.Background()
	want := time.Second
	for fetches := int64(1); fetches <= 10; fetches++ {
		_, err := v.Verify(ctx, "tok")
		ie := discoveryFailure(t, err)
		assert.Equal(t, want, ie.RetryAfter, "fetch %d", fetches)
		assert.Equal(t, fetches, ds.metaN.Load(), "the failed fetch")

		clock.Advance(want - time.Millisecond)
		_, err = v.Verify(ctx, "tok")
		ie = discoveryFailure(t, err)
		assert.Equal(t, time.Millisecond, ie.RetryAfter)
		assert.ErrorIs(t, err, errDiscoveryBackoff)
		assert.Contains(t, err.Error(), "HTTP status 503", "the backoff error tells the last failure")
		assert.Equal(t, fetches, ds.metaN.Load(), "no fetch while backing off")

		clock.Advance(time.Millisecond)
		want = min(2*want, discoveryMaxBackoff)
	}
	failing.Store(false)
	_, err := v.Verify(ctx, "tok")
	require.NoError(t, err)
	assert.EqualValues(t, 11, ds.metaN.Load())
	assert.Equal(t, 0, v.disc.failures, "good metadata ends the backoff")
}

// TestDiscoveryBackoffBounds shows the backoff's intervals at the extremes
// of the jitter: never below 1 second nor above 5 minutes, doubling
// between.
func TestDiscoveryBackoffBounds(t *testing.T) {
	d := &discovery{}
	for _, tc := range []struct {
		failures int
		jitter   string
		want     time.Duration
	}{
		{0, "low", discoveryMinBackoff},
		{0, "high", discoveryMinBackoff + discoveryMinBackoff/breakerJitter},
		{1, "low", 2*time.Second - 2*time.Second/breakerJitter},
		{3, "high", 8*time.Second + 8*time.Second/breakerJitter},
		{8, "low", 256*time.Second - 256*time.Second/breakerJitter},
		{9, "low", discoveryMaxBackoff - discoveryMaxBackoff/breakerJitter},
		{9, "high", discoveryMaxBackoff},
		{60, "high", discoveryMaxBackoff},
	} {
		t.Run(fmt.Sprintf("%d failures, %s", tc.failures, tc.jitter), func(t *testing.T) {
			d.rand = func(n int64) int64 {
				if tc.jitter == "low" {
					return 0
				}
				return n - 1
			}
			assert.Equal(t, tc.want, d.backoff(tc.failures))
		})
	}
}

// TestDiscoveryRefreshKeepsLastGood shows the periodic refresh: metadata
// older than DiscoveryRefresh is fetched again in the background by the
// next Verify, which uses the metadata it has meanwhile; a failed refresh
// keeps the last good metadata (logged at warn) and is retried after the
// backoff; a good one replaces it.
func TestDiscoveryRefreshKeepsLastGood(t *testing.T) {
	clock := newFakeClock()
	ds := newDiscoServer(t)
	var mode atomic.Int32 // 0 good, 1 failing, 2 good with the mTLS-free second endpoint
	ds.setMetadata(func(path string) (int, string, string) {
		switch mode.Load() {
		case 1:
			return http.StatusInternalServerError, "text/plain", "down"
		case 2:
			return 200, "application/json", fmt.Sprintf(`{"issuer":%q,"introspection_endpoint":%q}`, ds.URL, ds.URL+"/v2/introspect")
		}
		return 200, "application/json", ds.goodMetadata(ds.URL, "")
	})
	var logs bytes.Buffer
	v := newDiscoveryVerifier(t, ds.URL, clock, func(s *Settings) {
		s.DiscoveryRefresh = time.Hour
		s.Logger = newTestLogger(&logs)
	})
	v.disc.rand = func(n int64) int64 { return n / 2 }
	ctx := context.Background()

	_, err := v.Verify(ctx, "tok")
	require.NoError(t, err)
	require.EqualValues(t, 1, ds.metaN.Load())

	clock.Advance(time.Hour - time.Second)
	_, err = v.Verify(ctx, "tok")
	require.NoError(t, err)
	assert.EqualValues(t, 1, ds.metaN.Load(), "younger than DiscoveryRefresh: no refresh")

	mode.Store(1)
	clock.Advance(time.Second)
	_, err = v.Verify(ctx, "tok")
	require.NoError(t, err, "the metadata in use answers while the refresh runs")
	waitForFetch(t, v)
	assert.EqualValues(t, 2, ds.metaN.Load(), "refreshed at DiscoveryRefresh")
	assert.Contains(t, logs.String(), "keeping the last good metadata")

	for range 3 {
		_, err = v.Verify(ctx, "tok")
		require.NoError(t, err, "the failed refresh kept the last good metadata")
	}
	assert.EqualValues(t, 2, ds.metaN.Load(), "no refresh while backing off")
	assert.Equal(t, ds.URL+"/introspect", v.IntrospectionURL())

	mode.Store(2)
	clock.Advance(time.Second)
	_, err = v.Verify(ctx, "tok")
	require.NoError(t, err)
	waitForFetch(t, v)
	assert.EqualValues(t, 3, ds.metaN.Load(), "retried after the backoff")
	assert.Equal(t, ds.URL+"/v2/introspect", v.IntrospectionURL(), "the good refresh replaced the metadata")
	_, err = v.Verify(ctx, "tok")
	require.NoError(t, err)
	ds.mu.Lock()
	last := ds.introPaths[len(ds.introPaths)-1]
	ds.mu.Unlock()
	assert.Equal(t, "/v2/introspect", last)
}

// TestDiscoveryConcurrentFirstCallsShareOneFetch shows that the first
// calls of Verify for many tokens at once, all waiting for the metadata,
// share one fetch of it.
func TestDiscoveryConcurrentFirstCallsShareOneFetch(t *testing.T) {
	const callers = 20
	ds := newDiscoServer(t)
	release := make(chan struct{})
	ds.setMetadata(func(path string) (int, string, string) {
		<-release
		return 200, "application/json", ds.goodMetadata(ds.URL, "")
	})
	var nowCalls atomic.Int64
	v := newDiscoveryVerifier(t, ds.URL, nil, func(s *Settings) {
		s.Now = func() time.Time { nowCalls.Add(1); return time.Now() }
	})
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			_, err := v.Verify(context.Background(), fmt.Sprintf("tok-%d", i))
			assert.NoError(t, err)
		})
	}
	// Each caller's shared request asks Settings.Now once, just before it
	// asks for the metadata; none can have it before the release.
	require.Eventually(t, func() bool { return nowCalls.Load() >= callers && ds.metaN.Load() >= 1 },
		10*time.Second, time.Millisecond)
	close(release)
	wg.Wait()
	assert.EqualValues(t, 1, ds.metaN.Load(), "one fetch for every caller")
	assert.EqualValues(t, callers, ds.introN.Load())
}

// TestDiscover shows Verifier.Discover: nil at once without discovery;
// it fetches even when the verifier holds metadata, and while it backs off
// after a failure; a failed Discover leaves the last good metadata in
// use; and it returns its context's error when that ends first.
func TestDiscover(t *testing.T) {
	ctx := context.Background()
	t.Run("without discovery", func(t *testing.T) {
		srv := jsonServer(t, 200, `{"active":true}`)
		v := newVerifier(t, srv.URL, nil, nil)
		assert.NoError(t, v.Discover(ctx))
		assert.Equal(t, srv.URL, v.IntrospectionURL())
		assert.Equal(t, ClientSecretBasic, v.ClientAuthMethod())
	})
	t.Run("fetches again, and a failure keeps the last good", func(t *testing.T) {
		clock := newFakeClock()
		ds := newDiscoServer(t)
		v := newDiscoveryVerifier(t, ds.URL, clock, nil)
		require.NoError(t, v.Discover(ctx))
		require.NoError(t, v.Discover(ctx))
		assert.EqualValues(t, 2, ds.metaN.Load(), "fetched although it holds metadata")

		ds.setMetadata(func(string) (int, string, string) {
			return 200, "application/json", ds.goodMetadata("https://other.example.com", "")
		})
		err := v.Discover(ctx)
		discoveryFailure(t, err)
		assert.Contains(t, err.Error(), "names the issuer")
		require.Error(t, v.Discover(ctx), "fetched while backing off")
		assert.EqualValues(t, 4, ds.metaN.Load())
		_, err = v.Verify(ctx, "tok")
		require.NoError(t, err, "the last good metadata stays in use")
		assert.Equal(t, ds.URL+"/introspect", v.IntrospectionURL())
	})
	t.Run("context ends first", func(t *testing.T) {
		ds := newDiscoServer(t)
		release := make(chan struct{})
		ds.setMetadata(func(string) (int, string, string) {
			<-release
			return 200, "application/json", ds.goodMetadata(ds.URL, "")
		})
		v := newDiscoveryVerifier(t, ds.URL, nil, nil)
		cctx, cancel := context.WithCancel(ctx)
		go func() {
			for ds.metaN.Load() == 0 {
				time.Sleep(time.Millisecond)
			}
			cancel()
		}()
		err := v.Discover(cctx)
		assert.ErrorIs(t, err, context.Canceled)
		close(release)
		waitForFetch(t, v)
		assert.Equal(t, ds.URL+"/introspect", v.IntrospectionURL(), "the fetch ran on without the caller")
	})
}

// TestDiscoveryMethodChosenAndLoggedOnce shows that with no
// ClientAuthMethod the method is chosen from the server's list by the
// credentials, and logged once at info level, however often the same
// metadata is fetched again.
func TestDiscoveryMethodChosenAndLoggedOnce(t *testing.T) {
	ds := newDiscoServer(t)
	ds.setMetadata(func(string) (int, string, string) {
		return 200, "application/json", ds.goodMetadata(ds.URL,
			`,"introspection_endpoint_auth_methods_supported":["private_key_jwt","client_secret_post"],"token_endpoint_auth_methods_supported":["client_secret_basic"]`)
	})
	var logs bytes.Buffer
	v := newDiscoveryVerifier(t, ds.URL, nil, func(s *Settings) { s.Logger = newTestLogger(&logs) })
	for range 3 {
		require.NoError(t, v.Discover(context.Background()))
	}
	_, err := v.Verify(context.Background(), "tok")
	require.NoError(t, err)
	assert.Equal(t, ClientSecretPost, v.ClientAuthMethod(), "the secret allows post and basic; the server lists post for introspection")
	assert.Equal(t, 1, strings.Count(logs.String(), "client authentication method chosen"), logs.String())
	assert.Contains(t, logs.String(), "method=client_secret_post")
	assert.Contains(t, logs.String(), "level=INFO")
	ds.mu.Lock()
	defer ds.mu.Unlock()
	assert.Equal(t, "secret", ds.forms[0].Get("client_secret"))
	assert.Empty(t, ds.auths[0])
}

// TestDiscoveryFallsBackToTokenEndpointMethods shows that metadata without
// introspection_endpoint_auth_methods_supported (as oidc-provider serves)
// is read by its token_endpoint_auth_methods_supported.
func TestDiscoveryFallsBackToTokenEndpointMethods(t *testing.T) {
	ds := newDiscoServer(t)
	ds.setMetadata(func(string) (int, string, string) {
		return 200, "application/json", ds.goodMetadata(ds.URL, `,"token_endpoint_auth_methods_supported":["client_secret_post"]`)
	})
	v := newDiscoveryVerifier(t, ds.URL, nil, nil)
	require.NoError(t, v.Discover(context.Background()))
	assert.Equal(t, ClientSecretPost, v.ClientAuthMethod())
}

// TestDiscoveryRefreshChoosesTheMethodAgain shows that a method the
// verifier chose itself (Settings.ClientAuthMethod empty) is chosen again
// at every fetch of the metadata: when the server stops listing
// private_key_jwt and lists client_secret_basic only, which the secret
// allows, the new metadata is good and client_secret_basic is used, rather
// than the refresh failing on a method no one configured.
func TestDiscoveryRefreshChoosesTheMethodAgain(t *testing.T) {
	clock := newFakeClock()
	ds := newDiscoServer(t)
	var keyDropped atomic.Bool
	ds.setMetadata(func(string) (int, string, string) {
		methods := `["private_key_jwt","client_secret_basic"]`
		if keyDropped.Load() {
			methods = `["client_secret_basic"]`
		}
		return http.StatusOK, "application/json",
			ds.goodMetadata(ds.URL, `,"introspection_endpoint_auth_methods_supported":`+methods)
	})
	v := newDiscoveryVerifier(t, ds.URL, clock, func(s *Settings) {
		s.PrivateKey = &SigningKey{Key: testECKey()}
		s.DiscoveryRefresh = time.Hour
	})
	ctx := context.Background()
	require.NoError(t, v.Discover(ctx))
	require.Equal(t, PrivateKeyJWT, v.ClientAuthMethod(), "precondition: the key is preferred while the server lists it")

	keyDropped.Store(true)
	assert.NoError(t, v.Discover(ctx), "the new metadata is good: it lists a method the credentials allow")
	assert.Equal(t, ClientSecretBasic, v.ClientAuthMethod(), "the method is chosen again from the new list")
}

// TestDiscoveryOmittedMethodListsMeanClientSecretBasic shows that metadata
// listing neither introspection_endpoint_auth_methods_supported nor
// token_endpoint_auth_methods_supported is read by RFC 8414 §2's default
// for the omitted list, client_secret_basic: a verifier holding a secret
// and a key chooses it, not private_key_jwt.
func TestDiscoveryOmittedMethodListsMeanClientSecretBasic(t *testing.T) {
	ds := newDiscoServer(t) // good metadata with neither list
	v := newDiscoveryVerifier(t, ds.URL, nil, func(s *Settings) {
		s.PrivateKey = &SigningKey{Key: testECKey()}
	})
	require.NoError(t, v.Discover(context.Background()))
	assert.Equal(t, ClientSecretBasic, v.ClientAuthMethod(),
		"RFC 8414 §2: an omitted token_endpoint_auth_methods_supported means client_secret_basic")
}

// TestDiscoveryChoiceHonoursTheServersSigningAlgorithms shows that the
// choice of private_key_jwt follows
// introspection_endpoint_auth_signing_alg_values_supported (RFC 8414 §2):
// with a server that lists private_key_jwt and client_secret_basic but
// takes RS256 assertions only, a verifier holding an ES256 key and a
// secret chooses client_secret_basic, whose requests the server takes.
func TestDiscoveryChoiceHonoursTheServersSigningAlgorithms(t *testing.T) {
	ds := newDiscoServer(t)
	ds.setMetadata(func(string) (int, string, string) {
		return http.StatusOK, "application/json", ds.goodMetadata(ds.URL,
			`,"introspection_endpoint_auth_methods_supported":["private_key_jwt","client_secret_basic"]`+
				`,"introspection_endpoint_auth_signing_alg_values_supported":["RS256"]`)
	})
	v := newDiscoveryVerifier(t, ds.URL, nil, func(s *Settings) {
		s.PrivateKey = &SigningKey{Key: testECKey()} // ES256
	})
	require.NoError(t, v.Discover(context.Background()))
	assert.Equal(t, ClientSecretBasic, v.ClientAuthMethod(),
		"an ES256 key cannot make an assertion the server takes (it lists RS256 only)")
}

// TestDiscoverySelfSignedCertificateChoosesSelfSignedMethod shows that a
// verifier whose TLSClientCertificate is self-signed chooses
// self_signed_tls_client_auth (RFC 8705 §2.2) when the server lists both
// TLS methods: tls_client_auth (§2.1) has the server check the
// certificate against the authorities it trusts, which a self-signed
// certificate does not chain to.
func TestDiscoverySelfSignedCertificateChoosesSelfSignedMethod(t *testing.T) {
	cert := selfSignedCertificate(t, "rs")
	require.NoError(t, cert.Leaf.CheckSignatureFrom(cert.Leaf), "precondition: the certificate is self-signed")
	ds := newDiscoServer(t)
	ds.setMetadata(func(string) (int, string, string) {
		return http.StatusOK, "application/json", ds.goodMetadata(ds.URL,
			fmt.Sprintf(`,"introspection_endpoint_auth_methods_supported":[%q,%q]`, TLSClientAuth, SelfSignedTLSClientAuth))
	})
	v := newDiscoveryVerifier(t, ds.URL, nil, func(s *Settings) {
		s.ClientSecret = ""
		s.TLSClientCertificate = &cert
	})
	require.NoError(t, v.Discover(context.Background()))
	assert.Equal(t, SelfSignedTLSClientAuth, v.ClientAuthMethod())
}

// TestDiscoveryCacheNamespace shows that with discovery the cache keys come
// from the issuer and the client id: replicas of one resource server
// share them, another client or issuer does not, an IntrospectionURL equal
// to the issuer does not either, and a refresh that moves the endpoint
// keeps them.
func TestDiscoveryCacheNamespace(t *testing.T) {
	ds := newDiscoServer(t)
	a := newDiscoveryVerifier(t, ds.URL, nil, nil)
	b := newDiscoveryVerifier(t, ds.URL, nil, nil)
	otherClient := newDiscoveryVerifier(t, ds.URL, nil, func(s *Settings) { s.ClientID = "rs2" })
	otherIssuer := newDiscoveryVerifier(t, ds.URL+"/tenant", nil, nil)
	configured := newVerifier(t, ds.URL, nil, func(s *Settings) { s.ClientID = "rs" })
	key := a.CacheKey("tok")
	assert.Equal(t, key, b.CacheKey("tok"))
	assert.NotEqual(t, key, otherClient.CacheKey("tok"))
	assert.NotEqual(t, key, otherIssuer.CacheKey("tok"))
	assert.NotEqual(t, key, configured.CacheKey("tok"))

	require.NoError(t, a.Discover(context.Background()))
	ds.setMetadata(func(string) (int, string, string) {
		return 200, "application/json", fmt.Sprintf(`{"issuer":%q,"introspection_endpoint":%q}`, ds.URL, ds.URL+"/v2/introspect")
	})
	require.NoError(t, a.Discover(context.Background()))
	require.Equal(t, ds.URL+"/v2/introspect", a.IntrospectionURL())
	assert.Equal(t, key, a.CacheKey("tok"), "stable across refreshes")
}

// TestDiscoveryFailureServesStaleAndSparesTheBreaker shows how the other
// outage mechanisms read a discovery failure: stale-if-error takes it for
// the server not answering, and the circuit breaker, which counts
// introspection requests, ignores it.
func TestDiscoveryFailureServesStaleAndSparesTheBreaker(t *testing.T) {
	for _, status := range []int{0, 403, 404, 500} {
		ie := &IntrospectionError{Kind: FailureDiscovery, StatusCode: status}
		assert.True(t, serverCouldNotAnswer(ie), "status %d", status)
		assert.Equal(t, neutral, outcomeOf(ie), "status %d", status)
	}
}

// TestDiscoveryFailureServesStaleFromASharedCache shows StaleIfError
// over a discovery failure: a replica that cannot fetch the issuer's
// metadata gives the verdict of an answer another replica stored in the
// shared Cache, ended less than StaleIfError ago, flagged Stale, and sends
// no introspection request.
func TestDiscoveryFailureServesStaleFromASharedCache(t *testing.T) {
	clock := newFakeClock()
	as := newAS(t, clock)
	shared := newMapCache(clock.Now)
	replica := func(client *http.Client) *Verifier {
		return newDiscoveryVerifier(t, as.Issuer, clock, func(s *Settings) {
			s.ClientID, s.ClientSecret = introspectiontest.ClientID, introspectiontest.ClientSecret
			s.CacheTTL = staleTestTTL
			s.StaleIfError = staleTestWindow
			s.Cache = shared
			s.HTTPClient = client
		})
	}
	tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Lifetime: time.Hour})
	fill(t, replica(nil), tok)
	require.EqualValues(t, 1, as.Requests())

	var metadataRequests atomic.Int64
	b := replica(&http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
		metadataRequests.Add(1)
		return nil, errors.New("connection refused")
	})})
	clock.Advance(staleTestTTL) // the stored answer has ended
	got, err := b.Verify(context.Background(), tok)
	require.NoError(t, err)
	assert.True(t, got.Stale)
	assert.Equal(t, "alice", got.Subject)
	assert.Positive(t, metadataRequests.Load(), "the replica tried to fetch the metadata")
	assert.Empty(t, b.IntrospectionURL(), "and found none")
	assert.EqualValues(t, 1, as.Requests(), "no introspection request")
	st := b.Stats()
	assert.EqualValues(t, 1, st.StaleServed)
	assert.EqualValues(t, 1, st.Failures[FailureDiscovery])
}

// TestDiscoveryFailureCountedInStats shows that a failed fetch counts in
// Stats.Failures under FailureDiscovery, once per Verify that fails.
func TestDiscoveryFailureCountedInStats(t *testing.T) {
	ds := newDiscoServer(t)
	ds.setMetadata(func(string) (int, string, string) { return 500, "text/plain", "down" })
	v := newDiscoveryVerifier(t, ds.URL, nil, nil)
	for range 3 {
		_, err := v.Verify(context.Background(), "tok")
		discoveryFailure(t, err)
	}
	st := v.Stats()
	assert.EqualValues(t, 3, st.Failures[FailureDiscovery])
	assert.EqualValues(t, 1, ds.metaN.Load())
}

// TestDiscoveryLogsFailuresOnce shows that a failed fetch is logged once
// at warn level, and the calls that fail at once while the verifier backs
// off are not logged again.
func TestDiscoveryLogsFailuresOnce(t *testing.T) {
	ds := newDiscoServer(t)
	ds.setMetadata(func(string) (int, string, string) { return 500, "text/plain", "down" })
	var logs bytes.Buffer
	v := newDiscoveryVerifier(t, ds.URL, nil, func(s *Settings) { s.Logger = newTestLogger(&logs) })
	for range 5 {
		_, err := v.Verify(context.Background(), "tok")
		discoveryFailure(t, err)
	}
	assert.Equal(t, 1, strings.Count(logs.String(), "fetching the issuer's metadata failed"), logs.String())
	assert.Equal(t, 0, strings.Count(logs.String(), "request failed"), logs.String())
}

// TestDiscoveryMTLSAlias shows that the TLS client authentication methods
// send introspection requests to mtls_endpoint_aliases'
// introspection_endpoint, and the other methods to introspection_endpoint.
func TestDiscoveryMTLSAlias(t *testing.T) {
	ds := newDiscoServer(t)
	ds.setMetadata(func(string) (int, string, string) {
		return 200, "application/json", ds.goodMetadata(ds.URL, `,"mtls_endpoint_aliases":{"introspection_endpoint":"`+ds.URL+`/mtls/introspect","token_endpoint":"`+ds.URL+`/mtls/token"}`)
	})
	tls := newDiscoveryVerifier(t, ds.URL, nil, func(s *Settings) {
		s.ClientSecret = ""
		s.ClientAuthMethod = TLSClientAuth
		s.HTTPClient = &http.Client{}
	})
	_, err := tls.Verify(context.Background(), "tok")
	require.NoError(t, err)
	assert.Equal(t, ds.URL+"/mtls/introspect", tls.IntrospectionURL())

	basic := newDiscoveryVerifier(t, ds.URL, nil, nil)
	_, err = basic.Verify(context.Background(), "tok")
	require.NoError(t, err)
	assert.Equal(t, ds.URL+"/introspect", basic.IntrospectionURL())

	ds.mu.Lock()
	defer ds.mu.Unlock()
	assert.Equal(t, []string{"/mtls/introspect", "/introspect"}, ds.introPaths)
	assert.Equal(t, "rs", ds.forms[0].Get("client_id"), "tls_client_auth names the client in the form")
	assert.Empty(t, ds.auths[0])
}

// TestCloseStopsTheMetadataFetch shows that Close stops a fetch of the
// metadata running in the background and waits for its goroutine: no
// goroutine of the verifier is left. The server holds the request until
// the client goes away or the test ends, so that a Close that waited for
// the server rather than stopping the fetch would return before the
// fetch ended.
func TestCloseStopsTheMetadataFetch(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	v, err := NewVerifier(Settings{Issuer: srv.URL, ClientID: "rs", ClientSecret: "secret"})
	require.NoError(t, err)
	f, _, _ := v.startFetch(context.Background(), time.Now(), true)
	<-arrived
	require.NoError(t, v.Close())
	select {
	case <-f.ended:
	default:
		t.Fatal("Close returned before the fetch's goroutine ended")
	}
	select {
	case <-f.done:
		require.NotNil(t, f.err)
		assert.Contains(t, f.err.Error(), "context canceled", "Close stopped the fetch")
	default:
		t.Fatal("the fetch has no result")
	}
	v.disc.mu.Lock()
	failures := v.disc.failures
	v.disc.mu.Unlock()
	assert.Zero(t, failures, "a fetch stopped by Close starts no backoff")
	close(release)
	srv.Close()
	goleak.VerifyNone(t, ignore)
}

// TestDiscoveryHungFetchIsLeft has a caller's transport ignore the
// context of a metadata fetch: its callers stop waiting at the fetch's
// deadline (Settings.Timeout and a second) with FailureDiscovery, the next
// call starts a new fetch that succeeds, and the hung one's late answer
// changes nothing.
func TestDiscoveryHungFetchIsLeft(t *testing.T) {
	ds := newDiscoServer(t)
	release := make(chan struct{})
	var calls atomic.Int64
	transport := ds.Client().Transport
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if calls.Add(1) == 1 {
			<-release // ignores r.Context()
			return nil, errors.New("late")
		}
		return transport.RoundTrip(r)
	})}
	v := newDiscoveryVerifier(t, ds.URL, nil, func(s *Settings) {
		s.HTTPClient = client
		s.Timeout = 50 * time.Millisecond
	})
	_, err := v.Verify(context.Background(), "tok")
	ie := discoveryFailure(t, err)
	assert.ErrorIs(t, ie, errHung)
	_, err = v.Verify(context.Background(), "tok")
	require.NoError(t, err, "a new fetch replaced the hung one")
	close(release)
	waitForNoFetch(t)
	assert.Equal(t, ds.URL+"/introspect", v.IntrospectionURL())
	v.disc.mu.Lock()
	defer v.disc.mu.Unlock()
	assert.Zero(t, v.disc.failures, "the late failure is dropped")
}

// TestMetadataDocumentStrings shows how members are read: null is taken
// as absent, an empty list is kept as a list that names no method, and a
// list absent from both members is nil.
func TestMetadataDocumentStrings(t *testing.T) {
	m, err := decodeMetadata([]byte(`{"issuer":"https://as","introspection_endpoint":"https://as/i","introspection_endpoint_auth_methods_supported":null,"token_endpoint_auth_methods_supported":[],"mtls_endpoint_aliases":null}`))
	require.NoError(t, err)
	assert.NotNil(t, m.authMethods)
	assert.Empty(t, m.authMethods)
	assert.Empty(t, m.mtlsIntrospectionEndpoint)

	m, err = decodeMetadata([]byte(`{"issuer":"https://as","introspection_endpoint":"https://as/i"}`))
	require.NoError(t, err)
	assert.Nil(t, m.authMethods)

	_, err = decodeMetadata([]byte(`{"issuer":null,"introspection_endpoint":"https://as/i"}`))
	assert.EqualError(t, err, `metadata has no "issuer"`)
	_, err = decodeMetadata([]byte(`null`))
	assert.EqualError(t, err, "metadata is not a JSON object")
	raw, _ := json.Marshal(map[string]any{"issuer": "https://as", "introspection_endpoint": 7})
	_, err = decodeMetadata(raw)
	assert.ErrorContains(t, err, `"introspection_endpoint" is not a JSON string`)
}

// FuzzDecodeMetadata checks that reading a metadata document never panics,
// and that a document is accepted exactly when, by an independent reading,
// it is valid UTF-8 holding a JSON object with no member name twice in any
// object, a non-empty string issuer and introspection_endpoint, the two
// method lists and the two signing algorithm lists arrays of strings and
// mtls_endpoint_aliases an object whose introspection_endpoint is a
// string (each of them null or absent as well); and that what is read is
// what the document holds. The endpoints
// that checkMetadata then accepts are https, or http to a loopback host.
func FuzzDecodeMetadata(f *testing.F) {
	for _, seed := range []string{
		`{"issuer":"https://as","introspection_endpoint":"https://as/i"}`,
		`{"issuer":"https://as","introspection_endpoint":"http://127.0.0.1/i","introspection_endpoint_auth_methods_supported":["private_key_jwt"]}`,
		`{"issuer":"https://as","introspection_endpoint":"https://as/i","token_endpoint_auth_methods_supported":["client_secret_basic"],"introspection_endpoint_auth_methods_supported":null}`,
		`{"issuer":"https://as","introspection_endpoint":"https://as/i","mtls_endpoint_aliases":{"introspection_endpoint":"https://mtls.as/i"}}`,
		`{"issuer":"https://as","introspection_endpoint":"https://as/i","issuer":"https://evil"}`,
		`{"issuer":"https://as","introspection_endpoint":"https://as/i","x":{"a":1,"\u0061":2}}`,
		`{"issuer":1,"introspection_endpoint":"https://as/i"}`,
		`{"issuer":"https://as","introspection_endpoint":"http://as.example.com/i"}`,
		`{"issuer":"https://as","introspection_endpoint":"https://as/i","token_endpoint_auth_methods_supported":[null]}`,
		`["https://as"]`,
		`null`,
		`{"issuer":"https://as","introspection_endpoint":"https://as/i","x":1e999}`,
		`{"issuer":"https://as","introspection_endpoint":"https://as/i","token_endpoint_auth_signing_alg_values_supported":"RS256"}`,
		`{"issuer":"https://as","introspection_endpoint":"https://as/i","introspection_endpoint_auth_signing_alg_values_supported":["ES256"],"token_endpoint_auth_signing_alg_values_supported":["RS256"]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := decodeMetadata(body)
		want, why := independentMetadata(body)
		if err != nil {
			if m != nil {
				t.Fatal("metadata and an error")
			}
			if why == "" {
				t.Fatalf("refused (%v) a document the independent reading accepts", err)
			}
			return
		}
		if why != "" {
			t.Fatalf("accepted a document the independent reading refuses: %s", why)
		}
		if m.issuer != want.issuer || m.introspectionEndpoint != want.introspectionEndpoint ||
			m.mtlsIntrospectionEndpoint != want.mtlsIntrospectionEndpoint ||
			fmt.Sprintf("%#v", m.authMethods) != fmt.Sprintf("%#v", want.authMethods) ||
			fmt.Sprintf("%#v", m.authSigningAlgs) != fmt.Sprintf("%#v", want.authSigningAlgs) {
			t.Fatalf("read %#v, want %#v", m, want)
		}
		eps, err := checkMetadata(m, m.issuer, false)
		if err != nil {
			return
		}
		for _, u := range []*url.URL{eps.introspection, eps.mtls} {
			if u == nil {
				continue
			}
			if u.Scheme != "https" && (u.Scheme != "http" || !isLoopback(u.Hostname())) || u.User != nil || u.Host == "" {
				t.Fatalf("accepted endpoint %q", u)
			}
		}
	})
}

// independentMetadata reads body as decodeMetadata should, with other
// means: what it holds, or why it is refused.
func independentMetadata(body []byte) (*metadata, string) {
	var doc any
	if !utf8.Valid(body) || !json.Valid(body) {
		return nil, "not JSON in UTF-8"
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // a number no float64 holds is still JSON
	if dec.Decode(&doc) != nil {
		return nil, "not JSON"
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return nil, "not an object"
	}
	if _, dup, _ := independentScan(body); dup {
		return nil, "a duplicate member"
	}
	m := &metadata{}
	str := func(o map[string]any, name string, dst *string) bool {
		switch x := o[name].(type) {
		case nil:
			return true
		case string:
			*dst = x
			return true
		}
		return false
	}
	list := func(name string) ([]string, bool) {
		switch x := obj[name].(type) {
		case nil:
			return nil, true
		case []any:
			out := []string{}
			for _, e := range x {
				s, ok := e.(string)
				if !ok {
					return nil, false
				}
				out = append(out, s)
			}
			return out, true
		}
		return nil, false
	}
	if !str(obj, "issuer", &m.issuer) || !str(obj, "introspection_endpoint", &m.introspectionEndpoint) {
		return nil, "a member of another type"
	}
	if m.issuer == "" || m.introspectionEndpoint == "" {
		return nil, "a required member missing"
	}
	intro, ok1 := list("introspection_endpoint_auth_methods_supported")
	token, ok2 := list("token_endpoint_auth_methods_supported")
	introAlgs, ok3 := list("introspection_endpoint_auth_signing_alg_values_supported")
	tokenAlgs, ok4 := list("token_endpoint_auth_signing_alg_values_supported")
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return nil, "a list of another type"
	}
	m.authMethods = intro
	if intro == nil {
		m.authMethods = token
	}
	m.authSigningAlgs = introAlgs
	if introAlgs == nil {
		m.authSigningAlgs = tokenAlgs
	}
	switch x := obj["mtls_endpoint_aliases"].(type) {
	case nil:
	case map[string]any:
		if !str(x, "introspection_endpoint", &m.mtlsIntrospectionEndpoint) {
			return nil, "an alias of another type"
		}
	default:
		return nil, "aliases of another type"
	}
	return m, ""
}

// TestMiddlewareAnswersDiscoveryFailureWith503 shows what a client of the
// MCP server sees while the issuer's metadata cannot be had: 503 with the
// time to the next attempt as Retry-After, not a refusal of its token.
func TestMiddlewareAnswersDiscoveryFailureWith503(t *testing.T) {
	clock := newFakeClock()
	ds := newDiscoServer(t)
	ds.setMetadata(func(string) (int, string, string) { return 500, "text/plain", "down" })
	v := newDiscoveryVerifier(t, ds.URL, clock, nil)
	v.disc.rand = func(n int64) int64 { return n / 2 }
	h := RequireBearerToken(v, nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("the handler ran")
	}))
	for _, want := range []string{"1", "1"} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "https://mcp.example.com/mcp", nil)
		req.Header.Set("Authorization", "Bearer tok")
		h.ServeHTTP(rec, req)
		assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
		assert.Equal(t, want, rec.Header().Get("Retry-After"))
		assert.NotContains(t, rec.Header().Get("WWW-Authenticate"), "invalid_token")
	}
	assert.EqualValues(t, 1, ds.metaN.Load())
}

// TestDiscoveryAgainstTheTestServer configures verifiers with the issuer of
// an introspectiontest server alone, which checks client assertions fully
// (signature, claims, a jti never seen before): each method the server
// lists is found and accepted, the method the credentials allow best is
// chosen when none is set, and a key the server does not know for the
// client gets ErrIntrospectionFailed with invalid_client.
func TestDiscoveryAgainstTheTestServer(t *testing.T) {
	as := newAS(t, nil)
	longSecret := strings.Repeat("s", MinClientSecretJWTSize)
	as.AddClient("jwt-client", longSecret)
	as.AddKeyClient("ec-client", testECKey().Public())
	as.AddKeyClient("rsa-client", testRSAKey().Public())
	other := testEdKey()
	tests := []struct {
		name       string
		edit       func(*Settings)
		wantMethod ClientAuthMethod
		wantCode   string // the server's error, "" when accepted
	}{
		{"chosen by the secret", func(s *Settings) {
			s.ClientID, s.ClientSecret = introspectiontest.ClientID, introspectiontest.ClientSecret
		}, ClientSecretBasic, ""},
		{"client_secret_post", func(s *Settings) {
			s.ClientID, s.ClientSecret = introspectiontest.ClientID, introspectiontest.ClientSecret
			s.ClientAuthMethod = ClientSecretPost
		}, ClientSecretPost, ""},
		{"basic chosen for a long secret too", func(s *Settings) { s.ClientID = "jwt-client"; s.ClientSecret = longSecret }, ClientSecretBasic, ""},
		{"client_secret_jwt configured", func(s *Settings) {
			s.ClientID, s.ClientSecret, s.ClientAuthMethod = "jwt-client", longSecret, ClientSecretJWT
		}, ClientSecretJWT, ""},
		{"private_key_jwt ES256, chosen", func(s *Settings) {
			s.ClientID = "ec-client"
			s.ClientSecret = ""
			s.PrivateKey = &SigningKey{Key: testECKey()}
		}, PrivateKeyJWT, ""},
		{"private_key_jwt RS256", func(s *Settings) {
			s.ClientID = "rsa-client"
			s.ClientSecret = ""
			s.ClientAuthMethod = PrivateKeyJWT
			s.PrivateKey = &SigningKey{Key: testRSAKey()}
		}, PrivateKeyJWT, ""},
		{"a key the server does not know", func(s *Settings) {
			s.ClientID = "ec-client"
			s.ClientSecret = ""
			s.PrivateKey = &SigningKey{Key: other}
		}, PrivateKeyJWT, "invalid_client"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := newDiscoveryVerifier(t, as.Issuer, nil, tc.edit)
			tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{"read"}})
			for range 3 { // a new assertion each time: a repeated jti is refused
				got, err := v.Verify(context.Background(), tok)
				if tc.wantCode != "" {
					require.ErrorIs(t, err, ErrIntrospectionFailed)
					ie, ok := errors.AsType[*IntrospectionError](err)
					require.True(t, ok)
					assert.Equal(t, tc.wantCode, ie.ErrorCode)
					break
				}
				require.NoError(t, err)
				assert.Equal(t, "alice", got.Subject)
			}
			assert.Equal(t, tc.wantMethod, v.ClientAuthMethod())
			assert.Equal(t, as.IntrospectionURL, v.IntrospectionURL())
		})
	}
}

// TestDiscoveryKeepsTheIssuerCheck shows that with discovery the issuer
// is still the iss check: a token whose answer names another issuer, or
// an empty one, is refused with ErrIssuerMismatch, and one naming the issuer is
// accepted.
func TestDiscoveryKeepsTheIssuerCheck(t *testing.T) {
	as := newAS(t, nil)
	v, err := NewVerifier(Settings{Issuer: as.Issuer, ClientID: introspectiontest.ClientID, ClientSecret: introspectiontest.ClientSecret})
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	for _, tc := range []struct {
		name    string
		extra   map[string]any
		wantErr error
	}{
		{"the issuer", nil, nil},
		{"another issuer", map[string]any{"iss": "https://other.example"}, ErrIssuerMismatch},
		{"an empty issuer", map[string]any{"iss": ""}, ErrIssuerMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), as.Issue(introspectiontest.TokenOptions{Extra: tc.extra}))
			if tc.wantErr == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.wantErr)
		})
	}
}
