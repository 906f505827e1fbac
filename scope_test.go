package introspection

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHierarchicalScopesImpliesNarrowerNeverBroader checks the "a:b:c"
// convention: a granted scope implies itself and every scope that extends it
// by the separator and further parts, never a broader one, never one that
// merely starts with the same letters, and never through an empty part.
func TestHierarchicalScopesImpliesNarrowerNeverBroader(t *testing.T) {
	tests := []struct {
		sep, granted, required string
		want                   bool
	}{
		{":", "files", "files", true},
		{":", "files", "files:read", true},
		{":", "files", "files:read:own", true},
		{":", "files:read", "files:read:own", true},
		{":", "files:read", "files", false},
		{":", "files:read:own", "files:read", false},
		{":", "files:read", "files:write", false},
		{":", "file", "files:read", false},
		{":", "files", "filesystem", false},
		{":", "files", "filesystem:read", false},
		{":", "files:re", "files:read", false},
		// An empty part is not a part: such scopes match only exactly.
		{":", "files", "files:", false},
		{":", "files:", "files:", true},
		{":", "files:", "files::read", false},
		{":", "files", "files::read", false},
		{":", "files", "files:read:", false},
		{":", ":", ":read", false},
		{":", "::", "::", true},
		{":", "::", ":::", false},
		{":", ":files", ":files:read", false},
		{":", "", "files", false},
		{":", "", ":files", false},
		// Other separators, of one or more characters.
		{".", "files", "files.read", true},
		{".", "files", "files:read", false},
		{"/", "api", "api/v1/users", true},
		{"::", "a", "a::b", true},
		{"::", "a", "a:b", false},
		{"::", "a", "a::::b", false},
		// Parts are cut where strings.Split cuts: "xaaay" with "aa" is "x"
		// and "ay", so "xa" is not its first part.
		{"aa", "xa", "xaaay", false},
		{"aa", "x", "xaaay", true},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%s implies %s", tc.sep, tc.granted, tc.required), func(t *testing.T) {
			m, err := HierarchicalScopes(tc.sep)
			require.NoError(t, err)
			assert.Equal(t, tc.want, m(tc.granted, tc.required))
		})
	}
}

// TestHierarchicalScopesRefusesBadSeparator checks that a separator that
// cannot occur inside an RFC 6749 §3.3 scope-token is an error, never a
// matcher.
func TestHierarchicalScopesRefusesBadSeparator(t *testing.T) {
	for _, sep := range []string{"", " ", "\t", "\"", "\\", "é", ":\n", "\x00"} {
		t.Run(fmt.Sprintf("%q", sep), func(t *testing.T) {
			m, err := HierarchicalScopes(sep)
			require.Error(t, err)
			assert.Nil(t, m)
			assert.True(t, strings.HasPrefix(err.Error(), "introspection: "), err.Error())
		})
	}
}

// TestScopeImplicationsFollowsChainsAndCycles checks that a table's
// implications hold transitively, through cycles, and only in the
// direction written.
func TestScopeImplicationsFollowsChainsAndCycles(t *testing.T) {
	m, err := ScopeImplications(map[string][]string{
		"admin":   {"write"},
		"write":   {"read"},
		"read":    {"list"},
		"ping":    {"pong"},
		"pong":    {"ping", "echo"},
		"self":    {"self"},
		"nothing": nil,
	})
	require.NoError(t, err)
	tests := []struct {
		granted, required string
		want              bool
	}{
		{"admin", "admin", true},
		{"admin", "write", true},
		{"admin", "read", true},
		{"admin", "list", true},
		{"write", "list", true},
		{"list", "read", false},
		{"read", "write", false},
		{"write", "admin", false},
		{"ping", "pong", true},
		{"pong", "ping", true},
		{"ping", "echo", true},
		{"echo", "ping", false},
		{"self", "self", true},
		{"self", "other", false},
		{"nothing", "nothing", true},
		{"nothing", "read", false},
		{"unlisted", "unlisted", true},
		{"unlisted", "read", false},
		{"admin", "admins", false},
	}
	for _, tc := range tests {
		t.Run(tc.granted+" implies "+tc.required, func(t *testing.T) {
			assert.Equal(t, tc.want, m(tc.granted, tc.required))
		})
	}
}

