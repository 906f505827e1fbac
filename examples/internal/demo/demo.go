// Package demo holds what the example servers share: settings from the
// environment, or an in-process authorization server with a demo token when
// none is configured.
package demo

import (
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
	"time"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
)

// Scope is the scope the example servers require by default.
const Scope = "mcp:tools"

// Env is what an example server runs with.
type Env struct {
	Settings introspection.Settings
	// AuthorizationServer is announced in the RFC 9728 metadata.
	AuthorizationServer string
	// Token is a demo token, set only with the in-process server.
	Token string
	// Server is the in-process authorization server, or nil.
	Server *introspectiontest.Server
}

// Close stops the in-process authorization server, if any.
func (e *Env) Close() {
	if e.Server != nil {
		e.Server.Close()
	}
}

// ResourcePath is the path at which the example servers serve MCP.
const ResourcePath = "/mcp"

// ResourceURL returns the resource URL of an example server whose base URL
// is base: the MCP endpoint, the resource of its RFC 9728 metadata, and the
// audience its tokens must carry (RFC 8707). It is the one place that URL
// is made.
func ResourceURL(base string) string { return base + ResourcePath }

// Settings returns s with what it leaves unset filled in as the example
// servers run: RequiredScopes [Scope], a CacheTTL of 30 seconds, and the
// server's own resource URL as Audience, so that a token minted for another
// resource is refused, as the MCP authorization spec requires.
func Settings(s introspection.Settings, resource string) introspection.Settings {
	if s.RequiredScopes == nil {
		s.RequiredScopes = []string{Scope}
	}
	if s.CacheTTL == 0 {
		s.CacheTTL = 30 * time.Second
	}
	if len(s.Audience) == 0 {
		s.Audience = []string{resource}
	}
	return s
}

// Load reads INTROSPECTION_* variables for the server whose resource URL
// is resource and fills in the rest with [Settings]. Without
// INTROSPECTION_URL it starts an introspectiontest server and issues a demo
// token for resource.
func Load(resource string) (*Env, error) {
	s, err := introspection.SettingsFromEnv("")
	if err != nil {
		return nil, err
	}
	e := &Env{Settings: Settings(s, resource)}
	if s.IntrospectionURL == "" {
		e.Server = introspectiontest.NewServer()
		e.Settings.IntrospectionURL = e.Server.IntrospectionURL
		e.Settings.ClientID = introspectiontest.ClientID
		e.Settings.ClientSecret = introspectiontest.ClientSecret
		e.Token = e.Server.Issue(introspectiontest.TokenOptions{
			ClientID: "demo-client",
			Subject:  "demo-user",
			Scopes:   []string{Scope, "profile"},
			Audience: []string{resource},
			Lifetime: time.Hour,
		})
	}
	e.AuthorizationServer = e.Settings.Issuer
	if e.AuthorizationServer == "" {
		u, err := url.Parse(e.Settings.IntrospectionURL)
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("INTROSPECTION_URL: %w", err)
		}
		e.AuthorizationServer = u.Scheme + "://" + u.Host
	}
	return e, nil
}

// PrintUsage tells how to call the MCP endpoint at resource with e's demo
// token, if there is one. It writes to w once.
func (e *Env) PrintUsage(w io.Writer, resource string) {
	var b strings.Builder
	endpoint := resource
	fmt.Fprintf(&b, "MCP endpoint: %s\n", endpoint)
	fmt.Fprintf(&b, "Accepted token audience: %s\n", strings.Join(e.Settings.Audience, " "))
	if e.Token == "" {
		fmt.Fprintf(&b, "Authorization server: %s\n", e.Settings.IntrospectionURL)
	} else {
		fmt.Fprintf(&b, "No INTROSPECTION_URL set: using the in-process test authorization server at %s\n", e.Server.URL)
		fmt.Fprintf(&b, "Demo token (scopes %s profile, one hour): %s\n\n", Scope, e.Token)
		fmt.Fprintf(&b, "Call the whoami tool:\n\n")
		fmt.Fprintf(&b, "curl -s %s \\\n  -H 'Authorization: Bearer %s' \\\n  -H 'Content-Type: application/json' \\\n  -H 'Accept: application/json, text/event-stream' \\\n  -d '%s'\n\n",
			endpoint, e.Token, WhoamiRequest)
		fmt.Fprintf(&b, "Without the header the server answers 401 with a WWW-Authenticate challenge.\n")
	}
	_, _ = io.WriteString(w, b.String())
}

// WhoamiRequest is a JSON-RPC tools/call of the whoami tool.
const WhoamiRequest = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`

// Caller is what the whoami tool reports.
type Caller struct {
	Subject  string   `json:"subject"`
	ClientID string   `json:"client_id"`
	Scopes   []string `json:"scopes"`
}

// NewHandler builds an example server's handler for a verifier, the
// server's base URL and the authorization server announced in its
// metadata.
type NewHandler func(v *introspection.Verifier, base, authorizationServer string) (http.Handler, error)

// Main runs an example server: flags, then Serve until interrupted.
func Main(newHandler NewHandler) {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	flag.Parse()
	if err := serveUntilInterrupted(*addr, newHandler); err != nil {
		log.Fatal(err)
	}
}

// serveUntilInterrupted is Serve until an interrupt arrives. It returns
// rather than exits, so that its deferred calls run.
func serveUntilInterrupted(addr string, newHandler NewHandler) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return Serve(ctx, addr, os.Stdout, newHandler)
}

// Serve listens on addr, loads the settings for the resource URL there (see
// [Load]), prints how to call the server and serves newHandler's handler
// until ctx ends.
func Serve(ctx context.Context, addr string, out io.Writer, newHandler NewHandler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	base := "http://" + ln.Addr().String()
	resource := ResourceURL(base)
	env, err := Load(resource)
	if err != nil {
		return err
	}
	defer env.Close()
	v, err := introspection.NewVerifier(env.Settings)
	if err != nil {
		return err
	}
	defer v.Close()
	h, err := newHandler(v, base, env.AuthorizationServer)
	if err != nil {
		return err
	}
	env.PrintUsage(out, resource)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// NewMux returns a mux that serves the RFC 9728 metadata of the resource
// ResourceURL(base), which needs no token, and that metadata's URL for the
// challenges of the handler the caller mounts at [ResourcePath].
func NewMux(v *introspection.Verifier, base, authorizationServer string) (mux *http.ServeMux, metadataURL string, err error) {
	resource := ResourceURL(base)
	metadataURL, err = introspection.MetadataURL(resource)
	if err != nil {
		return nil, "", err
	}
	mux = http.NewServeMux()
	mux.Handle("/.well-known/oauth-protected-resource/mcp", introspection.ProtectedResourceMetadataHandler(
		introspection.ProtectedResourceMetadata{
			Resource:             resource,
			AuthorizationServers: []string{authorizationServer},
			ScopesSupported:      v.RequiredScopes(),
		}))
	return mux, metadataURL, nil
}
