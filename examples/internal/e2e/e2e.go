// Package e2e tests the example servers end to end, over HTTP, with the
// go-sdk MCP client and with plain requests. Each example's tests hand it
// the example's functions ([Example]) and run the same checks, so that both
// SDKs are held to the same behaviour.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"
)

// Example is an example server as its main package builds it.
type Example struct {
	// Run serves until ctx ends, as main does with -addr addr and
	// -public-url publicURL, printing to out.
	Run func(ctx context.Context, addr, publicURL string, out io.Writer) error
	// NewHandler builds the server's handler (metadata, middleware, MCP)
	// for a verifier, the public base URL and the authorization server to
	// announce; closeSessions ends the MCP sessions.
	NewHandler func(v *introspection.Verifier, publicURL, authorizationServer string) (h http.Handler, closeSessions func(), err error)
	// SDKHandler returns the example's MCP handler alone, as the SDK
	// serves it without the middleware and adapter in front.
	SDKHandler func(v *introspection.Verifier) http.Handler
}

// The examples' scopes.
const (
	ScopeTools = "mcp:tools"
	ScopeEcho  = "mcp:echo"
)

// mcpPath is where the examples serve MCP.
const mcpPath = "/mcp"

// dpopAlgs is the algs attribute of the examples' DPoP challenges: every
// algorithm the verifier accepts by default.
const dpopAlgs = `algs="ES256 ES384 ES512 RS256 PS256 EdDSA Ed25519"`

// Settings returns the verifier settings that the examples run with when
// INTROSPECTION_* names only as, for their resource URL resource.
func Settings(as *introspectiontest.Server, resource string) introspection.Settings {
	matcher, err := introspection.HierarchicalScopes(":")
	if err != nil {
		panic(err)
	}
	return introspection.Settings{
		IntrospectionURL: as.IntrospectionURL,
		ClientID:         introspectiontest.ClientID,
		ClientSecret:     introspectiontest.ClientSecret,
		Issuer:           as.Issuer,
		RequiredScopes:   []string{ScopeTools},
		ScopeMatcher:     matcher,
		Audience:         []string{resource},
		CacheTTL:         30 * time.Second,
		Timeout:          2 * time.Second,
	}
}

// Caller is what the whoami tool reports.
type Caller struct {
	UserID   string   `json:"user_id"`
	Subject  string   `json:"subject"`
	ClientID string   `json:"client_id"`
	Scopes   []string `json:"scopes"`
}

// clientTransport carries the tests' requests. Servers stop once its
// connections are closed, so that none waits for a connection that the
// transport dialed and never used: http.Server.Shutdown gives those five
// seconds to send a request.
var clientTransport = http.DefaultTransport.(*http.Transport).Clone()

// httpClient sends the tests' plain requests.
var httpClient = &http.Client{Transport: clientTransport}

// bearer sends token with every request of a go-sdk client.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if b.token != "" {
		r.Header.Set("Authorization", "Bearer "+b.token)
	}
	next := b.next
	if next == nil {
		next = clientTransport
	}
	return next.RoundTrip(r)
}

// Connect opens a session of the go-sdk client with endpoint, sending token.
func Connect(ctx context.Context, endpoint, token string) (*mcp.ClientSession, error) {
	return connectVia(ctx, endpoint, bearer{token: token}, "")
}

// LegacyProtocol is the latest protocol revision with sessions: the
// go-sdk serves 2026-07-28, which has none, only on a stateless handler.
const LegacyProtocol = "2025-11-25"

// connectVia opens a session of the go-sdk client with endpoint through
// rt, asking for protocol version ("" for the client's latest).
func connectVia(ctx context.Context, endpoint string, rt http.RoundTripper, version string) (*mcp.ClientSession, error) {
	client := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "v1"}, nil)
	return client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint: endpoint, HTTPClient: &http.Client{Transport: rt}, MaxRetries: -1,
	}, &mcp.ClientSessionOptions{ProtocolVersion: version})
}

// CallWhoami calls whoami in cs.
func CallWhoami(ctx context.Context, cs *mcp.ClientSession) (Caller, error) {
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami"})
	if err != nil {
		return Caller{}, err
	}
	if res.IsError {
		return Caller{}, errors.New("whoami failed")
	}
	var c Caller
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		return c, err
	}
	return c, json.Unmarshal(b, &c)
}

// Whoami calls the whoami tool in a session of its own.
func Whoami(ctx context.Context, endpoint, token string) (Caller, error) {
	cs, err := Connect(ctx, endpoint, token)
	if err != nil {
		return Caller{}, err
	}
	defer cs.Close()
	return CallWhoami(ctx, cs)
}

// CallEcho calls echo in cs with text and returns what it said.
func CallEcho(ctx context.Context, cs *mcp.ClientSession, text string) (string, error) {
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": text}})
	if err != nil {
		return "", err
	}
	if res.IsError || len(res.Content) != 1 {
		return "", errors.New("echo failed")
	}
	tc, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		return "", errors.New("echo said no text")
	}
	return tc.Text, nil
}

// ToolNames lists the tools of cs, sorted.
func ToolNames(ctx context.Context, cs *mcp.ClientSession) ([]string, error) {
	res, err := cs.ListTools(ctx, nil)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names, nil
}

