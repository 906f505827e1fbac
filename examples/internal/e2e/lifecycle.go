package e2e

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/examples/internal/demo"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Demo checks the development server: with nothing configured, an example
// starts an authorization server in process, prints a token with and one
// without mcp:echo, both for its resource, and curl commands that work as
// their comments say; the server publishes its metadata, but its token
// endpoint serves no MCP client.
func Demo(t *testing.T, ex Example) {
	clearEnv(t)
	srv := start(t, ex, "127.0.0.1:0", "")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	// The usage comes in one write, after the lines start waits for.
	require.Eventually(t, func() bool { return strings.Contains(srv.out.String(), demo.NarrowLabel+": ") },
		testTimeout, time.Millisecond, "no tokens in %q", srv.out)
	out := srv.out.String()
	full, narrow := printed(t, out, demo.FullLabel), printed(t, out, demo.NarrowLabel)
	issuer := printed(t, out, "Authorization server")

	t.Run("the tokens are for this resource, one with mcp:echo and one without", func(t *testing.T) {
		v, err := introspection.NewVerifier(introspection.Settings{
			IntrospectionURL: issuer + introspectiontest.IntrospectionPath,
			ClientID:         introspectiontest.ClientID,
			ClientSecret:     introspectiontest.ClientSecret,
			Issuer:           issuer,
		})
		require.NoError(t, err)
		defer v.Close()
		for _, tc := range []struct {
			token  string
			scopes []string
		}{{full, []string{ScopeTools, ScopeEcho}}, {narrow, []string{ScopeTools}}} {
			tok, err := v.Verify(ctx, tc.token)
			require.NoError(t, err)
			assert.Equal(t, tc.scopes, tok.Scopes)
			assert.Equal(t, []string{srv.endpoint}, tok.Audience)
			assert.Equal(t, demo.Subject, tok.Subject)
		}
	})

	t.Run("the full token calls both tools, the other only whoami", func(t *testing.T) {
		for _, tc := range []struct {
			token string
			echo  bool
		}{{full, true}, {narrow, false}} {
			cs, err := Connect(ctx, srv.endpoint, tc.token)
			require.NoError(t, err)
			c, err := CallWhoami(ctx, cs)
			require.NoError(t, err)
			assert.Equal(t, demo.Subject, c.UserID)
			_, err = CallEcho(ctx, cs, "hi")
			assert.Equal(t, tc.echo, err == nil, "echo: %v", err)
			require.NoError(t, cs.Close())
		}
	})

	t.Run("it publishes its metadata, and grants tokens to no MCP client", func(t *testing.T) {
		resp, err := httpClient.Get(issuer + introspectiontest.MetadataPath)
		require.NoError(t, err)
		var metadata struct {
			Issuer        string `json:"issuer"`
			TokenEndpoint string `json:"token_endpoint"`
		}
		err = json.NewDecoder(resp.Body).Decode(&metadata)
		_ = resp.Body.Close()
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, issuer, metadata.Issuer)
		require.Equal(t, issuer+introspectiontest.TokenPath, metadata.TokenEndpoint)

		req, err := http.NewRequestWithContext(ctx, http.MethodPost, metadata.TokenEndpoint,
			strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {ScopeTools}}.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("mcp-client", "mcp-client-secret")
		resp, err = httpClient.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a client it does not know gets no token")
	})

	t.Run("the printed curl commands", func(t *testing.T) {
		for _, tool := range []string{"sh", "curl"} {
			if _, err := exec.LookPath(tool); err != nil {
				if os.Getenv("CI") == "true" {
					t.Fatalf("%s is not installed", tool)
				}
				t.Skipf("%s is not installed", tool)
			}
		}
		i := strings.Index(out, "MCP=")
		require.GreaterOrEqual(t, i, 0, "no script in %q", out)
		script := out[i:]
		assert.Equal(t, demo.Script(srv.endpoint, full, narrow), script, "the script comes last")
		cmd := exec.CommandContext(ctx, "sh", "-e")
		cmd.Stdin = strings.NewReader(script)
		got, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", got)
		// whoami, echo, echo without mcp:echo, no token.
		for _, want := range []string{
			`"user_id":"` + demo.Subject + `"`, `"client_id":"` + demo.ClientID + `"`,
			`"text":"hello"`,
			"HTTP/1.1 403 Forbidden", `error="insufficient_scope"`, `scope="mcp:tools mcp:echo"`,
			"HTTP/1.1 401 Unauthorized", `resource_metadata="`,
		} {
			assert.Contains(t, string(got), want)
		}
	})
}

// connCounter counts a server's open connections.
type connCounter struct{ open atomic.Int64 }

func (c *connCounter) track(_ net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		c.open.Add(1)
	case http.StateClosed, http.StateHijacked:
		c.open.Add(-1)
	}
}

