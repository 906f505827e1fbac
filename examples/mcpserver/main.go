// Command mcpserver is an MCP server on the official Go SDK
// (github.com/modelcontextprotocol/go-sdk) over streamable HTTP, protected
// by OAuth 2.0 bearer tokens that an introspection verifier checks. It has
// two tools: whoami, which reports the caller, and echo, which needs the
// scope mcp:echo on top of mcp:tools, which every request needs.
//
// This file holds the whole wiring a server copies: settings, audience,
// public URL, metadata, middleware, cache, shutdown. Only the development
// authorization server, started when neither INTROSPECTION_URL nor
// INTROSPECTION_ISSUER is set, lives elsewhere (examples/internal/demo).
// INTROSPECTION_ISSUER alone finds the introspection endpoint in the
// issuer's metadata.
//
//	go run ./examples/mcpserver [-addr 127.0.0.1:8080] [-public-url https://mcp.example.com] [-metrics]
//
// With -metrics it also serves the verifier's OpenTelemetry metrics (the
// module github.com/mcpauth/introspection/otel) to Prometheus at /metrics,
// on the same address and without a token: put it behind a listener of
// its own, or a proxy that keeps /metrics inside, before exposing it.
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

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/examples/internal/demo"
	"github.com/mcpauth/introspection/mcpsdk"
	introspectionotel "github.com/mcpauth/introspection/otel"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprometheus "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/trace/noop"
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
	// metricsPath is where -metrics serves Prometheus metrics.
	metricsPath = "/metrics"
)

// toolScopes maps each tool to the scopes a call of it needs on top of
// scopeTools. The middleware refuses calls without them, and tools/list
// hides the tools the caller cannot call.
var toolScopes = map[string][]string{"echo": {scopeEcho}}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	publicURL := flag.String("public-url", "",
		"base URL clients reach this server at, scheme://host[:port] (default $MCP_PUBLIC_URL, else http://127.0.0.1:PORT of the listener)")
	metrics := flag.Bool("metrics", false, "serve the verifier's metrics to Prometheus at "+metricsPath)
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("mcpserver: ")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := serve(ctx, config{addr: *addr, publicURL: *publicURL, metrics: *metrics}, os.Stdout)
	stop()
	if err != nil {
		log.Fatal(err)
	}
}

// config is what the flags set.
type config struct {
	addr      string // -addr
	publicURL string // -public-url
	metrics   bool   // -metrics
}

// run serves MCP on addr until ctx ends, then shuts the server down and
// closes the verifier. publicURL is the -public-url flag: empty means
// MCP_PUBLIC_URL, else the listener's address. It writes where the server
// is, and with the development server how to call it, to out.
func run(ctx context.Context, addr, publicURL string, out io.Writer) error {
	return serve(ctx, config{addr: addr, publicURL: publicURL}, out)
}

