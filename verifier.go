package introspection

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Verifier checks bearer tokens by asking an authorization server's RFC 7662
// introspection endpoint, optionally caching its answers.
//
// A Verifier is safe for concurrent use by multiple goroutines. Concurrent
// calls for the same token share one introspection request.
//
// A panic in a dependency the verifier calls (a [Cache], the HTTPClient's
// transport, the Logger's handler, Settings.Now, Settings.ScopeMatcher) is
// recovered where it happens, counted in [Stats].Panics and logged once at
// error level with its stack (the panic value itself only when it is a
// runtime error, as another value could hold the token). In the transport
// or Now it fails the request with an [*IntrospectionError] of kind
// [FailurePanic] for every caller sharing it; in the ScopeMatcher it fails
// the one call of Verify that asked it the same way (the token is neither
// accepted nor refused for a scope), and in [Verifier.CheckScopes] the
// scopes it was to decide count as missing; a panicking Cache counts as a
// failing one and the authorization server decides; a panicking Logger
// loses the record, never the verdict. A dependency that ends the shared request's goroutine
// without a panic (runtime.Goexit, as t.FailNow in a test double) fails it
// the same way, and the next call for the token sends a new request; one
// that ends the caller's goroutine during Verify (the ScopeMatcher) leaves
// a verification that [Stats] and the Observer count as failed with
// FailurePanic, never as accepted.
//
// With Settings.IntrospectionURL empty, the verifier discovers the endpoint
// from the metadata of Settings.Issuer at the first Verify that needs it
// (or at [Verifier.Discover]), and keeps it fresh; a Verify that needs
// the metadata when none can be had fails with an [*IntrospectionError] of
// kind [FailureDiscovery]. Concurrent callers share one fetch of the
// metadata, as they share one request for a token.
//
// Callers of a shared request wait at most one second for the cache
// lookup, Settings.Timeout for the request and a second of grace (with
// discovery, also Settings.Timeout and a second for the metadata): if a
// dependency ignores its context and the answer has not come by then, they
// get an [*IntrospectionError] of kind [FailureTimeout] and the next call
// for the token sends a new request.
type Verifier struct {
	s              Settings
	fixed          *target    // of the IntrospectionURL; nil with discovery
	disc           *discovery // nil without discovery
	auth           clientAuth // never modified
	basicAuth      []string   // Authorization header value for ClientSecretBasic, nil without a secret; never modified
	cacheNamespace string     // of the keys handed to a Cache; see CacheKey
	client         *http.Client
	transport      *http.Transport // owned by the verifier: its own, or a clone of the caller's with the TLS client certificate; else nil
	requestLimit   time.Duration   // how long a shared request may take to get its answer: Settings.Timeout, twice that and a second with discovery
	now            func() time.Time
	log            *slog.Logger
	memObserver    MemoryObserver // Settings.Observer when it is one, else nil

	mu      sync.Mutex         // guards flights and each flight's joined
	flights map[string]*flight // shared introspection requests running, by token
	cache   store              // nil when caching is off
	stats   counters
	breaker *breaker // nil when Settings.BreakerThreshold is negative

	staleLog staleLog // warnings about stale answers served

	forgets     forgetting           // what Forget dropped while shared requests run
	detached    map[*flight]struct{} // flights out of flights but still running, for Close; guarded by mu
	unsubscribe func()               // ends the subscription to the Cache's invalidations; nil without one

	dp dpopConfig // never modified
}

// flight is one introspection request shared by the concurrent callers of
// one token.
type flight struct {
	done   chan struct{} // closed once a, err and shared are set
	ended  chan struct{} // closed once the flight is over, its answer stored
	a      *answer
	err    error
	joined int  // callers after the first; guarded by Verifier.mu
	shared bool // joined > 0 when the answer was published

	published bool      // a, err and shared are set; guarded by Verifier.mu
	attempt   *attempt  // the breaker's leave for the request, once sent; guarded by Verifier.mu
	deadline  time.Time // by which the flight is over, unless a dependency ignores its context

	// While the answer is stored, later callers join the flight and get
	// it, until it is as old as the entry may live. Guarded by
	// Verifier.mu.
	storing bool
	until   time.Time

	// forget is set when the server's answer is not to be kept, so that an
	// older cached answer for the token is dropped rather than served
	// stale in its place. Written by the flight's goroutine only.
	forget bool

	key    string      // CacheKey of the token, with a cache; never modified
	since  uint64      // the point the flight began, for forgetting; never modified
	cached atomic.Bool // the answer came from a cache
}