// ShutdownClosesTheVerifier checks how an example stops: with a client's
// session and its GET stream open, the server shuts down within its
// bound, ending the session, and then closes the verifier, whose
// connections to the authorization server are closed when Run returns.
func ShutdownClosesTheVerifier(t *testing.T, ex Example) {
	as := introspectiontest.NewServer()
	defer as.Close()
	// The examples reach as through proxy, which counts their connections.
	target, err := url.Parse(as.URL)
	require.NoError(t, err)
	conns := &connCounter{}
	proxy := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(target))
	proxy.Config.ConnState = conns.track
	proxy.Start()
	defer proxy.Close()
	configure(t, as)
	t.Setenv("INTROSPECTION_URL", proxy.URL+introspectiontest.IntrospectionPath)

	srv := start(t, ex, "127.0.0.1:0", "")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	token := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{ScopeTools}, Audience: []string{srv.endpoint}})
	rec := &countingTransport{next: clientTransport}
	cs, err := connectVia(ctx, srv.endpoint, bearer{token: token, next: rec}, LegacyProtocol)
	require.NoError(t, err)
	defer cs.Close()
	_, err = CallWhoami(ctx, cs)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return slices.ContainsFunc(rec.exchanges(), func(e exchange) bool { return e.method == http.MethodGet && e.status == http.StatusOK })
	}, testTimeout, time.Millisecond, "the client opened no GET stream: %v", rec.exchanges())
	require.Positive(t, conns.open.Load(), "the verifier keeps its connection to the authorization server")

	require.NoError(t, srv.stop(), "Shutdown ends within its bound")
	// The proxy sees a connection closed once its end arrives.
	assert.Eventually(t, func() bool { return conns.open.Load() == 0 }, closeWait, time.Millisecond,
		"Run closed the verifier's connections")
	assert.Error(t, cs.Wait(), "the session ended")
}

// closeWait bounds the wait for a closed connection to be seen closed at
// the other end; an idle connection left open stays open far longer.
const closeWait = 5 * time.Second

// exchange is one HTTP request of a client, as countingTransport saw it.
type exchange struct {
	method, rpc string
	status      int
}

// countingTransport records the requests of a go-sdk client.
type countingTransport struct {
	next http.RoundTripper
	mu   sync.Mutex // guards log
	log  []exchange
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rpc := ""
	if r.Body != nil {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		var m struct {
			Method string `json:"method"`
		}
		if json.Unmarshal(b, &m) == nil {
			rpc = m.Method
		}
	}
	resp, err := c.next.RoundTrip(r)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.log = append(c.log, exchange{r.Method, rpc, status})
	return resp, err
}

func (c *countingTransport) exchanges() []exchange {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]exchange(nil), c.log...)
}

// SessionRequests is how many HTTP requests, each carrying the token, one
// session of the go-sdk client sends to an example, by the protocol it
// speaks.
type SessionRequests struct {
	// Latest is for the client's latest protocol revision, or what the
	// server negotiates down to.
	Latest int
	// Legacy is for LegacyProtocol, which has sessions.
	Legacy int
}

// IntrospectionsPerSession counts, at the authorization server, the
// introspections that one session of the go-sdk client costs an example:
// connect (with whatever the client sends for it), tools/list, a
// tools/call and close. The client sends want requests. Without a cache
// (INTROSPECTION_CACHE_TTL=0) each costs an introspection, but that
// concurrent requests for one token share one (TestCollapsing): the
// client's GET stream, which runs beside its other requests, may share
// another's. With the examples' cache the session costs one.
func IntrospectionsPerSession(t *testing.T, ex Example, want SessionRequests) {
	for _, tc := range []struct {
		name     string
		protocol string
		requests int
		cached   bool
	}{
		{"latest protocol, INTROSPECTION_CACHE_TTL=0", "", want.Latest, false},
		{LegacyProtocol + ", INTROSPECTION_CACHE_TTL=0", LegacyProtocol, want.Legacy, false},
		{"latest protocol, the examples' cache", "", want.Latest, true},
		{LegacyProtocol + ", the examples' cache", LegacyProtocol, want.Legacy, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var env []string
			if !tc.cached {
				env = []string{"INTROSPECTION_CACHE_TTL", "0"}
			}
			srv, iss := startConfigured(t, ex, env...)
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			token := iss.user("alice", ScopeTools)
			rec := &countingTransport{next: clientTransport}
			before := iss.as.RequestsFor(token)
			cs, err := connectVia(ctx, srv.endpoint, bearer{token: token, next: rec}, tc.protocol)
			require.NoError(t, err)
			_, err = cs.ListTools(ctx, nil)
			require.NoError(t, err)
			_, err = CallWhoami(ctx, cs)
			require.NoError(t, err)
			isGET := func(e exchange) bool { return e.method == http.MethodGet }
			if cs.ID() != "" {
				// The client opens its GET stream on its own: close the
				// session once it is open, as it is in a session that lasts.
				require.Eventually(t, func() bool { return slices.ContainsFunc(rec.exchanges(), isGET) },
					testTimeout, time.Millisecond, "the client opened no GET stream: %v", rec.exchanges())
			}
			require.NoError(t, cs.Close())
			sent := rec.exchanges()
			assert.Len(t, sent, tc.requests, "%v", sent)
			introspections := int(iss.as.RequestsFor(token) - before)
			t.Logf("%d requests, %d introspections: %v", len(sent), introspections, sent)
			if tc.cached {
				assert.Equal(t, 1, introspections)
				return
			}
			least := len(sent)
			if slices.ContainsFunc(sent, isGET) {
				least-- // the GET stream may share an introspection
			}
			assert.True(t, least <= introspections && introspections <= len(sent),
				"%d introspections for %d requests: %v", introspections, len(sent), sent)
		})
	}
}

