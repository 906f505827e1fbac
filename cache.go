package introspection

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// Cache stores introspection answers outside the verifier, for example in a
// store shared by the replicas of one resource server. A Cache must be safe
// for concurrent use.
//
// Keys are [Verifier.CacheKey]: a namespace, a colon and the hex SHA-256
// digest of the token, never the token. The namespace is a digest of what
// the authorization server's answer depends on: the IntrospectionURL (with
// discovery, the Issuer) and the ClientID. RFC 7662 lets an authorization
// server answer each protected resource (each authenticated client)
// differently, so verifiers of different resource servers, or at different
// authorization servers, never read each other's answers from one store,
// while the replicas of one resource server share theirs. What does not change the answer stays out:
// the client secret (which a key never holds), the ClientAuthMethod, and
// the checks a verifier makes (Audience, Issuer, RequiredScopes, Leeway),
// which run again on every hit.
//
// Values are the authorization server's JSON answer, which holds no token
// (an answer that repeats the token is not stored). A value read back is
// held to the limits of an answer from the network: at most 1 MiB, decoded
// as strictly. A value that fails them counts as a cache error and is
// deleted.
//
// With Settings.StaleIfError, and with the local tier in front of the
// Cache (Settings.LocalCacheTTL, on unless negative), values record until
// when the answer is fresh, so that no verifier keeps it longer: a line
// "fresh_until=" and that time in Unix milliseconds (1 to 18 digits), then
// the JSON answer, such as
//
//	fresh_until=1764072060000
//	{"active":true,"client_id":"app","exp":1764075600}
//
// and the TTL handed to Set is the fresh TTL plus StaleIfError, never past
// an active token's exp, so that the value can be served stale when the
// authorization server cannot answer. A value without the line, as earlier
// versions and verifiers without either write it, is fresh for as long as
// the Cache keeps it. Versions before the line read a value with it as a
// bad value (counted, deleted, and the authorization server asked).
//
// A caller's own lookup never calls the Cache: it looks in the local tier
// only. The shared request for the token reads the Cache once (Get), so a
// token that neither tier holds costs one Get and, after the
// introspection, one Set. A Cache that also
// implements [Invalidator] carries [Verifier.Forget] to the local tiers of
// every verifier sharing it.
//
// Every call gets a context that ends after one second, and the verifier
// stops waiting then even if the Cache ignores its context (such a call
// keeps running on a goroutine of its own until it returns). Callers get
// the authorization server's answer without waiting for the Set that
// stores it.
//
// An error from Get, Set or Delete, a call that outlives its deadline, and
// a panic in one are counted in [Stats] and logged, and the verifier then
// asks the authorization server, so an outage of the cache never accepts
// or rejects a token by itself. After such an error the verifier leaves
// the cache alone for five seconds, so that an outage does not add a
// timeout to every request.
type Cache interface {
	// Get returns the value stored under key, and whether there was one.
	Get(ctx context.Context, key string) (value []byte, ok bool, err error)
	// Set stores value under key for ttl, which is always positive.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Delete removes key, if present.
	Delete(ctx context.Context, key string) error
}

// store is what the verifier needs of a cache.
type store interface {
	// get is a caller's lookup, in this process only: the built-in
	// cache, or the local tier in front of a shared Cache.
	get(ctx context.Context, token string, now time.Time) (*answer, bool)
	// load is the lookup of the shared request for token, which began
	// at since (see forgetting): get, then the shared Cache, if any.
	load(ctx context.Context, token string, now time.Time, since uint64) (*answer, bool)
	// keep puts a, fresh for ttl, in this process; up says whether
	// invalidations reach it. It runs atomically with forgets.
	keep(token string, a *answer, ttl time.Duration, up bool)
	// share puts a, fresh for ttl, in the shared Cache, if any.
	share(ctx context.Context, token string, a *answer, ttl time.Duration)
	len() int
	// lookup returns the entry for token, fresh or kept to be served
	// stale, and until when it is fresh (zero: while it is kept).
	lookup(ctx context.Context, token string, now time.Time) (a *answer, freshUntil time.Time, ok bool)
	// forget removes the entry for token.
	forget(ctx context.Context, token string)
	// drop removes the entry for token from every tier, whatever a
	// cooldown, and tells the verifiers that share it: Forget.
	drop(ctx context.Context, token string) error
}

// CacheKey returns the key under which the verifier hands answers for token
// to a [Cache]: the namespace of the verifier's IntrospectionURL (with
// discovery, its Issuer) and ClientID (32 hex digits), a colon, and the
// lowercase hex SHA-256 digest of the token.
func (v *Verifier) CacheKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return v.cacheNamespace + ":" + hex.EncodeToString(sum[:])
}

// cacheNamespace returns the first 16 bytes, in hex, of the SHA-256 digest
// of endpoint and clientID, each preceded by its length, so that no two
// pairs share a namespace.
func cacheNamespace(endpoint, clientID string) string {
	h := sha256.New()
	for _, s := range []string{endpoint, clientID} {
		_, _ = h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(s))))
		_, _ = h.Write([]byte(s))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

const (
	// cacheCooldown is how long a failing Cache is left alone.
	cacheCooldown = 5 * time.Second
	// cacheCallTimeout bounds each call of a Cache.
	cacheCallTimeout = time.Second
)

// sharedStore adapts a caller's [Cache], with the local tier in front of
// it (see tiers.go).
type sharedStore struct {
	c         Cache
	v         *Verifier
	cooldown  time.Duration
	timeout   time.Duration // bounds each call of c
	stale     time.Duration // Settings.StaleIfError: how long values are kept past their end
	downUntil atomic.Int64  // Unix nanoseconds before which c is not used

	local    *memoryCache  // the local tier; nil when LocalCacheTTL is negative
	localTTL time.Duration // bounds the local tier's entries
	inv      Invalidator   // c, when it carries invalidations; else nil
}