// NewVerifier validates s and returns a Verifier. It rejects a missing or
// unsafe IntrospectionURL (or, to discover it, Issuer), missing
// credentials or credentials the ClientAuthMethod cannot use, an unknown
// ClientAuthMethod, negative durations, a negative MaxCacheSize,
// StaleIfError without CacheTTL and an Observer whose methods cannot be
// called (a nil pointer, or one embedding a nil Observer). It does no
// I/O: with discovery, the metadata is fetched by the first Verify that
// needs it, or by [Verifier.Discover].
func NewVerifier(s Settings) (*Verifier, error) {
	s, endpoint, err := s.validate()
	if err != nil {
		return nil, err
	}
	v := &Verifier{
		s:            s,
		requestLimit: s.Timeout,
		now:          s.Now,
		log:          s.Logger,
		flights:      make(map[string]*flight),
		detached:     make(map[*flight]struct{}),
		breaker:      newBreaker(s),
	}
	v.memObserver, _ = s.Observer.(MemoryObserver)
	if v.auth, err = newClientAuth(s); err != nil {
		return nil, err
	}
	if s.ClientSecret != "" {
		v.basicAuth = []string{basicAuthHeader(s.ClientID, s.ClientSecret)}
	}
	if s.IntrospectionURL != "" {
		audience := s.ClientAssertionAudience
		if audience == "" {
			audience = s.Issuer
		}
		if audience == "" {
			audience = endpoint.String()
		}
		if v.fixed, err = v.newTarget(endpoint, s.ClientAuthMethod, audience); err != nil {
			return nil, fmt.Errorf("introspection: %w", err)
		}
		v.cacheNamespace = cacheNamespace(endpoint.String(), s.ClientID)
	} else {
		v.disc = newDiscovery(s, endpoint)
		// The issuer, never an endpoint URL: stable across refreshes.
		v.cacheNamespace = cacheNamespace(discoveryNamespace+s.Issuer, s.ClientID)
		v.requestLimit = 2*s.Timeout + time.Second
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.dp, err = newDPoPConfig(s, v.now); err != nil {
		return nil, err
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	if s.HTTPClient != nil {
		c := *s.HTTPClient
		if s.TLSClientCertificate != nil {
			base, _ := c.Transport.(*http.Transport) // validated: nil or an *http.Transport
			if base == nil {
				base, _ = http.DefaultTransport.(*http.Transport)
			}
			if base == nil {
				base = newTransport()
			}
			v.transport = withClientCertificate(base.Clone(), *s.TLSClientCertificate)
			c.Transport = v.transport
		}
		c.Transport = recoveringTransport{rt: c.Transport, v: v}
		v.client = &c
	} else {
		v.transport = newTransport()
		if s.TLSClientCertificate != nil {
			v.transport = withClientCertificate(v.transport, *s.TLSClientCertificate)
		}
		v.client = &http.Client{Transport: v.transport}
	}
	// Never follow redirects: the next hop would receive the token and,
	// with client_secret_post, the secret.
	v.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	if s.CacheTTL > 0 || s.NegativeCacheTTL > 0 {
		if s.Cache != nil {
			v.cache = newSharedStore(v, s)
		} else {
			mc := newMemoryCache(s.MaxCacheSize, v.now)
			mc.stale = s.StaleIfError
			v.cache = mc
		}
	}
	v.subscribe()
	return v, nil
}

// newTransport returns a transport that keeps enough idle connections to the
// one introspection host for a busy server.
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// discoveryNamespace precedes the issuer in the cache namespace of a
// verifier that discovers its endpoint: no IntrospectionURL begins with
// it, so the two kinds of namespace never meet.
const discoveryNamespace = "discovery:"

// withClientCertificate returns t, which it changes, presenting cert as
// its TLS client certificate (RFC 8705 §2) to every server that asks for
// one, whatever certificate authorities the server names: a self-signed
// certificate is named by none.
func withClientCertificate(t *http.Transport, cert tls.Certificate) *http.Transport {
	cfg := t.TLSClientConfig.Clone()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg.Certificates = nil
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	t.TLSClientConfig = cfg
	return t
}

// RequiredScopes returns a copy of Settings.RequiredScopes.
func (v *Verifier) RequiredScopes() []string {
	return slices.Clone(v.s.RequiredScopes)
}

// Leeway returns Settings.Leeway: the clock skew allowed on exp and nbf.
func (v *Verifier) Leeway() time.Duration {
	return v.s.Leeway
}

// Close releases what the verifier holds. It stops a fetch of the
// issuer's metadata that is running (with discovery) and waits for it,
// then waits for the shared introspection requests still running (one
// whose callers have all gone runs on until it ends: its request is
// bounded by Settings.Timeout and each of its cache calls by one second),
// then closes the idle connections of the verifier's own HTTP client (its
// own transport, or the clone of a caller's that carries the
// TLSClientCertificate); a caller's HTTPClient is left alone.
// It never waits longer than those bounds plus a second: a dependency that
// ignores its context (a Cache, or a caller's transport) is left running
// until it returns, and is the only goroutine of the verifier that can
// outlive Close.
//
// Close also ends the subscription to the invalidations of a Cache that is
// an [Invalidator]; from then on the local tier keeps answers for
// [UnsubscribedLocalCacheTTL] at most.
//
// Call Close once the server that uses the verifier has shut down (after
// [http.Server.Shutdown] returns), so that no Verify is running. Verify
// keeps working after Close: it opens connections again as it needs them,
// which a later Close releases. Close may be called more than once; it
// always returns nil.
func (v *Verifier) Close() error {
	v.closeDiscovery()
	v.mu.Lock()
	flights := make([]*flight, 0, len(v.flights))
	for _, f := range v.flights {
		flights = append(flights, f)
	}
	for f := range v.detached {
		flights = append(flights, f)
	}
	v.mu.Unlock()
	v.closeTiers()
	for _, f := range flights {
		t := time.NewTimer(time.Until(f.deadline))
		select {
		case <-f.ended:
		case <-t.C: // a dependency ignores its context; do not wait for it
		}
		t.Stop()
	}
	if v.transport != nil {
		v.transport.CloseIdleConnections()
	}
	return nil
}

// Verify introspects token (RFC 7662 §2) and checks the answer: active, exp
// and nbf with Leeway, token_use, Issuer, Audience and RequiredScopes. A
// sender-constrained token (cnf jkt or x5t#S256, or token_type DPoP) is
// refused with [ErrProofRequired]: Verify knows only the token, not a
// proof of possession. It
// returns the accepted token, or an error that satisfies errors.Is with
// [ErrInvalidToken], [ErrInsufficientScope] or [ErrIntrospectionFailed],
// or with ctx's own error when ctx ends first.
//
// A cached answer is checked again at the current time on every call.
// With Settings.StaleIfError, when the server cannot answer, a cached
// answer past its entry's end may give the verdict; an accepted token then
// has Stale set.
// Every rejection is logged once, at debug level, with its reason and
// without the token; a failed request is logged once at warn level,
// however many callers share it.
func (v *Verifier) Verify(ctx context.Context, token string) (*AccessToken, error) {
	return v.verify(ctx, token, possession{})
}

// verify is Verify for a token that came with what p holds: a verified
// DPoP proof, whose jti it records once the token holds RequiredScopes,
// the request, for its TLS client certificate, and the scopes the request
// needs besides RequiredScopes (the middleware's), which the verdict
// covers.
func (v *Verifier) verify(ctx context.Context, token string, p possession) (t *AccessToken, err error) {
	var told telling      // what the observer was told of the verification so far
	var found CacheResult // what memory answered it with, when told toldMemory
	if v.s.Observer != nil {
		told = toldNothing
		if v.memObserver == nil {
			ctx, told = v.observeVerifyStart(ctx), toldStart
		}
		defer func() { v.observeVerdict(ctx, told, found, err) }() // after the recover below has set err
	}
	defer func() {
		r := recover()
		switch {
		case r != nil:
			t = nil
			err = &IntrospectionError{Kind: FailurePanic, Err: v.recovered(ctx, "Verify", r)}
		case t == nil && err == nil:
			// A dependency on the caller's goroutine (Settings.ScopeMatcher,
			// the Logger's handler, a middleware's OperationFunc) called
			// runtime.Goexit: no verdict was reached, and every return
			// with a verdict sets t or err.
			err = &IntrospectionError{Kind: FailurePanic, Err: errNoVerdict}
		default:
			return
		}
		v.stats.failure(FailurePanic)
		v.stats.failed.Add(1)
	}()
	if !validToken(token) {
		v.stats.rejected.Add(1)
		v.logRejection(ctx, ErrMalformedToken)
		return nil, ErrMalformedToken
	}
	if err := ctx.Err(); err != nil {
		v.stats.canceled.Add(1)
		return nil, fmt.Errorf("introspection: %w", err)
	}
	if v.cache != nil {
		now := v.now()
		if a, ok := v.cache.get(ctx, token, now); ok {
			v.stats.cacheHits.Add(1)
			if told == toldNothing && !v.mayWait(p) {
				told, found = toldMemory, lookupResult(a) // told with the verdict
			} else {
				// A check that may wait for a caller's store or the
				// request is a verification to observe.
				v.startObserving(&ctx, &told)
				v.observeCacheHit(ctx, a)
			}
			return v.check(ctx, a, token, p, false, now)
		}
		v.startObserving(&ctx, &told)
		v.countMiss(ctx)
	}
	v.startObserving(&ctx, &told)
	a, exclusive, err := v.fetch(ctx, token)
	if err != nil {
		return v.staleIfError(ctx, token, p, err)
	}
	return v.check(ctx, a, token, p, exclusive, v.now())
}

// VerifyToken is Verify without the reason, as FastMCP's verify_token: it
// returns the accepted token or nil. Verify has logged the reason: a
// rejection at debug level, a failed request at warn.
func (v *Verifier) VerifyToken(ctx context.Context, token string) *AccessToken {
	t, _ := v.Verify(ctx, token)
	return t
}

// fetch returns the authorization server's answer for token from one
// introspection request shared by concurrent callers. exclusive reports that
// no one else holds the answer: it was neither cached nor shared, so the
// caller may keep its parts without copying them.
func (v *Verifier) fetch(ctx context.Context, token string) (a *answer, exclusive bool, err error) {
	key := v.flightKey(token)
	v.mu.Lock()
	f, joined := v.flights[token]
	if joined && f.storing {
		until := f.until
		v.mu.Unlock() // Settings.Now is the caller's code
		fresh := v.now().Before(until)
		v.mu.Lock()
		if !fresh && v.flights[token] == f {
			delete(v.flights, token)
			v.detached[f] = struct{}{}
		}
		f, joined = v.flights[token]
	}
	if joined && v.forgets.forgottenSince(f.key, f.since) {
		// Forgotten since the request began, here or by another
		// verifier: its answer may be older than that.
		delete(v.flights, token)
		v.detached[f] = struct{}{}
		joined = false
	}
	if joined {
		f.joined++
	} else {
		f = &flight{done: make(chan struct{}), ended: make(chan struct{}),
			deadline: time.Now().Add(flightLimit(v.requestLimit)), key: key, since: v.forgets.now()}
		v.flights[token] = f
	}
	v.mu.Unlock()
	if !joined {
		// The request must not end with the caller who started it: it
		// runs on a context of its own, bounded by Settings.Timeout in
		// introspect and by cacheCallTimeout in each cache call.
		go v.fly(context.WithoutCancel(ctx), token, f)
	}
	select {
	case <-ctx.Done():
		v.stats.canceled.Add(1)
		v.countLookup(ctx, nil)
		return nil, false, fmt.Errorf("introspection: %w", ctx.Err())
	case <-f.done:
	}
	if f.err == nil && f.cached.Load() {
		v.countLookup(ctx, f.a)
	} else {
		v.countLookup(ctx, nil)
	}
	if joined {
		v.stats.collapsed.Add(1)
		v.observeCollapsed(ctx)
	}
	if f.err != nil {
		return nil, false, f.err // counted by staleIfError, unless a stale answer gives the verdict
	}
	return f.a, !joined && !f.shared && v.cache == nil, nil
}

// fly runs the flight f for token: it publishes the answer to every caller
// and then, while later callers still join the flight and get that answer,
// stores it in the cache.
func (v *Verifier) fly(ctx context.Context, token string, f *flight) {
	defer close(f.ended)
	// The callers never wait longer than the request and its cache lookup
	// may take, even when a dependency ignores its context: the answer
	// that comes after that, if any, is dropped.
	watchdog := time.AfterFunc(answerLimit(v.requestLimit), func() {
		v.publish(ctx, token, f, nil, &IntrospectionError{Kind: FailureTimeout, Err: errHung}, 0, time.Time{})
	})
	defer watchdog.Stop()
	defer func() {
		// Also when a dependency ends this goroutine without a panic
		// (runtime.Goexit): the callers get an error and the token is
		// free for the next request.
		v.publish(ctx, token, f, nil, &IntrospectionError{Kind: FailurePanic, Err: errNoAnswer}, 0, time.Time{})
		v.mu.Lock()
		if v.flights[token] == f {
			delete(v.flights, token)
		}
		delete(v.detached, f)
		v.mu.Unlock()
	}()
	a, ttl, at, err := v.resolve(ctx, token, f)
	switch published := v.publish(ctx, token, f, a, err, ttl, at); {
	case published && err == nil && ttl > 0:
		v.store(ctx, token, a, f, ttl)
	case err == nil && f.forget:
		// After the callers have their answer, which does not wait for
		// the cache.
		v.forgetStale(ctx, token, 0)
	}
}

// publish hands the flight's result to its callers, unless that was done
// already, and reports whether this call did. An answer to be cached for
// ttl from at is handed to later callers too, until it is stored. A failure
// is counted and logged here, by the one call that publishes it and before
// the callers see it, so that a result that comes after the flight's own
// timeout is neither counted nor logged a second time.
func (v *Verifier) publish(ctx context.Context, token string, f *flight, a *answer, err error, ttl time.Duration, at time.Time) bool {
	store := err == nil && ttl > 0
	v.mu.Lock()
	if f.published {
		v.mu.Unlock()
		return false
	}
	f.published = true
	f.a, f.err, f.shared = a, err, f.joined > 0
	f.storing, f.until = store, at.Add(ttl)
	if !store && v.flights[token] == f {
		delete(v.flights, token)
		v.detached[f] = struct{}{}
	}
	att := f.attempt
	v.mu.Unlock()
	v.settle(ctx, att, err)
	if err != nil {
		ie, ok := err.(*IntrospectionError)
		if ok {
			v.stats.failure(ie.Kind)
		}
		// The breaker logs its own refusals, once per transition, and
		// discovery each failed fetch of the metadata.
		if _, panicked := errors.AsType[*panicError](err); !panicked && (!ok || ie.Kind != FailureUnavailable && ie.Kind != FailureDiscovery) {
			// A panic is logged already, with its stack.
			v.logError(ctx, slog.LevelWarn, "introspection: request failed", "error", err)
		}
	}
	close(f.done)
	return true
}

// answerLimit is how long the callers of a flight wait at most: a cache
// lookup, the request bounded by timeout, and a second of grace for
// scheduling. Dependencies that honour their contexts are done by then.
func answerLimit(timeout time.Duration) time.Duration {
	return cacheCallTimeout + timeout + time.Second
}

// flightLimit is how long a flight runs at most when its dependencies
// honour their contexts: its answer and then the store.
func flightLimit(timeout time.Duration) time.Duration {
	return answerLimit(timeout) + cacheCallTimeout
}

// errHung is the cause when the shared request outlived answerLimit: a
// dependency (the HTTPClient's transport, a response body) ignored the
// request's context.
var errHung = errors.New("no answer in time: the request ignored its deadline")

// errNoAnswer is the cause when a dependency ended the shared request's
// goroutine (runtime.Goexit) before it had an answer.
var errNoAnswer = errors.New("the shared request ended without an answer")

// errNoVerdict is the cause when a dependency ended the caller's
// goroutine (runtime.Goexit) before Verify had a verdict.
var errNoVerdict = errors.New("the verification ended without a verdict")

// resolve returns the answer for token and how long from at to cache it
// (zero: not at all): from the cache, if an earlier flight filled it since
// the caller's lookup, else from the authorization server.
func (v *Verifier) resolve(ctx context.Context, token string, f *flight) (a *answer, ttl time.Duration, at time.Time, err error) {
	defer func() {
		if r := recover(); r != nil {
			a, ttl = nil, 0
			err = &IntrospectionError{Kind: FailurePanic, Err: v.recovered(ctx, "shared request", r)}
		}
	}()
	if v.cache != nil {
		if a, ok := v.cache.load(ctx, token, v.now(), f.since); ok {
			f.cached.Store(true)
			return a, 0, at, nil
		}
	}
	a, err = v.send(ctx, token, f)
	if err != nil {
		var ie *IntrospectionError
		if errors.As(err, &ie) {
			if pe, ok := errors.AsType[*panicError](ie.Err); ok {
				// The caller's transport panicked.
				ie.Kind = FailurePanic
				ie.Err = pe
			}
		}
		return nil, 0, at, err
	}
	if v.cache != nil {
		at = v.now()
		ttl = v.cacheTTL(a, at)
		f.forget = ttl <= 0
	}
	return a, ttl, at, nil
}

// store puts a, the answer of the flight f, into the cache until f.until,
// counted from now, so that the entry ends when it would have had it been
// stored at once, and for at most ttl, however far Settings.Now went back
// since; unless token was forgotten since f began. A panic in it
// (Settings.Now) is recovered: the callers have their answer.
func (v *Verifier) store(ctx context.Context, token string, a *answer, f *flight, ttl time.Duration) {
	defer func() {
		if r := recover(); r != nil {
			_ = v.recovered(ctx, "shared request", r)
		}
	}()
	if ttl = min(ttl, f.until.Sub(v.now())); ttl > 0 {
		v.keep(ctx, token, f.key, a, ttl, f.since)
	} else {
		v.forgetStale(ctx, token, ttl)
	}
}

// panicError is a panic recovered in a dependency. It names where the
// panic happened and, for a runtime error, the error; any other panic
// value is named by its type only, as it could hold the token.
type panicError struct {
	where string
	value string
}

func (e *panicError) Error() string {
	return "panic in " + e.where + ": " + e.value
}

// recovered counts and logs, once and with its stack, the panic r that was
// recovered in where, and returns it as an error.
func (v *Verifier) recovered(ctx context.Context, where string, r any) error {
	v.stats.panics.Add(1)
	e := &panicError{where: where, value: describePanic(r)}
	stack := debug.Stack()
	v.safely(func() {
		v.log.LogAttrs(ctx, slog.LevelError, "introspection: recovered from a panic",
			slog.String("in", where), slog.String("panic", e.value), slog.String("stack", string(stack)))
	})
	return e
}

// describePanic names the panic value r without showing a value that
// could hold the token: a runtime error by its message, anything else by
// its type.
func describePanic(r any) (s string) {
	s = fmt.Sprintf("a value of type %T", r)
	if err, ok := r.(runtime.Error); ok {
		defer func() { _ = recover() }() // Error of a type that only claims to be a runtime error
		s = err.Error()
	}
	return s
}

// logRejection logs, at debug level, why a token was rejected.
func (v *Verifier) logRejection(ctx context.Context, err error) {
	v.logError(ctx, slog.LevelDebug, "introspection: token rejected", "reason", err)
}

// logAttrs logs msg with attrs at level, through safely.
func (v *Verifier) logAttrs(ctx context.Context, level slog.Level, msg string, attrs ...slog.Attr) {
	v.safely(func() { v.log.LogAttrs(ctx, level, msg, attrs...) })
}

// logError logs msg with err under key, if the logger is enabled at level.
func (v *Verifier) logError(ctx context.Context, level slog.Level, msg, key string, err error) {
	v.safely(func() {
		if v.log.Enabled(ctx, level) {
			v.log.LogAttrs(ctx, level, msg, slog.String(key, err.Error()))
		}
	})
}

// safely runs log, a call of the Logger. A panic in its handler is
// recovered and counted, and logged once with its stack if the handler
// takes that record; the record that panicked is lost.
func (v *Verifier) safely(log func()) {
	defer func() {
		if r := recover(); r != nil {
			v.stats.panics.Add(1)
			stack := debug.Stack()
			defer func() { _ = recover() }()
			v.log.LogAttrs(context.Background(), slog.LevelError, "introspection: recovered from a panic",
				slog.String("in", "Logger"), slog.String("panic", describePanic(r)), slog.String("stack", string(stack)))
		}
	}()
	log()
}

// recoveringTransport turns a panic in a caller's RoundTripper into an
// error, so that net/http unwinds as after any failed round trip.
type recoveringTransport struct {
	rt http.RoundTripper // nil means http.DefaultTransport
	v  *Verifier
}

func (t recoveringTransport) RoundTrip(r *http.Request) (resp *http.Response, err error) {
	defer func() {
		if p := recover(); p != nil {
			resp, err = nil, t.v.recovered(r.Context(), "HTTPClient transport", p)
		}
	}()
	rt := t.rt
	if rt == nil {
		rt = http.DefaultTransport
	}
	return rt.RoundTrip(r)
}

// cacheTTL returns how long a may be cached: NegativeCacheTTL for an
// inactive answer; CacheTTL for an active one, never past its exp
// (RFC 7662 §4). Zero or less means not at all.
func (v *Verifier) cacheTTL(a *answer, now time.Time) time.Duration {
	if !a.active {
		return v.s.NegativeCacheTTL
	}
	ttl := v.s.CacheTTL
	if !a.expiresAt.IsZero() {
		ttl = min(ttl, a.expiresAt.Sub(now))
	}
	return ttl
}

// check decides whether the answer a accepts token, presented with p, at
// now, and logs a rejection.
func (v *Verifier) check(ctx context.Context, a *answer, token string, p possession, exclusive bool, now time.Time) (*AccessToken, error) {
	err := v.reject(a, now)
	if err == nil {
		err = v.checkBinding(ctx, a, p)
	}
	if err == nil {
		se, claimErr, panicked := v.checkScopes(ctx, a, p)
		switch {
		case panicked:
			// Settings.ScopeMatcher panicked: the verdict is unknown, as
			// after a panic in any other dependency. It was logged.
			v.stats.failure(FailurePanic)
			v.stats.failed.Add(1)
			return nil, &IntrospectionError{Kind: FailurePanic, Err: errMatcherPanicked}
		case claimErr != nil:
			return nil, claimErr // counted by claimProof
		case se != nil:
			err = se
		}
	}
	if err != nil {
		if errors.Is(err, ErrInsufficientScope) {
			v.stats.insufficientScope.Add(1)
		} else {
			v.stats.rejected.Add(1)
		}
		v.logRejection(ctx, err)
		return nil, err
	}
	v.stats.accepted.Add(1)
	return a.accessToken(token, !exclusive), nil
}

// checkScopes decides the scopes a token whose answer is a, presented
// with p, needs: Settings.RequiredScopes and then, with p.scopes set, the
// request's own, which p.scopes returns. Once the token holds
// RequiredScopes, p's DPoP proof is claimed, before the request's scopes
// are asked for: the proof of a request refused only for those is spent,
// and p.scopes runs only for a proof that was not used before; claimErr
// is the claim's failure. The ScopeError lists every missing scope,
// RequiredScopes' and the request's.
func (v *Verifier) checkScopes(ctx context.Context, a *answer, p possession) (se *ScopeError, claimErr error, panicked bool) {
	se, panicked = v.missingScopes(ctx, a.scopes, v.s.RequiredScopes)
	if panicked {
		return nil, nil, true
	}
	if se == nil && p.proof != nil {
		if err := v.claimProof(ctx, p.proof); err != nil {
			return nil, err, false
		}
	}
	if p.scopes == nil {
		return se, nil, false
	}
	extra := p.scopes()
	if len(extra) == 0 {
		return se, nil, false
	}
	xe, panicked := v.missingScopes(ctx, a.scopes, extra)
	switch {
	case panicked:
		return nil, nil, true
	case se == nil:
		return xe, nil, false
	case xe != nil:
		se.Missing = appendScopes(se.Missing, xe.Missing, "")
	}
	return se, nil, false
}

// reject decides whether a accepts its token at now, scopes aside: those
// are checked by missingScopes.
func (v *Verifier) reject(a *answer, now time.Time) error {
	if !a.active {
		return ErrTokenInactive
	}
	if a.tokenUse != "" && a.tokenUse != "access_token" || strings.EqualFold(a.tokenType, "refresh_token") {
		return ErrNotAccessToken
	}
	if !a.expiresAt.IsZero() && !now.Before(a.expiresAt.Add(v.s.Leeway)) {
		return ErrTokenExpired
	}
	if !a.notBefore.IsZero() && now.Add(v.s.Leeway).Before(a.notBefore) {
		return ErrTokenNotYetValid
	}
	if v.s.Issuer != "" && a.issuer != v.s.Issuer {
		return ErrIssuerMismatch
	}
	if len(v.s.Audience) > 0 && !slices.ContainsFunc(a.audience, func(aud string) bool {
		return audienceIn(aud, v.s.Audience)
	}) {
		return ErrAudienceMismatch
	}
	return nil
}

// errMatcherPanicked is the cause of the failure when Settings.ScopeMatcher
// panicked while Verify checked RequiredScopes.
var errMatcherPanicked = errors.New("panic in " + whereScopeMatcher)
