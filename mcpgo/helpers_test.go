package mcpgo_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/mcpauth/introspection/mcpgo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// sessionHeader is the MCP streamable HTTP transport's session header.
const sessionHeader = "Mcp-Session-Id"

// legacyVersion is a protocol version with protocol-level sessions (the
// 2026-07-28 revision removed them).
const legacyVersion = mcp.ProtocolVersion20251125

// seen is what one run of the whoami tool saw.
type seen struct {
	User    string // mcpgo.UserID
	HasUser bool
	Session string // the session id mcp-go gave the tool
	Caller  string // the caller of introspection.AccessTokenFromContext
}

// stack is an mcp-go streamable HTTP server behind
// introspection.RequireBearerToken and mcpgo.WithCaller, with an
// introspectiontest authorization server.
type stack struct {
	as    *introspectiontest.Server
	url   string
	calls atomic.Int64 // runs of the whoami tool

	mu      sync.Mutex // guards runs and reached
	runs    []seen
	reached []arrival
}

// arrival is a request as it reached mcp-go.
type arrival struct {
	Method  string
	User    string // mcpgo.UserID
	Session string // Mcp-Session-Id
}

// newStack starts the stack; opts go to mcpgo.WithCaller, httpOpts to
// server.NewStreamableHTTPServer.
func newStack(t *testing.T, opts *mcpgo.Options, httpOpts ...server.StreamableHTTPOption) *stack {
	t.Helper()
	return newStackWith(t, nil, opts, httpOpts...)
}

// newStackWith is newStack with the verifier's settings changed by edit,
// when not nil.
func newStackWith(t *testing.T, edit func(*introspection.Settings), opts *mcpgo.Options, httpOpts ...server.StreamableHTTPOption) *stack {
	t.Helper()
	st := &stack{as: introspectiontest.NewServer()}
	t.Cleanup(st.as.Close)
	s := introspection.Settings{
		IntrospectionURL: st.as.IntrospectionURL,
		ClientID:         introspectiontest.ClientID,
		ClientSecret:     introspectiontest.ClientSecret,
	}
	if edit != nil {
		edit(&s)
	}
	v, err := introspection.NewVerifier(s)
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	ts := httptest.NewServer(introspection.RequireBearerToken(v, nil)(mcpgo.WithCaller(st.recording(st.mcpHandler(t, httpOpts...)), opts)))
	t.Cleanup(ts.Close)
	st.url = ts.URL + "/mcp"
	return st
}

// mcpHandler returns an mcp-go streamable HTTP server whose whoami tool
// records what it saw, shut down when the test ends.
func (st *stack) mcpHandler(t *testing.T, httpOpts ...server.StreamableHTTPOption) http.Handler {
	t.Helper()
	s := server.NewMCPServer("test", "v1")
	s.AddTool(mcp.NewTool("whoami"), func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		st.calls.Add(1)
		user, ok := mcpgo.UserID(ctx)
		run := seen{User: user, HasUser: ok}
		if tok, ok := introspection.AccessTokenFromContext(ctx); ok {
			run.Caller = tok.Caller()
		}
		if cs := server.ClientSessionFromContext(ctx); cs != nil {
			run.Session = cs.SessionID()
		}
		st.mu.Lock()
		st.runs = append(st.runs, run)
		st.mu.Unlock()
		return mcp.NewToolResultText(user), nil
	})
	h := server.NewStreamableHTTPServer(s, httpOpts...)
	t.Cleanup(func() { _ = h.Shutdown(context.Background()) })
	return h
}

// recording returns h, recording each request that reaches it.
func (st *stack) recording(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, _ := mcpgo.UserID(r.Context())
		st.mu.Lock()
		st.reached = append(st.reached, arrival{Method: r.Method, User: user, Session: r.Header.Get(sessionHeader)})
		st.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

// arrivals returns the requests that reached mcp-go with session.
func (st *stack) arrivals(session string) []arrival {
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []arrival
	for _, a := range st.reached {
		if a.Session == session {
			out = append(out, a)
		}
	}
	return out
}

// lastRun returns what the last run of whoami saw.
func (st *stack) lastRun(t *testing.T) seen {
	t.Helper()
	st.mu.Lock()
	defer st.mu.Unlock()
	require.NotEmpty(t, st.runs, "whoami never ran")
	return st.runs[len(st.runs)-1]
}

// token issues a token for subject with the test server's defaults.
func (st *stack) token(subject string) string {
	return st.as.Issue(introspectiontest.TokenOptions{Subject: subject})
}

// reply is an answer of the stack.
type reply struct {
	Status  int
	Header  http.Header
	Body    string
	Session string // the Mcp-Session-Id the answer carries
}

// send makes one request with token (none when empty) and, when session
// is not empty, Mcp-Session-Id.
func (st *stack) send(t *testing.T, method, token, session, body string) reply {
	t.Helper()
	r, err := st.do(method, token, session, body)
	require.NoError(t, err)
	return r
}

// do is send for goroutines other than the test's.
func (st *stack) do(method, token, session, body string) (reply, error) {
	req, err := http.NewRequest(method, st.url, strings.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", legacyVersion)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if session != "" {
		req.Header.Set(sessionHeader, session)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	r := reply{Status: resp.StatusCode, Header: resp.Header, Session: resp.Header.Get(sessionHeader)}
	if method == http.MethodGet && resp.StatusCode == http.StatusOK {
		// A GET that was let in opens the session's event stream, which
		// stays open: its answer is the status and the headers.
		return r, nil
	}
	b, err := io.ReadAll(resp.Body)
	r.Body = string(b)
	return r, err
}

// initialize opens a session for token and returns its Mcp-Session-Id
// (empty in stateless mode).
func (st *stack) initialize(t *testing.T, token string) string {
	t.Helper()
	r := st.send(t, http.MethodPost, token, "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{`+
		`"protocolVersion":"`+legacyVersion+`","capabilities":{},"clientInfo":{"name":"test","version":"v1"}}}`)
	require.Equal(t, http.StatusOK, r.Status, r.Body)
	if r.Session != "" {
		n := st.send(t, http.MethodPost, token, r.Session, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
		require.Equal(t, http.StatusAccepted, n.Status, n.Body)
	}
	return r.Session
}

// whoami calls the whoami tool with token on session and returns the
// answer and, for a 200, the tool's text.
func (st *stack) whoami(t *testing.T, token, session string) (reply, string) {
	t.Helper()
	r, text, err := st.callWhoami(token, session)
	require.NoError(t, err)
	return r, text
}

// callWhoami is whoami for goroutines other than the test's.
func (st *stack) callWhoami(token, session string) (reply, string, error) {
	r, err := st.do(http.MethodPost, token, session,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`)
	if err != nil || r.Status != http.StatusOK {
		return r, "", err
	}
	var rpc struct {
		Result struct {
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
			IsError bool `json:"isError"`
		} `json:"result"`
		Error *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.Body), &rpc); err != nil {
		return r, "", fmt.Errorf("answer %q: %w", r.Body, err)
	}
	if rpc.Error != nil || rpc.Result.IsError || len(rpc.Result.Content) != 1 {
		return r, "", fmt.Errorf("answer %q is not whoami's text", r.Body)
	}
	return r, rpc.Result.Content[0].Text, nil
}

// assertMismatch checks that r is the go-sdk's answer to a session of
// another user.
func assertMismatch(t *testing.T, r reply) {
	t.Helper()
	assert.Equal(t, http.StatusForbidden, r.Status)
	assert.Equal(t, "session user mismatch\n", r.Body)
}

// TestMain checks that no test leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
