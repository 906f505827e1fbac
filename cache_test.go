package introspection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mapCache is a Cache for tests. It records what it was handed.
type mapCache struct {
	mu        sync.Mutex
	now       func() time.Time
	entries   map[string]mapEntry
	ttls      []time.Duration
	fail      bool // every call fails
	ignoreTTL bool // entries never expire, as a misbehaving store might

	// Hooks run before each call, outside mu; an error they return is
	// the call's. They are set before the cache is used.
	beforeGet, beforeSet, beforeDelete func(ctx context.Context) error
}

type mapEntry struct {
	value   []byte
	expires time.Time
}

func newMapCache(now func() time.Time) *mapCache {
	if now == nil {
		now = time.Now
	}
	return &mapCache{now: now, entries: make(map[string]mapEntry)}
}

var errStoreDown = errors.New("store is down")

func (c *mapCache) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if err := runHook(ctx, c.beforeGet); err != nil {
		return nil, false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail {
		return nil, false, errStoreDown
	}
	e, ok := c.entries[key]
	if !ok || !c.ignoreTTL && !c.now().Before(e.expires) {
		return nil, false, nil
	}
	return e.value, true, nil
}

func (c *mapCache) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := runHook(ctx, c.beforeSet); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail {
		return errStoreDown
	}
	c.ttls = append(c.ttls, ttl)
	c.entries[key] = mapEntry{value: value, expires: c.now().Add(ttl)}
	return nil
}

func (c *mapCache) Delete(ctx context.Context, key string) error {
	if err := runHook(ctx, c.beforeDelete); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, key)
	return nil
}

func runHook(ctx context.Context, hook func(context.Context) error) error {
	if hook == nil {
		return nil
	}
	return hook(ctx)
}

// len returns the number of entries stored.
func (c *mapCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

func (c *mapCache) setFail(f bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fail = f
}

// holdSets makes each Set of mc wait until release is called, and v wait
// for it as long, and returns a channel closed once the first Set runs.
// The end of the test releases them too, before v is closed.
func holdSets(t *testing.T, v *Verifier, mc *mapCache) (entered <-chan struct{}, release func()) {
	t.Helper()
	v.cache.(*sharedStore).timeout = time.Hour // only release ends a Set
	in, out := make(chan struct{}), make(chan struct{})
	var enteredOnce, releasedOnce sync.Once
	mc.beforeSet = func(context.Context) error {
		enteredOnce.Do(func() { close(in) })
		<-out
		return nil
	}
	release = func() { releasedOnce.Do(func() { close(out) }) }
	t.Cleanup(release)
	return in, release
}

// sharedCacheVerifier returns a verifier that caches active answers for a
// minute in a fresh mapCache, without the local tier, so that every call
// reaches the mapCache, after edit changes its settings.
func sharedCacheVerifier(t *testing.T, as *introspectiontest.Server, edit func(*Settings)) (*Verifier, *mapCache) {
	t.Helper()
	mc := newMapCache(time.Now)
	v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
		s.CacheTTL = time.Minute
		s.Cache = mc
		s.LocalCacheTTL = -1
		if edit != nil {
			edit(s)
		}
	})
	return v, mc
}

// cacheKinds runs a test with the built-in cache and with a caller's Cache.
func cacheKinds(t *testing.T, f func(t *testing.T, withCache func(*Settings))) {
	t.Run("built-in", func(t *testing.T) { f(t, func(*Settings) {}) })
	t.Run("shared", func(t *testing.T) {
		f(t, func(s *Settings) { s.Cache = newMapCache(s.Now) })
	})
}

func TestCacheDisabledByDefault(t *testing.T) {
	as := newAS(t, nil)
	tok := as.Issue(introspectiontest.TokenOptions{})
	v := newVerifier(t, as.IntrospectionURL, nil, nil)
	for range 3 {
		_, err := v.Verify(context.Background(), tok)
		require.NoError(t, err)
	}
	assert.Equal(t, int64(3), as.Requests())
	st := v.Stats()
	assert.Zero(t, st.CacheHits+st.CacheMisses)
}

