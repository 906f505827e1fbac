package introspection

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// countingCache counts the calls of the Cache it wraps.
type countingCache struct {
	Cache
	gets, sets, deletes atomic.Int64
}

func (c *countingCache) Get(ctx context.Context, key string) ([]byte, bool, error) {
	c.gets.Add(1)
	return c.Cache.Get(ctx, key)
}

func (c *countingCache) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	c.sets.Add(1)
	return c.Cache.Set(ctx, key, value, ttl)
}

func (c *countingCache) Delete(ctx context.Context, key string) error {
	c.deletes.Add(1)
	return c.Cache.Delete(ctx, key)
}

// calls returns the Gets, Sets and Deletes counted.
func (c *countingCache) calls() [3]int64 {
	return [3]int64{c.gets.Load(), c.sets.Load(), c.deletes.Load()}
}

// tieredVerifier returns a verifier of as on clock with a counted mapCache,
// caching active answers for a minute, after edit changes its settings.
func tieredVerifier(t *testing.T, as *introspectiontest.Server, clock *fakeClock, edit func(*Settings)) (*Verifier, *countingCache) {
	t.Helper()
	now := time.Now
	if clock != nil {
		now = clock.Now
	}
	cc := &countingCache{Cache: newMapCache(now)}
	v := newVerifier(t, as.IntrospectionURL, clock, func(s *Settings) {
		s.CacheTTL = time.Minute
		s.Cache = cc
		if edit != nil {
			edit(s)
		}
	})
	return v, cc
}

// TestSharedMissCostsOneGetAndOneSet checks that a token the caches do not
// hold costs one Get of the shared Cache and, after the introspection, one
// Set, with the local tier and without it; and that a hit of the shared
// tier costs one Get and no Set.
func TestSharedMissCostsOneGetAndOneSet(t *testing.T) {
	for _, local := range []time.Duration{0, -1} {
		t.Run(fmt.Sprintf("LocalCacheTTL=%v", local), func(t *testing.T) {
			as := newAS(t, nil)
			v, cc := tieredVerifier(t, as, nil, func(s *Settings) { s.LocalCacheTTL = local })
			tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})
			got, err := v.Verify(context.Background(), tok)
			require.NoError(t, err)
			assert.Equal(t, "alice", got.Subject)
			waitUntilIdle(t, v)
			assert.Equal(t, [3]int64{1, 1, 0}, cc.calls(), "a miss: one Get, one Set")
			assert.Equal(t, int64(1), as.RequestsFor(tok))

			// Another replica on the same Cache finds the answer there.
			other := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
				s.CacheTTL = time.Minute
				s.Cache = cc
				s.LocalCacheTTL = local
			})
			got, err = other.Verify(context.Background(), tok)
			require.NoError(t, err)
			assert.Equal(t, "alice", got.Subject)
			waitUntilIdle(t, other)
			assert.Equal(t, [3]int64{2, 1, 0}, cc.calls(), "a hit of the shared tier: one Get")
			assert.Equal(t, int64(1), as.RequestsFor(tok))
			assert.Equal(t, uint64(1), other.Stats().CacheHits)
		})
	}
}

