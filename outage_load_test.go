package introspection

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// tokenClass is what the authorization server knows of a token in the
// outage load test.
type tokenClass int

const (
	longLived    tokenClass = iota // active for a day
	shortLived                     // its exp comes during the outage
	revokedEarly                   // revoked before the outage, once cached
	neverIssued                    // unknown to the server: inactive
	unseen                         // issued, but first verified during the outage
	tokenClasses
)

var tokenClassNames = [tokenClasses]string{"long-lived", "short-lived", "revoked", "never issued", "unseen"}

func (c tokenClass) String() string { return tokenClassNames[c] }

// outcome is what one call of Verify gave in the outage load test.
type outcome string

const (
	outAccepted    outcome = "accepted"
	outStale       outcome = "accepted stale"
	outInactive    outcome = "inactive"
	outTransport   outcome = "failed: transport"
	outUnavailable outcome = "failed: unavailable"
)

// The outage load test's settings: answers are fresh for outageTTL and may
// be served stale for outageStale more; the breaker opens after
// outageThreshold failures for an interval of outageBackoff, jittered up
// to a fifth longer.
const (
	outageTTL       = time.Minute
	outageStale     = 30 * time.Minute
	outageThreshold = 5
	outageBackoff   = time.Minute
	outageWorkers   = 100
)

// outageOutcome classifies the result of Verify: an unavailable failure
// counts as one only with a RetryAfter within the breaker's interval.
func outageOutcome(t *AccessToken, err error) outcome {
	switch {
	case err == nil && t.Stale:
		return outStale
	case err == nil:
		return outAccepted
	case errors.Is(err, ErrTokenInactive):
		return outInactive
	}
	var ie *IntrospectionError
	if errors.As(err, &ie) && errors.Is(err, ErrIntrospectionFailed) {
		switch {
		case ie.Kind == FailureTransport:
			return outTransport
		case ie.Kind == FailureUnavailable && ie.RetryAfter > 0 && ie.RetryAfter <= outageBackoff+outageBackoff/breakerJitter:
			return outUnavailable
		}
	}
	return outcome(fmt.Sprintf("unexpected error %q of kind %q", err, kindOf(err)))
}

// switchableServer is an authorization server behind a front that can be
// stopped, refusing connections, and started again on the same address.
type switchableServer struct {
	proxy *httputil.ReverseProxy
	addr  string

	mu    sync.Mutex // guards front
	front *httptest.Server
}

func newSwitchableServer(t *testing.T, as *introspectiontest.Server) *switchableServer {
	t.Helper()
	target, err := url.Parse(as.URL)
	require.NoError(t, err)
	tr := &http.Transport{MaxIdleConnsPerHost: outageWorkers}
	t.Cleanup(tr.CloseIdleConnections)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = tr
	s := &switchableServer{proxy: proxy, front: httptest.NewServer(proxy)}
	s.addr = s.front.Listener.Addr().String()
	t.Cleanup(s.stop)
	return s
}

// introspectionURL is the server's endpoint, the same across restarts.
func (s *switchableServer) introspectionURL() string {
	return "http://" + s.addr + introspectiontest.IntrospectionPath
}

// stop closes the front: connections to it are refused.
func (s *switchableServer) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.front.Close()
}

// restart serves again on the same address.
func (s *switchableServer) restart(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp", s.addr)
	require.NoError(t, err, "the same address again")
	front := httptest.NewUnstartedServer(s.proxy)
	_ = front.Listener.Close()
	front.Listener = l
	front.Start()
	s.mu.Lock()
	s.front = front
	s.mu.Unlock()
}

// outagePhase is a stretch of the outage load test: what happens before
// it, its requests, and what each class of token may get in it.
type outagePhase struct {
	name     string
	before   func(t *testing.T)
	requests int
	unseen   bool // the unseen tokens are verified too
	// want lists what each class may get, with and without StaleIfError.
	withStale, without map[tokenClass][]outcome
	// server is the number of requests the authorization server gets in
	// the phase, or -1 when only the total since the restart is counted.
	server int64
	// minTries and maxTries bound the requests the verifier tries to send.
	minTries, maxTries int64
	breaker            BreakerState // at the end of the phase
	// staleServed says how many of the phase's verdicts are stale, with
	// StaleIfError: none, all those given without the server (during
	// the outage), or between those flagged Stale and those plus the
	// inactive ones (while the probe runs after the restart).
	staleServed staleRule
}