// TestCacheLifetime checks that an entry lives CacheTTL, or until the
// token's exp when that is sooner (RFC 7662 §4).
func TestCacheLifetime(t *testing.T) {
	tests := []struct {
		name      string
		opts      introspectiontest.TokenOptions
		ttl       time.Duration
		wantLives time.Duration
		wantAfter error // the server's verdict once the entry has ended
	}{
		{"ttl shorter than exp", introspectiontest.TokenOptions{Lifetime: time.Hour}, time.Minute, time.Minute, nil},
		{"exp shorter than ttl", introspectiontest.TokenOptions{Lifetime: 30 * time.Second}, time.Minute, 30 * time.Second, ErrTokenInactive},
		{"no exp", introspectiontest.TokenOptions{NoExpiry: true}, time.Minute, time.Minute, nil},
	}
	for _, tc := range tests {
		cacheKinds(t, func(t *testing.T, withCache func(*Settings)) {
			t.Run(tc.name, func(t *testing.T) {
				clock := newFakeClock()
				as := newAS(t, clock)
				tok := as.Issue(tc.opts)
				v := newVerifier(t, as.IntrospectionURL, clock, func(s *Settings) {
					s.CacheTTL = tc.ttl
					withCache(s)
				})
				_, err := v.Verify(context.Background(), tok)
				require.NoError(t, err)
				waitUntilIdle(t, v) // the entry's life starts when it is stored
				clock.Advance(tc.wantLives - time.Second)
				_, err = v.Verify(context.Background(), tok)
				require.NoError(t, err)
				assert.Equal(t, int64(1), as.RequestsFor(tok), "served from the cache")

				clock.Advance(time.Second)
				_, err = v.Verify(context.Background(), tok)
				assert.Equal(t, int64(2), as.RequestsFor(tok), "the entry ended; the server was asked again")
				if tc.wantAfter == nil {
					assert.NoError(t, err)
				} else {
					assert.ErrorIs(t, err, tc.wantAfter, "the server's own verdict, not a cached one")
				}
			})
		})
	}
}

func TestCacheTTLHandedToSharedCache(t *testing.T) {
	clock := newFakeClock()
	as := newAS(t, clock)
	mc := newMapCache(clock.Now)
	v := newVerifier(t, as.IntrospectionURL, clock, func(s *Settings) {
		s.CacheTTL = time.Minute
		s.NegativeCacheTTL = 5 * time.Second
		s.Cache = mc
	})
	for _, tok := range []string{
		as.Issue(introspectiontest.TokenOptions{Lifetime: time.Hour}),
		as.Issue(introspectiontest.TokenOptions{Lifetime: 20 * time.Second}),
		"unknown",
	} {
		_, _ = v.Verify(context.Background(), tok)
		waitUntilIdle(t, v)
	}
	assert.Equal(t, []time.Duration{time.Minute, 20 * time.Second, 5 * time.Second}, mc.ttls)
}

// TestCacheKeysAndValues checks that a Cache never sees the token, the
// secret, or the settings in clear, and that keys are the namespace of the
// endpoint and client id, a colon and the hex SHA-256 of the token.
func TestCacheKeysAndValues(t *testing.T) {
	as := newAS(t, nil)
	v, mc := sharedCacheVerifier(t, as, nil)
	tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{"read"}})
	_, err := v.Verify(context.Background(), tok)
	require.NoError(t, err)
	waitUntilIdle(t, v)
	require.Len(t, mc.entries, 1)
	for k, e := range mc.entries {
		assert.Equal(t, v.CacheKey(tok), k)
		assert.Regexp(t, "^[0-9a-f]{32}:[0-9a-f]{64}$", k)
		for _, clear := range []string{tok, introspectiontest.ClientSecret, introspectiontest.ClientID, as.URL} {
			assert.NotContains(t, k, clear)
		}
		assert.NotContains(t, string(e.value), tok)
		assert.NotContains(t, string(e.value), introspectiontest.ClientSecret)
		assert.Contains(t, string(e.value), `"sub":"alice"`)
	}

	// A known answer: the first 16 bytes of SHA-256 over the endpoint and
	// the client id, each after its length as 8 bytes big-endian, then the
	// known SHA-256 of "abc".
	known, err := NewVerifier(Settings{IntrospectionURL: "https://auth.example.com/oauth2/introspect",
		ClientID: "my-resource-server", ClientSecret: "secret"})
	require.NoError(t, err)
	assert.Equal(t, "50bb357589d051fea7bf8c7dda26b1ec:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
		known.CacheKey("abc"))

	// The namespace follows the endpoint and the client id, and nothing else.
	for _, tc := range []struct {
		name string
		edit func(*Settings)
		same bool
	}{
		{"another secret", func(s *Settings) { s.ClientSecret = "rotated" }, true},
		{"another auth method", func(s *Settings) { s.ClientAuthMethod = ClientSecretPost }, true},
		{"other checks", func(s *Settings) { s.Audience, s.RequiredScopes, s.Issuer = []string{"a"}, []string{"b"}, "c" }, true},
		{"another client id", func(s *Settings) { s.ClientID = "my-resource-server2" }, false},
		{"an id that moves the boundary", func(s *Settings) {
			s.IntrospectionURL, s.ClientID = "https://auth.example.com/oauth2/introspectm", "y-resource-server"
		}, false},
		{"another path", func(s *Settings) { s.IntrospectionURL = "https://auth.example.com/oauth2/introspect2" }, false},
		{"another host", func(s *Settings) { s.IntrospectionURL = "https://auth2.example.com/oauth2/introspect" }, false},
	} {
		s := Settings{IntrospectionURL: "https://auth.example.com/oauth2/introspect",
			ClientID: "my-resource-server", ClientSecret: "secret"}
		tc.edit(&s)
		other, err := NewVerifier(s)
		require.NoError(t, err, tc.name)
		if tc.same {
			assert.Equal(t, known.CacheKey("abc"), other.CacheKey("abc"), tc.name)
		} else {
			assert.NotEqual(t, known.CacheKey("abc")[:32], other.CacheKey("abc")[:32], tc.name)
		}
	}
}

