package introspection

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Discovery: with Settings.IntrospectionURL empty, the verifier finds the
// introspection endpoint in the metadata of Settings.Issuer (RFC 8414 §3,
// OpenID Connect Discovery 1.0 §4). Nothing is fetched by NewVerifier: the
// first Verify that misses the cache fetches it, or [Verifier.Discover].
// Concurrent fetches are one. A failed fetch is tried again after a backoff
// (discoveryMinBackoff doubling to discoveryMaxBackoff, jittered), never
// cached for good; good metadata older than Settings.DiscoveryRefresh is
// fetched again in the background by the next Verify that needs it, and a
// failed refresh keeps it.

// The backoff after failed fetches of the metadata: discoveryMinBackoff
// after the first, doubled after each further one up to
// discoveryMaxBackoff, each varied by up to 1/breakerJitter either way
// within those bounds.
const (
	discoveryMinBackoff = time.Second
	discoveryMaxBackoff = 5 * time.Minute
)

// The well-known paths of the metadata: RFC 8414 §3's and OpenID Connect
// Discovery 1.0 §4's.
const (
	oauthMetadataPath  = "/.well-known/oauth-authorization-server"
	openIDMetadataPath = "/.well-known/openid-configuration"
)

// metadataURLs returns the URLs of issuer's metadata in the order they are
// tried: RFC 8414 §3.1's, the well-known path inserted between the host
// and the issuer's path (without its terminating "/"); OpenID Connect
// Discovery 1.0 §4.1's, the path appended to the issuer; and for an issuer
// with a path, the OpenID path inserted as RFC 8414 §5 describes.
func metadataURLs(issuer *url.URL) []string {
	base := issuer.Scheme + "://" + issuer.Host
	path := strings.TrimSuffix(issuer.EscapedPath(), "/")
	urls := []string{base + oauthMetadataPath + path, base + path + openIDMetadataPath}
	if path != "" {
		urls = append(urls, base+openIDMetadataPath+path)
	}
	return urls
}

// metadata is what the verifier reads of an authorization server's
// metadata document.
type metadata struct {
	issuer                string
	introspectionEndpoint string
	// mtlsIntrospectionEndpoint is mtls_endpoint_aliases'
	// introspection_endpoint (RFC 8705 §5), or "".
	mtlsIntrospectionEndpoint string
	// authMethods is introspection_endpoint_auth_methods_supported, or
	// when the server omits it token_endpoint_auth_methods_supported; nil
	// when it lists neither.
	authMethods []string
	// authSigningAlgs is
	// introspection_endpoint_auth_signing_alg_values_supported, or when
	// the server omits it token_endpoint_auth_signing_alg_values_supported;
	// nil when it lists neither.
	authSigningAlgs []string
}

// decodeMetadata reads an RFC 8414 §2 metadata document strictly: valid
// UTF-8, a JSON object with no member name twice in any object, and each
// member the verifier reads of its type (null is taken as absent). The
// issuer and the introspection endpoint must be present; what they hold is
// checked by checkMetadata.
func decodeMetadata(body []byte) (*metadata, error) {
	if !utf8.Valid(body) {
		return nil, errors.New("metadata is not valid UTF-8")
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil {
		if _, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			return nil, errors.New("metadata is not a JSON object")
		}
		return nil, fmt.Errorf("metadata is not valid JSON: %w", err)
	}
	if members == nil {
		return nil, errors.New("metadata is not a JSON object")
	}
	if st := scanJSON(body); st.dup {
		return nil, fmt.Errorf("metadata has member %s more than once", metadataMemberName(st.duplicate))
	}
	m := &metadata{}
	var err error
	if m.issuer, err = metadataString(members, "issuer"); err != nil {
		return nil, err
	}
	if m.introspectionEndpoint, err = metadataString(members, "introspection_endpoint"); err != nil {
		return nil, err
	}
	if m.issuer == "" {
		return nil, errors.New(`metadata has no "issuer"`)
	}
	if m.introspectionEndpoint == "" {
		return nil, errors.New(`metadata has no "introspection_endpoint"`)
	}
	if m.authMethods, err = metadataListOr(members, "introspection_endpoint_auth_methods_supported",
		"token_endpoint_auth_methods_supported"); err != nil {
		return nil, err
	}
	if m.authSigningAlgs, err = metadataListOr(members, "introspection_endpoint_auth_signing_alg_values_supported",
		"token_endpoint_auth_signing_alg_values_supported"); err != nil {
		return nil, err
	}
	if raw, ok := members["mtls_endpoint_aliases"]; ok && !isJSONNull(raw) {
		var aliases map[string]json.RawMessage
		if json.Unmarshal(raw, &aliases) != nil || aliases == nil {
			return nil, errors.New(`metadata member "mtls_endpoint_aliases" is not a JSON object`)
		}
		if m.mtlsIntrospectionEndpoint, err = metadataString(aliases, "introspection_endpoint"); err != nil {
			return nil, fmt.Errorf(`metadata member "mtls_endpoint_aliases": %w`, err)
		}
	}
	return m, nil
}