// available reports whether the cache is out of its cooldown. It follows
// the wall clock, not Settings.Now: it is about the store, not the token.
func (s *sharedStore) available() bool {
	if time.Now().UnixNano() < s.downUntil.Load() {
		s.v.stats.cacheSkipped.Add(1)
		return false
	}
	return true
}

// call runs f, one call of the Cache named op, by run, and counts its
// error as a cache error: for the Observer, between the call's
// CacheCallStart and CacheCallEnd, with the context of the call.
func (s *sharedStore) call(ctx context.Context, op CacheOperation, f func(context.Context) error) (err error) {
	octx := ctx
	if s.v.s.Observer != nil {
		octx = s.v.observeCacheCallStart(ctx, op)
		defer func() { s.v.observeCacheCallEnd(octx, op, err) }()
	}
	if err = s.run(octx, op, f); err != nil {
		s.cacheError(ctx, octx, op, err)
	}
	return err
}

// run runs f, one call of the Cache named op, on a goroutine of its own
// with a context that ends after s.timeout, and waits for it no longer
// than that, nor than ctx. A panic in f is recovered and returned as a
// [*panicError].
func (s *sharedStore) run(ctx context.Context, op CacheOperation, f func(context.Context) error) (err error) {
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- s.v.recovered(ctx, "Cache."+cacheMethods[op], r)
			}
		}()
		done <- f(cctx)
	}()
	select {
	case err = <-done:
	case <-cctx.Done():
		select {
		case err = <-done: // it answered just in time
		default:
			err = cctx.Err()
		}
	}
	if err != nil && cctx.Err() != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("no answer within %v", s.timeout)
	}
	return err
}

func (s *sharedStore) lookup(ctx context.Context, token string, _ time.Time) (*answer, time.Time, bool) {
	if !s.available() {
		return nil, time.Time{}, false
	}
	key := s.v.CacheKey(token)
	var (
		b  []byte
		ok bool
	)
	err := s.call(ctx, CacheGet, func(ctx context.Context) error {
		var err error
		b, ok, err = s.c.Get(ctx, key)
		return err
	})
	if err != nil {
		return nil, time.Time{}, false // a cache error, counted by call
	}
	if !ok {
		return nil, time.Time{}, false
	}
	a, freshUntil, err := decodeStored(b)
	if err != nil {
		s.cacheError(ctx, ctx, CacheDecode, err)
		_ = s.delete(ctx, key)
		return nil, time.Time{}, false
	}
	if s.v.forgets.tombstoned(key, time.Now()) {
		// Forgotten moments ago: the value may be a Set of another
		// verifier's that landed after the forget's Delete.
		return nil, time.Time{}, false
	}
	return a, freshUntil, true
}

// decodeStored decodes a value read from a Cache with the limits of an
// answer read from the network, and the time it stops being fresh (zero:
// while the Cache keeps it).
func decodeStored(b []byte) (*answer, time.Time, error) {
	freshUntil, b, err := splitFreshUntil(b)
	if err != nil {
		return nil, time.Time{}, err
	}
	if len(b) > maxBodySize {
		return nil, time.Time{}, fmt.Errorf("value is larger than %d bytes", maxBodySize)
	}
	a, err := decodeAnswer(b)
	return a, freshUntil, err
}

func (s *sharedStore) share(ctx context.Context, token string, a *answer, ttl time.Duration) {
	if !s.available() {
		return
	}
	b, err := json.Marshal(a.claims)
	tooLarge := len(b) > maxBodySize
	if err == nil && (s.stale > 0 || s.local != nil) {
		// The local tiers of the verifiers that read the value keep it
		// no longer than it is fresh.
		b, ttl = withFreshUntil(b, a, s.v.now(), ttl, s.stale)
	}
	if err == nil && (bytes.Contains(b, []byte(token)) || tooLarge) {
		// The answer names the token itself (no RFC 7662 member does),
		// which a shared store must never hold, or it grew past what a
		// read accepts when encoded again: it is not stored, and an
		// older answer must not be served stale in its place.
		if s.stale > 0 {
			s.forget(ctx, token)
		}
		return
	}
	if err != nil {
		s.cacheError(ctx, ctx, CacheSet, err) // the answer could not be encoded
		return
	}
	key := s.v.CacheKey(token)
	_ = s.call(ctx, CacheSet, func(ctx context.Context) error { return s.c.Set(ctx, key, b, ttl) })
}

// delete deletes the value under key from the Cache. A failure is a cache
// error, counted by call, and returned.
func (s *sharedStore) delete(ctx context.Context, key string) error {
	return s.call(ctx, CacheDelete, func(ctx context.Context) error { return s.c.Delete(ctx, key) })
}

func (s *sharedStore) len() int { return -1 }

// cacheError counts a failed cache operation, logs it unless it was a
// panic (logged already, with its stack) or ctx ended (the caller's own
// doing), and starts the cooldown unless the store itself answered. The
// Observer is told with octx: the context of the failed call, or ctx.
func (s *sharedStore) cacheError(ctx, octx context.Context, op CacheOperation, err error) {
	if op != CacheDecode && ctx.Err() != nil {
		return
	}
	if op != CacheDecode {
		s.downUntil.Store(time.Now().Add(s.cooldown).UnixNano())
	}
	s.v.stats.cacheErrors.Add(1)
	s.v.observeCacheError(octx, op)
	if _, ok := err.(*panicError); ok {
		return
	}
	s.v.logError(ctx, slog.LevelWarn, "introspection: cache "+string(op)+" failed; asking the authorization server", "error", err)
}
