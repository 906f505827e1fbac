package introspection

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMiddlewareScopeRefusalIsOneVerdict shows that a request the
// middleware refuses for a scope, of Settings.RequiredScopes,
// MiddlewareOptions.Scopes or the operation's, is one verification with
// the verdict insufficient_scope, in Stats and for the Observer, never
// also an acceptance; that a request with every scope is one acceptance;
// and that the 403 challenge is the one it always was.
func TestMiddlewareScopeRefusalIsOneVerdict(t *testing.T) {
	as := newAS(t, nil)
	echo := func(*http.Request) (Operation, error) {
		return Operation{Name: `tool "echo"`, Scopes: []string{"mcp:echo"}}, nil
	}
	tests := []struct {
		name      string
		required  []string
		opts      MiddlewareOptions
		granted   []string
		want      int
		wantEnd   string
		challenge string
	}{
		{"route scope missing", nil, MiddlewareOptions{Scopes: []string{"mcp:tools"}}, []string{"other"},
			http.StatusForbidden, "VerifyEnd insufficient_scope insufficient_scope",
			`Bearer error="insufficient_scope", scope="mcp:tools"`},
		{"operation scope missing", []string{"mcp"}, MiddlewareOptions{Operation: echo}, []string{"mcp"},
			http.StatusForbidden, "VerifyEnd insufficient_scope insufficient_scope",
			`Bearer error="insufficient_scope", error_description="tool 'echo' needs mcp mcp:echo", scope="mcp mcp:echo"`},
		{"required and operation scopes missing", []string{"mcp"}, MiddlewareOptions{Operation: echo}, []string{"other"},
			http.StatusForbidden, "VerifyEnd insufficient_scope insufficient_scope",
			`Bearer error="insufficient_scope", error_description="tool 'echo' needs mcp mcp:echo", scope="mcp mcp:echo"`},
		{"every scope granted", []string{"mcp"}, MiddlewareOptions{Scopes: []string{"mcp:tools"}, Operation: echo},
			[]string{"mcp", "mcp:tools", "mcp:echo"}, http.StatusNoContent, "VerifyEnd accepted none", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obs := &recordingObserver{}
			v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
				s.RequiredScopes = tc.required
				s.Observer = obs
			})
			reached := 0
			h := RequireBearerToken(v, &tc.opts)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				reached++
				w.WriteHeader(http.StatusNoContent)
			}))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, bearerRequest(as.Issue(introspectiontest.TokenOptions{Scopes: tc.granted})))
			require.Equal(t, tc.want, w.Code)
			assert.Equal(t, tc.challenge, w.Header().Get("WWW-Authenticate"))
			ev := obs.seen()
			assert.Equal(t, 1, count(ev, "VerifyEnd"), "%v", ev)
			assert.Equal(t, tc.wantEnd, ev[len(ev)-1])
			st := v.Stats()
			if tc.want == http.StatusForbidden {
				assert.Zero(t, reached)
				assert.Zero(t, st.Accepted)
				assert.Equal(t, uint64(1), st.InsufficientScope)
			} else {
				assert.Equal(t, 1, reached)
				assert.Equal(t, uint64(1), st.Accepted)
				assert.Zero(t, st.InsufficientScope)
			}
		})
	}
}

// TestVerificationDecidesTheRequestsScopes shows that the verification
// of a request decides the scopes the request needs besides
// RequiredScopes under the ScopeMatcher, and that its ScopeError lists
// every missing scope, RequiredScopes' first.
func TestVerificationDecidesTheRequestsScopes(t *testing.T) {
	as := newAS(t, nil)
	hier, err := HierarchicalScopes(":")
	require.NoError(t, err)
	v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
		s.RequiredScopes = []string{"mcp", "files"}
		s.ScopeMatcher = hier
	})
	tok := as.Issue(introspectiontest.TokenOptions{Scopes: []string{"mcp"}})
	asked := 0
	p := possession{scopes: func() []string { asked++; return []string{"mcp:echo", "files", "admin"} }}
	_, err = v.verify(context.Background(), tok, p)
	var se *ScopeError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, []string{"files", "admin"}, se.Missing, "mcp:echo is implied by mcp")
	assert.Equal(t, 1, asked)

	ok := as.Issue(introspectiontest.TokenOptions{Scopes: []string{"mcp", "files", "admin"}})
	at, err := v.verify(context.Background(), ok, p)
	require.NoError(t, err)
	assert.NotNil(t, at)
	assert.Equal(t, uint64(1), v.Stats().Accepted)
	assert.Equal(t, uint64(1), v.Stats().InsufficientScope)
}

// TestMiddlewareSpendsTheProofOfAScopeRefusal shows that the DPoP proof of
// a request refused only for a scope of the request's own is spent, as
// for an accepted one: sent again, for another operation, it is refused
// as replayed.
func TestMiddlewareSpendsTheProofOfAScopeRefusal(t *testing.T) {
	d := newDPoPSetup(t, nil)
	op := func(r *http.Request) (Operation, error) {
		if r.Header.Get("X-Tool") == "admin" {
			return Operation{Name: `tool "admin"`, Scopes: []string{"admin"}}, nil
		}
		return Operation{}, nil
	}
	h := RequireBearerToken(d.v, &MiddlewareOptions{Operation: op})(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	proof := d.key.proof(t, "GET", dpopTarget, d.bound, nil)
	r := dpopRequest("GET", "DPoP "+d.bound, proof)
	r.Header.Set("X-Tool", "admin")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	require.Equal(t, http.StatusForbidden, w.Code)

	w = httptest.NewRecorder()
	h.ServeHTTP(w, dpopRequest("GET", "DPoP "+d.bound, proof))
	assert.Equal(t, http.StatusUnauthorized, w.Code)
	assert.Contains(t, w.Header().Values("WWW-Authenticate")[1], `error="invalid_dpop_proof"`)
	st := d.v.Stats()
	assert.Equal(t, uint64(1), st.InsufficientScope)
	assert.Equal(t, uint64(1), st.Rejected, "the replayed proof")
	assert.Zero(t, st.Accepted)
}
