package rediscache_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/rediscache"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// jti is a replay key of the shape the verifier uses.
const jti = "dpop:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

// TestClaimRecordsAKeyOnce checks that the first Claim of a key is new and
// the next is not, and that the key lives in Redis under the prefix and
// "dpop-jti:", apart from the cache's entries.
func TestClaimRecordsAKeyOnce(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.client(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name, prefix, stored string
	}{
		{"default prefix", "", "introspection:dpop-jti:" + jti},
		{"own prefix", "p:", "p:dpop-jti:" + jti},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCache(t, rdb, &rediscache.Options{Prefix: tc.prefix})
			ok, err := c.Claim(ctx, jti, time.Minute)
			require.NoError(t, err)
			assert.True(t, ok, "first claim")
			ok, err = c.Claim(ctx, jti, time.Minute)
			require.NoError(t, err)
			assert.False(t, ok, "second claim")
			ok, err = c.Claim(ctx, jti+"B", time.Minute)
			require.NoError(t, err)
			assert.True(t, ok, "another key")
			n, err := rdb.Exists(ctx, tc.stored).Result()
			require.NoError(t, err)
			assert.Equal(t, int64(1), n, "stored as %q", tc.stored)
			_, found, err := c.Get(ctx, "dpop-jti:"+jti)
			require.NoError(t, err)
			assert.True(t, found, "the cache's own Get reaches it only under the dpop-jti: namespace")
			_, found, err = c.Get(ctx, jti)
			require.NoError(t, err)
			assert.False(t, found, "a cache key of the same name is another key")
		})
	}
}

// TestClaimTTL checks that a claim sets the TTL it is given with PX, that a
// TTL under a millisecond is kept for one rather than refused by Redis, and
// that the key is new again once Redis has expired it.
func TestClaimTTL(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.client(t)
	c := newCache(t, rdb, nil)
	ctx := context.Background()

	ok, err := c.Claim(ctx, jti, 1500*time.Millisecond)
	require.NoError(t, err)
	require.True(t, ok)
	pttl, err := rdb.PTTL(ctx, "introspection:dpop-jti:"+jti).Result()
	require.NoError(t, err)
	assert.Greater(t, pttl, time.Duration(0))
	assert.LessOrEqual(t, pttl, 1500*time.Millisecond)

	ok, err = c.Claim(ctx, jti, time.Hour)
	require.NoError(t, err)
	assert.False(t, ok)
	pttl, err = rdb.PTTL(ctx, "introspection:dpop-jti:"+jti).Result()
	require.NoError(t, err)
	assert.LessOrEqual(t, pttl, 1500*time.Millisecond, "a claim that is not new leaves the TTL alone")

	short := jti + "s"
	ok, err = c.Claim(ctx, short, time.Nanosecond)
	require.NoError(t, err, "PX 1, not PX 0")
	assert.True(t, ok)
	require.Eventually(t, func() bool {
		n, err := rdb.Exists(ctx, "introspection:dpop-jti:"+short).Result()
		return err == nil && n == 0
	}, 5*time.Second, 2*time.Millisecond, "Redis expires the key")
	ok, err = c.Claim(ctx, short, time.Minute)
	require.NoError(t, err)
	assert.True(t, ok, "new again after its TTL")
}

// TestClaimAcrossReplicas runs two Caches, with their own clients, on one
// Redis, as two replicas would: a key claimed by one is not new to the
// other.
func TestClaimAcrossReplicas(t *testing.T) {
	rs := startRedis(t)
	a := newCache(t, rs.client(t), nil)
	b := newCache(t, rs.client(t), nil)
	ctx := context.Background()
	ok, err := a.Claim(ctx, jti, time.Minute)
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = b.Claim(ctx, jti, time.Minute)
	require.NoError(t, err)
	assert.False(t, ok, "the second replica")
	ok, err = a.Claim(ctx, jti, time.Minute)
	require.NoError(t, err)
	assert.False(t, ok)
}

// TestClaimOneWinnerAcrossReplicas claims one key from 100 goroutines
// spread over two replicas: exactly one claim is new.
func TestClaimOneWinnerAcrossReplicas(t *testing.T) {
	rs := startRedis(t)
	stores := []introspection.ReplayStore{newCache(t, rs.client(t), nil), newCache(t, rs.client(t), nil)}
	var wins, errs atomic.Int64
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			<-start
			ok, err := stores[i%2].Claim(context.Background(), jti, time.Minute)
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
}

