package introspection

import "sync/atomic"

// Stats counts what a [Verifier] has done since it was made.
type Stats struct {
	// Verifications is the number of Verify calls that returned: the sum of
	// Accepted, Rejected, InsufficientScope, Failed and Canceled.
	Verifications uint64
	// Accepted counts tokens accepted.
	Accepted uint64
	// Rejected counts errors satisfying ErrInvalidToken.
	Rejected uint64
	// InsufficientScope counts errors satisfying ErrInsufficientScope.
	InsufficientScope uint64
	// Failed counts errors satisfying ErrIntrospectionFailed, one per caller.
	Failed uint64
	// Canceled counts calls whose own context ended first.
	Canceled uint64

	// CacheHits and CacheMisses count cache lookups; both stay zero when
	// caching is off.
	CacheHits   uint64
	CacheMisses uint64
	// CacheEntries is the number of entries in the built-in cache, or -1
	// with a caller's Cache.
	CacheEntries int
	// CacheErrors counts the calls of a caller's Cache (Get, Set, Delete)
	// that failed, outlived their deadline or panicked, and stored values
	// refused (too large, or not an answer).
	CacheErrors uint64
	// CacheSkipped counts lookups and stores left out while a caller's
	// Cache cools down after an error.
	CacheSkipped uint64
	// StaleServed counts verdicts, accepted or refused, given from an
	// answer past its cache entry's end because the authorization server
	// could not answer (Settings.StaleIfError). Each is counted as accepted
	// or refused too, never as failed.
	StaleServed uint64

	// UpstreamRequests counts introspection requests sent.
	UpstreamRequests uint64
	// CollapsedWaiters counts calls that received the answer of a request
	// another call had started, instead of sending their own.
	CollapsedWaiters uint64
	// Failures counts failed introspection requests by kind, one per
	// request (not per waiting caller). A panic on a caller's own
	// goroutine (in Settings.Now) counts once per call, as FailurePanic.
	// FailureUnavailable counts the shared requests the circuit breaker
	// did not send.
	Failures map[FailureKind]uint64
	// Breaker is the state of the circuit breaker; BreakerClosed when
	// Settings.BreakerThreshold turns it off.
	Breaker BreakerState
	// BreakerOpened counts the breaker's transitions to open: after
	// BreakerThreshold failures, and after each failed probe.
	BreakerOpened uint64
	// Panics counts panics recovered in the verifier's dependencies: a
	// Cache, the HTTPClient's transport, the Logger's handler,
	// Settings.Now and Settings.ScopeMatcher, and in the OperationFunc of
	// the verifier's RequireBearerToken middleware.
	Panics uint64

	// LocalCacheHits counts the CacheHits that the local tier in front of
	// a caller's Cache gave at once, without calling the Cache
	// (Settings.LocalCacheTTL).
	LocalCacheHits uint64
	// LocalCacheEntries is the number of entries in that local tier.
	LocalCacheEntries int
	// Invalidations counts the keys that the Cache's Invalidator
	// delivered, each dropped from the local tier (the verifier's own
	// Forget comes back too); InvalidationsRefused counts the messages that
	// were not keys of the verifier's namespace, which drop nothing.
	Invalidations        uint64
	InvalidationsRefused uint64
	// InvalidationsSubscribed reports whether the Cache's invalidations
	// reach the local tier now. While they do not, its entries live at
	// most UnsubscribedLocalCacheTTL.
	InvalidationsSubscribed bool
}

var failureKinds = [...]FailureKind{
	FailureTransport, FailureTimeout, FailureStatus, FailureRedirect,
	FailureContentType, FailureTooLarge, FailureMalformed, FailurePanic,
	FailureReplayStore, FailureUnavailable, FailureDiscovery,
}

// paddedCounter keeps a hot counter on its own cache line.
type paddedCounter struct {
	atomic.Uint64
	_ [56]byte
}

type counters struct {
	accepted, rejected, insufficientScope, failed, canceled paddedCounter
	cacheHits, cacheMisses, cacheErrors, cacheSkipped       paddedCounter
	upstream, collapsed                                     paddedCounter
	panics                                                  atomic.Uint64
	staleServed                                             atomic.Uint64
	failures                                                [len(failureKinds)]atomic.Uint64

	requestHits                         atomic.Uint64 // the cacheHits of callers of a shared request
	invalidations, invalidationsRefused atomic.Uint64
}

func (c *counters) failure(k FailureKind) {
	for i, fk := range failureKinds {
		if fk == k {
			c.failures[i].Add(1)
			return
		}
	}
}

// Stats returns a snapshot of the verifier's counters.
func (v *Verifier) Stats() Stats {
	c := &v.stats
	s := Stats{
		Accepted:          c.accepted.Load(),
		Rejected:          c.rejected.Load(),
		InsufficientScope: c.insufficientScope.Load(),
		Failed:            c.failed.Load(),
		Canceled:          c.canceled.Load(),
		CacheHits:         c.cacheHits.Load(),
		CacheMisses:       c.cacheMisses.Load(),
		CacheErrors:       c.cacheErrors.Load(),
		CacheSkipped:      c.cacheSkipped.Load(),
		UpstreamRequests:  c.upstream.Load(),
		CollapsedWaiters:  c.collapsed.Load(),
		Panics:            c.panics.Load(),
		StaleServed:       c.staleServed.Load(),
		Failures:          make(map[FailureKind]uint64, len(failureKinds)),
	}
	s.Breaker, s.BreakerOpened = v.breakerStats()
	s.Verifications = s.Accepted + s.Rejected + s.InsufficientScope + s.Failed + s.Canceled
	if v.cache != nil {
		s.CacheEntries = v.cache.len()
	}
	if ss, ok := v.cache.(*sharedStore); ok && ss.local != nil {
		s.LocalCacheEntries = ss.local.len()
		// The hits a caller found itself, in the local tier; the shared
		// request counts its own after cacheHits.
		requestHits := c.requestHits.Load()
		s.LocalCacheHits = c.cacheHits.Load() - requestHits
	}
	s.InvalidationsSubscribed = v.forgets.isUp() // only a subscription to an Invalidator brings it up
	s.Invalidations = c.invalidations.Load()
	s.InvalidationsRefused = c.invalidationsRefused.Load()
	for i, k := range failureKinds {
		s.Failures[k] = c.failures[i].Load()
	}
	return s
}
