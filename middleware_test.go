package introspection

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
		Scopes:              []string{"ab", "cd"},
	})(whoami).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	assert.Equal(t, `Bearer realm="my realm", scope="ab cd", resource_metadata="https://x/md,error=evil"`, w.Header().Get("WWW-Authenticate"))
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
		{"no credentials", "", "", 401, "no credentials"},
		{"malformed header", "Bearer a b", "", 400, "malformed bearer credentials"},
		{"token in the query", "", "access_token=" + readOnly, 400, "token in the URI query"},
		{"route scope missing", "Bearer " + readOnly, "", 403, "introspection: insufficient scope: missing tools"},
		{"token refused by Verify", "Bearer unknown-" + readOnly, "", 401, ""},
		{"other scheme", "Basic " + readOnly, "", 401, "no credentials"},
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

// hierarchyVerifier is a verifier for as with the "a:b:c" hierarchy and the
// server-wide required scopes given, logging to logs if it is not nil.
func hierarchyVerifier(t *testing.T, as *introspectiontest.Server, logs *recordingHandler, required ...string) *Verifier {
	t.Helper()
	hier, err := HierarchicalScopes(":")
	require.NoError(t, err)
	return newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
		s.RequiredScopes = required
		s.ScopeMatcher = hier
		if logs != nil {
			s.Logger = slog.New(logs)
		}
	})
}

// bearerRequest is a POST to /mcp with token in the Authorization header.
func bearerRequest(token string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(`{"jsonrpc":"2.0"}`))
	r.Header.Set("Content-Type", "application/json")
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}

// TestOperationScopesInOneChallenge checks that the middleware holds a
// request to the server-wide, route and operation scopes under the
// verifier's matcher, and that a 403 names every scope the operation needs
// in one challenge, in that order and once each, with the operation named
// in error_description; also when Verify itself refused the token for a
// server-wide scope.
func TestOperationScopesInOneChallenge(t *testing.T) {
	as := newAS(t, nil)
	v := hierarchyVerifier(t, as, nil, "mcp:tools")
	const md = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
	echo := Operation{Name: `tool "echo"`, Scopes: []string{"mcp:echo"}}
	whoamiOp := Operation{Name: `tool "whoami"`}
	tests := []struct {
		name      string
		granted   []string
		route     []string
		op        Operation
		want      int
		wantAuth  string
		wantCalls int // of the OperationFunc
	}{
		{"broad scope calls the scoped tool", []string{"mcp"}, nil, echo, 200, "", 1},
		{"server-wide scope calls the plain tool", []string{"mcp:tools"}, nil, whoamiOp, 200, "", 1},
		{"both scopes exactly", []string{"mcp:tools", "mcp:echo"}, nil, echo, 200, "", 1},
		{"server-wide scope calls the scoped tool", []string{"mcp:tools"}, nil, echo, 403,
			`Bearer error="insufficient_scope", error_description="tool 'echo' needs mcp:tools mcp:echo", scope="mcp:tools mcp:echo", resource_metadata="` + md + `"`, 1},
		{"tool scope alone calls the plain tool", []string{"mcp:echo"}, nil, whoamiOp, 403,
			`Bearer error="insufficient_scope", error_description="tool 'whoami' needs mcp:tools", scope="mcp:tools", resource_metadata="` + md + `"`, 1},
		{"tool scope alone calls the scoped tool", []string{"mcp:echo"}, nil, echo, 403,
			`Bearer error="insufficient_scope", error_description="tool 'echo' needs mcp:tools mcp:echo", scope="mcp:tools mcp:echo", resource_metadata="` + md + `"`, 1},
		{"no scope, route and operation scopes deduplicated", nil, []string{"files", "mcp:tools"},
			Operation{Name: "op", Scopes: []string{"mcp:echo", "files", "mcp:tools", "mcp:echo"}}, 403,
			`Bearer error="insufficient_scope", error_description="op needs mcp:tools files mcp:echo", scope="mcp:tools files mcp:echo", resource_metadata="` + md + `"`, 1},
		{"route scope missing, operation unnamed", []string{"mcp:tools"}, []string{"files:read"}, Operation{}, 403,
			`Bearer error="insufficient_scope", scope="mcp:tools files:read", resource_metadata="` + md + `"`, 1},
		{"route scope by hierarchy", []string{"mcp:tools", "files"}, []string{"files:read"}, Operation{}, 200, "", 1},
		{"narrower grant never implies the broader scope", []string{"mcp:tools:list"}, nil, Operation{}, 403,
			`Bearer error="insufficient_scope", scope="mcp:tools", resource_metadata="` + md + `"`, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			h := RequireBearerToken(v, &MiddlewareOptions{
				ResourceMetadataURL: md,
				Scopes:              tc.route,
				Operation: func(*http.Request) (Operation, error) {
					calls++
					return tc.op, nil
				},
			})(whoami)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, bearerRequest(as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: tc.granted})))
			assert.Equal(t, tc.want, w.Code)
			assert.Equal(t, tc.wantAuth, w.Header().Get("WWW-Authenticate"))
			assert.Equal(t, tc.wantCalls, calls)
			if tc.want == 200 {
				assert.Equal(t, "hello alice", w.Body.String())
			} else {
				assert.Equal(t, `{"error":"insufficient_scope"}`, strings.TrimSpace(w.Body.String()))
			}
		})
	}
}

