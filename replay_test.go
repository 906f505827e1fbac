package introspection

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// replayKey returns a key of the shape the verifier uses: "dpop:" and 43
// characters of base64url.
func replayKey(i int) string {
	return fmt.Sprintf("dpop:%043d", i)
}

// mustClaim calls s.Claim and requires it to succeed.
func mustClaim(t *testing.T, s ReplayStore, key string, ttl time.Duration) bool {
	t.Helper()
	ok, err := s.Claim(context.Background(), key, ttl)
	require.NoError(t, err, "Claim(%q)", key)
	return ok
}

func TestMemoryReplayStoreClaimsAKeyOnce(t *testing.T) {
	s := NewMemoryReplayStore(0)
	assert.True(t, mustClaim(t, s, replayKey(1), time.Minute), "first claim")
	assert.False(t, mustClaim(t, s, replayKey(1), time.Minute), "second claim")
	assert.False(t, mustClaim(t, s, replayKey(1), time.Hour), "a longer TTL does not make it new")
	assert.True(t, mustClaim(t, s, replayKey(2), time.Minute), "another key")
}

// TestMemoryReplayStoreForgetsAfterTTL checks that a key is remembered for
// exactly its TTL: up to the last nanosecond before it, not at it.
func TestMemoryReplayStoreForgetsAfterTTL(t *testing.T) {
	clock := newFakeClock()
	s := newMemoryReplayStore(8, clock.Now)
	require.True(t, mustClaim(t, s, replayKey(1), time.Minute))
	clock.Advance(time.Minute - time.Nanosecond)
	assert.False(t, mustClaim(t, s, replayKey(1), time.Minute), "one nanosecond before the TTL ends")
	clock.Advance(time.Nanosecond)
	assert.True(t, mustClaim(t, s, replayKey(1), time.Minute), "at the end of the TTL")
	assert.False(t, mustClaim(t, s, replayKey(1), time.Minute), "recorded again, for a new TTL")
	assert.Equal(t, 1, s.len(), "claiming an expired key again reuses its entry")
	clock.Advance(time.Minute - time.Nanosecond)
	assert.False(t, mustClaim(t, s, replayKey(1), time.Minute), "the new TTL runs from the second claim")
}

// TestMemoryReplayStoreFullAtMaxEntries fills stores of several sizes (one
// shard and several) to maxEntries: the claim just past the bound fails
// with ErrReplayStoreFull and reports false, while keys already recorded
// still report false; once entries expire, there is room again.
func TestMemoryReplayStoreFullAtMaxEntries(t *testing.T) {
	for _, maxEntries := range []int{1, 4, 511, 512, 2048, 64 * 256} {
		t.Run(fmt.Sprint(maxEntries), func(t *testing.T) {
			clock := newFakeClock()
			s := newMemoryReplayStore(maxEntries, clock.Now)
			// The first entry lives one minute, the others an hour.
			require.True(t, mustClaim(t, s, replayKey(0), time.Minute))
			for i := 1; i < maxEntries; i++ {
				require.True(t, mustClaim(t, s, replayKey(i), time.Hour), "entry %d of %d", i, maxEntries)
			}
			assert.Equal(t, maxEntries, s.len(), "at the bound")

			ok, err := s.Claim(context.Background(), replayKey(maxEntries), time.Hour)
			assert.ErrorIs(t, err, ErrReplayStoreFull, "just past the bound")
			assert.False(t, ok, "a key that cannot be recorded is never new")
			assert.False(t, mustClaim(t, s, replayKey(maxEntries-1), time.Hour), "a recorded key is still known")
			ok, err = s.Claim(context.Background(), replayKey(maxEntries), time.Hour)
			assert.ErrorIs(t, err, ErrReplayStoreFull, "still full")
			assert.False(t, ok)
			assert.Equal(t, maxEntries, s.len())

			clock.Advance(time.Minute)
			assert.True(t, mustClaim(t, s, replayKey(maxEntries), time.Hour), "the expired entry makes room")
			ok, err = s.Claim(context.Background(), replayKey(maxEntries+1), time.Hour)
			assert.ErrorIs(t, err, ErrReplayStoreFull, "for one entry only")
			assert.False(t, ok)
			assert.Equal(t, maxEntries, s.len())

			clock.Advance(time.Hour)
			for i := range maxEntries {
				require.True(t, mustClaim(t, s, replayKey(1_000_000+i), time.Hour), "all expired: entry %d is new", i)
			}
			assert.Equal(t, maxEntries, s.len())
		})
	}
}

