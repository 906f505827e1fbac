package rediscache_test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/mcpauth/introspection/rediscache"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// waitBound is how long a test waits for a condition before it fails: a
// guard against hanging, never a timing assertion.
const waitBound = 20 * time.Second

// restart starts redis-server again on s's address, empty, after kill.
func (s *redisServer) restart(t testing.TB) {
	t.Helper()
	_, port, err := net.SplitHostPort(s.addr)
	require.NoError(t, err)
	cmd := exec.Command(s.cmd.Path, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir())
	require.NoError(t, cmd.Start())
	s.cmd = cmd
	rdb := redis.NewClient(&redis.Options{Addr: s.addr})
	defer rdb.Close()
	require.Eventually(t, func() bool { return rdb.Ping(context.Background()).Err() == nil },
		10*time.Second, 20*time.Millisecond, "redis-server did not start again")
}

// replicas returns n verifiers of as, each with its own client and Cache
// on rs, as the replicas of one server run, after edit changes their
// settings, once their subscriptions are up.
func replicas(t testing.TB, n int, rs *redisServer, as *introspectiontest.Server, edit func(*introspection.Settings)) []*introspection.Verifier {
	t.Helper()
	vs := make([]*introspection.Verifier, n)
	for i := range vs {
		vs[i] = verifier(t, as, newCache(t, rs.client(t), nil), edit)
	}
	waitSubscribed(t, vs, true)
	return vs
}

// waitSubscribed waits until every verifier's subscription is up, or
// every one is down.
func waitSubscribed(t testing.TB, vs []*introspection.Verifier, up bool) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, v := range vs {
			if v.Stats().InvalidationsSubscribed != up {
				return false
			}
		}
		return true
	}, waitBound, time.Millisecond, "subscriptions up: want %t", up)
}

// waitInvalidations waits until each verifier has received at least want
// invalidations.
func waitInvalidations(t *testing.T, vs []*introspection.Verifier, want uint64) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, v := range vs {
			if v.Stats().Invalidations < want {
				return false
			}
		}
		return true
	}, waitBound, time.Millisecond)
}

// keptLocally verifies tok with v, which must accept it, and waits until
// v's local tier holds the answer.
func keptLocally(t *testing.T, v *introspection.Verifier, tok string) *introspection.AccessToken {
	t.Helper()
	got, err := v.Verify(context.Background(), tok)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return v.Stats().LocalCacheEntries == 1 }, waitBound, time.Millisecond)
	return got
}

// stored waits until rdb holds the value of v for tok.
func stored(t *testing.T, rdb *redis.Client, v *introspection.Verifier, tok string) {
	t.Helper()
	require.Eventually(t, func() bool {
		return rdb.Exists(context.Background(), rediscache.DefaultPrefix+v.CacheKey(tok)).Val() == 1
	}, waitBound, time.Millisecond)
}

// TestForgetReachesEveryReplica runs three replicas on one redis-server: a
// token they all hold in their local tiers, forgotten by one, is refused
// by all three, each having heard of it on the namespace's channel. The
// message carries the cache key, never the token.
func TestForgetReachesEveryReplica(t *testing.T) {
	rs := startRedis(t)
	as := introspectiontest.NewServer()
	defer as.Close()
	vs := replicas(t, 3, rs, as, func(s *introspection.Settings) { s.NegativeCacheTTL = time.Minute })
	rdb := rs.client(t)
	tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})
	for i, v := range vs {
		require.Equal(t, "alice", keptLocally(t, v, tok).Subject)
		if i == 0 {
			stored(t, rdb, v, tok)
		}
		_, err := v.Verify(context.Background(), tok)
		require.NoError(t, err)
		require.Equal(t, uint64(1), v.Stats().LocalCacheHits, "the local tier holds it")
	}
	require.Equal(t, int64(1), as.RequestsFor(tok))

	ctx := context.Background()
	key := vs[0].CacheKey(tok)
	sub := rdb.Subscribe(ctx, "introspection:invalidate:"+key[:32])
	defer sub.Close()
	_, err := sub.Receive(ctx) // the subscription is up
	require.NoError(t, err)

	as.Revoke(tok)
	require.NoError(t, vs[1].Forget(ctx, tok))
	waitInvalidations(t, vs, 1)
	for i, v := range vs {
		_, err := v.Verify(ctx, tok)
		assert.ErrorIs(t, err, introspection.ErrTokenInactive, "replica %d", i)
		assert.Zero(t, v.Stats().InvalidationsRefused)
	}
	msg, err := sub.ReceiveMessage(ctx)
	require.NoError(t, err)
	assert.Equal(t, key, msg.Payload, "the message is the cache key")
	assert.NotContains(t, msg.Payload, tok)
}

