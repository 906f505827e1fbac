package introspection

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Two tiers: with a shared Cache, a built-in cache in this process, the
// local tier, holds answers in front of it for Settings.LocalCacheTTL, so
// that hot tokens do not call the Cache. The caller looks in the local
// tier only; the shared request for the token reads the Cache, once, and
// decodes what it reads once, into the local tier.

// DefaultLocalCacheTTL is how long the local tier in front of a shared
// [Cache] keeps an answer when Settings.LocalCacheTTL is zero.
const DefaultLocalCacheTTL = 5 * time.Second

// UnsubscribedLocalCacheTTL bounds how long the local tier keeps an answer
// while a Cache that is an [Invalidator] cannot deliver invalidations: until
// its subscription is up, while it is down, and after [Verifier.Close]. A
// token forgotten by another verifier is then accepted here for at most
// that long.
const UnsubscribedLocalCacheTTL = time.Second

// newSharedStore returns the store for s.Cache, with the local tier in
// front of it unless s.LocalCacheTTL is negative.
func newSharedStore(v *Verifier, s Settings) *sharedStore {
	st := &sharedStore{c: s.Cache, v: v, cooldown: cacheCooldown, timeout: cacheCallTimeout, stale: s.StaleIfError}
	st.localTTL = s.LocalCacheTTL
	if st.localTTL == 0 {
		st.localTTL = DefaultLocalCacheTTL
	}
	if st.localTTL > 0 {
		st.local = newMemoryCache(s.MaxCacheSize, v.now)
		if s.Now != nil {
			// A clock of the caller's may step back; time.Now, the
			// default, compares by its monotonic reading already.
			st.local.mono = time.Now
		}
		st.local.indexDigests()
	}
	st.inv, _ = s.Cache.(Invalidator)
	return st
}

// subscribe starts the subscription of the verifier's local tier to the
// invalidations of its Cache, if the Cache is an Invalidator. Until it is
// up, the local tier keeps answers for UnsubscribedLocalCacheTTL at most;
// if SubscribeInvalidations panics, or does not return within the bound on
// a call of the Cache, for as long as the verifier lives. A call that
// returns later has its stop called at once, on the goroutine left
// waiting for it.
func (v *Verifier) subscribe() {
	s := v.subscribing()
	if s == nil {
		return
	}
	stop, ok := s.bounded("SubscribeInvalidations", func() func() {
		return s.inv.SubscribeInvalidations(v.cacheNamespace, subscriber{s})
	})
	switch {
	case !ok:
		v.forgets.giveUp(s.local.clear)
	case stop != nil:
		v.unsubscribe = sync.OnceFunc(stop)
	}
}

// closeTiers ends the subscription, if any, waiting for its stop no longer
// than the bound on a call of the Cache: from then on, the local tier
// keeps answers for UnsubscribedLocalCacheTTL at most.
func (v *Verifier) closeTiers() {
	s := v.subscribing()
	if s == nil {
		return
	}
	if v.unsubscribe != nil {
		s.bounded("SubscribeInvalidations' stop", func() func() { v.unsubscribe(); return nil })
	}
	v.forgets.giveUp(s.local.clear)
}

// subscribing returns the store whose local tier subscribes to the
// invalidations of its Cache, or nil: the Cache must be an Invalidator,
// and the local tier on.
func (v *Verifier) subscribing() *sharedStore {
	if s, ok := v.cache.(*sharedStore); ok && s.inv != nil && s.local != nil {
		return s
	}
	return nil
}

