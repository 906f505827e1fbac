package introspection

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
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

// BenchmarkDecodeManyMembers decodes the largest answer of many members
// that the 1 MiB cap lets through (about 116,000), next to json.Unmarshal
// of the same body: decoding must cost a small constant times that.
func BenchmarkDecodeManyMembers(b *testing.B) {
	body, members := manyMembers(maxBodySize)
	b.Logf("%d bytes, %d members", len(body), members)
	b.Run("baseline=json.Unmarshal", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			var m map[string]any
			if err := json.Unmarshal(body, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decodeAnswer", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeAnswer(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDecodeTypical decodes a typical 10-member answer.
func BenchmarkDecodeTypical(b *testing.B) {
	body := []byte(typicalAnswer(1))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeAnswer(body); err != nil {
			b.Fatal(err)
		}
	}
}

// hostileAnswers are answers of up to the 1 MiB cap shaped to make a
// duplicate-member scan slow: escaped names, many small objects, deep
// nesting, long runs of escapes.
func hostileAnswers() map[string][]byte {
	fill := func(head, unit, tail string) []byte {
		n := (maxBodySize - len(head) - len(tail)) / len(unit)
		return []byte(head + strings.TrimSuffix(strings.Repeat(unit, n), ",") + tail)
	}
	escaped := []byte(`{"active":true`)
	for i := 0; len(escaped) < maxBodySize-20; i++ {
		escaped = fmt.Appendf(escaped, `,"\u0041%X":0`, i)
	}
	escaped = append(escaped, '}')
	long := []byte(`{"active":true,"x":{"a":0`)
	for i := 0; len(long) < maxBodySize-4100; i++ {
		long = fmt.Appendf(long, `,"%s%d":0`, strings.Repeat("n", 4000), i)
	}
	long = append(long, "}}"...)
	return map[string][]byte{
		"long-names":     long,
		"escaped-names":  escaped,
		"small-objects":  fill(`{"active":true,"x":[`, `{"a":0,"b":0,"c":0,"d":0,"e":0,"f":0,"g":0,"h":0},`, `]}`),
		"objects-17":     fill(`{"active":true,"x":[`, `{"a":0,"b":0,"c":0,"d":0,"e":0,"f":0,"g":0,"h":0,"i":0,"j":0,"k":0,"l":0,"m":0,"n":0,"o":0,"p":0,"q":0},`, `]}`),
		"deep":           []byte(`{"active":true,"x":` + strings.Repeat(`[`, 9990) + strings.Repeat(`]`, 9990) + `}`),
		"escaped-quotes": fill(`{"active":true,"x":"`, `\"`, `"}`),
		"backslashes":    fill(`{"active":true,"x":"`, `\\`, `"}`),
		"empty-objects":  fill(`{"active":true,"x":[`, `{},`, `]}`),
	}
}

// BenchmarkDecodeHostile decodes each of hostileAnswers next to
// json.Unmarshal of it.
func BenchmarkDecodeHostile(b *testing.B) {
	answers := hostileAnswers()
	for _, name := range slices.Sorted(maps.Keys(answers)) {
		body := answers[name]
		b.Run(name+"/baseline=json.Unmarshal", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				var m map[string]any
				if err := json.Unmarshal(body, &m); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/decodeAnswer", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := decodeAnswer(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
