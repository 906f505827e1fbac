package rediscache_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/mcpauth/introspection/rediscache"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// redisServer is a redis-server process on 127.0.0.1.
type redisServer struct {
	addr string
	cmd  *exec.Cmd
}

// startRedis runs redis-server on a free port, without persistence. It
// skips the test when redis-server is missing, except in CI.
func startRedis(t testing.TB) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server is required in CI")
		}
		t.Skip("skipping: redis-server is not installed (Debian package redis-server)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir())
	require.NoError(t, cmd.Start())
	s := &redisServer{addr: fmt.Sprintf("127.0.0.1:%d", port), cmd: cmd}
	t.Cleanup(s.kill)
	rdb := redis.NewClient(&redis.Options{Addr: s.addr})
	defer rdb.Close()
	require.Eventually(t, func() bool { return rdb.Ping(context.Background()).Err() == nil },
		10*time.Second, 20*time.Millisecond, "redis-server did not start")
	return s
}

func (s *redisServer) kill() {
	if s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
}

// client returns a go-redis client built as the package doc shows: the
// Cache bounds its calls itself.
func (s *redisServer) client(t testing.TB) *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: s.addr})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// newCache returns rediscache.New(rdb, opts), which must succeed.
func newCache(t testing.TB, rdb redis.UniversalClient, opts *rediscache.Options) *rediscache.Cache {
	t.Helper()
	c, err := rediscache.New(rdb, opts)
	require.NoError(t, err)
	return c
}

func verifier(t testing.TB, as *introspectiontest.Server, c introspection.Cache, edit func(*introspection.Settings)) *introspection.Verifier {
	t.Helper()
	s := introspection.Settings{
		IntrospectionURL: as.IntrospectionURL,
		ClientID:         introspectiontest.ClientID,
		ClientSecret:     introspectiontest.ClientSecret,
		CacheTTL:         time.Hour,
		Cache:            c,
	}
	if edit != nil {
		edit(&s)
	}
	v, err := introspection.NewVerifier(s)
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	return v
}

func TestTwoVerifiersShareOneRedis(t *testing.T) {
	rs := startRedis(t)
	as := introspectiontest.NewServer()
	defer as.Close()
	a := verifier(t, as, newCache(t, rs.client(t), nil), nil)
	b := verifier(t, as, newCache(t, rs.client(t), nil), nil)
	tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{"read"}})
	for _, v := range []*introspection.Verifier{a, b, a, b} {
		got, err := v.Verify(context.Background(), tok)
		require.NoError(t, err)
		assert.Equal(t, "alice", got.Subject)
		require.NoError(t, v.Close()) // waits until the answer is stored; v keeps working
	}
	assert.Equal(t, int64(1), as.Requests(), "one upstream request for both replicas")
	assert.Equal(t, uint64(2), b.Stats().CacheHits)
}

func TestTTLCappedByExp(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.client(t)
	as := introspectiontest.NewServer()
	defer as.Close()
	v := verifier(t, as, newCache(t, rdb, &rediscache.Options{Prefix: "p:"}), nil)
	short := as.Issue(introspectiontest.TokenOptions{Lifetime: 3 * time.Second})
	long := as.Issue(introspectiontest.TokenOptions{Lifetime: 24 * time.Hour})
	for _, tok := range []string{short, long} {
		_, err := v.Verify(context.Background(), tok)
		require.NoError(t, err)
	}
	require.NoError(t, v.Close()) // waits until the answers are stored
	ctx := context.Background()
	pttl, err := rdb.PTTL(ctx, "p:"+v.CacheKey(short)).Result()
	require.NoError(t, err)
	assert.Greater(t, pttl, time.Duration(0))
	assert.LessOrEqual(t, pttl, 3*time.Second, "never past exp")
	pttl, err = rdb.PTTL(ctx, "p:"+v.CacheKey(long)).Result()
	require.NoError(t, err)
	assert.Greater(t, pttl, 59*time.Minute)
	assert.LessOrEqual(t, pttl, time.Hour, "CacheTTL")
}

