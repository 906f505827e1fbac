package introspection

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The credentials and tokens of the leak tests. Each holds characters that
// form-encoding changes, so that the raw and the encoded forms differ.
const (
	leakClientID = "leak:client+id"
	leakSecret   = "Sx9:q+/w=L3ak%Secret"
	heldToken    = "Held+tok/EN.held~1=="
	okToken      = "Okay+tok/EN.ok_2="
	failToken    = "Fail+tok/EN.fail-3"
)

// leakForms returns the forms in which a secret or token could leak: as is,
// form-encoded with upper- and lowercase escapes, and with JSON's escaped
// solidus.
func leakForms(s string) []string {
	q := url.QueryEscape(s)
	return []string{s, q, lowerEscapes(q), strings.ReplaceAll(s, "/", `\/`)}
}

// lowerEscapes lowercases the hex digits of the %XX escapes in s.
func lowerEscapes(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1], b[i+2] = bytes.ToLower(b[i+1 : i+2])[0], bytes.ToLower(b[i+2 : i+3])[0]
		}
	}
	return string(b)
}

// forbidden lists every string that must never appear in output about the
// leak tests' verifier: the secret, the Basic credentials in base64 (both
// as RFC 6749 §2.3.1 encodes them and as a naive client would) and the
// tokens.
func forbidden() []string {
	f := leakForms(leakSecret)
	f = append(f,
		base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(leakClientID)+":"+url.QueryEscape(leakSecret))),
		base64.StdEncoding.EncodeToString([]byte(leakClientID+":"+leakSecret)),
	)
	for _, tok := range []string{heldToken, okToken, failToken} {
		f = append(f, leakForms(tok)...)
	}
	return f
}

// assertNoLeak fails when text holds any forbidden string.
func assertNoLeak(t *testing.T, text string, msgAndArgs ...any) {
	t.Helper()
	for _, f := range forbidden() {
		assert.NotContains(t, text, f, msgAndArgs...)
	}
}

// leakServer is an authorization server for the leak tests: it holds
// requests for heldToken until release is closed, answers okToken as active
// with scope read, and answers failToken with a 400 whose error text quotes
// the token, its form encoding and the secret.
type leakServer struct {
	*httptest.Server
	arrived chan struct{} // receives once per held request
	release chan struct{} // closed to answer held requests
}

func newLeakServer(t *testing.T) *leakServer {
	t.Helper()
	ls := &leakServer{arrived: make(chan struct{}, 8), release: make(chan struct{})}
	ls.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch tok := r.PostForm.Get("token"); tok {
		case heldToken:
			ls.arrived <- struct{}{}
			<-ls.release
			_, _ = w.Write([]byte(`{"active":true,"client_id":"held-client","scope":"read"}`))
		case okToken:
			_, _ = w.Write([]byte(`{"active":true,"client_id":"ok-client","sub":"alice","scope":"read"}`))
		default:
			w.WriteHeader(http.StatusBadRequest)
			body, _ := json.Marshal(map[string]string{
				"error": "invalid_request " + tok,
				"error_description": "token " + tok + " sent as token=" + url.QueryEscape(tok) +
					" with secret " + leakSecret + " is unknown",
			})
			_, _ = w.Write(body)
		}
	}))
	t.Cleanup(func() {
		select {
		case <-ls.release:
		default:
			close(ls.release)
		}
		ls.Close()
	})
	return ls
}

