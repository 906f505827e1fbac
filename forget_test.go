package introspection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// bus carries invalidations between the verifiers of a test, in process,
// as Redis pub/sub does between replicas: Invalidate delivers the key to
// every subscriber of its namespace before it returns.
type bus struct {
	mu   sync.Mutex // guards subs and up
	subs map[*busSub]bool
	up   bool // whether subscriptions come up
	fail error
}

type busSub struct {
	namespace string
	sub       InvalidationSubscriber
}

func newBus() *bus { return &bus{subs: make(map[*busSub]bool), up: true} }

// invalidatingCache is a Cache that is also an Invalidator, through b.
type invalidatingCache struct {
	Cache
	b *bus
}

func (c invalidatingCache) Invalidate(_ context.Context, key string) error {
	ns, _, _ := strings.Cut(key, ":")
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	if c.b.fail != nil {
		return c.b.fail
	}
	for s := range c.b.subs {
		if s.namespace == ns && c.b.up {
			s.sub.Invalidated(key)
		}
	}
	return nil
}

func (c invalidatingCache) SubscribeInvalidations(namespace string, sub InvalidationSubscriber) (stop func()) {
	s := &busSub{namespace: namespace, sub: sub}
	c.b.mu.Lock()
	c.b.subs[s] = true
	if c.b.up {
		sub.Subscribed(true)
	}
	c.b.mu.Unlock()
	return func() {
		c.b.mu.Lock()
		defer c.b.mu.Unlock()
		delete(c.b.subs, s)
	}
}

// send delivers a message to every subscriber, as another publisher on
// the channel could.
func (b *bus) send(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		s.sub.Invalidated(key)
	}
}

// setUp brings every subscription up or down.
func (b *bus) setUp(up bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.up = up
	for s := range b.subs {
		s.sub.Subscribed(up)
	}
}

// replicas returns n verifiers of as on clock that share one counted
// mapCache carrying invalidations on b.
func replicas(t *testing.T, n int, as *introspectiontest.Server, clock *fakeClock, b *bus, edit func(*Settings)) ([]*Verifier, *countingCache) {
	t.Helper()
	now := time.Now
	if clock != nil {
		now = clock.Now
	}
	cc := &countingCache{Cache: newMapCache(now)}
	vs := make([]*Verifier, n)
	for i := range vs {
		vs[i] = newVerifier(t, as.IntrospectionURL, clock, func(s *Settings) {
			s.CacheTTL = time.Minute
			s.Cache = invalidatingCache{Cache: cc, b: b}
			if edit != nil {
				edit(s)
			}
		})
	}
	return vs, cc
}

// TestForgetDropsTheAnswer checks that after Forget the next Verify asks
// the authorization server, with the built-in cache, with a shared Cache
// with and without the local tier, and with caching off.
func TestForgetDropsTheAnswer(t *testing.T) {
	tests := []struct {
		name     string
		edit     func(*Settings)
		negative bool // an unknown token, its inactive answer cached
	}{
		{"built-in cache", func(s *Settings) { s.CacheTTL = time.Minute }, false},
		{"shared cache with a local tier", func(s *Settings) { s.CacheTTL, s.Cache = time.Minute, newMapCache(nil) }, false},
		{"shared cache alone", func(s *Settings) {
			s.CacheTTL, s.Cache, s.LocalCacheTTL = time.Minute, newMapCache(nil), -1
		}, false},
		{"negative caching", func(s *Settings) { s.NegativeCacheTTL = time.Minute }, true},
		{"caching off", func(*Settings) {}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			as := newAS(t, nil)
			v := newVerifier(t, as.IntrospectionURL, nil, tc.edit)
			tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})
			if tc.negative {
				tok = "unknown"
				_, err := v.Verify(context.Background(), tok)
				require.ErrorIs(t, err, ErrTokenInactive)
			} else {
				fill(t, v, tok)
				as.Revoke(tok)
			}
			waitUntilIdle(t, v)
			require.NoError(t, v.Forget(context.Background(), tok))
			_, err := v.Verify(context.Background(), tok)
			assert.ErrorIs(t, err, ErrTokenInactive, "the server's answer, not the cached one")
			assert.Equal(t, int64(2), as.RequestsFor(tok), "one request before the Forget, one after")
		})
	}
}

// TestForgetRefusesAMalformedToken checks that Forget refuses what Verify
// would refuse before asking anyone, as Verify does.
func TestForgetRefusesAMalformedToken(t *testing.T) {
	as := newAS(t, nil)
	v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) { s.CacheTTL = time.Minute })
	for _, tok := range []string{"", "Bearer abc", strings.Repeat("a", maxTokenSize+1)} {
		assert.ErrorIs(t, v.Forget(context.Background(), tok), ErrMalformedToken)
	}
	assert.NoError(t, v.Forget(context.Background(), strings.Repeat("a", maxTokenSize)))
}