// TestThousandCallersMakeOneRequestAndOneGet checks that 1,000 concurrent
// callers of one token that neither tier holds make one introspection
// request, one Get and one Set, and that later calls are served by the
// local tier without calling the Cache.
func TestThousandCallersMakeOneRequestAndOneGet(t *testing.T) {
	as := newAS(t, nil)
	as.SetFault(introspectiontest.Fault{Latency: 20 * time.Millisecond})
	v, cc := tieredVerifier(t, as, nil, nil)
	tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})
	var wg sync.WaitGroup
	var wrong atomic.Int32
	for range 1000 {
		wg.Go(func() {
			got, err := v.Verify(context.Background(), tok)
			if err != nil || got.Subject != "alice" {
				wrong.Add(1)
			}
		})
	}
	wg.Wait()
	waitUntilIdle(t, v)
	assert.Zero(t, wrong.Load())
	assert.Equal(t, int64(1), as.Requests(), "one introspection request")
	assert.Equal(t, [3]int64{1, 1, 0}, cc.calls(), "one Get and one Set")

	before := v.Stats().LocalCacheHits // callers who came after the answer was kept
	for range 100 {
		_, err := v.Verify(context.Background(), tok)
		require.NoError(t, err)
	}
	assert.Equal(t, [3]int64{1, 1, 0}, cc.calls(), "hot tokens never call the Cache")
	st := v.Stats()
	assert.Equal(t, before+100, st.LocalCacheHits)
	assert.Equal(t, 1, st.LocalCacheEntries)
	assert.Equal(t, -1, st.CacheEntries, "the shared Cache's entries are unknown")
}

// TestLocalTierLifetime checks how long the local tier keeps an answer: at
// most LocalCacheTTL (DefaultLocalCacheTTL when zero), never past the
// shared entry's end, whoever stored it, nor past the token's exp; with a
// negative LocalCacheTTL there is no local tier and every call reads the
// Cache. Each row counts the Gets of the shared Cache after the answer is
// in it, a call just before the local entry must end (a hit) and one at
// its end (a Get).
func TestLocalTierLifetime(t *testing.T) {
	tests := []struct {
		name     string
		local    time.Duration
		cacheTTL time.Duration
		lifetime time.Duration // of the token
		fromPeer bool          // the answer was stored by another replica, some time ago
		want     time.Duration // how long the local entry lives; zero: there is none
	}{
		{"LocalCacheTTL", 3 * time.Second, time.Minute, time.Hour, false, 3 * time.Second},
		{"zero means the default", 0, time.Minute, time.Hour, false, DefaultLocalCacheTTL},
		{"negative means no local tier", -1, time.Minute, time.Hour, false, 0},
		{"never past the shared entry's end", 3 * time.Second, 2 * time.Second, time.Hour, false, 2 * time.Second},
		{"never past exp", 3 * time.Second, time.Minute, 2 * time.Second, false, 2 * time.Second},
		{"never past the end of a peer's entry", 3 * time.Second, 10 * time.Second, time.Hour, true, 1500 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			as := newAS(t, clock)
			edit := func(s *Settings) { s.LocalCacheTTL, s.CacheTTL = tc.local, tc.cacheTTL }
			v, cc := tieredVerifier(t, as, clock, edit)
			tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Lifetime: tc.lifetime})
			if tc.fromPeer {
				peer := newVerifier(t, as.IntrospectionURL, clock, func(s *Settings) { s.Cache = cc; edit(s) })
				fill(t, peer, tok)
				clock.Advance(tc.cacheTTL - 1500*time.Millisecond)
			}
			fill(t, v, tok)
			base := cc.gets.Load()
			if tc.want == 0 {
				fill(t, v, tok)
				assert.Equal(t, base+1, cc.gets.Load(), "every call reads the Cache")
				assert.Zero(t, v.Stats().LocalCacheHits)
				return
			}
			clock.Advance(tc.want - time.Millisecond)
			fill(t, v, tok)
			assert.Equal(t, base, cc.gets.Load(), "a local hit just before the end")
			clock.Advance(time.Millisecond)
			_, err := v.Verify(context.Background(), tok)
			if tc.lifetime <= tc.want {
				assert.ErrorIs(t, err, ErrInvalidToken, "expired")
			} else {
				require.NoError(t, err)
			}
			waitUntilIdle(t, v)
			assert.Equal(t, base+1, cc.gets.Load(), "a Get at the end")
		})
	}
}

