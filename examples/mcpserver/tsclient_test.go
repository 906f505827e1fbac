package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/interop/oidcprovider"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTypeScriptClient runs an MCP client that others wrote, the official
// TypeScript SDK (@modelcontextprotocol/sdk, interop/oidc/mcpclient.mjs),
// against this example and oidc-provider. The client starts with nothing
// but its client credentials: it follows the example's 401 challenge to the
// RFC 9728 metadata, discovers oidc-provider there, gets an opaque token for
// the example's resource URL with the client credentials grant, and calls
// tools with it.
func TestTypeScriptClient(t *testing.T) {
	node := oidcprovider.Node(t, "@modelcontextprotocol/sdk")
	p := oidcprovider.Start(t)

	t.Run("finds the metadata, gets a token by itself, whoami names the client", func(t *testing.T) {
		ex := startExample(t, p, false)
		res := runTSClient(t, node, ex.endpoint, p.Issuer, "mcp:tools", "whoami")
		require.True(t, res.Connected, "the client did not connect: %+v", res.Error)

		served := ex.served()
		require.NotEmpty(t, served)
		first := served[0]
		assert.Equal(t, []any{http.MethodPost, mcpPath, false, http.StatusUnauthorized},
			[]any{first.Method, first.Path, first.Bearer, first.Status}, "the client's first request carries no token")
		assert.Contains(t, first.Challenge, `resource_metadata="`+ex.metadataURL+`"`, "the challenge names the metadata")
		assert.Equal(t, 1, ex.count(func(e exchange) bool { return e.Path == ex.metadataPath && e.Status == http.StatusOK }),
			"the client fetches the metadata once")
		assert.Equal(t, 1, ex.count(func(e exchange) bool { return e.Path == mcpPath && !e.Bearer }),
			"every MCP request after the first carries a token")

		assert.Equal(t, []string{ex.metadataURL}, res.urls(http.MethodGet, ex.metadataPath), "the metadata it fetched is the one the challenge named")
		assert.NotEmpty(t, res.requests(func(r tsRequest) bool {
			return r.Method == http.MethodGet && strings.HasPrefix(r.URL, p.Issuer+"/.well-known/") && r.Status == http.StatusOK
		}), "it discovered the authorization server the metadata names")
		tokens := res.tokenRequests(p.Issuer)
		require.Len(t, tokens, 1, "one token request")
		assert.Equal(t, map[string]string{"grant_type": "client_credentials", "scope": "mcp:tools", "resource": ex.endpoint}, tokens[0].Form)
		assert.Equal(t, http.StatusOK, tokens[0].Status)

		require.Len(t, res.Calls, 1)
		whoami := res.Calls[0]
		require.True(t, whoami.OK, "whoami failed: %+v", whoami.Error)
		var c caller
		require.NoError(t, json.Unmarshal(whoami.StructuredContent, &c))
		assert.Equal(t, oidcprovider.MCPClientID, c.ClientID, "whoami names the client whose token it got")
		assert.Equal(t, []string{"mcp:tools"}, c.Scopes)
		assert.Zero(t, res.Redactions, "no token appears in what the client saw")

		// Without a cache each request with a token costs an introspection,
		// but that concurrent ones share one: the GET stream, which the
		// client opens beside its other requests, may share another's.
		require.Eventually(t, func() bool { return ex.v.Stats().Accepted == tsSessionRequests }, tsClientTimeout, time.Millisecond,
			"the requests with a token: initialize, initialized, tools/list, tools/call and the GET stream")
		n := ex.introspections.Load()
		assert.True(t, n == tsSessionRequests || n == tsSessionRequests-1, "%d introspections", n)
		t.Logf("%d requests with a token, %d introspections", tsSessionRequests, n)
	})

	t.Run("metadata resource: the example's is accepted, another origin's refused", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			// otherOrigin builds the example with the public URL
			// http://localhost:PORT rather than the URL the client
			// connects to, http://127.0.0.1:PORT, as a -public-url that
			// is not the URL clients reach would make it.
			otherOrigin bool
			accepted    bool
		}{
			{"the example's own resource URL", false, true},
			{"a public URL of another origin", true, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ex := startExample(t, p, tc.otherOrigin)
				res := runTSClient(t, node, ex.endpoint, p.Issuer, "mcp:tools", "whoami")
				tokens := res.tokenRequests(p.Issuer)
				if tc.accepted {
					require.True(t, res.Connected, "the client refused the metadata: %+v", res.Error)
					require.Len(t, tokens, 1)
					assert.Equal(t, ex.resource, tokens[0].Form["resource"], "the token is requested for the advertised resource")
					return
				}
				assert.False(t, res.Connected, "the client accepted metadata for %s", ex.resource)
				require.NotNil(t, res.Error)
				assert.Contains(t, res.Error.Message, "Protected resource "+ex.resource+" does not match expected "+ex.endpoint)
				assert.Empty(t, tokens, "no token is requested for a resource the client cannot match")
				assert.Equal(t, 1, ex.count(func(e exchange) bool { return e.Path == ex.metadataPath }), "the client read the metadata")
			})
		}
	})

	t.Run("403 at connect: the SDK asks once more with its own scopes, then fails", func(t *testing.T) {
		// A client configured without scopes gets a token without any; the
		// server-wide scope mcp:tools is missing at initialize.
		ex := startExample(t, p, false)
		res := runTSClient(t, node, ex.endpoint, p.Issuer, "")
		assertStepUpFails(t, res, p.Issuer, "", "initialize", "", `scope="mcp:tools"`)
		assert.Equal(t, 2, ex.count(func(e exchange) bool { return e.Status == http.StatusForbidden }))
	})

	t.Run("per-tool 403: echo needs mcp:echo, the SDK asks once more with its own scopes, then fails", func(t *testing.T) {
		ex := startExample(t, p, false)
		res := runTSClient(t, node, ex.endpoint, p.Issuer, "mcp:tools", "whoami", "echo")
		require.True(t, res.Connected, "the client did not connect: %+v", res.Error)
		assert.NotContains(t, res.Tools, "echo", "tools/list hides echo from a token without mcp:echo")
		require.Len(t, res.Calls, 2)
		assert.True(t, res.Calls[0].OK, "whoami needs only mcp:tools: %+v", res.Calls[0].Error)
		assertStepUpFails(t, res, p.Issuer, "mcp:tools", "tools/call", "echo", `scope="mcp:tools mcp:echo"`)
		assert.Equal(t, 2, ex.count(func(e exchange) bool { return e.Status == http.StatusForbidden }))

		t.Run("a client configured with mcp:echo calls it", func(t *testing.T) {
			res := runTSClient(t, node, ex.endpoint, p.Issuer, "mcp:tools mcp:echo", "echo")
			require.True(t, res.Connected, "the client did not connect: %+v", res.Error)
			require.Len(t, res.Calls, 1)
			assert.True(t, res.Calls[0].OK, "echo failed: %+v", res.Calls[0].Error)
			tokens := res.tokenRequests(p.Issuer)
			require.Len(t, tokens, 1)
			assert.Equal(t, "mcp:tools mcp:echo", tokens[0].Form["scope"])
		})
	})
}