// TestSharedCacheNeverHoldsTheToken checks that an answer that repeats the
// token is not handed to a Cache.
func TestSharedCacheNeverHoldsTheToken(t *testing.T) {
	as := newAS(t, nil)
	v, mc := sharedCacheVerifier(t, as, nil)
	tok := as.Issue(introspectiontest.TokenOptions{})
	as.SetFault(introspectiontest.Fault{Body: `{"active":true,"jti":"` + tok + `"}`})
	_, err := v.Verify(context.Background(), tok)
	require.NoError(t, err)
	waitUntilIdle(t, v)
	assert.Zero(t, mc.len())
	assert.Zero(t, v.Stats().CacheErrors)
}

func TestNegativeCaching(t *testing.T) {
	tests := []struct {
		name         string
		cacheTTL     time.Duration
		negativeTTL  time.Duration
		wantInactive int64 // requests for 3 calls on an inactive token
		wantActive   int64 // requests for 3 calls on an active token
	}{
		{"off", time.Minute, 0, 3, 1},
		{"on", time.Minute, 10 * time.Second, 1, 1},
		{"on without positive caching", 0, 10 * time.Second, 1, 3},
	}
	for _, tc := range tests {
		cacheKinds(t, func(t *testing.T, withCache func(*Settings)) {
			t.Run(tc.name, func(t *testing.T) {
				clock := newFakeClock()
				as := newAS(t, clock)
				v := newVerifier(t, as.IntrospectionURL, clock, func(s *Settings) {
					s.CacheTTL = tc.cacheTTL
					s.NegativeCacheTTL = tc.negativeTTL
					withCache(s)
				})
				active := as.Issue(introspectiontest.TokenOptions{})
				for range 3 {
					_, err := v.Verify(context.Background(), "unknown")
					assert.ErrorIs(t, err, ErrTokenInactive)
					_, err = v.Verify(context.Background(), active)
					assert.NoError(t, err)
				}
				assert.Equal(t, tc.wantInactive, as.RequestsFor("unknown"))
				assert.Equal(t, tc.wantActive, as.RequestsFor(active))
				if tc.negativeTTL > 0 {
					waitUntilIdle(t, v)
					clock.Advance(tc.negativeTTL)
					_, err := v.Verify(context.Background(), "unknown")
					assert.ErrorIs(t, err, ErrTokenInactive)
					assert.Equal(t, tc.wantInactive+1, as.RequestsFor("unknown"), "negative entry ended")
				}
			})
		})
	}
}

// TestErrorsNotCached checks that failed introspection leaves no entry.
func TestErrorsNotCached(t *testing.T) {
	faults := []introspectiontest.Fault{
		{Status: 500},
		{Status: 401, Body: `{"error":"invalid_client"}`},
		{Body: `{"active":"true"}`},
		{Body: `not json`},
		{ContentType: "text/html"},
		{Latency: time.Second},
	}
	for i, f := range faults {
		cacheKinds(t, func(t *testing.T, withCache func(*Settings)) {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				as := newAS(t, nil)
				tok := as.Issue(introspectiontest.TokenOptions{})
				v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
					s.CacheTTL = time.Minute
					s.NegativeCacheTTL = time.Minute
					s.Timeout = 50 * time.Millisecond
					withCache(s)
				})
				as.SetFault(f)
				_, err := v.Verify(context.Background(), tok)
				require.ErrorIs(t, err, ErrIntrospectionFailed)
				as.SetFault(introspectiontest.Fault{})
				_, err = v.Verify(context.Background(), tok)
				require.NoError(t, err)
				assert.Equal(t, int64(2), as.Requests())
			})
		})
	}
}

// TestCachedTokensAreCopies checks that callers cannot change what the next
// caller gets.
func TestCachedTokensAreCopies(t *testing.T) {
	cacheKinds(t, func(t *testing.T, withCache func(*Settings)) {
		as := newAS(t, nil)
		tok := as.Issue(introspectiontest.TokenOptions{
			Scopes:   []string{"read", "write"},
			Audience: []string{"a", "b"},
			Extra:    map[string]any{"ext": map[string]any{"list": []any{"x"}}},
		})
		v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
			s.CacheTTL = time.Minute
			withCache(s)
		})
		first, err := v.Verify(context.Background(), tok)
		require.NoError(t, err)
		want, err := v.Verify(context.Background(), tok)
		require.NoError(t, err)

		first.Scopes[0] = "admin"
		first.Scopes = append(first.Scopes, "root")
		first.Audience[0] = "evil"
		first.Claims["scope"] = "admin"
		first.Claims["ext"].(map[string]any)["list"].([]any)[0] = "changed"
		delete(first.Claims, "active")

		again, err := v.Verify(context.Background(), tok)
		require.NoError(t, err)
		assert.Equal(t, want, again)
		assert.Equal(t, []string{"read", "write"}, again.Scopes)
		assert.Equal(t, int64(1), as.RequestsFor(tok))
	})
}

