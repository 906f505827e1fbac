package introspection

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"
)

// Observer is told what a [Verifier] does, so that metrics and traces can
// follow it: set it in Settings.Observer. The module
// github.com/mcpauth/introspection/otel implements it with OpenTelemetry.
// With no Observer set, the verifier does no work for it.
//
// A verification is a call of [Verifier.Verify], or the check of a
// request's token by [RequireBearerToken]. It starts with VerifyStart and
// ends with one VerifyEnd, whose outcome is the one [Stats] counts (a
// [MemoryObserver] is told of one that memory answered by one
// VerifyFromMemory instead); the events between come on the verification's
// goroutine, or on the goroutine of the introspection request it shares
// with others (UpstreamStart and UpstreamEnd, BreakerChange, and the cache
// calls of that request), after VerifyStart of the verification that
// started the request and before its VerifyEnd, unless its own context
// ended first; the store of the answer in a caller's Cache runs after the
// callers have their answer. A fetch of the issuer's metadata is told by
// MetadataFetch, on the fetch's own goroutine, before the verifications
// waiting for it go on; a refresh in the background, which no verification
// waits for, may end after the verification that started it.
//
// The Start methods return the context that the work they start goes on
// with: ctx itself, or a context derived from it (an OpenTelemetry span
// goes there). The verification's later events get the context
// VerifyStart returned; the introspection request runs with the one
// UpstreamStart returned, as does the HTTPClient's transport, and each
// call of a caller's Cache with the one CacheCallStart returned. A nil
// context leaves ctx as it was.
//
// Methods are called concurrently and should return quickly: the
// verifier waits for each. A slow observer slows every verification, and
// one that blocks holds the verification it was called for. The callers
// of a shared request whose UpstreamStart, UpstreamEnd or cache call
// blocks stop waiting at the bounds [Verifier] states, with
// FailureTimeout; a BreakerChange that blocks, which is called before the
// callers of the request that changed the breaker get their answer, holds
// them until their own contexts end, as a Logger that blocks there does.
// A panic in a method is recovered, counted in [Stats].Panics and logged,
// as for the verifier's other dependencies; the event is lost (a Start
// method's context stays as it was) and the verdict is the one it would
// have been.
//
// Events hold only values of small fixed sets, numbers and the
// introspection URL without its query (with discovery, only the scheme,
// host and port of the endpoint the issuer's metadata names): never the
// token, its claims, the client's credentials or text of the
// authorization server.
//
// An implementation embeds [NopObserver], which does nothing for each
// event, and overrides the methods it needs. New events are added to
// Observer and NopObserver together, so that implementations keep
// compiling. Observer has an unexported method, so a type implements it
// only by embedding NopObserver, or another Observer that it wraps;
// [NewVerifier] refuses an Observer whose methods cannot be called: a nil
// pointer, or a value that embeds a nil Observer.
type Observer interface {
	// VerifyStart is called as a verification starts.
	VerifyStart(ctx context.Context) context.Context
	// VerifyEnd is called once as a verification ends, with its verdict.
	VerifyEnd(ctx context.Context, e VerifyEvent)
	// CacheLookup is called after a verification looked its token up in
	// the cache, with what it found, and again with CacheStale when the
	// authorization server could not answer and a stale answer gave the
	// verdict (Settings.StaleIfError). It is not called when caching is
	// off. With a caller's Cache, a lookup that the local tier cannot
	// answer goes on in the shared request, which reads the Cache:
	// CacheLookup comes once that request has its answer.
	CacheLookup(ctx context.Context, r CacheResult)
	// CollapsedWaiter is called when a verification got the answer of an
	// introspection request another verification had started, instead of
	// sending its own ([Stats].CollapsedWaiters).
	CollapsedWaiter(ctx context.Context)
	// UpstreamStart is called as an introspection request is sent, after
	// the circuit breaker let it through.
	UpstreamStart(ctx context.Context, r UpstreamRequest) context.Context
	// UpstreamEnd is called once for each UpstreamStart, when the
	// introspection request is over: its answer read, or its failure
	// known; also when a dependency ends the request's goroutine inside
	// it, by a panic or runtime.Goexit (the HTTPClient's transport, a
	// response body, Settings.Now), with FailurePanic and no status code.
	UpstreamEnd(ctx context.Context, e UpstreamEvent)
	// CacheCallStart is called before each call of a caller's [Cache]
	// (Settings.Cache). The built-in cache, an in-memory lookup, has no
	// calls: its results are told by CacheLookup.
	CacheCallStart(ctx context.Context, op CacheOperation) context.Context
	// CacheCallEnd is called when that call has returned, or when the
	// verifier stopped waiting for it.
	CacheCallEnd(ctx context.Context, e CacheCallEvent)
	// CacheError is called for each cache error [Stats].CacheErrors
	// counts: a failed call of a caller's Cache, with the context of that
	// call (the one its CacheCallStart returned) before its CacheCallEnd,
	// and a stored value that is not an answer (CacheDecode), or an
	// answer that could not be encoded to be stored (CacheSet without a
	// call), with the verification's context.
	CacheError(ctx context.Context, op CacheOperation)
	// BreakerChange is called when the circuit breaker changes state, by
	// the introspection request that changed it.
	BreakerChange(ctx context.Context, e BreakerEvent)
	// MetadataFetch is called once a fetch of the issuer's metadata
	// (discovery: Settings.Issuer without Settings.IntrospectionURL) is
	// over, on the fetch's goroutine, before the calls waiting for it go
	// on. ctx holds the values of the context of the call that started
	// the fetch: that VerifyStart returned to the verification whose
	// request needed the endpoint, or that of [Verifier.Discover]'s
	// caller. A fetch stopped by [Verifier.Close], or whose result came
	// after its callers stopped waiting and was dropped, is not told.
	MetadataFetch(ctx context.Context, e MetadataEvent)

	nopObserver() // only NopObserver has it: implementations embed it
}