// staleRule is how many of a phase's verdicts are stale.
type staleRule int

const (
	staleNone staleRule = iota
	staleAll
	staleSome
)

// TestOutageLoad drives 10,000 calls of Verify from 100 goroutines over 200
// tokens while the authorization server is up, stopped (its address
// refuses connections) and started again on the same address, with
// StaleIfError (the built-in cache and a shared one) and without it. The
// phases are separated, and the clock is Settings.Now, moved between them,
// so that every verdict is known. Tokens seen before the outage keep
// working during it with StaleIfError, never past their exp nor once the
// server called them inactive; without it every call during the outage
// fails, with FailureUnavailable once the breaker is open, which keeps the
// server alone; after the restart the breaker closes, every verdict is
// right again, and no goroutine is left running.
func TestOutageLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	tests := []struct {
		name      string
		stale     bool
		withCache func(*Settings)
	}{
		{"StaleIfError, built-in cache", true, func(*Settings) {}},
		{"StaleIfError, shared cache", true, func(s *Settings) { s.Cache = newMapCache(s.Now) }},
		{"no StaleIfError", false, func(*Settings) {}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := goleak.IgnoreCurrent()
			t.Cleanup(func() { goleak.VerifyNone(t, before) }) // after every other cleanup
			runOutageLoad(t, tc.stale, tc.withCache)
		})
	}
}

