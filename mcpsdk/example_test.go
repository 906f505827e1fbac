package mcpsdk_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/mcpauth/introspection/mcpsdk"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// newMCPHandler returns a stateless MCP handler whose whoami tool reports
// the caller the SDK hands it.
func newMCPHandler() http.Handler {
	server := mcp.NewServer(&mcp.Implementation{Name: "example", Version: "v1"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "whoami"},
		func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			tok, ok := mcpsdk.AccessTokenFromInfo(req.Extra.TokenInfo)
			if !ok {
				return nil, nil, fmt.Errorf("no authenticated caller")
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "hello " + tok.Subject}}}, nil, nil
		})
	return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server },
		&mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true})
}

// printWhoami sends a tools/call of whoami with token and prints the status
// and what the tool said or the challenge.
func printWhoami(url, token string) {
	req, err := http.NewRequest(http.MethodPost, url,
		strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`))
	if err != nil {
		log.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// One line per challenge: the verifier's middleware sends a DPoP
		// one after the Bearer one unless Settings.DPoP is off.
		fmt.Println(strings.TrimSpace(fmt.Sprint(resp.StatusCode, " ", strings.Join(resp.Header.Values("WWW-Authenticate"), "\n"))))
		return
	}
	var rpc struct {
		Result mcp.CallToolResult `json:"result"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rpc); err != nil {
		log.Fatal(err)
	}
	for _, c := range rpc.Result.Content {
		if text, ok := c.(*mcp.TextContent); ok {
			fmt.Println(resp.StatusCode, text.Text)
		}
	}
}

func ExampleTokenVerifier() {
	as := introspectiontest.NewServer()
	defer as.Close()
	v, err := introspection.NewVerifier(introspection.Settings{
		IntrospectionURL: as.IntrospectionURL,
		ClientID:         introspectiontest.ClientID,
		ClientSecret:     introspectiontest.ClientSecret,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()

	// The SDK's own middleware: it checks the scopes of its options, by
	// exact match, and answers outages with 500.
	srv := httptest.NewServer(auth.RequireBearerToken(mcpsdk.TokenVerifier(v), &auth.RequireBearerTokenOptions{
		ResourceMetadataURL: "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
		Scopes:              []string{"mcp:tools"},
	})(newMCPHandler()))
	defer srv.Close()

	printWhoami(srv.URL, as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{"mcp:tools"}}))
	printWhoami(srv.URL, as.Issue(introspectiontest.TokenOptions{Subject: "bob", Scopes: []string{"profile"}}))
	printWhoami(srv.URL, "")
	// Output:
	// 200 hello alice
	// 403 Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp", scope="mcp:tools"
	// 401 Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp", scope="mcp:tools"
}

func ExampleWithTokenInfo() {
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

	// Ours in front: RFC 6750 error attributes, DPoP-bound tokens (RFC 9449),
	// and 503 during an outage.
	// Its MiddlewareOptions.Operation, from introspection.MCPOperation, adds
	// per-tool scopes.
	srv := httptest.NewServer(introspection.RequireBearerToken(v, &introspection.MiddlewareOptions{
		ResourceMetadataURL: "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
	})(mcpsdk.WithTokenInfo(newMCPHandler(), nil)))
	defer srv.Close()

	good := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{"mcp:tools"}})
	printWhoami(srv.URL, good)
	printWhoami(srv.URL, "unknown-token")
	as.SetFault(introspectiontest.Fault{Status: http.StatusInternalServerError})
	printWhoami(srv.URL, good)
	// Output:
	// 200 hello alice
	// 401 Bearer error="invalid_token", scope="mcp:tools", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
	// DPoP scope="mcp:tools", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp", algs="ES256 ES384 ES512 RS256 PS256 EdDSA Ed25519"
	// 503
}

func ExampleFilterTools() {
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

	// The scopes each tool needs on top of mcp:tools: the same map gives
	// introspection.MCPScopes.Tools, which refuses the calls.
	toolScopes := map[string][]string{"echo": {"mcp:echo"}}
	server := mcp.NewServer(&mcp.Implementation{Name: "example", Version: "v1"}, nil)
	for _, name := range []string{"whoami", "echo"} {
		mcp.AddTool(server, &mcp.Tool{Name: name},
			func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
				return &mcp.CallToolResult{}, nil, nil
			})
	}
	// A nil check matches scopes exactly; pass v.CheckScopes to honour
	// Settings.ScopeMatcher.
	server.AddReceivingMiddleware(mcpsdk.FilterTools(toolScopes, nil))

	srv := httptest.NewServer(introspection.RequireBearerToken(v, &introspection.MiddlewareOptions{
		ResourceMetadataURL: "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
	})(mcpsdk.WithTokenInfo(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil), nil)))
	defer srv.Close()

	for _, scopes := range [][]string{{"mcp:tools"}, {"mcp:tools", "mcp:echo"}} {
		token := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: scopes})
		ctx := context.Background()
		client := mcp.NewClient(&mcp.Implementation{Name: "client", Version: "v1"}, nil)
		cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{
			Endpoint: srv.URL, HTTPClient: &http.Client{Transport: bearer{token}},
		}, nil)
		if err != nil {
			log.Fatal(err)
		}
		var names []string
		for tool, err := range cs.Tools(ctx, nil) {
			if err != nil {
				log.Fatal(err)
			}
			names = append(names, tool.Name)
		}
		cs.Close()
		fmt.Println(strings.Join(scopes, " ")+":", names)
	}
	// Output:
	// mcp:tools: [whoami]
	// mcp:tools mcp:echo: [echo whoami]
}