// TestRedisRestartKeepsVerdictsRight kills redis-server under three
// replicas verifying without a pause, and starts it again on the same
// port: every verdict stays right throughout (a valid token accepted, a
// revoked or unknown one refused), each subscription goes down and comes
// back by itself, and a token forgotten afterwards is refused by all
// three.
func TestRedisRestartKeepsVerdictsRight(t *testing.T) {
	rs := startRedis(t)
	as := introspectiontest.NewServer()
	defer as.Close()
	vs := make([]*introspection.Verifier, 3)
	for i := range vs {
		vs[i] = verifier(t, as, newCache(t, rs.client(t), &rediscache.Options{Timeout: 100 * time.Millisecond}),
			func(s *introspection.Settings) { s.NegativeCacheTTL = time.Minute })
	}
	waitSubscribed(t, vs, true)
	good := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})
	revoked := as.Issue(introspectiontest.TokenOptions{Subject: "mallory"})
	as.Revoke(revoked)

	var (
		stop  = make(chan struct{})
		wg    sync.WaitGroup
		calls atomic.Int64
		mu    sync.Mutex
		wrong []string
	)
	for i, v := range vs {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, tc := range []struct {
					tok  string
					want bool
				}{{good, true}, {revoked, false}, {"unknown", false}} {
					got, err := v.Verify(context.Background(), tc.tok)
					calls.Add(1)
					if ok := err == nil && got.Subject == "alice"; ok != tc.want {
						mu.Lock()
						wrong = append(wrong, fmt.Sprintf("replica %d: accepted %t, want %t: %v", i, ok, tc.want, err))
						mu.Unlock()
					}
				}
			}
		})
	}
	progress := func() { // a few more rounds by every replica
		n := calls.Load()
		require.Eventually(t, func() bool { return calls.Load() > n+30 }, waitBound, time.Millisecond)
	}
	progress()
	rs.kill()
	waitSubscribed(t, vs, false)
	progress()
	rs.restart(t)
	waitSubscribed(t, vs, true)
	progress()
	close(stop)
	wg.Wait()
	assert.Empty(t, wrong)

	// The subscriptions carry invalidations again.
	next := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})
	for _, v := range vs {
		_, err := v.Verify(context.Background(), next)
		require.NoError(t, err)
	}
	as.Revoke(next)
	before := make([]uint64, len(vs))
	for i, v := range vs {
		before[i] = v.Stats().Invalidations
	}
	// The Cache may still cool down after the outage; Forget tries anyway.
	require.Eventually(t, func() bool { return vs[2].Forget(context.Background(), next) == nil }, waitBound, 10*time.Millisecond)
	for i, v := range vs {
		require.Eventually(t, func() bool { return v.Stats().Invalidations > before[i] }, waitBound, time.Millisecond)
		_, err := v.Verify(context.Background(), next)
		assert.ErrorIs(t, err, introspection.ErrTokenInactive, "replica %d", i)
	}
}

// TestRedisDownAtStart starts a verifier before redis-server: it verifies
// with the authorization server meanwhile, its subscription is down and
// its local tier keeps answers for UnsubscribedLocalCacheTTL at most; once
// redis-server starts, the subscription comes up by itself.
func TestRedisDownAtStart(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	as := introspectiontest.NewServer()
	defer as.Close()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = rdb.Close() })
	clk := &clock{t: time.Now()}
	v := verifier(t, as, newCache(t, rdb, &rediscache.Options{Timeout: 100 * time.Millisecond}),
		func(s *introspection.Settings) { s.Now = clk.Now })
	tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})
	verify := func() {
		t.Helper()
		got, err := v.Verify(context.Background(), tok)
		require.NoError(t, err)
		assert.Equal(t, "alice", got.Subject)
	}
	verify()
	require.Eventually(t, func() bool { return v.Stats().LocalCacheEntries == 1 }, waitBound, time.Millisecond)
	verify()
	st := v.Stats()
	assert.False(t, st.InvalidationsSubscribed)
	assert.Positive(t, st.CacheErrors, "Redis is down")
	assert.Equal(t, int64(1), as.RequestsFor(tok), "the local tier kept the answer")
	clk.Advance(introspection.UnsubscribedLocalCacheTTL - time.Millisecond)
	verify()
	assert.Equal(t, int64(1), as.RequestsFor(tok))
	clk.Advance(time.Millisecond)
	verify()
	assert.Equal(t, int64(2), as.RequestsFor(tok), "for UnsubscribedLocalCacheTTL at most")

	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("skipping: redis-server is not installed")
	}
	rs := &redisServer{addr: addr, cmd: &exec.Cmd{Path: bin}}
	rs.restart(t)
	t.Cleanup(rs.kill)
	waitSubscribed(t, []*introspection.Verifier{v}, true)
}