// SameAnswersAsTheSDK checks that a request the middleware lets through is
// answered as the SDK alone answers it: invalid JSON and JSON-RPC batches,
// outside and inside a session, get the same status and body (up to the
// order of a batch's answers) through the example's handler, with a token
// that holds every scope, as from the SDK's handler without the middleware
// in front.
func SameAnswersAsTheSDK(t *testing.T, ex Example) {
	as := introspectiontest.NewServer()
	defer as.Close()
	serve := func(h func(v *introspection.Verifier, base string) http.Handler) string {
		srv := httptest.NewUnstartedServer(nil)
		base := "http://" + srv.Listener.Addr().String()
		v, err := introspection.NewVerifier(Settings(as, base+mcpPath))
		require.NoError(t, err)
		t.Cleanup(func() { _ = v.Close() })
		srv.Config.Handler = h(v, base)
		srv.Start()
		t.Cleanup(srv.Close)
		return base + mcpPath
	}
	bare := serve(func(v *introspection.Verifier, _ string) http.Handler { return ex.SDKHandler(v) })
	full := serve(func(v *introspection.Verifier, base string) http.Handler {
		h, closeSessions, err := ex.NewHandler(v, base, as.Issuer)
		require.NoError(t, err)
		t.Cleanup(closeSessions)
		return h
	})
	token := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{"mcp"}, Audience: []string{full}})
	ping := `{"jsonrpc":"2.0","id":5,"method":"ping"}`
	for _, tc := range []struct {
		name      string
		inSession bool
		body      string
		protocol  string // of the session; "" for LegacyProtocol
	}{
		{"invalid JSON", false, `{"jsonrpc":"2.0","id":1,"method":`, ""},
		{"invalid JSON in a session", true, `{"jsonrpc":"2.0","id":1,"method":`, ""},
		{"not JSON", false, `hello`, ""},
		{"an empty body", false, ` `, ""},
		{"an empty batch", false, `[]`, ""},
		{"a batch of initialize", false, `[` + initializeRequest + `]`, ""},
		{"a batch in a session", true, `[` + echoRequest + `,` + ping + `]`, ""},
		{"a batch of a notification in a session", true, `[{"jsonrpc":"2.0","method":"notifications/initialized"}]`, ""},
		{"a batch with invalid JSON", true, `[` + echoRequest + `,{"jsonrpc":]`, ""},
		// Protocol 2025-03-26 had batches.
		{"a batch in a 2025-03-26 session", true, `[` + echoRequest + `,` + ping + `]`, "2025-03-26"},
		{"a batch with invalid JSON in a 2025-03-26 session", true, `[` + echoRequest + `,{"jsonrpc":]`, "2025-03-26"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			protocol := cmp.Or(tc.protocol, LegacyProtocol)
			answer := func(endpoint, token string) reply {
				session := ""
				if tc.inSession {
					session = initializeAt(t, protocol, endpoint, token)
				}
				return sendAt(t, protocol, http.MethodPost, endpoint, token, session, tc.body)
			}
			want, got := answer(bare, ""), answer(full, token)
			assert.Equal(t, want.status, got.status)
			assert.Equal(t, sseEvents(want.body), sseEvents(got.body))
		})
	}
}

// sseEvents splits an answer into its server-sent events, sorted: the
// go-sdk writes the answers to a batch's requests as they complete.
func sseEvents(body string) []string {
	events := strings.SplitAfter(body, "\n\n")
	slices.Sort(events)
	return events
}

// OtherResource is the resource URL of another server: tokens minted for
// it must be refused.
const OtherResource = "https://other.example.com/mcp"
