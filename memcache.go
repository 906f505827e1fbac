package introspection

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// memoryCache is the built-in cache: a map split into shards that share one
// bound on the number of entries, each shard evicting with SIEVE (Zhang et al., NSDI 2024), a CLOCK-like policy. A hit
// only sets an entry's visited bit under a read lock, so parallel hits, even
// on one hot token, never wait for each other's writes; eviction skips
// visited entries once, so entries used recently or often stay while entries
// seen once leave first. Entries past their end, expired or kept only to be
// served stale (Settings.StaleIfError), are evicted first; expired ones are
// swept from a shard at most once a minute when it is written to.
type memoryCache struct {
	seed     maphash.Seed
	shards   []memShard
	now      func() time.Time
	capacity int64
	count    atomic.Int64 // entries in all shards, plus reservations being made
	intern   *interner
	stale    time.Duration // Settings.StaleIfError: how long entries are kept past their end
	// mono, for the local tier with a Settings.Now of the caller's, is a
	// clock that never steps back (time.Now, whose monotonic reading
	// comparisons use): entries also end once it reaches their time of
	// storing plus their TTL, so that a now that steps back never
	// lengthens them. nil for the built-in cache, whose entries follow
	// now alone, and when now is time.Now.
	mono func() time.Time
}

const sweepInterval = time.Minute

// maxCachedAnswer is the largest answer, in bytes of JSON, that the built-in
// cache keeps. A larger answer is used for the call that fetched it but not
// kept, so that a server cannot make each entry hold up to the 1 MiB that
// an answer may have.
const maxCachedAnswer = 16 << 10

// maxCachedValues is the most JSON values that an answer the built-in cache
// keeps may have, counting the answer itself, each member's value and each
// element of an array, at any depth. With maxCachedAnswer it bounds the
// memory of an entry, which bytes of JSON alone would not: once decoded, a
// small value can take 50 times its JSON ({"":{}}, 8 bytes, takes some 400).
const maxCachedValues = 256

type memShard struct {
	mu        sync.RWMutex         // guards all fields below
	m         map[string]*memEntry // by token
	head      *memEntry            // newest
	tail      *memEntry            // oldest
	hand      *memEntry            // SIEVE hand; nil means start at tail
	count     *atomic.Int64        // the cache's count
	index     *digestIndex         // the local tier's; nil for the built-in cache
	nextSweep time.Time
	_         [64]byte // keep shards on separate cache lines
}

// memEntry is immutable once inserted, but for visited and the list links.
type memEntry struct {
	key        string
	a          *answer
	fresh      time.Time     // until which it is a hit
	monoFresh  time.Time     // with the cache's mono clock, until which it is a hit on that clock too
	stale      time.Duration // how long past fresh it is kept to be served stale
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
	var mono time.Time
	if c.mono != nil {
		mono = c.mono()
	}
	if !now.Before(e.fresh) || c.mono != nil && !mono.Before(e.monoFresh) {
		if !now.Before(e.end()) || c.mono != nil && !mono.Before(e.monoFresh.Add(e.stale)) {
			sh.mu.Lock()
			if sh.m[token] == e {
				sh.remove(e)
			}
			sh.mu.Unlock()
		}
		return nil, false
	}
	if !e.visited.Load() {
		e.visited.Store(true)
	}
	return e.a, true
}

func (c *memoryCache) set(ctx context.Context, token string, a *answer, ttl time.Duration) {
	if a.size > maxCachedAnswer || a.values > maxCachedValues {
		// Too large to keep; an older answer for the token must not stay
		// in place of this one.
		c.forget(ctx, token)
		return
	}
	now := c.now()
	fresh := now.Add(ttl)
	e := &memEntry{key: token, a: a.compact(c.intern), fresh: fresh, stale: staleFor(a, fresh, c.stale)}
	if c.mono != nil {
		e.monoFresh = c.mono().Add(ttl)
	}
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
	if sh.index != nil {
		sh.index.add(token)
	}
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

// evict removes one entry: the first unvisited one, or one past its end,
// that the hand reaches going from old to new, clearing visited bits on its
// way.
func (sh *memShard) evict(now time.Time) {
	o := sh.hand
	if o == nil {
		o = sh.tail
	}
	for o.visited.Load() && now.Before(o.fresh) {
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
		if !now.Before(e.end()) {
			sh.remove(e)
		}
		e = prev
	}
}

// end returns when e leaves the cache: once it has been kept past its fresh
// end for as long as it may be served stale.
func (e *memEntry) end() time.Time { return e.fresh.Add(e.stale) }

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
	if sh.index != nil {
		sh.index.drop(e.key)
	}
}