// TestChallengeNeverListsOfflineAccess checks that offline_access, which
// servers should not ask for, is left out of every challenge's scope, from
// the settings, the route and the operation alike.
func TestChallengeNeverListsOfflineAccess(t *testing.T) {
	as := newAS(t, nil)
	v := hierarchyVerifier(t, as, nil, "offline_access", "mcp:tools")
	h := RequireBearerToken(v, &MiddlewareOptions{
		Scopes: []string{"files", "offline_access"},
		Operation: func(*http.Request) (Operation, error) {
			return Operation{Name: "op", Scopes: []string{"offline_access", "mcp:echo"}}, nil
		},
	})(whoami)
	tests := []struct {
		name     string
		token    string
		want     int
		wantAuth string
	}{
		{"no token", "", 401, `Bearer scope="mcp:tools files"`},
		{"unknown token", "unknown", 401, `Bearer error="invalid_token", scope="mcp:tools files"`},
		{"no scope", as.Issue(introspectiontest.TokenOptions{}), 403,
			`Bearer error="insufficient_scope", error_description="op needs mcp:tools files mcp:echo", scope="mcp:tools files mcp:echo"`},
		{"all but offline_access", as.Issue(introspectiontest.TokenOptions{Scopes: []string{"mcp", "files"}}), 403,
			`Bearer error="insufficient_scope", error_description="op needs mcp:tools files mcp:echo", scope="mcp:tools files mcp:echo"`},
		{"all", as.Issue(introspectiontest.TokenOptions{Scopes: []string{"mcp", "files", "offline_access"}}), 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, bearerRequest(tc.token))
			assert.Equal(t, tc.want, w.Code)
			assert.Equal(t, tc.wantAuth, w.Header().Get("WWW-Authenticate"))
			assert.NotContains(t, w.Header().Get("WWW-Authenticate"), "offline_access")
		})
	}

	// Left out of the challenge, offline_access is still required where
	// the route or the operation asks for it.
	plain := hierarchyVerifier(t, as, nil)
	for _, tc := range []struct {
		name     string
		route    []string
		op       []string
		wantAuth string
	}{
		{"route", []string{"offline_access", "mcp:echo"}, nil,
			`Bearer error="insufficient_scope", error_description="op needs mcp:echo", scope="mcp:echo"`},
		{"operation", nil, []string{"offline_access", "mcp:echo"},
			`Bearer error="insufficient_scope", error_description="op needs mcp:echo", scope="mcp:echo"`},
		{"route alone", []string{"offline_access"}, nil, `Bearer error="insufficient_scope", error_description="op"`},
	} {
		t.Run("still required by the "+tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			RequireBearerToken(plain, &MiddlewareOptions{Scopes: tc.route, Operation: func(*http.Request) (Operation, error) {
				return Operation{Name: "op", Scopes: tc.op}, nil
			}})(whoami).ServeHTTP(w, bearerRequest(as.Issue(introspectiontest.TokenOptions{Scopes: []string{"mcp"}})))
			assert.Equal(t, 403, w.Code)
			assert.Equal(t, tc.wantAuth, w.Header().Get("WWW-Authenticate"))
		})
	}
}