// TestRevokedTokenRejectedWhenEntryEnds shows the trade-off RFC 7662 §4
// describes: a revoked token stays accepted until its entry ends.
func TestRevokedTokenRejectedWhenEntryEnds(t *testing.T) {
	clock := newFakeClock()
	as := newAS(t, clock)
	tok := as.Issue(introspectiontest.TokenOptions{})
	v := newVerifier(t, as.IntrospectionURL, clock, func(s *Settings) { s.CacheTTL = 10 * time.Second })
	_, err := v.Verify(context.Background(), tok)
	require.NoError(t, err)
	waitUntilIdle(t, v)
	as.Revoke(tok)
	clock.Advance(9 * time.Second)
	_, err = v.Verify(context.Background(), tok)
	require.NoError(t, err, "still cached")
	clock.Advance(time.Second)
	_, err = v.Verify(context.Background(), tok)
	assert.ErrorIs(t, err, ErrTokenInactive)
}

// TestChecksRerunOnHits checks that a cache hit is judged at the current
// time and by the verifier's own settings (Oathkeeper GHSA-qvp4-rpmr-xwrr).
func TestChecksRerunOnHits(t *testing.T) {
	clock := newFakeClock()
	as := newAS(t, clock)
	// A store that keeps entries past their TTL must still not make an
	// expired token acceptable.
	mc := newMapCache(clock.Now)
	mc.ignoreTTL = true
	shared := func(edit func(*Settings)) *Verifier {
		return newVerifier(t, as.IntrospectionURL, clock, func(s *Settings) {
			s.CacheTTL = time.Hour
			s.Cache = mc
			// Without the local tier, values carry no fresh_until line:
			// only the store's TTL, which it ignores, ends them.
			s.LocalCacheTTL = -1
			if edit != nil {
				edit(s)
			}
		})
	}

	t.Run("exp", func(t *testing.T) {
		tok := as.Issue(introspectiontest.TokenOptions{Lifetime: time.Minute})
		v := shared(nil)
		_, err := v.Verify(context.Background(), tok)
		require.NoError(t, err)
		waitUntilIdle(t, v) // stored
		clock.Advance(time.Minute)
		_, err = v.Verify(context.Background(), tok)
		assert.ErrorIs(t, err, ErrTokenExpired)
		assert.Equal(t, int64(1), as.RequestsFor(tok), "judged from the cached answer")
	})
	t.Run("nbf", func(t *testing.T) {
		tok := as.Issue(introspectiontest.TokenOptions{NotBefore: clock.Now().Add(time.Minute)})
		v := newVerifier(t, as.IntrospectionURL, clock, func(s *Settings) { s.CacheTTL = time.Hour })
		_, err := v.Verify(context.Background(), tok)
		assert.ErrorIs(t, err, ErrTokenNotYetValid)
		waitUntilIdle(t, v) // stored
		clock.Advance(time.Minute)
		_, err = v.Verify(context.Background(), tok)
		assert.NoError(t, err)
		assert.Equal(t, int64(1), as.RequestsFor(tok))
	})
	t.Run("scope, audience, issuer and token_use per verifier", func(t *testing.T) {
		tok := as.Issue(introspectiontest.TokenOptions{Scopes: []string{"read"}, Audience: []string{"mcp"}})
		first := shared(nil)
		_, err := first.Verify(context.Background(), tok)
		require.NoError(t, err)
		waitUntilIdle(t, first) // the answer is stored
		for _, tc := range []struct {
			edit func(*Settings)
			want error
		}{
			{func(s *Settings) { s.RequiredScopes = []string{"admin"} }, ErrInsufficientScope},
			{func(s *Settings) { s.Audience = []string{"other"} }, ErrAudienceMismatch},
			{func(s *Settings) { s.Issuer = "https://other" }, ErrIssuerMismatch},
		} {
			_, err := shared(tc.edit).Verify(context.Background(), tok)
			assert.ErrorIs(t, err, tc.want)
		}
		assert.Equal(t, int64(1), as.RequestsFor(tok), "every verdict came from the shared cached answer")
		refresh := as.Issue(introspectiontest.TokenOptions{TokenUse: "refresh_token"})
		for range 2 {
			v := shared(nil)
			_, err := v.Verify(context.Background(), refresh)
			assert.ErrorIs(t, err, ErrNotAccessToken)
			waitUntilIdle(t, v)
		}
		assert.Equal(t, int64(1), as.RequestsFor(refresh))
	})
}