// A MemoryObserver is an [Observer] that is told of a verification
// answered from memory by one call, VerifyFromMemory, in place of
// VerifyStart, CacheLookup and VerifyEnd, so that such a verification,
// which takes far less time than a request, costs it little: no context
// of its own, nor the time it started. Memory answers a verification when
// the built-in cache or the local tier in front of a caller's Cache
// (Settings.LocalCacheTTL) holds a fresh answer for its token, active (a
// hit) or not (a negative hit), and its check waits for nothing: a check
// that reads the request's operation ([MiddlewareOptions].Operation) or
// claims a DPoP proof in a ReplayStore other than one in memory (the
// built-in one, [NewMemoryReplayStore]) starts with VerifyStart and
// CacheLookup right after the lookup. Its other verifications start with
// VerifyStart once they looked in memory and found nothing, or, for one
// that ended before it looked (a malformed token, a context already
// ended), right before their VerifyEnd; they go on as for any Observer.
// NopObserver is not a MemoryObserver: a type is one when it has the
// method, also through a MemoryObserver it embeds, so a wrapper that
// embeds one and overrides VerifyEnd overrides VerifyFromMemory too, or
// embeds the Observer interface instead, which has no such method.
type MemoryObserver interface {
	Observer
	// VerifyFromMemory is called once a verification that memory answered
	// has its verdict, with the caller's context and what it found there:
	// CacheHit or CacheNegative.
	VerifyFromMemory(ctx context.Context, r CacheResult, e VerifyEvent)
}

// NopObserver is an [Observer] that does nothing for each event. Embed it
// in an observer of your own, which then overrides only the events it
// needs and keeps compiling when events are added.
type NopObserver struct{}

// VerifyStart returns ctx.
func (NopObserver) VerifyStart(ctx context.Context) context.Context { return ctx }

// VerifyEnd does nothing.
func (NopObserver) VerifyEnd(context.Context, VerifyEvent) {}

// CacheLookup does nothing.
func (NopObserver) CacheLookup(context.Context, CacheResult) {}

// CollapsedWaiter does nothing.
func (NopObserver) CollapsedWaiter(context.Context) {}

// UpstreamStart returns ctx.
func (NopObserver) UpstreamStart(ctx context.Context, _ UpstreamRequest) context.Context { return ctx }

// UpstreamEnd does nothing.
func (NopObserver) UpstreamEnd(context.Context, UpstreamEvent) {}

// CacheCallStart returns ctx.
func (NopObserver) CacheCallStart(ctx context.Context, _ CacheOperation) context.Context { return ctx }

// CacheCallEnd does nothing.
func (NopObserver) CacheCallEnd(context.Context, CacheCallEvent) {}

// CacheError does nothing.
func (NopObserver) CacheError(context.Context, CacheOperation) {}

// BreakerChange does nothing.
func (NopObserver) BreakerChange(context.Context, BreakerEvent) {}