// gate is a transport that holds every response of the authorization
// server, once it has it, until the test releases it: a request that the
// server has answered but whose answer the verifier has not seen yet.
type gate struct {
	inner   *http.Transport
	held    chan struct{} // gets a value when a response is held
	release chan struct{}
	holdN   int // how many responses to hold; later ones pass
	mu      sync.Mutex
}

func newGate(t *testing.T, n int) *gate {
	g := &gate{inner: &http.Transport{}, held: make(chan struct{}, n), release: make(chan struct{}), holdN: n}
	t.Cleanup(g.inner.CloseIdleConnections)
	return g
}

func (g *gate) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := g.inner.RoundTrip(r)
	g.mu.Lock()
	hold := g.holdN > 0
	g.holdN--
	g.mu.Unlock()
	if hold {
		g.held <- struct{}{}
		<-g.release
	}
	return resp, err
}

// waitHeld waits until the gate holds a response.
func (g *gate) waitHeld(t *testing.T) {
	t.Helper()
	select {
	case <-g.held:
	case <-time.After(30 * time.Second): // a guard against hanging, not a timing assertion
		t.Fatal("no response was held")
	}
}

// TestForgetDuringAFlight checks that a shared request under way when
// Forget returns never stores its answer, which the server gave before
// the token was revoked, in either tier, and that callers who come after
// Forget do not join it: they ask the server themselves. The callers who
// joined it before get its answer. Close still waits for it.
func TestForgetDuringAFlight(t *testing.T) {
	kinds := []struct {
		name string
		edit func(*Settings)
	}{
		{"built-in cache", func(*Settings) {}},
		{"shared cache with a local tier", func(s *Settings) { s.Cache = newMapCache(nil) }},
		{"shared cache alone", func(s *Settings) { s.Cache, s.LocalCacheTTL = newMapCache(nil), -1 }},
	}
	for _, kind := range kinds {
		t.Run(kind.name, func(t *testing.T) {
			ignore := goleak.IgnoreCurrent()
			t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs last
			as := newAS(t, nil)
			g := newGate(t, 1)
			v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
				s.CacheTTL = time.Minute
				s.HTTPClient = &http.Client{Transport: g}
				kind.edit(s)
			})
			tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})
			first := verifyAsync(v, tok)
			g.waitHeld(t) // the server said active; the verifier has not seen it
			f := v.flightOf(tok)
			require.NotNil(t, f)
			as.Revoke(tok)
			require.NoError(t, v.Forget(context.Background(), tok))

			assert.ErrorIs(t, result(t, verifyAsync(v, tok)), ErrTokenInactive, "a caller after Forget asks the server")
			close(g.release)
			assert.NoError(t, result(t, first), "the caller from before Forget gets the answer it waited for")
			waitEnded(t, f)
			_, err := v.Verify(context.Background(), tok)
			assert.ErrorIs(t, err, ErrTokenInactive, "the forgotten answer was not stored")
			assert.Equal(t, int64(3), as.RequestsFor(tok))
			require.NoError(t, v.Close())
		})
	}
}

// TestForgetWaitsForAStoreUnderWay checks that Forget, called while the
// shared Cache's Set of the token's answer runs, waits for it to return
// before deleting, so that the Set never lands after the Delete.
func TestForgetWaitsForAStoreUnderWay(t *testing.T) {
	as := newAS(t, nil)
	mc := newMapCache(nil)
	v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) { s.CacheTTL, s.Cache = time.Minute, mc })
	entered, release := holdSets(t, v, mc)
	tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})
	_, err := v.Verify(context.Background(), tok)
	require.NoError(t, err)
	<-entered // the Set runs

	forgot := make(chan error, 1)
	go func() { forgot <- v.Forget(context.Background(), tok) }()
	key := v.CacheKey(tok)
	require.Eventually(t, func() bool { return v.forgets.remembers(key) }, 10*time.Second, time.Millisecond)
	release()
	require.NoError(t, <-forgot)
	waitUntilIdle(t, v) // the store has returned
	assert.Zero(t, mc.len(), "the Delete came after the Set")
	as.Revoke(tok)
	_, err = v.Verify(context.Background(), tok)
	assert.ErrorIs(t, err, ErrTokenInactive)
}

// TestForgetReportsFailures checks that Forget returns the failure of the
// shared Cache's Delete or Invalidate, without the token, and still drops
// the local copy.
func TestForgetReportsFailures(t *testing.T) {
	for _, failing := range []string{"Delete", "Invalidate"} {
		t.Run(failing, func(t *testing.T) {
			as := newAS(t, nil)
			b := newBus()
			vs, cc := replicas(t, 1, as, nil, b, nil)
			v := vs[0]
			tok := as.Issue(introspectiontest.TokenOptions{})
			fill(t, v, tok)
			if failing == "Delete" {
				cc.Cache.(*mapCache).beforeDelete = func(context.Context) error { return errStoreDown }
			} else {
				b.mu.Lock()
				b.fail = errStoreDown
				b.mu.Unlock()
			}
			err := v.Forget(context.Background(), tok)
			require.ErrorIs(t, err, errStoreDown)
			assert.True(t, strings.HasPrefix(err.Error(), "introspection: "), err.Error())
			assert.Contains(t, err.Error(), failing)
			assert.NotContains(t, err.Error(), tok)
			assert.Zero(t, v.Stats().LocalCacheEntries, "the local copy is gone")
		})
	}
}

