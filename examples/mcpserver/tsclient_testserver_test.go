package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/examples/internal/e2e"
	"github.com/mcpauth/introspection/interop/oidcprovider"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Credentials of the MCP client that TestTypeScriptClientWithTestServer
// registers with the introspectiontest server. The secret needs no RFC 6749
// §2.3.1 encoding, since the TypeScript SDK sends it in HTTP Basic without
// any.
const (
	testServerClientID     = "ts-mcp-client"
	testServerClientSecret = "ts-mcp-client-secret"
)

// TestTypeScriptClientWithTestServer runs the official TypeScript SDK's
// client (interop/oidc/mcpclient.mjs) against this example and an
// introspectiontest server, with nothing but the issuer on either side: the
// example is configured with INTROSPECTION_ISSUER and the resource server's
// credentials, without INTROSPECTION_URL, and finds the introspection
// endpoint in the server's metadata; the client follows the example's 401
// to the RFC 9728 metadata, discovers the server's RFC 8414 metadata, gets
// a token from its token endpoint with the client credentials grant, and
// calls tools with it.
func TestTypeScriptClientWithTestServer(t *testing.T) {
	node := oidcprovider.Node(t, "@modelcontextprotocol/sdk")
	for _, tc := range []struct {
		name  string
		scope string
		tools []string
	}{
		{"mcp:tools: whoami", "mcp:tools", []string{"whoami"}},
		{"mcp:tools mcp:echo: whoami and echo", "mcp:tools mcp:echo", []string{"whoami", "echo"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := introspectiontest.NewServer()
			t.Cleanup(as.Close)
			as.AddClient(testServerClientID, testServerClientSecret)
			as.SetScopes(scopeTools, scopeEcho)
			endpoint := e2e.StartFromIssuer(t, e2eExample, as)
			metadataURL, err := introspection.MetadataURL(endpoint)
			require.NoError(t, err)

			res := runTSClientAs(t, node, testServerClientID, testServerClientSecret, endpoint, as.Issuer, tc.scope, tc.tools...)
			require.True(t, res.Connected, "the client did not connect: %+v", res.Error)

			require.NotEmpty(t, res.Requests)
			first := res.Requests[0]
			assert.Equal(t, []any{http.MethodPost, endpoint, http.StatusUnauthorized}, []any{first.Method, first.URL, first.Status},
				"the client's first request, without a token, gets 401")
			assert.Contains(t, first.Challenge, `resource_metadata="`+metadataURL+`"`, "the challenge names the metadata")
			metadataPath := strings.TrimPrefix(metadataURL, strings.TrimSuffix(endpoint, mcpPath))
			assert.Equal(t, []string{metadataURL}, res.urls(http.MethodGet, metadataPath), "it fetched the metadata the challenge named")

			discovery := res.requests(func(r tsRequest) bool { return strings.HasPrefix(r.URL, as.Issuer+"/.well-known/") })
			require.NotEmpty(t, discovery, "it discovered the authorization server")
			assert.Equal(t, tsRequest{Method: http.MethodGet, URL: as.Issuer + introspectiontest.MetadataPath, Status: http.StatusOK}, discovery[0],
				"its first discovery request is the RFC 8414 metadata, and it succeeds")
			tokens := res.tokenRequests(as.Issuer)
			require.Len(t, tokens, 1, "one token request")
			assert.Equal(t, map[string]string{"grant_type": "client_credentials", "scope": tc.scope, "resource": endpoint}, tokens[0].Form)
			assert.Equal(t, http.StatusOK, tokens[0].Status)

			require.Len(t, res.Calls, len(tc.tools))
			whoami := res.Calls[0]
			require.True(t, whoami.OK, "whoami failed: %+v", whoami.Error)
			var c caller
			require.NoError(t, json.Unmarshal(whoami.StructuredContent, &c))
			assert.Equal(t, testServerClientID, c.ClientID, "whoami names the client whose token it got")
			assert.Equal(t, strings.Fields(tc.scope), c.Scopes)
			if len(tc.tools) > 1 {
				assert.Contains(t, res.Tools, "echo", "tools/list shows echo to a token with mcp:echo")
				assert.True(t, res.Calls[1].OK, "echo failed: %+v", res.Calls[1].Error)
			}
			assert.Zero(t, res.Redactions, "no token appears in what the client saw")

			// Besides the client's discovery requests, the server served
			// the one of the example's verifier, which then introspected
			// the client's one token once: the example caches answers.
			assert.Equal(t, int64(len(discovery)+1), as.MetadataRequests(), "the example discovered the introspection endpoint once")
			assert.Equal(t, int64(1), as.Requests(), "the example introspected the token at the endpoint it discovered")
		})
	}
}

// runTSClientAs is runTSClient for the client id and secret given.
func runTSClientAs(t *testing.T, node, clientID, secret, endpoint, issuer, scope string, tools ...string) tsResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), tsClientTimeout)
	defer cancel()
	args := []string{"mcpclient.mjs", "--client-id", clientID, "--issuer", issuer}
	if scope != "" {
		args = append(args, "--scope", scope)
	}
	for _, tool := range tools {
		args = append(args, "--call", tool)
	}
	// The script is stat-ed so that go test's cache notices when it changes.
	_, err := os.Stat(filepath.Join(oidcprovider.Dir(), args[0]))
	require.NoError(t, err)
	cmd := exec.CommandContext(ctx, node, append(args, endpoint)...)
	cmd.Dir = oidcprovider.Dir()
	cmd.Env = append(os.Environ(), "MCP_CLIENT_SECRET="+secret)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	require.NoError(t, err, "node %s\nstdout: %s\nstderr: %s", args[0], stdout.String(), stderr.String())
	var res tsResult
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &res), "output: %s; stderr: %s", stdout.String(), stderr.String())
	return res
}
