// Package mcpgo connects [introspection.RequireBearerToken] to MCP servers
// built on github.com/mark3labs/mcp-go, which has no auth of its own: tool
// handlers learn who calls them, and sessions serve only the user who
// opened them.
//
// The one way to wire it: the core middleware checks the token (RFC 6750
// challenges, 503 during an outage, scopes, per-tool scopes through
// MiddlewareOptions.Operation, and the proof of a DPoP-bound token, RFC
// 9449, per Settings.DPoP), [WithCaller] behind it binds the session to
// the token's caller, and the metadata handler stays outside both.
// WithCaller reads no Authorization header, so a token sent with the DPoP
// scheme works as one sent with Bearer.
//
//	v, err := introspection.NewVerifier(settings)
//	if err != nil {
//		return err
//	}
//	defer v.Close()
//	s := server.NewMCPServer("example", "v1")
//	s.AddTool(mcp.NewTool("whoami"), func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
//		user, _ := mcpgo.UserID(ctx)
//		return mcp.NewToolResultText("hello " + user), nil
//	})
//	op, err := introspection.MCPOperation(introspection.MCPScopes{
//		Tools: map[string][]string{"echo": {"mcp:echo"}}, // on top of Settings.RequiredScopes
//	})
//	if err != nil {
//		return err
//	}
//	mux := http.NewServeMux()
//	mux.Handle("/mcp", introspection.RequireBearerToken(v, &introspection.MiddlewareOptions{
//		ResourceMetadataURL: metadataURL,
//		Operation:           op,
//	})(mcpgo.WithCaller(server.NewStreamableHTTPServer(s), nil)))
//
// Tool handlers find the user id with [UserID] and the whole introspection
// answer with [introspection.AccessTokenFromContext]. The user id is the
// token's subject, or for a client-credentials token without one (and
// without a username) the client id; with Options.UserIDWithIssuer it is the
// issuer, "|" and that. A token with a username but no sub gets 401.
//
// # Sessions
//
// With mcp-go alone, any request that names a session id is served in that
// session, whoever sends it: its default ids are checked by form only, and
// none of its session id managers can know the caller (Generate is not
// given the request). WithCaller therefore binds the ids on the wire rather
// than inside mcp-go, which it needs no option of: the id that mcp-go
// issues on initialize reaches the client as that id, "." and an
// HMAC-SHA256 of the user id and the id, and every later request must send
// it back with a valid HMAC for its own user id. Another user's id gets 403
// "session user mismatch", as the go-sdk answers, before mcp-go sees the
// request; mcp-go gets its own id back, so its session id manager and
// handlers (server.ClientSessionFromContext) work as before. Nothing is
// kept per session: deleting a session or letting it expire leaves nothing
// to clean up, and the memory used does not grow with the sessions.
// Protocol revision 2026-07-28 has no sessions, and a stateless server
// (server.WithStateLess) issues none; both work unchanged, but for resuming
// event streams. mcp-go's event store (server.WithEventStore) binds an
// event to a session, never to a caller, so a resumption (a request with
// Last-Event-ID) without Mcp-Session-Id would replay any caller's events to
// whoever names their id: WithCaller answers it 400, and a client whose
// stream broke sends its request again. Within a session, resumption works
// for the session's user only.
package mcpgo