// TestForgetReachesEveryReplica checks that a token one replica forgets is
// refused by all three, each asking the server again (none reads the
// Cache within forgetTombstone of the forget), and that the invalidation
// carries the cache key, never the token.
func TestForgetReachesEveryReplica(t *testing.T) {
	as := newAS(t, nil)
	b := newBus()
	vs, _ := replicas(t, 3, as, nil, b, func(s *Settings) { s.NegativeCacheTTL = time.Minute })
	tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})
	for _, v := range vs {
		fill(t, v, tok)
		fill(t, v, tok) // a local hit
		require.Equal(t, uint64(1), v.Stats().LocalCacheHits)
	}
	require.Equal(t, int64(1), as.RequestsFor(tok))
	as.Revoke(tok)
	require.NoError(t, vs[1].Forget(context.Background(), tok))
	for i, v := range vs {
		assert.Equal(t, uint64(1), v.Stats().Invalidations, "replica %d", i)
		_, err := v.Verify(context.Background(), tok)
		assert.ErrorIs(t, err, ErrTokenInactive, "replica %d", i)
		waitUntilIdle(t, v)
	}
	assert.Equal(t, int64(4), as.RequestsFor(tok), "each replica asked, ignoring the Cache for forgetTombstone")
}

// TestInvalidationDuringAnotherReplicasFlight checks that a replica whose
// request for a token is under way when another replica forgets the token
// stores nothing, as its answer may predate the revocation, and that
// callers who come after the invalidation do not join it.
func TestInvalidationDuringAnotherReplicasFlight(t *testing.T) {
	as := newAS(t, nil)
	b := newBus()
	g := newGate(t, 1)
	vs, cc := replicas(t, 2, as, nil, b, nil)
	slow := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
		s.CacheTTL = time.Minute
		s.Cache = invalidatingCache{Cache: cc, b: b}
		s.HTTPClient = &http.Client{Transport: g}
	})
	tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})
	pending := verifyAsync(slow, tok)
	g.waitHeld(t)
	as.Revoke(tok)
	require.NoError(t, vs[0].Forget(context.Background(), tok))
	assert.ErrorIs(t, result(t, verifyAsync(slow, tok)), ErrTokenInactive, "a caller after the invalidation asks the server")
	close(g.release)
	assert.NoError(t, result(t, pending))
	waitUntilIdle(t, slow)
	assert.Zero(t, cc.sets.Load(), "nothing stored in the shared tier")
	assert.Zero(t, slow.Stats().LocalCacheEntries, "nor in the local one")
	for _, v := range append(vs, slow) {
		_, err := v.Verify(context.Background(), tok)
		assert.ErrorIs(t, err, ErrTokenInactive)
		waitUntilIdle(t, v)
	}
}

// TestLocalTierWhileUnsubscribed checks the local tier of a Cache that is
// an Invalidator while its subscription is down: entries live at most
// UnsubscribedLocalCacheTTL, and the local tier is emptied when the
// subscription goes down and when it comes up again, as invalidations may
// have been lost in between.
func TestLocalTierWhileUnsubscribed(t *testing.T) {
	clock := newFakeClock()
	as := newAS(t, clock)
	b := newBus()
	b.up = false // down from the start
	vs, cc := replicas(t, 1, as, clock, b, func(s *Settings) { s.LocalCacheTTL = time.Minute })
	v := vs[0]
	tok := as.Issue(introspectiontest.TokenOptions{Lifetime: time.Hour})
	assert.False(t, v.Stats().InvalidationsSubscribed)

	fill(t, v, tok)
	clock.Advance(UnsubscribedLocalCacheTTL - time.Millisecond)
	fill(t, v, tok)
	assert.Equal(t, int64(1), cc.gets.Load(), "a local hit within UnsubscribedLocalCacheTTL")
	clock.Advance(time.Millisecond)
	fill(t, v, tok)
	assert.Equal(t, int64(2), cc.gets.Load(), "not past it")

	b.setUp(true)
	assert.True(t, v.Stats().InvalidationsSubscribed)
	assert.Zero(t, v.Stats().LocalCacheEntries, "emptied when the subscription came up")
	fill(t, v, tok)
	clock.Advance(UnsubscribedLocalCacheTTL)
	fill(t, v, tok)
	assert.Equal(t, int64(3), cc.gets.Load(), "LocalCacheTTL while subscribed")

	b.setUp(false)
	assert.False(t, v.Stats().InvalidationsSubscribed)
	assert.Zero(t, v.Stats().LocalCacheEntries, "emptied when the subscription went down")

	b.setUp(true)
	fill(t, v, tok)
	require.Equal(t, int64(4), cc.gets.Load())
	require.NoError(t, v.Close())
	assert.False(t, v.Stats().InvalidationsSubscribed, "Close ends the subscription")
	assert.Zero(t, v.Stats().LocalCacheEntries, "and empties the local tier")
	fill(t, v, tok)
	clock.Advance(UnsubscribedLocalCacheTTL - time.Millisecond)
	fill(t, v, tok)
	assert.Equal(t, int64(5), cc.gets.Load())
	clock.Advance(time.Millisecond)
	fill(t, v, tok)
	assert.Equal(t, int64(6), cc.gets.Load(), "after Close, UnsubscribedLocalCacheTTL again")
}

