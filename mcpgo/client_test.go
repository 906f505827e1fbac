package mcpgo_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMCPGoClientKeepsItsSession runs mcp-go's own client, with its
// listening GET stream, through the sealed session id.
func TestMCPGoClientKeepsItsSession(t *testing.T) {
	for _, mode := range sessionModes {
		t.Run(mode.name, func(t *testing.T) {
			st := newStack(t, nil, mode.opts...)
			alice, bob := st.token("alice"), st.token("bob")
			trans, err := transport.NewStreamableHTTP(st.url,
				transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + alice}),
				//lint:ignore SA1019 the legacy protocol's listening GET stream is what this test runs
				transport.WithContinuousListening())
			require.NoError(t, err)
			c := client.NewClient(trans, client.WithProtocolVersion(legacyVersion))
			t.Cleanup(func() { _ = c.Close() })
			ctx := context.Background()
			require.NoError(t, c.Start(ctx))
			_, err = c.Initialize(ctx, mcp.InitializeRequest{})
			require.NoError(t, err)
			sid := c.GetSessionId()
			require.NotEmpty(t, sid)

			for range 2 {
				res, err := c.CallTool(ctx, mcp.CallToolRequest{Params: mcp.CallToolParams{Name: "whoami"}})
				require.NoError(t, err)
				require.Len(t, res.Content, 1)
				text, ok := res.Content[0].(mcp.TextContent)
				require.True(t, ok, "%#v", res.Content[0])
				assert.Equal(t, "alice", text.Text)
			}
			run := st.lastRun(t)
			assert.Equal(t, "alice", run.User)
			assert.NotEmpty(t, run.Session)
			assert.NotEqual(t, sid, run.Session, "mcp-go saw the sealed id")
			// The client opens its listening stream on its own goroutine.
			require.Eventually(t, func() bool {
				for _, a := range st.arrivals(run.Session) {
					if a.Method == http.MethodGet {
						return true
					}
				}
				return false
			}, 10*time.Second, time.Millisecond, "the listening stream never reached mcp-go")
			for _, a := range st.arrivals(run.Session) {
				assert.Equal(t, "alice", a.User)
			}

			calls := st.calls.Load()
			r, _ := st.whoami(t, bob, sid)
			assertMismatch(t, r)
			assert.Equal(t, calls, st.calls.Load())
			assert.Equal(t, http.StatusOK, st.send(t, http.MethodDelete, alice, sid, "").Status)
		})
	}
}

// TestMCPGoClientOnTheModernProtocol runs mcp-go's client on the protocol
// revision without sessions: nothing to bind, the user id still arrives.
func TestMCPGoClientOnTheModernProtocol(t *testing.T) {
	st := newStack(t, nil)
	trans, err := transport.NewStreamableHTTP(st.url,
		transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + st.token("alice")}))
	require.NoError(t, err)
	c := client.NewClient(trans)
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	require.NoError(t, c.Start(ctx))
	_, err = c.Initialize(ctx, mcp.InitializeRequest{})
	require.NoError(t, err)
	require.True(t, mcp.IsModernProtocol(c.ProtocolVersion()), c.ProtocolVersion())
	assert.Empty(t, c.GetSessionId())
	res, err := c.CallTool(ctx, mcp.CallToolRequest{Params: mcp.CallToolParams{Name: "whoami"}})
	require.NoError(t, err)
	require.Len(t, res.Content, 1)
	text, ok := res.Content[0].(mcp.TextContent)
	require.True(t, ok, "%#v", res.Content[0])
	assert.Equal(t, "alice", text.Text)
}