// TestClaimFailsWhenRedisFails checks that a claim that Redis cannot
// answer is an error and never new: with redis-server killed, stopped with
// SIGSTOP, and a server that never answers; the hung ones give up after
// Options.Timeout.
func TestClaimFailsWhenRedisFails(t *testing.T) {
	tests := []struct {
		name string
		// start returns the address, and a func that makes the server fail
		// after a first claim, or nil if it fails from the start.
		start    func(t *testing.T) (string, func())
		deadline bool // the error is Options.Timeout at work
	}{
		{"killed", func(t *testing.T) (string, func()) {
			rs := startRedis(t)
			return rs.addr, rs.kill
		}, false},
		{"stopped", func(t *testing.T) (string, func()) {
			rs := startRedis(t)
			return rs.addr, func() {
				require.NoError(t, rs.cmd.Process.Signal(syscall.SIGSTOP))
				t.Cleanup(func() { _ = rs.cmd.Process.Signal(syscall.SIGCONT) })
			}
		}, true},
		{"never answers", func(t *testing.T) (string, func()) {
			return startHungRedis(t).addr, nil
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr, fail := tc.start(t)
			rdb := redis.NewClient(&redis.Options{Addr: addr})
			t.Cleanup(func() { _ = rdb.Close() })
			c := newCache(t, rdb, &rediscache.Options{Timeout: 100 * time.Millisecond})
			if fail != nil {
				ok, err := c.Claim(context.Background(), jti+"0", time.Minute)
				require.NoError(t, err)
				require.True(t, ok)
				fail()
			}
			for i := range 3 {
				start := time.Now()
				type result struct {
					ok  bool
					err error
				}
				done := make(chan result, 1)
				go func() {
					ok, err := c.Claim(context.Background(), jti, time.Minute)
					done <- result{ok, err}
				}()
				select {
				case r := <-done:
					require.Error(t, r.err, "claim %d", i)
					assert.False(t, r.ok, "claim %d: never new when Redis fails", i)
					assert.True(t, strings.HasPrefix(r.err.Error(), "introspection: rediscache: SET"), r.err.Error())
					if tc.deadline {
						assert.ErrorIs(t, r.err, context.DeadlineExceeded)
						assert.Less(t, time.Since(start), slowBound, "bounded by Options.Timeout")
					}
				case <-time.After(hangBound):
					t.Fatalf("claim %d still blocked after %v", i, hangBound)
				}
			}
		})
	}
}

// TestClaimRefusesBadInput checks that a key outside the ReplayStore
// contract (1 to 64 bytes of [A-Za-z0-9_:-]) or a TTL that is not positive
// is an error, never new, and writes nothing to Redis.
func TestClaimRefusesBadInput(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.client(t)
	c := newCache(t, rdb, nil)
	ctx := context.Background()
	tests := []struct {
		name string
		key  string
		ttl  time.Duration
		ok   bool
	}{
		{"64 bytes, at the bound", strings.Repeat("a", 64), time.Minute, true},
		{"65 bytes, just past the bound", strings.Repeat("b", 65), time.Minute, false},
		{"empty", "", time.Minute, false},
		{"space", "dpop: x", time.Minute, false},
		{"asterisk", "dpop:*", time.Minute, false},
		{"newline", "dpop:\r\n", time.Minute, false},
		{"non-ASCII", "dpop:é", time.Minute, false},
		{"zero TTL", jti, 0, false},
		{"negative TTL", jti, -time.Second, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, rdb.FlushAll(ctx).Err())
			ok, err := c.Claim(ctx, tc.key, tc.ttl)
			keys, kerr := rdb.Keys(ctx, "*").Result()
			require.NoError(t, kerr)
			if tc.ok {
				require.NoError(t, err)
				assert.True(t, ok)
				assert.Len(t, keys, 1)
				return
			}
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), "introspection: rediscache: "), err.Error())
			assert.False(t, ok)
			assert.Empty(t, keys, "nothing written")
		})
	}
}