// MetadataFetch does nothing.
func (NopObserver) MetadataFetch(context.Context, MetadataEvent) {}

func (NopObserver) nopObserver() {}

// Outcome is how a verification ended, as [Stats] counts it.
type Outcome string

const (
	// OutcomeAccepted counts in Stats.Accepted.
	OutcomeAccepted Outcome = "accepted"
	// OutcomeRejected is an error satisfying [ErrInvalidToken]
	// (Stats.Rejected).
	OutcomeRejected Outcome = "rejected"
	// OutcomeInsufficientScope is an error satisfying
	// [ErrInsufficientScope] (Stats.InsufficientScope).
	OutcomeInsufficientScope Outcome = "insufficient_scope"
	// OutcomeFailed is an error satisfying [ErrIntrospectionFailed]
	// (Stats.Failed).
	OutcomeFailed Outcome = "failed"
	// OutcomeCanceled is the caller's own context ending first
	// (Stats.Canceled).
	OutcomeCanceled Outcome = "canceled"
)

// VerifyEvent is the verdict of a verification.
type VerifyEvent struct {
	Outcome Outcome
	// Reason says why, from a fixed set of names:
	//   - with OutcomeAccepted: "none";
	//   - with OutcomeRejected, the error: "malformed_token"
	//     ([ErrMalformedToken]), "inactive" ([ErrTokenInactive]),
	//     "expired", "not_yet_valid", "issuer_mismatch",
	//     "audience_mismatch", "not_access_token", "proof_required",
	//     "proof_mismatch", "token_not_bound", "invalid_dpop_proof",
	//     "use_dpop_nonce", "proof_replayed", each for the sentinel of that
	//     name, or "invalid_token" for another;
	//   - with OutcomeInsufficientScope: "insufficient_scope";
	//   - with OutcomeFailed, the [FailureKind], such as "timeout" or
	//     "unavailable" ("other" for an error of none of the classes
	//     [ErrInvalidToken] documents, which Verify does not return);
	//   - with OutcomeCanceled: "canceled" or "deadline_exceeded".
	Reason string
}

// CacheResult is what a verification found in the cache.
type CacheResult string

const (
	// CacheHit is a fresh answer saying the token is active.
	CacheHit CacheResult = "hit"
	// CacheNegative is a fresh answer saying it is not
	// (Settings.NegativeCacheTTL).
	CacheNegative CacheResult = "negative"
	// CacheMiss is no fresh answer: the authorization server is asked.
	CacheMiss CacheResult = "miss"
	// CacheStale is an answer past its entry's end that gave the verdict
	// because the server could not answer (Settings.StaleIfError).
	CacheStale CacheResult = "stale"
)

// CacheOperation names a call of a [Cache], or what failed with it.
type CacheOperation string

const (
	CacheGet    CacheOperation = "get"
	CacheSet    CacheOperation = "set"
	CacheDelete CacheOperation = "delete"
	// CacheInvalidate is the Invalidate of a Cache that is an
	// [Invalidator], by [Verifier.Forget].
	CacheInvalidate CacheOperation = "invalidate"
	// CacheDecode is a stored value that is not an answer: only a
	// CacheError, after the Get that read it.
	CacheDecode CacheOperation = "decode"
)

// CacheCallEvent is the end of a call of a caller's [Cache].
type CacheCallEvent struct {
	Operation CacheOperation
	// Err is the call's error, the verifier's own when it stopped waiting
	// or when the call panicked; nil when the call succeeded.
	Err error
}

// UpstreamRequest is an introspection request about to be sent.
type UpstreamRequest struct {
	// Method is the HTTP method: POST.
	Method string
	// URL is the introspection endpoint the request goes to, without its
	// query and fragment: Settings.IntrospectionURL, or, with Discovered,
	// the scheme, host and port of the one the issuer's metadata names
	// (checked by the rule of IntrospectionURL: https, or http to a
	// loopback host) followed by the path "/{introspection}", as the
	// path the metadata names is the authorization server's text.
	URL string
	// Discovered reports that the endpoint came from the issuer's
	// metadata (Settings.Issuer without Settings.IntrospectionURL).
	Discovered bool
}

// discoveredPath stands for the path of a discovered endpoint in
// UpstreamRequest.URL.
const discoveredPath = "/{introspection}"

