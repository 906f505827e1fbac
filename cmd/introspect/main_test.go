package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func runTool(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// withServer points the INTROSPECTION_* variables at a test server.
func withServer(t *testing.T) *introspectiontest.Server {
	t.Helper()
	as := introspectiontest.NewServer()
	t.Cleanup(as.Close)
	t.Setenv("INTROSPECTION_URL", as.IntrospectionURL)
	t.Setenv("INTROSPECTION_CLIENT_ID", introspectiontest.ClientID)
	t.Setenv("INTROSPECTION_CLIENT_SECRET", introspectiontest.ClientSecret)
	return as
}

func TestExitCodesAndOutput(t *testing.T) {
	as := withServer(t)
	good := as.Issue(introspectiontest.TokenOptions{Subject: "alice", ClientID: "app", Scopes: []string{"read", "write"}})
	tests := []struct {
		name     string
		stdin    string
		args     []string
		fault    *introspectiontest.Fault
		wantCode int
		wantOut  []string
		wantErr  string
	}{
		{name: "accepted", args: []string{"--", good}, wantCode: 0,
			wantOut: []string{"verdict: accepted", "subject:   alice", "client_id: app", "scopes:    read write"}},
		{name: "token from stdin", stdin: good + "\n", wantCode: 0, wantOut: []string{"verdict: accepted"}},
		{name: "token from stdin with -", stdin: good, args: []string{"-"}, wantCode: 0, wantOut: []string{"verdict: accepted"}},
		{name: "unknown token", args: []string{"--", "unknown"}, wantCode: 1,
			wantOut: []string{"verdict: rejected", "reason:  introspection: invalid token: token is not active"}},
		{name: "malformed token", args: []string{"--", "a\"b"}, wantCode: 1, wantOut: []string{"verdict: rejected"}},
		{name: "insufficient scope", args: []string{"-scopes", "read,admin", "--", good}, wantCode: 1,
			wantOut: []string{"verdict: insufficient_scope", "missing admin"}},
		{name: "server failure", args: []string{"--", good}, fault: &introspectiontest.Fault{Status: 503}, wantCode: 2,
			wantOut: []string{"verdict: failed", "HTTP 503"}},
		{name: "two tokens", args: []string{"--", good, good}, wantCode: 2, wantErr: "at most one token"},
		{name: "no token", stdin: "", wantCode: 2, wantErr: "no token given"},
		{name: "unknown flag", args: []string{"-nope"}, wantCode: 2, wantErr: "flag provided but not defined"},
		{name: "no secret flag", args: []string{"-client-secret", "x", "--", good}, wantCode: 2, wantErr: "flag provided but not defined"},
		{name: "bad auth method", args: []string{"-auth-method", "magic", "--", good}, wantCode: 2, wantErr: `"magic"`},
		{name: "bad url", args: []string{"-url", "http://as.example.com/i", "--", good}, wantCode: 2, wantErr: "not loopback"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.fault != nil {
				as.SetFault(*tc.fault)
				defer as.SetFault(introspectiontest.Fault{})
			}
			code, out, errOut := runTool(t, tc.stdin, tc.args...)
			assert.Equal(t, tc.wantCode, code, "stdout: %s\nstderr: %s", out, errOut)
			for _, w := range tc.wantOut {
				assert.Contains(t, out, w)
			}
			if tc.wantErr != "" {
				assert.Contains(t, errOut, tc.wantErr)
			}
			assert.NotContains(t, out+errOut, introspectiontest.ClientSecret)
			assert.NotContains(t, out+errOut, good, "the token is never printed")
		})
	}
}

func TestJSONOutput(t *testing.T) {
	as := withServer(t)
	good := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{"read"}, Audience: []string{"mcp"}})
	code, out, _ := runTool(t, "", "-json", "--", good)
	require.Equal(t, 0, code)
	var res map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	assert.Equal(t, "accepted", res["verdict"])
	tok := res["token"].(map[string]any)
	assert.Equal(t, "alice", tok["sub"])
	assert.Equal(t, []any{"read"}, tok["scopes"])
	assert.Equal(t, []any{"mcp"}, tok["aud"])
	assert.NotContains(t, out, good)

	as.SetFault(introspectiontest.Fault{Status: 401, Body: `{"error":"invalid_client","error_description":"bad"}`})
	code, out, _ = runTool(t, "", "-json", "--", good)
	require.Equal(t, 2, code)
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	assert.Equal(t, "failed", res["verdict"])
	assert.Equal(t, map[string]any{"kind": "status", "status_code": 401.0, "error": "invalid_client", "error_description": "bad"}, res["failure"])
}