// The JSON-RPC requests the tests send.
const (
	initializeRequest = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}`
	whoamiRequest     = `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`
	echoRequest       = `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}`
	listRequest       = `{"jsonrpc":"2.0","id":4,"method":"tools/list"}`
)

// reply is an HTTP answer, read whole.
type reply struct {
	status    int
	challenge []string // WWW-Authenticate
	session   string   // Mcp-Session-Id
	body      string
}

// send sends an MCP request: method (POST with body), token and session
// ("" for none).
func send(t *testing.T, method, endpoint, token, session, body string) reply {
	t.Helper()
	return sendAt(t, LegacyProtocol, method, endpoint, token, session, body)
}

// sendAt is send in a session of protocol version.
func sendAt(t *testing.T, version, method, endpoint, token, session, body string) reply {
	t.Helper()
	r, err := sendRequest(version, method, endpoint, token, session, body)
	require.NoError(t, err)
	return r
}

func sendRequest(version, method, endpoint, token, session, body string) (reply, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, endpoint, rd)
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Accept", "application/json, text/event-stream")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
		req.Header.Set("Mcp-Protocol-Version", version)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{resp.StatusCode, resp.Header.Values("WWW-Authenticate"), resp.Header.Get("Mcp-Session-Id"), string(b)}, nil
}

// initialize opens a session with token and returns its id.
func initialize(t *testing.T, endpoint, token string) string {
	t.Helper()
	return initializeAt(t, LegacyProtocol, endpoint, token)
}

// initializeAt opens a session of protocol version with token.
func initializeAt(t *testing.T, version, endpoint, token string) string {
	t.Helper()
	r := send(t, http.MethodPost, endpoint, token, "", strings.Replace(initializeRequest, LegacyProtocol, version, 1))
	require.Equal(t, http.StatusOK, r.status, r.body)
	require.NotEmpty(t, r.session)
	return r.session
}

// syncBuffer is an io.Writer that a test reads while a server writes.
type syncBuffer struct {
	mu sync.Mutex   // guards b
	b  bytes.Buffer // what was written
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// printed returns what an example server printed after label and ": " on
// a line.
func printed(t *testing.T, out, label string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(label) + `: (\S+)$`).FindStringSubmatch(out)
	require.NotNil(t, m, "no %q in %q", label, out)
	return m[1]
}

// running is an example server started with Example.Run.
type running struct {
	endpoint string // the MCP endpoint it printed
	out      *syncBuffer
	stop     func() error // cancels its context and returns what Run returned
}

// start runs ex.Run on addr with publicURL until the test ends, and waits
// until it has printed where it serves. The environment is the test's.
func start(t *testing.T, ex Example, addr, publicURL string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan struct{})
	var runErr error // Run's result, once done is closed
	go func() {
		defer close(done)
		runErr = ex.Run(ctx, addr, publicURL, out)
	}()
	stop := func() error {
		clientTransport.CloseIdleConnections()
		cancel()
		<-done
		return runErr
	}
	t.Cleanup(func() { require.NoError(t, stop()) })
	require.Eventually(t, func() bool {
		select {
		case <-done:
			return true
		default:
			return strings.Contains(out.String(), "Accepted token audience: ")
		}
	}, 10*time.Second, 5*time.Millisecond, "the server printed no endpoint")
	select {
	case <-done:
		require.NoError(t, runErr, "the server stopped")
		require.FailNow(t, "the server stopped")
	default:
	}
	return &running{endpoint: printed(t, out.String(), "MCP endpoint"), out: out, stop: stop}
}

// clearEnv unsets every INTROSPECTION_ and MCP_ variable, which are those
// the examples read, for the test.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "INTROSPECTION_") || strings.HasPrefix(name, "MCP_") {
			t.Setenv(name, "") // restored when the test ends
			require.NoError(t, os.Unsetenv(name))
		}
	}
}

// configure points the examples at as, as its operator would: its URL, the
// resource server's credentials and its issuer. Everything else is unset.
func configure(t *testing.T, as *introspectiontest.Server) {
	t.Helper()
	clearEnv(t)
	t.Setenv("INTROSPECTION_URL", as.IntrospectionURL)
	t.Setenv("INTROSPECTION_CLIENT_ID", introspectiontest.ClientID)
	t.Setenv("INTROSPECTION_CLIENT_SECRET", introspectiontest.ClientSecret)
	t.Setenv("INTROSPECTION_ISSUER", as.Issuer)
}

// issuer mints tokens at as for the resource at endpoint.
type issuer struct {
	as       *introspectiontest.Server
	resource string
}

// user returns a token of user (as sub, through the client "app") with scopes.
func (i issuer) user(user string, scopes ...string) string {
	return i.as.Issue(introspectiontest.TokenOptions{Subject: user, ClientID: "app", Scopes: scopes, Audience: []string{i.resource}})
}

// machine returns a client-credentials token of client: no sub.
func (i issuer) machine(client string, scopes ...string) string {
	return i.as.Issue(introspectiontest.TokenOptions{ClientID: client, Scopes: scopes, Audience: []string{i.resource}})
}

// startConfigured starts ex against a new introspectiontest server, as
// configure sets it up, with the extra variables env, on 127.0.0.1.
func startConfigured(t *testing.T, ex Example, env ...string) (*running, issuer) {
	t.Helper()
	as := introspectiontest.NewServer()
	t.Cleanup(as.Close)
	configure(t, as)
	for i := 0; i+1 < len(env); i += 2 {
		t.Setenv(env[i], env[i+1])
	}
	srv := start(t, ex, "127.0.0.1:0", "")
	return srv, issuer{as: as, resource: srv.endpoint}
}