// TestMalformedInvalidationsAreRefused checks that a message that is not a
// cache key of the verifier's namespace drops nothing and is counted, also
// a huge one, and that the subscription keeps working.
func TestMalformedInvalidationsAreRefused(t *testing.T) {
	as := newAS(t, nil)
	b := newBus()
	vs, _ := replicas(t, 1, as, nil, b, nil)
	v := vs[0]
	tok := as.Issue(introspectiontest.TokenOptions{})
	fill(t, v, tok)
	key := v.CacheKey(tok)
	ns, digest, _ := strings.Cut(key, ":")
	other := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) { s.ClientID = "other" })
	messages := []string{
		"",
		tok,
		ns,
		ns + ":",
		digest,
		other.CacheKey(tok),
		ns + ":" + strings.ToUpper(digest),
		ns + ":" + digest[:63],
		ns + ":" + digest + "0",
		ns + ":" + digest[:63] + "g",
		ns + ":" + digest + "\n",
		" " + key,
		key + strings.Repeat("x", 1<<20),
	}
	for _, m := range messages {
		b.send(m)
	}
	st := v.Stats()
	assert.Equal(t, uint64(len(messages)), st.InvalidationsRefused)
	assert.Zero(t, st.Invalidations)
	assert.Equal(t, 1, st.LocalCacheEntries, "nothing was dropped")
	b.send(key)
	assert.Zero(t, v.Stats().LocalCacheEntries, "a well-formed key still drops its entry")
	assert.Equal(t, uint64(1), v.Stats().Invalidations)
}

// TestInvalidationFloodKeepsVerdictsRight sends 100,000 invalidations of
// keys no entry has, then the key of a revoked token, while callers verify
// a hot token: the hot token stays in the local tier, the revoked one is
// refused afterwards, and every verdict is right.
func TestInvalidationFloodKeepsVerdictsRight(t *testing.T) {
	as := newAS(t, nil)
	b := newBus()
	vs, cc := replicas(t, 1, as, nil, b, nil)
	v := vs[0]
	hot := as.Issue(introspectiontest.TokenOptions{Subject: "hot"})
	revoked := as.Issue(introspectiontest.TokenOptions{Subject: "revoked"})
	fill(t, v, hot)
	fill(t, v, revoked)
	ns, _, _ := strings.Cut(v.CacheKey(hot), ":")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var wrong int
	var mu sync.Mutex
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			got, err := v.Verify(context.Background(), hot)
			if err != nil || got.Subject != "hot" {
				mu.Lock()
				wrong++
				mu.Unlock()
			}
		}
	})
	for i := range 100_000 {
		b.send(fmt.Sprintf("%s:%064x", ns, i))
	}
	as.Revoke(revoked)
	require.NoError(t, v.Forget(context.Background(), revoked))
	close(stop)
	wg.Wait()
	assert.Zero(t, wrong)
	st := v.Stats()
	assert.Equal(t, uint64(100_001), st.Invalidations, "each key, and the echo of the Forget")
	assert.Equal(t, int64(1), as.RequestsFor(hot), "the hot token never left the local tier")
	assert.Equal(t, int64(2), cc.gets.Load(), "nor was read from the Cache again")
	_, err := v.Verify(context.Background(), revoked)
	assert.ErrorIs(t, err, ErrTokenInactive)
}

// TestForgottenKeysAreBounded checks the bound on the keys remembered as
// forgotten while shared requests run: with maxForgotten other keys
// forgotten during a request, it still stores its answer; with one more,
// every request then running stores nothing.
func TestForgottenKeysAreBounded(t *testing.T) {
	for _, tc := range []struct {
		others int
		stores bool
	}{{maxForgotten, true}, {maxForgotten + 1, false}} {
		t.Run(fmt.Sprint(tc.others), func(t *testing.T) {
			var fg forgetting
			since := fg.now()
			for i := range tc.others {
				fg.forget(fmt.Sprint("other", i))
			}
			stored := false
			fg.store("key", since, func(bool) { stored = true }, func() {}, func() {})
			assert.Equal(t, tc.stores, stored)
			assert.LessOrEqual(t, fg.remembered(), maxForgotten)
		})
	}
}

// remembers reports whether key is remembered as forgotten.
func (fg *forgetting) remembers(key string) bool {
	fg.mu.Lock()
	defer fg.mu.Unlock()
	_, ok := fg.keys[key]
	return ok
}

// remembered returns the number of keys remembered as forgotten.
func (fg *forgetting) remembered() int {
	fg.mu.Lock()
	defer fg.mu.Unlock()
	return len(fg.keys)
}