// TestCloseStopsTheSubscription checks that Close ends the subscription's
// goroutine and connection, whether Redis is up, gone, or hung, and that
// nothing of the verifier is left running.
func TestCloseStopsTheSubscription(t *testing.T) {
	for _, state := range []string{"up", "killed", "stopped"} {
		t.Run(state, func(t *testing.T) {
			rs := startRedis(t)
			as := introspectiontest.NewServer()
			defer as.Close()
			rdb := redis.NewClient(&redis.Options{Addr: rs.addr})
			cache := newCache(t, rdb, &rediscache.Options{Timeout: 100 * time.Millisecond})
			ignore := goleak.IgnoreCurrent()
			v, err := introspection.NewVerifier(introspection.Settings{
				IntrospectionURL: as.IntrospectionURL,
				ClientID:         introspectiontest.ClientID,
				ClientSecret:     introspectiontest.ClientSecret,
				CacheTTL:         time.Minute,
				Cache:            cache,
			})
			require.NoError(t, err)
			waitSubscribed(t, []*introspection.Verifier{v}, true)
			switch state {
			case "killed":
				rs.kill()
				waitSubscribed(t, []*introspection.Verifier{v}, false)
			case "stopped":
				require.NoError(t, rs.cmd.Process.Signal(syscall.SIGSTOP))
				defer func() { _ = rs.cmd.Process.Signal(syscall.SIGCONT) }()
			}
			closed := make(chan error, 1)
			go func() { closed <- v.Close() }()
			select {
			case err := <-closed:
				require.NoError(t, err)
			case <-time.After(waitBound):
				t.Fatal("Close did not return")
			}
			assert.False(t, v.Stats().InvalidationsSubscribed)
			require.NoError(t, rdb.Close())
			goleak.VerifyNone(t, ignore)
		})
	}
}

// TestMessagesThatAreNotKeys publishes on a verifier's channel what no
// verifier sends: garbage, the token itself, a key of another namespace,
// a 1 MiB message. Each is refused and counted, nothing is dropped, and
// the subscription stays up and still drops the entry of a key.
func TestMessagesThatAreNotKeys(t *testing.T) {
	rs := startRedis(t)
	as := introspectiontest.NewServer()
	defer as.Close()
	v := replicas(t, 1, rs, as, nil)[0]
	tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})
	keptLocally(t, v, tok)

	key := v.CacheKey(tok)
	channel := "introspection:invalidate:" + key[:32]
	messages := []string{
		"",
		"garbage",
		tok,
		strings.Repeat("0", 32) + key[32:],
		strings.ToUpper(key),
		key + "\x00",
		key + strings.Repeat("x", 1<<20),
	}
	rdb := rs.client(t)
	for _, m := range messages {
		require.NoError(t, rdb.Publish(context.Background(), channel, m).Err())
	}
	require.Eventually(t, func() bool { return v.Stats().InvalidationsRefused == uint64(len(messages)) },
		waitBound, time.Millisecond)
	st := v.Stats()
	assert.Zero(t, st.Invalidations)
	assert.Equal(t, 1, st.LocalCacheEntries, "nothing was dropped")
	assert.True(t, st.InvalidationsSubscribed)

	require.NoError(t, rdb.Publish(context.Background(), channel, key).Err())
	require.Eventually(t, func() bool { return v.Stats().LocalCacheEntries == 0 }, waitBound, time.Millisecond)
}

// TestInvalidationFlood publishes 100,000 invalidations of keys that no
// entry has, then forgets a revoked token, while a replica verifies a hot
// token without a pause: every verdict is right, the hot token stays in
// the local tier, and the forgotten one is refused once its invalidation
// arrived.
func TestInvalidationFlood(t *testing.T) {
	rs := startRedis(t)
	as := introspectiontest.NewServer()
	defer as.Close()
	vs := replicas(t, 2, rs, as, nil)
	hot := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})
	revoked := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})
	for _, tok := range []string{hot, revoked} {
		_, err := vs[0].Verify(context.Background(), tok)
		require.NoError(t, err)
	}
	var wrong atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if got, err := vs[0].Verify(context.Background(), hot); err != nil || got.Subject != "alice" {
				wrong.Add(1)
			}
		}
	})
	rdb := rs.client(t)
	ns := vs[0].CacheKey(hot)[:32]
	const flood = 100_000
	for start := 0; start < flood; start += 1000 {
		pipe := rdb.Pipeline()
		for i := start; i < start+1000; i++ {
			pipe.Publish(context.Background(), "introspection:invalidate:"+ns, fmt.Sprintf("%s:%064x", ns, i))
		}
		_, err := pipe.Exec(context.Background())
		require.NoError(t, err)
	}
	as.Revoke(revoked)
	require.NoError(t, vs[1].Forget(context.Background(), revoked))
	waitInvalidations(t, vs, flood+1)
	close(stop)
	wg.Wait()
	assert.Zero(t, wrong.Load())
	assert.Equal(t, int64(1), as.RequestsFor(hot), "the hot token never left the local tier")
	_, err := vs[0].Verify(context.Background(), revoked)
	assert.ErrorIs(t, err, introspection.ErrTokenInactive)
	assert.True(t, vs[0].Stats().InvalidationsSubscribed)
}

