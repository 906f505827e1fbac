package introspection_test

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
		tok, ok := introspection.AccessTokenFromContext(r.Context())
		if !ok {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
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
		req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
		if err != nil {
			log.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			log.Fatal(err)
		}
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

// Example_resourceServer is the program at the top of README.md, run
// against a test authorization server: a token must carry this server's
// resource URL in aud, and the RFC 9728 metadata needs no token.
func Example_resourceServer() {
	as := introspectiontest.NewServer()
	defer as.Close()
	srv := httptest.NewUnstartedServer(nil)
	defer srv.Close()
	resource := "http://" + srv.Listener.Addr().String() + "/mcp"

	v, err := introspection.NewVerifier(introspection.Settings{
		IntrospectionURL: as.IntrospectionURL,
		ClientID:         introspectiontest.ClientID,
		ClientSecret:     introspectiontest.ClientSecret,
		RequiredScopes:   []string{"mcp:tools"},
		Audience:         []string{resource},
		CacheTTL:         time.Minute,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()

	mux := http.NewServeMux()
	metadataURL, err := introspection.HandleProtectedResourceMetadata(mux, introspection.ProtectedResourceMetadata{
		Resource:             resource,
		AuthorizationServers: []string{as.Issuer},
		ScopesSupported:      []string{"mcp:tools"},
	})
	if err != nil {
		log.Fatal(err)
	}
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := introspection.AccessTokenFromContext(r.Context())
		if !ok {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "hello %s (client %s, scopes %v)\n", tok.Subject, tok.ClientID, tok.Scopes)
	})
	mux.Handle("/mcp", introspection.RequireBearerToken(v, &introspection.MiddlewareOptions{
		ResourceMetadataURL: metadataURL,
	})(hello))
	srv.Config.Handler = mux
	srv.Start()

	get := func(url, token string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			log.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			log.Fatal(err)
		}
		return resp.StatusCode, strings.TrimSpace(string(body))
	}
	for _, aud := range []string{resource, "https://other.example.com/mcp"} {
		token := as.Issue(introspectiontest.TokenOptions{
			Subject: "alice", ClientID: "app", Scopes: []string{"mcp:tools"}, Audience: []string{aud},
		})
		fmt.Println(get(resource, token))
	}
	// The metadata is served at its path-suffixed URL and at the root one.
	for _, url := range []string{metadataURL, srv.URL + "/.well-known/oauth-protected-resource"} {
		code, body := get(url, "")
		fmt.Println(code, strings.Contains(body, `"resource":"`+resource+`"`))
	}
	// Output:
	// 200 hello alice (client app, scopes [mcp:tools])
	// 401 {"error":"invalid_token"}
	// 200 true
	// 200 true
}

// readmeSnippet returns the first Go snippet of README.md: the program a
// newcomer copies first.
func readmeSnippet(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(readme), "```go\n")
	require.True(t, ok, "README.md has no Go snippet")
	snippet, _, ok := strings.Cut(rest, "```")
	require.True(t, ok, "README.md's first Go snippet does not end")
	return snippet
}

// TestREADMEFirstSnippet checks that the first snippet of README.md is safe
// to copy: it checks the audience, no function of it that defers a call
// exits with log.Fatal or os.Exit (which would skip the deferred call), and
// it compiles against this module.
func TestREADMEFirstSnippet(t *testing.T) {
	snippet := readmeSnippet(t)
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "main.go", snippet, 0)
	require.NoError(t, err)

	t.Run("it checks the audience", func(t *testing.T) {
		var audience bool
		ast.Inspect(f, func(n ast.Node) bool {
			if kv, ok := n.(*ast.KeyValueExpr); ok {
				if id, ok := kv.Key.(*ast.Ident); ok && id.Name == "Audience" {
					audience = true
				}
			}
			return true
		})
		assert.True(t, audience, "Settings.Audience is not set")
	})

	t.Run("deferred calls run", func(t *testing.T) {
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			var defers bool
			var exits []string
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.DeferStmt:
					defers = true
				case *ast.FuncLit:
					return false // a closure's exit is its own
				case *ast.CallExpr:
					if sel, ok := n.Fun.(*ast.SelectorExpr); ok {
						if pkg, ok := sel.X.(*ast.Ident); ok {
							switch name := pkg.Name + "." + sel.Sel.Name; name {
							case "log.Fatal", "log.Fatalf", "log.Fatalln", "os.Exit":
								exits = append(exits, fmt.Sprintf("%s at %s", name, fset.Position(n.Pos())))
							}
						}
					}
				}
				return true
			})
			if defers {
				assert.Empty(t, exits, "func %s defers a call and then exits without running it", fn.Name.Name)
			}
		}
	})

	t.Run("it compiles", func(t *testing.T) { goBuild(t, snippet) })
}

// TestPackageDocSnippet checks that the snippet of the package doc compiles
// and handles NewVerifier's error, inside a function that has ctx and
// bearerToken.
func TestPackageDocSnippet(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	require.NoError(t, err)
	var body []string
	for _, line := range strings.Split(string(doc), "\n") {
		if code, ok := strings.CutPrefix(line, "//\t"); ok {
			body = append(body, code)
		}
	}
	require.NotEmpty(t, body, "doc.go has no snippet")
	fragment := strings.Join(body, "\n")
	assert.Contains(t, fragment, "if err != nil {", "NewVerifier's error is handled")
	goBuild(t, `package main

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/mcpauth/introspection"
)

var _, _, _ = errors.Is, os.Getenv, time.Minute

func snippet(ctx context.Context, bearerToken string) error {
`+fragment+`
	_ = tok
	return nil
}

func main() { _ = snippet(context.Background(), "") }
`)
}

// goBuild compiles main, the source of a main package, against this module
// with the go command, offline.
func goBuild(t *testing.T, main string) {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("the go command is required in CI")
		}
		t.Skip("skipping: the go command is not on PATH")
	}
	root, err := filepath.Abs(".")
	require.NoError(t, err)
	sum, err := os.ReadFile("go.sum")
	require.NoError(t, err)
	dir := t.TempDir()
	files := map[string]string{
		"main.go": main,
		"go.mod": "module snippet\n\ngo 1.26.0\n\nrequire github.com/mcpauth/introspection v0.0.0\n\n" +
			"replace github.com/mcpauth/introspection => " + root + "\n",
		"go.sum": string(sum),
	}
	for name, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600))
	}
	cmd := exec.Command(goTool, "build", "-o", os.DevNull, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "GOPROXY=off", "GOTOOLCHAIN=local")
	out, err := cmd.CombinedOutput()
	assert.NoError(t, err, "go build:\n%s\n%s", out, main)
}
