// Command mcpserver is an MCP server (github.com/modelcontextprotocol/go-sdk)
// over streamable HTTP whose whoami tool reports the caller. Every request
// needs a bearer token that the introspection verifier accepts.
//
// With INTROSPECTION_URL, INTROSPECTION_CLIENT_ID and
// INTROSPECTION_CLIENT_SECRET set it asks that authorization server; with no
// INTROSPECTION_URL it starts a test authorization server in process, issues
// a demo token and prints a curl command that uses it.
//
// A token must carry the server's own resource URL, http://ADDR/mcp, in aud
// (RFC 8707; the MCP authorization spec makes this check a MUST), unless
// INTROSPECTION_AUDIENCE names the audiences to accept instead; a token
// minted for another resource gets 401. The demo token carries it.
//
//	go run ./examples/mcpserver [-addr 127.0.0.1:8080]
package main

import (
	"context"
	"fmt"
	"net/http"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/examples/internal/demo"
	"github.com/mcpauth/introspection/mcpsdk"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func main() { demo.Main(newHandler) }

// newHandler serves the MCP endpoint at /mcp behind the verifier, and its
// RFC 9728 metadata, which needs no token.
func newHandler(v *introspection.Verifier, base, authorizationServer string) (http.Handler, error) {
	mux, metadataURL, err := demo.NewMux(v, base, authorizationServer)
	if err != nil {
		return nil, err
	}
	server := mcp.NewServer(&mcp.Implementation{Name: "introspection-example", Version: "v1"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "whoami", Description: "Reports the authenticated caller."}, whoami)
	mcpHandler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server },
		&mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true})
	// introspection.RequireBearerToken answers with RFC 6750 error attributes
	// and 503 when the authorization server is down; mcpsdk.WithTokenInfo
	// hands the accepted token to the SDK so tools see req.Extra.TokenInfo.
	mux.Handle(demo.ResourcePath, introspection.RequireBearerToken(v, &introspection.MiddlewareOptions{
		ResourceMetadataURL: metadataURL,
	})(mcpsdk.WithTokenInfo(mcpHandler, nil)))
	return mux, nil
}

func whoami(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, demo.Caller, error) {
	info := req.Extra.TokenInfo
	tok, ok := mcpsdk.AccessTokenFromInfo(info)
	if !ok {
		return nil, demo.Caller{}, fmt.Errorf("no authenticated caller")
	}
	return nil, demo.Caller{Subject: tok.Subject, ClientID: tok.ClientID, Scopes: info.Scopes}, nil
}
