// Command mcpgo is the mcpserver example built on
// github.com/mark3labs/mcp-go, which has no auth of its own: an MCP server
// over streamable HTTP, protected by OAuth 2.0 bearer tokens that an
// introspection verifier checks. It has two tools: whoami, which reports
// the caller, and echo, which needs the scope mcp:echo on top of mcp:tools,
// which every request needs.
//
// This file holds the whole wiring a server copies: settings, audience,
// public URL, metadata, middleware, cache, shutdown. Only the development
// authorization server, started when neither INTROSPECTION_URL nor
// INTROSPECTION_ISSUER is set, lives elsewhere (examples/internal/demo).
// INTROSPECTION_ISSUER alone finds the introspection endpoint in the
// issuer's metadata.
//
//	go run ./examples/mcpgo [-addr 127.0.0.1:8080] [-public-url https://mcp.example.com]
//
// Environment: INTROSPECTION_* as introspection.SettingsFromEnv reads them;
// MCP_PUBLIC_URL, the public base URL (the -public-url flag wins);
// MCP_AUTHORIZATION_SERVER, the issuer announced in the metadata (default
// INTROSPECTION_ISSUER).
//
// DPoP (RFC 9449): INTROSPECTION_DPOP=allowed, the default, serves tokens
// bound to a client's key with the DPoP scheme and a proof, and unbound
// ones as Bearer; required serves DPoP-bound tokens only; off serves
// Bearer only and refuses bound tokens. A proof names the URL the client
// sent its request to: the public base URL and the path, unless
// INTROSPECTION_PUBLIC_BASE_URL or INTROSPECTION_TRUST_FORWARDED_HEADERS
// says otherwise. The metadata lists the proofs' algorithms and, under
// required, says that tokens must be DPoP-bound.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/examples/internal/demo"
	"github.com/mcpauth/introspection/mcpgo"
)

const (
	// mcpPath is where the server serves MCP: the resource is the public
	// URL and this path.
	mcpPath = "/mcp"
	// scopeTools is needed by every request.
	scopeTools = "mcp:tools"
	// scopeEcho is needed, on top of scopeTools, by a call of echo.
	scopeEcho = "mcp:echo"
	// shutdownTimeout bounds how long requests in flight may finish once
	// the server is told to stop. It is longer than the five seconds that
	// http.Server.Shutdown waits for a connection to send its first request.
	shutdownTimeout = 10 * time.Second
	// sessionTimeout closes sessions idle for that long.
	sessionTimeout = 10 * time.Minute
)

// toolScopes maps each tool to the scopes a call of it needs on top of
// scopeTools. The middleware refuses calls without them, and tools/list
// hides the tools the caller cannot call.
var toolScopes = map[string][]string{"echo": {scopeEcho}}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	publicURL := flag.String("public-url", "",
		"base URL clients reach this server at, scheme://host[:port] (default $MCP_PUBLIC_URL, else http://127.0.0.1:PORT of the listener)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("mcpgo: ")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *addr, *publicURL, os.Stdout)
	stop()
	if err != nil {
		log.Fatal(err)
	}
}