// metadataMemberName returns k quoted when it is a member the verifier
// reads, and "(another)" otherwise: the names of other members are the
// server's text, shown nowhere.
func metadataMemberName(k string) string {
	switch k {
	case "issuer", "introspection_endpoint", "introspection_endpoint_auth_methods_supported",
		"token_endpoint_auth_methods_supported", "mtls_endpoint_aliases",
		"introspection_endpoint_auth_signing_alg_values_supported", "token_endpoint_auth_signing_alg_values_supported":
		return strconv.Quote(k)
	}
	return "(another)"
}

// isJSONNull reports whether raw, a valid JSON value, is null.
func isJSONNull(raw json.RawMessage) bool {
	return string(raw) == "null"
}

// metadataString returns the string member name of members, "" when it is
// absent or null.
func metadataString(members map[string]json.RawMessage, name string) (string, error) {
	raw, ok := members[name]
	if !ok || isJSONNull(raw) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("metadata member %s is not a JSON string", metadataMemberName(name))
	}
	return s, nil
}

// metadataList returns the member name of members, an array of strings:
// nil when it is absent or null, empty (not nil) when it is [].
func metadataList(members map[string]json.RawMessage, name string) ([]string, error) {
	raw, ok := members[name]
	if !ok || isJSONNull(raw) {
		return nil, nil
	}
	var values []any
	if err := json.Unmarshal(raw, &values); err != nil {
		return nil, fmt.Errorf("metadata member %s is not a JSON array", metadataMemberName(name))
	}
	list := make([]string, len(values))
	for i, x := range values {
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("metadata member %s holds a value that is not a JSON string", metadataMemberName(name))
		}
		list[i] = s
	}
	return list, nil
}

// metadataListOr returns the list member name of members, or when it is
// absent or null the list member fallback; both must be arrays of strings
// when present.
func metadataListOr(members map[string]json.RawMessage, name, fallback string) ([]string, error) {
	list, err := metadataList(members, name)
	if err != nil {
		return nil, err
	}
	other, err := metadataList(members, fallback)
	switch {
	case err != nil:
		return nil, err
	case list == nil:
		return other, nil
	}
	return list, nil
}

// endpoints are the introspection endpoints of checked metadata.
type endpoints struct {
	introspection *url.URL
	mtls          *url.URL // nil when the metadata has no alias
}