// TestLocalTierKeepsNegativeAnswers checks negative caching with two
// tiers: an inactive answer is kept in both for NegativeCacheTTL, the local
// one never longer, and not at all without NegativeCacheTTL.
func TestLocalTierKeepsNegativeAnswers(t *testing.T) {
	tests := []struct {
		name        string
		negativeTTL time.Duration
		wantGets    int64 // after a call at 0, one at 1 s and one at 2.5 s
		wantReqs    int64
	}{
		{"NegativeCacheTTL longer than LocalCacheTTL", time.Minute, 2, 1},
		{"NegativeCacheTTL shorter than LocalCacheTTL", 2 * time.Second, 2, 2},
		{"without NegativeCacheTTL", 0, 3, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			as := newAS(t, clock)
			v, cc := tieredVerifier(t, as, clock, func(s *Settings) {
				s.NegativeCacheTTL = tc.negativeTTL
				s.LocalCacheTTL = 2 * time.Second
			})
			for _, step := range []time.Duration{0, time.Second, 1500 * time.Millisecond} {
				clock.Advance(step)
				_, err := v.Verify(context.Background(), "unknown")
				require.ErrorIs(t, err, ErrTokenInactive)
				waitUntilIdle(t, v)
			}
			assert.Equal(t, tc.wantGets, cc.gets.Load())
			assert.Equal(t, tc.wantReqs, as.RequestsFor("unknown"))
		})
	}
}

// TestStaleIfErrorWithTwoTiers checks StaleIfError with the local tier:
// the local entry ends with the fresh one, and once it has, an answer is
// served stale from the shared Cache while the authorization server
// cannot answer, never past StaleIfError; an answer the server calls
// inactive replaces it in both tiers.
func TestStaleIfErrorWithTwoTiers(t *testing.T) {
	clock := newFakeClock()
	as := newAS(t, clock)
	v, cc := tieredVerifier(t, as, clock, func(s *Settings) {
		s.CacheTTL = staleTestTTL
		s.StaleIfError = staleTestWindow
		s.NegativeCacheTTL = time.Minute
	})
	tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Lifetime: 24 * time.Hour})
	revoked := as.Issue(introspectiontest.TokenOptions{Lifetime: 24 * time.Hour})
	fill(t, v, tok)
	fill(t, v, revoked)

	clock.Advance(staleTestTTL)
	down(as)
	got, err := v.Verify(context.Background(), tok)
	require.NoError(t, err)
	assert.True(t, got.Stale, "served stale from the shared tier")
	assert.Equal(t, "alice", got.Subject)
	assert.Equal(t, uint64(1), v.Stats().StaleServed)

	as.SetFault(introspectiontest.Fault{})
	as.Revoke(revoked)
	_, err = v.Verify(context.Background(), revoked)
	require.ErrorIs(t, err, ErrTokenInactive)
	waitUntilIdle(t, v)
	down(as)
	clock.Advance(time.Minute)
	_, err = v.Verify(context.Background(), revoked)
	assert.ErrorIs(t, err, ErrTokenInactive, "the inactive answer replaced the active one: never served stale")

	clock.Advance(staleTestWindow)
	_, err = v.Verify(context.Background(), tok)
	assert.ErrorIs(t, err, ErrIntrospectionFailed, "not past StaleIfError")
	assert.Positive(t, cc.gets.Load())
}

// TestLocalCacheTTLSetting checks how LocalCacheTTL is printed, logged and
// read from LOCAL_CACHE_TTL, where a negative duration turns the local
// tier off and anything but a duration is an error naming the variable.
func TestLocalCacheTTLSetting(t *testing.T) {
	assert.Contains(t, fmt.Sprint(Settings{LocalCacheTTL: 2 * time.Second}), "LocalCacheTTL:2s")
	tests := []struct {
		value   string
		want    time.Duration
		wantErr string
	}{
		{"", 0, ""},
		{"2s", 2 * time.Second, ""},
		{"-1s", -time.Second, ""},
		{"soon", 0, "INTROSPECTION_LOCAL_CACHE_TTL"},
	}
	for _, tc := range tests {
		t.Run(tc.value, func(t *testing.T) {
			clearEnv(t, "INTROSPECTION_")
			t.Setenv("INTROSPECTION_LOCAL_CACHE_TTL", tc.value)
			s, err := SettingsFromEnv("")
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, s.LocalCacheTTL)
		})
	}
}

