package introspection

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// respond answers with status, content type and body.
func respond(status int, contentType, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

// answer200 answers 200 application/json with body.
func answer200(body string) http.HandlerFunc { return respond(200, "application/json", body) }

// stall waits for the client to give up. It reads the body first: only then
// does net/http notice the client leaving and end r.Context().
func stall(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	<-r.Context().Done()
}

// TestFaultMatrix sends the verifier bad answers and bad conditions. Each
// must give its exact error class, be counted in Stats, and never accept the
// token.
func TestFaultMatrix(t *testing.T) {
	const timeout = 200 * time.Millisecond
	// activeTarget would accept any token; redirects must never reach it.
	var targetHits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		targetHits.Add(1)
		answer200(`{"active":true}`)(w, r)
	}))
	defer target.Close()
	redirect := func(code int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL, code)
		}
	}
	deep := `{"active":true,"x":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`

	tests := []struct {
		name     string
		handler  http.HandlerFunc
		url      func(t *testing.T) string // instead of handler
		wantKind FailureKind
		wantCode int
	}{
		// Status codes.
		{name: "201 Created", handler: respond(201, "application/json", `{"active":true}`), wantKind: FailureStatus, wantCode: 201},
		{name: "204 No Content", handler: respond(204, "", ""), wantKind: FailureStatus, wantCode: 204},
		{name: "301 to an active server", handler: redirect(301), wantKind: FailureRedirect, wantCode: 301},
		{name: "302 to an active server", handler: redirect(302), wantKind: FailureRedirect, wantCode: 302},
		{name: "307 to an active server", handler: redirect(307), wantKind: FailureRedirect, wantCode: 307},
		{name: "308 to an active server", handler: redirect(308), wantKind: FailureRedirect, wantCode: 308},
		{name: "400 invalid_request", handler: respond(400, "application/json", `{"error":"invalid_request"}`), wantKind: FailureStatus, wantCode: 400},
		{name: "401 invalid_client", handler: respond(401, "application/json", `{"error":"invalid_client"}`), wantKind: FailureStatus, wantCode: 401},
		{name: "403 with active body", handler: respond(403, "application/json", `{"active":true}`), wantKind: FailureStatus, wantCode: 403},
		{name: "429 with Retry-After", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "3")
			respond(429, "application/json", `{"error":"slow_down"}`)(w, r)
		}, wantKind: FailureStatus, wantCode: 429},
		{name: "500", handler: respond(500, "text/plain", "boom"), wantKind: FailureStatus, wantCode: 500},
		{name: "502", handler: respond(502, "text/html", "<h1>Bad Gateway</h1>"), wantKind: FailureStatus, wantCode: 502},
		{name: "503", handler: respond(503, "", ""), wantKind: FailureStatus, wantCode: 503},

		// Content types.
		{name: "HTML login page", handler: respond(200, "text/html; charset=utf-8", `<html><form action="/login">`), wantKind: FailureContentType, wantCode: 200},
		{name: "text/plain JSON", handler: respond(200, "text/plain", `{"active":true}`), wantKind: FailureContentType, wantCode: 200},
		{name: "unparsable content type", handler: respond(200, "application/json;;;=", `{"active":true}`), wantKind: FailureContentType, wantCode: 200},

		// Bodies.
		{name: "truncated JSON", handler: answer200(`{"active":true,"scope":"re`), wantKind: FailureMalformed, wantCode: 200},
		{name: "truncated by a short Content-Length", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"active":true`))
			panic(http.ErrAbortHandler) // close the connection mid-body
		}, wantKind: FailureTransport},
		{name: "oversize body", handler: answer200(`{"active":true,"x":"` + strings.Repeat("a", 2<<20) + `"}`), wantKind: FailureTooLarge, wantCode: 200},
		{name: "body that never ends", handler: func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"active":true,"x":"`))
			chunk := []byte(strings.Repeat("a", 32<<10))
			for r.Context().Err() == nil {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}, wantKind: FailureTooLarge, wantCode: 200},
		{name: "empty body", handler: answer200(""), wantKind: FailureMalformed, wantCode: 200},
		{name: "array body", handler: answer200(`[{"active":true}]`), wantKind: FailureMalformed, wantCode: 200},
		{name: "string body", handler: answer200(`"active"`), wantKind: FailureMalformed, wantCode: 200},
		{name: "two objects", handler: answer200(`{"active":true}{"active":true}`), wantKind: FailureMalformed, wantCode: 200},
		{name: "deep nesting", handler: answer200(deep), wantKind: FailureMalformed, wantCode: 200},
		{name: "invalid UTF-8", handler: answer200("{\"active\":true,\"sub\":\"\xc3\x28\"}"), wantKind: FailureMalformed, wantCode: 200},
		{name: "duplicate active", handler: answer200(`{"active":false,"active":true}`), wantKind: FailureMalformed, wantCode: 200},
		{name: "duplicate scope via escape", handler: answer200(`{"active":true,"scope":"a","sc\u006fpe":"admin"}`), wantKind: FailureMalformed, wantCode: 200},

		// active.
		{name: `active "true"`, handler: answer200(`{"active":"true"}`), wantKind: FailureMalformed, wantCode: 200},
		{name: `active "false"`, handler: answer200(`{"active":"false"}`), wantKind: FailureMalformed, wantCode: 200},
		{name: "active 1", handler: answer200(`{"active":1}`), wantKind: FailureMalformed, wantCode: 200},
		{name: "active null", handler: answer200(`{"active":null}`), wantKind: FailureMalformed, wantCode: 200},
		{name: "active missing", handler: answer200(`{"scope":"read","exp":4102444800}`), wantKind: FailureMalformed, wantCode: 200},
		{name: "active object", handler: answer200(`{"active":{"value":true}}`), wantKind: FailureMalformed, wantCode: 200},

		// NumericDates.
		{name: "exp as string", handler: answer200(`{"active":true,"exp":"4102444800"}`), wantKind: FailureMalformed, wantCode: 200},
		{name: "nbf as string", handler: answer200(`{"active":true,"nbf":"0"}`), wantKind: FailureMalformed, wantCode: 200},
		{name: "iat as boolean", handler: answer200(`{"active":true,"iat":true}`), wantKind: FailureMalformed, wantCode: 200},
		{name: "exp as boolean", handler: answer200(`{"active":true,"exp":false}`), wantKind: FailureMalformed, wantCode: 200},
		{name: "exp negative", handler: answer200(`{"active":true,"exp":-1}`), wantKind: FailureMalformed, wantCode: 200},
		{name: "nbf negative", handler: answer200(`{"active":true,"nbf":-100}`), wantKind: FailureMalformed, wantCode: 200},
		{name: "exp huge", handler: answer200(`{"active":true,"exp":1e300}`), wantKind: FailureMalformed, wantCode: 200},
		{name: "exp past float range", handler: answer200(`{"active":true,"exp":1e999}`), wantKind: FailureMalformed, wantCode: 200},
		{name: "exp NaN literal", handler: answer200(`{"active":true,"exp":NaN}`), wantKind: FailureMalformed, wantCode: 200},
		{name: "exp Infinity literal", handler: answer200(`{"active":true,"exp":Infinity}`), wantKind: FailureMalformed, wantCode: 200},
		{name: `exp "NaN"`, handler: answer200(`{"active":true,"exp":"NaN"}`), wantKind: FailureMalformed, wantCode: 200},
		{name: "exp as array", handler: answer200(`{"active":true,"exp":[4102444800]}`), wantKind: FailureMalformed, wantCode: 200},

		// Member types.
		{name: "scope as number", handler: answer200(`{"active":true,"scope":42}`), wantKind: FailureMalformed, wantCode: 200},
		{name: "scope as object", handler: answer200(`{"active":true,"scope":{"read":true}}`), wantKind: FailureMalformed, wantCode: 200},
		{name: "scp as number", handler: answer200(`{"active":true,"scp":1}`), wantKind: FailureMalformed, wantCode: 200},
		{name: "aud as number", handler: answer200(`{"active":true,"aud":1}`), wantKind: FailureMalformed, wantCode: 200},
		{name: "aud as object", handler: answer200(`{"active":true,"aud":{"a":1}}`), wantKind: FailureMalformed, wantCode: 200},
		{name: "aud array of numbers", handler: answer200(`{"active":true,"aud":[1,2]}`), wantKind: FailureMalformed, wantCode: 200},
		{name: "iss as number", handler: answer200(`{"active":true,"iss":1}`), wantKind: FailureMalformed, wantCode: 200},
		{name: "token_use as boolean", handler: answer200(`{"active":true,"token_use":true}`), wantKind: FailureMalformed, wantCode: 200},

		// Connections.
		{name: "stall before headers", handler: stall, wantKind: FailureTimeout},
		{name: "stall mid-body", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"active":`))
			w.(http.Flusher).Flush()
			stall(w, r)
		}, wantKind: FailureTimeout, wantCode: 0},
		{name: "connection reset", handler: func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				return
			}
			_ = conn.(*net.TCPConn).SetLinger(0)
			_ = conn.Close()
		}, wantKind: FailureTransport},
		{name: "connection refused", url: func(t *testing.T) string {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			addr := l.Addr().String()
			require.NoError(t, l.Close())
			return "http://" + addr
		}, wantKind: FailureTransport},
		{name: "TLS with an untrusted certificate", url: func(t *testing.T) string {
			srv := httptest.NewTLSServer(answer200(`{"active":true}`))
			t.Cleanup(srv.Close)
			return srv.URL
		}, wantKind: FailureTransport},

		// Duplicate members below the top level.
		{name: "duplicate in a nested object", handler: answer200(`{"active":true,"ext":{"role":"user","role":"admin"}}`), wantKind: FailureMalformed, wantCode: 200},
		{name: "duplicate in an object in an array", handler: answer200(`{"active":true,"ext":[{"a":1},{"role":"user","role":"admin"}]}`), wantKind: FailureMalformed, wantCode: 200},
		{name: "nested duplicate via escape", handler: answer200(`{"active":true,"ext":{"role":"user","r\u006fle":"admin"}}`), wantKind: FailureMalformed, wantCode: 200},
		{name: "duplicate in an object past 16 members", handler: answer200(`{"active":true,"ext":` + strings.TrimSuffix(bigObject(40), "}") + `,"m3":0}}`), wantKind: FailureMalformed, wantCode: 200},
	}
	require.GreaterOrEqual(t, len(tests), 40)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var u string
			if tc.url != nil {
				u = tc.url(t)
			} else {
				srv := httptest.NewServer(tc.handler)
				defer srv.Close()
				u = srv.URL
			}
			// Only the stalls need a short Timeout; every other row gets a
			// long one, so that a slow machine never turns a transport
			// failure (a TLS handshake, say) into a timeout.
			rowTimeout := 30 * time.Second
			if tc.wantKind == FailureTimeout {
				rowTimeout = timeout
			}
			v := newVerifier(t, u, nil, func(s *Settings) {
				s.Timeout = rowTimeout
				s.CacheTTL = time.Minute
				s.NegativeCacheTTL = time.Minute
			})
			start := time.Now()
			tok, err := v.Verify(context.Background(), "tok")
			elapsed := time.Since(start)
			require.Error(t, err)
			assert.Nil(t, tok, "never an accepted token")
			assert.ErrorIs(t, err, ErrIntrospectionFailed)
			assert.NotErrorIs(t, err, ErrInvalidToken)
			var ie *IntrospectionError
			require.ErrorAs(t, err, &ie)
			assert.Equal(t, tc.wantKind, ie.Kind, err.Error())
			if tc.wantKind != FailureTransport && tc.wantKind != FailureTimeout {
				assert.Equal(t, tc.wantCode, ie.StatusCode)
			}
			st := v.Stats()
			assert.Equal(t, uint64(1), st.Failures[tc.wantKind], "Stats counts the kind")
			assert.Equal(t, uint64(1), st.Failed)
			assert.Zero(t, st.Accepted)
			assert.Zero(t, st.CacheEntries, "failures are never cached")
			// A bound, not a timing assertion: nothing waits past Timeout
			// by more than scheduling noise.
			assert.Less(t, elapsed, rowTimeout+5*time.Second)
		})
	}
	assert.Zero(t, targetHits.Load(), "no redirect was followed")
}

// TestTimeoutBoundsStalledServer checks that Settings.Timeout is applied (a
// peer once ignored its configured timeout): the wait is at least Timeout
// and ends well before the server would answer.
func TestTimeoutBoundsStalledServer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(stall))
	defer srv.Close()
	for _, timeout := range []time.Duration{50 * time.Millisecond, 300 * time.Millisecond} {
		t.Run(fmt.Sprint(timeout), func(t *testing.T) {
			v := newVerifier(t, srv.URL, nil, func(s *Settings) { s.Timeout = timeout })
			start := time.Now()
			_, err := v.Verify(context.Background(), "tok")
			elapsed := time.Since(start)
			var ie *IntrospectionError
			require.ErrorAs(t, err, &ie)
			assert.Equal(t, FailureTimeout, ie.Kind)
			assert.GreaterOrEqual(t, elapsed, timeout)
			assert.Less(t, elapsed, timeout+5*time.Second)
		})
	}
}
