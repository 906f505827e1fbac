package introspection

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// memoryObserver is a recordingObserver that is a MemoryObserver: it
// records each VerifyFromMemory as "VerifyFromMemory hit accepted none",
// and the call as lost when its context is not the caller's.
type memoryObserver struct {
	*recordingObserver
}

func (o memoryObserver) VerifyFromMemory(ctx context.Context, r CacheResult, e VerifyEvent) {
	o.record(ctx, "VerifyFromMemory", string(r)+" "+string(e.Outcome)+" "+e.Reason)
	if ctx.Value(verificationKey{}) != nil {
		o.mu.Lock()
		o.lost = append(o.lost, "VerifyFromMemory after a VerifyStart")
		o.mu.Unlock()
	}
}

// TestMemoryObserverIsToldOfAHitByOneCall shows what a MemoryObserver is
// told: a verification that the built-in cache answers, with a hit or a
// negative hit, by one VerifyFromMemory with the caller's context and no
// VerifyStart; every other verification as any Observer is, starting with
// VerifyStart once the lookup in memory found nothing, or, refused before
// it looked, right before its VerifyEnd.
func TestMemoryObserverIsToldOfAHitByOneCall(t *testing.T) {
	clock := newFakeClock()
	as := newAS(t, clock)
	obs := memoryObserver{&recordingObserver{}}
	v := staleVerifier(t, as, clock, func(s *Settings) {
		s.NegativeCacheTTL = time.Minute
		s.Observer = obs
	})
	tok := as.Issue(introspectiontest.TokenOptions{Lifetime: 24 * time.Hour})
	ctx := context.Background()
	url := "UpstreamStart POST " + as.IntrospectionURL
	verify := func(tok string) {
		t.Helper()
		_, _ = v.Verify(ctx, tok)
		waitUntilIdle(t, v)
	}

	tests := []struct {
		name  string
		token string
		setup func()
		want  []string
	}{
		{"miss", tok, nil, []string{"VerifyStart", "CacheLookup miss", url, "UpstreamEnd 200", "VerifyEnd accepted none"}},
		{"hit", tok, nil, []string{"VerifyFromMemory hit accepted none"}},
		{"inactive", "unknown", nil, []string{"VerifyStart", "CacheLookup miss", url, "UpstreamEnd 200", "VerifyEnd rejected inactive"}},
		{"negative hit", "unknown", nil, []string{"VerifyFromMemory negative rejected inactive"}},
		{"malformed", "not valid!", nil, []string{"VerifyStart", "VerifyEnd rejected malformed_token"}},
		{"stale", tok, func() {
			clock.Advance(staleTestTTL + time.Second)
			down(as)
		}, []string{"VerifyStart", "CacheLookup miss", url, "UpstreamEnd 503 status", "CacheLookup stale", "VerifyEnd accepted none"}},
	}
	for _, tc := range tests {
		if tc.setup != nil {
			tc.setup()
		}
		verify(tc.token)
		assert.Equal(t, tc.want, obs.seen(), tc.name)
	}
	assert.Empty(t, obs.lostContexts(), "each event with the context it belongs to")
	st := v.Stats()
	assert.Equal(t, uint64(2), st.CacheHits, "hit and negative")
	assert.Equal(t, uint64(3), st.Accepted)
}

// TestMemoryObserverWithTwoTiers shows that with a caller's Cache, a hit
// of the local tier is told by VerifyFromMemory, and a hit of the shared
// Cache, which its request reads, as any verification with a request.
func TestMemoryObserverWithTwoTiers(t *testing.T) {
	clock := newFakeClock()
	as := newAS(t, clock)
	obs := memoryObserver{&recordingObserver{}}
	mc := newMapCache(clock.Now)
	v := newVerifier(t, as.IntrospectionURL, clock, func(s *Settings) {
		s.Cache = mc
		s.CacheTTL = time.Hour
		s.LocalCacheTTL = time.Minute
		s.Observer = obs
	})
	tok := as.Issue(introspectiontest.TokenOptions{Lifetime: 24 * time.Hour})
	verify := func() {
		t.Helper()
		_, err := v.Verify(context.Background(), tok)
		require.NoError(t, err)
		waitUntilIdle(t, v)
	}
	url := "UpstreamStart POST " + as.IntrospectionURL
	verify()
	assert.ElementsMatch(t, []string{"VerifyStart", "CacheCallStart get", "CacheCallEnd get ok", url, "UpstreamEnd 200",
		"CacheLookup miss", "VerifyEnd accepted none", "CacheCallStart set", "CacheCallEnd set ok"}, obs.seen(),
		"the store may come before the verdict or after it")
	verify()
	assert.Equal(t, []string{"VerifyFromMemory hit accepted none"}, obs.seen(), "the local tier")
	clock.Advance(2 * time.Minute) // the local entry ends, the shared one stays
	verify()
	assert.Equal(t, []string{"VerifyStart", "CacheCallStart get", "CacheCallEnd get ok", "CacheLookup hit", "VerifyEnd accepted none"},
		obs.seen(), "the shared Cache")
	assert.Empty(t, obs.lostContexts())
}