// checkMetadata checks m, read from the metadata of issuer: its issuer
// must equal issuer byte for byte (RFC 8414 §3.3), and its endpoints obey
// the rule of Settings.IntrospectionURL.
func checkMetadata(m *metadata, issuer string, allowInsecure bool) (endpoints, error) {
	var e endpoints
	if m.issuer != issuer {
		return e, fmt.Errorf("metadata names the issuer %q, not the configured %q", truncate(displayURL(m.issuer), 256), displayURL(issuer))
	}
	var err error
	if e.introspection, err = checkURL(m.introspectionEndpoint, allowInsecure, "metadata introspection_endpoint", ""); err != nil {
		return e, errors.New(truncate(strings.TrimPrefix(err.Error(), "introspection: "), 512))
	}
	if m.mtlsIntrospectionEndpoint != "" {
		if e.mtls, err = checkURL(m.mtlsIntrospectionEndpoint, allowInsecure, "metadata mtls_endpoint_aliases introspection_endpoint", ""); err != nil {
			return e, errors.New(truncate(strings.TrimPrefix(err.Error(), "introspection: "), 512))
		}
	}
	return e, nil
}

// discovery is the state of a verifier that discovers its endpoint.
type discovery struct {
	issuer  string
	urls    []string // of the metadata, in the order they are tried
	refresh time.Duration
	rand    func(n int64) int64 // a number in [0, n), for the jitter

	cur atomic.Pointer[discovered] // the last good metadata; nil before the first

	mu       sync.Mutex     // guards the fields below
	running  *metadataFetch // the fetch in progress, or nil
	last     *metadataFetch // the fetch started last, for Close
	failures int            // consecutive failed fetches
	retryAt  time.Time      // by Settings.Now: no fetch on demand before it
	interval time.Duration  // of the current backoff
	lastErr  error          // the cause of the last failure
}

// discovered is the target that good metadata gave, and when it was
// fetched by Settings.Now.
type discovered struct {
	target *target
	at     time.Time
}

// metadataFetch is one fetch of the metadata, shared by the callers that
// need it at the time.
type metadataFetch struct {
	done     chan struct{} // closed once t and err are set
	ended    chan struct{} // closed when the fetch's goroutine returns
	deadline time.Time     // by the wall clock, after which its callers stop waiting
	cancel   context.CancelFunc
	t        *target
	err      *IntrospectionError
}

// newDiscovery returns the discovery state for the validated settings s,
// whose Issuer was parsed as issuer.
func newDiscovery(s Settings, issuer *url.URL) *discovery {
	return &discovery{issuer: s.Issuer, urls: metadataURLs(issuer), refresh: s.DiscoveryRefresh, rand: rand.Int64N}
}

// backoff returns the wait after n earlier consecutive failures: by the
// breaker's rule, discoveryMinBackoff doubled n times, up to
// discoveryMaxBackoff, varied by up to 1/breakerJitter either way and
// never outside those bounds.
func (d *discovery) backoff(n int) time.Duration {
	b := breaker{min: discoveryMinBackoff, max: discoveryMaxBackoff, rand: d.rand}
	return b.backoff(n)
}

// errDiscoveryBackoff is the cause of a FailureDiscovery while the
// verifier waits to fetch the metadata again.
var errDiscoveryBackoff = errors.New("no new attempt before the backoff after the last failure ends")

// Discover fetches the issuer's metadata now, even when the verifier holds
// some and while it backs off after a failure, and returns an error if it
// cannot or if the metadata is unusable: then the last good metadata, if
// any, stays in use. A fetch already running is joined rather than
// repeated. The error is an [*IntrospectionError] of kind
// [FailureDiscovery], or ctx's own error when ctx ends first; the fetch
// then runs on, bounded by Settings.Timeout. Without discovery
// (Settings.IntrospectionURL set) it returns nil at once.
//
// Call it after [NewVerifier], which does no I/O, to find a wrong issuer
// or credentials at start-up rather than at the first token.
func (v *Verifier) Discover(ctx context.Context) error {
	if v.disc == nil {
		return nil
	}
	now, ok := v.safeNow(ctx)
	if !ok {
		return &IntrospectionError{Kind: FailurePanic, Err: errors.New("panic in Settings.Now")}
	}
	f, _, _ := v.startFetch(ctx, now, true)
	_, err := v.awaitFetch(ctx, f)
	return err
}

