package introspectiontest

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// post sends an introspection request with the given form and Basic
// credentials (raw, as they go on the wire) and decodes the answer.
func post(t *testing.T, s *Server, form url.Values, basic string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.IntrospectionURL, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic != "" {
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(basic)))
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return resp.StatusCode, body
}

var encodedCreds = url.QueryEscape(ClientID) + ":" + url.QueryEscape(ClientSecret)

func TestClientAuthentication(t *testing.T) {
	s := NewServer()
	defer s.Close()
	tok := s.Issue(TokenOptions{})
	tests := []struct {
		name       string
		form       url.Values
		basic      string
		wantStatus int
		wantError  string
	}{
		{"basic, form-encoded", url.Values{"token": {tok}}, encodedCreds, 200, ""},
		{"basic, not encoded", url.Values{"token": {tok}}, ClientID + ":" + ClientSecret, 400, "invalid_request"},
		{"basic, plus not encoded", url.Values{"token": {tok}}, ClientID + ":p@ss:w+rd", 401, "invalid_client"},
		{"basic, bad encoding", url.Values{"token": {tok}}, ClientID + ":%zz", 400, "invalid_request"},
		{"post", url.Values{"token": {tok}, "client_id": {ClientID}, "client_secret": {ClientSecret}}, "", 200, ""},
		{"both methods", url.Values{"token": {tok}, "client_id": {ClientID}, "client_secret": {ClientSecret}}, encodedCreds, 400, "invalid_request"},
		{"none", url.Values{"token": {tok}}, "", 401, "invalid_client"},
		{"wrong secret", url.Values{"token": {tok}}, ClientID + ":nope", 401, "invalid_client"},
		{"no token", url.Values{}, encodedCreds, 400, "invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := post(t, s, tc.form, tc.basic)
			assert.Equal(t, tc.wantStatus, status)
			if tc.wantError != "" {
				assert.Equal(t, tc.wantError, body["error"])
			} else {
				assert.Equal(t, true, body["active"])
			}
		})
	}
}

func TestAnswers(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewServer()
	defer s.Close()
	s.SetNow(func() time.Time { return now })
	full := s.Issue(TokenOptions{
		ClientID: "app", Subject: "alice", Username: "Alice", Scopes: []string{"a", "b"},
		Audience: []string{"x", "y"}, Lifetime: time.Minute, NotBefore: now, TokenUse: "access_token",
		Extra: map[string]any{"tenant": "t1"},
	})
	oneAud := s.Issue(TokenOptions{Audience: []string{"x"}, NoExpiry: true})
	expired := s.Issue(TokenOptions{Lifetime: -time.Second})
	revoked := s.Issue(TokenOptions{})
	s.Revoke(revoked)

	_, body := post(t, s, url.Values{"token": {full}}, encodedCreds)
	assert.Equal(t, map[string]any{
		"active": true, "client_id": "app", "sub": "alice", "username": "Alice", "scope": "a b",
		"aud": []any{"x", "y"}, "exp": float64(now.Add(time.Minute).Unix()), "iat": float64(now.Unix()),
		"nbf": float64(now.Unix()), "iss": s.Issuer, "token_type": "Bearer", "token_use": "access_token",
		"tenant": "t1",
	}, body)

	_, body = post(t, s, url.Values{"token": {oneAud}}, encodedCreds)
	assert.Equal(t, "x", body["aud"])
	assert.NotContains(t, body, "exp")

	for _, tok := range []string{expired, revoked, "never-issued"} {
		_, body = post(t, s, url.Values{"token": {tok}}, encodedCreds)
		assert.Equal(t, map[string]any{"active": false}, body, "inactive answers say nothing else")
	}
	assert.Equal(t, int64(5), s.Requests())
	assert.Equal(t, int64(1), s.RequestsFor(full))
}

func TestFaults(t *testing.T) {
	s := NewServer()
	defer s.Close()
	tok := s.Issue(TokenOptions{})
	s.SetFault(Fault{Status: 503, Body: "<html>down</html>", ContentType: "text/html", Header: http.Header{"Retry-After": {"9"}}})
	req, err := http.NewRequest(http.MethodPost, s.IntrospectionURL, strings.NewReader(url.Values{"token": {tok}}.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(ClientID), url.QueryEscape(ClientSecret))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 503, resp.StatusCode)
	assert.Equal(t, "text/html", resp.Header.Get("Content-Type"))
	assert.Equal(t, "9", resp.Header.Get("Retry-After"))
	assert.Equal(t, "<html>down</html>", string(b))
}

func TestListensOnLoopback(t *testing.T) {
	s := NewServer()
	defer s.Close()
	u, err := url.Parse(s.URL)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1", u.Hostname())
}

// TestKeepActive shows that a KeepActive token stays active after it
// expires and is answered with its past exp, while others turn inactive.
func TestKeepActive(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewServer()
	defer s.Close()
	s.SetNow(func() time.Time { return now })
	kept := s.Issue(TokenOptions{Lifetime: time.Minute, KeepActive: true})
	plain := s.Issue(TokenOptions{Lifetime: time.Minute})
	past := s.Issue(TokenOptions{Lifetime: -time.Hour, KeepActive: true})
	revoked := s.Issue(TokenOptions{KeepActive: true})
	s.Revoke(revoked)

	now = now.Add(2 * time.Minute)
	_, body := post(t, s, url.Values{"token": {kept}}, encodedCreds)
	assert.Equal(t, true, body["active"])
	assert.Equal(t, float64(now.Add(-time.Minute).Unix()), body["exp"], "the past exp")
	_, body = post(t, s, url.Values{"token": {past}}, encodedCreds)
	assert.Equal(t, true, body["active"])
	assert.Equal(t, float64(now.Add(-2*time.Minute-time.Hour).Unix()), body["exp"])
	_, body = post(t, s, url.Values{"token": {plain}}, encodedCreds)
	assert.Equal(t, map[string]any{"active": false}, body)
	_, body = post(t, s, url.Values{"token": {revoked}}, encodedCreds)
	assert.Equal(t, map[string]any{"active": false}, body, "revocation still wins")
}

// TestEndpointsRefuseOtherMethodsWithAllowPOST shows that both endpoints
// that authenticate clients answer a GET with 405, Allow: POST and
// Cache-Control: no-store.
func TestEndpointsRefuseOtherMethodsWithAllowPOST(t *testing.T) {
	s := NewServer()
	defer s.Close()
	for _, u := range []string{s.IntrospectionURL, s.TokenURL} {
		req, err := http.NewRequest(http.MethodGet, u, nil)
		require.NoError(t, err)
		resp, body := decode(t, req)
		assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, u)
		assert.Equal(t, "invalid_request", body["error"], u)
		assert.Equal(t, http.MethodPost, resp.Header.Get("Allow"), u)
		assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"), u)
	}
}
