package rediscache_test

import (
	"context"
	"io"
	"net"
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
)

// hungRedis is a TCP server that accepts connections and reads what it is
// sent, but never answers: a Redis that hangs.
type hungRedis struct {
	addr     string
	accepted atomic.Int64
}

func startHungRedis(t *testing.T) *hungRedis {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	h := &hungRedis{addr: l.Addr().String()}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			h.accepted.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return h
}

// The clients below are built as the package doc and the README show
// (TestDocSnippetsAreTheExample keeps those in step with Example), as a
// caller who turned socket deadlines off would build one, and as the other
// clients New accepts (see TestNewRefusesAClientItCannotBound).
var hungClients = []struct {
	name   string
	client func(addr string) redis.UniversalClient
}{
	{"as the package doc and the README show", func(addr string) redis.UniversalClient {
		return redis.NewClient(&redis.Options{Addr: addr})
	}},
	{"with its own timeouts", func(addr string) redis.UniversalClient {
		return redis.NewClient(&redis.Options{
			Addr:                  addr,
			DialTimeout:           200 * time.Millisecond,
			ReadTimeout:           200 * time.Millisecond,
			WriteTimeout:          200 * time.Millisecond,
			ContextTimeoutEnabled: true,
		})
	}},
	{"without socket deadlines", func(addr string) redis.UniversalClient {
		return redis.NewClient(&redis.Options{Addr: addr, ReadTimeout: -2, WriteTimeout: -2})
	}},
	{"own type with ContextTimeoutEnabled", func(addr string) redis.UniversalClient {
		return wrapped{redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})}
	}},
	{"ring with ContextTimeoutEnabled", func(addr string) redis.UniversalClient {
		return redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": addr}, ContextTimeoutEnabled: true})
	}},
}

// slowBound is far above the Timeout the tests set (100 ms) and far below
// the 5 s that go-redis waits by default: a call that takes this long was
// not bounded by Options.Timeout.
const slowBound = 2 * time.Second

// hangBound is how long the test waits for a call before it reports that
// the call hangs.
const hangBound = 10 * time.Second

// TestEachCallGivesUpAfterTimeout checks that Get, Set and Delete give up
// after Options.Timeout, with the error of that deadline, when Redis hangs:
// a server that never answers, and a redis-server stopped with SIGSTOP after
// it served a first call. It uses each client as its builder wrote it.
func TestEachCallGivesUpAfterTimeout(t *testing.T) {
	servers := []struct {
		name string
		// start returns the server's address, and hang, which makes it hang
		// after a first call, or nil if it hangs from the start.
		start func(t *testing.T) (addr string, hang func())
	}{
		{"server that never answers", func(t *testing.T) (string, func()) {
			h := startHungRedis(t)
			t.Cleanup(func() {
				assert.Positive(t, h.accepted.Load(), "the calls reached the server: it was the answer that never came")
			})
			return h.addr, nil
		}},
		{"redis-server stopped", func(t *testing.T) (string, func()) {
			rs := startRedis(t)
			return rs.addr, func() {
				require.NoError(t, rs.cmd.Process.Signal(syscall.SIGSTOP))
				t.Cleanup(func() { _ = rs.cmd.Process.Signal(syscall.SIGCONT) })
			}
		}},
	}
	for _, srv := range servers {
		for _, cl := range hungClients {
			t.Run(srv.name+"/"+cl.name, func(t *testing.T) {
				addr, hang := srv.start(t)
				rdb := cl.client(addr)
				t.Cleanup(func() { _ = rdb.Close() })
				c, err := rediscache.New(rdb, &rediscache.Options{Timeout: 100 * time.Millisecond})
				require.NoError(t, err)
				if hang != nil {
					// A call that succeeds leaves a live connection in the
					// pool; the calls below go out on it.
					require.NoError(t, c.Set(context.Background(), "k", []byte("v"), time.Minute))
					hang()
				}
				ops := []struct {
					name string
					call func(ctx context.Context) error
				}{
					{"Get", func(ctx context.Context) error { _, _, err := c.Get(ctx, "k"); return err }},
					{"Set", func(ctx context.Context) error { return c.Set(ctx, "k", []byte("v"), time.Minute) }},
					{"Delete", func(ctx context.Context) error { return c.Delete(ctx, "k") }},
				}
				for _, op := range ops {
					start := time.Now()
					done := make(chan error, 1)
					go func() { done <- op.call(context.Background()) }()
					select {
					case err := <-done:
						took := time.Since(start)
						t.Logf("%s gave up after %v: %v", op.name, took.Round(time.Millisecond), err)
						assert.ErrorIs(t, err, context.DeadlineExceeded, "%s: %v", op.name, err)
						assert.Less(t, took, slowBound, "%s was not bounded by Options.Timeout", op.name)
					case <-time.After(hangBound):
						// The call ends when the server goes away at cleanup.
						t.Errorf("%s still blocked after %v", op.name, hangBound)
					}
				}
			})
		}
	}
}

// wrapped is a caller's own client type around a *redis.Client.
type wrapped struct{ *redis.Client }

// opaque is a caller's own client type that says nothing of its options.
type opaque struct{ redis.UniversalClient }