// IntrospectionURL returns the introspection endpoint in use: the
// configured one, or the discovered one (for the TLS client
// authentication methods its mtls_endpoint_aliases entry when the
// metadata has one), "" before the first successful discovery.
func (v *Verifier) IntrospectionURL() string {
	if t := v.currentTarget(); t != nil {
		return t.endpoint.String()
	}
	return ""
}

// ClientAuthMethod returns the client authentication method in use: the
// configured one or its default, or with discovery the one configured or
// chosen from the metadata, "" before the first successful discovery.
func (v *Verifier) ClientAuthMethod() ClientAuthMethod {
	if t := v.currentTarget(); t != nil {
		return t.method
	}
	return ""
}

// currentTarget returns the target in use without fetching: nil before
// the first successful discovery.
func (v *Verifier) currentTarget() *target {
	if v.fixed != nil {
		return v.fixed
	}
	if cur := v.disc.cur.Load(); cur != nil {
		return cur.target
	}
	return nil
}

// target returns where and how to send an introspection request: the
// fixed target, or the discovered one. Before the first good metadata it
// waits for a fetch, or fails at once with FailureDiscovery while backing
// off after a failure; metadata older than Settings.DiscoveryRefresh is
// used while a fetch in the background replaces it.
func (v *Verifier) target(ctx context.Context) (*target, error) {
	if v.fixed != nil {
		return v.fixed, nil
	}
	now := v.now()
	if cur := v.disc.cur.Load(); cur != nil {
		if age := now.Sub(cur.at); age >= v.disc.refresh || age < -v.disc.refresh {
			// Stale, or Settings.Now went far back: refresh in the
			// background, unless backing off after a failed refresh.
			v.startFetch(ctx, now, false)
		}
		return cur.target, nil
	}
	f, wait, cause := v.startFetch(ctx, now, false)
	if f == nil {
		return nil, &IntrospectionError{Kind: FailureDiscovery, RetryAfter: wait,
			Err: fmt.Errorf("%w: %w", errDiscoveryBackoff, cause)}
	}
	return v.awaitFetch(ctx, f)
}

// startFetch returns the fetch of the metadata in progress, or starts one
// on a context of its own, bounded by Settings.Timeout, that keeps ctx's
// values. Unless force, while the backoff after a failure lasts at now, it
// returns no fetch but the time left and the failure's cause.
func (v *Verifier) startFetch(ctx context.Context, now time.Time, force bool) (f *metadataFetch, wait time.Duration, cause error) {
	d := v.disc
	d.mu.Lock()
	defer d.mu.Unlock()
	if f := d.running; f != nil && time.Now().Before(f.deadline) {
		return f, 0, nil
	}
	// A fetch past its deadline ignores its context (a caller's
	// transport): it is left to end on its own, and its result dropped.
	if !force && now.Before(d.retryAt) {
		wait := d.retryAt.Sub(now)
		if wait > d.interval {
			// Settings.Now went back: never wait longer than the interval.
			d.retryAt, wait = now.Add(d.interval), d.interval
		}
		return nil, wait, d.lastErr
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.s.Timeout)
	f = &metadataFetch{done: make(chan struct{}), ended: make(chan struct{}),
		deadline: time.Now().Add(v.s.Timeout + time.Second), cancel: cancel}
	d.running, d.last = f, f
	go v.runFetch(fctx, f)
	return f, 0, nil
}

// awaitFetch waits for f, or for ctx to end, or for f's deadline.
func (v *Verifier) awaitFetch(ctx context.Context, f *metadataFetch) (*target, error) {
	t := time.NewTimer(time.Until(f.deadline))
	defer t.Stop()
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("introspection: %w", ctx.Err())
	case <-t.C:
		// The fetch ignores its context: the next call starts another.
		return nil, &IntrospectionError{Kind: FailureDiscovery, Err: errHung}
	}
	if f.err != nil {
		e := *f.err // each caller gets its own, which it may change
		return nil, &e
	}
	return f.t, nil
}