// TestOperationRefusals checks how the middleware answers an OperationFunc
// that fails: 413 for a body too large, 400 invalid_request for any other
// error, 500 for a panic or a scope no token can hold. The error text is
// logged at debug and never sent; a panic is counted and logged without its
// value; the next handler is never reached.
func TestOperationRefusals(t *testing.T) {
	const secretish = "error-text-from-the-operation"
	as := newAS(t, nil)
	tests := []struct {
		name        string
		op          OperationFunc
		granted     []string
		want        int
		wantAuth    string
		wantBody    string
		wantLog     string // in the middleware's debug record
		wantPanics  uint64
		wantPanicIn string
	}{
		{"too large", func(*http.Request) (Operation, error) {
			return Operation{}, fmt.Errorf("%s: %w", secretish, ErrRequestTooLarge)
		}, []string{"mcp:tools"}, 413, "", "request_too_large", secretish, 0, ""},
		{"unreadable", func(*http.Request) (Operation, error) {
			return Operation{Name: "x", Scopes: []string{"mcp:echo"}}, errors.New(secretish)
		}, []string{"mcp:tools"}, 400, `Bearer error="invalid_request"`, "invalid_request", secretish, 0, ""},
		{"unreadable, server-wide scope missing too", func(*http.Request) (Operation, error) {
			return Operation{}, errors.New(secretish)
		}, nil, 400, `Bearer error="invalid_request"`, "invalid_request", secretish, 0, ""},
		{"panic", func(*http.Request) (Operation, error) {
			panic(secretish)
		}, []string{"mcp:tools"}, 500, "", "server_error", "", 1, "OperationFunc"},
		{"runtime panic", func(r *http.Request) (Operation, error) {
			var parts []string
			return Operation{Name: parts[len(r.URL.Path)]}, nil // index out of range
		}, []string{"mcp:tools"}, 500, "", "server_error", "", 1, "OperationFunc"},
		{"invalid operation scope", func(*http.Request) (Operation, error) {
			return Operation{Scopes: []string{"mcp:echo", secretish + " x"}}, nil
		}, []string{"mcp"}, 500, "", "server_error", "", 0, ""},
		{"empty operation scope", func(*http.Request) (Operation, error) {
			return Operation{Scopes: []string{""}}, nil
		}, []string{"mcp"}, 500, "", "server_error", "", 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logs := &recordingHandler{}
			v := hierarchyVerifier(t, as, logs, "mcp:tools")
			reached := 0
			next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached++ })
			w := httptest.NewRecorder()
			tok := as.Issue(introspectiontest.TokenOptions{Scopes: tc.granted})
			RequireBearerToken(v, &MiddlewareOptions{Operation: tc.op})(next).ServeHTTP(w, bearerRequest(tok))
			assert.Equal(t, tc.want, w.Code)
			assert.Zero(t, reached)
			assert.Equal(t, tc.wantAuth, w.Header().Get("WWW-Authenticate"))
			assert.Equal(t, `{"error":"`+tc.wantBody+`"}`, strings.TrimSpace(w.Body.String()))
			assert.NotContains(t, fmt.Sprint(w.Header()), secretish)
			assert.EqualValues(t, tc.wantPanics, v.Stats().Panics)
			if tc.wantLog != "" {
				recs := logs.matching("request rejected")
				require.Len(t, recs, 1, logs.text())
				assert.Equal(t, slog.LevelDebug, recs[0].Level)
				reason, _ := attr(recs[0], "reason")
				assert.Contains(t, reason, tc.wantLog)
			} else {
				assert.NotContains(t, logs.text(), secretish, "a panic value or an invalid scope is never logged")
			}
			if tc.wantPanicIn != "" {
				recs := logs.matching("recovered from a panic")
				require.Len(t, recs, 1)
				in, _ := attr(recs[0], "in")
				assert.Equal(t, tc.wantPanicIn, in)
			}
			if tc.want == 500 && tc.wantPanics == 0 {
				assert.Len(t, logs.matching("OperationFunc returned an invalid scope"), 1)
			}
		})
	}
}

