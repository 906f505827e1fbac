package introspection

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Forgetting a token: Verifier.Forget drops its answer from the caches,
// and a Cache that is an Invalidator carries that to the other verifiers
// sharing it, which drop their local copies.

// Invalidator is what a shared [Cache] may also implement to carry
// [Verifier.Forget] to every verifier that shares it, so that each drops
// its copy of the answer from its local tier (Settings.LocalCacheTTL).
// [NewVerifier] checks whether Settings.Cache implements it. The
// rediscache module's Cache does, with Redis pub/sub.
type Invalidator interface {
	// Invalidate tells every verifier subscribed to key's namespace, the
	// caller's own included, that the value under key is gone. key is a
	// [Verifier.CacheKey]: the namespace, a colon and a digest of the
	// token, never the token. It is called after the Cache's Delete of
	// the key, whether or not that succeeded, with a context that ends
	// after one second.
	Invalidate(ctx context.Context, key string) error
	// SubscribeInvalidations starts delivering to sub the keys that any
	// verifier invalidates in namespace, and returns at once. It keeps
	// the subscription up by itself, subscribing again after a failure,
	// and calls sub.Subscribed(true) each time invalidations start to
	// reach sub and sub.Subscribed(false) each time they may have stopped.
	// Calls of sub come from one goroutine at a time. stop ends the
	// subscription and returns once no call of sub runs or will be made;
	// [Verifier.Close] calls it. [NewVerifier] and Close wait for each
	// no longer than for a call of the Cache, one second: a subscription
	// whose call has not returned by then counts as down for as long as
	// the verifier lives (logged at warn), and a stop returned later is
	// called then, on a goroutine left behind until it returns.
	SubscribeInvalidations(namespace string, sub InvalidationSubscriber) (stop func())
}

// InvalidationSubscriber receives what an [Invalidator] delivers. The
// verifier implements it; each call returns quickly.
type InvalidationSubscriber interface {
	// Invalidated drops the local copy of the answer under key. A key
	// that is not a [Verifier.CacheKey] of the subscriber's namespace is
	// ignored and counted in [Stats].InvalidationsRefused.
	Invalidated(key string)
	// Subscribed says whether invalidations reach the subscriber from now
	// on. Either way the local tier is emptied, as invalidations may have
	// been lost; while they do not reach it, its entries live at most
	// [UnsubscribedLocalCacheTTL].
	Subscribed(up bool)
}

// maxForgotten bounds the keys a verifier remembers as forgotten, so that a
// shared request that began before a key was forgotten does not store its
// answer for it. Past it the keys are dropped, and every shared request
// running then stores nothing.
const maxForgotten = 1024

// forgetTombstone is how long after a key is forgotten, here or by another
// verifier that this one hears of, a value read from the shared Cache under
// it is ignored, as a miss that asks the authorization server: another
// verifier's Set under way at the forget may land after its Delete, and
// then stays until that verifier deletes it again once its Set returns,
// at most the bound on a call of the Cache later, plus a margin. Answers
// fetched here after the forget are stored in both tiers as ever.
const forgetTombstone = cacheCallTimeout + time.Second

// forgetting records what was forgotten while shared requests run: the
// keys, so that a request that began before stores nothing for them, and
// the stores under way, so that Forget waits for them. Its zero value is
// ready to use.
type forgetting struct {
	mu      sync.Mutex          // guards all fields, and makes each store's local part atomic with forgets
	seq     uint64              // counts forgets and changes of the subscription
	keys    map[string]forgotAt // each key's latest forget; at most maxForgotten
	floor   uint64              // requests that began before it store nothing
	floorAt time.Time           // when keys were last cleared: a tombstone of every key until forgetTombstone after
	stores  map[string]*storing
	up      bool   // invalidations reach the verifier
	upSince uint64 // the seq at which they started to
	gaveUp  bool   // the subscription was closed or given up on: up stays false
}

// forgotAt is when a key was last forgotten: the seq, and the time by the
// monotonic clock, from which its tombstone lasts forgetTombstone.
type forgotAt struct {
	seq uint64
	at  time.Time
}

// storing counts the stores under way for one key.
type storing struct {
	n    int
	done chan struct{} // closed when n drops to zero
}

// now returns the point a shared request starts from, before it reads any
// cache or asks the server.
func (fg *forgetting) now() uint64 {
	fg.mu.Lock()
	defer fg.mu.Unlock()
	return fg.seq
}