// runFetch runs the fetch f on ctx: it fetches and checks the metadata,
// records the result, logs it, and hands it to f's callers.
func (v *Verifier) runFetch(ctx context.Context, f *metadataFetch) {
	defer close(f.ended)
	defer f.cancel()
	d := v.disc
	start := time.Now()
	t, err := v.fetchTarget(ctx)
	now, _ := v.safeNow(ctx)
	// Stopped by Close, not failed by the server: no backoff.
	stopped := err != nil && errors.Is(ctx.Err(), context.Canceled)

	d.mu.Lock()
	mine := d.running == f
	if mine {
		d.running = nil
	}
	var previous ClientAuthMethod // the method of the last good metadata, "" before
	cur := d.cur.Load()
	kept := cur != nil
	if kept {
		previous = cur.target.method
	}
	switch {
	case !mine, stopped:
		// Abandoned after its deadline (a later fetch decides), or
		// stopped by Close.
	case err == nil:
		d.failures, d.retryAt, d.interval, d.lastErr = 0, time.Time{}, 0, nil
		d.cur.Store(&discovered{target: t, at: now})
	default:
		d.interval = d.backoff(d.failures)
		d.failures++
		d.retryAt = now.Add(d.interval)
		d.lastErr = err.Err
		err.RetryAfter = d.interval
	}
	d.mu.Unlock()

	f.t, f.err = t, err
	if mine && !stopped {
		v.observeMetadataFetch(ctx, err, kept, time.Since(start))
		switch {
		case err == nil && t.method != previous && v.s.ClientAuthMethod == "":
			v.logAttrs(ctx, slog.LevelInfo, "introspection: client authentication method chosen",
				slog.String("method", string(t.method)), slog.String("introspection_endpoint", t.endpoint.String()))
		case err == nil:
			v.logAttrs(ctx, slog.LevelDebug, "introspection: metadata fetched",
				slog.String("method", string(t.method)), slog.String("introspection_endpoint", t.endpoint.String()))
		case kept:
			v.logAttrs(ctx, slog.LevelWarn, "introspection: refreshing the issuer's metadata failed; keeping the last good metadata",
				slog.String("error", err.Error()), slog.Duration("retry_in", err.RetryAfter))
		default:
			v.logAttrs(ctx, slog.LevelWarn, "introspection: fetching the issuer's metadata failed",
				slog.String("error", err.Error()), slog.Duration("retry_in", err.RetryAfter))
		}
	}
	close(f.done)
}

// fetchTarget fetches the metadata and returns the target it gives. A
// panic in a dependency (a caller's transport is recovered before) is
// recovered and fails the fetch.
func (v *Verifier) fetchTarget(ctx context.Context) (t *target, ie *IntrospectionError) {
	defer func() {
		if r := recover(); r != nil {
			t, ie = nil, &IntrospectionError{Kind: FailureDiscovery, Err: v.recovered(ctx, "metadata fetch", r)}
		}
	}()
	m, eps, ie := v.fetchMetadata(ctx)
	if ie != nil {
		return nil, ie
	}
	return v.discoveredTarget(m, eps)
}

// discoveredTarget returns the target that the checked metadata m, with
// endpoints eps, gives: the configured method checked against what m
// lists, or with none configured the method chosen from m, at every fetch
// (a refresh may list other methods than the fetch before).
func (v *Verifier) discoveredTarget(m *metadata, eps endpoints) (*target, *IntrospectionError) {
	chosen, err := chooseMethod(v.s.ClientAuthMethod, m.authMethods, m.authSigningAlgs, v.auth.creds)
	if err != nil {
		return nil, &IntrospectionError{Kind: FailureDiscovery,
			Err: errors.New(strings.TrimPrefix(err.Error(), "introspection: "))}
	}
	endpoint := eps.introspection
	if isTLSMethod(chosen) && eps.mtls != nil {
		endpoint = eps.mtls
	}
	audience := v.s.ClientAssertionAudience
	if audience == "" {
		audience = m.issuer
	}
	t, err := v.newTarget(endpoint, chosen, audience)
	if err != nil {
		return nil, &IntrospectionError{Kind: FailureDiscovery, Err: err}
	}
	return t, nil
}