// TestExpZeroNotCached closes FastMCP's hole where exp 0 was cached for the
// whole TTL: exp 0 is 1970, so the token is expired and never cached.
func TestExpZeroNotCached(t *testing.T) {
	as := newAS(t, nil)
	tok := as.Issue(introspectiontest.TokenOptions{Extra: map[string]any{"exp": 0}})
	v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) { s.CacheTTL = time.Minute })
	for range 2 {
		_, err := v.Verify(context.Background(), tok)
		assert.ErrorIs(t, err, ErrTokenExpired)
	}
	assert.Equal(t, int64(2), as.RequestsFor(tok))
	assert.Zero(t, v.Stats().CacheEntries)
}

func TestCacheSizeBound(t *testing.T) {
	for _, size := range []int{1, 7, 50, 1000, 20_000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			c := newMemoryCache(size, time.Now)
			a := &answer{active: true}
			for i := range size + size/2 + 10 {
				c.set(context.Background(), fmt.Sprintf("tok-%d", i), a, time.Hour)
				require.LessOrEqual(t, c.len(), size)
			}
			assert.Equal(t, size, c.len())
		})
	}
}

// TestCacheEvictionKeepsHotEntries checks SIEVE: entries hit since the hand
// last passed survive a stream of entries used once.
func TestCacheEvictionKeepsHotEntries(t *testing.T) {
	clock := newFakeClock()
	c := newMemoryCache(10, clock.Now)
	a := &answer{active: true}
	ctx := context.Background()
	c.set(ctx, "hot", a, time.Hour)
	for i := range 100 {
		_, ok := c.get(ctx, "hot", clock.Now())
		require.True(t, ok, "hot entry evicted after %d others", i)
		c.set(ctx, fmt.Sprintf("once-%d", i), a, time.Hour)
	}
	_, ok := c.get(ctx, "once-0", clock.Now())
	assert.False(t, ok, "entries used once leave first")
	_, ok = c.get(ctx, "once-99", clock.Now())
	assert.True(t, ok, "the newest entry is kept")
}

func TestCacheEvictsExpiredFirst(t *testing.T) {
	clock := newFakeClock()
	c := newMemoryCache(3, clock.Now)
	a := &answer{active: true}
	ctx := context.Background()
	c.set(ctx, "short", a, time.Second)
	c.set(ctx, "long-1", a, time.Hour)
	c.set(ctx, "long-2", a, time.Hour)
	for _, k := range []string{"short", "long-1", "long-2"} {
		_, ok := c.get(ctx, k, clock.Now()) // all visited
		require.True(t, ok)
	}
	clock.Advance(2 * time.Second)
	c.set(ctx, "new", a, time.Hour)
	for _, k := range []string{"long-1", "long-2", "new"} {
		_, ok := c.get(ctx, k, clock.Now())
		assert.True(t, ok, k)
	}
}

// TestExpiredEntriesDoNotPileUp checks the periodic sweep.
func TestExpiredEntriesDoNotPileUp(t *testing.T) {
	clock := newFakeClock()
	c := newMemoryCache(10_000, clock.Now)
	a := &answer{active: true}
	ctx := context.Background()
	for i := range 5000 {
		c.set(ctx, fmt.Sprintf("tok-%d", i), a, time.Second)
	}
	assert.Equal(t, 5000, c.len())
	clock.Advance(sweepInterval)
	require.Greater(t, len(c.shards), 1)
	// 1,000 writes reach every shard but with odds of about 1e-14.
	for i := range 1000 {
		c.set(ctx, fmt.Sprintf("new-%d", i), a, time.Hour)
	}
	assert.Equal(t, 1000, c.len(), "expired entries were swept")
}

// TestSharedCacheOutage checks that a failing Cache degrades to asking the
// authorization server, is counted and logged, decides nothing itself, and
// is left alone for its cooldown.
func TestSharedCacheOutage(t *testing.T) {
	tests := []struct {
		name        string
		cooldown    time.Duration
		wantErrors  uint64
		wantSkipped uint64
	}{
		// Per round without cooldown: the active token fails the lookup
		// of its shared request and a store; the inactive one (not
		// negatively cached) fails the lookup.
		{"no cooldown", 0, 6, 0},
		// With it, the first failure sends every later call straight to
		// the authorization server.
		{"cooldown", time.Hour, 1, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			as := newAS(t, nil)
			var logs strings.Builder
			v, mc := sharedCacheVerifier(t, as, func(s *Settings) { s.Logger = newTestLogger(&logs) })
			v.cache.(*sharedStore).cooldown = tc.cooldown
			good := as.Issue(introspectiontest.TokenOptions{})
			mc.setFail(true)
			for range 2 {
				_, err := v.Verify(context.Background(), good)
				require.NoError(t, err)
				waitUntilIdle(t, v)
				_, err = v.Verify(context.Background(), "unknown")
				require.ErrorIs(t, err, ErrTokenInactive)
			}
			assert.Equal(t, int64(2), as.RequestsFor(good))
			st := v.Stats()
			assert.Equal(t, tc.wantErrors, st.CacheErrors)
			assert.Equal(t, tc.wantSkipped, st.CacheSkipped)
			assert.Contains(t, logs.String(), "cache get failed")

			mc.setFail(false)
			v.cache.(*sharedStore).downUntil.Store(0) // the cooldown is over
			for range 2 {
				_, err := v.Verify(context.Background(), good)
				require.NoError(t, err)
				waitUntilIdle(t, v)
			}
			assert.Equal(t, int64(3), as.RequestsFor(good), "the cache works again")
		})
	}
}