// forget records that key was forgotten, and returns a channel closed once
// the stores of key under way have returned, or nil if none is.
func (fg *forgetting) forget(key string) <-chan struct{} {
	fg.mu.Lock()
	defer fg.mu.Unlock()
	fg.seq++
	now := time.Now()
	if len(fg.keys) >= maxForgotten {
		clear(fg.keys)
		fg.floor = fg.seq
		fg.floorAt = now
	}
	if fg.keys == nil {
		fg.keys = make(map[string]forgotAt)
	}
	fg.keys[key] = forgotAt{seq: fg.seq, at: now}
	if s := fg.stores[key]; s != nil {
		return s.done
	}
	return nil
}

// store runs the store of key by a shared request that began at since,
// unless key was forgotten since then: local, the part in this process,
// atomically with forgets and changes of the subscription, told whether
// invalidations have reached the verifier all along since the request
// began (else one may have been lost); then shared, the part in a shared
// Cache, which a Forget of key here waits for. When key is forgotten while
// shared runs, as another verifier's Forget that this one hears of, which
// waits for nothing here, shared may land after that Forget's Delete: undo
// then deletes what it stored. It reports whether it ran them.
func (fg *forgetting) store(key string, since uint64, local func(up bool), shared, undo func()) bool {
	s := fg.begin(key, since, local)
	if s == nil {
		return false
	}
	forgotten := false
	func() {
		defer func() {
			fg.mu.Lock()
			defer fg.mu.Unlock()
			forgotten = fg.forgotten(key, since)
			if s.n--; s.n == 0 {
				close(s.done)
				delete(fg.stores, key)
			}
		}()
		shared()
	}()
	if forgotten {
		undo()
	}
	return true
}

// begin runs the local part of a store of key by a request that began at
// since and counts the store as under way, unless key was forgotten since;
// it returns the count, or nil.
func (fg *forgetting) begin(key string, since uint64, local func(up bool)) *storing {
	fg.mu.Lock()
	defer fg.mu.Unlock()
	if !fg.runLocal(key, since, local) {
		return nil
	}
	if fg.stores == nil {
		fg.stores = make(map[string]*storing)
	}
	s := fg.stores[key]
	if s == nil {
		s = &storing{done: make(chan struct{})}
		fg.stores[key] = s
	}
	s.n++
	return s
}

// storeLocal runs local, the store of key in this process alone by a
// shared request that began at since, as store runs its local part,
// unless key was forgotten since.
func (fg *forgetting) storeLocal(key string, since uint64, local func(up bool)) {
	fg.mu.Lock()
	defer fg.mu.Unlock()
	fg.runLocal(key, since, local)
}

// runLocal runs local, with fg.mu held, unless key was forgotten since
// since, and reports whether it ran it. It tells local whether
// invalidations have reached the verifier all along since then.
func (fg *forgetting) runLocal(key string, since uint64, local func(up bool)) bool {
	if fg.forgotten(key, since) {
		return false
	}
	local(fg.up && since >= fg.upSince)
	return true
}

// forgottenSince reports whether key was forgotten after since, the point
// a shared request began, which then neither stores its answer nor takes
// callers who come later.
func (fg *forgetting) forgottenSince(key string, since uint64) bool {
	fg.mu.Lock()
	defer fg.mu.Unlock()
	return fg.forgotten(key, since)
}

// forgotten is forgottenSince with fg.mu held.
func (fg *forgetting) forgotten(key string, since uint64) bool {
	return since < fg.floor || fg.keys[key].seq > since
}

// tombstoned reports whether key was forgotten less than forgetTombstone
// before now, a reading of time.Now: a value read from the shared Cache
// under it is then ignored. Past maxForgotten forgets, every key is, for
// forgetTombstone after the last forget.
func (fg *forgetting) tombstoned(key string, now time.Time) bool {
	fg.mu.Lock()
	defer fg.mu.Unlock()
	if !fg.floorAt.IsZero() && now.Before(fg.floorAt.Add(forgetTombstone)) {
		return true
	}
	f, ok := fg.keys[key]
	return ok && now.Before(f.at.Add(forgetTombstone))
}