// TestServerErrorTextNeverCarriesTheToken has the authorization server
// quote the token, its form encoding or the client secret in error and
// error_description: the error, its fields and the logs show REDACTED in
// their place and keep the rest of the text.
func TestServerErrorTextNeverCarriesTheToken(t *testing.T) {
	const token = "Tk+9/xZ.q_~-Lm=="
	basic := base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(leakClientID) + ":" + url.QueryEscape(leakSecret)))
	tests := []struct {
		name, code, desc string
		wantCode         string // the ErrorCode expected
		wantDesc         string // a part of ErrorDescription that must remain
	}{
		{name: "token as presented", code: "invalid_request", desc: "token " + token + " is unknown",
			wantCode: "invalid_request", wantDesc: "token REDACTED is unknown"},
		{name: "form-encoded token", code: "invalid_request", desc: "body token=" + url.QueryEscape(token) + "&x",
			wantCode: "invalid_request", wantDesc: "body token=REDACTED&x"},
		{name: "form-encoded token, lowercase escapes", code: "invalid_request", desc: "token=" + lowerEscapes(url.QueryEscape(token)),
			wantCode: "invalid_request", wantDesc: "token=REDACTED"},
		{name: "JSON-escaped solidus", code: "invalid_request", desc: `{"token":"` + strings.ReplaceAll(token, "/", `\/`) + `"}`,
			wantCode: "invalid_request", wantDesc: `{"token":"REDACTED"}`},
		{name: "token in error", code: "bad " + token, desc: "see error",
			wantCode: "bad REDACTED", wantDesc: "see error"},
		{name: "token across the truncation bound", code: "invalid_request", desc: strings.Repeat("x", 250) + token,
			wantCode: "invalid_request", wantDesc: strings.Repeat("x", 250) + "REDA"},
		{name: "secret", code: "invalid_client", desc: "secret " + leakSecret + " / " + url.QueryEscape(leakSecret) + " is wrong",
			wantCode: "invalid_client", wantDesc: "secret REDACTED / REDACTED is wrong"},
		{name: "Basic credentials", code: "invalid_client", desc: "Authorization: Basic " + basic,
			wantCode: "invalid_client", wantDesc: "Authorization: Basic REDACTED"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body, err := json.Marshal(map[string]string{"error": tc.code, "error_description": tc.desc})
			require.NoError(t, err)
			srv := jsonServer(t, http.StatusBadRequest, string(body))
			var logs bytes.Buffer
			v := newVerifier(t, srv.URL, nil, func(s *Settings) {
				s.ClientID = leakClientID
				s.ClientSecret = leakSecret
				s.Logger = newTestLogger(&logs)
			})
			_, err = v.Verify(context.Background(), token)
			var ie *IntrospectionError
			require.ErrorAs(t, err, &ie)
			assert.Nil(t, v.VerifyToken(context.Background(), token))

			assert.Equal(t, tc.wantCode, ie.ErrorCode)
			assert.Contains(t, ie.ErrorDescription, tc.wantDesc)
			for name, text := range map[string]string{
				"Error": err.Error(), "ErrorCode": ie.ErrorCode, "ErrorDescription": ie.ErrorDescription,
				"%#v": fmt.Sprintf("%#v", ie), "logs": logs.String(),
			} {
				require.NotEmpty(t, text, name)
				for _, f := range append(leakForms(token), leakForms(leakSecret)...) {
					assert.NotContains(t, text, f, name)
				}
				assert.NotContains(t, text, basic, name)
				// No part of the token survives at the truncation bound.
				assert.NotContains(t, text, token[:6], name)
			}
		})
	}
}

// TestScrubTokenKeepsOtherText shows that scrubbing leaves text without a
// secret alone and does nothing for an empty secret.
func TestScrubTokenKeepsOtherText(t *testing.T) {
	tests := []struct {
		name, in string
		secrets  []string
		want     string
	}{
		{"no secret in text", "token is unknown", []string{"abc"}, "token is unknown"},
		{"empty secret", "token is unknown", []string{""}, "token is unknown"},
		{"every occurrence", "abc and abc", []string{"abc"}, "REDACTED and REDACTED"},
		{"encoded", "a%2Bb a%2bb a+b", []string{"a+b"}, "REDACTED REDACTED REDACTED"},
		{"two secrets", "x y", []string{"x", "y"}, "REDACTED REDACTED"},
		{"a secret inside another", "t=xxabcxx", []string{"abc", "xxabcxx"}, "t=REDACTED"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, scrub(tc.in, tc.secrets...))
		})
	}
}
