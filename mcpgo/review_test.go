package mcpgo_test

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/mcpauth/introspection/mcpgo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newResumableStack is the package doc's wiring around an mcp-go server
// that records its SSE events for resumption (server.WithEventStore), with
// a tool, secret, that sends a progress notification (so that its answer
// is an event stream) and answers with a text that names its caller.
func newResumableStack(t *testing.T, httpOpts ...server.StreamableHTTPOption) *stack {
	t.Helper()
	st := &stack{as: introspectiontest.NewServer()}
	t.Cleanup(st.as.Close)
	v, err := introspection.NewVerifier(introspection.Settings{
		IntrospectionURL: st.as.IntrospectionURL,
		ClientID:         introspectiontest.ClientID,
		ClientSecret:     introspectiontest.ClientSecret,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	s := server.NewMCPServer("test", "v1")
	s.AddTool(mcp.NewTool("secret"), func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		st.calls.Add(1)
		user, _ := mcpgo.UserID(ctx)
		if err := s.SendNotificationToClient(ctx, "notifications/message",
			map[string]any{"level": "info", "data": "working"}); err != nil {
			return nil, err
		}
		return mcp.NewToolResultText("the secret of " + user), nil
	})
	opts := append([]server.StreamableHTTPOption{server.WithEventStore(server.NewInMemoryEventStore())}, httpOpts...)
	h := server.NewStreamableHTTPServer(s, opts...)
	t.Cleanup(func() { _ = h.Shutdown(context.Background()) })
	ts := httptest.NewServer(introspection.RequireBearerToken(v, nil)(mcpgo.WithCaller(h, nil)))
	t.Cleanup(ts.Close)
	st.url = ts.URL + "/mcp"
	return st
}

// resume sends a GET with Last-Event-ID (and Mcp-Session-Id when session is
// not empty) and returns its status and what it streamed until it closed,
// named want, or the test's bound on reading ran out.
func (st *stack) resume(t *testing.T, token, session, lastEventID, want string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // bounds the read only
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, st.url, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", legacyVersion)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Last-Event-ID", lastEventID)
	if session != "" {
		req.Header.Set(sessionHeader, session)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var got strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		got.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), want) {
			break
		}
	}
	return resp.StatusCode, got.String()
}

// firstEventID returns the id of the first event of an SSE body.
func firstEventID(t *testing.T, body string) string {
	t.Helper()
	for line := range strings.SplitSeq(body, "\n") {
		if id, ok := strings.CutPrefix(line, "id: "); ok {
			return id
		}
	}
	require.Fail(t, "the answer has no event id", "%q", body)
	return ""
}

// TestResumedStreamServesOnlyItsCaller: the events of Alice's answer are
// replayed to Alice, never to Bob, whether the server has sessions or not.
func TestResumedStreamServesOnlyItsCaller(t *testing.T) {
	const call = `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"secret","arguments":{}}}`
	tests := []struct {
		name string
		opts []server.StreamableHTTPOption
	}{
		{"default ids", nil},
		{"stateful ids", []server.StreamableHTTPOption{server.WithStateful(true)}},
		{"stateless", []server.StreamableHTTPOption{server.WithStateLess(true)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := newResumableStack(t, tc.opts...)
			alice, bob := st.token("alice"), st.token("bob")
			sid := st.initialize(t, alice)
			r := st.send(t, http.MethodPost, alice, sid, call)
			require.Equal(t, http.StatusOK, r.Status, r.Body)
			require.Contains(t, r.Body, "the secret of alice")
			id := firstEventID(t, r.Body)

			// Alice may resume her own stream, in her session. Without a
			// session nothing binds the stream to her: refused, for her too.
			status, body := st.resume(t, alice, sid, id, "the secret of alice")
			if sid == "" {
				require.Equal(t, http.StatusBadRequest, status, body)
			} else {
				require.Equal(t, http.StatusOK, status, body)
				require.Contains(t, body, "the secret of alice")
			}

			// Bob, without a session or with one of his own, may not; the
			// store's ids count from 1, so he need not learn Alice's.
			sessions := []string{""}
			if bobSid := st.initialize(t, bob); bobSid != "" {
				sessions = append(sessions, bobSid)
			}
			for _, session := range sessions {
				status, body := st.resume(t, bob, session, id, "the secret of alice")
				assert.NotContains(t, body, "the secret of alice", "Bob resumed Alice's stream (status %d, session %q)", status, session)
			}
		})
	}
}

// TestUsersOfOneClientAreNotOneCaller: an answer without sub but with a
// username is a user's token, not the client acting for itself; two users
// of one client are two callers, and neither is served in the other's
// session.
func TestUsersOfOneClientAreNotOneCaller(t *testing.T) {
	st := newStack(t, nil, server.WithStateful(true))
	alice := st.as.Issue(introspectiontest.TokenOptions{ClientID: "app", Username: "alice"})
	bob := st.as.Issue(introspectiontest.TokenOptions{ClientID: "app", Username: "bob"})
	r := st.send(t, http.MethodPost, alice, "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{`+
		`"protocolVersion":"`+legacyVersion+`","capabilities":{},"clientInfo":{"name":"test","version":"v1"}}}`)
	if r.Status != http.StatusOK {
		// Refusing a token that names its user only by username is closed too.
		assertInvalidToken(t, r)
		return
	}
	sid := r.Session
	require.NotEmpty(t, sid)
	r, text := st.whoami(t, bob, sid)
	assert.NotEqual(t, http.StatusOK, r.Status, "Bob was served in Alice's session as %q", text)
	assert.Zero(t, st.calls.Load(), "the tool ran for Bob in Alice's session")
}