// assertStepUpFails checks how @modelcontextprotocol/sdk 1.x answers a 403
// insufficient_scope to the JSON-RPC method (and tool) when its client
// credentials provider was configured with the scopes configured: it gets a
// new token, asking again for configured (never for the challenge's scope,
// which the provider does not read), sends the request once more, and on
// the same 403 gives up with "Server returned 403 after trying upscoping".
func assertStepUpFails(t *testing.T, res tsResult, issuer, configured, method, tool, scope string) {
	t.Helper()
	refused := res.requests(func(r tsRequest) bool { return r.RPC == method && r.Tool == tool && r.Status == http.StatusForbidden })
	require.Len(t, refused, 2, "the request is sent twice and refused twice")
	for _, r := range refused {
		assert.Contains(t, r.Challenge, `error="insufficient_scope"`)
		assert.Contains(t, r.Challenge, scope, "the challenge names every scope the request needs")
	}
	tokens := res.tokenRequests(issuer)
	require.Len(t, tokens, 2, "one token for the first try, one for the retry")
	for _, r := range tokens {
		assert.Equal(t, configured, r.Form["scope"], "each token request asks for the configured scopes, not the challenge's")
		assert.Equal(t, http.StatusOK, r.Status)
	}
	var sdkErr *tsError
	if tool == "" {
		assert.False(t, res.Connected)
		sdkErr = res.Error
	} else if i := slices.IndexFunc(res.Calls, func(c tsCall) bool { return c.Tool == tool }); i >= 0 {
		sdkErr = res.Calls[i].Error
	}
	require.NotNil(t, sdkErr, "the SDK surfaces an error")
	assert.Equal(t, "StreamableHTTPError", sdkErr.Name)
	assert.Equal(t, 403, sdkErr.Code)
	assert.Contains(t, sdkErr.Message, "Server returned 403 after trying upscoping")
}

// example is this example's handler, served on 127.0.0.1 behind a recorder.
type example struct {
	endpoint     string // where the client connects: http://127.0.0.1:PORT/mcp
	resource     string // the resource the metadata advertises
	metadataURL  string // the metadata's URL, as the challenges name it
	metadataPath string

	v              *introspection.Verifier
	introspections atomic.Int64 // requests to the introspection endpoint

	mu  sync.Mutex // guards log
	log []exchange
}

// exchange is one request the example served.
type exchange struct {
	Method, Path string
	Bearer       bool // an Authorization header came with it
	Status       int
	Challenge    string // WWW-Authenticate
}

// caller is what the whoami tool reports, as far as this test reads it.
type caller struct {
	ClientID string   `json:"client_id"`
	Scopes   []string `json:"scopes"`
}