// TestMemoryReplayStoreSweepsExpiredEntries checks that expired entries
// leave a store that never fills up: each claim sweeps a few of them.
func TestMemoryReplayStoreSweepsExpiredEntries(t *testing.T) {
	clock := newFakeClock()
	s := newMemoryReplayStore(500, clock.Now)
	require.Len(t, s.shards, 1)
	for i := range 100 {
		require.True(t, mustClaim(t, s, replayKey(i), time.Second))
	}
	clock.Advance(time.Second)
	n := 100/replaySweepBatch + 1
	for i := range n {
		require.True(t, mustClaim(t, s, replayKey(1000+i), time.Hour))
	}
	assert.Equal(t, n, s.len(), "only the live entries are left")
}

// TestMemoryReplayStoreLongestTTL checks that a TTL whose end does not fit
// in Unix nanoseconds keeps the key instead of wrapping round to the past.
func TestMemoryReplayStoreLongestTTL(t *testing.T) {
	clock := newFakeClock()
	s := newMemoryReplayStore(8, clock.Now)
	require.True(t, mustClaim(t, s, replayKey(1), math.MaxInt64))
	clock.Advance(100_000 * time.Hour)
	assert.False(t, mustClaim(t, s, replayKey(1), time.Minute))
}

func TestNewMemoryReplayStoreDefaultSize(t *testing.T) {
	for _, n := range []int{0, -1} {
		s, ok := NewMemoryReplayStore(n).(*memoryReplayStore)
		require.True(t, ok)
		assert.Equal(t, int64(DefaultReplayStoreSize), s.max, "NewMemoryReplayStore(%d)", n)
	}
	for n, want := range map[int]int64{3: 3, math.MaxInt32: math.MaxInt32, math.MaxInt32 + 1: math.MaxInt32} {
		s, ok := NewMemoryReplayStore(n).(*memoryReplayStore)
		require.True(t, ok)
		assert.Equal(t, want, s.max, "NewMemoryReplayStore(%d)", n)
	}
}

// TestMemoryReplayStoreRefusesBadInput checks the bounds on keys (at most
// 64 bytes of [A-Za-z0-9_:-]) and TTLs (positive): a claim outside them is
// an error, never new, and records nothing.
func TestMemoryReplayStoreRefusesBadInput(t *testing.T) {
	tests := []struct {
		name string
		key  string
		ttl  time.Duration
		ok   bool
	}{
		{"64 bytes, at the bound", strings.Repeat("a", 64), time.Minute, true},
		{"every allowed character", "ABCXYZabcxyz0189_:-", time.Minute, true},
		{"one nanosecond TTL", replayKey(1), time.Nanosecond, true},
		{"65 bytes, just past the bound", strings.Repeat("a", 65), time.Minute, false},
		{"empty", "", time.Minute, false},
		{"space", "dpop: x", time.Minute, false},
		{"slash", "dpop/x", time.Minute, false},
		{"plus", "dpop+x", time.Minute, false},
		{"equals", "dpop=", time.Minute, false},
		{"dot", "dpop.x", time.Minute, false},
		{"NUL", "dpop\x00", time.Minute, false},
		{"newline", "dpop\n", time.Minute, false},
		{"non-ASCII", "dpop:é", time.Minute, false},
		{"zero TTL", replayKey(1), 0, false},
		{"negative TTL", replayKey(1), -time.Second, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newMemoryReplayStore(8, newFakeClock().Now)
			ok, err := s.Claim(context.Background(), tc.key, tc.ttl)
			if tc.ok {
				require.NoError(t, err)
				assert.True(t, ok)
				assert.Equal(t, 1, s.len())
				return
			}
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), "introspection: "), err.Error())
			assert.False(t, ok)
			assert.Zero(t, s.len(), "nothing recorded")
		})
	}
}

