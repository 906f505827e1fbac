package introspection_test

import (
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
)

// allowBrowserClient is the least a CORS layer must do for a browser-based
// MCP client of one origin: answer preflights with the request headers MCP
// clients send, and expose the response headers they read (the challenge
// and the session id).
func allowBrowserClient(origin string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Origin") == origin {
			w.Header().Set("Access-Control-Allow-Origin", origin)
			w.Header().Set("Access-Control-Expose-Headers", "WWW-Authenticate, Mcp-Session-Id")
			w.Header().Add("Vary", "Origin")
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				w.Header().Set("Access-Control-Allow-Methods", "GET, POST, DELETE")
				w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Mcp-Session-Id, Mcp-Protocol-Version, Last-Event-ID")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// A CORS layer belongs in front of RequireBearerToken, so that its 401 and
// 403 reach the browser's script with the challenge readable. Behind it, the
// CORS layer still gets the preflights: the middleware hands them on
// unchecked.
func ExampleRequireBearerToken_cors() {
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
	const app = "https://app.example"
	mcp := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Mcp-Session-Id", "s1")
	})
	requireToken := introspection.RequireBearerToken(v, &introspection.MiddlewareOptions{
		ResourceMetadataURL: "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
	})

	send := func(h http.Handler, method string, token string) {
		r := httptest.NewRequest(method, "https://mcp.example.com/mcp", nil)
		r.Header.Set("Origin", app)
		if method == http.MethodOptions {
			r.Header.Set("Access-Control-Request-Method", "POST")
			r.Header.Set("Access-Control-Request-Headers", "authorization, content-type, mcp-protocol-version")
		}
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		fmt.Println(method, w.Code)
		for _, k := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Headers", "Access-Control-Expose-Headers", "WWW-Authenticate", "Mcp-Session-Id"} {
			if got := w.Header().Get(k); got != "" {
				fmt.Printf("  %s: %s\n", k, got)
			}
		}
	}
	fmt.Println("CORS layer in front:")
	inFront := allowBrowserClient(app, requireToken(mcp))
	send(inFront, http.MethodOptions, "")
	send(inFront, http.MethodPost, "")
	send(inFront, http.MethodPost, as.Issue(introspectiontest.TokenOptions{}))
	fmt.Println("CORS layer behind:")
	send(requireToken(allowBrowserClient(app, mcp)), http.MethodOptions, "")
	// Output:
	// CORS layer in front:
	// OPTIONS 204
	//   Access-Control-Allow-Origin: https://app.example
	//   Access-Control-Allow-Headers: Authorization, Content-Type, Mcp-Session-Id, Mcp-Protocol-Version, Last-Event-ID
	//   Access-Control-Expose-Headers: WWW-Authenticate, Mcp-Session-Id
	// POST 401
	//   Access-Control-Allow-Origin: https://app.example
	//   Access-Control-Expose-Headers: WWW-Authenticate, Mcp-Session-Id
	//   WWW-Authenticate: Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
	// POST 200
	//   Access-Control-Allow-Origin: https://app.example
	//   Access-Control-Expose-Headers: WWW-Authenticate, Mcp-Session-Id
	//   Mcp-Session-Id: s1
	// CORS layer behind:
	// OPTIONS 204
	//   Access-Control-Allow-Origin: https://app.example
	//   Access-Control-Allow-Headers: Authorization, Content-Type, Mcp-Session-Id, Mcp-Protocol-Version, Last-Event-ID
	//   Access-Control-Expose-Headers: WWW-Authenticate, Mcp-Session-Id
}
