package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wellKnown is the root metadata path (RFC 9728 §3).
const wellKnown = "/.well-known/oauth-protected-resource"

// metadataDoc is what the tests read of the metadata.
type metadataDoc struct {
	Resource             string   `json:"resource"`
	AuthorizationServers []string `json:"authorization_servers"`
	ScopesSupported      []string `json:"scopes_supported"`
	DPoPAlgorithms       []string `json:"dpop_signing_alg_values_supported"`
	DPoPRequired         *bool    `json:"dpop_bound_access_tokens_required"`
}

// getMetadata fetches the metadata from the server listening at listen,
// at path.
func getMetadata(t *testing.T, listen, path string) metadataDoc {
	t.Helper()
	resp, err := httpClient.Get("http://" + listen + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s", path)
	var md metadataDoc
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&md))
	return md
}

// listenAddress returns the address a server printed it listens on, with
// 127.0.0.1 for an unspecified one.
func listenAddress(t *testing.T, out string) string {
	t.Helper()
	host, port, err := net.SplitHostPort(printed(t, out, "Listening on"))
	require.NoError(t, err)
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// Metadata checks what the examples advertise (RFC 9728): the resource is
// the public URL and /mcp, from -public-url, else MCP_PUBLIC_URL, else the
// listener's address with 127.0.0.1 for an unspecified one;
// authorization_servers is MCP_AUTHORIZATION_SERVER, else
// INTROSPECTION_ISSUER; scopes_supported holds the tools' scopes and no
// offline_access; the document is served at the path-suffixed and the root
// well-known URL, and the challenges point to it. The token audience is
// the resource, also behind a proxy that keeps the public Host header.
func Metadata(t *testing.T, ex Example) {
	for _, tc := range []struct {
		name                string
		addr, publicURL     string
		env                 []string
		resource            string // "" for http://LISTENER/mcp
		authorizationServer string // "" for INTROSPECTION_ISSUER
	}{
		{name: "-addr :0 advertises 127.0.0.1", addr: ":0"},
		{name: "-addr 127.0.0.1:0", addr: "127.0.0.1:0"},
		{name: "-public-url names another host", addr: "127.0.0.1:0", publicURL: "https://mcp.example.com",
			resource: "https://mcp.example.com/mcp"},
		{name: "MCP_PUBLIC_URL, with a port and a slash", addr: "127.0.0.1:0", env: []string{"MCP_PUBLIC_URL", "https://env.example.com:8443/"},
			resource: "https://env.example.com:8443/mcp"},
		{name: "-public-url wins over MCP_PUBLIC_URL", addr: "127.0.0.1:0", publicURL: "https://flag.example.com",
			env: []string{"MCP_PUBLIC_URL", "https://env.example.com"}, resource: "https://flag.example.com/mcp"},
		{name: "MCP_AUTHORIZATION_SERVER wins over INTROSPECTION_ISSUER", addr: "127.0.0.1:0",
			env:                 []string{"MCP_AUTHORIZATION_SERVER", "https://login.example.com/realms/mcp"},
			authorizationServer: "https://login.example.com/realms/mcp"},
		{name: "MCP_AUTHORIZATION_SERVER without INTROSPECTION_ISSUER", addr: "127.0.0.1:0",
			env:                 []string{"MCP_AUTHORIZATION_SERVER", "https://login.example.com/realms/mcp", "INTROSPECTION_ISSUER", ""},
			authorizationServer: "https://login.example.com/realms/mcp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := introspectiontest.NewServer()
			defer as.Close()
			configure(t, as)
			for i := 0; i+1 < len(tc.env); i += 2 {
				t.Setenv(tc.env[i], tc.env[i+1])
			}
			srv := start(t, ex, tc.addr, tc.publicURL)
			listen := listenAddress(t, srv.out.String())
			resource := tc.resource
			if resource == "" {
				_, port, err := net.SplitHostPort(listen)
				require.NoError(t, err)
				resource = "http://127.0.0.1:" + port + mcpPath
			}
			authorizationServer := tc.authorizationServer
			if authorizationServer == "" {
				authorizationServer = as.Issuer
			}
			assert.Equal(t, resource, srv.endpoint, "the printed endpoint is the resource")
			want := metadataDoc{Resource: resource, AuthorizationServers: []string{authorizationServer},
				ScopesSupported: []string{ScopeTools, ScopeEcho}, DPoPAlgorithms: introspection.DefaultDPoPAlgorithms}
			assert.Equal(t, want, getMetadata(t, listen, wellKnown+mcpPath), "at the path-suffixed URL")
			assert.Equal(t, want, getMetadata(t, listen, wellKnown), "at the root URL")

			metadataURL, err := introspection.MetadataURL(resource)
			require.NoError(t, err)
			endpoint := "http://" + listen + mcpPath
			r := send(t, http.MethodPost, endpoint, "", "", initializeRequest)
			assert.Equal(t, http.StatusUnauthorized, r.status)
			assert.Equal(t, []string{
				`Bearer realm="mcp", scope="mcp:tools", resource_metadata="` + metadataURL + `"`,
				`DPoP realm="mcp", scope="mcp:tools", resource_metadata="` + metadataURL + `", ` + dpopAlgs,
			}, r.challenge)

			u, err := url.Parse(resource)
			require.NoError(t, err)
			token := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{ScopeTools}, Audience: []string{resource}})
			for _, host := range []string{listen, u.Host} {
				r, err := sendTo(endpoint, host, token, initializeRequest)
				require.NoError(t, err)
				assert.Equal(t, http.StatusOK, r.status, "a token for %s, Host %s: %s", resource, host, r.body)
			}
			other := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{ScopeTools}, Audience: []string{OtherResource}})
			r = send(t, http.MethodPost, endpoint, other, "", initializeRequest)
			assert.Equal(t, http.StatusUnauthorized, r.status, "a token for another resource")
		})
	}
}

