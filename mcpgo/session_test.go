package mcpgo_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/server"
	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/mcpauth/introspection/mcpgo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sessionModes are the mcp-go session id managers that issue session ids.
var sessionModes = []struct {
	name string
	opts []server.StreamableHTTPOption
}{
	{"default ids, checked by format only", nil},
	{"stateful ids, checked by existence", []server.StreamableHTTPOption{server.WithStateful(true)}},
	{"stateful ids with an idle TTL", []server.StreamableHTTPOption{server.WithStateful(true), server.WithSessionIdleTTL(time.Hour)}},
}

func TestSessionServesOnlyItsCaller(t *testing.T) {
	for _, mode := range sessionModes {
		t.Run(mode.name, func(t *testing.T) {
			st := newStack(t, nil, mode.opts...)
			alice, bob := st.token("alice"), st.token("bob")

			sid := st.initialize(t, alice)
			require.NotEmpty(t, sid)
			r, text := st.whoami(t, alice, sid)
			require.Equal(t, http.StatusOK, r.Status, r.Body)
			assert.Equal(t, "alice", text)
			aliceSession := st.lastRun(t).Session
			require.NotEmpty(t, aliceSession)
			calls := st.calls.Load()

			// Bob's token on Alice's session: refused before mcp-go sees it.
			assertMismatch(t, st.send(t, http.MethodPost, bob, sid,
				`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`))
			assertMismatch(t, st.send(t, http.MethodGet, bob, sid, ""))
			assertMismatch(t, st.send(t, http.MethodDelete, bob, sid, ""))
			assertMismatch(t, st.send(t, http.MethodPost, bob, sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`))
			assert.Equal(t, calls, st.calls.Load(), "the tool ran for Bob on Alice's session")
			for _, a := range st.arrivals(aliceSession) {
				assert.Equal(t, "alice", a.User, "%s of another user reached Alice's session", a.Method)
			}

			// Alice's session survived Bob's DELETE and is still hers.
			r, text = st.whoami(t, alice, sid)
			require.Equal(t, http.StatusOK, r.Status, r.Body)
			assert.Equal(t, "alice", text)
			assert.Equal(t, aliceSession, st.lastRun(t).Session)

			// Bob's own session is his, and not Alice's.
			bobSid := st.initialize(t, bob)
			require.NotEmpty(t, bobSid)
			assert.NotEqual(t, sid, bobSid)
			r, text = st.whoami(t, bob, bobSid)
			require.Equal(t, http.StatusOK, r.Status, r.Body)
			assert.Equal(t, "bob", text)
			r, _ = st.whoami(t, alice, bobSid)
			assertMismatch(t, r)
		})
	}
}

func TestSessionIDNotIssuedToTheCallerIsRefused(t *testing.T) {
	st := newStack(t, nil)
	alice := st.token("alice")
	sid := st.initialize(t, alice)
	dot := strings.LastIndexByte(sid, '.')
	require.Positive(t, dot, "the session id carries no seal: %q", sid)
	inner, seal := sid[:dot], sid[dot+1:]
	r, text := st.whoami(t, alice, sid)
	require.Equal(t, http.StatusOK, r.Status, r.Body)
	require.Equal(t, "alice", text)
	require.Equal(t, inner, st.lastRun(t).Session, "mcp-go's id is not the part before the seal")
	flipped := []byte(seal)
	flipped[0] ^= 'A' ^ 'B'

	other := newStack(t, nil) // another key
	otherSid := other.initialize(t, other.token("alice"))

	tests := []struct{ name, session string }{
		{"the id mcp-go issued, without the seal", inner},
		{"a seal with one character changed", inner + "." + string(flipped)},
		{"a seal cut short", sid[:len(sid)-1]},
		{"the seal alone", seal},
		{"an empty id under the seal", "." + seal},
		{"a seal made with another key", otherSid},
		{"another session id under Alice's seal", "mcp-session-00000000-0000-0000-0000-000000000000." + seal},
		{"a seal that is not base64url", inner + ".!!!!"},
		{"no separator", "mcp-session-00000000-0000-0000-0000-000000000000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := st.calls.Load()
			r, _ := st.whoami(t, alice, tc.session)
			assertMismatch(t, r)
			assert.Equal(t, calls, st.calls.Load())
		})
	}
	r, text = st.whoami(t, alice, sid)
	require.Equal(t, http.StatusOK, r.Status, r.Body)
	assert.Equal(t, "alice", text)
}

func TestMoreThanOneSessionIDIsRefused(t *testing.T) {
	st := newStack(t, nil)
	alice := st.token("alice")
	sid := st.initialize(t, alice)
	req, err := http.NewRequest(http.MethodPost, st.url,
		strings.NewReader(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+alice)
	req.Header.Add(sessionHeader, sid)
	req.Header.Add(sessionHeader, sid)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Zero(t, st.calls.Load())
}

func TestDeleteEndsTheSessionForItsCallerOnly(t *testing.T) {
	st := newStack(t, nil, server.WithStateful(true))
	alice, bob := st.token("alice"), st.token("bob")
	sid := st.initialize(t, alice)

	r := st.send(t, http.MethodDelete, alice, sid, "")
	require.Equal(t, http.StatusOK, r.Status, r.Body)
	calls := st.calls.Load()
	// mcp-go answers for the ended session; Bob still may not use its id.
	r, _ = st.whoami(t, alice, sid)
	assert.Equal(t, http.StatusNotFound, r.Status, r.Body)
	r, _ = st.whoami(t, bob, sid)
	assertMismatch(t, r)
	assert.Equal(t, calls, st.calls.Load())

	// A new session for Alice gets a new id.
	again := st.initialize(t, alice)
	assert.NotEqual(t, sid, again)
	r, text := st.whoami(t, alice, again)
	require.Equal(t, http.StatusOK, r.Status, r.Body)
	assert.Equal(t, "alice", text)
}

func TestStatelessServerKeepsWorking(t *testing.T) {
	st := newStack(t, nil, server.WithStateLess(true))
	alice, bob := st.token("alice"), st.token("bob")
	assert.Empty(t, st.initialize(t, alice), "a stateless server issued a session id")
	for _, tc := range []struct{ token, want string }{{alice, "alice"}, {bob, "bob"}} {
		r, text := st.whoami(t, tc.token, "")
		require.Equal(t, http.StatusOK, r.Status, r.Body)
		assert.Equal(t, tc.want, text)
		assert.Empty(t, r.Session)
	}
	// A session id no server issued is refused, stateless or not.
	calls := st.calls.Load()
	r, _ := st.whoami(t, alice, "mcp-session-00000000-0000-0000-0000-000000000000")
	assertMismatch(t, r)
	assert.Equal(t, calls, st.calls.Load())
}

// replicas returns the URLs of n WithCaller handlers, each with its own
// options, in front of one mcp-go server, as replicas that share their
// sessions' state.
func replicas(t *testing.T, st *stack, opts ...*mcpgo.Options) []string {
	t.Helper()
	v, err := introspection.NewVerifier(introspection.Settings{
		IntrospectionURL: st.as.IntrospectionURL,
		ClientID:         introspectiontest.ClientID,
		ClientSecret:     introspectiontest.ClientSecret,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	h := st.recording(st.mcpHandler(t))
	urls := make([]string, len(opts))
	for i, o := range opts {
		ts := httptest.NewServer(introspection.RequireBearerToken(v, nil)(mcpgo.WithCaller(h, o)))
		t.Cleanup(ts.Close)
		urls[i] = ts.URL + "/mcp"
	}
	return urls
}

func TestSessionKeySharedByReplicas(t *testing.T) {
	st := newStack(t, nil)
	key := bytes.Repeat([]byte{7}, mcpgo.MinSessionKeySize)
	otherKey := bytes.Repeat([]byte{8}, mcpgo.MinSessionKeySize)
	urls := replicas(t, st, &mcpgo.Options{SessionKey: key}, &mcpgo.Options{SessionKey: key}, &mcpgo.Options{SessionKey: otherKey})
	alice, bob := st.token("alice"), st.token("bob")

	st.url = urls[0]
	sid := st.initialize(t, alice)
	st.url = urls[1]
	r, text := st.whoami(t, alice, sid)
	require.Equal(t, http.StatusOK, r.Status, r.Body)
	assert.Equal(t, "alice", text)
	r, _ = st.whoami(t, bob, sid)
	assertMismatch(t, r)
	st.url = urls[2]
	r, _ = st.whoami(t, alice, sid)
	assertMismatch(t, r)
}

func TestSessionKeyLength(t *testing.T) {
	tests := []struct {
		name   string
		key    []byte
		panics bool
	}{
		{"nil: a random key", nil, false},
		{"the minimum", bytes.Repeat([]byte{1}, mcpgo.MinSessionKeySize), false},
		{"longer", bytes.Repeat([]byte{1}, 2*mcpgo.MinSessionKeySize), false},
		{"one byte short", bytes.Repeat([]byte{1}, mcpgo.MinSessionKeySize-1), true},
		{"empty, not nil", []byte{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			build := func() { mcpgo.WithCaller(http.NotFoundHandler(), &mcpgo.Options{SessionKey: tc.key}) }
			if tc.panics {
				assert.PanicsWithValue(t, fmt.Sprintf("introspection: mcpgo: Options.SessionKey has %d bytes, fewer than %d",
					len(tc.key), mcpgo.MinSessionKeySize), build)
			} else {
				assert.NotPanics(t, build)
			}
		})
	}
}

func TestSessionKeyCopied(t *testing.T) {
	st := newStack(t, nil)
	key := bytes.Repeat([]byte{7}, mcpgo.MinSessionKeySize)
	urls := replicas(t, st, &mcpgo.Options{SessionKey: key})
	alice := st.token("alice")
	st.url = urls[0]
	sid := st.initialize(t, alice)
	key[0] = 9 // the caller changes its slice afterwards
	r, text := st.whoami(t, alice, sid)
	require.Equal(t, http.StatusOK, r.Status, r.Body)
	assert.Equal(t, "alice", text)
}

func TestConcurrentCallersStayInTheirSessions(t *testing.T) {
	st := newStack(t, nil, server.WithStateful(true))
	const users = 8
	tokens := make([]string, users)
	sids := make([]string, users)
	for i := range users {
		tokens[i] = st.token(fmt.Sprintf("user%d", i))
		sids[i] = st.initialize(t, tokens[i])
	}
	type result struct {
		caller, session int
		reply           reply
		text            string
		err             error
	}
	results := make(chan result, users*users)
	var wg sync.WaitGroup
	for i := range users {
		for j := range users {
			wg.Go(func() {
				r, text, err := st.callWhoami(tokens[i], sids[j])
				results <- result{i, j, r, text, err}
			})
		}
	}
	wg.Wait()
	close(results)
	for res := range results {
		require.NoError(t, res.err)
		if res.caller == res.session {
			assert.Equal(t, http.StatusOK, res.reply.Status, res.reply.Body)
			assert.Equal(t, fmt.Sprintf("user%d", res.caller), res.text)
		} else {
			assertMismatch(t, res.reply)
		}
	}
	assert.EqualValues(t, users, st.calls.Load())
}

// TestResumingWithoutASessionIsRefused: a request that resumes an event
// stream (Last-Event-ID) must name the session whose stream it resumes.
// Without Mcp-Session-Id it gets 400 and never reaches mcp-go, whose
// stateless mode would replay the events of whichever caller the id
// names; stateful modes answer it 400 themselves.
func TestResumingWithoutASessionIsRefused(t *testing.T) {
	modes := []struct {
		name string
		opts []server.StreamableHTTPOption
	}{
		{"default ids", nil},
		{"stateful ids", []server.StreamableHTTPOption{server.WithStateful(true)}},
		{"stateless", []server.StreamableHTTPOption{server.WithStateLess(true)}},
	}
	for _, mode := range modes {
		for _, tc := range []struct{ method, lastEventID string }{
			{http.MethodGet, "1"},
			{http.MethodGet, ""}, // present but empty
			{http.MethodPost, "1"},
		} {
			t.Run(mode.name+" "+tc.method+" "+tc.lastEventID, func(t *testing.T) {
				opts := append([]server.StreamableHTTPOption{server.WithEventStore(server.NewInMemoryEventStore())}, mode.opts...)
				st := newStack(t, nil, opts...)
				alice := st.token("alice")
				st.initialize(t, alice)
				before := len(st.arrivals(""))

				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // bounds a stream let in
				defer cancel()
				req, err := http.NewRequestWithContext(ctx, tc.method, st.url, strings.NewReader(`{"jsonrpc":"2.0","id":3,"method":"ping"}`))
				require.NoError(t, err)
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json, text/event-stream")
				req.Header.Set("Mcp-Protocol-Version", legacyVersion)
				req.Header.Set("Authorization", "Bearer "+alice)
				req.Header["Last-Event-Id"] = []string{tc.lastEventID}
				resp, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body) // a stream let in ends with the context
				assert.Equal(t, http.StatusBadRequest, resp.StatusCode, string(body))
				assert.Equal(t, "Last-Event-ID without "+sessionHeader+"\n", string(body))
				assert.Len(t, st.arrivals(""), before, "the request reached mcp-go")
			})
		}
	}
}