// UpstreamEvent is the end of an introspection request.
type UpstreamEvent struct {
	// StatusCode is the HTTP status of the answer, or 0 when none came.
	StatusCode int
	// Failure is why the request failed, or "" when it brought a usable
	// answer.
	Failure FailureKind
	// Duration is the time from sending the request to reading its
	// answer or failing, by the wall clock.
	Duration time.Duration
}

// BreakerEvent is a change of the circuit breaker's state.
type BreakerEvent struct {
	From, To BreakerState
}

// MetadataEvent is the end of a fetch of the issuer's metadata.
type MetadataEvent struct {
	// Failure is why the fetch failed, or "" when it brought usable
	// metadata, now in use:
	//   - FailureTransport: no answer came;
	//   - FailureTimeout: Settings.Timeout elapsed first;
	//   - FailureRedirect: a 3xx answer, which is not followed;
	//   - FailureStatus: another status than 200 (404 when none of the
	//     metadata URLs had metadata);
	//   - FailurePanic: a dependency panicked;
	//   - FailureDiscovery: an answer that was refused or could not be
	//     read (not JSON, too large, of another issuer, an endpoint that
	//     is not allowed), or metadata that lists no client
	//     authentication method the verifier may use.
	Failure FailureKind
	// StatusCode is the HTTP status of the answer the fetch ended with,
	// as the error of a failure holds it: 200 when it succeeded, 0 when
	// no answer came or when the metadata was refused for the methods it
	// lists.
	StatusCode int
	// Refresh reports that the verifier held metadata when the fetch
	// started: a failed refresh keeps it in use.
	Refresh bool
	// Duration is the time the fetch took, by the wall clock.
	Duration time.Duration
}

// checkObserver refuses an observer whose methods cannot be called: a nil
// pointer, or a value that embeds a nil Observer interface, on which every
// event would panic. It calls the unexported method, which only
// NopObserver has, and turns a panic into the error.
func checkObserver(o Observer) (err error) {
	if o == nil {
		return nil
	}
	defer func() {
		if recover() != nil {
			err = errors.New("introspection: Observer cannot be called: it is a nil pointer or embeds a nil Observer; " +
				"embed NopObserver, or set the Observer it wraps")
		}
	}()
	o.nopObserver()
	return nil
}

// observeVerifyStart tells the observer that a verification starts and
// returns the context the verification goes on with.
func (v *Verifier) observeVerifyStart(ctx context.Context) (out context.Context) {
	out = ctx
	defer v.recoverObserver(ctx, "VerifyStart")
	if c := v.s.Observer.VerifyStart(ctx); c != nil {
		out = c
	}
	return out
}

// telling is what the observer was told of a verification so far.
type telling uint8

const (
	unobserved  telling = iota // no Observer
	toldNothing                // a MemoryObserver, before the lookup in memory
	toldStart                  // VerifyStart
	toldMemory                 // memory answered it: VerifyFromMemory follows, with the verdict
)

// startObserving tells a MemoryObserver that was told nothing yet of the
// verification that it starts, once memory did not answer it.
func (v *Verifier) startObserving(ctx *context.Context, told *telling) {
	if *told == toldNothing {
		*ctx, *told = v.observeVerifyStart(*ctx), toldStart
	}
}

// lookupResult is what a verification that found a in the cache found.
func lookupResult(a *answer) CacheResult {
	if a.active {
		return CacheHit
	}
	return CacheNegative
}

// observeVerdict tells the observer the verdict of a verification that
// returned err, after what it was told so far: VerifyEnd after
// VerifyStart, VerifyFromMemory for one memory answered with found, and
// for one that ended before it looked in memory, VerifyStart and
// VerifyEnd.
func (v *Verifier) observeVerdict(ctx context.Context, told telling, found CacheResult, err error) {
	switch told {
	case toldMemory:
		defer v.recoverObserver(ctx, "VerifyFromMemory")
		o, reason := verdictOf(err)
		v.memObserver.VerifyFromMemory(ctx, found, VerifyEvent{Outcome: o, Reason: reason})
	case toldNothing:
		v.observeVerifyEnd(v.observeVerifyStart(ctx), err)
	default:
		v.observeVerifyEnd(ctx, err)
	}
}

// observeVerifyEnd tells the observer the verdict of a verification that
// returned err.
func (v *Verifier) observeVerifyEnd(ctx context.Context, err error) {
	defer v.recoverObserver(ctx, "VerifyEnd")
	o, r := verdictOf(err)
	v.s.Observer.VerifyEnd(ctx, VerifyEvent{Outcome: o, Reason: r})
}

