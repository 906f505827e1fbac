// Package demo is the example servers' development authorization server:
// started when neither INTROSPECTION_URL nor INTROSPECTION_ISSUER is set,
// it runs an RFC 7662 server in process (introspectiontest), issues two
// tokens for the example's resource and prints how to call the example
// with them. It is a convenience for
// trying the examples, and no part of the wiring a server copies.
package demo

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
)

// The scopes the examples know: every request needs ScopeTools, a call of
// the echo tool ScopeEcho too.
const (
	ScopeTools = "mcp:tools"
	ScopeEcho  = "mcp:echo"
)

// Who the development tokens speak for.
const (
	Subject  = "demo-user"
	ClientID = "demo-client"
)

// tokenLifetime is how long the development tokens stay active: an hour,
// as PrintUsage says.
const tokenLifetime = time.Hour

// Server is the development authorization server and its two tokens.
type Server struct {
	as *introspectiontest.Server
	// Full holds ScopeTools and ScopeEcho: it may call every tool.
	Full string
	// Narrow holds ScopeTools only: echo refuses it.
	Narrow string
}

// Start starts the development authorization server and issues its two
// tokens, for Subject through ClientID, with audience as their aud. Call
// Close when done.
func Start(audience []string) *Server {
	as := introspectiontest.NewServer()
	issue := func(scopes ...string) string {
		return as.Issue(introspectiontest.TokenOptions{
			ClientID: ClientID,
			Subject:  Subject,
			Scopes:   scopes,
			Audience: audience,
			Lifetime: tokenLifetime,
		})
	}
	return &Server{as: as, Full: issue(ScopeTools, ScopeEcho), Narrow: issue(ScopeTools)}
}

// Close stops the server.
func (s *Server) Close() { s.as.Close() }

// Configure returns settings pointed at the server: its introspection URL,
// the resource server's credentials there, and its issuer, which its
// answers carry as iss.
func (s *Server) Configure(settings introspection.Settings) introspection.Settings {
	settings.IntrospectionURL = s.as.IntrospectionURL
	settings.ClientID = introspectiontest.ClientID
	settings.ClientSecret = introspectiontest.ClientSecret
	settings.Issuer = s.as.Issuer
	return settings
}

// Labels of the lines of PrintUsage that name the tokens.
const (
	FullLabel   = "Token with mcp:tools mcp:echo"
	NarrowLabel = "Token with mcp:tools only"
)

// PrintUsage writes the tokens to w, and curl commands that call the MCP
// endpoint with them, with what to expect.
func (s *Server) PrintUsage(w io.Writer, endpoint string) {
	var b strings.Builder
	fmt.Fprintf(&b, "\nNeither INTROSPECTION_URL nor INTROSPECTION_ISSUER is set: the development\n")
	fmt.Fprintf(&b, "authorization server runs in process. Its token endpoint serves no MCP client, so\n")
	fmt.Fprintf(&b, "clients that get their own tokens need a real one (INTROSPECTION_ISSUER and friends).\n")
	fmt.Fprintf(&b, "It issued two tokens for this server, each active for an hour:\n")
	fmt.Fprintf(&b, "%s: %s\n", FullLabel, s.Full)
	fmt.Fprintf(&b, "%s: %s\n", NarrowLabel, s.Narrow)
	fmt.Fprintf(&b, "\nTry them with curl, in a POSIX shell:\n\n")
	b.WriteString(Script(endpoint, s.Full, s.Narrow))
	_, _ = io.WriteString(w, b.String())
}

// Script returns the shell commands that PrintUsage prints.
func Script(endpoint, full, narrow string) string {
	return fmt.Sprintf(`MCP=%s
TOKEN=%s
NARROW=%s
post() { curl -s "$MCP" -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' "$@"; }
# Open a session: the answer's Mcp-Session-Id header names it.
SESSION=$(post -D - -o /dev/null -H "Authorization: Bearer $TOKEN" \
  -d '%s' | tr -d '\r' | sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: //p')
# whoami reports the caller: user_id "%s", client_id "%s", the scopes.
post -H "Authorization: Bearer $TOKEN" -H "Mcp-Session-Id: $SESSION" \
  -d '%s'
# echo says "hello" back.
post -H "Authorization: Bearer $TOKEN" -H "Mcp-Session-Id: $SESSION" \
  -d '%s'
# Without mcp:echo: 403, with a challenge that names every scope the call needs,
# error="insufficient_scope" and scope="mcp:tools mcp:echo".
post -i -H "Authorization: Bearer $NARROW" -H "Mcp-Session-Id: $SESSION" \
  -d '%s'
# Without a token: 401, with a challenge that leads clients to the metadata.
post -i -d '%s'
`, endpoint, full, narrow, InitializeRequest, Subject, ClientID, WhoamiRequest, EchoRequest, EchoRequest, WhoamiRequest)
}

// The JSON-RPC requests of Script.
const (
	InitializeRequest = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}`
	WhoamiRequest     = `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`
	EchoRequest       = `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}`
)