func TestSharedCacheCorruptValue(t *testing.T) {
	as := newAS(t, nil)
	v, mc := sharedCacheVerifier(t, as, nil)
	tok := as.Issue(introspectiontest.TokenOptions{})
	require.NoError(t, mc.Set(context.Background(), v.CacheKey(tok), []byte(`{"active":"true"}`), time.Minute))
	_, err := v.Verify(context.Background(), tok)
	require.NoError(t, err)
	waitUntilIdle(t, v)
	assert.Equal(t, int64(1), as.RequestsFor(tok), "the corrupt entry was ignored and replaced")
	assert.Equal(t, uint64(1), v.Stats().CacheErrors)
}

// TestCollapsingWithCache checks the counts the issue asks for: 1,000
// goroutines on one uncached token make one request; 1,000 over 100 tokens
// make at most 100.
func TestCollapsingWithCache(t *testing.T) {
	tests := []struct {
		name   string
		tokens int
	}{
		{"one token", 1},
		{"100 tokens", 100},
	}
	for _, tc := range tests {
		cacheKinds(t, func(t *testing.T, withCache func(*Settings)) {
			t.Run(tc.name, func(t *testing.T) {
				as := newAS(t, nil)
				as.SetFault(introspectiontest.Fault{Latency: 20 * time.Millisecond})
				tokens := make([]string, tc.tokens)
				for i := range tokens {
					tokens[i] = as.Issue(introspectiontest.TokenOptions{Subject: fmt.Sprint(i)})
				}
				v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
					s.CacheTTL = time.Minute
					withCache(s)
				})
				var wg sync.WaitGroup
				var wrong atomic.Int32
				for i := range 1000 {
					wg.Go(func() {
						tok, err := v.Verify(context.Background(), tokens[i%len(tokens)])
						if err != nil || tok.Subject != fmt.Sprint(i%len(tokens)) {
							wrong.Add(1)
						}
					})
				}
				wg.Wait()
				assert.Zero(t, wrong.Load())
				assert.Equal(t, int64(tc.tokens), as.Requests())
				assert.Equal(t, uint64(tc.tokens), v.Stats().UpstreamRequests)
			})
		})
	}
}

// TestSharedValuesStayPrivate checks that values the built-in cache shares
// between entries (scopes, audience) reach callers as their own copies.
func TestSharedValuesStayPrivate(t *testing.T) {
	as := newAS(t, nil)
	opts := introspectiontest.TokenOptions{Scopes: []string{"read", "write"}, Audience: []string{"a", "b"}}
	t1, t2 := as.Issue(opts), as.Issue(opts)
	v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) { s.CacheTTL = time.Minute })
	for _, tok := range []string{t1, t2, t1} {
		got, err := v.Verify(context.Background(), tok)
		require.NoError(t, err)
		require.Equal(t, []string{"read", "write"}, got.Scopes)
		require.Equal(t, []string{"a", "b"}, got.Audience)
		require.Equal(t, []any{"a", "b"}, got.Claims["aud"])
		got.Scopes[0] = "admin"
		got.Audience[0] = "evil"
		got.Claims["aud"].([]any)[0] = "evil"
	}
	got, err := v.Verify(context.Background(), t2)
	require.NoError(t, err)
	assert.Equal(t, []string{"read", "write"}, got.Scopes)
	assert.Equal(t, []any{"a", "b"}, got.Claims["aud"])
	assert.Equal(t, int64(2), as.Requests())
}

// perClientServer answers introspection by the Basic client id: answers
// maps each id to its JSON answer. It counts the requests of each client.
func perClientServer(t *testing.T, answers map[string]string) (*httptest.Server, func(client string) int64) {
	t.Helper()
	var mu sync.Mutex
	asked := map[string]int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _, _ := r.BasicAuth()
		id, _ = url.QueryUnescape(id)
		mu.Lock()
		asked[id]++
		mu.Unlock()
		body, ok := answers[id]
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv, func(client string) int64 {
		mu.Lock()
		defer mu.Unlock()
		return asked[client]
	}
}