// observeUnverified tells the observer of a verdict that the middleware
// reached without Verify, when it is an error: a DPoP proof refused, or a
// panic while it made a nonce.
func (v *Verifier) observeUnverified(ctx context.Context, err error) {
	if v.s.Observer != nil && err != nil {
		v.observeVerifyEnd(v.observeVerifyStart(ctx), err)
	}
}

// errNoncePanicked is the verdict of a request whose nonce could not be
// made because Settings.Now panicked.
var errNoncePanicked = &IntrospectionError{Kind: FailurePanic}

// observeCacheHit tells the observer that a verification found a fresh
// answer a in the cache.
func (v *Verifier) observeCacheHit(ctx context.Context, a *answer) {
	if v.s.Observer != nil {
		v.notifyCacheLookup(ctx, lookupResult(a))
	}
}

// observeCacheLookup tells the observer what a verification found in the
// cache.
func (v *Verifier) observeCacheLookup(ctx context.Context, r CacheResult) {
	if v.s.Observer != nil {
		v.notifyCacheLookup(ctx, r)
	}
}

func (v *Verifier) notifyCacheLookup(ctx context.Context, r CacheResult) {
	defer v.recoverObserver(ctx, "CacheLookup")
	v.s.Observer.CacheLookup(ctx, r)
}

// observeCollapsed tells the observer that a verification got the answer
// of another's request.
func (v *Verifier) observeCollapsed(ctx context.Context) {
	if v.s.Observer != nil {
		defer v.recoverObserver(ctx, "CollapsedWaiter")
		v.s.Observer.CollapsedWaiter(ctx)
	}
}

// observedIntrospect is introspect between UpstreamStart and UpstreamEnd.
// UpstreamEnd is called once for the request also when its goroutine
// unwinds inside it, by a panic or runtime.Goexit in a dependency (the
// transport, a response body, Settings.Now): with FailurePanic and no
// status code.
func (v *Verifier) observedIntrospect(ctx context.Context, token string, t *target) (*answer, error) {
	ctx = v.observeUpstreamStart(ctx, t.endpoint)
	start := time.Now()
	returned := false
	defer func() {
		if !returned {
			v.observeUpstreamEnd(ctx, UpstreamEvent{Failure: FailurePanic, Duration: time.Since(start)})
		}
	}()
	a, err := v.introspect(ctx, token, t)
	returned = true
	e := UpstreamEvent{StatusCode: http.StatusOK, Duration: time.Since(start)}
	if err != nil {
		e.StatusCode, e.Failure = 0, FailureTransport
		if ie, ok := err.(*IntrospectionError); ok {
			e.StatusCode, e.Failure = ie.StatusCode, ie.Kind
			if _, panicked := errors.AsType[*panicError](ie.Err); panicked {
				e.Failure = FailurePanic // in the caller's transport
			}
		}
	}
	v.observeUpstreamEnd(ctx, e)
	return a, err
}

func (v *Verifier) observeUpstreamStart(ctx context.Context, endpoint *url.URL) (out context.Context) {
	out = ctx
	defer v.recoverObserver(ctx, "UpstreamStart")
	r := UpstreamRequest{Method: http.MethodPost, Discovered: v.disc != nil}
	if r.Discovered {
		r.URL = endpoint.Scheme + "://" + endpoint.Host + discoveredPath
	} else {
		u := *endpoint
		u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
		r.URL = u.String()
	}
	if c := v.s.Observer.UpstreamStart(ctx, r); c != nil {
		out = c
	}
	return out
}

func (v *Verifier) observeUpstreamEnd(ctx context.Context, e UpstreamEvent) {
	defer v.recoverObserver(ctx, "UpstreamEnd")
	v.s.Observer.UpstreamEnd(ctx, e)
}

// cacheMethods name the Cache's method of each call, as a panic in it is
// logged.
var cacheMethods = map[CacheOperation]string{CacheGet: "Get", CacheSet: "Set", CacheDelete: "Delete", CacheInvalidate: "Invalidate"}

// observeCacheCallStart tells the observer that a call op of a caller's
// Cache starts, and returns the context it runs with.
func (v *Verifier) observeCacheCallStart(ctx context.Context, op CacheOperation) (out context.Context) {
	out = ctx
	defer v.recoverObserver(ctx, "CacheCallStart")
	if c := v.s.Observer.CacheCallStart(ctx, op); c != nil {
		out = c
	}
	return out
}