// TestRequestUnderWayWhenSubscribedKeepsTheShortBound checks that a shared
// request that began while invalidations did not reach the verifier keeps
// its answer locally for UnsubscribedLocalCacheTTL at most, even if the
// subscription came up meanwhile: an invalidation may have been lost
// before.
func TestRequestUnderWayWhenSubscribedKeepsTheShortBound(t *testing.T) {
	clock := newFakeClock()
	as := newAS(t, clock)
	b := newBus()
	b.up = false
	g := newGate(t, 1)
	vs, cc := replicas(t, 1, as, clock, b, func(s *Settings) {
		s.LocalCacheTTL = time.Minute
		s.HTTPClient = &http.Client{Transport: g}
	})
	v := vs[0]
	tok := as.Issue(introspectiontest.TokenOptions{Lifetime: time.Hour})
	pending := verifyAsync(v, tok)
	g.waitHeld(t)
	b.setUp(true)
	close(g.release)
	require.NoError(t, result(t, pending))
	waitUntilIdle(t, v)
	require.Equal(t, 1, v.Stats().LocalCacheEntries)
	clock.Advance(UnsubscribedLocalCacheTTL)
	fill(t, v, tok)
	assert.Equal(t, int64(2), cc.gets.Load(), "the entry lived UnsubscribedLocalCacheTTL")
	clock.Advance(UnsubscribedLocalCacheTTL)
	fill(t, v, tok)
	assert.Equal(t, int64(2), cc.gets.Load(), "a request that began while subscribed keeps it longer")
}

// panicky panics in every call of the Cache it wraps that fails names,
// and hangs, ignoring its context, in every call that hangs names, until
// release is closed.
type panicky struct {
	invalidatingCache
	fails, hangs string
	release      chan struct{}
	healed       *atomic.Bool // once set, no call misbehaves
}

func (p panicky) misbehave(call string) {
	if p.healed.Load() {
		return
	}
	if strings.Contains(p.fails, call) {
		panic("cache " + call + " failed")
	}
	if strings.Contains(p.hangs, call) {
		<-p.release
	}
}

func (p panicky) Get(ctx context.Context, key string) ([]byte, bool, error) {
	p.misbehave("Get")
	return p.invalidatingCache.Get(ctx, key)
}

func (p panicky) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	p.misbehave("Set")
	return p.invalidatingCache.Set(ctx, key, value, ttl)
}

func (p panicky) Delete(ctx context.Context, key string) error {
	p.misbehave("Delete")
	return p.invalidatingCache.Delete(ctx, key)
}

func (p panicky) Invalidate(ctx context.Context, key string) error {
	p.misbehave("Invalidate")
	return p.invalidatingCache.Invalidate(ctx, key)
}

// TestTwoTiersWithAFailingCache runs the two tiers over a Cache whose calls
// panic or hang: every verdict is the server's or a tier's, never wrong; a
// hung call costs at most the call timeout; Forget returns the failure of
// Delete or Invalidate, without the token, and still drops the local copy,
// and succeeds once the Cache works again, after which the server refuses
// the token; no goroutine is left once the Cache returns.
func TestTwoTiersWithAFailingCache(t *testing.T) {
	tests := []struct {
		name         string
		fails, hangs string
		forgetErr    bool
	}{
		{"Get panics", "Get", "", false},
		{"Set panics", "Set", "", false},
		{"Delete panics", "Delete", "", true},
		{"Invalidate panics", "Invalidate", "", true},
		{"Get hangs", "", "Get", false},
		{"Set hangs", "", "Set", false},
		{"Delete hangs", "", "Delete", true},
		{"Invalidate hangs", "", "Invalidate", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ignore := goleak.IgnoreCurrent()
			t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs last
			as := newAS(t, nil)
			release := make(chan struct{})
			var released sync.Once
			t.Cleanup(func() { released.Do(func() { close(release) }) }) // before Close
			c := panicky{invalidatingCache: invalidatingCache{Cache: newMapCache(nil), b: newBus()},
				fails: tc.fails, hangs: tc.hangs, release: release, healed: new(atomic.Bool)}
			v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
				s.CacheTTL = time.Minute
				s.Cache = c
			})
			v.cache.(*sharedStore).timeout = 50 * time.Millisecond
			tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})
			for range 2 {
				got, err := v.Verify(context.Background(), tok)
				require.NoError(t, err)
				assert.Equal(t, "alice", got.Subject)
				waitUntilIdle(t, v)
			}
			as.Revoke(tok)
			err := v.Forget(context.Background(), tok)
			if tc.forgetErr {
				require.Error(t, err)
				assert.True(t, strings.HasPrefix(err.Error(), "introspection: forget: "), err.Error())
				assert.NotContains(t, err.Error(), tok)
				assert.Zero(t, v.Stats().LocalCacheEntries, "the local copy is gone")
				c.healed.Store(true)
				released.Do(func() { close(release) })
				require.NoError(t, v.Forget(context.Background(), tok), "once the Cache works again")
			} else {
				require.NoError(t, err)
			}
			_, err = v.Verify(context.Background(), tok)
			assert.ErrorIs(t, err, ErrTokenInactive, "the server refuses")
			released.Do(func() { close(release) })
			waitUntilIdle(t, v)
		})
	}
}

