package introspection

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// ReplayStore remembers the identifiers of DPoP proofs so that each is
// accepted once (RFC 9449 §11.1). Replicas of a server that share one store
// refuse a proof replayed to any of them; the rediscache module implements
// it on Redis.
type ReplayStore interface {
	// Claim records key for ttl and reports whether it is new: false when key was
	// recorded before and has not expired. It must be atomic across all users of
	// the store. key holds no token; it is at most 64 bytes of [A-Za-z0-9_:-].
	Claim(ctx context.Context, key string, ttl time.Duration) (bool, error)
}

// DefaultReplayStoreSize is the number of entries of the store that
// [NewMemoryReplayStore] returns when asked for zero or fewer.
const DefaultReplayStoreSize = 1 << 20

// ErrReplayStoreFull is returned by the Claim of a store from
// [NewMemoryReplayStore] when every entry is still live, so that the key
// cannot be recorded. The claim reports false: a proof whose identifier
// cannot be recorded is never accepted.
var ErrReplayStoreFull = errors.New("introspection: replay store is full")

// maxReplayKey is the longest key, in bytes, that a [ReplayStore] is handed.
const maxReplayKey = 64

// replaySweepBatch is the most expired entries that one Claim removes from
// its shard on the way, so that a claim costs little even when many entries
// expire at once. A claim that finds the store full removes every expired
// entry of every shard before it gives up.
const replaySweepBatch = 8

// errReplayKey and errReplayTTL refuse what the [ReplayStore] contract
// rules out; the verifier never sends either.
var (
	errReplayKey = errors.New("introspection: replay key is empty, longer than 64 bytes or not of [A-Za-z0-9_:-]")
	errReplayTTL = errors.New("introspection: replay TTL is not positive")
)

// NewMemoryReplayStore returns a [ReplayStore] in memory that holds at most
// maxEntries entries: zero or fewer means [DefaultReplayStoreSize], more
// than 1<<31 - 1 means 1<<31 - 1. It is safe for concurrent use by multiple
// goroutines, and serves one process only: replicas that must refuse each
// other's replays share a store such as the rediscache module's.
//
// Each entry holds the first 16 bytes of the SHA-256 digest of its key and
// its expiry, so an entry takes the same memory whatever the key: about 71
// bytes in a full store of DefaultReplayStoreSize entries
// (BenchmarkMemoryReplayStore/memory). Expired entries are removed a few at
// a time by later claims, and all at once when the store is full; when
// every entry is still live, Claim returns [ErrReplayStoreFull] and false.
// Claim refuses a key longer than 64 bytes or with a character outside
// [A-Za-z0-9_:-], and a TTL that is not positive, with an error.
func NewMemoryReplayStore(maxEntries int) ReplayStore {
	if maxEntries <= 0 {
		maxEntries = DefaultReplayStoreSize
	}
	return newMemoryReplayStore(maxEntries, time.Now)
}

// memoryReplayStore is split into shards that share one bound on the
// number of entries. Each shard keeps its entries in a min-heap on their
// expiry, with a map from key digest to heap position, so that a claim
// costs O(log n) and expired entries leave from the top of the heap.
type memoryReplayStore struct {
	shards []replayShard
	max    int64
	count  atomic.Int64 // entries in all shards, plus reservations being made
	now    func() time.Time
}

type replayShard struct {
	mu       sync.Mutex           // guards index and byExpiry
	index    map[replayHash]int32 // position in byExpiry, by key digest
	byExpiry []replayEntry        // a min-heap on expires
	count    *atomic.Int64        // the store's count
	_        [64]byte             // keep shards on separate cache lines
}

type replayHash [16]byte

type replayEntry struct {
	key     replayHash
	expires int64 // Unix nanoseconds; the entry is expired from then on
}

func newMemoryReplayStore(maxEntries int, now func() time.Time) *memoryReplayStore {
	maxEntries = min(maxEntries, math.MaxInt32) // heap positions are int32
	n := 1
	for n*2 <= 64 && n*2*256 <= maxEntries {
		n *= 2
	}
	s := &memoryReplayStore{shards: make([]replayShard, n), max: int64(maxEntries), now: now}
	for i := range s.shards {
		s.shards[i].index = make(map[replayHash]int32)
		s.shards[i].count = &s.count
	}
	return s
}