// TestLocalTierNeedsACache checks that LocalCacheTTL changes nothing
// without a Cache: the built-in cache is the only tier.
func TestLocalTierNeedsACache(t *testing.T) {
	as := newAS(t, nil)
	v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
		s.CacheTTL = time.Minute
		s.LocalCacheTTL = time.Second
	})
	tok := as.Issue(introspectiontest.TokenOptions{})
	fill(t, v, tok)
	fill(t, v, tok)
	st := v.Stats()
	assert.Equal(t, 1, st.CacheEntries)
	assert.Zero(t, st.LocalCacheEntries)
	assert.Zero(t, st.LocalCacheHits)
	assert.Equal(t, int64(1), as.RequestsFor(tok))
}

// TestDigestIndexFollowsTheLocalTier checks that the local tier's index
// by digest, which invalidations use, has an entry for each of the local
// tier's and no other, through stores, replacements, evictions, expiry,
// forgets and emptying, so that an invalidation finds every entry.
func TestDigestIndexFollowsTheLocalTier(t *testing.T) {
	clock := newFakeClock()
	c := newMemoryCache(512, clock.Now) // two shards
	c.indexDigests()
	a, err := decodeAnswer([]byte(`{"active":true}`))
	require.NoError(t, err)
	consistent := func(step string) {
		t.Helper()
		x := c.shards[0].index
		x.mu.Lock()
		defer x.mu.Unlock()
		n := 0
		for i := range c.shards {
			sh := &c.shards[i]
			sh.mu.RLock()
			for tok := range sh.m {
				assert.Equal(t, tok, x.tokens[sha256.Sum256([]byte(tok))], "%s: %q is indexed", step, tok)
				n++
			}
			sh.mu.RUnlock()
		}
		assert.Len(t, x.tokens, n, "%s: nothing else is", step)
	}
	for i := range 2000 { // past the capacity: evictions
		c.set(context.Background(), fmt.Sprint("token-", i%700), a, time.Duration(1+i%3)*time.Second)
	}
	consistent("stores, replacements and evictions")
	clock.Advance(2 * time.Second)
	for i := range 700 { // expired entries leave on a lookup
		c.get(context.Background(), fmt.Sprint("token-", i), clock.Now())
	}
	consistent("expiry")
	clock.Advance(time.Minute)
	c.set(context.Background(), "after the sweep", a, time.Second)
	consistent("sweep")
	c.set(context.Background(), "forgotten", a, time.Second)
	c.forgetDigest(sha256.Sum256([]byte("forgotten")))
	_, ok := c.get(context.Background(), "forgotten", clock.Now())
	assert.False(t, ok, "found and dropped by its digest")
	consistent("forget")
	c.clear()
	assert.Zero(t, c.len())
	consistent("clear")
}

// TestLocalTierHoldsAtMostMaxCacheSize checks that the local tier in front
// of a shared Cache is bounded by MaxCacheSize, as the built-in cache is:
// at the bound it holds every answer, and one more token keeps it there.
func TestLocalTierHoldsAtMostMaxCacheSize(t *testing.T) {
	const size = 3
	for _, tokens := range []int{size, size + 1} {
		t.Run(fmt.Sprint(tokens, " tokens"), func(t *testing.T) {
			as := newAS(t, nil)
			v, _ := tieredVerifier(t, as, nil, func(s *Settings) { s.MaxCacheSize = size })
			for range tokens {
				fill(t, v, as.Issue(introspectiontest.TokenOptions{}))
			}
			assert.Equal(t, size, v.Stats().LocalCacheEntries)
		})
	}
}
