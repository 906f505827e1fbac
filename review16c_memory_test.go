package introspection

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// verdictTally counts, by outcome, what a memoryObserver was told: each
// VerifyEnd and each VerifyFromMemory.
func verdictTally(events []string) map[Outcome]uint64 {
	out := map[Outcome]uint64{}
	for _, e := range events {
		f := strings.Fields(e)
		switch f[0] {
		case "VerifyEnd":
			out[Outcome(f[1])]++
		case "VerifyFromMemory":
			out[Outcome(f[2])]++
		}
	}
	return out
}

// TestReview16cMemoryObserverToldOfEveryVerdictOnceAsStatsCounts serves
// DPoP-bound and plain tokens through the middleware, a cache in front,
// on each path where the hit's own checks decide: possession, a replayed
// proof, a failing replay store, a per-tool scope missing, a ScopeMatcher
// that panics or calls runtime.Goexit. Each verification is told exactly
// once (one VerifyEnd or one VerifyFromMemory), every VerifyStart is
// followed by its VerifyEnd, and the verdicts told match Stats. It pins
// a behaviour that passes on main.
func TestReview16cMemoryObserverToldOfEveryVerdictOnceAsStatsCounts(t *testing.T) {
	obs := memoryObserver{&recordingObserver{}}
	var storeDown, matcherPanics, matcherExits bool
	var mu sync.Mutex
	claimed := map[string]bool{}
	d := newDPoPSetup(t, func(s *Settings) {
		s.Observer = obs
		s.CacheTTL = time.Hour
		s.RequiredScopes = []string{"mcp"}
		s.ScopeMatcher = func(granted, required string) bool {
			switch {
			case matcherPanics:
				panic("matcher")
			case matcherExits:
				runtime.Goexit()
			}
			return false
		}
		s.ReplayStore = replayStoreFunc(func(_ context.Context, key string, _ time.Duration) (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			if storeDown {
				return false, errors.New("down")
			}
			first := !claimed[key]
			claimed[key] = true
			return first, nil
		})
	})
	tool := RequireBearerToken(d.v, &MiddlewareOptions{Realm: "mcp", Scopes: []string{"mcp", "admin"}})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	serve := func(h http.Handler, r *http.Request) {
		done := make(chan struct{})
		go func() { // a Goexit ends this goroutine, not the test's
			defer close(done)
			h.ServeHTTP(httptest.NewRecorder(), r)
		}()
		<-done
		waitUntilIdle(t, d.v)
	}
	proof := func(tok string) string { return d.key.proof(t, "GET", dpopTarget, tok, nil) }
	replayed := proof(d.bound)

	steps := []struct {
		name string
		run  func()
	}{
		{"bound, miss", func() { serve(d.h, dpopRequest("GET", "DPoP "+d.bound, replayed)) }},
		{"bound, hit", func() { serve(d.h, dpopRequest("GET", "DPoP "+d.bound, proof(d.bound))) }},
		{"bound, hit, proof replayed", func() { serve(d.h, dpopRequest("GET", "DPoP "+d.bound, replayed)) }},
		{"bound, hit, as Bearer", func() { serve(d.h, dpopRequest("GET", "Bearer "+d.bound)) }},
		{"bound, hit, store down", func() {
			storeDown = true
			serve(d.h, dpopRequest("GET", "DPoP "+d.bound, proof(d.bound)))
			storeDown = false
		}},
		{"unbound, miss", func() { serve(d.h, dpopRequest("GET", "Bearer "+d.unbound)) }},
		{"unbound, hit, tool scope missing", func() { serve(tool, dpopRequest("GET", "Bearer "+d.unbound)) }},
		{"unbound, hit, matcher panics", func() {
			matcherPanics = true
			serve(tool, dpopRequest("GET", "Bearer "+d.unbound))
			matcherPanics = false
		}},
		{"unbound, hit, matcher exits", func() {
			matcherExits = true
			serve(tool, dpopRequest("GET", "Bearer "+d.unbound))
			matcherExits = false
		}},
		{"unknown, miss", func() { serve(d.h, dpopRequest("GET", "Bearer unknown")) }},
		{"malformed", func() { serve(d.h, dpopRequest("GET", "Bearer a,b")) }},
	}
	var events []string
	for _, s := range steps {
		before := d.v.Stats()
		s.run()
		got := obs.seen()
		events = append(events, got...)
		after := d.v.Stats()
		told := verdictTally(got)
		assert.Equal(t, after.Verifications-before.Verifications, told[OutcomeAccepted]+told[OutcomeRejected]+
			told[OutcomeInsufficientScope]+told[OutcomeFailed]+told[OutcomeCanceled], "%s: told once: %v", s.name, got)
		assert.Equal(t, after.Failed-before.Failed, told[OutcomeFailed], "%s: %v", s.name, got)
		assert.Equal(t, after.InsufficientScope-before.InsufficientScope, told[OutcomeInsufficientScope], "%s: %v", s.name, got)
		assert.Equal(t, after.Accepted-before.Accepted, told[OutcomeAccepted], "%s: %v", s.name, got)
		assert.Equal(t, after.Rejected-before.Rejected, told[OutcomeRejected], "%s: %v", s.name, got)
		starts, ends := 0, 0
		for _, e := range got {
			switch strings.Fields(e)[0] {
			case "VerifyStart":
				starts++
			case "VerifyEnd":
				ends++
			}
		}
		assert.Equal(t, starts, ends, "%s: %v", s.name, got)
	}
	assert.Empty(t, obs.lostContexts())
	assert.Equal(t, uint64(7), d.v.Stats().CacheHits, "the hits")
	// The three with a DPoP proof claim it in the caller's ReplayStore,
	// which may wait: they are observed from VerifyStart on.
	assert.Equal(t, 4, strings.Count(strings.Join(events, "\n"), "VerifyFromMemory"), "the other hits")
}

// TestReview16cReplayStoreOfAHitRunsInAVerification presents a DPoP-bound
// token a second time, a hit: its proof is claimed in the caller's
// ReplayStore, a call that may go over the network (a shared store), which
// is not memory answering. The MemoryObserver contract says a
// verification that memory answers "takes far less time than a request"
// and so needs no context of its own; this one runs a caller's store, so
// the store's call must run in a context that VerifyStart returned, as it
// did before, or the time spent in the store shows in no span.
func TestReview16cReplayStoreOfAHitRunsInAVerification(t *testing.T) {
	obs := memoryObserver{&recordingObserver{}}
	var mu sync.Mutex
	var inVerification []bool
	d := newDPoPSetup(t, func(s *Settings) {
		s.Observer = obs
		s.CacheTTL = time.Hour
		s.ReplayStore = replayStoreFunc(func(ctx context.Context, _ string, _ time.Duration) (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			inVerification = append(inVerification, ctx.Value(verificationKey{}) != nil)
			return true, nil
		})
	})
	for range 2 {
		w := d.serve(dpopRequest("GET", "DPoP "+d.bound, d.key.proof(t, "GET", dpopTarget, d.bound, nil)))
		require.Equal(t, http.StatusNoContent, w.Code)
		waitUntilIdle(t, d.v)
	}
	require.Equal(t, uint64(1), d.v.Stats().CacheHits)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []bool{true, true}, inVerification, "the miss's claim and the hit's")
}