// TestNewRefusesAClientItCannotBound checks which clients New accepts: any
// *redis.Client (it bounds each call itself), and other clients only when
// their options make go-redis honour the context's deadline.
func TestNewRefusesAClientItCannotBound(t *testing.T) {
	const addr = "127.0.0.1:1" // never dialled: New does not connect
	tests := []struct {
		name    string
		client  func() redis.UniversalClient
		opts    *rediscache.Options
		wantErr string // "" if New must accept the client
	}{
		{"client as the package doc shows", func() redis.UniversalClient {
			return redis.NewClient(&redis.Options{Addr: addr})
		}, nil, ""},
		{"client without socket deadlines", func() redis.UniversalClient {
			return redis.NewClient(&redis.Options{Addr: addr, ReadTimeout: -2, WriteTimeout: -2})
		}, nil, ""},
		{"universal client with one address", func() redis.UniversalClient {
			return redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{addr}})
		}, nil, ""},
		{"cluster client", func() redis.UniversalClient {
			return redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{addr}})
		}, nil, "set ContextTimeoutEnabled: true"},
		{"cluster client with ContextTimeoutEnabled", func() redis.UniversalClient {
			return redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{addr}, ContextTimeoutEnabled: true})
		}, nil, ""},
		{"cluster client with ContextTimeoutEnabled, without read deadlines", func() redis.UniversalClient {
			return redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{addr}, ContextTimeoutEnabled: true, ReadTimeout: -2})
		}, nil, "negative ReadTimeout or WriteTimeout"},
		{"universal client in cluster mode", func() redis.UniversalClient {
			return redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{addr, "127.0.0.1:2"}})
		}, nil, "set ContextTimeoutEnabled: true"},
		{"ring", func() redis.UniversalClient {
			return redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": addr}})
		}, nil, "set ContextTimeoutEnabled: true"},
		{"ring with ContextTimeoutEnabled", func() redis.UniversalClient {
			return redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": addr}, ContextTimeoutEnabled: true})
		}, nil, ""},
		{"own type around a client", func() redis.UniversalClient {
			return wrapped{redis.NewClient(&redis.Options{Addr: addr})}
		}, nil, "set ContextTimeoutEnabled: true"},
		{"own type around a client with ContextTimeoutEnabled", func() redis.UniversalClient {
			return wrapped{redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})}
		}, nil, ""},
		{"own type that hides its options", func() redis.UniversalClient {
			return opaque{redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})}
		}, nil, "cannot tell whether"},
		{"nil client", func() redis.UniversalClient { return nil }, nil, "client is nil"},
		{"negative timeout", func() redis.UniversalClient {
			return redis.NewClient(&redis.Options{Addr: addr})
		}, &rediscache.Options{Timeout: -time.Millisecond}, "Options.Timeout is negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rdb := tc.client()
			if rdb != nil {
				t.Cleanup(func() { _ = rdb.Close() })
			}
			c, err := rediscache.New(rdb, tc.opts)
			if tc.wantErr == "" {
				require.NoError(t, err)
				assert.NotNil(t, c)
				return
			}
			require.Error(t, err)
			assert.Nil(t, c)
			assert.Contains(t, err.Error(), tc.wantErr)
			assert.True(t, strings.HasPrefix(err.Error(), "introspection: rediscache: "), err.Error())
		})
	}
}

// TestHungRedisLeavesVerdictsToTheServer runs a verifier on a Cache built as
// the package doc shows, on a Redis that never answers: every token gets the
// authorization server's verdict, the outage is counted, and the calls are
// not held up by the client's own 5 s read timeout. It runs without the
// local tier, which would keep the valid token (TestHungRedisWithTwoTiers
// runs with it).
func TestHungRedisLeavesVerdictsToTheServer(t *testing.T) {
	h := startHungRedis(t)
	as := introspectiontest.NewServer()
	defer as.Close()
	rdb := redis.NewClient(&redis.Options{Addr: h.addr})
	t.Cleanup(func() { _ = rdb.Close() })
	v := verifier(t, as, newCache(t, rdb, &rediscache.Options{Timeout: 100 * time.Millisecond}),
		func(s *introspection.Settings) { s.LocalCacheTTL = -1 })
	good := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})
	start := time.Now()
	for range 5 {
		got, err := v.Verify(context.Background(), good)
		require.NoError(t, err)
		assert.Equal(t, "alice", got.Subject)
		_, err = v.Verify(context.Background(), "unknown")
		assert.ErrorIs(t, err, introspection.ErrTokenInactive)
		require.NoError(t, v.Close()) // the requests have ended: the next call joins none of them
	}
	assert.Less(t, time.Since(start), slowBound, "ten verifications were not held up by the hung Redis")
	assert.Equal(t, int64(10), as.Requests(), "every verdict came from the authorization server")
	assert.Positive(t, v.Stats().CacheErrors, "the outage is counted")
	assert.Positive(t, h.accepted.Load(), "the cache did reach the hung server")
}

// TestCallsWaitingForAConnectionGiveUpAfterTimeout checks that a call that
// waits for a pooled connection, which go-redis would wait for up to its
// PoolTimeout (6 s by default), gives up after Options.Timeout too.
func TestCallsWaitingForAConnectionGiveUpAfterTimeout(t *testing.T) {
	h := startHungRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: h.addr, PoolSize: 1})
	t.Cleanup(func() { _ = rdb.Close() })
	c := newCache(t, rdb, &rediscache.Options{Timeout: 100 * time.Millisecond})
	const callers = 4
	errs := make(chan error, callers)
	start := time.Now()
	for range callers {
		go func() {
			_, _, err := c.Get(context.Background(), "k")
			errs <- err
		}()
	}
	for range callers {
		select {
		case err := <-errs:
			assert.ErrorIs(t, err, context.DeadlineExceeded)
		case <-time.After(hangBound):
			t.Fatalf("a call still blocked after %v", hangBound)
		}
	}
	assert.Less(t, time.Since(start), slowBound, "the calls were not bounded by Options.Timeout")
	assert.Positive(t, h.accepted.Load(), "the calls reached the server")
}