// setHook is a Cache whose Sets wait for hook first.
type setHook struct {
	invalidatingCache
	hook func()
}

func (c setHook) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	c.hook()
	return c.invalidatingCache.Set(ctx, key, value, ttl)
}

// TestInvalidationDuringAnotherReplicasStore checks a replica whose Set of
// a token's answer is under way when another replica forgets the token:
// callers who come after the invalidation do not join its request but ask
// the server, and once its Set lands, after the other replica's Delete, it
// deletes what it stored, so that no replica reads the forgotten answer.
func TestInvalidationDuringAnotherReplicasStore(t *testing.T) {
	as := newAS(t, nil)
	b := newBus()
	vs, cc := replicas(t, 2, as, nil, b, nil)
	entered, release := make(chan struct{}), make(chan struct{})
	var once, released sync.Once
	t.Cleanup(func() { released.Do(func() { close(release) }) })
	slow := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
		s.CacheTTL = time.Minute
		s.Cache = setHook{invalidatingCache{Cache: cc, b: b}, func() {
			once.Do(func() { close(entered) })
			<-release
		}}
	})
	slow.cache.(*sharedStore).timeout = time.Hour // only the release below ends the Set
	tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})
	_, err := slow.Verify(context.Background(), tok)
	require.NoError(t, err)
	<-entered // its Set is under way

	as.Revoke(tok)
	require.NoError(t, vs[0].Forget(context.Background(), tok))
	_, err = slow.Verify(context.Background(), tok)
	assert.ErrorIs(t, err, ErrTokenInactive, "a caller after the invalidation asks the server")
	released.Do(func() { close(release) })
	waitUntilIdle(t, slow)
	_, ok, err := cc.Cache.Get(context.Background(), slow.CacheKey(tok))
	require.NoError(t, err)
	assert.False(t, ok, "the late Set was deleted")
	_, err = vs[1].Verify(context.Background(), tok)
	assert.ErrorIs(t, err, ErrTokenInactive)
}

// TestForgetDeletesDuringACooldown checks that Forget deletes from the
// shared Cache also while the verifier leaves it alone after an error.
func TestForgetDeletesDuringACooldown(t *testing.T) {
	as := newAS(t, nil)
	v, mc := sharedCacheVerifier(t, as, nil)
	tok := as.Issue(introspectiontest.TokenOptions{})
	fill(t, v, tok)
	require.Equal(t, 1, mc.len())
	v.cache.(*sharedStore).downUntil.Store(time.Now().Add(time.Hour).UnixNano())
	require.NoError(t, v.Forget(context.Background(), tok))
	assert.Zero(t, mc.len())
}

// panickingSubscription is an Invalidator whose SubscribeInvalidations,
// or the stop it returns, panics.
type panickingSubscription struct {
	invalidatingCache
	inStop bool
}

func (p panickingSubscription) SubscribeInvalidations(string, InvalidationSubscriber) func() {
	if p.inStop {
		return func() { panic("stop failed") }
	}
	panic("subscribe failed")
}

// TestInvalidatorThatPanics checks that a panic in SubscribeInvalidations
// or in the stop it returns is recovered and counted: NewVerifier and
// Close succeed, and the local tier keeps the short bound.
func TestInvalidatorThatPanics(t *testing.T) {
	for _, inStop := range []bool{false, true} {
		t.Run(fmt.Sprint("in stop: ", inStop), func(t *testing.T) {
			as := newAS(t, nil)
			c := panickingSubscription{invalidatingCache{Cache: newMapCache(nil), b: newBus()}, inStop}
			v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) { s.CacheTTL, s.Cache = time.Minute, c })
			fill(t, v, as.Issue(introspectiontest.TokenOptions{}))
			require.NoError(t, v.Close())
			st := v.Stats()
			assert.Equal(t, uint64(1), st.Panics)
			assert.False(t, st.InvalidationsSubscribed)
		})
	}
}

// TestObserverSeesForget shows the calls of Forget to a Cache that is an
// Invalidator: a Delete, then an Invalidate, each between CacheCallStart
// and CacheCallEnd.
func TestObserverSeesForget(t *testing.T) {
	as := newAS(t, nil)
	obs := &recordingObserver{}
	vs, _ := replicas(t, 1, as, nil, newBus(), func(s *Settings) { s.Observer = obs })
	tok := as.Issue(introspectiontest.TokenOptions{})
	fill(t, vs[0], tok)
	obs.seen()
	require.NoError(t, vs[0].Forget(context.Background(), tok))
	assert.Equal(t, []string{"CacheCallStart delete", "CacheCallEnd delete ok",
		"CacheCallStart invalidate", "CacheCallEnd invalidate ok"}, obs.seen())
}

