package introspection_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
)

func ExampleVerifier_Verify() {
	as := introspectiontest.NewServer()
	defer as.Close()
	token := as.Issue(introspectiontest.TokenOptions{
		Subject: "alice",
		Scopes:  []string{"mcp:tools", "profile"},
	})

	v, err := introspection.NewVerifier(introspection.Settings{
		IntrospectionURL: as.IntrospectionURL,
		ClientID:         introspectiontest.ClientID,
		ClientSecret:     introspectiontest.ClientSecret,
		RequiredScopes:   []string{"mcp:tools"},
		CacheTTL:         time.Minute,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()

	tok, err := v.Verify(context.Background(), token)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.Subject, tok.Scopes)

	_, err = v.Verify(context.Background(), "not-a-token-the-server-knows")
	fmt.Println(errors.Is(err, introspection.ErrInvalidToken), errors.Is(err, introspection.ErrTokenInactive))
	// Output:
	// alice [mcp:tools profile]
	// true true
}

func ExampleVerifier_Verify_errors() {
	as := introspectiontest.NewServer()
	defer as.Close()
	v, err := introspection.NewVerifier(introspection.Settings{
		IntrospectionURL: as.IntrospectionURL,
		ClientID:         introspectiontest.ClientID,
		ClientSecret:     introspectiontest.ClientSecret,
		RequiredScopes:   []string{"admin"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()

	token := as.Issue(introspectiontest.TokenOptions{Scopes: []string{"read"}})
	_, err = v.Verify(context.Background(), token)
	fmt.Println(err)

	as.SetFault(introspectiontest.Fault{Status: http.StatusServiceUnavailable, Header: http.Header{"Retry-After": {"30"}}})
	_, err = v.Verify(context.Background(), token)
	var ie *introspection.IntrospectionError
	if errors.As(err, &ie) {
		fmt.Println(ie.Kind, ie.StatusCode, ie.RetryAfter)
	}
	// Output:
	// introspection: insufficient scope: missing admin
	// status 503 30s
}

func ExampleVerifier_VerifyToken() {
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

	if tok := v.VerifyToken(context.Background(), as.Issue(introspectiontest.TokenOptions{ClientID: "my-app"})); tok != nil {
		fmt.Println("accepted for", tok.ClientID)
	}
	if tok := v.VerifyToken(context.Background(), "revoked-or-unknown"); tok == nil {
		fmt.Println("rejected")
	}
	// Output:
	// accepted for my-app
	// rejected
}

func ExampleRequireBearerToken() {
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

	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := introspection.AccessTokenFromContext(r.Context())
		fmt.Fprintf(w, "hello %s", tok.Subject)
	})
	srv := httptest.NewServer(introspection.RequireBearerToken(v, &introspection.MiddlewareOptions{
		ResourceMetadataURL: "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
		Scopes:              []string{"mcp:tools"},
	})(hello))
	defer srv.Close()

	for _, token := range []string{
		as.Issue(introspectiontest.TokenOptions{Subject: "alice", Scopes: []string{"mcp:tools"}}),
		as.Issue(introspectiontest.TokenOptions{Subject: "bob", Scopes: []string{"profile"}}),
		"",
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%d %s\n%s\n", resp.StatusCode, strings.TrimSpace(string(body)), resp.Header.Get("WWW-Authenticate"))
	}
	// Output:
	// 200 hello alice
	//
	// 403 {"error":"insufficient_scope"}
	// Bearer error="insufficient_scope", scope="mcp:tools", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
	// 401 {"error":"unauthorized"}
	// Bearer scope="mcp:tools", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
}