func TestSecretFromFile(t *testing.T) {
	as := withServer(t)
	t.Setenv("INTROSPECTION_CLIENT_SECRET", "")
	tok := as.Issue(introspectiontest.TokenOptions{})
	file := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(file, []byte(introspectiontest.ClientSecret+"\n"), 0o600))
	code, _, errOut := runTool(t, "", "-client-secret-file", file, "--", tok)
	assert.Equal(t, 0, code, errOut)

	code, _, errOut = runTool(t, "", "--", tok)
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "ClientSecret is required")
}

// TestDemoPrintsItsOwnToken checks what -demo shows: the test server, the
// demo token it issued (the one token the tool prints), and the verdict on
// that token; with -json only the verdict. It takes no token of the user's.
func TestDemoPrintsItsOwnToken(t *testing.T) {
	t.Setenv("INTROSPECTION_URL", "")
	code, out, errOut := runTool(t, "", "-demo")
	require.Equal(t, 0, code, errOut)
	m := regexp.MustCompile(`(?m)^demo: test authorization server at (http://127\.0\.0\.1:\d+), demo token ([A-Za-z0-9_-]{43})$`).FindStringSubmatch(out)
	require.NotNil(t, m, "the demo line names the server and the token: %s", out)
	assert.Contains(t, out, "verdict: accepted")
	assert.Contains(t, out, "asked:   "+m[1]+"/introspect (client_secret_basic)", "the endpoint found in the server's metadata")
	assert.Contains(t, out, "subject:   demo-user")
	assert.Contains(t, out, "scopes:    mcp:tools profile")

	code, out, errOut = runTool(t, "", "-demo", "-json")
	require.Equal(t, 0, code, errOut)
	var res map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &res), "only JSON on standard output")
	assert.Equal(t, "accepted", res["verdict"])

	code, out, errOut = runTool(t, "", "-demo", "--", dashToken)
	assert.Equal(t, 2, code)
	assert.Empty(t, out, "no verdict that could be taken for the given token's")
	assert.Contains(t, errOut, "introspect: -demo verifies its own token; give none")
	assert.NotContains(t, errOut, dashToken[1:])
}

// dashToken is a valid RFC 6750 b64token that begins with "-", as one random
// token in 64 does.
const dashToken = "-dash_token-0123456789abcdefghijklmnopqrstuvwxyzAB"