// TestForgetTriesDeleteAndInvalidateWhateverFails checks that Forget calls
// the Cache's Invalidate when its Delete fails, and the reverse, and that
// it returns every failure, without the token.
func TestForgetTriesDeleteAndInvalidateWhateverFails(t *testing.T) {
	errDelete := errors.New("delete refused")
	errInvalidate := errors.New("invalidate refused")
	for _, tc := range []struct {
		name                     string
		deleteErr, invalidateErr error
	}{
		{name: "Delete fails", deleteErr: errDelete},
		{name: "Invalidate fails", invalidateErr: errInvalidate},
		{name: "both fail", deleteErr: errDelete, invalidateErr: errInvalidate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := newAS(t, nil)
			b := newBus()
			vs, cc := replicas(t, 2, as, nil, b, nil)
			tok := as.Issue(introspectiontest.TokenOptions{})
			fill(t, vs[0], tok)
			fill(t, vs[1], tok)
			var deletes atomic.Int64
			cc.Cache.(*mapCache).beforeDelete = func(context.Context) error {
				deletes.Add(1)
				return tc.deleteErr
			}
			if tc.invalidateErr != nil {
				b.mu.Lock()
				b.fail = tc.invalidateErr
				b.mu.Unlock()
			}
			err := vs[0].Forget(context.Background(), tok)
			require.Error(t, err)
			assert.Equal(t, int64(1), deletes.Load(), "Delete was called")
			if tc.deleteErr != nil {
				assert.ErrorIs(t, err, tc.deleteErr)
				assert.Contains(t, err.Error(), "Delete")
			}
			if tc.invalidateErr != nil {
				assert.ErrorIs(t, err, tc.invalidateErr)
				assert.Contains(t, err.Error(), "Invalidate")
			} else {
				assert.Equal(t, uint64(1), vs[1].Stats().Invalidations, "Invalidate was called and reached the other replica")
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				assert.True(t, strings.HasPrefix(line, "introspection: "), line)
			}
			assert.NotContains(t, err.Error(), tok)
		})
	}
}

// lateSubscription is an Invalidator whose SubscribeInvalidations says the
// subscription is up, then does not return until release is closed; the
// stop it returns closes stopped.
type lateSubscription struct {
	invalidatingCache
	release, stopped chan struct{}
}

func (l lateSubscription) SubscribeInvalidations(_ string, sub InvalidationSubscriber) func() {
	sub.Subscribed(true)
	<-l.release
	return func() { close(l.stopped) }
}

// TestHungSubscriptionCountsAsUnsubscribed checks that a
// SubscribeInvalidations that does not return within the bound on a call
// of the Cache counts as unsubscribed, even though it said it was up: it
// is logged at warn, the local tier keeps answers for
// UnsubscribedLocalCacheTTL at most, and once the call returns its stop
// is called.
func TestHungSubscriptionCountsAsUnsubscribed(t *testing.T) {
	clock := newFakeClock()
	as := newAS(t, clock)
	logs := &recordingHandler{}
	cc := &countingCache{Cache: newMapCache(clock.Now)}
	c := lateSubscription{invalidatingCache{Cache: cc, b: newBus()}, make(chan struct{}), make(chan struct{})}
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(c.release) }) })
	v := newVerifier(t, as.IntrospectionURL, clock, func(s *Settings) {
		s.CacheTTL, s.LocalCacheTTL, s.Cache, s.Logger = time.Minute, time.Minute, c, slog.New(logs)
	})
	assert.False(t, v.Stats().InvalidationsSubscribed, "a subscription whose call did not return is down")
	warns := logs.matching("SubscribeInvalidations did not return")
	require.Len(t, warns, 1)
	assert.Equal(t, slog.LevelWarn, warns[0].Level)

	tok := as.Issue(introspectiontest.TokenOptions{Lifetime: time.Hour})
	fill(t, v, tok)
	clock.Advance(UnsubscribedLocalCacheTTL - time.Millisecond)
	fill(t, v, tok)
	assert.Equal(t, int64(1), cc.gets.Load(), "a local hit within UnsubscribedLocalCacheTTL")
	clock.Advance(time.Millisecond)
	fill(t, v, tok)
	assert.Equal(t, int64(2), cc.gets.Load(), "not past it")

	once.Do(func() { close(c.release) })
	select {
	case <-c.stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the stop of a subscription that returned late was not called")
	}
	assert.False(t, v.Stats().InvalidationsSubscribed)
}