// fetchMetadata fetches the metadata from the first of its URLs that has
// it, and checks it. A 404, 405, 400 or 410 moves on to the next URL; any
// other failure ends the fetch.
func (v *Verifier) fetchMetadata(ctx context.Context) (*metadata, endpoints, *IntrospectionError) {
	var missing []string
	status := 0
	for _, u := range v.disc.urls {
		m, eps, notFound, err := v.getMetadata(ctx, u)
		if err == nil {
			return m, eps, nil
		}
		if !notFound {
			return nil, eps, err
		}
		status = err.StatusCode
		missing = append(missing, fmt.Sprintf("%s (HTTP %d)", u, err.StatusCode))
	}
	return nil, endpoints{}, &IntrospectionError{Kind: FailureDiscovery, StatusCode: status,
		Err: errors.New("no metadata at " + strings.Join(missing, ", "))}
}

// notFoundStatus reports whether status says that a metadata URL holds no
// metadata, so that the next one is tried.
func notFoundStatus(status int) bool {
	switch status {
	case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusBadRequest, http.StatusGone:
		return true
	}
	return false
}

// getMetadata fetches and checks the metadata at u. notFound reports an
// error that moves on to the next URL.
func (v *Verifier) getMetadata(ctx context.Context, u string) (m *metadata, eps endpoints, notFound bool, ie *IntrospectionError) {
	fail := func(status int, format string, args ...any) *IntrospectionError {
		return &IntrospectionError{Kind: FailureDiscovery, StatusCode: status,
			Err: fmt.Errorf("metadata at %s: %s", u, fmt.Sprintf(format, args...))}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, eps, false, fail(0, "%v", err)
	}
	req.Header["Accept"] = acceptJSON
	resp, err := v.client.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, eps, false, fail(0, "no answer within %v", v.s.Timeout)
		}
		if pe, ok := errors.AsType[*panicError](err); ok {
			return nil, eps, false, &IntrospectionError{Kind: FailureDiscovery, Err: pe}
		}
		return nil, eps, false, &IntrospectionError{Kind: FailureDiscovery, Err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodySize+1))
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, eps, false, fail(resp.StatusCode, "no answer within %v", v.s.Timeout)
		}
		return nil, eps, false, fail(resp.StatusCode, "%v", err)
	}
	switch {
	case len(body) > maxBodySize:
		return nil, eps, false, fail(resp.StatusCode, "document is larger than %d bytes", maxBodySize)
	case resp.StatusCode == http.StatusOK:
	case notFoundStatus(resp.StatusCode):
		return nil, eps, true, fail(resp.StatusCode, "not found")
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return nil, eps, false, fail(resp.StatusCode, "a redirect, which is not followed")
	default:
		return nil, eps, false, fail(resp.StatusCode, "HTTP status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !isJSON(ct) {
		return nil, eps, false, fail(resp.StatusCode, "Content-Type %q, want application/json", truncate(ct, 64))
	}
	if m, err = decodeMetadata(body); err != nil {
		return nil, eps, false, fail(resp.StatusCode, "%v", err)
	}
	if eps, err = checkMetadata(m, v.disc.issuer, v.s.AllowInsecureHTTP); err != nil {
		return nil, eps, false, fail(resp.StatusCode, "%v", err)
	}
	return m, eps, false, nil
}

// closeDiscovery stops the fetch of the metadata started last, if it still
// runs, and waits for its goroutine until the fetch's deadline.
func (v *Verifier) closeDiscovery() {
	if v.disc == nil {
		return
	}
	v.disc.mu.Lock()
	f := v.disc.last
	v.disc.mu.Unlock()
	if f == nil {
		return
	}
	f.cancel()
	t := time.NewTimer(time.Until(f.deadline))
	defer t.Stop()
	select {
	case <-f.ended:
	case <-t.C: // a dependency ignores its context; do not wait for it
	}
}