// startExample serves newHandler with a verifier that asks p for the
// example's resource URL, as main does with INTROSPECTION_* pointing at p.
// The handler is built with the base URL the client connects to,
// http://127.0.0.1:PORT, or with otherOrigin with http://localhost:PORT.
// The listener takes every interface, as -addr :PORT does, so that the
// metadata is reachable at either URL.
func startExample(t *testing.T, p *oidcprovider.Provider, otherOrigin bool) *example {
	t.Helper()
	ln, err := net.Listen("tcp", ":0")
	require.NoError(t, err)
	_, port, err := net.SplitHostPort(ln.Addr().String())
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(nil)
	require.NoError(t, srv.Listener.Close())
	srv.Listener = ln

	ex := &example{endpoint: "http://127.0.0.1:" + port + mcpPath}
	base := "http://127.0.0.1:" + port
	if otherOrigin {
		base = "http://localhost:" + port
	}
	ex.resource = base + mcpPath
	ex.metadataURL, err = introspection.MetadataURL(ex.resource)
	require.NoError(t, err)
	ex.metadataPath = strings.TrimPrefix(ex.metadataURL, base)

	v, err := introspection.NewVerifier(introspection.Settings{
		IntrospectionURL: p.IntrospectionURL,
		ClientID:         oidcprovider.BasicClientID,
		ClientSecret:     oidcprovider.ResourceServerSecret,
		Issuer:           p.Issuer,
		RequiredScopes:   []string{"mcp:tools"},
		Audience:         []string{ex.resource},
		HTTPClient:       &http.Client{Transport: countingTransport{&ex.introspections}},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	ex.v = v
	h, closeSessions, err := newHandler(v, base, p.Issuer)
	require.NoError(t, err)
	srv.Config.Handler = ex.record(h)
	srv.Start()
	t.Cleanup(srv.Close)
	t.Cleanup(closeSessions)
	return ex
}

// tsSessionRequests is how many requests with a token one session of
// mcpclient.mjs that calls one tool sends.
const tsSessionRequests = 5

// countingTransport counts the requests it sends.
type countingTransport struct{ n *atomic.Int64 }

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

// record logs each request that h serves.
func (ex *example) record(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		ex.mu.Lock()
		defer ex.mu.Unlock()
		ex.log = append(ex.log, exchange{
			Method: r.Method, Path: r.URL.Path, Bearer: r.Header.Get("Authorization") != "",
			Status: sw.status, Challenge: w.Header().Get("WWW-Authenticate"),
		})
	})
}

// served returns the requests served so far, in order.
func (ex *example) served() []exchange {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	return slices.Clone(ex.log)
}

// count returns how many requests served so far match.
func (ex *example) count(match func(exchange) bool) int {
	n := 0
	for _, e := range ex.served() {
		if match(e) {
			n++
		}
	}
	return n
}

type statusWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// tsResult is the JSON line mcpclient.mjs prints.
type tsResult struct {
	Connected  bool        `json:"connected"`
	Error      *tsError    `json:"error"`
	Tools      []string    `json:"tools"`
	Calls      []tsCall    `json:"calls"`
	Requests   []tsRequest `json:"requests"`
	Redactions int         `json:"redactions"`
}

type tsError struct {
	Name    string `json:"name"`
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type tsCall struct {
	Tool              string          `json:"tool"`
	OK                bool            `json:"ok"`
	StructuredContent json.RawMessage `json:"structuredContent"`
	Error             *tsError        `json:"error"`
}

// tsRequest is one HTTP request the SDK made.
type tsRequest struct {
	Method    string            `json:"method"`
	URL       string            `json:"url"`
	Status    int               `json:"status"`
	RPC       string            `json:"rpc"`
	Tool      string            `json:"tool"`
	Challenge string            `json:"challenge"`
	Form      map[string]string `json:"form"`
}

func (r tsResult) requests(match func(tsRequest) bool) []tsRequest {
	var out []tsRequest
	for _, q := range r.Requests {
		if match(q) {
			out = append(out, q)
		}
	}
	return out
}

// tokenRequests returns the requests to issuer's token endpoint.
func (r tsResult) tokenRequests(issuer string) []tsRequest {
	return r.requests(func(q tsRequest) bool { return q.Method == http.MethodPost && q.URL == issuer+"/token" })
}

// urls returns the URLs of the requests with method whose path ends in path.
func (r tsResult) urls(method, path string) []string {
	var out []string
	for _, q := range r.requests(func(q tsRequest) bool { return q.Method == method && strings.HasSuffix(q.URL, path) }) {
		out = append(out, q.URL)
	}
	return out
}

// tsClientTimeout bounds one run of mcpclient.mjs; the script gives up
// after 20 seconds by itself.
const tsClientTimeout = 60 * time.Second

// runTSClient runs mcpclient.mjs as oidc-provider's MCP client against
// endpoint: it asks for scope ("" for none) and calls the tools in order.
func runTSClient(t *testing.T, node, endpoint, issuer, scope string, tools ...string) tsResult {
	t.Helper()
	return runTSClientAs(t, node, oidcprovider.MCPClientID, oidcprovider.MCPClientSecret, endpoint, issuer, scope, tools...)
}