// run serves MCP on addr until ctx ends, then shuts the server down and
// closes the verifier. publicURL is the -public-url flag: empty means
// MCP_PUBLIC_URL, else the listener's address. It writes where the server
// is, and with the development server how to call it, to out.
func run(ctx context.Context, addr, publicURL string, out io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	base, err := publicBaseURL(cmp.Or(publicURL, os.Getenv("MCP_PUBLIC_URL")), ln.Addr())
	if err != nil {
		return err
	}
	// The resource is the MCP server's canonical URI: what clients connect
	// to, ask tokens for and find in the metadata.
	resource := base + mcpPath

	settings, err := introspection.SettingsFromEnv("")
	if err != nil {
		return err
	}
	if settings.RequiredScopes == nil {
		settings.RequiredScopes = []string{scopeTools}
	}
	if settings.ScopeMatcher == nil {
		// The a:b:c convention: a token with "mcp" may call every tool,
		// one with "mcp:echo" alone none.
		if settings.ScopeMatcher, err = introspection.HierarchicalScopes(":"); err != nil {
			return err
		}
	}
	if settings.Audience == nil {
		// Refuse tokens minted for another resource (RFC 8707), as the MCP
		// authorization spec requires.
		settings.Audience = []string{resource}
	}
	if settings.PublicBaseURL == "" && !settings.TrustForwardedHeaders {
		// A DPoP proof names the URL its request was sent to (htu): the
		// public one, whatever address and Host header a proxy in front
		// passes on.
		settings.PublicBaseURL = base
	}
	if _, set := os.LookupEnv("INTROSPECTION_CACHE_TTL"); !set {
		// Without a cache every HTTP request asks the authorization server:
		// one session of the go-sdk's client costs 3 (protocol 2026-07-28)
		// or 6 (2025-11-25) introspections. With it, a revoked token stays
		// accepted until its entry ends.
		settings.CacheTTL = 30 * time.Second
	}
	var dev *demo.Server
	if settings.IntrospectionURL == "" && settings.Issuer == "" {
		dev = demo.Start(settings.Audience)
		defer dev.Close()
		settings = dev.Configure(settings)
	}
	// The metadata names the issuer that clients get tokens from. The
	// introspection URL does not tell it (think of Keycloak realms).
	authorizationServer := cmp.Or(os.Getenv("MCP_AUTHORIZATION_SERVER"), settings.Issuer)
	if authorizationServer == "" {
		return errors.New("set MCP_AUTHORIZATION_SERVER or INTROSPECTION_ISSUER to the issuer that clients get tokens from")
	}

	v, err := introspection.NewVerifier(settings)
	if err != nil {
		return introspection.EnvError("", err)
	}
	defer v.Close() // runs after Shutdown: no request verifies any more

	h, closeSessions, err := newHandler(v, base, authorizationServer)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Listening on: %s\nMCP endpoint: %s\nAuthorization server: %s\nAccepted token audience: %s\n",
		ln.Addr(), resource, authorizationServer, strings.Join(settings.Audience, " "))
	if dev != nil {
		dev.PrintUsage(out, resource)
	}

	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	srv.RegisterOnShutdown(closeSessions) // ends the sessions' open GET streams
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	return srv.Shutdown(shutdown)
}

// newHandler serves MCP at publicURL's mcpPath behind the verifier, and the
// RFC 9728 metadata, which needs no token, naming authorizationServer.
// closeSessions ends every MCP session.
func newHandler(v *introspection.Verifier, publicURL, authorizationServer string) (h http.Handler, closeSessions func(), err error) {
	mux := http.NewServeMux()
	metadataURL, err := introspection.HandleProtectedResourceMetadata(mux, introspection.ProtectedResourceMetadata{
		Resource:             publicURL + mcpPath,
		AuthorizationServers: []string{authorizationServer},
		ScopesSupported:      []string{scopeTools, scopeEcho},
		// DPoP (RFC 9449): the proofs' algorithms, and whether tokens
		// must be bound to a key, as INTROSPECTION_DPOP says.
		DPOPSigningAlgValuesSupported: v.DPoPAlgorithms(),
		DPOPBoundAccessTokensRequired: v.DPoPMode() == introspection.DPoPRequired,
		ResourceName:                  "introspection example (mcp-go)",
	})
	if err != nil {
		return nil, nil, err
	}
	op, err := introspection.MCPOperation(introspection.MCPScopes{Tools: toolScopes})
	if err != nil {
		return nil, nil, err
	}
	mcpHandler := newMCPHandler(newMCPServer(v), publicURL)
	mux.Handle(mcpPath, introspection.RequireBearerToken(v, &introspection.MiddlewareOptions{
		ResourceMetadataURL: metadataURL,
		Realm:               "mcp",
		Operation:           op, // per-tool scopes: echo needs mcp:echo
	})(mcpgo.WithCaller(mcpHandler, &mcpgo.Options{ResourceMetadataURL: metadataURL}))) // binds each session to its caller
	closeSessions = func() { mcpHandler.CloseSessions(context.Background()) }
	return mux, closeSessions, nil
}

