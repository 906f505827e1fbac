// Command mcpgo is the mcpserver example built on github.com/mark3labs/mcp-go:
// an MCP server over streamable HTTP whose whoami tool reports the caller,
// behind introspection.RequireBearerToken. mcp-go has no auth middleware of
// its own; the accepted token reaches tool handlers through the request
// context. Settings, the audience check and the demo token are those of
// the mcpserver example.
//
//	go run ./examples/mcpgo [-addr 127.0.0.1:8080]
package main

import (
	"context"
	"net/http"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/examples/internal/demo"
)

func main() { demo.Main(newHandler) }

// newHandler serves the MCP endpoint at /mcp behind the verifier and the
// RFC 9728 metadata outside it.
func newHandler(v *introspection.Verifier, base, authorizationServer string) (http.Handler, error) {
	mux, metadataURL, err := demo.NewMux(v, base, authorizationServer)
	if err != nil {
		return nil, err
	}
	s := server.NewMCPServer("introspection-example", "v1")
	s.AddTool(mcp.NewTool("whoami", mcp.WithDescription("Reports the authenticated caller.")), whoami)
	mux.Handle(demo.ResourcePath, introspection.RequireBearerToken(v, &introspection.MiddlewareOptions{
		ResourceMetadataURL: metadataURL,
	})(server.NewStreamableHTTPServer(s, server.WithStateLess(true))))
	return mux, nil
}

func whoami(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	tok, ok := introspection.AccessTokenFromContext(ctx)
	if !ok {
		return mcp.NewToolResultError("no authenticated caller"), nil
	}
	c := demo.Caller{Subject: tok.Subject, ClientID: tok.ClientID, Scopes: tok.Scopes}
	return mcp.NewToolResultStructured(c, tok.Subject), nil
}
