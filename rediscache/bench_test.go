package rediscache_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/mcpauth/introspection/rediscache"
)

// countedCache counts the Gets and Sets of the rediscache.Cache it embeds,
// which stays an Invalidator.
type countedCache struct {
	*rediscache.Cache
	gets, sets atomic.Int64
}

func (c *countedCache) Get(ctx context.Context, key string) ([]byte, bool, error) {
	c.gets.Add(1)
	return c.Cache.Get(ctx, key)
}

func (c *countedCache) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	c.sets.Add(1)
	return c.Cache.Set(ctx, key, value, ttl)
}

// benchVerifier returns a verifier of as that requires the scope "read",
// caching answers for an hour in c (nil: the built-in cache), with
// LocalCacheTTL local.
func benchVerifier(b *testing.B, as *introspectiontest.Server, c introspection.Cache, local time.Duration) *introspection.Verifier {
	b.Helper()
	return verifier(b, as, c, func(s *introspection.Settings) {
		s.RequiredScopes = []string{"read"}
		s.LocalCacheTTL = local
	})
}

// BenchmarkHotTokenHit compares a hit of one hot token: the built-in cache,
// the two tiers (the local tier in front of Redis), and Redis alone
// (LocalCacheTTL negative), serially and from parallel goroutines.
//
//	go test -run '^$' -bench HotTokenHit -benchmem -count 10 . > hit.txt
//	benchstat -col /cache hit.txt
func BenchmarkHotTokenHit(b *testing.B) {
	rs := startRedis(b)
	as := introspectiontest.NewServer()
	b.Cleanup(as.Close)
	tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{"read"}})
	for _, tc := range []struct {
		name  string
		cache func() introspection.Cache
		local time.Duration
	}{
		{"built-in", func() introspection.Cache { return nil }, 0},
		{"two-tiers", func() introspection.Cache { return newCache(b, rs.client(b), nil) }, 0},
		{"redis-only", func() introspection.Cache { return newCache(b, rs.client(b), nil) }, -1},
	} {
		c := tc.cache()
		v := benchVerifier(b, as, c, tc.local)
		if c != nil && tc.local >= 0 {
			waitSubscribed(b, []*introspection.Verifier{v}, true)
		}
		ctx := context.Background()
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
		for _, mode := range []string{"serial", "parallel"} {
			b.Run(fmt.Sprintf("cache=%s/%s", tc.name, mode), func(b *testing.B) {
				b.ReportAllocs()
				if mode == "serial" {
					for b.Loop() {
						if _, err := v.Verify(ctx, tok); err != nil {
							b.Fatal(err)
						}
					}
					return
				}
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := v.Verify(ctx, tok); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
		if n := v.Stats().UpstreamRequests; n > 1 {
			b.Fatalf("%s: hits went upstream: %d requests", tc.name, n)
		}
	}
}

// BenchmarkMiss verifies a new token in every iteration, with the two tiers
// and with Redis alone, and reports the Gets and Sets of the Cache and the
// introspection requests per miss: one each.
//
//	go test -run '^$' -bench Miss -count 5 .
func BenchmarkMiss(b *testing.B) {
	rs := startRedis(b)
	as := introspectiontest.NewServer()
	b.Cleanup(as.Close)
	for _, tc := range []struct {
		name  string
		local time.Duration
	}{{"two-tiers", 0}, {"redis-only", -1}} {
		b.Run("cache="+tc.name, func(b *testing.B) {
			c := &countedCache{Cache: newCache(b, rs.client(b), nil)}
			v := benchVerifier(b, as, c, tc.local)
			tokens := make([]string, 0, 1024)
			start := as.Requests()
			n := 0
			for b.Loop() {
				if len(tokens) == 0 {
					b.StopTimer()
					for range cap(tokens) {
						tokens = append(tokens, as.Issue(introspectiontest.TokenOptions{Scopes: []string{"read"}}))
					}
					b.StartTimer()
				}
				tok := tokens[len(tokens)-1]
				tokens = tokens[:len(tokens)-1]
				if _, err := v.Verify(context.Background(), tok); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.StopTimer()
			if err := v.Close(); err != nil { // waits for the Sets
				b.Fatal(err)
			}
			gets, sets, upstream := c.gets.Load(), c.sets.Load(), as.Requests()-start
			b.ReportMetric(float64(gets)/float64(n), "gets/miss")
			b.ReportMetric(float64(sets)/float64(n), "sets/miss")
			b.ReportMetric(float64(upstream)/float64(n), "upstream/miss")
			if gets != int64(n) || sets != int64(n) || upstream != int64(n) {
				b.Errorf("%d misses made %d Gets, %d Sets and %d introspection requests", n, gets, sets, upstream)
			}
		})
	}
}

// BenchmarkForgetPropagation measures how long a Forget on one of three
// replicas takes to reach the local tiers of the other two: from the call
// to the moment both have dropped their copies, with the percentiles over
// the iterations.
//
//	go test -run '^$' -bench ForgetPropagation -benchtime 2000x .
func BenchmarkForgetPropagation(b *testing.B) {
	rs := startRedis(b)
	as := introspectiontest.NewServer()
	b.Cleanup(as.Close)
	vs := replicas(b, 3, rs, as, func(s *introspection.Settings) { s.RequiredScopes = []string{"read"} })
	tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{"read"}})
	ctx := context.Background()
	var took []time.Duration
	for range b.N {
		b.StopTimer()
		seen := make([]uint64, len(vs))
		for i, v := range vs {
			for v.Stats().LocalCacheEntries == 0 {
				if _, err := v.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
			seen[i] = v.Stats().Invalidations
		}
		b.StartTimer()
		start := time.Now()
		if err := vs[0].Forget(ctx, tok); err != nil {
			b.Fatal(err)
		}
		for _, i := range []int{1, 2} {
			deadline := start.Add(10 * time.Second)
			for vs[i].Stats().Invalidations == seen[i] {
				if time.Now().After(deadline) {
					b.Fatalf("replica %d never heard of the forget", i)
				}
				runtime.Gosched()
			}
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	at := func(p float64) float64 {
		return float64(took[min(len(took)-1, int(p*float64(len(took))))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
	b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "max-ms")
}

// BenchmarkZipf runs three replicas sharing one Redis under a Zipf workload
// (s=1.1 over 10,000 tokens, the authorization server 2 ms away, 32
// callers per core), with the local tier on and off, and reports the
// introspection requests per distinct token, the Gets of Redis per
// verification and the throughput.
//
//	go test -run '^$' -bench Zipf -benchtime 100000x -count 6 . > zipf.txt
//	benchstat -col /local zipf.txt
func BenchmarkZipf(b *testing.B) {
	const tokens = 10_000
	rs := startRedis(b)
	as := introspectiontest.NewServer()
	b.Cleanup(as.Close)
	as.SetFault(introspectiontest.Fault{Latency: 2 * time.Millisecond})
	toks := make([]string, tokens)
	for i := range toks {
		toks[i] = as.Issue(introspectiontest.TokenOptions{Subject: fmt.Sprint(i), Scopes: []string{"read"}})
	}
	for _, tc := range []struct {
		name  string
		local time.Duration
	}{{"on", 0}, {"off", -1}} {
		b.Run("local="+tc.name, func(b *testing.B) {
			rdb := rs.client(b)
			if err := rdb.FlushAll(context.Background()).Err(); err != nil {
				b.Fatal(err)
			}
			caches := make([]*countedCache, 3)
			vs := make([]*introspection.Verifier, 3)
			for i := range vs {
				caches[i] = &countedCache{Cache: newCache(b, rs.client(b), nil)}
				vs[i] = benchVerifier(b, as, caches[i], tc.local)
			}
			if tc.local >= 0 {
				waitSubscribed(b, vs, true)
			}
			var (
				seen     sync.Map
				distinct atomic.Int64
				next     atomic.Int64
			)
			start, began := as.Requests(), time.Now()
			b.SetParallelism(32) // 64 callers on 2 cores, as a busy server has
			b.RunParallel(func(pb *testing.PB) {
				g := next.Add(1)
				v := vs[g%3]
				z := rand.NewZipf(rand.New(rand.NewPCG(uint64(g), 15)), 1.1, 1, tokens-1)
				for pb.Next() {
					i := z.Uint64()
					if _, loaded := seen.LoadOrStore(i, true); !loaded {
						distinct.Add(1)
					}
					if _, err := v.Verify(context.Background(), toks[i]); err != nil {
						b.Error(err)
						return
					}
				}
			})
			elapsed := time.Since(began)
			var gets int64
			for _, c := range caches {
				gets += c.gets.Load()
			}
			b.ReportMetric(float64(as.Requests()-start)/float64(distinct.Load()), "upstream/token")
			b.ReportMetric(float64(gets)/float64(b.N), "gets/op")
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "verifications/s")
		})
	}
}
