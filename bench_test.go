package introspection

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// typicalAnswer is a 10-member introspection answer of about 300 bytes.
func typicalAnswer(i int) string {
	return fmt.Sprintf(`{"active":true,"client_id":"mcp-client-%d","sub":"user-%d@example.com","username":"user%d",`+
		`"scope":"mcp:tools mcp:resources profile email","aud":["https://mcp.example.com/mcp"],`+
		`"exp":%d,"iat":%d,"iss":"https://auth.example.com","token_type":"Bearer"}`,
		i, i, i, time.Now().Add(24*time.Hour).Unix(), time.Now().Unix())
}

// benchServer answers every introspection with typicalAnswer(0).
func benchServer(b *testing.B) *httptest.Server {
	b.Helper()
	body := []byte(typicalAnswer(0))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	b.Cleanup(srv.Close)
	return srv
}

func benchVerifier(b *testing.B, url string, cacheTTL time.Duration) *Verifier {
	b.Helper()
	v, err := NewVerifier(Settings{
		IntrospectionURL: url, ClientID: "rs", ClientSecret: "secret",
		RequiredScopes: []string{"mcp:tools"}, CacheTTL: cacheTTL,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = v.Close() })
	return v
}

// mapBaseline is the least a safe cache hit must do: an RWMutex-guarded map
// lookup and a deep copy of the cached token.
type mapBaseline struct {
	mu sync.RWMutex
	m  map[string]*AccessToken
}

func (c *mapBaseline) get(token string) *AccessToken {
	c.mu.RLock()
	t := c.m[token]
	c.mu.RUnlock()
	cp := *t
	cp.Scopes = slices.Clone(t.Scopes)
	cp.Audience = slices.Clone(t.Audience)
	cp.Claims = copyClaims(t.Claims)
	return &cp
}

const benchToken = "f3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func BenchmarkVerifyCacheHit(b *testing.B) {
	ctx := context.Background()
	srv := benchServer(b)
	v := benchVerifier(b, srv.URL, time.Hour)
	want, err := v.Verify(ctx, benchToken)
	if err != nil {
		b.Fatal(err)
	}
	base := &mapBaseline{m: map[string]*AccessToken{benchToken: want}}

	b.Run("baseline=map+copy/serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if base.get(benchToken) == nil {
				b.Fatal("miss")
			}
		}
	})
	b.Run("verifier/serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(ctx, benchToken); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline=map+copy/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if base.get(benchToken) == nil {
					b.Error("miss")
					return
				}
			}
		})
	})
	b.Run("verifier/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := v.Verify(ctx, benchToken); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	if v.Stats().UpstreamRequests != 1 {
		b.Fatalf("hits went upstream: %+v", v.Stats())
	}
}

// bareIntrospect is the least a miss must do: one POST with Basic
// credentials and a JSON decode, with a bare http.Client.
func bareIntrospect(c *http.Client, endpoint, token string) (map[string]any, error) {
	req, err := http.NewRequest(http.MethodPost, endpoint,
		strings.NewReader(url.Values{"token": {token}, "token_type_hint": {"access_token"}}.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth("rs", "secret")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return nil, err
	}
	if m["active"] != true {
		return nil, fmt.Errorf("inactive")
	}
	return m, nil
}

func BenchmarkVerifyMiss(b *testing.B) {
	ctx := context.Background()
	srv := benchServer(b)
	b.Run("baseline=bare-client", func(b *testing.B) {
		c := &http.Client{Transport: newTransport()}
		defer c.CloseIdleConnections()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := bareIntrospect(c, srv.URL, benchToken); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verifier", func(b *testing.B) {
		v := benchVerifier(b, srv.URL, 0)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(ctx, benchToken); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCacheMemory reports the heap held per entry of the built-in
// cache with 100,000 typical answers. Run it with -benchtime=1x.
func BenchmarkCacheMemory(b *testing.B) {
	const n = 100_000
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		answers := make([]*answer, n)
		tokens := make([]string, n)
		for i := range n {
			a, err := decodeAnswer([]byte(typicalAnswer(i)))
			if err != nil {
				b.Fatal(err)
			}
			answers[i] = a
			tokens[i] = fmt.Sprintf("%043d", i) // a 43-character opaque token
		}
		c := newMemoryCache(n, time.Now)
		for i := range n {
			c.set(context.Background(), tokens[i], answers[i], time.Hour)
		}
		answers = nil
		runtime.GC()
		runtime.ReadMemStats(&after)
		if c.len() != n {
			b.Fatalf("cache holds %d entries", c.len())
		}
		// Everything the cache holds counts: the tokens it keys by, the
		// answers, and its own index.
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/entry")
		runtime.KeepAlive(tokens)
		runtime.KeepAlive(c)
	}
}