// TestMemoryReplayStoreOneWinnerUnderConcurrency claims one key from 1,000
// goroutines at once: exactly one claim is new.
func TestMemoryReplayStoreOneWinnerUnderConcurrency(t *testing.T) {
	for _, maxEntries := range []int{1, DefaultReplayStoreSize} {
		t.Run(fmt.Sprint(maxEntries), func(t *testing.T) {
			s := NewMemoryReplayStore(maxEntries)
			var wins, errs atomic.Int64
			start := make(chan struct{})
			var wg sync.WaitGroup
			for range 1000 {
				wg.Go(func() {
					<-start
					ok, err := s.Claim(context.Background(), "dpop:same", time.Minute)
					if err != nil {
						errs.Add(1)
					}
					if ok {
						wins.Add(1)
					}
				})
			}
			close(start)
			wg.Wait()
			assert.Equal(t, int64(1), wins.Load())
			assert.Zero(t, errs.Load())
		})
	}
}

// TestMemoryReplayStoreStaysWithinMax claims distinct and repeated keys
// with various TTLs from many goroutines while the clock moves: the store
// never holds more than maxEntries entries, and a full store refuses with
// ErrReplayStoreFull, never with acceptance of a key already recorded.
func TestMemoryReplayStoreStaysWithinMax(t *testing.T) {
	const maxEntries = 600 // past 512, so the store has two shards
	clock := newFakeClock()
	s := newMemoryReplayStore(maxEntries, clock.Now)
	require.Greater(t, len(s.shards), 1)
	var wins, full, over atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				key := replayKey(g*1_000_000 + i%1500) // each key comes round again
				ttl := time.Duration(1+i%7) * time.Second
				ok, err := s.Claim(context.Background(), key, ttl)
				switch {
				case err != nil:
					assert.ErrorIs(t, err, ErrReplayStoreFull)
					assert.False(t, ok)
					full.Add(1)
				case ok:
					wins.Add(1)
				}
				if n := s.len(); n > maxEntries {
					over.Add(1)
				}
				if i%500 == 499 {
					clock.Advance(time.Second)
				}
			}
		})
	}
	wg.Wait()
	assert.Zero(t, over.Load(), "entries never exceed maxEntries")
	assert.LessOrEqual(t, s.len(), maxEntries)
	assert.Positive(t, wins.Load())
	assert.Positive(t, full.Load(), "the test reached the bound")
	assert.Equal(t, int64(s.len()), s.count.Load(), "the count is the number of entries")
}

// BenchmarkMemoryReplayStore claims distinct keys from parallel goroutines,
// each recorded for 10 ms of the real clock, so that the store also expires
// and sweeps entries as it would under steady load. The memory sub-benchmark
// reports the heap held per entry of a full store of DefaultReplayStoreSize
// entries; run it with -benchtime=1x.
func BenchmarkMemoryReplayStore(b *testing.B) {
	b.Run("claim", func(b *testing.B) {
		s := NewMemoryReplayStore(0)
		var next atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			base := next.Add(1) * 1_000_000_000
			i := int64(0)
			for pb.Next() {
				i++
				ok, err := s.Claim(context.Background(), fmt.Sprintf("dpop:%043d", base+i), 10*time.Millisecond)
				if err != nil || !ok {
					b.Fatal(ok, err)
				}
			}
		})
	})
	b.Run("memory", func(b *testing.B) {
		keys := make([]string, DefaultReplayStoreSize)
		for i := range keys {
			keys[i] = replayKey(i)
		}
		for b.Loop() {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			s := newMemoryReplayStore(DefaultReplayStoreSize, time.Now)
			for _, k := range keys {
				if ok, err := s.Claim(context.Background(), k, time.Hour); err != nil || !ok {
					b.Fatal(ok, err)
				}
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			if s.len() != DefaultReplayStoreSize {
				b.Fatalf("store holds %d entries", s.len())
			}
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/DefaultReplayStoreSize, "bytes/entry")
			runtime.KeepAlive(s)
		}
	})
}
