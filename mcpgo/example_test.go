package mcpgo_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/mcpauth/introspection/mcpgo"
)

// post sends one JSON-RPC message to url with token and, when not empty,
// session, and returns the status, the session id the answer carries and
// the body.
func post(url, token, session, body string) (int, string, string) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		log.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
		req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		log.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Mcp-Session-Id"), string(b)
}

// whoamiText returns what the whoami tool said in a tools/call answer.
func whoamiText(body string) string {
	var rpc struct {
		Result mcp.CallToolResult `json:"result"`
	}
	if err := json.Unmarshal([]byte(body), &rpc); err != nil {
		log.Fatal(err)
	}
	return rpc.Result.Content[0].(mcp.TextContent).Text
}

func ExampleWithCaller() {
	as := introspectiontest.NewServer()
	defer as.Close()
	v, err := introspection.NewVerifier(introspection.Settings{
		IntrospectionURL: as.IntrospectionURL,
		ClientID:         introspectiontest.ClientID,
		ClientSecret:     introspectiontest.ClientSecret,
		RequiredScopes:   []string{"mcp:tools"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()

	s := server.NewMCPServer("example", "v1")
	s.AddTool(mcp.NewTool("whoami"), func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		user, ok := mcpgo.UserID(ctx)
		if !ok {
			return mcp.NewToolResultError("no authenticated caller"), nil
		}
		return mcp.NewToolResultText("hello " + user), nil
	})
	mux := http.NewServeMux()
	mux.Handle("/mcp", introspection.RequireBearerToken(v, &introspection.MiddlewareOptions{
		ResourceMetadataURL: "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
	})(mcpgo.WithCaller(server.NewStreamableHTTPServer(s), nil)))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	url := srv.URL + "/mcp"

	alice := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{"mcp:tools"}})
	bob := as.Issue(introspectiontest.TokenOptions{Subject: "bob", Scopes: []string{"mcp:tools"}})
	robot := as.Issue(introspectiontest.TokenOptions{ClientID: "robot", Scopes: []string{"mcp:tools"}})
	const (
		initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",` +
			`"capabilities":{},"clientInfo":{"name":"example","version":"v1"}}}`
		whoami = `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`
	)
	for _, tc := range []struct{ name, token string }{{"alice", alice}, {"robot", robot}} {
		_, session, _ := post(url, tc.token, "", initialize)
		status, _, body := post(url, tc.token, session, whoami)
		fmt.Println(tc.name+":", status, whoamiText(body))
		if tc.name == "alice" {
			status, _, body = post(url, bob, session, whoami)
			fmt.Print("bob on alice's session: ", status, " ", body)
		}
	}
	// Output:
	// alice: 200 hello alice
	// bob on alice's session: 403 session user mismatch
	// robot: 200 hello robot
}
