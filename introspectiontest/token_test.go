package introspectiontest

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tokenRequest posts form to the token endpoint with the default client's
// Basic credentials (unless basic is false) and decodes the answer.
func tokenRequest(t *testing.T, s *Server, form url.Values, basic bool) (*http.Response, map[string]any) {
	t.Helper()
	f := &authFixture{s: s}
	r := authRequest{form: form}
	if basic {
		r.basic = encodedCreds
	}
	return f.send(t, s.TokenURL, r)
}

func TestTokenEndpointIssuesTokens(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := NewServer()
	defer s.Close()
	s.SetNow(func() time.Time { return now })
	resp, body := tokenRequest(t, s, url.Values{
		"scope":    {"mcp:tools mcp:echo mcp:tools"},
		"resource": {"https://mcp.example/mcp", "https://other.example/"},
	}, true)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%v", body)
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	tok, _ := body["access_token"].(string)
	require.NotEmpty(t, tok)
	delete(body, "access_token")
	assert.Equal(t, map[string]any{"token_type": "Bearer", "expires_in": float64(3600), "scope": "mcp:tools mcp:echo"}, body)

	_, answer := post(t, s, url.Values{"token": {tok}}, encodedCreds)
	assert.Equal(t, map[string]any{
		"active": true, "client_id": ClientID, "sub": ClientID, "scope": "mcp:tools mcp:echo",
		"aud": []any{"https://mcp.example/mcp", "https://other.example/"}, "iss": s.Issuer,
		"token_type": "Bearer", "iat": float64(now.Unix()), "exp": float64(now.Add(time.Hour).Unix()),
	}, answer, "a token from the endpoint introspects like one from Issue")

	resp, body = tokenRequest(t, s, url.Values{}, true)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%v", body)
	assert.NotContains(t, body, "scope", "no scope asked, none granted")
	_, answer = post(t, s, url.Values{"token": {body["access_token"].(string)}}, encodedCreds)
	assert.Equal(t, true, answer["active"])
	assert.NotContains(t, answer, "aud")

	now = now.Add(time.Hour)
	_, answer = post(t, s, url.Values{"token": {tok}}, encodedCreds)
	assert.Equal(t, map[string]any{"active": false}, answer, "the token expires after expires_in")
}

func TestTokenEndpointErrors(t *testing.T) {
	s := NewServer()
	defer s.Close()
	s.SetScopes("mcp:tools", "mcp:echo")
	grant := func(kv ...string) url.Values {
		v := url.Values{"grant_type": {"client_credentials"}}
		for i := 0; i < len(kv); i += 2 {
			v[kv[i]] = append(v[kv[i]], kv[i+1])
		}
		return v
	}
	tests := []struct {
		name      string
		method    string // POST if empty
		query     string
		ctype     string // form if empty
		form      url.Values
		noBasic   bool
		status    int
		code      string
		challenge bool // WWW-Authenticate: Basic
	}{
		{name: "no client authentication", form: grant(), noBasic: true, status: 401, code: "invalid_client", challenge: true},
		{name: "GET", method: http.MethodGet, form: grant(), status: 405, code: "invalid_request"},
		{name: "JSON body", ctype: "application/json", form: grant(), status: 400, code: "invalid_request"},
		{name: "parameters in the query", query: "grant_type=client_credentials", form: grant(), status: 400, code: "invalid_request"},
		{name: "no grant_type", form: url.Values{}, status: 400, code: "invalid_request"},
		{name: "grant_type repeated", form: grant("grant_type", "client_credentials"), status: 400, code: "invalid_request"},
		{name: "password grant", form: url.Values{"grant_type": {"password"}, "username": {"u"}, "password": {"p"}}, status: 400, code: "unsupported_grant_type"},
		{name: "authorization_code grant", form: url.Values{"grant_type": {"authorization_code"}, "code": {"c"}}, status: 400, code: "unsupported_grant_type"},
		{name: "scope not listed", form: grant("scope", "mcp:tools mcp:admin"), status: 400, code: "invalid_scope"},
		{name: "offline_access", form: grant("scope", "mcp:tools offline_access"), status: 400, code: "invalid_scope"},
		{name: "scope with a bad character", form: grant("scope", `mcp:"tools"`), status: 400, code: "invalid_scope"},
		{name: "scope repeated", form: grant("scope", "mcp:tools", "scope", "mcp:echo"), status: 400, code: "invalid_request"},
		{name: "relative resource", form: grant("resource", "/mcp"), status: 400, code: "invalid_target"},
		{name: "resource with a fragment", form: grant("resource", "https://mcp.example/mcp#x"), status: 400, code: "invalid_target"},
		{name: "listed scopes", form: grant("scope", "mcp:echo"), status: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			u := s.TokenURL
			if tc.query != "" {
				u += "?" + tc.query
			}
			req, err := http.NewRequest(method, u, strings.NewReader(tc.form.Encode()))
			require.NoError(t, err)
			ctype := tc.ctype
			if ctype == "" {
				ctype = "application/x-www-form-urlencoded"
			}
			req.Header.Set("Content-Type", ctype)
			if !tc.noBasic {
				req.SetBasicAuth(url.QueryEscape(ClientID), url.QueryEscape(ClientSecret))
			}
			resp, body := decode(t, req)
			assert.Equal(t, tc.status, resp.StatusCode, "%v", body)
			if tc.status == 200 {
				assert.NotEmpty(t, body["access_token"])
				return
			}
			assert.Equal(t, tc.code, body["error"])
			assert.NotEmpty(t, body["error_description"])
			assert.NotContains(t, body, "access_token")
			if tc.challenge {
				assert.Equal(t, `Basic realm="introspection"`, resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

// TestTokenEndpointWithoutScopeList shows that with no SetScopes any
// well-formed scope is granted, but offline_access never is.
func TestTokenEndpointWithoutScopeList(t *testing.T) {
	s := NewServer()
	defer s.Close()
	resp, body := tokenRequest(t, s, url.Values{"scope": {"anything:at-all read"}}, true)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%v", body)
	assert.Equal(t, "anything:at-all read", body["scope"])
	resp, body = tokenRequest(t, s, url.Values{"scope": {"offline_access"}}, true)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Equal(t, "invalid_scope", body["error"])
}
