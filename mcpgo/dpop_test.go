package mcpgo_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dpopClient sends token with the DPoP scheme (RFC 9449 §7.1) and a fresh
// proof of key for each request's method and URL, as a DPoP client does.
type dpopClient struct {
	key   *introspectiontest.DPoPKey
	token string
}

func (d dpopClient) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "DPoP "+d.token)
	r.Header.Set("DPoP", d.key.Proof(r.Method, r.URL.String(), d.token))
	return http.DefaultTransport.RoundTrip(r)
}

// TestDPoPThroughWithCaller runs mcp-go's client, sending a DPoP-bound
// token with a fresh proof per request, through
// introspection.RequireBearerToken, WithCaller and mcp-go's streamable
// HTTP server: it opens a session, whose sealed id it keeps, and calls a
// tool, which sees its caller. The same token sent as Bearer gets 401
// invalid_token before mcp-go sees it, with the challenges of the mode.
func TestDPoPThroughWithCaller(t *testing.T) {
	const algs = `algs="ES256 ES384 ES512 RS256 PS256 EdDSA Ed25519"`
	for _, tc := range []struct {
		mode       introspection.DPoPMode
		challenges []string // of the bound token sent as Bearer
	}{
		{introspection.DPoPAllowed, []string{`Bearer error="invalid_token"`, `DPoP ` + algs}},
		// Bearer is no scheme of this mode: the request has no credentials.
		{introspection.DPoPRequired, []string{`DPoP ` + algs}},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			st := newStackWith(t, func(s *introspection.Settings) { s.DPoP = tc.mode }, nil)
			key := introspectiontest.NewDPoPKey()
			token := st.as.Issue(introspectiontest.TokenOptions{Subject: "alice", DPoPKey: key.Thumbprint()})

			trans, err := transport.NewStreamableHTTP(st.url,
				transport.WithHTTPBasicClient(&http.Client{Transport: dpopClient{key, token}}))
			require.NoError(t, err)
			c := client.NewClient(trans, client.WithProtocolVersion(legacyVersion))
			t.Cleanup(func() { _ = c.Close() })
			ctx := context.Background()
			require.NoError(t, c.Start(ctx))
			_, err = c.Initialize(ctx, mcp.InitializeRequest{})
			require.NoError(t, err, "the DPoP client opens a session")
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
			assert.Equal(t, seen{User: "alice", HasUser: true, Session: run.Session, Caller: "alice"}, run)
			assert.NotEqual(t, sid, run.Session, "mcp-go saw its own id, the client the sealed one")
			assert.Equal(t, int64(2), st.calls.Load())
			arrived := len(st.arrivals(run.Session))

			r := st.send(t, http.MethodPost, token, sid,
				`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`)
			assert.Equal(t, http.StatusUnauthorized, r.Status)
			assert.Equal(t, tc.challenges, r.Header.Values("WWW-Authenticate"))
			assert.Equal(t, int64(2), st.calls.Load(), "the tool never runs")
			assert.Len(t, st.arrivals(run.Session), arrived, "mcp-go never sees the bound token sent as Bearer")
		})
	}
}
