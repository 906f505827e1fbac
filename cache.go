package introspection

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Cache stores introspection answers outside the verifier, for example in a
// store shared by several replicas. Keys are the hex SHA-256 digest of the
// token, never the token; values are the authorization server's JSON answer,
// which holds no token (an answer that repeats the token is not stored). A
// Cache must be safe for concurrent use.
//
// An error from Get or Set is counted in [Stats], logged, and treated as a
// miss: the verifier then asks the authorization server, so an outage of
// the cache never accepts or rejects a token by itself. After an error the
// verifier leaves the cache alone for five seconds, so that an outage does
// not add a timeout to every request.
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
	get(ctx context.Context, token string, now time.Time) (*answer, bool)
	set(ctx context.Context, token string, a *answer, ttl time.Duration)
	len() int
}

// CacheKey returns the key under which answers for token are handed to a
// [Cache]: the lowercase hex SHA-256 digest of the token.
func CacheKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// cacheCooldown is how long a failing Cache is left alone.
const cacheCooldown = 5 * time.Second

// sharedStore adapts a caller's [Cache].
type sharedStore struct {
	c         Cache
	v         *Verifier
	cooldown  time.Duration
	downUntil atomic.Int64 // Unix nanoseconds before which c is not used
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

func (s *sharedStore) get(ctx context.Context, token string, _ time.Time) (*answer, bool) {
	if !s.available() {
		return nil, false
	}
	key := CacheKey(token)
	b, ok, err := s.c.Get(ctx, key)
	if err != nil {
		if ctx.Err() == nil {
			s.cacheError(ctx, "get", err)
		}
		return nil, false
	}
	if !ok {
		return nil, false
	}
	a, err := decodeAnswer(b)
	if err != nil {
		s.cacheError(ctx, "decode", err)
		_ = s.c.Delete(ctx, key)
		return nil, false
	}
	return a, true
}

func (s *sharedStore) set(ctx context.Context, token string, a *answer, ttl time.Duration) {
	if !s.available() {
		return
	}
	b, err := json.Marshal(a.claims)
	if err == nil && bytes.Contains(b, []byte(token)) {
		// The answer names the token itself (no RFC 7662 member does);
		// a shared store must never hold it, so this answer is not stored.
		return
	}
	if err == nil {
		err = s.c.Set(ctx, CacheKey(token), b, ttl)
	}
	if err != nil {
		s.cacheError(ctx, "set", err)
	}
}

func (s *sharedStore) len() int { return -1 }

func (s *sharedStore) cacheError(ctx context.Context, op string, err error) {
	if op != "decode" {
		s.downUntil.Store(time.Now().Add(s.cooldown).UnixNano())
	}
	s.v.stats.cacheErrors.Add(1)
	s.v.log.LogAttrs(ctx, slog.LevelWarn, "introspection: cache "+op+" failed; asking the authorization server",
		slog.String("error", err.Error()))
}

// memoryCache is the built-in cache: a map split into shards that share one
// bound on the number of entries, each shard evicting with SIEVE (Zhang et al., NSDI 2024), a CLOCK-like policy. A hit
// only sets an entry's visited bit under a read lock, so parallel hits, even
// on one hot token, never wait for each other's writes; eviction skips
// visited entries once, so entries used recently or often stay while entries
// seen once leave first. Expired entries are evicted first and swept
// from a shard at most once a minute when it is written to.
type memoryCache struct {
	seed     maphash.Seed
	shards   []memShard
	now      func() time.Time
	capacity int64
	count    atomic.Int64 // entries in all shards, plus reservations being made
	intern   *interner
}

const sweepInterval = time.Minute

type memShard struct {
	mu        sync.RWMutex         // guards all fields below
	m         map[string]*memEntry // by token
	head      *memEntry            // newest
	tail      *memEntry            // oldest
	hand      *memEntry            // SIEVE hand; nil means start at tail
	count     *atomic.Int64        // the cache's count
	nextSweep time.Time
	_         [64]byte // keep shards on separate cache lines
}

// memEntry is immutable once inserted, but for visited and the list links.
type memEntry struct {
	key        string
	a          *answer
	expires    time.Time
	visited    atomic.Bool
	prev, next *memEntry // prev is newer, next is older; guarded by the shard's mu
}

func newMemoryCache(size int, now func() time.Time) *memoryCache {
	n := 1
	for n*2 <= 64 && n*2*256 <= size {
		n *= 2
	}
	c := &memoryCache{seed: maphash.MakeSeed(), shards: make([]memShard, n), now: now, capacity: int64(size), intern: newInterner()}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*memEntry)
		c.shards[i].count = &c.count
	}
	return c
}

func (c *memoryCache) shard(key string) *memShard {
	if len(c.shards) == 1 {
		return &c.shards[0]
	}
	return &c.shards[maphash.String(c.seed, key)&uint64(len(c.shards)-1)]
}

func (c *memoryCache) get(_ context.Context, token string, now time.Time) (*answer, bool) {
	sh := c.shard(token)
	sh.mu.RLock()
	e := sh.m[token]
	sh.mu.RUnlock()
	if e == nil {
		return nil, false
	}
	if !now.Before(e.expires) {
		sh.mu.Lock()
		if sh.m[token] == e {
			sh.remove(e)
		}
		sh.mu.Unlock()
		return nil, false
	}
	if !e.visited.Load() {
		e.visited.Store(true)
	}
	return e.a, true
}

func (c *memoryCache) set(_ context.Context, token string, a *answer, ttl time.Duration) {
	now := c.now()
	e := &memEntry{key: token, a: a.compact(c.intern), expires: now.Add(ttl)}
	sh := c.shard(token)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if old := sh.m[token]; old != nil {
		sh.remove(old)
	}
	if !now.Before(sh.nextSweep) {
		sh.sweep(now)
		sh.nextSweep = now.Add(sweepInterval)
	}
	// Reserve a place; when that overfills the cache, free one in this
	// shard, so that the total never exceeds the capacity, even with
	// concurrent writers in other shards.
	if c.count.Add(1) > c.capacity {
		if len(sh.m) == 0 {
			c.count.Add(-1)
			return // every entry is in other shards; skip caching this one
		}
		sh.evict(now)
	}
	e.next = sh.head
	if sh.head != nil {
		sh.head.prev = e
	}
	sh.head = e
	if sh.tail == nil {
		sh.tail = e
	}
	sh.m[token] = e
}

func (c *memoryCache) len() int {
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		n += len(sh.m)
		sh.mu.RUnlock()
	}
	return n
}

// evict removes one entry: the first expired or unvisited one that the hand
// reaches going from old to new, clearing visited bits on its way.
func (sh *memShard) evict(now time.Time) {
	o := sh.hand
	if o == nil {
		o = sh.tail
	}
	for o.visited.Load() && now.Before(o.expires) {
		o.visited.Store(false)
		o = o.prev
		if o == nil {
			o = sh.tail
		}
	}
	sh.hand = o.prev
	sh.remove(o)
}

// sweep removes every expired entry.
func (sh *memShard) sweep(now time.Time) {
	for e := sh.tail; e != nil; {
		prev := e.prev
		if !now.Before(e.expires) {
			sh.remove(e)
		}
		e = prev
	}
}

func (sh *memShard) remove(e *memEntry) {
	if sh.hand == e {
		sh.hand = e.prev
	}
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		sh.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		sh.tail = e.prev
	}
	e.prev, e.next = nil, nil
	delete(sh.m, e.key)
	sh.count.Add(-1)
}