// subscribed records whether invalidations reach the verifier, and runs
// drop, which empties the local tier, atomically with stores. A shared
// request running when they start to is told, when it stores, that they
// did not reach the verifier all along: it may have read an answer whose
// invalidation was lost.
func (fg *forgetting) subscribed(up bool, drop func()) {
	fg.mu.Lock()
	defer fg.mu.Unlock()
	fg.seq++
	up = up && !fg.gaveUp
	if up {
		fg.upSince = fg.seq
	}
	fg.up = up
	drop()
}

// giveUp records that the subscription was closed, or given up on as its
// Invalidator panicked or hung: from then on invalidations are taken not
// to reach the verifier, whatever the subscription says, and drop empties
// the local tier.
func (fg *forgetting) giveUp(drop func()) {
	fg.mu.Lock()
	fg.gaveUp = true
	fg.mu.Unlock()
	fg.subscribed(false, drop)
}

// isUp reports whether invalidations reach the verifier.
func (fg *forgetting) isUp() bool {
	fg.mu.Lock()
	defer fg.mu.Unlock()
	return fg.up
}

// Forget drops the answer for token from the verifier's caches, so that
// the next [Verifier.Verify] of token asks the authorization server: from
// the built-in cache, or from the local tier and the shared [Cache]
// (Delete); then, when the Cache is an [Invalidator], it tells the other
// verifiers sharing it to drop their local copies. Call it when the
// server learns that a token was revoked.
//
// For forgetTombstone (two seconds) after a forget, here or by another
// verifier that this one hears of, a value read from the Cache under the
// token's key is ignored: another verifier's Set under way may land after
// the Delete.
//
// A shared request for token under way when Forget returns stores nothing:
// callers after Forget never join it, and Forget waits for a store it
// already began (bounded by one second per call of the Cache), unless ctx
// ends first. It returns [ErrMalformedToken] for a token that Verify
// refuses before asking anyone, the failures of the Cache's Delete and
// Invalidate, joined (it calls Invalidate whether or not Delete
// succeeded), or ctx's error; the local copy is dropped either way. With
// caching off it only makes sure that no request under way answers a
// later call.
func (v *Verifier) Forget(ctx context.Context, token string) error {
	if !validToken(token) {
		return ErrMalformedToken
	}
	key := v.CacheKey(token)
	running := v.forgets.forget(key)
	v.mu.Lock()
	if f := v.flights[token]; f != nil {
		delete(v.flights, token)
		v.detached[f] = struct{}{}
	}
	v.mu.Unlock()
	if v.cache == nil {
		return nil
	}
	var err error
	if running != nil {
		select {
		case <-running:
		case <-ctx.Done():
			err = fmt.Errorf("introspection: forget: a store under way did not end: %w", ctx.Err())
		}
	}
	if derr := v.cache.drop(ctx, token); err == nil {
		err = derr
	}
	return err
}

// flightKey returns the CacheKey of token for its shared request, or ""
// with caching off.
func (v *Verifier) flightKey(token string) string {
	if v.cache == nil {
		return ""
	}
	return v.CacheKey(token)
}

// subscriber is the verifier's end of an Invalidator's subscription.
type subscriber struct{ s *sharedStore }

// Invalidated drops the local copy of the answer under key, and makes a
// shared request of the key that is under way store nothing.
func (sub subscriber) Invalidated(key string) {
	s := sub.s
	digest, ok := digestOf(s.v.cacheNamespace, key)
	if !ok {
		s.v.stats.invalidationsRefused.Add(1)
		return
	}
	s.v.forgets.forget(key)
	s.local.forgetDigest(digest)   // a subscription has a local tier
	s.v.stats.invalidations.Add(1) // once dropped: who sees the count sees the drop
}

// Subscribed records whether invalidations reach the verifier, and empties
// the local tier.
func (sub subscriber) Subscribed(up bool) {
	sub.s.v.forgets.subscribed(up, sub.s.local.clear)
}

// digestOf returns the token's digest in key, a [Verifier.CacheKey] of
// namespace, and whether key is one: the namespace, a colon and 64
// lowercase hex digits.
func digestOf(namespace, key string) (d [sha256.Size]byte, ok bool) {
	if len(key) != len(namespace)+1+2*sha256.Size {
		return d, false
	}
	digest, ok := strings.CutPrefix(key, namespace+":")
	if !ok || strings.ContainsFunc(digest, func(r rune) bool { return (r < '0' || r > '9') && (r < 'a' || r > 'f') }) {
		return d, false
	}
	if _, err := hex.Decode(d[:], []byte(digest)); err != nil {
		return d, false
	}
	return d, true
}