// bounded runs f, a call of the Cache's Invalidator named op, on a
// goroutine of its own, and waits for it no longer than s.timeout, as for
// every call of the Cache. It returns what f returned and true, or false
// when f panicked (recovered and logged) or did not return in time
// (logged at warn). What f returns too late is a stop that nobody will
// call: the goroutine calls it then, and is left behind only while the
// Invalidator hangs.
func (s *sharedStore) bounded(op string, f func() func()) (func(), bool) {
	type result struct {
		stop func()
		ok   bool
	}
	run := func(f func() func()) (r result) {
		defer func() {
			if p := recover(); p != nil {
				_ = s.v.recovered(context.Background(), "Cache."+op, p)
				r = result{}
			}
		}()
		return result{stop: f(), ok: true}
	}
	done := make(chan result)
	late := make(chan struct{})
	go func() {
		r := run(f)
		select {
		case done <- r:
		case <-late:
			if r.stop != nil {
				run(func() func() { r.stop(); return nil })
			}
		}
	}()
	t := time.NewTimer(s.timeout)
	defer t.Stop()
	select {
	case r := <-done:
		return r.stop, r.ok
	case <-t.C:
		close(late)
		s.v.logError(context.Background(), slog.LevelWarn,
			"introspection: the Cache's "+op+" did not return in time; invalidations are taken not to reach the local tier",
			"error", fmt.Errorf("no answer within %v", s.timeout))
		return nil, false
	}
}

// get looks token up in the local tier.
func (s *sharedStore) get(ctx context.Context, token string, now time.Time) (*answer, bool) {
	if s.local == nil {
		return nil, false
	}
	return s.local.get(ctx, token, now)
}

// load looks token up for the shared request that began at since: in the
// local tier, which an earlier request may have filled since the caller
// looked, then in the Cache. A fresh answer from the Cache that says until
// when it is fresh (its fresh_until line) fills the local tier, unless
// token was forgotten since.
func (s *sharedStore) load(ctx context.Context, token string, now time.Time, since uint64) (*answer, bool) {
	if s.local != nil {
		if a, ok := s.local.get(ctx, token, now); ok {
			return a, true
		}
	}
	a, freshUntil, ok := s.lookup(ctx, token, now)
	if !ok || !freshUntil.IsZero() && !now.Before(freshUntil) {
		return nil, false
	}
	if s.local != nil && !freshUntil.IsZero() {
		// How long the shared entry stays fresh, from now: until its
		// fresh_until line says, never past an active token's exp. A
		// value without the line, as a verifier without the local tier
		// or an earlier version writes it, is fresh for as long as the
		// Cache keeps it, which the local tier cannot know: it is
		// served for this call only.
		now = s.v.now()
		ttl := min(s.localTTL, freshUntil.Sub(now))
		if a.active && !a.expiresAt.IsZero() {
			ttl = min(ttl, a.expiresAt.Sub(now))
		}
		if ttl > 0 {
			s.v.forgets.storeLocal(s.v.CacheKey(token), since, func(up bool) { s.keep(token, a, ttl, up) })
		}
	}
	return a, true
}

// keep puts a, fresh for ttl, in the local tier for at most LocalCacheTTL,
// and, while invalidations do not reach it (up is false), at most
// UnsubscribedLocalCacheTTL.
func (s *sharedStore) keep(token string, a *answer, ttl time.Duration, up bool) {
	if s.local == nil {
		return
	}
	ttl = min(ttl, s.localTTL)
	if s.inv != nil && !up {
		ttl = min(ttl, UnsubscribedLocalCacheTTL)
	}
	s.local.set(context.Background(), token, a, ttl)
}

// drop removes the answer for token from both tiers, whatever the
// cooldown, and, with an Invalidator, tells the other verifiers: it calls
// Invalidate even when Delete failed, as the other verifiers' local copies
// are theirs to drop either way, and returns both failures.
func (s *sharedStore) drop(ctx context.Context, token string) error {
	if s.local != nil {
		s.local.forget(ctx, token)
	}
	key := s.v.CacheKey(token)
	var derr, ierr error
	if err := s.delete(ctx, key); err != nil {
		derr = fmt.Errorf("introspection: forget: the Cache's Delete failed: %w", err)
	}
	if s.inv != nil {
		if err := s.call(ctx, CacheInvalidate, func(ctx context.Context) error { return s.inv.Invalidate(ctx, key) }); err != nil {
			ierr = fmt.Errorf("introspection: forget: the Cache's Invalidate failed: %w", err)
		}
	}
	return errors.Join(derr, ierr)
}