func TestNegativeCachingInRedis(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.client(t)
	as := introspectiontest.NewServer()
	defer as.Close()
	v := verifier(t, as, newCache(t, rdb, nil), func(s *introspection.Settings) {
		s.NegativeCacheTTL = 1500 * time.Millisecond
	})
	for range 3 {
		_, err := v.Verify(context.Background(), "unknown")
		assert.ErrorIs(t, err, introspection.ErrTokenInactive)
	}
	assert.Equal(t, int64(1), as.Requests())
	require.NoError(t, v.Close()) // waits until the answer is stored
	pttl, err := rdb.PTTL(context.Background(), "introspection:"+v.CacheKey("unknown")).Result()
	require.NoError(t, err)
	assert.LessOrEqual(t, pttl, 1500*time.Millisecond)
	assert.Greater(t, pttl, time.Duration(0))
}

// TestRedisKilledMidTest checks that verification stays correct when Redis
// goes away: every verdict comes from the authorization server instead.
// It runs without the local tier, which would serve hot tokens for a
// while (TestRedisRestartKeepsVerdictsRight runs with it).
func TestRedisKilledMidTest(t *testing.T) {
	rs := startRedis(t)
	as := introspectiontest.NewServer()
	defer as.Close()
	v := verifier(t, as, newCache(t, rs.client(t), &rediscache.Options{Timeout: 200 * time.Millisecond}),
		func(s *introspection.Settings) { s.LocalCacheTTL = -1 })
	good := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})
	revoked := as.Issue(introspectiontest.TokenOptions{})
	for _, tok := range []string{good, revoked} {
		_, err := v.Verify(context.Background(), tok)
		require.NoError(t, err)
	}
	require.Equal(t, int64(2), as.Requests())
	require.NoError(t, v.Close()) // the answers are stored: no caller joins a request still storing

	rs.kill()
	as.Revoke(revoked)
	for range 3 {
		got, err := v.Verify(context.Background(), good)
		require.NoError(t, err)
		assert.Equal(t, "alice", got.Subject)
		_, err = v.Verify(context.Background(), revoked)
		assert.ErrorIs(t, err, introspection.ErrTokenInactive, "the revocation is seen at once")
		_, err = v.Verify(context.Background(), "unknown")
		assert.ErrorIs(t, err, introspection.ErrTokenInactive)
		require.NoError(t, v.Close()) // the requests have ended: the next call joins none of them
	}
	assert.Equal(t, int64(2+9), as.Requests(), "every call asked the authorization server")
	st := v.Stats()
	assert.Positive(t, st.CacheErrors, "the outage is visible")
	assert.Positive(t, st.CacheSkipped, "and the cache is left alone while it lasts")
}

// TestNoTokenInRedis scans every key and value for the tokens.
func TestNoTokenInRedis(t *testing.T) {
	rs := startRedis(t)
	rdb := rs.client(t)
	as := introspectiontest.NewServer()
	defer as.Close()
	v := verifier(t, as, newCache(t, rdb, nil), func(s *introspection.Settings) { s.NegativeCacheTTL = time.Minute })
	tokens := []string{"unknown-token-value"}
	for i := range 20 {
		tokens = append(tokens, as.Issue(introspectiontest.TokenOptions{Subject: fmt.Sprint("user", i), Scopes: []string{"read"}}))
	}
	for _, tok := range tokens {
		_, _ = v.Verify(context.Background(), tok)
	}
	require.NoError(t, v.Close()) // waits until the answers are stored
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "*").Result()
	require.NoError(t, err)
	require.Len(t, keys, len(tokens))
	want := map[string]bool{}
	for _, tok := range tokens {
		want["introspection:"+v.CacheKey(tok)] = true
	}
	for _, k := range keys {
		assert.True(t, want[k], "key %q is the prefix and the verifier's key of a token", k)
		val, err := rdb.Get(ctx, k).Result()
		require.NoError(t, err)
		assert.Contains(t, val, `"active":`)
		for _, tok := range tokens {
			assert.NotContains(t, k, tok)
			assert.NotContains(t, val, tok)
		}
	}
}
