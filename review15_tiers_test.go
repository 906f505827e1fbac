package introspection

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReview15NeverPastTheEndOfAPeersEntryWithoutTheLine breaks "a local
// entry lives ... never past the end of the Cache's entry, whichever replica
// stored it": a replica with LocalCacheTTL negative and no StaleIfError (or
// an earlier version) writes the value without a fresh_until line, and a
// replica with the local tier keeps it for LocalCacheTTL after reading it,
// past the end of the shared entry, without asking the server again.
func TestReview15NeverPastTheEndOfAPeersEntryWithoutTheLine(t *testing.T) {
	clock := newFakeClock()
	as := newAS(t, clock)
	tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Lifetime: time.Hour})
	reader, cc := tieredVerifier(t, as, clock, func(s *Settings) {
		s.CacheTTL = 2 * time.Second
		s.LocalCacheTTL = 5 * time.Second
	})
	writer := newVerifier(t, as.IntrospectionURL, clock, func(s *Settings) {
		s.CacheTTL = 2 * time.Second
		s.Cache = cc
		s.LocalCacheTTL = -1
	})
	fill(t, writer, tok)
	clock.Advance(1500 * time.Millisecond)
	fill(t, reader, tok) // read from the Cache, whose entry ends in 0.5 s
	require.Equal(t, int64(1), as.RequestsFor(tok))

	clock.Advance(time.Second) // the shared entry ended half a second ago
	_, ok, err := cc.Cache.Get(context.Background(), reader.CacheKey(tok))
	require.NoError(t, err)
	require.False(t, ok, "the shared entry ended")
	fill(t, reader, tok)
	assert.Equal(t, int64(2), as.RequestsFor(tok), "the reader asks the server once the shared entry ended")
}

// landedSet is a Cache whose Set, once entered, waits for write, writes
// the value, then waits for ret before it returns, as a Redis SET whose
// reply is still on the way.
type landedSet struct {
	invalidatingCache
	entered, landed chan struct{}
	write, ret      chan struct{}
	once            *sync.Once
}

func (c landedSet) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	first := false
	c.once.Do(func() { first = true })
	if !first {
		return c.invalidatingCache.Set(ctx, key, value, ttl)
	}
	close(c.entered)
	<-c.write
	err := c.invalidatingCache.Set(ctx, key, value, ttl)
	close(c.landed)
	<-c.ret
	return err
}

// TestReview15ForgetThenVerifyAsksTheServerWhileAPeersSetLands breaks
// "Forget ... so that the next Verify asks the authorization server" and
// "no replica reads the forgotten answer": another replica's Set, under way
// when the token is forgotten, lands after the Delete; until its undo runs
// (after the Set returns), the forgetting replica's next Verify reads the
// forgotten answer from the Cache, accepts the revoked token, and keeps it
// in its local tier.
func TestReview15ForgetThenVerifyAsksTheServerWhileAPeersSetLands(t *testing.T) {
	as := newAS(t, nil)
	b := newBus()
	vs, cc := replicas(t, 1, as, nil, b, nil)
	c := landedSet{invalidatingCache: invalidatingCache{Cache: cc, b: b},
		entered: make(chan struct{}), landed: make(chan struct{}),
		write: make(chan struct{}), ret: make(chan struct{}), once: new(sync.Once)}
	var wo, ro sync.Once
	t.Cleanup(func() { wo.Do(func() { close(c.write) }); ro.Do(func() { close(c.ret) }) })
	slow := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
		s.CacheTTL = time.Minute
		s.Cache = c
	})
	slow.cache.(*sharedStore).timeout = time.Hour
	tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})
	_, err := slow.Verify(context.Background(), tok)
	require.NoError(t, err)
	<-c.entered

	as.Revoke(tok)
	require.NoError(t, vs[0].Forget(context.Background(), tok))
	wo.Do(func() { close(c.write) })
	<-c.landed // the peer's SET is applied, its reply not yet read

	_, err = vs[0].Verify(context.Background(), tok)
	assert.ErrorIs(t, err, ErrTokenInactive, "the Verify after Forget asks the server")
	ro.Do(func() { close(c.ret) })
	waitUntilIdle(t, slow)
	_, err = vs[0].Verify(context.Background(), tok)
	assert.ErrorIs(t, err, ErrTokenInactive, "no local copy of the forgotten answer survives")
}

// hungSubscription is an Invalidator whose SubscribeInvalidations, or the
// stop it returns, never returns until the test ends.
type hungSubscription struct {
	invalidatingCache
	inStop  bool
	release chan struct{}
}

func (h hungSubscription) SubscribeInvalidations(string, InvalidationSubscriber) func() {
	if h.inStop {
		return func() { <-h.release }
	}
	<-h.release
	return func() {}
}

// TestReview15HungInvalidatorNeverBlocksPastItsBounds breaks "every call
// [of the Cache] gets a context that ends after one second, and the
// verifier stops waiting then even if the Cache ignores its context" and
// "A Cache whose calls ... hang leaves every verdict right": a
// SubscribeInvalidations that hangs keeps NewVerifier from returning, and
// a stop that hangs keeps Close from returning.
func TestReview15HungInvalidatorNeverBlocksPastItsBounds(t *testing.T) {
	for _, inStop := range []bool{false, true} {
		name := "SubscribeInvalidations"
		if inStop {
			name = "stop"
		}
		t.Run(name, func(t *testing.T) {
			as := newAS(t, nil)
			release := make(chan struct{})
			t.Cleanup(func() { close(release) })
			c := hungSubscription{invalidatingCache{Cache: newMapCache(nil), b: newBus()}, inStop, release}
			done := make(chan struct{})
			go func() {
				defer close(done)
				s := Settings{IntrospectionURL: as.IntrospectionURL, ClientID: introspectiontest.ClientID, ClientSecret: introspectiontest.ClientSecret,
					CacheTTL: time.Minute, Cache: c}
				v, err := NewVerifier(s)
				if err == nil {
					_ = v.Close()
				}
			}()
			select {
			case <-done:
			case <-time.After(5 * time.Second): // five times the bound of a call of the Cache
				t.Fatalf("NewVerifier and Close did not return in 5 s with a hung %s", name)
			}
		})
	}
}