// TestInvalidateRefusesWhatIsNotAKey checks that Invalidate publishes only
// a cache key, never something that could be a token.
func TestInvalidateRefusesWhatIsNotAKey(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	t.Cleanup(func() { _ = rdb.Close() })
	c := newCache(t, rdb, nil)
	key := strings.Repeat("a", 32) + ":" + strings.Repeat("b", 64)
	for _, k := range []string{"", "token", key[:96], key + "c", strings.ToUpper(key), strings.Replace(key, ":", "-", 1)} {
		err := c.Invalidate(context.Background(), k)
		require.Error(t, err, "%q", k)
		assert.True(t, strings.HasPrefix(err.Error(), "introspection: rediscache: "), err.Error())
	}
}

// TestHungRedisWithTwoTiers runs a verifier with the local tier on a Redis
// that never answers: every verdict is right and none is held up; the
// subscription never comes up, so the local tier keeps an answer for
// UnsubscribedLocalCacheTTL at most; and Forget gives up after
// Options.Timeout with the deadline's error, having dropped the local
// copy, so that the next Verify asks the server.
func TestHungRedisWithTwoTiers(t *testing.T) {
	h := startHungRedis(t)
	as := introspectiontest.NewServer()
	defer as.Close()
	rdb := redis.NewClient(&redis.Options{Addr: h.addr})
	t.Cleanup(func() { _ = rdb.Close() })
	clk := &clock{t: time.Now()}
	v := verifier(t, as, newCache(t, rdb, &rediscache.Options{Timeout: 100 * time.Millisecond}),
		func(s *introspection.Settings) { s.Now = clk.Now })
	good := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})
	start := time.Now()
	for range 5 {
		got, err := v.Verify(context.Background(), good)
		require.NoError(t, err)
		assert.Equal(t, "alice", got.Subject)
		_, err = v.Verify(context.Background(), "unknown")
		assert.ErrorIs(t, err, introspection.ErrTokenInactive)
	}
	assert.Less(t, time.Since(start), slowBound, "ten verifications were not held up by the hung Redis")
	assert.Equal(t, int64(1), as.RequestsFor(good), "the local tier kept the valid answer")
	assert.Equal(t, int64(5), as.RequestsFor("unknown"))
	assert.False(t, v.Stats().InvalidationsSubscribed)
	clk.Advance(introspection.UnsubscribedLocalCacheTTL)
	_, err := v.Verify(context.Background(), good)
	require.NoError(t, err)
	assert.Equal(t, int64(2), as.RequestsFor(good), "for UnsubscribedLocalCacheTTL at most")

	as.Revoke(good)
	err = v.Forget(context.Background(), good)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	_, err = v.Verify(context.Background(), good)
	assert.ErrorIs(t, err, introspection.ErrTokenInactive, "the local copy is gone")
}

// TestHungRedisTakesTheSubscriptionDown stops redis-server (SIGSTOP) under
// a subscribed verifier: the subscription's ping goes unanswered, so the
// verifier takes it for down and empties its local tier; once redis-server
// runs again (SIGCONT), the subscription comes back by itself.
func TestHungRedisTakesTheSubscriptionDown(t *testing.T) {
	rs := startRedis(t)
	as := introspectiontest.NewServer()
	defer as.Close()
	v := replicas(t, 1, rs, as, nil)[0]
	tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})
	keptLocally(t, v, tok)

	require.NoError(t, rs.cmd.Process.Signal(syscall.SIGSTOP))
	var resumed sync.Once
	resume := func() { resumed.Do(func() { _ = rs.cmd.Process.Signal(syscall.SIGCONT) }) }
	t.Cleanup(resume)
	waitSubscribed(t, []*introspection.Verifier{v}, false)
	assert.Zero(t, v.Stats().LocalCacheEntries, "the local tier was emptied")
	resume()
	waitSubscribed(t, []*introspection.Verifier{v}, true)
}