// keep stores a, the answer for token fresh for ttl, in every tier, unless
// key, the token's CacheKey, was forgotten since the shared request began
// at since.
func (v *Verifier) keep(ctx context.Context, token, key string, a *answer, ttl time.Duration, since uint64) {
	v.forgets.store(key, since,
		func(up bool) { v.cache.keep(token, a, ttl, up) },
		func() { v.cache.share(ctx, token, a, ttl) },
		func() { v.cache.forget(ctx, token) })
}

// load is the built-in cache's lookup for a shared request: get.
func (c *memoryCache) load(ctx context.Context, token string, now time.Time, _ uint64) (*answer, bool) {
	return c.get(ctx, token, now)
}

// keep puts a in the built-in cache for ttl.
func (c *memoryCache) keep(token string, a *answer, ttl time.Duration, _ bool) {
	c.set(context.Background(), token, a, ttl)
}

// share does nothing: the built-in cache is not shared.
func (c *memoryCache) share(context.Context, string, *answer, time.Duration) {}

// drop removes the entry for token.
func (c *memoryCache) drop(ctx context.Context, token string) error {
	c.forget(ctx, token)
	return nil
}

// clear removes every entry.
func (c *memoryCache) clear() {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		for e := sh.tail; e != nil; e = sh.tail {
			sh.remove(e)
		}
		sh.mu.Unlock()
	}
}

// indexDigests makes c, the local tier, keep a digestIndex of its tokens.
func (c *memoryCache) indexDigests() {
	x := &digestIndex{tokens: make(map[[sha256.Size]byte]string)}
	for i := range c.shards {
		c.shards[i].index = x
	}
}

// digestIndex finds the token of a local tier's entry by the SHA-256
// digest of the token, which is all that an invalidation carries, so that a
// hit of the local tier looks the token up as one of the built-in cache
// does. It has an entry for each of the local tier's, added and dropped
// with it under its shard's lock.
type digestIndex struct {
	mu     sync.Mutex // guards tokens
	tokens map[[sha256.Size]byte]string
}

func (x *digestIndex) add(token string) {
	d := sha256.Sum256([]byte(token))
	x.mu.Lock()
	x.tokens[d] = token
	x.mu.Unlock()
}

func (x *digestIndex) drop(token string) {
	d := sha256.Sum256([]byte(token))
	x.mu.Lock()
	if x.tokens[d] == token {
		delete(x.tokens, d)
	}
	x.mu.Unlock()
}

// token returns the token whose digest is d, if the local tier has an
// entry for it.
func (x *digestIndex) token(d [sha256.Size]byte) (string, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	t, ok := x.tokens[d]
	return t, ok
}

// forgetDigest removes the entry of the token whose digest is d, if any.
func (c *memoryCache) forgetDigest(d [sha256.Size]byte) {
	if token, ok := c.shards[0].index.token(d); ok {
		c.forget(context.Background(), token)
	}
}

// countMiss counts, and tells the observer, that a call found nothing in
// the built-in cache. With a shared Cache, the caller's lookup is not over
// until its shared request has read the Cache: countLookup counts it then.
func (v *Verifier) countMiss(ctx context.Context) {
	if _, shared := v.cache.(*sharedStore); !shared {
		v.stats.cacheMisses.Add(1)
		v.observeCacheLookup(ctx, CacheMiss)
	}
}

// countLookup counts, and tells the observer, the lookup of a call that
// waited for a shared request of a shared Cache: a hit when the request's
// answer a came from either tier, else (a nil) a miss.
func (v *Verifier) countLookup(ctx context.Context, a *answer) {
	if _, shared := v.cache.(*sharedStore); !shared {
		return
	}
	if a != nil {
		v.stats.cacheHits.Add(1)
		v.stats.requestHits.Add(1) // after cacheHits, which Stats reads after it
		v.observeCacheHit(ctx, a)
		return
	}
	v.stats.cacheMisses.Add(1)
	v.observeCacheLookup(ctx, CacheMiss)
}