func runOutageLoad(t *testing.T, stale bool, withCache func(*Settings)) {
	const (
		long, short, revoked, unknown, fresh = 100, 25, 25, 25, 25
		seen                                 = long + short + revoked + unknown
		all                                  = seen + fresh
	)
	clock := newFakeClock()
	as := newAS(t, clock)
	srv := newSwitchableServer(t, as)

	type classed struct {
		class tokenClass
		value string
	}
	var tokens []classed
	issue := func(n int, class tokenClass, lifetime time.Duration) {
		for range n {
			tokens = append(tokens, classed{class, as.Issue(introspectiontest.TokenOptions{
				Subject: "user", Scopes: []string{"mcp:tools"}, Lifetime: lifetime})})
		}
	}
	issue(long, longLived, 24*time.Hour)
	// Cached at the second phase until the outage begins, then served
	// stale until exp.
	issue(short, shortLived, 2*outageTTL+30*time.Second)
	issue(revoked, revokedEarly, 24*time.Hour)
	for i := range unknown {
		tokens = append(tokens, classed{neverIssued, fmt.Sprintf("never-issued-%d", i)})
	}
	issue(fresh, unseen, 24*time.Hour) // last: the phases before the outage leave them out

	tr := &http.Transport{MaxIdleConnsPerHost: outageWorkers}
	t.Cleanup(tr.CloseIdleConnections)
	u := &upstream{rt: tr}
	v := newVerifier(t, srv.introspectionURL(), clock, func(s *Settings) {
		s.HTTPClient = &http.Client{Transport: u}
		s.RequiredScopes = []string{"mcp:tools"}
		s.CacheTTL = outageTTL
		s.NegativeCacheTTL = outageTTL
		if stale {
			s.StaleIfError = outageStale
		}
		s.BreakerThreshold = outageThreshold
		s.BreakerMinBackoff = outageBackoff
		s.BreakerMaxBackoff = 4 * outageBackoff
		withCache(s)
	})

	// The server's requests, and those tried, before the restart.
	var restartedAt, triesAtRestart int64
	oneOf := func(o ...outcome) []outcome { return o }
	down := oneOf(outTransport, outUnavailable)
	phases := []outagePhase{{
		name:     "server up",
		requests: 2000,
		withStale: map[tokenClass][]outcome{longLived: oneOf(outAccepted), shortLived: oneOf(outAccepted),
			revokedEarly: oneOf(outAccepted), neverIssued: oneOf(outInactive)},
		server: seen, minTries: seen, maxTries: seen, breaker: BreakerClosed,
	}, {
		name: "revoked, the cached answers ended",
		before: func(*testing.T) {
			for _, tok := range tokens {
				if tok.class == revokedEarly {
					as.Revoke(tok.value)
				}
			}
			clock.Advance(outageTTL)
		},
		requests: 2000,
		withStale: map[tokenClass][]outcome{longLived: oneOf(outAccepted), shortLived: oneOf(outAccepted),
			revokedEarly: oneOf(outInactive), neverIssued: oneOf(outInactive)},
		server: seen, minTries: seen, maxTries: seen, breaker: BreakerClosed,
	}, {
		name: "server stopped, the cached answers ended",
		before: func(*testing.T) {
			srv.stop()
			clock.Advance(outageTTL)
		},
		requests: 2500,
		unseen:   true,
		withStale: map[tokenClass][]outcome{longLived: oneOf(outStale), shortLived: oneOf(outStale),
			revokedEarly: oneOf(outInactive), neverIssued: oneOf(outInactive), unseen: down},
		without: map[tokenClass][]outcome{longLived: down, shortLived: down, revokedEarly: down,
			neverIssued: down, unseen: down},
		// One request for each failure until the breaker opens, and one
		// for each call that was already sending then.
		server: 0, minTries: outageThreshold, maxTries: outageThreshold + outageWorkers - 1,
		breaker: BreakerOpen, staleServed: staleAll,
	}, {
		name:     "server stopped, the short-lived tokens at their exp",
		before:   func(*testing.T) { clock.Advance(30 * time.Second) }, // the breaker's interval is longer
		requests: 1500,
		unseen:   true,
		withStale: map[tokenClass][]outcome{longLived: oneOf(outStale), shortLived: oneOf(outUnavailable),
			revokedEarly: oneOf(outInactive), neverIssued: oneOf(outInactive), unseen: oneOf(outUnavailable)},
		without: map[tokenClass][]outcome{longLived: oneOf(outUnavailable), shortLived: oneOf(outUnavailable),
			revokedEarly: oneOf(outUnavailable), neverIssued: oneOf(outUnavailable), unseen: oneOf(outUnavailable)},
		server: 0, minTries: 0, maxTries: 0, breaker: BreakerOpen, staleServed: staleAll,
	}, {
		name: "server restarted, the breaker's interval over",
		before: func(t *testing.T) {
			restartedAt, triesAtRestart = as.Requests(), u.calls.Load()
			srv.restart(t)
			clock.Advance(outageBackoff) // past the interval and its jitter
		},
		requests: 500,
		unseen:   true,
		// While the one probe runs, the other calls fail at once, or get
		// a stale answer.
		withStale: map[tokenClass][]outcome{longLived: oneOf(outAccepted, outStale),
			shortLived: oneOf(outInactive, outUnavailable), revokedEarly: oneOf(outInactive),
			neverIssued: oneOf(outInactive), unseen: oneOf(outAccepted, outUnavailable)},
		without: map[tokenClass][]outcome{longLived: oneOf(outAccepted, outUnavailable),
			shortLived: oneOf(outInactive, outUnavailable), revokedEarly: oneOf(outInactive, outUnavailable),
			neverIssued: oneOf(outInactive, outUnavailable), unseen: oneOf(outAccepted, outUnavailable)},
		server: -1, minTries: 1, maxTries: all, breaker: BreakerClosed, staleServed: staleSome,
	}, {
		name:     "recovered",
		requests: 1500,
		unseen:   true,
		withStale: map[tokenClass][]outcome{longLived: oneOf(outAccepted), shortLived: oneOf(outInactive),
			revokedEarly: oneOf(outInactive), neverIssued: oneOf(outInactive), unseen: oneOf(outAccepted)},
		server: -1, minTries: 0, maxTries: all, breaker: BreakerClosed,
	}}
	for i := range phases {
		if phases[i].without == nil { // the server answers: StaleIfError changes nothing
			phases[i].without = phases[i].withStale
		}
	}

	var total [tokenClasses]map[outcome]int
	var requests int
	for c := range total {
		total[c] = make(map[outcome]int)
	}
	for _, ph := range phases {
		if ph.before != nil {
			ph.before(t)
		}
		scope := tokens[:seen]
		if ph.unseen {
			scope = tokens
		}
		want := ph.without
		if stale {
			want = ph.withStale
		}
		st0, server0, tries0 := v.Stats(), as.Requests(), u.calls.Load()

		var (
			next     atomic.Int64
			mu       sync.Mutex // guards got and wrong
			got      [tokenClasses]map[outcome]int
			wrong    []string
			wg       sync.WaitGroup
			ctx      = context.Background()
			allowed  = func(c tokenClass, o outcome) bool { return slices.Contains(want[c], o) }
			maxWrong = 20
		)
		for c := range got {
			got[c] = make(map[outcome]int)
		}
		for range outageWorkers {
			wg.Go(func() {
				for {
					k := next.Add(1) - 1
					if k >= int64(ph.requests) {
						return
					}
					tok := scope[int(k*7919)%len(scope)] // 7919 is prime: every token within len(scope) calls
					o := outageOutcome(v.Verify(ctx, tok.value))
					mu.Lock()
					got[tok.class][o]++
					if !allowed(tok.class, o) && len(wrong) < maxWrong {
						wrong = append(wrong, fmt.Sprintf("%s token: %s, want one of %q", tok.class, o, want[tok.class]))
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		waitUntilIdle(t, v)
		requests += ph.requests

		st := v.Stats()
		server, tries := as.Requests()-server0, u.calls.Load()-tries0
		t.Logf("%s: %s; %d requests tried, %d served; breaker %s", ph.name, describeOutcomes(got[:]), tries, server, st.Breaker)
		assert.Empty(t, wrong, "%s: wrong verdicts", ph.name)
		var calls, stales, inactives int
		for c := range got {
			if !ph.unseen && tokenClass(c) == unseen {
				continue
			}
			n := 0
			for o, k := range got[c] {
				assert.True(t, allowed(tokenClass(c), o), "%s: %s token: %d times %s", ph.name, tokenClass(c), k, o)
				n += k
				total[c][o] += k
			}
			assert.Positive(t, n, "%s: every %s token is verified", ph.name, tokenClass(c))
			calls += n
			stales += got[c][outStale]
			inactives += got[c][outInactive]
		}
		assert.Equal(t, ph.requests, calls, ph.name)
		if ph.server >= 0 {
			assert.Equal(t, ph.server, server, "%s: requests the server got", ph.name)
		}
		assert.GreaterOrEqual(t, tries, ph.minTries, "%s: requests tried", ph.name)
		assert.LessOrEqual(t, tries, ph.maxTries, "%s: requests tried", ph.name)
		assert.Equal(t, ph.breaker, st.Breaker, ph.name)
		served := int(st.StaleServed - st0.StaleServed)
		switch {
		case !stale || ph.staleServed == staleNone:
			assert.Zero(t, served, "%s: stale verdicts", ph.name)
		case ph.staleServed == staleAll:
			assert.Equal(t, stales+inactives, served, "%s: stale verdicts", ph.name)
		default:
			assert.GreaterOrEqual(t, served, stales, "%s: stale verdicts", ph.name)
			assert.LessOrEqual(t, served, stales+inactives, "%s: stale verdicts", ph.name)
		}
	}

	st := v.Stats()
	assert.Equal(t, 10_000, requests)
	assert.Equal(t, uint64(requests), st.Verifications)
	count := func(outcomes ...outcome) (n uint64) {
		for c := range total {
			for _, o := range outcomes {
				n += uint64(total[c][o])
			}
		}
		return n
	}
	assert.Equal(t, count(outAccepted, outStale), st.Accepted)
	assert.Equal(t, count(outInactive), st.Rejected)
	assert.Equal(t, count(outTransport, outUnavailable), st.Failed)
	assert.Equal(t, uint64(1), st.BreakerOpened, "opened once, closed by the first probe")
	// After the restart, each token is asked about once, the probe
	// included: the clock stood still since.
	assert.Equal(t, int64(all), as.Requests()-restartedAt, "requests the server got since the restart")
	assert.Equal(t, int64(all), u.calls.Load()-triesAtRestart, "requests tried since the restart")
	if stale {
		assert.Positive(t, count(outStale))
	}
}

// describeOutcomes lists the outcomes of each class of token.
func describeOutcomes(got []map[outcome]int) string {
	var b strings.Builder
	for c, m := range got {
		if len(m) == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s:", tokenClass(c))
		for _, o := range slices.Sorted(maps.Keys(m)) {
			fmt.Fprintf(&b, " %s %d", o, m[o])
		}
	}
	return b.String()
}