// TestSharedCacheSeparatesResourceServers checks that two resource servers
// on one shared Cache never take each other's answers: RFC 7662 lets the
// authorization server answer each protected resource differently, so an
// answer is shared only by verifiers with the same endpoint and client id.
func TestSharedCacheSeparatesResourceServers(t *testing.T) {
	type setup struct {
		a, b           *Verifier
		token          string
		askedA, askedB func() int64
	}
	cached := func(s *Settings, mc *mapCache) {
		s.CacheTTL = time.Minute
		s.NegativeCacheTTL = time.Minute
		s.Cache = mc
	}
	tests := []struct {
		name  string
		build func(t *testing.T, mc *mapCache) setup
	}{
		{"one endpoint, two client ids", func(t *testing.T, mc *mapCache) setup {
			srv, asked := perClientServer(t, map[string]string{
				"rs-a": `{"active":true,"sub":"alice"}`,
				"rs-b": `{"active":false}`,
			})
			client := func(id string) *Verifier {
				return newVerifier(t, srv.URL, nil, func(s *Settings) {
					s.ClientID, s.ClientSecret = id, "secret"
					cached(s, mc)
				})
			}
			return setup{client("rs-a"), client("rs-b"), "shared-token",
				func() int64 { return asked("rs-a") }, func() int64 { return asked("rs-b") }}
		}},
		{"two endpoints, one client id", func(t *testing.T, mc *mapCache) setup {
			asA, asB := newAS(t, nil), newAS(t, nil)
			tok := asA.Issue(introspectiontest.TokenOptions{Subject: "alice"}) // unknown to asB
			a := newVerifier(t, asA.IntrospectionURL, nil, func(s *Settings) { cached(s, mc) })
			b := newVerifier(t, asB.IntrospectionURL, nil, func(s *Settings) { cached(s, mc) })
			return setup{a, b, tok, asA.Requests, asB.Requests}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mc := newMapCache(time.Now)
			st := tc.build(t, mc)
			ctx := context.Background()
			for round := range 2 {
				got, err := st.a.Verify(ctx, st.token)
				require.NoError(t, err, "round %d", round)
				assert.Equal(t, "alice", got.Subject)
				waitUntilIdle(t, st.a) // A's answer is stored
				_, err = st.b.Verify(ctx, st.token)
				assert.ErrorIs(t, err, ErrTokenInactive, "round %d: B's server called the token inactive", round)
				waitUntilIdle(t, st.b)
			}
			assert.Equal(t, int64(1), st.askedA(), "A's answer came from the cache the second time")
			assert.Equal(t, int64(1), st.askedB(), "B's answer came from the cache the second time")
			assert.Equal(t, 2, mc.len(), "one entry per resource server")
		})
	}
}

// TestSharedCacheSameResourceServerShares checks that verifiers with the
// same endpoint and client id share answers, whatever else differs in
// their settings: the authorization server's answer does not depend on
// how the client authenticates, nor on the checks each verifier runs.
func TestSharedCacheSameResourceServerShares(t *testing.T) {
	as := newAS(t, nil)
	mc := newMapCache(time.Now)
	tok := as.Issue(introspectiontest.TokenOptions{Scopes: []string{"read"}})
	edits := []func(*Settings){
		func(*Settings) {},
		func(s *Settings) { s.ClientAuthMethod = ClientSecretPost },
		func(s *Settings) { s.RequiredScopes = []string{"read"}; s.Timeout = time.Second },
		func(s *Settings) { s.CacheTTL = 30 * time.Second; s.Leeway = time.Second },
	}
	for i, edit := range edits {
		v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
			s.CacheTTL = time.Minute
			s.Cache = mc
			edit(s)
		})
		_, err := v.Verify(context.Background(), tok)
		require.NoError(t, err, "verifier %d", i)
		waitUntilIdle(t, v) // the answer is stored before the next replica asks
	}
	assert.Equal(t, int64(1), as.Requests(), "one upstream request between all the verifiers")
	assert.Equal(t, 1, mc.len())
}

// TestSharedCacheValuesGetNetworkLimits checks that a value read from a
// Cache is held to the limits of an answer from the network: at most
// maxBodySize bytes and decoded as strictly. A refused value counts as a
// cache error, and the authorization server decides instead.
func TestSharedCacheValuesGetNetworkLimits(t *testing.T) {
	// padded returns an active answer of exactly n bytes.
	padded := func(n int) string {
		const head, tail = `{"active":true,"sub":"cached","pad":"`, `"}`
		return head + strings.Repeat("x", n-len(head)-len(tail)) + tail
	}
	tests := []struct {
		name    string
		value   string
		wantHit bool
	}{
		{"at the size cap", padded(maxBodySize), true},
		{"one byte past the size cap", padded(maxBodySize + 1), false},
		{"3 MiB", padded(3 << 20), false},
		{"duplicate member", `{"active":false,"active":true}`, false},
		{"duplicate member through an escape", `{"active":false,"\u0061ctive":true}`, false},
		{"invalid UTF-8", "{\"active\":true,\"sub\":\"\xff\"}", false},
		{"active as a string", `{"active":"true"}`, false},
		{"not an object", `[{"active":true}]`, false},
		{"trailing data", `{"active":true} {"active":true}`, false},
	}
	require.Len(t, padded(maxBodySize+1), maxBodySize+1)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			as := newAS(t, nil)
			const tok = "never-issued" // the authorization server calls it inactive
			v, mc := sharedCacheVerifier(t, as, nil)
			require.NoError(t, mc.Set(context.Background(), v.CacheKey(tok), []byte(tc.value), time.Minute))

			got, err := v.Verify(context.Background(), tok)
			st := v.Stats()
			if tc.wantHit {
				require.NoError(t, err)
				assert.Equal(t, "cached", got.Subject)
				assert.Zero(t, as.Requests())
				assert.Zero(t, st.CacheErrors)
				return
			}
			assert.ErrorIs(t, err, ErrTokenInactive, "the server's verdict, never the refused value's")
			assert.Nil(t, got)
			assert.Equal(t, int64(1), as.RequestsFor(tok))
			assert.Equal(t, uint64(1), st.CacheErrors)
			assert.Zero(t, mc.len(), "the refused value was deleted")
		})
	}
}