// TestOperationOnlyForVerifiedTokens checks that the OperationFunc, which
// may read the body, runs only once the token is verified (or refused for a
// server-wide scope alone), never for a request refused earlier.
func TestOperationOnlyForVerifiedTokens(t *testing.T) {
	as := newAS(t, nil)
	v := hierarchyVerifier(t, as, nil, "mcp:tools")
	calls := 0
	op := func(*http.Request) (Operation, error) { calls++; return Operation{}, nil }
	tests := []struct {
		name      string
		req       func() *http.Request
		fault     *introspectiontest.Fault
		want      int
		wantCalls int
	}{
		{"no credentials", func() *http.Request { return bearerRequest("") }, nil, 401, 0},
		{"malformed credentials", func() *http.Request {
			r := bearerRequest("")
			r.Header.Set("Authorization", "Bearer a b")
			return r
		}, nil, 400, 0},
		{"unknown token", func() *http.Request { return bearerRequest("unknown") }, nil, 401, 0},
		{"outage", func() *http.Request { return bearerRequest(as.Issue(introspectiontest.TokenOptions{})) },
			&introspectiontest.Fault{Status: 500}, 503, 0},
		{"preflight", func() *http.Request {
			r := httptest.NewRequest(http.MethodOptions, "/mcp", nil)
			r.Header.Set("Origin", "https://app.example")
			r.Header.Set("Access-Control-Request-Method", "POST")
			return r
		}, nil, 200, 0},
		{"server-wide scope missing", func() *http.Request { return bearerRequest(as.Issue(introspectiontest.TokenOptions{})) }, nil, 403, 1},
		{"accepted", func() *http.Request {
			return bearerRequest(as.Issue(introspectiontest.TokenOptions{Scopes: []string{"mcp:tools"}}))
		}, nil, 200, 1},
	}
	next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls = 0
			if tc.fault != nil {
				as.SetFault(*tc.fault)
				defer as.SetFault(introspectiontest.Fault{})
			}
			w := httptest.NewRecorder()
			RequireBearerToken(v, &MiddlewareOptions{Operation: op})(next).ServeHTTP(w, tc.req())
			assert.Equal(t, tc.want, w.Code)
			assert.Equal(t, tc.wantCalls, calls)
		})
	}
}

// countingBody counts the reads of a request body.
type countingBody struct {
	io.Reader
	reads int
}

func (b *countingBody) Read(p []byte) (int, error) { b.reads++; return b.Reader.Read(p) }

// TestNoOperationNeverReadsTheBody checks that without an OperationFunc the
// middleware never reads a body that is not form-encoded.
func TestNoOperationNeverReadsTheBody(t *testing.T) {
	as := newAS(t, nil)
	v := hierarchyVerifier(t, as, nil)
	for _, ct := range []string{"application/json", "text/plain", ""} {
		t.Run(ct, func(t *testing.T) {
			body := &countingBody{Reader: strings.NewReader(`{"jsonrpc":"2.0","method":"tools/call"}`)}
			r := httptest.NewRequest(http.MethodPost, "/mcp", body)
			r.Header.Set("Content-Type", ct)
			r.Header.Set("Authorization", "Bearer "+as.Issue(introspectiontest.TokenOptions{}))
			w := httptest.NewRecorder()
			RequireBearerToken(v, &MiddlewareOptions{Scopes: []string{"mcp"}})(whoami).ServeHTTP(w, r)
			assert.Equal(t, 403, w.Code)
			assert.Zero(t, body.reads)
		})
	}
}