// newMCPServer returns the MCP server with its tools. Its tools/list shows
// a caller only the tools its token may call.
func newMCPServer(v *introspection.Verifier) *server.MCPServer {
	s := server.NewMCPServer("introspection-example", "v1", server.WithToolFilter(
		func(ctx context.Context, tools []mcp.Tool) []mcp.Tool {
			tok, ok := introspection.AccessTokenFromContext(ctx)
			var callable []mcp.Tool
			for _, tool := range tools {
				if ok && v.CheckScopes(tok, toolScopes[tool.Name]...) == nil {
					callable = append(callable, tool)
				}
			}
			return callable
		}))
	s.AddTool(mcp.NewTool("whoami", mcp.WithDescription("Reports the authenticated caller.")), whoami)
	s.AddTool(mcp.NewTool("echo", mcp.WithDescription("Says the text back. Needs the scope mcp:echo."),
		mcp.WithString("text", mcp.Required(), mcp.Description("the text to say back"))), echo)
	return s
}

// newMCPHandler returns mcp-go's streamable HTTP handler for s, stateful
// (mcp-go's default) so that each session serves only the caller who
// opened it.
func newMCPHandler(s *server.MCPServer, publicURL string) *server.StreamableHTTPServer {
	return server.NewStreamableHTTPServer(s,
		server.WithSessionIdleTTL(sessionTimeout),
		// Behind a proxy on this host, requests for a public host arrive on
		// loopback, which mcp-go's DNS rebinding protection refuses. A page
		// that rebinds a name to this host has no token to send.
		server.WithDisableLocalhostProtection(!isLoopbackURL(publicURL)))
}

// Caller is what whoami reports.
type Caller struct {
	// UserID is the caller the session is bound to: the subject, or for a
	// client-credentials token without one the client id.
	UserID   string   `json:"user_id"`
	Subject  string   `json:"subject,omitempty"`
	ClientID string   `json:"client_id,omitempty"`
	Scopes   []string `json:"scopes"`
}

func whoami(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	user, ok := mcpgo.UserID(ctx)
	tok, tokOK := introspection.AccessTokenFromContext(ctx)
	if !ok || !tokOK {
		return mcp.NewToolResultError("no authenticated caller"), nil
	}
	c := Caller{UserID: user, Subject: tok.Subject, ClientID: tok.ClientID, Scopes: tok.Scopes}
	return mcp.NewToolResultStructured(c, "you are "+user), nil
}

func echo(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	text, err := req.RequireString("text")
	if err != nil {
		return mcp.NewToolResultError(err.Error()), nil
	}
	return mcp.NewToolResultText(text), nil
}

// publicBaseURL returns the base URL clients reach the server at: raw, an
// http or https URL with a host and nothing after it, or when raw is empty
// http:// and the listener's address, with 127.0.0.1 for an unspecified
// one (-addr :8080), which no client can connect to.
func publicBaseURL(raw string, listener net.Addr) (string, error) {
	if raw == "" {
		host, port, err := net.SplitHostPort(listener.String())
		if err != nil {
			return "", err
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			host = "127.0.0.1"
		}
		return "http://" + net.JoinHostPort(host, port), nil
	}
	// The value is never repeated in the error: it might hold a password.
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || strings.Contains(raw, "#") {
		return "", errors.New("the public URL (-public-url, MCP_PUBLIC_URL) must be scheme://host[:port] with scheme http or https, and no user, path, query or fragment")
	}
	return u.Scheme + "://" + canonicalHost(u), nil
}

// canonicalHost returns u's host as the canonical resource URI has it (the
// MCP authorization spec; RFC 3986 §6.2.2, §6.2.3): in lower case, without
// the scheme's default port. An empty port stays, to be refused with the
// metadata.
func canonicalHost(u *url.URL) string {
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if u.Scheme == "https" && port == "443" || u.Scheme == "http" && port == "80" {
		port = ""
	}
	switch {
	case port != "" || strings.HasSuffix(u.Host, ":"):
		return net.JoinHostPort(host, port)
	case strings.Contains(host, ":"):
		return "[" + host + "]"
	}
	return host
}

// isLoopbackURL reports whether base names a loopback host.
func isLoopbackURL(base string) bool {
	u, err := url.Parse(base)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Hostname(), "localhost") {
		return true
	}
	ip := net.ParseIP(u.Hostname())
	return ip != nil && ip.IsLoopback()
}