// TestScopeImplicationsCopiesTable checks that changing the table after the
// matcher is made changes nothing.
func TestScopeImplicationsCopiesTable(t *testing.T) {
	table := map[string][]string{"admin": {"write"}}
	m, err := ScopeImplications(table)
	require.NoError(t, err)
	table["admin"][0] = "delete"
	table["read"] = []string{"admin"}
	assert.True(t, m("admin", "write"))
	assert.False(t, m("admin", "delete"))
	assert.False(t, m("read", "admin"))
}

// TestScopeImplicationsRefusesInvalidScopes checks that a key or an implied
// scope that is not an RFC 6749 §3.3 scope-token is an error naming it.
func TestScopeImplicationsRefusesInvalidScopes(t *testing.T) {
	tests := []struct {
		name  string
		table map[string][]string
		want  string
	}{
		{"empty key", map[string][]string{"": {"read"}}, `""`},
		{"empty implied scope", map[string][]string{"admin": {""}}, `""`},
		{"key with a space", map[string][]string{"a b": {"read"}}, `"a b"`},
		{"implied scope with a quote", map[string][]string{"admin": {`re"ad`}}, `"re\"ad"`},
		{"implied scope with a backslash", map[string][]string{"admin": {`re\ad`}}, `"re\\ad"`},
		{"non-ASCII", map[string][]string{"admin": {"lésen"}}, `"lésen"`},
		{"control character", map[string][]string{"admin\n": {"read"}}, `"admin\n"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ScopeImplications(tc.table)
			require.Error(t, err)
			assert.Nil(t, m)
			assert.True(t, strings.HasPrefix(err.Error(), "introspection: "), err.Error())
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	m, err := ScopeImplications(nil)
	require.NoError(t, err, "an empty table is exact matching")
	assert.True(t, m("read", "read"))
	assert.False(t, m("read", "write"))
}

// TestRequiredScopesUseTheMatcher checks that Verify's RequiredScopes check
// asks Settings.ScopeMatcher, on a fresh answer and on a cached one, and that
// nil keeps exact matching.
func TestRequiredScopesUseTheMatcher(t *testing.T) {
	as := newAS(t, nil)
	hier, err := HierarchicalScopes(":")
	require.NoError(t, err)
	tests := []struct {
		name    string
		matcher ScopeMatcher
		granted []string
		wantErr error
		missing []string
	}{
		{"broader scope, hierarchy", hier, []string{"files"}, nil, nil},
		{"exact scope, hierarchy", hier, []string{"files:read"}, nil, nil},
		{"narrower scope, hierarchy", hier, []string{"files:read:own"}, ErrInsufficientScope, []string{"files:read"}},
		{"similar name, hierarchy", hier, []string{"file"}, ErrInsufficientScope, []string{"files:read"}},
		{"broader scope, exact", nil, []string{"files"}, ErrInsufficientScope, []string{"files:read"}},
		{"exact scope, exact", nil, []string{"files:read"}, nil, nil},
	}
	for _, tc := range tests {
		for _, cached := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/cached=%t", tc.name, cached), func(t *testing.T) {
				tok := as.Issue(introspectiontest.TokenOptions{Scopes: tc.granted})
				v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
					s.RequiredScopes = []string{"files:read"}
					s.ScopeMatcher = tc.matcher
					if cached {
						s.CacheTTL = time.Hour
					}
				})
				calls := 1
				if cached {
					calls = 2 // the second is answered from the cache
				}
				var err error
				for range calls {
					_, err = v.Verify(context.Background(), tok)
					waitUntilIdle(t, v) // the answer is stored
				}
				assert.EqualValues(t, 1, as.RequestsFor(tok))
				if cached {
					assert.EqualValues(t, 1, v.Stats().CacheHits)
				}
				if tc.wantErr == nil {
					assert.NoError(t, err)
					return
				}
				require.ErrorIs(t, err, tc.wantErr)
				se, ok := err.(*ScopeError)
				require.True(t, ok, "%T", err)
				assert.Equal(t, tc.missing, se.Missing)
				assert.Equal(t, tc.granted, se.Granted)
			})
		}
	}
}

// TestCheckScopes checks that CheckScopes holds a token to scopes under the
// verifier's matcher and names exactly the missing ones, and that
// AccessToken.HasScope stays exact beside it.
func TestCheckScopes(t *testing.T) {
	hier, err := HierarchicalScopes(":")
	require.NoError(t, err)
	as := newAS(t, nil)
	tests := []struct {
		name     string
		matcher  ScopeMatcher
		granted  []string
		required []string
		missing  []string // nil: no error
	}{
		{"none required", hier, []string{"mcp"}, nil, nil},
		{"none required, none granted", nil, nil, nil, nil},
		{"broader grant", hier, []string{"mcp"}, []string{"mcp:tools", "mcp:echo"}, nil},
		{"one of two", hier, []string{"mcp:tools"}, []string{"mcp:tools", "mcp:echo"}, []string{"mcp:echo"}},
		{"narrower grant", hier, []string{"mcp:echo"}, []string{"mcp:tools", "mcp"}, []string{"mcp:tools", "mcp"}},
		{"exact matching", nil, []string{"mcp"}, []string{"mcp", "mcp:tools"}, []string{"mcp:tools"}},
		{"nothing granted", hier, nil, []string{"mcp:tools"}, []string{"mcp:tools"}},
		{"empty required scope", hier, []string{"mcp"}, []string{""}, []string{""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) { s.ScopeMatcher = tc.matcher })
			tok := &AccessToken{Scopes: tc.granted}
			err := v.CheckScopes(tok, tc.required...)
			if tc.missing == nil {
				assert.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInsufficientScope)
			var se *ScopeError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tc.missing, se.Missing)
			assert.Equal(t, tc.granted, se.Granted)
		})
	}

	v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) { s.ScopeMatcher = hier })
	tok := &AccessToken{Scopes: []string{"files"}}
	assert.NoError(t, v.CheckScopes(tok, "files:read"))
	assert.False(t, tok.HasScope("files:read"), "HasScope is exact")
	assert.True(t, tok.HasScope("files"))

	var se *ScopeError
	require.ErrorAs(t, v.CheckScopes(nil, "files"), &se, "a nil token holds no scope")
	assert.Equal(t, []string{"files"}, se.Missing)
	assert.NoError(t, v.CheckScopes(nil))
	var nilV *Verifier
	require.ErrorAs(t, nilV.CheckScopes(tok, "files"), &se, "a nil verifier fails closed")
	assert.Equal(t, []string{"files"}, se.Missing)
}

// TestExactGrantNeedsNoMatcher checks that a scope granted exactly satisfies
// its requirement without asking the matcher, which is asked only about the
// others, at most once per granted and required pair.
func TestExactGrantNeedsNoMatcher(t *testing.T) {
	as := newAS(t, nil)
	var calls atomic.Int64
	v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
		s.ScopeMatcher = func(granted, required string) bool { calls.Add(1); return false }
	})
	tok := &AccessToken{Scopes: []string{"a", "b", "c"}}
	assert.NoError(t, v.CheckScopes(tok, "a", "b", "c"))
	assert.Zero(t, calls.Load())
	var se *ScopeError
	require.ErrorAs(t, v.CheckScopes(tok, "a", "d"), &se)
	assert.Equal(t, []string{"d"}, se.Missing)
	assert.EqualValues(t, 3, calls.Load(), "d against a, b and c")
}

// TestPanickingScopeMatcherFailsClosed checks that a matcher that panics
// never admits a scope: CheckScopes counts the scope as missing, Verify
// fails with an *IntrospectionError of kind FailurePanic, fresh and from the
// cache. Each panic is counted and logged once, without its value.
func TestPanickingScopeMatcherFailsClosed(t *testing.T) {
	const secretish = "panic-value-with-a-scope"
	as := newAS(t, nil)
	panicky := func(granted, required string) bool { panic(secretish) }

	t.Run("CheckScopes", func(t *testing.T) {
		logs := &recordingHandler{}
		v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
			s.ScopeMatcher = panicky
			s.Logger = slog.New(logs)
		})
		tok := &AccessToken{Scopes: []string{"mcp", "files"}}
		var err error
		require.NotPanics(t, func() { err = v.CheckScopes(tok, "mcp", "mcp:tools", "mcp:echo") })
		var se *ScopeError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, []string{"mcp:tools", "mcp:echo"}, se.Missing, "the exact grant still counts")
		assert.EqualValues(t, 1, v.Stats().Panics, "the matcher is not asked again in the same check")
		recs := logs.matching("recovered from a panic")
		require.Len(t, recs, 1)
		in, _ := attr(recs[0], "in")
		assert.Equal(t, "Settings.ScopeMatcher", in)
		assert.NotContains(t, logs.text(), secretish)
	})
	for _, cached := range []bool{false, true} {
		t.Run(fmt.Sprintf("Verify/cached=%t", cached), func(t *testing.T) {
			logs := &recordingHandler{}
			tok := as.Issue(introspectiontest.TokenOptions{Scopes: []string{"mcp"}})
			v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
				s.RequiredScopes = []string{"mcp:tools"}
				s.ScopeMatcher = panicky
				s.Logger = slog.New(logs)
				if cached {
					s.CacheTTL = time.Hour
				}
			})
			calls := 1
			if cached {
				calls = 2
			}
			for i := range calls {
				if i > 0 {
					waitUntilIdle(t, v) // the answer is stored
				}
				got, err := v.Verify(context.Background(), tok)
				assert.Nil(t, got)
				var ie *IntrospectionError
				require.ErrorAs(t, err, &ie)
				assert.Equal(t, FailurePanic, ie.Kind)
				assert.NotErrorIs(t, err, ErrInsufficientScope)
				assert.NotContains(t, err.Error(), secretish)
				st := v.Stats()
				assert.EqualValues(t, i+1, st.Panics)
				assert.EqualValues(t, i+1, st.Failed)
				assert.EqualValues(t, i+1, st.Failures[FailurePanic])
				assert.Zero(t, st.Accepted+st.InsufficientScope)
			}
			assert.EqualValues(t, calls-1, v.Stats().CacheHits)
			assert.Len(t, logs.matching("recovered from a panic"), calls)
			assert.NotContains(t, logs.text(), secretish)
			assert.EqualValues(t, 1, as.RequestsFor(tok))
		})
	}
}

// TestSettingsShowWhetherScopeMatcherIsSet checks that printing and logging
// Settings say whether a matcher is set, as they show the other fields.
func TestSettingsShowWhetherScopeMatcherIsSet(t *testing.T) {
	hier, err := HierarchicalScopes(":")
	require.NoError(t, err)
	for _, tc := range []struct {
		m    ScopeMatcher
		want string
	}{{nil, "exact"}, {hier, "custom"}} {
		s := Settings{ScopeMatcher: tc.m}
		assert.Contains(t, s.String(), "ScopeMatcher:"+tc.want)
		assert.Contains(t, fmt.Sprintf("%#v", s), "ScopeMatcher:"+tc.want)
		var buf bytes.Buffer
		slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "s", s)
		assert.Contains(t, buf.String(), "s.scope_matcher="+tc.want)
	}
}

// TestRequiredScopesMustBeScopeTokens checks that NewVerifier refuses a
// required scope that is not an RFC 6749 §3.3 scope-token, which no token
// could be granted and no challenge could carry.
func TestRequiredScopesMustBeScopeTokens(t *testing.T) {
	for _, sc := range []string{"", "a b", `a"b`, `a\b`, "lésen", "a\x7f", "a\x00", "a\tb"} {
		t.Run(fmt.Sprintf("%q", sc), func(t *testing.T) {
			_, err := NewVerifier(Settings{IntrospectionURL: "https://as.example/i", ClientID: "rs", ClientSecret: "s",
				RequiredScopes: []string{"ok", sc}})
			require.Error(t, err)
			assert.Contains(t, err.Error(), "invalid required scope")
		})
	}
	_, err := NewVerifier(Settings{IntrospectionURL: "https://as.example/i", ClientID: "rs", ClientSecret: "s",
		RequiredScopes: []string{"!#[]~", "mcp:tools", "https://api.example.com/read"}})
	assert.NoError(t, err)
}

// BenchmarkCheckScopes measures one check of two required scopes against a
// token with four granted ones: exact matching, a hierarchy where both are
// granted exactly, and a hierarchy where both are implied by a broader
// scope.
func BenchmarkCheckScopes(b *testing.B) {
	hier, err := HierarchicalScopes(":")
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name    string
		matcher ScopeMatcher
		granted []string
	}{
		{"exact", nil, []string{"profile", "email", "mcp:tools", "mcp:echo"}},
		{"hierarchy/granted-exactly", hier, []string{"profile", "email", "mcp:tools", "mcp:echo"}},
		{"hierarchy/implied", hier, []string{"profile", "email", "files", "mcp"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			v, err := NewVerifier(Settings{IntrospectionURL: "https://as.example/i", ClientID: "rs", ClientSecret: "s",
				ScopeMatcher: bc.matcher})
			if err != nil {
				b.Fatal(err)
			}
			defer v.Close()
			tok := &AccessToken{Scopes: bc.granted}
			b.ReportAllocs()
			for b.Loop() {
				if err := v.CheckScopes(tok, "mcp:tools", "mcp:echo"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