// TestInvalidRouteScopesFailClosed checks that a route scope no token can
// hold (not an RFC 6749 §3.3 scope-token) makes every request fail with
// 500, as a nil verifier does, rather than being filtered into another
// scope; the fault is logged once, when the middleware is built.
func TestInvalidRouteScopesFailClosed(t *testing.T) {
	as := newAS(t, nil)
	good := as.Issue(introspectiontest.TokenOptions{Scopes: []string{"a", "ab", "b"}})
	for _, bad := range []string{"", "a b", `a"b`, `a\b`, "é", "a\r\n"} {
		t.Run(fmt.Sprintf("%q", bad), func(t *testing.T) {
			logs := &recordingHandler{}
			v := hierarchyVerifier(t, as, logs)
			before := as.Requests()
			reached := 0
			next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached++ })
			h := RequireBearerToken(v, &MiddlewareOptions{Scopes: []string{"a", bad}})(next)
			preflight := httptest.NewRequest(http.MethodOptions, "/mcp", nil)
			preflight.Header.Set("Origin", "https://app.example")
			preflight.Header.Set("Access-Control-Request-Method", "POST")
			for _, r := range []*http.Request{bearerRequest(good), bearerRequest(""), preflight} {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				assert.Equal(t, http.StatusInternalServerError, w.Code)
				assert.Equal(t, `{"error":"server_error"}`, strings.TrimSpace(w.Body.String()))
				assert.Empty(t, w.Header().Get("WWW-Authenticate"))
			}
			assert.Zero(t, reached)
			assert.Equal(t, before, as.Requests(), "no token is introspected")
			recs := logs.matching("invalid scope in MiddlewareOptions.Scopes")
			require.Len(t, recs, 1, logs.text())
			assert.Equal(t, slog.LevelError, recs[0].Level)
		})
	}
}

// TestErrorDescriptionFilteredAndBounded checks that the error_description
// naming the operation holds only the characters RFC 6750 §3 allows, with
// '"' shown as "'", and at most maxErrorDescription bytes.
func TestErrorDescriptionFilteredAndBounded(t *testing.T) {
	as := newAS(t, nil)
	v := hierarchyVerifier(t, as, nil)
	const needs = " needs x"
	fits := strings.Repeat("n", maxErrorDescription-len(needs))
	tests := []struct{ name, opName, want string }{
		{"quotes", `tool "echo"`, `tool 'echo' needs x`},
		{"backslash", `tool "a\b"`, `tool 'ab' needs x`},
		{"control characters", "tool\r\n\t\x00\x7f x", "tool x needs x"},
		{"non-ASCII", "tool \"café\u2028\"", "tool 'caf' needs x"},
		{"at the bound", fits, fits + needs},
		{"past the bound", fits + "m", fits + "m nee..."},
		{"far past the bound", strings.Repeat("n", 10_000), strings.Repeat("n", maxErrorDescription-3) + "..."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			RequireBearerToken(v, &MiddlewareOptions{Operation: func(*http.Request) (Operation, error) {
				return Operation{Name: tc.opName, Scopes: []string{"x"}}, nil
			}})(whoami).ServeHTTP(w, bearerRequest(as.Issue(introspectiontest.TokenOptions{})))
			require.Equal(t, 403, w.Code)
			assert.Equal(t, `Bearer error="insufficient_scope", error_description="`+tc.want+`", scope="x"`,
				w.Header().Get("WWW-Authenticate"))
			assert.LessOrEqual(t, len(tc.want), maxErrorDescription)
		})
	}
}

// TestPanickingMatcherInMiddlewareFailsClosed checks that a ScopeMatcher
// that panics, in Verify's check of the server-wide scopes or in the
// middleware's own check, gets 500 and never reaches the next handler.
func TestPanickingMatcherInMiddlewareFailsClosed(t *testing.T) {
	as := newAS(t, nil)
	for _, tc := range []struct {
		name     string
		required []string
		route    []string
	}{
		{"server-wide scope", []string{"mcp:tools"}, nil},
		{"route scope", nil, []string{"mcp:tools"}},
		{"operation scope", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) {
				s.RequiredScopes = tc.required
				s.ScopeMatcher = func(string, string) bool { panic("matcher failed") }
			})
			reached := 0
			next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached++ })
			w := httptest.NewRecorder()
			RequireBearerToken(v, &MiddlewareOptions{Scopes: tc.route, Operation: func(*http.Request) (Operation, error) {
				return Operation{Scopes: []string{"mcp:echo"}}, nil
			}})(next).ServeHTTP(w, bearerRequest(as.Issue(introspectiontest.TokenOptions{Scopes: []string{"mcp"}})))
			assert.Equal(t, http.StatusInternalServerError, w.Code)
			assert.Equal(t, `{"error":"server_error"}`, strings.TrimSpace(w.Body.String()))
			assert.Zero(t, reached)
			assert.EqualValues(t, 1, v.Stats().Panics)
		})
	}
}