// TestForgetTombstoneLastsForgetTombstone checks the bounds of the
// tombstone a forget leaves: a value read from the Cache under the key is
// ignored until forgetTombstone after the forget, not at it; past
// maxForgotten forgets, under every key, as their records are dropped.
func TestForgetTombstoneLastsForgetTombstone(t *testing.T) {
	var fg forgetting
	before := time.Now()
	fg.forget("k")
	after := time.Now()
	assert.True(t, fg.tombstoned("k", after), "at the forget")
	assert.True(t, fg.tombstoned("k", before.Add(forgetTombstone-time.Nanosecond)), "just before the bound")
	assert.False(t, fg.tombstoned("k", after.Add(forgetTombstone)), "at the bound")
	assert.False(t, fg.tombstoned("other", after), "another key")

	for i := range maxForgotten - 1 {
		fg.forget(fmt.Sprint("key ", i))
	}
	require.Len(t, fg.keys, maxForgotten)
	assert.False(t, fg.tombstoned("other", time.Now()), "at maxForgotten keys, each is remembered")
	fg.forget("one more")
	last := time.Now()
	assert.True(t, fg.tombstoned("other", last), "past maxForgotten, every key")
	assert.True(t, fg.tombstoned("k", last))
	assert.False(t, fg.tombstoned("other", last.Add(forgetTombstone)), "until forgetTombstone after the last clear")
}

// heldSubscription is an Invalidator that hands the subscriber it gets to
// the test, on subs, and whose SubscribeInvalidations, when hung is set,
// does not return until release is closed. Its stop does nothing, as the
// stop of an Invalidator that goes on delivering.
type heldSubscription struct {
	invalidatingCache
	hung    bool
	subs    chan InvalidationSubscriber
	release chan struct{}
}

func (h heldSubscription) SubscribeInvalidations(_ string, sub InvalidationSubscriber) func() {
	h.subs <- sub
	if h.hung {
		<-h.release
	}
	return func() {}
}

// TestSubscriptionGivenUpStaysDown checks that once the verifier has given
// up on its subscription, as SubscribeInvalidations did not return in
// time, or closed it, the Invalidator saying that it is up changes
// nothing: invalidations are taken not to reach the local tier, which
// keeps answers for UnsubscribedLocalCacheTTL at most.
func TestSubscriptionGivenUpStaysDown(t *testing.T) {
	for _, hung := range []bool{true, false} {
		name := "closed"
		if hung {
			name = "SubscribeInvalidations hung"
		}
		t.Run(name, func(t *testing.T) {
			clock := newFakeClock()
			as := newAS(t, clock)
			cc := &countingCache{Cache: newMapCache(clock.Now)}
			c := heldSubscription{invalidatingCache{Cache: cc, b: newBus()}, hung,
				make(chan InvalidationSubscriber, 1), make(chan struct{})}
			var released sync.Once
			t.Cleanup(func() { released.Do(func() { close(c.release) }) })
			v := newVerifier(t, as.IntrospectionURL, clock, func(s *Settings) {
				s.CacheTTL, s.LocalCacheTTL, s.Cache = time.Minute, time.Minute, c
			})
			sub := <-c.subs
			if !hung {
				require.NoError(t, v.Close())
			}
			sub.Subscribed(true)
			assert.False(t, v.Stats().InvalidationsSubscribed, "given up on: down whatever the Invalidator says")

			tok := as.Issue(introspectiontest.TokenOptions{Lifetime: time.Hour})
			fill(t, v, tok)
			clock.Advance(UnsubscribedLocalCacheTTL)
			fill(t, v, tok)
			assert.Equal(t, int64(2), cc.gets.Load(), "the local tier kept the answer UnsubscribedLocalCacheTTL at most")
		})
	}
}

// afterGet is a Cache that calls hook once each Get of the Cache it wraps
// has returned.
type afterGet struct {
	Cache
	hook func()
}

func (c afterGet) Get(ctx context.Context, key string) ([]byte, bool, error) {
	b, ok, err := c.Cache.Get(ctx, key)
	c.hook()
	return b, ok, err
}

// TestInvalidationAfterTheSharedReadKeepsNothingLocal checks a shared
// request that read a token's answer from the Cache, another replica's,
// and hears that the token was forgotten just before it fills the local
// tier: its caller, who came before, gets the answer, but the local tier
// keeps nothing, so that the next call does not accept the forgotten
// token from it.
func TestInvalidationAfterTheSharedReadKeepsNothingLocal(t *testing.T) {
	as := newAS(t, nil)
	mc := newMapCache(nil)
	peer := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) { s.CacheTTL, s.Cache = time.Minute, mc })
	tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})
	fill(t, peer, tok)

	b := newBus()
	var armed atomic.Bool
	key := peer.CacheKey(tok)
	v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
		s.CacheTTL = time.Minute
		s.Cache = invalidatingCache{Cache: afterGet{mc, func() { armed.Store(true) }}, b: b}
		// The first reading of the clock after the Get, once the value
		// has passed every check: the forget is heard then.
		s.Now = func() time.Time {
			if armed.CompareAndSwap(true, false) {
				b.send(key)
			}
			return time.Now()
		}
	})
	got, err := v.Verify(context.Background(), tok)
	require.NoError(t, err)
	assert.Equal(t, "alice", got.Subject, "the caller from before the forget gets the answer read")
	waitUntilIdle(t, v)
	require.Equal(t, uint64(1), v.Stats().Invalidations)
	assert.Zero(t, v.Stats().LocalCacheEntries, "the forgotten answer was not kept locally")
	assert.Equal(t, int64(1), as.RequestsFor(tok))
}
