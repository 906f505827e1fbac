package introspection

import (
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMCPOperationLargestMaxBodySize checks that MCPScopes.MaxBodySize
// accepts every positive value it does not refuse at construction, up to
// math.MaxInt64 (no bound of its own, for an SDK such as mcp-go that sets
// none): the OperationFunc reads a body as with any other bound, whatever
// length the request states, and never panics.
func TestMCPOperationLargestMaxBodySize(t *testing.T) {
	body := callTool(`"echo"`)
	for _, tc := range []struct {
		name   string
		max    int64
		stated int64
	}{
		{"MaxInt64-1, unknown length", math.MaxInt64 - 1, -1},
		{"MaxInt64, unknown length", math.MaxInt64, -1},
		{"MaxInt64, length stated", math.MaxInt64, int64(len(body))},
		{"MaxInt64, MaxInt64 stated", math.MaxInt64, math.MaxInt64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := testMCPScopes()
			m.MaxBodySize = tc.max
			op := newMCPOperation(t, m)
			r := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(body))
			r.ContentLength = tc.stated
			var (
				got Operation
				err error
			)
			require.NotPanics(t, func() { got, err = op(r) })
			require.NoError(t, err)
			assert.Equal(t, opEcho, got)
		})
	}
}

// TestScopeMatcherAskedOncePerPair checks the promise of ScopeMatcher's
// doc: in one check it is asked at most once per granted and required
// pair, also when a scope is required twice: by CheckScopes, by Verify for
// Settings.RequiredScopes, and by the middleware for
// MiddlewareOptions.Scopes.
func TestScopeMatcherAskedOncePerPair(t *testing.T) {
	as := newAS(t, nil)
	type pair struct{ granted, required string }
	var (
		mu    sync.Mutex
		asked map[pair]int
	)
	hier, err := HierarchicalScopes(":")
	require.NoError(t, err)
	counting := func(granted, required string) bool {
		mu.Lock()
		asked[pair{granted, required}]++
		mu.Unlock()
		return hier(granted, required)
	}
	tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{"mcp"}})
	for _, tc := range []struct {
		name  string
		check func(t *testing.T)
	}{
		{"CheckScopes", func(t *testing.T) {
			v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) { s.ScopeMatcher = counting })
			assert.NoError(t, v.CheckScopes(&AccessToken{Scopes: []string{"mcp"}}, "mcp:tools", "mcp:tools"))
		}},
		{"Verify, RequiredScopes", func(t *testing.T) {
			v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
				s.ScopeMatcher = counting
				s.RequiredScopes = []string{"mcp:tools", "mcp:tools"}
			})
			_, err := v.Verify(t.Context(), tok)
			assert.NoError(t, err)
		}},
		{"middleware, route scopes", func(t *testing.T) {
			v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) { s.ScopeMatcher = counting })
			w := httptest.NewRecorder()
			RequireBearerToken(v, &MiddlewareOptions{Scopes: []string{"mcp:tools", "mcp:tools"}})(whoami).
				ServeHTTP(w, bearerRequest(tok))
			assert.Equal(t, http.StatusOK, w.Code)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			asked = map[pair]int{}
			tc.check(t)
			assert.Equal(t, map[pair]int{{"mcp", "mcp:tools"}: 1}, asked)
		})
	}
}

// TestSharedOperationUnderConcurrentRequests checks that one middleware
// with one MCPOperation serves many requests at once, each for its own
// tool and token, with the right answer and challenge for each, and that
// the challenge scopes of one request never leak into another's (the
// server-wide and route scopes are shared by every request). Run it with
// -race.
func TestSharedOperationUnderConcurrentRequests(t *testing.T) {
	as := newAS(t, nil)
	hier, err := HierarchicalScopes(":")
	require.NoError(t, err)
	v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
		s.RequiredScopes = []string{"mcp:tools"}
		s.ScopeMatcher = hier
		s.CacheTTL = time.Minute
	})
	op := newMCPOperation(t, MCPScopes{Tools: map[string][]string{
		"echo":  {"mcp:echo"},
		"admin": {"mcp:admin"},
		"files": {"files:read", "files:write"},
	}})
	// Three shared scopes leave room in the slice that holds them: an append
	// to it that is not a copy would be seen by other requests.
	h := RequireBearerToken(v, &MiddlewareOptions{Scopes: []string{"r:1", "r:2"}, Operation: op})(whoami)
	narrow := as.Issue(introspectiontest.TokenOptions{Subject: "bob", Scopes: []string{"mcp:tools", "r"}})
	broad := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{"mcp", "r", "files"}})
	deny := func(name, scopes string) string {
		return `Bearer error="insufficient_scope", error_description="tool '` + name + `' needs ` + scopes + `", scope="` + scopes + `"`
	}
	cases := []struct {
		token, tool string
		want        int
		wantAuth    string
	}{
		{narrow, "echo", 403, deny("echo", "mcp:tools r:1 r:2 mcp:echo")},
		{narrow, "admin", 403, deny("admin", "mcp:tools r:1 r:2 mcp:admin")},
		{narrow, "files", 403, deny("files", "mcp:tools r:1 r:2 files:read files:write")},
		{narrow, "other", 200, ""},
		{broad, "echo", 200, ""},
		{broad, "admin", 200, ""},
		{broad, "files", 200, ""},
	}
	const rounds = 40
	var wg sync.WaitGroup
	for i := range rounds * len(cases) {
		wg.Go(func() {
			tc := cases[i%len(cases)]
			r := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(callTool(`"`+tc.tool+`"`)))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Authorization", "Bearer "+tc.token)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			assert.Equal(t, tc.want, w.Code, tc.tool)
			assert.Equal(t, tc.wantAuth, w.Header().Get("WWW-Authenticate"), tc.tool)
		})
	}
	wg.Wait()
}

// TestHierarchicalScopesCutsAsStringsSplit checks HierarchicalScopes
// against its definition, for every pair of scopes up to five characters
// over an alphabet that holds the separator's characters, with separators
// that overlap themselves: a granted scope implies a required one when
// both are equal, or when neither has an empty part and the parts
// strings.Split cuts the granted scope into begin the required scope's
// parts, with at least one more.
func TestHierarchicalScopesCutsAsStringsSplit(t *testing.T) {
	implies := func(granted, required, sep string) bool {
		if granted == required {
			return true
		}
		g, r := strings.Split(granted, sep), strings.Split(required, sep)
		return !slices.Contains(g, "") && !slices.Contains(r, "") &&
			len(r) > len(g) && slices.Equal(r[:len(g)], g)
	}
	var scopes []string
	var grow func(s string)
	grow = func(s string) {
		if s != "" {
			scopes = append(scopes, s)
		}
		if len(s) < 5 {
			for _, c := range []string{"a", ":", "b"} {
				grow(s + c)
			}
		}
	}
	grow("")
	for _, sep := range []string{":", "::", "a", "aa", "a:", ":a:", "aba", "a:a"} {
		t.Run(fmt.Sprintf("%q", sep), func(t *testing.T) {
			m, err := HierarchicalScopes(sep)
			require.NoError(t, err)
			wrong := 0
			for _, g := range scopes {
				for _, r := range scopes {
					if want := implies(g, r, sep); m(g, r) != want {
						wrong++
						assert.Equal(t, want, m(g, r), "%q implies %q", g, r)
					}
				}
				if wrong > 10 {
					t.FailNow()
				}
			}
		})
	}
}