// observeCacheCallEnd tells the observer that the call op ended with err.
func (v *Verifier) observeCacheCallEnd(ctx context.Context, op CacheOperation, err error) {
	defer v.recoverObserver(ctx, "CacheCallEnd")
	v.s.Observer.CacheCallEnd(ctx, CacheCallEvent{Operation: op, Err: err})
}

// observeCacheError tells the observer of a cache error that Stats
// counts.
func (v *Verifier) observeCacheError(ctx context.Context, op CacheOperation) {
	if v.s.Observer != nil {
		defer v.recoverObserver(ctx, "CacheError")
		v.s.Observer.CacheError(ctx, op)
	}
}

// observeBreaker tells the observer that the breaker went from one state
// to another.
func (v *Verifier) observeBreaker(ctx context.Context, from, to BreakerState) {
	if v.s.Observer != nil {
		defer v.recoverObserver(ctx, "BreakerChange")
		v.s.Observer.BreakerChange(ctx, BreakerEvent{From: from, To: to})
	}
}

// observeMetadataFetch tells the observer that a fetch of the metadata
// ended with err after d, on ctx, with refresh when the verifier held
// metadata.
func (v *Verifier) observeMetadataFetch(ctx context.Context, err *IntrospectionError, refresh bool, d time.Duration) {
	if v.s.Observer != nil {
		defer v.recoverObserver(ctx, "MetadataFetch")
		e := MetadataEvent{StatusCode: http.StatusOK, Refresh: refresh, Duration: d}
		if err != nil {
			e.Failure, e.StatusCode = metadataFailure(ctx, err), err.StatusCode
		}
		v.s.Observer.MetadataFetch(ctx, e)
	}
}

// metadataFailure returns the kind of the failure ie of a fetch of the
// metadata that ran on ctx, as MetadataEvent describes it.
func metadataFailure(ctx context.Context, ie *IntrospectionError) FailureKind {
	_, panicked := errors.AsType[*panicError](ie.Err)
	_, transport := errors.AsType[*url.Error](ie.Err)
	switch {
	case panicked:
		return FailurePanic
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return FailureTimeout
	case transport:
		return FailureTransport
	case ie.StatusCode >= 300 && ie.StatusCode < 400:
		return FailureRedirect
	case ie.StatusCode != 0 && ie.StatusCode != http.StatusOK:
		return FailureStatus
	}
	return FailureDiscovery
}

// recoverObserver, deferred, recovers a panic in the observer's method
// event, and counts and logs it.
func (v *Verifier) recoverObserver(ctx context.Context, event string) {
	if r := recover(); r != nil {
		_ = v.recovered(ctx, "Observer."+event, r)
	}
}

// rejections are the reasons of the errors satisfying ErrInvalidToken,
// the more specific before those they wrap.
var rejections = []struct {
	err    error
	reason string
}{
	{ErrMalformedToken, "malformed_token"},
	{ErrTokenInactive, "inactive"},
	{ErrTokenExpired, "expired"},
	{ErrTokenNotYetValid, "not_yet_valid"},
	{ErrIssuerMismatch, "issuer_mismatch"},
	{ErrAudienceMismatch, "audience_mismatch"},
	{ErrNotAccessToken, "not_access_token"},
	{ErrProofRequired, "proof_required"},
	{ErrProofMismatch, "proof_mismatch"},
	{ErrTokenNotBound, "token_not_bound"},
	{ErrUseDPoPNonce, "use_dpop_nonce"},
	{ErrProofReplayed, "proof_replayed"},
	{ErrInvalidDPoPProof, "invalid_dpop_proof"},
}

// verdictOf returns the outcome and reason of a verification that
// returned err, as VerifyEvent describes them.
func verdictOf(err error) (Outcome, string) {
	if err == nil {
		return OutcomeAccepted, "none"
	}
	if ie, ok := errors.AsType[*IntrospectionError](err); ok {
		return OutcomeFailed, string(ie.Kind)
	}
	if errors.Is(err, ErrInsufficientScope) {
		return OutcomeInsufficientScope, "insufficient_scope"
	}
	if errors.Is(err, ErrInvalidToken) {
		for _, r := range rejections {
			if errors.Is(err, r.err) {
				return OutcomeRejected, r.reason
			}
		}
		return OutcomeRejected, "invalid_token"
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return OutcomeCanceled, "deadline_exceeded"
	case errors.Is(err, context.Canceled):
		return OutcomeCanceled, "canceled"
	}
	return OutcomeFailed, "other"
}