// Claim implements [ReplayStore]. It never blocks on I/O, so it ignores
// ctx.
func (s *memoryReplayStore) Claim(_ context.Context, key string, ttl time.Duration) (bool, error) {
	if !validReplayKey(key) {
		return false, errReplayKey
	}
	if ttl <= 0 {
		return false, errReplayTTL
	}
	now := s.now().UnixNano()
	expires := now + int64(ttl)
	if expires < now {
		expires = math.MaxInt64
	}
	sum := sha256.Sum256([]byte(key))
	h := replayHash(sum[:16])
	sh := &s.shards[binary.LittleEndian.Uint64(h[:8])&uint64(len(s.shards)-1)]
	for reclaimed := false; ; reclaimed = true {
		sh.mu.Lock()
		sh.sweep(now, replaySweepBatch)
		if j, ok := sh.index[h]; ok {
			i := int(j)
			if now < sh.byExpiry[i].expires {
				sh.mu.Unlock()
				return false, nil
			}
			// Recorded before but expired: record it anew in its place.
			sh.byExpiry[i].expires = expires
			sh.down(i)
			sh.mu.Unlock()
			return true, nil
		}
		// Reserve a place, so that the number of entries never exceeds
		// max, even with claims in other shards. When the store is full,
		// remove every expired entry and try once more.
		if s.count.Add(1) > s.max {
			s.count.Add(-1)
			sh.mu.Unlock()
			if reclaimed {
				return false, ErrReplayStoreFull
			}
			s.sweepAll(now)
			continue
		}
		sh.push(replayEntry{key: h, expires: expires})
		sh.mu.Unlock()
		return true, nil
	}
}

// sweepAll removes every expired entry of every shard.
func (s *memoryReplayStore) sweepAll(now int64) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.sweep(now, math.MaxInt)
		sh.mu.Unlock()
	}
}

// len returns the number of entries, expired ones included, at one moment:
// it holds every shard's lock at once, which nothing else does.
func (s *memoryReplayStore) len() int {
	n := 0
	for i := range s.shards {
		s.shards[i].mu.Lock()
		n += len(s.shards[i].index)
	}
	for i := range s.shards {
		s.shards[i].mu.Unlock()
	}
	return n
}

// validReplayKey reports whether key is 1 to 64 bytes of [A-Za-z0-9_:-].
func validReplayKey(key string) bool {
	if key == "" || len(key) > maxReplayKey {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// sweep removes up to limit expired entries, soonest expired first.
func (sh *replayShard) sweep(now int64, limit int) {
	for ; limit > 0 && len(sh.byExpiry) > 0 && sh.byExpiry[0].expires <= now; limit-- {
		sh.pop()
		sh.count.Add(-1)
	}
}

// push adds e to the heap and the index; the caller counts it.
func (sh *replayShard) push(e replayEntry) {
	sh.byExpiry = append(sh.byExpiry, e)
	i := len(sh.byExpiry) - 1
	sh.index[e.key] = int32(i)
	sh.up(i)
}

// pop removes the entry that expires first from the heap and the index;
// the caller counts it.
func (sh *replayShard) pop() {
	last := len(sh.byExpiry) - 1
	delete(sh.index, sh.byExpiry[0].key)
	if last > 0 {
		sh.byExpiry[0] = sh.byExpiry[last]
		sh.index[sh.byExpiry[0].key] = 0
	}
	sh.byExpiry[last] = replayEntry{}
	sh.byExpiry = sh.byExpiry[:last]
	if last > 0 {
		sh.down(0)
	}
}

func (sh *replayShard) up(i int) {
	h := sh.byExpiry
	for i > 0 {
		parent := (i - 1) / 2
		if h[parent].expires <= h[i].expires {
			break
		}
		sh.swap(i, parent)
		i = parent
	}
}

func (sh *replayShard) down(i int) {
	h := sh.byExpiry
	for {
		least := i
		if l := 2*i + 1; l < len(h) && h[l].expires < h[least].expires {
			least = l
		}
		if r := 2*i + 2; r < len(h) && h[r].expires < h[least].expires {
			least = r
		}
		if least == i {
			return
		}
		sh.swap(i, least)
		i = least
	}
}

func (sh *replayShard) swap(i, j int) {
	h := sh.byExpiry
	h[i], h[j] = h[j], h[i]
	sh.index[h[i].key] = int32(i)
	sh.index[h[j].key] = int32(j)
}
