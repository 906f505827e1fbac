// Package bench compares the verifier with the bare protocol and with
// zitadel/oidc's resource-server client, in one run on one machine.
// Run ./run.sh for the table in the README.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/zitadel/oidc/v3/pkg/client/rs"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

const (
	clientID     = "resource-server"
	clientSecret = "bench-secret"
	scope        = "mcp:tools"
	goroutines   = 64
	zipfTokens   = 10_000
)

// server is the one RFC 7662 server all contenders ask.
type server struct {
	*httptest.Server
	requests atomic.Int64
	latency  time.Duration
}

// answer is a typical 10-member answer of about 300 bytes.
var answer = []byte(fmt.Sprintf(`{"active":true,"client_id":"mcp-client-42","sub":"user-42@example.com",`+
	`"username":"user42","scope":"mcp:tools mcp:resources profile email","aud":["https://mcp.example.com/mcp"],`+
	`"exp":%d,"iat":%d,"iss":"https://auth.example.com","token_type":"Bearer"}`,
	time.Now().Add(24*time.Hour).Unix(), time.Now().Unix()))

func newServer(b *testing.B, latency time.Duration) *server {
	s := &server{latency: latency}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if err := r.ParseForm(); err != nil || r.PostForm.Get("token") == "" {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		if s.latency > 0 {
			time.Sleep(s.latency)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(answer)
	}))
	b.Cleanup(s.Close)
	return s
}

// transport is what every HTTP contender uses: enough idle connections for
// 64 goroutines, so no one pays for new connections.
func transport() *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
	}
}

// contender verifies a token: introspect, then check active, exp and scope.
// It returns what it verified, as a caller would receive it.
type contender struct {
	name   string
	verify func(ctx context.Context, token string) (any, error)
	close  func()
}

var errRejected = errors.New("rejected")

// checkByHand is the check the contenders without one of their own do.
func checkByHand(active bool, exp time.Time, scopes []string) error {
	if !active || !exp.IsZero() && !time.Now().Before(exp) || !slices.Contains(scopes, scope) {
		return errRejected
	}
	return nil
}

func baseline(endpoint string) contender {
	c := &http.Client{Transport: transport()}
	return contender{name: "baseline", close: c.CloseIdleConnections, verify: func(ctx context.Context, token string) (any, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint,
			strings.NewReader(url.Values{"token": {token}, "token_type_hint": {"access_token"}}.Encode()))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		req.SetBasicAuth(clientID, clientSecret)
		resp, err := c.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			return nil, err
		}
		active, _ := m["active"].(bool)
		exp, _ := m["exp"].(float64)
		s, _ := m["scope"].(string)
		return m, checkByHand(active, time.Unix(int64(exp), 0), strings.Fields(s))
	}}
}

func library(b *testing.B, name, endpoint string, cacheTTL time.Duration) contender {
	v, err := introspection.NewVerifier(introspection.Settings{
		IntrospectionURL: endpoint,
		ClientID:         clientID,
		ClientSecret:     clientSecret,
		RequiredScopes:   []string{scope},
		CacheTTL:         cacheTTL,
		MaxCacheSize:     2 * zipfTokens,
	})
	if err != nil {
		b.Fatal(err)
	}
	return contender{name: name, close: func() { _ = v.Close() }, verify: func(ctx context.Context, token string) (any, error) {
		return v.Verify(ctx, token)
	}}
}

func zitadel(b *testing.B, endpoint string) contender {
	c := &http.Client{Transport: transport()}
	r, err := rs.NewResourceServerClientCredentials(context.Background(), "http://unused", clientID, clientSecret,
		rs.WithClient(c), rs.WithStaticEndpoints(endpoint, endpoint))
	if err != nil {
		b.Fatal(err)
	}
	return contender{name: "zitadel", close: c.CloseIdleConnections, verify: func(ctx context.Context, token string) (any, error) {
		resp, err := rs.Introspect[*oidc.IntrospectionResponse](ctx, r, token)
		if err != nil {
			return nil, err
		}
		return resp, checkByHand(resp.Active, resp.Expiration.AsTime(), resp.Scope)
	}}
}

