package rediscache_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// clock is a settable Settings.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestStaleAnswerFromRedisWhenServerDown shows Settings.StaleIfError with
// Redis: a replica that never saw a token serves another replica's answer
// stale, flagged, once the authorization server has stopped, until
// StaleIfError has passed since the answer stopped being fresh, by the
// fresh_until line the value records, also while Redis still holds it. A
// value an earlier version wrote, the answer alone, is fresh for as long as
// Redis keeps it.
func TestStaleAnswerFromRedisWhenServerDown(t *testing.T) {
	const ttl, window = time.Minute, 10 * time.Minute
	rs := startRedis(t)
	rdb := rs.client(t)
	clk := &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	as := introspectiontest.NewServer()
	defer as.Close()
	as.SetNow(clk.Now)
	replica := func() *introspection.Verifier {
		return verifier(t, as, newCache(t, rs.client(t), nil), func(s *introspection.Settings) {
			s.CacheTTL = ttl
			s.StaleIfError = window
			s.Now = clk.Now
		})
	}
	a, b := replica(), replica()
	tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Lifetime: 24 * time.Hour})
	got, err := a.Verify(context.Background(), tok)
	require.NoError(t, err)
	require.False(t, got.Stale)
	require.NoError(t, a.Close()) // waits until the answer is stored

	ctx := context.Background()
	key := "introspection:" + a.CacheKey(tok)
	pttl, err := rdb.PTTL(ctx, key).Result()
	require.NoError(t, err)
	assert.Greater(t, pttl, ttl+window-time.Minute)
	assert.LessOrEqual(t, pttl, ttl+window, "kept for the fresh TTL plus StaleIfError")
	val, err := rdb.Get(ctx, key).Result()
	require.NoError(t, err)
	head := fmt.Sprintf("fresh_until=%d\n", clk.Now().Add(ttl).UnixMilli())
	require.True(t, strings.HasPrefix(val, head+`{"active":true`), "%q", val)

	clk.Advance(2 * ttl)
	as.Close() // the authorization server is gone
	got, err = b.Verify(ctx, tok)
	require.NoError(t, err)
	assert.True(t, got.Stale)
	assert.Equal(t, "alice", got.Subject)
	_, err = b.Verify(ctx, "never-seen")
	assert.ErrorIs(t, err, introspection.ErrIntrospectionFailed, "nothing to serve stale")

	old := "introspection:" + b.CacheKey("from-an-earlier-version")
	require.NoError(t, rdb.Set(ctx, old, `{"active":true,"sub":"bob"}`, time.Minute).Err())
	got, err = b.Verify(ctx, "from-an-earlier-version")
	require.NoError(t, err)
	assert.False(t, got.Stale, "fresh while Redis keeps it")
	assert.Equal(t, "bob", got.Subject)

	clk.Advance(window - ttl) // StaleIfError has passed since the entry ended
	require.Positive(t, rdb.Exists(ctx, key).Val(), "Redis still holds the value")
	_, err = b.Verify(ctx, tok)
	assert.ErrorIs(t, err, introspection.ErrIntrospectionFailed)
	st := b.Stats()
	assert.Equal(t, uint64(1), st.StaleServed)
	assert.Equal(t, uint64(2), st.Failed)
	assert.Zero(t, st.CacheErrors)
}
