package introspection

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// whoami answers with the subject of the token the middleware accepted.
var whoami = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	t, ok := AccessTokenFromContext(r.Context())
	if !ok {
		http.Error(w, "no token in context", http.StatusInternalServerError)
		return
	}
	_, _ = io.WriteString(w, "hello "+t.Subject)
})

func TestRequireBearerToken(t *testing.T) {
	as := newAS(t, nil)
	good := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{"read", "tools"}})
	readOnly := as.Issue(introspectiontest.TokenOptions{Subject: "bob", Scopes: []string{"read"}})
	v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) { s.RequiredScopes = []string{"read"} })
	const md = "https://mcp.example.com/.well-known/oauth-protected-resource"
	h := RequireBearerToken(v, &MiddlewareOptions{
		ResourceMetadataURL: md,
		Realm:               "mcp",
		Scopes:              []string{"tools"},
	})(whoami)

	const plain = `Bearer realm="mcp", scope="read tools", resource_metadata="` + md + `"`
	tests := []struct {
		name       string
		header     []string
		query      string
		wantStatus int
		wantAuth   string // WWW-Authenticate; "" means absent
		wantBody   string
	}{
		{"valid", []string{"Bearer " + good}, "", 200, "", "hello alice"},
		{"scheme is case-insensitive", []string{"bEaReR " + good}, "", 200, "", "hello alice"},
		{"several spaces after the scheme", []string{"Bearer   " + good}, "", 200, "", "hello alice"},
		{"no header", nil, "", 401, plain, `{"error":"unauthorized"}`},
		{"other scheme", []string{"Basic dXNlcjpwYXNz"}, "", 401, plain, `{"error":"unauthorized"}`},
		{"scheme only", []string{"Bearer"}, "", 400, `Bearer realm="mcp", error="invalid_request", resource_metadata="` + md + `"`, `{"error":"invalid_request"}`},
		{"scheme and space", []string{"Bearer "}, "", 400, `Bearer realm="mcp", error="invalid_request", resource_metadata="` + md + `"`, ""},
		{"two tokens", []string{"Bearer a b"}, "", 400, "", ""},
		{"invalid b64token", []string{"Bearer a\"b"}, "", 400, "", ""},
		{"token too long", []string{"Bearer " + strings.Repeat("a", 4097)}, "", 400, "", ""},
		{"two Authorization headers", []string{"Bearer " + good, "Bearer " + good}, "", 400, "", ""},
		{"token in header and query", []string{"Bearer " + good}, "access_token=" + good, 400, "", ""},
		{"token in query only", nil, "access_token=" + good, 400, "", ""},
		{"unknown token", []string{"Bearer unknown"}, "", 401,
			`Bearer realm="mcp", error="invalid_token", scope="read tools", resource_metadata="` + md + `"`, `{"error":"invalid_token"}`},
		{"route scope missing", []string{"Bearer " + readOnly}, "", 403,
			`Bearer realm="mcp", error="insufficient_scope", scope="read tools", resource_metadata="` + md + `"`, `{"error":"insufficient_scope"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			target := "/mcp"
			if tc.query != "" {
				target += "?" + tc.query
			}
			r := httptest.NewRequest(http.MethodPost, target, nil)
			for _, hv := range tc.header {
				r.Header.Add("Authorization", hv)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			assert.Equal(t, tc.wantStatus, w.Code)
			if tc.wantStatus == 200 {
				assert.Empty(t, w.Header().Get("WWW-Authenticate"))
			} else {
				assert.True(t, strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer"))
				assert.NotContains(t, w.Body.String(), good)
				assert.NotContains(t, w.Body.String(), "introspection:")
			}
			if tc.wantAuth != "" {
				assert.Equal(t, tc.wantAuth, w.Header().Get("WWW-Authenticate"))
			}
			if tc.wantBody != "" {
				assert.Equal(t, tc.wantBody, strings.TrimSpace(w.Body.String()))
			}
		})
	}
}

func TestRequireBearerTokenVerifierScopes(t *testing.T) {
	as := newAS(t, nil)
	tok := as.Issue(introspectiontest.TokenOptions{Scopes: []string{"read"}})
	v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) { s.RequiredScopes = []string{"admin"} })
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	RequireBearerToken(v, nil)(whoami).ServeHTTP(w, r)
	assert.Equal(t, 403, w.Code)
	assert.Equal(t, `Bearer error="insufficient_scope", scope="admin"`, w.Header().Get("WWW-Authenticate"))
}

// TestRequireBearerTokenOutage checks that a failing authorization server
// gives 503 with Retry-After and no challenge, never 401.
func TestRequireBearerTokenOutage(t *testing.T) {
	tests := []struct {
		name      string
		fault     introspectiontest.Fault
		wantRetry string
	}{
		{"500", introspectiontest.Fault{Status: 500}, "5"},
		{"429 with Retry-After", introspectiontest.Fault{Status: 429, Header: http.Header{"Retry-After": {"42"}}}, "42"},
		{"bad answer", introspectiontest.Fault{Body: `{"active":"true"}`}, "5"},
		{"timeout", introspectiontest.Fault{Latency: time.Second}, "5"},
		{"wrong credentials", introspectiontest.Fault{Status: 401, Body: `{"error":"invalid_client"}`}, "5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			as := newAS(t, nil)
			tok := as.Issue(introspectiontest.TokenOptions{})
			as.SetFault(tc.fault)
			v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) { s.Timeout = 50 * time.Millisecond })
			w := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			RequireBearerToken(v, &MiddlewareOptions{ResourceMetadataURL: "https://x/md"})(whoami).ServeHTTP(w, r)
			assert.Equal(t, http.StatusServiceUnavailable, w.Code)
			assert.Equal(t, tc.wantRetry, w.Header().Get("Retry-After"))
			assert.Empty(t, w.Header().Get("WWW-Authenticate"))
			assert.Equal(t, `{"error":"temporarily_unavailable"}`, strings.TrimSpace(w.Body.String()))
		})
	}
}

func TestRequireBearerTokenCanceledRequest(t *testing.T) {
	as := newAS(t, nil)
	v := newVerifier(t, as.IntrospectionURL, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx)
	r.Header.Set("Authorization", "Bearer "+as.Issue(introspectiontest.TokenOptions{}))
	RequireBearerToken(v, nil)(whoami).ServeHTTP(w, r)
	assert.Equal(t, http.StatusServiceUnavailable, w.Code, "fails closed")
}

func TestChallengeAttributesFiltered(t *testing.T) {
	as := newAS(t, nil)
	v := newVerifier(t, as.IntrospectionURL, nil, nil)
	w := httptest.NewRecorder()
	RequireBearerToken(v, &MiddlewareOptions{
		Realm:               "my \"realm\"\\\r\n",
		ResourceMetadataURL: "https://x/md\", error=\"evil",
		Scopes:              []string{"a\"b", "c\\d", "é"},
	})(whoami).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	assert.Equal(t, `Bearer realm="my realm", scope="ab cd", resource_metadata="https://x/md,error=evil"`, w.Header().Get("WWW-Authenticate"))
}

func TestProtectedResourceMetadata(t *testing.T) {
	h := ProtectedResourceMetadataHandler(ProtectedResourceMetadata{
		Resource:             "https://mcp.example.com/mcp",
		AuthorizationServers: []string{"https://as.example.com"},
		ScopesSupported:      []string{"tools"},
	})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/.well-known/oauth-protected-resource/mcp", nil))
	require.Equal(t, 200, w.Code)
	assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
	var got map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &got))
	assert.Equal(t, map[string]any{
		"resource":                 "https://mcp.example.com/mcp",
		"authorization_servers":    []any{"https://as.example.com"},
		"scopes_supported":         []any{"tools"},
		"bearer_methods_supported": []any{"header"},
	}, got)

	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/", nil))
	assert.Equal(t, http.StatusMethodNotAllowed, w.Code)
}

func TestMetadataURL(t *testing.T) {
	tests := []struct{ in, want, wantErr string }{
		{"https://mcp.example.com", "https://mcp.example.com/.well-known/oauth-protected-resource", ""},
		{"https://mcp.example.com/", "https://mcp.example.com/.well-known/oauth-protected-resource", ""},
		{"https://mcp.example.com/mcp", "https://mcp.example.com/.well-known/oauth-protected-resource/mcp", ""},
		{"http://127.0.0.1:8080/a/b?x=1", "http://127.0.0.1:8080/.well-known/oauth-protected-resource/a/b", ""},
		{"/mcp", "", "not an absolute URL"},
	}
	for _, tc := range tests {
		got, err := MetadataURL(tc.in)
		if tc.wantErr != "" {
			assert.ErrorContains(t, err, tc.wantErr)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, tc.want, got)
	}
}

// TestProtectedResourceMetadataAnswersPreflight checks that the metadata
// handler, serving a public document, answers CORS preflights and allows
// every origin.
func TestProtectedResourceMetadataAnswersPreflight(t *testing.T) {
	h := ProtectedResourceMetadataHandler(ProtectedResourceMetadata{Resource: "https://mcp.example.com/mcp"})
	tests := []struct {
		name        string
		method      string
		header      http.Header
		wantStatus  int
		wantHeaders map[string]string
	}{
		{"preflight", http.MethodOptions, http.Header{
			"Origin": {"https://app.example"}, "Access-Control-Request-Method": {"GET"},
			"Access-Control-Request-Headers": {"mcp-protocol-version"},
		}, 204, map[string]string{
			"Access-Control-Allow-Origin":  "*",
			"Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
			"Access-Control-Allow-Headers": "mcp-protocol-version",
			"Allow":                        "GET, HEAD, OPTIONS",
		}},
		{"preflight asking for odd headers", http.MethodOptions, http.Header{
			"Origin": {"https://app.example"}, "Access-Control-Request-Method": {"GET"},
			"Access-Control-Request-Headers": {"x-a, x\"b\r\nset-cookie: c"},
		}, 204, map[string]string{
			"Access-Control-Allow-Origin":  "*",
			"Access-Control-Allow-Headers": "x-a, xbset-cookie c",
		}},
		{"plain OPTIONS", http.MethodOptions, nil, 204, map[string]string{
			"Allow": "GET, HEAD, OPTIONS", "Access-Control-Allow-Origin": "*",
		}},
		{"cross-origin GET", http.MethodGet, http.Header{"Origin": {"https://app.example"}}, 200, map[string]string{
			"Access-Control-Allow-Origin": "*", "Content-Type": "application/json",
		}},
		{"HEAD", http.MethodHead, nil, 200, map[string]string{
			"Access-Control-Allow-Origin": "*", "Content-Type": "application/json",
		}},
		{"POST", http.MethodPost, nil, 405, map[string]string{"Allow": "GET, HEAD, OPTIONS"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/.well-known/oauth-protected-resource/mcp", nil)
			for k, vals := range tc.header {
				r.Header[k] = vals
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			assert.Equal(t, tc.wantStatus, w.Code)
			for k, want := range tc.wantHeaders {
				assert.Equal(t, want, w.Header().Get(k), k)
			}
			if tc.method == http.MethodOptions {
				assert.Empty(t, w.Body.String())
			}
		})
	}
}

// TestMetadataURLKeepsEscapedPathDropsUserinfo checks that MetadataURL
// keeps the resource's path exactly as escaped, drops credentials written
// into the URL and never repeats them in an error.
func TestMetadataURLKeepsEscapedPathDropsUserinfo(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://mcp.example.com/a%2Fb", "https://mcp.example.com/.well-known/oauth-protected-resource/a%2Fb"},
		{"https://mcp.example.com/a%2Fb/", "https://mcp.example.com/.well-known/oauth-protected-resource/a%2Fb"},
		{"https://mcp.example.com/%7euser/mcp", "https://mcp.example.com/.well-known/oauth-protected-resource/%7euser/mcp"},
		{"https://mcp.example.com/t%C3%A9st", "https://mcp.example.com/.well-known/oauth-protected-resource/t%C3%A9st"},
		{"https://mcp.example.com/a%20b", "https://mcp.example.com/.well-known/oauth-protected-resource/a%20b"},
		{"https://user:s3cret@mcp.example.com/mcp", "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"},
		{"https://user@mcp.example.com:8443/mcp#frag", "https://mcp.example.com:8443/.well-known/oauth-protected-resource/mcp"},
	}
	for _, tc := range tests {
		got, err := MetadataURL(tc.in)
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
	}
	for _, bad := range []string{"//user:s3cret@/mcp", "https://user:s3cret@mcp.example.com:port/mcp", "user:s3cret@mcp"} {
		_, err := MetadataURL(bad)
		require.Error(t, err, bad)
		assert.NotContains(t, err.Error(), "s3cret", bad)
		assert.True(t, strings.HasPrefix(err.Error(), "introspection: "), err.Error())
	}
}

// TestRetryAfterNeverNegativeOrWrapped checks that the Retry-After the
// middleware sends is a positive integer of at most maxRetryAfter seconds,
// whatever the authorization server sent.
func TestRetryAfterNeverNegativeOrWrapped(t *testing.T) {
	const capSeconds = "3600" // maxRetryAfter
	tests := []struct{ upstream, want string }{
		{"42", "42"},
		{"3600", capSeconds},
		{"3601", capSeconds},
		{"9223372036", capSeconds},           // fits a Duration; rounding up overflowed
		{"9223372037", capSeconds},           // overflows a Duration to a negative one
		{"18446744074", capSeconds},          // wraps to 0.29 s
		{"99999999999999999999", capSeconds}, // overflows an int
		{"Fri, 31 Dec 9999 23:59:59 GMT", capSeconds},
		{"0", "5"},
		{"-5", "5"},
		{"+7", "5"},
		{"1.5", "5"},
		{"soon", "5"},
		{"Mon, 01 Jan 2001 00:00:00 GMT", "5"},
	}
	for _, tc := range tests {
		t.Run(tc.upstream, func(t *testing.T) {
			as := newAS(t, nil)
			tok := as.Issue(introspectiontest.TokenOptions{})
			as.SetFault(introspectiontest.Fault{Status: 503, Header: http.Header{"Retry-After": {tc.upstream}}})
			v := newVerifier(t, as.IntrospectionURL, nil, nil)
			w := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			RequireBearerToken(v, nil)(whoami).ServeHTTP(w, r)
			require.Equal(t, http.StatusServiceUnavailable, w.Code)
			assert.Equal(t, tc.want, w.Header().Get("Retry-After"))
		})
	}
}

// TestParseRetryAfterBounded checks that a Retry-After becomes a delay in
// [0, maxRetryAfter], never a negative or wrapped one.
func TestParseRetryAfterBounded(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"0", 0},
		{"1", time.Second},
		{"3600", maxRetryAfter},
		{"3601", maxRetryAfter},
		{"9223372036", maxRetryAfter},
		{"9223372037", maxRetryAfter},
		{"18446744074", maxRetryAfter},
		{"99999999999999999999", maxRetryAfter},
		{"-1", 0},
		{"+1", 0},
		{" 1", 0},
		{"1e3", 0},
		{"", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(maxRetryAfter).Format(http.TimeFormat), maxRetryAfter},
		{now.Add(maxRetryAfter + time.Second).Format(http.TimeFormat), maxRetryAfter},
		{"Fri, 31 Dec 9999 23:59:59 GMT", maxRetryAfter},
		{now.Add(-time.Second).Format(http.TimeFormat), 0},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, parseRetryAfter(tc.in, now), "Retry-After: %q", tc.in)
	}
}

// TestRetryAfterSentIsBounded checks the value the middleware sends for any
// delay an error may carry, also one that did not come through
// parseRetryAfter.
func TestRetryAfterSentIsBounded(t *testing.T) {
	tests := []struct {
		delay time.Duration
		want  string
	}{
		{0, "5"},
		{-time.Second, "5"},
		{math.MinInt64, "5"},
		{time.Nanosecond, "1"},
		{time.Second, "1"},
		{time.Second + 1, "2"},
		{maxRetryAfter, "3600"},
		{maxRetryAfter + 1, "3600"},
		{math.MaxInt64, "3600"},
	}
	for _, tc := range tests {
		err := fmt.Errorf("wrapped: %w", &IntrospectionError{Kind: FailureStatus, RetryAfter: tc.delay})
		assert.Equal(t, tc.want, retryAfter(err), "RetryAfter %d", int64(tc.delay))
	}
	assert.Equal(t, "5", retryAfter(context.Canceled))
}

// TestRequireBearerTokenRefusesTokenOutsideHeader checks that a token in the
// query, under any spelling a server may decode to access_token, or in a
// form-encoded body (RFC 6750 §2.2, §2.3) gets 400, also beside a valid
// header, while a query or body that merely contains the text passes.
func TestRequireBearerTokenRefusesTokenOutsideHeader(t *testing.T) {
	as := newAS(t, nil)
	good := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})
	v := newVerifier(t, as.IntrospectionURL, nil, nil)
	const form = "application/x-www-form-urlencoded"
	tests := []struct {
		name        string
		header      bool // send "Bearer good"
		query       string
		contentType string
		body        string
		want        int
	}{
		{"query", false, "access_token=" + good, "", "", 400},
		{"query beside header", true, "access_token=" + good, "", "", 400},
		{"escaped underscore", true, "access%5Ftoken=" + good, "", "", 400},
		{"escaped letters", false, "%61ccess_token=" + good, "", "", 400},
		{"semicolon separator", true, "a=1;access_token=" + good, "", "", 400},
		{"semicolon first", true, "access_token=" + good + ";a=1", "", "", 400},
		{"empty value", true, "access_token=", "", "", 400},
		{"no value", true, "x=1&access_token", "", "", 400},
		{"second parameter", true, "x=1&access_token=" + good, "", "", 400},
		{"form body", false, "", form, "access_token=" + good, 400},
		{"form body beside header", true, "", form, "a=1&access_token=" + good, 400},
		{"form body with charset", true, "", form + "; charset=utf-8", "access_token=" + good, 400},
		{"form body uppercase type", true, "", "Application/X-WWW-Form-Urlencoded", "access_token=" + good, 400},
		{"form body escaped key", true, "", form, "access%5ftoken=" + good, 400},
		{"form body semicolon", true, "", form, "a=1;access_token=" + good, 400},
		{"unparsable content type", true, "", form + ";;", "access_token=" + good, 400},

		{"text in a value", true, "q=access_token", "", "", 200},
		{"longer key", true, "my_access_token=1&access_tokens=2", "", "", 200},
		{"escaped text in a value", true, "q=access%5Ftoken%3D1", "", "", 200},
		{"plus is a space", true, "access+token=1", "", "", 200},
		{"form body text in a value", true, "", form, "q=access_token", 200},
		{"JSON body with the key", true, "", "application/json", `{"access_token":"x"}`, 200},
		{"text body with the key", true, "", "text/plain", "access_token=x", 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			target := "/mcp"
			if tc.query != "" {
				target += "?" + tc.query
			}
			r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(tc.body))
			if tc.header {
				r.Header.Set("Authorization", "Bearer "+good)
			}
			if tc.contentType != "" {
				r.Header.Set("Content-Type", tc.contentType)
			}
			w := httptest.NewRecorder()
			RequireBearerToken(v, nil)(whoami).ServeHTTP(w, r)
			assert.Equal(t, tc.want, w.Code)
			if tc.want == 400 {
				assert.Equal(t, `Bearer error="invalid_request"`, w.Header().Get("WWW-Authenticate"))
				assert.Equal(t, `{"error":"invalid_request"}`, strings.TrimSpace(w.Body.String()))
			}
		})
	}
}

// echoBody answers with the request body the handler reads.
var echoBody = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if _, ok := AccessTokenFromContext(r.Context()); !ok {
		http.Error(w, "no token in context", http.StatusInternalServerError)
		return
	}
	body, err := io.ReadAll(r.Body) // all of it before answering, as HTTP/1 asks
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	_, _ = w.Write(body)
})

// TestFormBodyRestoredForNextHandler checks that the middleware reads a
// form-encoded body through a bound and hands the next handler all of it,
// byte for byte, and that a body past the bound, which it cannot check
// without reading it all, gets 400.
func TestFormBodyRestoredForNextHandler(t *testing.T) {
	as := newAS(t, nil)
	good := as.Issue(introspectiontest.TokenOptions{})
	v := newVerifier(t, as.IntrospectionURL, nil, nil)
	filler := func(n int) string { return "a=" + strings.Repeat("b", n-2) }
	tests := []struct {
		name string
		body string
		want int
	}{
		{"small", "a=1&b=2", 200},
		{"empty", "", 200},
		{"at the bound", filler(maxFormScan), 200},
		{"past the bound", filler(maxFormScan + 1), 400},
		{"token past the bound", filler(maxFormScan) + "&access_token=" + good, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			postForm(t, v, good, tc.body, "application/x-www-form-urlencoded", false, tc.want)
		})
	}
}

// failingBody fails every read, as a body does whose client went away.
type failingBody struct{}

func (failingBody) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

// TestUnreadableFormBodyRefused checks that a form-encoded body that cannot
// be read, and so not checked, gets 400 and never reaches the handler.
func TestUnreadableFormBodyRefused(t *testing.T) {
	as := newAS(t, nil)
	var logs strings.Builder
	v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) { s.Logger = newTestLogger(&logs) })
	r := httptest.NewRequest(http.MethodPost, "/", failingBody{})
	r.Header.Set("Authorization", "Bearer "+as.Issue(introspectiontest.TokenOptions{}))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	RequireBearerToken(v, nil)(echoBody).ServeHTTP(w, r)
	assert.Equal(t, http.StatusBadRequest, w.Code)
	assert.Contains(t, logs.String(), `reason="unreadable form-encoded body"`)
	assert.Zero(t, as.Requests())
}

// TestRequireBearerTokenPassesPreflight checks that a CORS preflight, which
// browsers send without credentials, reaches the next handler (a CORS layer
// or the MCP handler) instead of a 401, with no token in its context.
func TestRequireBearerTokenPassesPreflight(t *testing.T) {
	as := newAS(t, nil)
	v := newVerifier(t, as.IntrospectionURL, nil, nil)
	var reached int
	var hadToken bool
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached++
		_, hadToken = AccessTokenFromContext(r.Context())
		w.WriteHeader(http.StatusNoContent)
	})
	tests := []struct {
		name          string
		method        string
		header        http.Header
		wantStatus    int
		wantReachNext bool
	}{
		{"preflight", http.MethodOptions, http.Header{
			"Origin": {"https://app.example"}, "Access-Control-Request-Method": {"POST"},
			"Access-Control-Request-Headers": {"authorization, content-type, mcp-session-id"},
		}, 204, true},
		{"preflight with a query token", http.MethodOptions, http.Header{
			"Origin": {"https://app.example"}, "Access-Control-Request-Method": {"POST"},
		}, 204, true},
		{"OPTIONS without Origin", http.MethodOptions, http.Header{"Access-Control-Request-Method": {"POST"}}, 401, false},
		{"OPTIONS without a requested method", http.MethodOptions, http.Header{"Origin": {"https://app.example"}}, 401, false},
		{"POST with preflight headers", http.MethodPost, http.Header{
			"Origin": {"https://app.example"}, "Access-Control-Request-Method": {"POST"},
		}, 401, false},
		{"preflight with a bad Authorization", http.MethodOptions, http.Header{
			"Origin": {"https://app.example"}, "Access-Control-Request-Method": {"POST"},
			"Authorization": {"Bearer unknown"},
		}, 401, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reached, hadToken = 0, false
			before := as.Requests()
			r := httptest.NewRequest(tc.method, "/mcp", nil)
			if tc.name == "preflight with a query token" {
				r = httptest.NewRequest(tc.method, "/mcp?access_token=x", nil)
			}
			for k, vals := range tc.header {
				r.Header[k] = vals
			}
			w := httptest.NewRecorder()
			RequireBearerToken(v, &MiddlewareOptions{ResourceMetadataURL: "https://x/md"})(next).ServeHTTP(w, r)
			assert.Equal(t, tc.wantStatus, w.Code)
			if tc.wantReachNext {
				assert.Equal(t, 1, reached)
				assert.False(t, hadToken)
				assert.Empty(t, w.Header().Get("WWW-Authenticate"))
				assert.Equal(t, before, as.Requests(), "a preflight is never introspected")
			} else {
				assert.Zero(t, reached)
			}
		})
	}
}

// TestRequireBearerTokenNilVerifierFailsClosed checks that a nil verifier
// does not panic while the handler is built, and that then every request,
// a preflight included, gets 500 and nothing reaches the next handler.
func TestRequireBearerTokenNilVerifierFailsClosed(t *testing.T) {
	var reached int
	next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached++ })
	var h http.Handler
	require.NotPanics(t, func() { h = RequireBearerToken(nil, &MiddlewareOptions{Scopes: []string{"tools"}})(next) })
	for _, r := range []*http.Request{
		httptest.NewRequest(http.MethodGet, "/", nil),
		func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/", nil)
			r.Header.Set("Authorization", "Bearer abc")
			return r
		}(),
		func() *http.Request {
			r := httptest.NewRequest(http.MethodOptions, "/", nil)
			r.Header.Set("Origin", "https://app.example")
			r.Header.Set("Access-Control-Request-Method", "POST")
			return r
		}(),
	} {
		w := httptest.NewRecorder()
		require.NotPanics(t, func() { h.ServeHTTP(w, r) })
		assert.Equal(t, http.StatusInternalServerError, w.Code)
		assert.Equal(t, `{"error":"server_error"}`, strings.TrimSpace(w.Body.String()))
	}
	assert.Zero(t, reached)
}

// TestRequireBearerTokenLogsOwnRejections checks that a rejection the
// middleware decides by itself is logged once at debug with its reason and
// never the token, while one that Verify decides is left to Verify's log.
func TestRequireBearerTokenLogsOwnRejections(t *testing.T) {
	as := newAS(t, nil)
	readOnly := as.Issue(introspectiontest.TokenOptions{Scopes: []string{"read"}})
	tests := []struct {
		name       string
		header     string
		query      string
		wantStatus int
		wantReason string // "" means the middleware logs nothing
	}{
		{"no credentials", "", "", 401, "no bearer credentials"},
		{"malformed header", "Bearer a b", "", 400, "malformed bearer credentials"},
		{"token in the query", "", "access_token=" + readOnly, 400, "token in the URI query"},
		{"route scope missing", "Bearer " + readOnly, "", 403, "introspection: insufficient scope: missing tools"},
		{"token refused by Verify", "Bearer unknown-" + readOnly, "", 401, ""},
		{"other scheme", "Basic " + readOnly, "", 401, "no bearer credentials"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs strings.Builder
			v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) { s.Logger = newTestLogger(&logs) })
			target := "/mcp"
			if tc.query != "" {
				target += "?" + tc.query
			}
			r := httptest.NewRequest(http.MethodPost, target, nil)
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			w := httptest.NewRecorder()
			RequireBearerToken(v, &MiddlewareOptions{Scopes: []string{"tools"}})(whoami).ServeHTTP(w, r)
			require.Equal(t, tc.wantStatus, w.Code)
			assert.NotContains(t, logs.String(), readOnly)
			var mine []string
			for _, line := range strings.Split(logs.String(), "\n") {
				if strings.Contains(line, `msg="introspection: request rejected"`) {
					mine = append(mine, line)
				}
			}
			if tc.wantReason == "" {
				assert.Empty(t, mine)
				return
			}
			require.Len(t, mine, 1, logs.String())
			assert.Contains(t, mine[0], "level=DEBUG")
			assert.Contains(t, mine[0], "reason="+strconv.Quote(tc.wantReason))
			assert.Contains(t, mine[0], "status="+strconv.Itoa(tc.wantStatus))
		})
	}
}

// onlyReader hides every method of its reader but Read, so that net/http
// sends the body chunked, of unknown length.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// TestFormBodyTokenAtTheBoundAndChunked puts access_token at the very end of
// a form-encoded body of exactly maxFormScan bytes, and in a chunked body:
// both get 400, and a chunked body without one reaches the handler whole.
func TestFormBodyTokenAtTheBoundAndChunked(t *testing.T) {
	as := newAS(t, nil)
	good := as.Issue(introspectiontest.TokenOptions{})
	v := newVerifier(t, as.IntrospectionURL, nil, nil)
	tail := "&access_token=" + good
	atBound := "a=" + strings.Repeat("b", maxFormScan-2-len(tail)) + tail
	require.Len(t, atBound, maxFormScan)
	tests := []struct {
		name    string
		body    string
		chunked bool
		want    int
	}{
		{"token ends a body at the bound", atBound, false, 400},
		{"token in a chunked body", "a=1&access_token=" + good, true, 400},
		{"chunked body at the bound", "a=" + strings.Repeat("b", maxFormScan-2), true, 200},
		{"chunked body past the bound", "a=" + strings.Repeat("b", maxFormScan-1), true, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			postForm(t, v, good, tc.body, "application/x-www-form-urlencoded; charset=utf-8", tc.chunked, tc.want)
		})
	}
}

// postForm sends body, chunked if asked, with token in the header through
// RequireBearerToken to a handler that echoes the body it reads: the answer
// has status want, and with 200 the handler read body exactly.
func postForm(t *testing.T, v *Verifier, token, body, contentType string, chunked bool, want int) {
	t.Helper()
	srv := httptest.NewServer(RequireBearerToken(v, nil)(echoBody))
	defer srv.Close()
	var r io.Reader = strings.NewReader(body)
	if chunked {
		r = onlyReader{r}
	}
	req, err := http.NewRequest(http.MethodPost, srv.URL, r)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", contentType)
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, want, resp.StatusCode)
	if want == http.StatusOK {
		assert.Len(t, got, len(body))
		assert.True(t, string(got) == body, "the next handler read another body")
	}
}