// mapCopy is the limit of a safe cache hit: an RWMutex-guarded map lookup
// and a deep copy of the cached token. It is filled beforehand.
func mapCopy(b *testing.B, endpoint string, tokens []string) contender {
	lib, err := introspection.NewVerifier(introspection.Settings{IntrospectionURL: endpoint, ClientID: clientID, ClientSecret: clientSecret})
	if err != nil {
		b.Fatal(err)
	}
	defer lib.Close()
	var mu sync.RWMutex
	m := make(map[string]*introspection.AccessToken, len(tokens))
	for _, tok := range tokens {
		t, err := lib.Verify(context.Background(), tok)
		if err != nil {
			b.Fatal(err)
		}
		m[tok] = t
	}
	return contender{name: "map+copy", close: func() {}, verify: func(_ context.Context, token string) (any, error) {
		mu.RLock()
		t := m[token]
		mu.RUnlock()
		if t == nil {
			return nil, errRejected
		}
		cp := *t
		cp.Scopes = slices.Clone(t.Scopes)
		cp.Audience = slices.Clone(t.Audience)
		cp.Claims = deepCopy(t.Claims).(map[string]any)
		return &cp, checkByHand(true, cp.ExpiresAt, cp.Scopes)
	}}
}

func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = deepCopy(e)
		}
		return out
	default:
		return v
	}
}

func makeTokens(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("tok-%039d", i) // 43 characters, as oidc-provider's
	}
	return out
}

// run measures c on a workload and reports upstream requests per 1,000
// verifications.
func run(b *testing.B, s *server, c contender, parallel bool, pick func(r *rand.Rand) string) {
	defer c.close()
	// Like an HTTP request's context: one that can be canceled.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Warm up connections and, for the cached contender, the cache of the
	// hot token; the measured run starts from here.
	if _, err := c.verify(ctx, pick(rand.New(rand.NewPCG(0, 0)))); err != nil {
		b.Fatal(err)
	}
	before := s.requests.Load()
	b.ReportAllocs()
	b.ResetTimer()
	if parallel {
		b.SetParallelism(max(1, goroutines/runtime.GOMAXPROCS(0))) // 64 goroutines in all
		var seed atomic.Uint64
		b.RunParallel(func(pb *testing.PB) {
			r := rand.New(rand.NewPCG(seed.Add(1), 1))
			for pb.Next() {
				if _, err := c.verify(ctx, pick(r)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	} else {
		r := rand.New(rand.NewPCG(1, 1))
		for i := 0; i < b.N; i++ {
			if _, err := c.verify(ctx, pick(r)); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(s.requests.Load()-before)*1000/float64(b.N), "upstream/1k")
}

// hotTokenBench runs every contender, map+copy included, on one token.
func hotTokenBench(b *testing.B, parallel bool) {
	s := newServer(b, 0)
	hot := makeTokens(1)[0]
	pick := func(*rand.Rand) string { return hot }
	contenders := []func() contender{
		func() contender { return baseline(s.URL) },
		func() contender { return library(b, "library", s.URL, 0) },
		func() contender { return library(b, "library-cached", s.URL, time.Hour) },
		func() contender { return zitadel(b, s.URL) },
		func() contender { return mapCopy(b, s.URL, []string{hot}) },
	}
	for _, mk := range contenders {
		c := mk()
		b.Run(c.name, func(b *testing.B) { run(b, s, c, parallel, pick) })
	}
}

// BenchmarkSerialOneToken is workload (a): one goroutine, one token.
func BenchmarkSerialOneToken(b *testing.B) { hotTokenBench(b, false) }

// BenchmarkParallelHotToken is workload (b): 64 goroutines, one hot token.
func BenchmarkParallelHotToken(b *testing.B) { hotTokenBench(b, true) }

// BenchmarkParallelZipf is workload (c): 64 goroutines over 10,000 tokens
// drawn from a Zipf distribution, with 2 ms of server latency.
func BenchmarkParallelZipf(b *testing.B) {
	s := newServer(b, 2*time.Millisecond)
	tokens := makeTokens(zipfTokens)
	pick := func(r *rand.Rand) string {
		// Zipf over the tokens: a few are hot, most are rare.
		return tokens[zipf(r)]
	}
	contenders := []func() contender{
		func() contender { return baseline(s.URL) },
		func() contender { return library(b, "library", s.URL, 0) },
		func() contender { return library(b, "library-cached", s.URL, time.Hour) },
		func() contender { return zitadel(b, s.URL) },
	}
	for _, mk := range contenders {
		c := mk()
		b.Run(c.name, func(b *testing.B) { run(b, s, c, true, pick) })
	}
}