// sendTo posts body to endpoint with the Host header host, as a proxy
// that keeps the client's Host header forwards it.
func sendTo(endpoint, host, token, body string) (reply, error) {
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	req.Host = host
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := httpClient.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, body: string(b)}, err
}

// StartupRefusals checks that an example refuses to start, with an error
// that says what to set, when it cannot tell what to advertise: a public
// URL that is not scheme://host[:port], or an authorization server it
// would have to guess from the introspection URL. The error never repeats
// a password of the URL.
func StartupRefusals(t *testing.T, ex Example) {
	for _, tc := range []struct {
		name      string
		publicURL string
		env       []string
		want      string
	}{
		{name: "INTROSPECTION_URL without an issuer", env: []string{"INTROSPECTION_ISSUER", ""},
			want: "set MCP_AUTHORIZATION_SERVER or INTROSPECTION_ISSUER"},
		{name: "a path", publicURL: "https://mcp.example.com/base", want: "public URL"},
		{name: "a query", publicURL: "https://mcp.example.com?x=1", want: "public URL"},
		{name: "an empty query", publicURL: "https://mcp.example.com/?", want: "public URL"},
		{name: "a fragment", publicURL: "https://mcp.example.com#top", want: "public URL"},
		{name: "an empty fragment", publicURL: "https://mcp.example.com#", want: "public URL"},
		{name: "a password", publicURL: "https://user:s3cret@mcp.example.com", want: "public URL"},
		{name: "no scheme", publicURL: "mcp.example.com", want: "public URL"},
		{name: "another scheme", publicURL: "ftp://mcp.example.com", want: "public URL"},
		{name: "no host", publicURL: "https://:8443", want: "public URL"},
		{name: "from MCP_PUBLIC_URL", env: []string{"MCP_PUBLIC_URL", "https://mcp.example.com/base"}, want: "public URL"},
		{name: "the unspecified address", publicURL: "http://0.0.0.0:8080", want: "0.0.0.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := introspectiontest.NewServer()
			defer as.Close()
			configure(t, as)
			for i := 0; i+1 < len(tc.env); i += 2 {
				t.Setenv(tc.env[i], tc.env[i+1])
			}
			out := &syncBuffer{}
			// Run returns at once either way: with the error, or, when
			// it starts, with nil once it has stopped for ctx.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			err := ex.Run(ctx, "127.0.0.1:0", tc.publicURL, out)
			require.Error(t, err, "it refuses to start")
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "s3cret")
			assert.NotContains(t, out.String(), "MCP endpoint", "it printed no endpoint")
			assert.Zero(t, as.Requests())
		})
	}
}