// TestMemoryObserverSeesAFailedHit shows that a verification that memory
// answered and that then failed (a panic in Settings.ScopeMatcher) is
// told with its failure.
func TestMemoryObserverSeesAFailedHit(t *testing.T) {
	clock := newFakeClock()
	as := newAS(t, clock)
	obs := memoryObserver{&recordingObserver{}}
	panicking := false
	v := staleVerifier(t, as, clock, func(s *Settings) {
		s.Observer = obs
		s.RequiredScopes = []string{"mcp:read"}
		s.ScopeMatcher = func(granted, required string) bool {
			if panicking {
				panic("matcher failed")
			}
			return granted == "mcp" && required == "mcp:read"
		}
	})
	tok := as.Issue(introspectiontest.TokenOptions{Lifetime: 24 * time.Hour, Scopes: []string{"mcp"}})
	_, err := v.Verify(context.Background(), tok)
	require.NoError(t, err)
	waitUntilIdle(t, v)
	obs.seen()
	panicking = true
	_, err = v.Verify(context.Background(), tok)
	require.ErrorIs(t, err, ErrIntrospectionFailed)
	assert.Equal(t, []string{"VerifyFromMemory hit failed panic"}, obs.seen())
}

// TestMemoryObserverPanicChangesNoVerdict shows that a panic in
// VerifyFromMemory is recovered, counted and logged, and changes no
// verdict nor count.
func TestMemoryObserverPanicChangesNoVerdict(t *testing.T) {
	run := func(obs Observer) ([]string, Stats, *recordingHandler) {
		srv := jsonServer(t, http.StatusOK, `{"active":true}`)
		logs := &recordingHandler{}
		v := newVerifier(t, srv.URL, nil, func(s *Settings) {
			s.CacheTTL = time.Minute
			s.Observer = obs
			s.Logger = slog.New(logs)
		})
		var verdicts []string
		for range 3 {
			_, err := v.Verify(context.Background(), "tok")
			verdicts = append(verdicts, fmt.Sprint(err))
			waitUntilIdle(t, v)
		}
		return verdicts, v.Stats(), logs
	}
	want, wantStats, _ := run(nil)
	got, st, logs := run(memoryObserver{&recordingObserver{panicIn: "VerifyFromMemory"}})
	assert.Equal(t, want, got)
	assert.Equal(t, uint64(2), st.Panics, "the two hits")
	st.Panics = 0
	assert.Equal(t, wantStats, st)
	n := 0
	for _, r := range logs.matching("recovered from a panic") {
		if in, _ := attr(r, "in"); in == "Observer.VerifyFromMemory" {
			n++
		}
	}
	assert.Equal(t, 2, n)
}

// TestMemoryObserverHitsThatMayWaitAreObserved shows which hits checked
// by the middleware are told by VerifyFromMemory: those whose check calls
// nothing that may wait. A hit whose check reads the request's operation
// (MiddlewareOptions.Operation), or claims a DPoP proof in a caller's
// ReplayStore, is observed from VerifyStart on, so that the wait is in
// the verification's context; with the built-in store, a DPoP hit is told
// by VerifyFromMemory.
func TestMemoryObserverHitsThatMayWaitAreObserved(t *testing.T) {
	observed := []string{"VerifyStart", "CacheLookup hit", "VerifyEnd accepted none"}
	fromMemory := []string{"VerifyFromMemory hit accepted none"}
	tests := []struct {
		name  string
		store ReplayStore
		opts  *MiddlewareOptions
		dpop  bool
		want  []string
	}{
		{"static scopes", nil, &MiddlewareOptions{Scopes: []string{"mcp"}}, false, fromMemory},
		{"an operation read from the request", nil, &MiddlewareOptions{
			Operation: func(*http.Request) (Operation, error) { return Operation{Name: "call"}, nil }}, false, observed},
		{"a DPoP proof, the built-in store", nil, nil, true, fromMemory},
		{"a DPoP proof, a caller's store", NewMemoryReplayStore(0), nil, true, fromMemory},
		{"a DPoP proof, a caller's store of its own", replayStoreFunc(func(context.Context, string, time.Duration) (bool, error) {
			return true, nil
		}), nil, true, observed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obs := memoryObserver{&recordingObserver{}}
			d := newDPoPSetup(t, func(s *Settings) {
				s.Observer = obs
				s.CacheTTL = time.Hour
				s.ReplayStore = tc.store
			})
			h := RequireBearerToken(d.v, tc.opts)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusNoContent)
			}))
			for i := range 2 {
				r := dpopRequest("POST", "Bearer "+d.unbound)
				if tc.dpop {
					r = dpopRequest("POST", "DPoP "+d.bound, d.key.proof(t, "POST", dpopTarget, d.bound, nil))
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				require.Equal(t, http.StatusNoContent, w.Code, "request %d", i)
				waitUntilIdle(t, d.v)
				if i == 0 {
					obs.seen() // the miss
				}
			}
			assert.Equal(t, tc.want, obs.seen())
			assert.Empty(t, obs.lostContexts())
		})
	}
}