// TestSharedCacheStoresOnlyWhatItCanReadBack checks the bound on values
// handed to a Cache: the answer as encoded for the store (where "<" takes
// six bytes, \u003c) must fit the size a read accepts, else it is used but
// not stored.
func TestSharedCacheStoresOnlyWhatItCanReadBack(t *testing.T) {
	// answer returns an answer that encodes to 24 + 6*lt + x bytes.
	answer := func(lt, x int) string {
		return `{"active":true,"pad":"` + strings.Repeat("<", lt) + strings.Repeat("x", x) + `"}`
	}
	const lt = (maxBodySize - 24) / 6
	tests := []struct {
		name       string
		body       string
		wantStored bool
	}{
		{"encoded at the size cap", answer(lt, maxBodySize-24-6*lt), true},
		{"encoded one byte past it", answer(lt, maxBodySize-24-6*lt+1), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Less(t, len(tc.body), maxBodySize/2, "the server's answer itself is well under the cap")
			as := newAS(t, nil)
			v, mc := sharedCacheVerifier(t, as, nil)
			tok := as.Issue(introspectiontest.TokenOptions{})
			as.SetFault(introspectiontest.Fault{Body: tc.body})
			for range 2 {
				_, err := v.Verify(context.Background(), tok)
				require.NoError(t, err)
				waitUntilIdle(t, v)
			}
			if tc.wantStored {
				require.Equal(t, 1, mc.len())
				for _, e := range mc.entries {
					assert.Len(t, e.value, maxBodySize)
				}
				assert.Equal(t, int64(1), as.RequestsFor(tok), "read back from the cache")
			} else {
				assert.Zero(t, mc.len())
				assert.Equal(t, int64(2), as.RequestsFor(tok))
			}
			assert.Zero(t, v.Stats().CacheErrors)
		})
	}
}

// TestCallerGoneIsNotACacheError ends the caller's context while the
// shared request looks its token up in the Cache: that is the caller's
// doing, not the store's. The lookup runs on the request's own context and
// goes on; nothing is counted or logged as a cache error, no cooldown
// starts, and the request fills the cache for the next caller.
func TestCallerGoneIsNotACacheError(t *testing.T) {
	as := newAS(t, nil)
	logs := &recordingHandler{}
	v, mc := sharedCacheVerifier(t, as, func(s *Settings) { s.Logger = slog.New(logs) })
	tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})
	entered, gone := make(chan struct{}), make(chan struct{})
	var gets atomic.Int32
	mc.beforeGet = func(ctx context.Context) error {
		if gets.Add(1) > 1 {
			return nil
		}
		close(entered)
		select {
		case <-gone:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-entered
		cancel()
	}()
	_, err := v.Verify(ctx, tok)
	require.ErrorIs(t, err, context.Canceled)
	close(gone)
	waitUntilIdle(t, v)

	got, err := v.Verify(context.Background(), tok)
	require.NoError(t, err)
	assert.Equal(t, "alice", got.Subject)
	st := v.Stats()
	assert.Zero(t, st.CacheErrors)
	assert.Zero(t, st.CacheSkipped, "no cooldown")
	assert.Equal(t, uint64(1), st.CacheHits, "the shared request filled the cache")
	assert.Equal(t, int64(1), as.RequestsFor(tok))
	assert.Empty(t, logs.matching("cache"), logs.text())
}

// TestCacheEntriesOfACallersCache checks that Stats says the number of
// entries is unknown (-1) with a caller's Cache, whatever it holds, and
// counts them with the built-in one.
func TestCacheEntriesOfACallersCache(t *testing.T) {
	as := newAS(t, nil)
	shared, _ := sharedCacheVerifier(t, as, nil)
	builtIn := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) { s.CacheTTL = time.Minute })
	off := newVerifier(t, as.IntrospectionURL, nil, nil)
	for _, v := range []*Verifier{shared, builtIn, off} {
		for range 2 {
			_, err := v.Verify(context.Background(), as.Issue(introspectiontest.TokenOptions{}))
			require.NoError(t, err)
			waitUntilIdle(t, v)
		}
	}
	assert.Equal(t, -1, shared.Stats().CacheEntries)
	assert.Equal(t, 2, builtIn.Stats().CacheEntries)
	assert.Zero(t, off.Stats().CacheEntries)
}
