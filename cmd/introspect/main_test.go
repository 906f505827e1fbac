package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
		{name: "accepted", args: []string{good}, wantCode: 0,
			wantOut: []string{"verdict: accepted", "subject:   alice", "client_id: app", "scopes:    read write"}},
		{name: "token from stdin", stdin: good + "\n", wantCode: 0, wantOut: []string{"verdict: accepted"}},
		{name: "token from stdin with -", stdin: good, args: []string{"-"}, wantCode: 0, wantOut: []string{"verdict: accepted"}},
		{name: "unknown token", args: []string{"unknown"}, wantCode: 1,
			wantOut: []string{"verdict: rejected", "reason:  introspection: invalid token: token is not active"}},
		{name: "malformed token", args: []string{"a\"b"}, wantCode: 1, wantOut: []string{"verdict: rejected"}},
		{name: "insufficient scope", args: []string{"-scopes", "read,admin", good}, wantCode: 1,
			wantOut: []string{"verdict: insufficient_scope", "missing admin"}},
		{name: "server failure", args: []string{good}, fault: &introspectiontest.Fault{Status: 503}, wantCode: 2,
			wantOut: []string{"verdict: failed", "HTTP 503"}},
		{name: "two tokens", args: []string{good, good}, wantCode: 2, wantErr: "at most one token"},
		{name: "no token", stdin: "", wantCode: 2, wantErr: "no token given"},
		{name: "unknown flag", args: []string{"-nope"}, wantCode: 2, wantErr: "flag provided but not defined"},
		{name: "no secret flag", args: []string{"-client-secret", "x", good}, wantCode: 2, wantErr: "flag provided but not defined"},
		{name: "bad auth method", args: []string{"-auth-method", "magic", good}, wantCode: 2, wantErr: `"magic"`},
		{name: "bad url", args: []string{"-url", "http://as.example.com/i", good}, wantCode: 2, wantErr: "not loopback"},
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
	code, out, _ := runTool(t, "", "-json", good)
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
	code, out, _ = runTool(t, "", "-json", good)
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
	code, _, errOut := runTool(t, "", "-client-secret-file", file, tok)
	assert.Equal(t, 0, code, errOut)

	code, _, errOut = runTool(t, "", tok)
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "ClientSecret is required")
}

func TestDemo(t *testing.T) {
	t.Setenv("INTROSPECTION_URL", "")
	code, out, _ := runTool(t, "", "-demo")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "verdict: accepted")
	assert.Contains(t, out, "subject:   demo-user")

	code, out, _ = runTool(t, "", "-demo", "-json")
	assert.Equal(t, 0, code)
	var res map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	assert.Equal(t, "accepted", res["verdict"])
}