// TestTokenThatBeginsWithDash shows that a token after "--" is taken as the
// token whatever it begins with, and that without "--" such a token is a
// usage error that says what to do and does not repeat the token.
func TestTokenThatBeginsWithDash(t *testing.T) {
	as := withServer(t)
	// The server calls every token active, so a verdict of accepted shows only
	// that the tool sent the token; RequestsFor shows which one it sent.
	as.SetFault(introspectiontest.Fault{Body: `{"active":true,"sub":"dash","client_id":"app"}`})
	tests := []struct {
		name     string
		stdin    string
		args     []string
		sent     string // the token the server must be asked about; "" for none
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{name: "after --", args: []string{"--", dashToken}, sent: dashToken, wantCode: 0, wantOut: "subject:   dash"},
		{name: "after flags and --", args: []string{"-json", "--", dashToken}, sent: dashToken, wantCode: 0, wantOut: `"sub": "dash"`},
		{name: "two dashes after --", args: []string{"--", "-" + dashToken}, sent: "-" + dashToken, wantCode: 0, wantOut: "verdict: accepted"},
		{name: "from stdin", stdin: dashToken + "\n", sent: dashToken, wantCode: 0, wantOut: "verdict: accepted"},
		{name: "from stdin after --", stdin: dashToken + "\n", args: []string{"--"}, sent: dashToken, wantCode: 0, wantOut: "verdict: accepted"},
		{name: "- after -- is standard input", stdin: dashToken + "\n", args: []string{"--", "-"}, sent: dashToken, wantCode: 0, wantOut: "verdict: accepted"},
		{name: "without --", args: []string{dashToken}, wantCode: 2, wantErr: `put -- before a token that begins with "-"`},
		{name: "two dashes without --", args: []string{"-" + dashToken}, wantCode: 2, wantErr: `put -- before a token that begins with "-"`},
		{name: "three dashes without --", args: []string{"--" + dashToken}, wantCode: 2, wantErr: `put -- before a token that begins with "-"`},
		{name: "padding without --", args: []string{dashToken + "=="}, wantCode: 2, wantErr: `put -- before a token that begins with "-"`},
		{name: "after a flag without --", args: []string{"-json", dashToken}, wantCode: 2, wantErr: `put -- before a token that begins with "-"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			requests := as.Requests()
			var before int64
			if tc.sent != "" {
				before = as.RequestsFor(tc.sent)
			}
			code, out, errOut := runTool(t, tc.stdin, tc.args...)
			assert.Equal(t, tc.wantCode, code, "stdout: %s\nstderr: %s", out, errOut)
			if tc.sent != "" {
				assert.Equal(t, before+1, as.RequestsFor(tc.sent), "the server was asked about the token as given")
			} else {
				assert.Equal(t, requests, as.Requests(), "a usage error asks the server nothing")
			}
			assert.Contains(t, out, tc.wantOut)
			assert.Contains(t, errOut, tc.wantErr)
			assert.NotContains(t, out+errOut, dashToken[1:], "the token is never printed")
		})
	}
}

// TestUsageNamesTheTerminator checks that -h tells how to pass a token that
// begins with "-".
func TestUsageNamesTheTerminator(t *testing.T) {
	code, out, errOut := runTool(t, "", "-h")
	assert.Equal(t, 2, code)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "usage: introspect [flags] [--] [TOKEN]")
	assert.Contains(t, errOut, `Put -- before a token that begins with "-"`)
	assert.Contains(t, errOut, "-client-secret-file", "the flags are listed")
}

// TestUsageErrorsDoNotRepeatArguments checks that no flag error repeats what
// was typed, since a mistyped argument may be a token.
func TestUsageErrorsDoNotRepeatArguments(t *testing.T) {
	const secretish = "SECRETISH0123456789"
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"unknown flag", []string{"-" + secretish}, "flag provided but not defined"},
		{"unknown flag with value", []string{"-" + secretish + "=x"}, "flag provided but not defined"},
		{"bad flag syntax", []string{"---" + secretish}, "bad flag syntax"},
		{"bad duration", []string{"-timeout", secretish}, "invalid value for flag -timeout"},
		{"bad duration after =", []string{"-leeway=" + secretish}, "invalid value for flag -leeway"},
		{"bad boolean", []string{"-json=" + secretish}, "invalid value for flag -json"},
		{"missing value", []string{"-scopes"}, "flag needs an argument: -scopes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runTool(t, "", tc.args...)
			assert.Equal(t, 2, code)
			assert.Empty(t, out)
			assert.Contains(t, errOut, "introspect: "+tc.wantErr)
			assert.Contains(t, errOut, "usage: introspect", "the usage follows the error")
			assert.NotContains(t, errOut, secretish)
		})
	}
}

// hostileText holds what an authorization server could put in a string to
// take over or spoof a terminal, and how the text output shows it.
var hostileText = []struct {
	name, s, shown string
}{
	{"CSI colour", "\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
	{"OSC title ended by BEL", "\x1b]0;pwned\a", `\x1b]0;pwned\a`},
	{"OSC 8 hyperlink", "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\", `\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\`},
	{"carriage return", "alice\rmallory", `alice\rmallory`},
	{"line feed spoofing a row", "alice\nverdict: accepted", `alice\nverdict: accepted`},
	{"tab, backspace and DEL", "a\tb\bc\x7f", `a\tb\bc\x7f`},
	{"C1 CSI", "\u009b31mred", `\u009b31mred`},
	{"C1 NEL, OSC and ST", "a\u0085b\u009d0;t\u009c", `a\u0085b\u009d0;t\u009c`},
	{"bidi override", "user\u202egnp.exe", `user\u202egnp.exe`},
	{"bidi isolates and marks", "\u2066a\u2069\u200f\u061c", `\u2066a\u2069\u200f\u061c`},
	{"line and paragraph separators", "a\u2028b\u2029c", `a\u2028b\u2029c`},
	{"zero width and BOM", "a\u200bb\ufeff", `a\u200bb\ufeff`},
	{"backslash stays unambiguous", `a\x1bb`, `a\\x1bb`},
}

// assertTerminalSafe checks that s holds only printable characters and
// newlines: nothing a terminal would act on or a reader could be misled by.
func assertTerminalSafe(t *testing.T, s string) {
	t.Helper()
	for i, r := range s {
		if r == utf8.RuneError {
			_, size := utf8.DecodeRuneInString(s[i:])
			if !assert.NotEqual(t, 1, size, "invalid UTF-8 at byte %d of %q", i, s) {
				return
			}
			continue
		}
		if r != '\n' && !unicode.IsPrint(r) {
			assert.Fail(t, "unsafe character on the terminal", "%U at byte %d of %q", r, i, s)
			return
		}
	}
}

// TestServerTextNeverReachesTheTerminalRaw sends control characters, escape
// sequences and bidi controls in every string of an answer and of an error
// answer, and checks that neither the text nor the JSON output writes them:
// the text shows them as Go escapes, the JSON as \u escapes that decode to
// the server's exact text.
func TestServerTextNeverReachesTheTerminalRaw(t *testing.T) {
	as := withServer(t)
	for _, h := range hostileText {
		t.Run(h.name, func(t *testing.T) {
			tok := as.Issue(introspectiontest.TokenOptions{
				ClientID: h.s, Subject: h.s, Username: h.s,
				Scopes:   []string{"read", h.s},
				Audience: []string{"mcp", h.s},
				Extra:    map[string]any{"iss": h.s, "note" + h.s: h.s},
			})

			code, out, errOut := runTool(t, "", "--", tok)
			require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, errOut)
			assertTerminalSafe(t, out+errOut)
			for _, row := range []string{"client_id", "subject", "username", "issuer"} {
				assert.Contains(t, out, fmt.Sprintf("%-11s%s\n", row+":", h.shown))
			}
			assert.Contains(t, out, h.shown+"\n", "scopes and audience")

			code, out, errOut = runTool(t, "", "-json", "--", tok)
			require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, errOut)
			assertTerminalSafe(t, out+errOut)
			var res struct {
				Token map[string]any `json:"token"`
			}
			require.NoError(t, json.Unmarshal([]byte(out), &res))
			for _, name := range []string{"client_id", "sub", "username", "iss"} {
				assert.Equal(t, h.s, res.Token[name], name)
			}
			assert.Equal(t, h.s, res.Token["claims"].(map[string]any)["note"+h.s], "a member's name and value")

			body, err := json.Marshal(map[string]string{"error": h.s, "error_description": h.s})
			require.NoError(t, err)
			as.SetFault(introspectiontest.Fault{Status: 400, Body: string(body)})
			defer as.SetFault(introspectiontest.Fault{})

			code, out, errOut = runTool(t, "", "--", tok)
			require.Equal(t, 2, code, "stdout: %s\nstderr: %s", out, errOut)
			assertTerminalSafe(t, out+errOut)
			assert.Contains(t, out, "verdict: failed")

			code, out, errOut = runTool(t, "", "-json", "--", tok)
			require.Equal(t, 2, code, "stdout: %s\nstderr: %s", out, errOut)
			assertTerminalSafe(t, out+errOut)
			var failed struct {
				Failure map[string]any `json:"failure"`
			}
			require.NoError(t, json.Unmarshal([]byte(out), &failed))
			assert.Equal(t, "status", failed.Failure["kind"])
		})
	}
}

// TestAnswerThatRepeatsTheTokenNeverPrintsIt has the authorization server
// repeat the token in every member of its answer, names included: neither
// output shows it.
func TestAnswerThatRepeatsTheTokenNeverPrintsIt(t *testing.T) {
	const tok = "-echoed.Token~value+/="
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		token := r.PostForm.Get("token")
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"active": true, "client_id": token, "sub": "user " + token, "username": token,
			"iss": token, "token_type": token, "scope": "read " + token, "aud": []string{token},
			"jti": token, token: map[string]any{"nested " + token: []any{token}},
		})
	}))
	t.Cleanup(as.Close)
	t.Setenv("INTROSPECTION_URL", as.URL)
	t.Setenv("INTROSPECTION_CLIENT_ID", "rs")
	t.Setenv("INTROSPECTION_CLIENT_SECRET", "secret")

	for _, mode := range [][]string{{"--", tok}, {"-json", "--", tok}} {
		code, out, errOut := runTool(t, "", mode...)
		require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, errOut)
		assert.NotContains(t, out+errOut, tok, "%v", mode)
		assert.Contains(t, out, "REDACTED", "%v", mode)
	}
}