// serve is run with every flag: with c.metrics it serves the verifier's
// metrics at metricsPath too.
func serve(ctx context.Context, c config, out io.Writer) error {
	addr, publicURL := c.addr, c.publicURL
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
		// one session costs 5 (the TypeScript SDK's client) to 7 (the
		// go-sdk's) introspections. With it, a revoked token stays accepted
		// until its entry ends.
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

	var metrics *prometheusMetrics
	if c.metrics {
		if metrics, err = newPrometheusMetrics(); err != nil {
			return err
		}
		defer metrics.shutdown()
		settings.Observer = metrics.observer
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
	if metrics != nil {
		defer metrics.observer.Watch(v)() // the cache-size and breaker-state gauges
		mux := http.NewServeMux()
		mux.Handle(metricsPath, metrics.handler)
		mux.Handle("/", h)
		h = mux
	}
	fmt.Fprintf(out, "Listening on: %s\nMCP endpoint: %s\n", ln.Addr(), resource)
	if metrics != nil {
		fmt.Fprintf(out, "Metrics: %s%s\n", base, metricsPath)
	}
	fmt.Fprintf(out, "Authorization server: %s\nAccepted token audience: %s\n",
		authorizationServer, strings.Join(settings.Audience, " "))
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

// prometheusMetrics records the verifier's metrics with OpenTelemetry and
// serves them to Prometheus.
type prometheusMetrics struct {
	observer *introspectionotel.Observer
	handler  http.Handler // serves the metrics in Prometheus's format
	shutdown func()
}

// newPrometheusMetrics returns an observer whose metrics OpenTelemetry's
// Prometheus exporter serves. It records no spans: a server that exports
// traces passes its TracerProvider instead of the no-op one.
func newPrometheusMetrics() (*prometheusMetrics, error) {
	registry := prometheus.NewRegistry()
	exporter, err := otelprometheus.New(otelprometheus.WithRegisterer(registry))
	if err != nil {
		return nil, err
	}
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	observer, err := introspectionotel.New(introspectionotel.Options{
		MeterProvider:  provider,
		TracerProvider: noop.NewTracerProvider(),
	})
	if err != nil {
		return nil, err
	}
	return &prometheusMetrics{
		observer: observer,
		handler:  promhttp.HandlerFor(registry, promhttp.HandlerOpts{}),
		shutdown: func() { _ = provider.Shutdown(context.Background()) },
	}, nil
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
		ResourceName:                  "introspection example (go-sdk)",
	})
	if err != nil {
		return nil, nil, err
	}
	op, err := introspection.MCPOperation(introspection.MCPScopes{Tools: toolScopes})
	if err != nil {
		return nil, nil, err
	}
	server := newMCPServer(v)
	mux.Handle(mcpPath, introspection.RequireBearerToken(v, &introspection.MiddlewareOptions{
		ResourceMetadataURL: metadataURL,
		Realm:               "mcp",
		Operation:           op, // per-tool scopes: echo needs mcp:echo
	})(mcpsdk.WithTokenInfo(newMCPHandler(server, publicURL), &mcpsdk.Options{ResourceMetadataURL: metadataURL})))
	closeSessions = func() {
		for ss := range server.Sessions() {
			_ = ss.Close()
		}
	}
	return mux, closeSessions, nil
}

// newMCPServer returns the MCP server with its tools. Its tools/list shows
// a caller only the tools its token may call.
func newMCPServer(v *introspection.Verifier) *mcp.Server {
	server := mcp.NewServer(&mcp.Implementation{Name: "introspection-example", Version: "v1"}, nil)
	server.AddReceivingMiddleware(mcpsdk.FilterTools(toolScopes, v.CheckScopes))
	mcp.AddTool(server, &mcp.Tool{Name: "whoami", Description: "Reports the authenticated caller."}, whoami)
	mcp.AddTool(server, &mcp.Tool{Name: "echo", Description: "Says the text back. Needs the scope mcp:echo."}, echo)
	return server
}

// newMCPHandler returns the SDK's streamable HTTP handler for server,
// stateful so that each session serves only the caller who opened it.
func newMCPHandler(server *mcp.Server, publicURL string) http.Handler {
	return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, &mcp.StreamableHTTPOptions{
		SessionTimeout: sessionTimeout,
		// Behind a proxy on this host, requests for a public host arrive on
		// loopback, which the SDK's DNS rebinding protection refuses. A
		// page that rebinds a name to this host has no token to send.
		DisableLocalhostProtection: !isLoopbackURL(publicURL),
	})
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

func whoami(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, Caller, error) {
	info := req.Extra.TokenInfo
	tok, ok := mcpsdk.AccessTokenFromInfo(info)
	if !ok {
		return nil, Caller{}, errors.New("no authenticated caller")
	}
	return nil, Caller{UserID: info.UserID, Subject: tok.Subject, ClientID: tok.ClientID, Scopes: info.Scopes}, nil
}

// EchoInput is what echo takes.
type EchoInput struct {
	Text string `json:"text" jsonschema:"the text to say back"`
}

func echo(_ context.Context, _ *mcp.CallToolRequest, in EchoInput) (*mcp.CallToolResult, any, error) {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text}}}, nil, nil
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
