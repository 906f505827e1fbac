package introspection

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestLoad drives 10,000 requests from 200 goroutines through
// RequireBearerToken over 500 tokens (450 valid, 50 never issued), revoking
// 50 of the valid ones halfway. Every verdict must be right, upstream
// requests must stay within the distinct tokens per cache lifetime, and no
// goroutine may be left running.
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	defer goleak.VerifyNone(t)
	const (
		requests   = 10_000
		workers    = 200
		valid      = 450
		unknown    = 50
		revoked    = 50
		cacheTTL   = 500 * time.Millisecond
		latency    = 2 * time.Millisecond
		revokeSlop = 200 * time.Millisecond // scheduling between a check and its record
	)
	as := introspectiontest.NewServer()
	as.SetFault(introspectiontest.Fault{Latency: latency})
	tokens := make([]string, 0, valid+unknown)
	for i := range valid {
		tokens = append(tokens, as.Issue(introspectiontest.TokenOptions{Subject: fmt.Sprint(i), Scopes: []string{"mcp:tools"}}))
	}
	for i := range unknown {
		tokens = append(tokens, fmt.Sprintf("never-issued-%d", i))
	}
	v, err := NewVerifier(Settings{
		IntrospectionURL: as.IntrospectionURL,
		ClientID:         introspectiontest.ClientID,
		ClientSecret:     introspectiontest.ClientSecret,
		RequiredScopes:   []string{"mcp:tools"},
		CacheTTL:         cacheTTL,
		NegativeCacheTTL: cacheTTL,
	})
	require.NoError(t, err)
	srv := httptest.NewServer(RequireBearerToken(v, nil)(whoami))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}

	var (
		next      atomic.Int64
		wrong     atomic.Int64
		revokedAt atomic.Int64 // UnixNano; 0 until revocation
		mu        sync.Mutex
		failures  []string
	)
	isRevoked := func(i int) bool { return i < revoked }
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				n := next.Add(1)
				if n > requests {
					return
				}
				if n == requests/2 {
					for i := range revoked {
						as.Revoke(tokens[i])
					}
					revokedAt.Store(time.Now().UnixNano())
				}
				i := int(n*7919) % len(tokens)
				sent := time.Now().UnixNano()
				req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
				req.Header.Set("Authorization", "Bearer "+tokens[i])
				resp, err := client.Do(req)
				if err != nil {
					wrong.Add(1)
					continue
				}
				resp.Body.Close()
				var bad bool
				switch {
				case i >= valid: // never issued
					bad = resp.StatusCode != http.StatusUnauthorized
				case !isRevoked(i):
					bad = resp.StatusCode != http.StatusOK
				default:
					at := revokedAt.Load()
					mustReject := at != 0 && sent > at+int64(cacheTTL+revokeSlop)
					bad = resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnauthorized ||
						mustReject && resp.StatusCode == http.StatusOK
				}
				if bad {
					wrong.Add(1)
					mu.Lock()
					failures = append(failures, fmt.Sprintf("token %d: %d", i, resp.StatusCode))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	assert.Zero(t, wrong.Load(), "wrong verdicts: %v", failures)

	st := v.Stats()
	lifetimes := int64(elapsed/cacheTTL) + 1
	upstream := as.Requests()
	t.Logf("%d requests in %v (%.0f/s); %d upstream requests for %d tokens over %d cache lifetimes; stats %+v",
		requests, elapsed.Round(time.Millisecond), float64(requests)/elapsed.Seconds(), upstream, len(tokens), lifetimes, st)
	assert.LessOrEqual(t, upstream, int64(len(tokens))*lifetimes)
	assert.Equal(t, uint64(upstream), st.UpstreamRequests)
	assert.Equal(t, uint64(requests), st.Verifications)

	srv.Close()
	client.CloseIdleConnections()
	require.NoError(t, v.Close())
	as.Close()
}

// TestCloseReleasesConnections checks that Close leaves no connection
// goroutines of the verifier's own client behind.
func TestCloseReleasesConnections(t *testing.T) {
	as := introspectiontest.NewServer()
	defer as.Close()
	// The server stays up: only Close can end the connections.
	before := goleak.IgnoreCurrent()
	v, err := NewVerifier(Settings{IntrospectionURL: as.IntrospectionURL,
		ClientID: introspectiontest.ClientID, ClientSecret: introspectiontest.ClientSecret})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { _, _ = v.Verify(context.Background(), as.Issue(introspectiontest.TokenOptions{})) })
	}
	wg.Wait()
	require.NoError(t, v.Close())
	goleak.VerifyNone(t, before)
}

// TestCloseAfterShutdownWaitsForSharedRequests follows the shutdown order
// the docs give: the server's Shutdown, then Close. A shared request that
// outlives the caller who started it (the client went away) may still run
// then; Close returns only once it has ended, its answer stored, and no
// goroutine of the verifier is left, while the authorization server stays
// up.
func TestCloseAfterShutdownWaitsForSharedRequests(t *testing.T) {
	as := introspectiontest.NewServer()
	defer as.Close()
	as.SetFault(introspectiontest.Fault{Latency: 100 * time.Millisecond})
	tok := as.Issue(introspectiontest.TokenOptions{})
	before := goleak.IgnoreCurrent()

	mc := newMapCache(time.Now)
	v, err := NewVerifier(Settings{IntrospectionURL: as.IntrospectionURL,
		ClientID: introspectiontest.ClientID, ClientSecret: introspectiontest.ClientSecret,
		CacheTTL: time.Minute, Cache: mc})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	hs := &http.Server{Handler: RequireBearerToken(v, nil)(whoami)}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()

	// A client that gives up while the authorization server is thinking.
	tr := &http.Transport{}
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ln.Addr().String(), nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	go func() {
		for as.Requests() == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	_, err = (&http.Client{Transport: tr}).Do(req)
	require.ErrorIs(t, err, context.Canceled)
	tr.CloseIdleConnections()

	require.NoError(t, hs.Shutdown(context.Background()))
	require.ErrorIs(t, <-served, http.ErrServerClosed)
	require.NoError(t, v.Close())
	assert.Equal(t, 1, mc.len(), "the shared request had ended, its answer stored, when Close returned")
	assert.Equal(t, uint64(1), v.Stats().UpstreamRequests)
	goleak.VerifyNone(t, before)
}

// TestVerifyAfterClose checks what the docs say of Verify after Close: it
// still works, opening a new connection, which a later Close releases.
func TestVerifyAfterClose(t *testing.T) {
	as := introspectiontest.NewServer()
	defer as.Close()
	good := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})
	before := goleak.IgnoreCurrent()
	v, err := NewVerifier(Settings{IntrospectionURL: as.IntrospectionURL,
		ClientID: introspectiontest.ClientID, ClientSecret: introspectiontest.ClientSecret})
	require.NoError(t, err)
	for round := range 2 {
		got, err := v.Verify(context.Background(), good)
		require.NoError(t, err, "round %d", round)
		assert.Equal(t, "alice", got.Subject)
		_, err = v.Verify(context.Background(), "never-issued")
		assert.ErrorIs(t, err, ErrTokenInactive, "round %d", round)
		require.NoError(t, v.Close())
	}
	require.NoError(t, v.Close(), "Close again is harmless")
	assert.Equal(t, int64(4), as.Requests())
	goleak.VerifyNone(t, before)
}
