// Package oidcprovider runs oidc-provider (npm oidc-provider@9), a certified
// OpenID provider, as an RFC 7662 authorization server for tests.
//
// It needs node and the packages of interop/oidc (npm ci there). When they
// are missing, [Start] and [Node] skip the test with the reason, except in CI
// (CI=true), where they fail it.
package oidcprovider

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Credentials of the clients that server.mjs registers.
const (
	// ResourceServerSecret needs RFC 6749 §2.3.1 encoding in HTTP Basic.
	ResourceServerSecret = "p@ss:w+rd%/ x"
	BasicClientID        = "resource-server"      // client_secret_basic
	PostClientID         = "resource-server-post" // client_secret_post
	appID, appSecret     = "app", "app-secret"
)

// Credentials of the MCP client that server.mjs registers for mcpclient.mjs:
// it may ask for the scopes mcp:tools and mcp:echo with the client
// credentials grant. The secret needs no RFC 6749 §2.3.1 encoding, since
// the TypeScript SDK sends it in HTTP Basic without any.
const (
	MCPClientID     = "mcp-client"
	MCPClientSecret = "mcp-client-secret"
)

// Credentials of the client that server.mjs registers with
// dpop_bound_access_tokens: the token endpoint gives it access tokens only
// for a DPoP proof (RFC 9449), and they are bound to the proof's key.
const (
	DPoPClientID     = "dpop-app"
	DPoPClientSecret = "dpop-app-secret"
)

// Provider is a running oidc-provider.
type Provider struct {
	// Issuer is its base URL on 127.0.0.1.
	Issuer string
	// IntrospectionURL is its RFC 7662 endpoint.
	IntrospectionURL string
	// TokenURL is its token endpoint.
	TokenURL string
	// MTLSIntrospectionURL is the RFC 7662 endpoint on its HTTPS listener,
	// which asks every client for a certificate (RFC 8705), or "" when it
	// was not started with [Options.MTLS]. The metadata lists it as
	// mtls_endpoint_aliases.introspection_endpoint.
	MTLSIntrospectionURL string

	opts     Options
	keys     *Keys
	port     int
	mtlsPort int // 0 without Options.MTLS

	mu   sync.Mutex // guards proc
	proc *process   // the running node process
}

// process is one run of server.mjs.
type process struct {
	cmd      *exec.Cmd
	stopOnce sync.Once
	done     chan struct{} // closed when it has exited
}

// Dir returns the directory interop/oidc, which holds server.mjs,
// mcpclient.mjs, dpopclient.mjs and their node_modules, found from this
// file's place in the repository.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "oidc")
}

// unavailable skips t, or fails it in CI, because node or a package of
// [Dir] is missing.
func unavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("node and the packages of interop/oidc are required in CI: %s", why)
	}
	t.Skipf("skipping the interop test that runs node: %s", why)
}

// Node returns the path of node after checking that the npm package pkg
// (for example "oidc-provider" or "@modelcontextprotocol/sdk") is installed
// in [Dir]. When either is missing it skips t with the reason, or fails it
// in CI (CI=true).
func Node(t testing.TB, pkg string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		unavailable(t, "node is not installed")
	}
	d := Dir()
	if _, err := os.Stat(filepath.Join(d, "node_modules", filepath.FromSlash(pkg), "package.json")); err != nil {
		unavailable(t, pkg+" is not installed; run npm ci in "+d)
	}
	return node
}

// Options configure [StartWith].
type Options struct {
	// MTLS adds an HTTPS listener on another port of 127.0.0.1, with a
	// certificate from [Keys.CA], that asks every client for a certificate
	// (RFC 8705), and registers [TLSClientID] and [SelfSignedTLSClientID].
	MTLS bool
}

// Start runs oidc-provider on a free port of 127.0.0.1 and stops it when t
// ends.
func Start(t testing.TB) *Provider {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is [Start] with options.
func StartWith(t testing.TB, opts Options) *Provider {
	t.Helper()
	p := &Provider{opts: opts, keys: TestKeys(t), port: freePort(t)}
	p.Issuer = fmt.Sprintf("http://127.0.0.1:%d", p.port)
	p.IntrospectionURL = p.Issuer + "/token/introspection"
	p.TokenURL = p.Issuer + "/token"
	if opts.MTLS {
		p.mtlsPort = freePort(t)
		p.MTLSIntrospectionURL = fmt.Sprintf("https://127.0.0.1:%d/token/introspection", p.mtlsPort)
	}
	t.Cleanup(p.Stop)
	p.launch(t)
	return p
}

// freePort returns a port of 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// clientAuthEnv returns INTEROP_CLIENT_AUTH for server.mjs: the public
// keys of the clients and, with Options.MTLS, the HTTPS listener's port,
// certificate, key and CA.
func (p *Provider) clientAuthEnv(t testing.TB) string {
	t.Helper()
	type mtls struct {
		Port int    `json:"port"`
		Key  string `json:"key"`
		Cert string `json:"cert"`
		CA   string `json:"ca"`
	}
	cfg := struct {
		JWKS map[string]jwkSet `json:"jwks"`
		MTLS *mtls             `json:"mtls,omitempty"`
	}{JWKS: p.keys.jwks}
	if p.opts.MTLS {
		cfg.MTLS = &mtls{
			Port: p.mtlsPort,
			Key:  string(p.keys.serverKeyPEM),
			Cert: string(p.keys.serverCertPEM),
			CA:   string(p.keys.caPEM),
		}
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return "INTEROP_CLIENT_AUTH=" + string(b)
}

// Restart starts oidc-provider again on the same port, after stopping it
// if it still runs. Its clients are the same; the tokens it issued before
// are unknown to it, since it keeps them in memory.
func (p *Provider) Restart(t testing.TB) {
	t.Helper()
	p.Stop()
	p.launch(t)
}

// launch runs server.mjs on p's port and waits until it is ready.
func (p *Provider) launch(t testing.TB) {
	t.Helper()
	node := Node(t, "oidc-provider")
	d := Dir()
	// server.mjs is stat-ed so that go test's cache notices when it changes.
	if _, err := os.Stat(filepath.Join(d, "server.mjs")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "server.mjs", fmt.Sprint(p.port))
	cmd.Dir = d
	cmd.Env = append(os.Environ(), p.clientAuthEnv(t))
	cmd.Stderr = nil // oidc-provider's warnings about the runtime and dev keys
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	proc := &process{cmd: cmd, done: make(chan struct{})}
	p.mu.Lock()
	p.proc = proc
	p.mu.Unlock()
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if issuer, ok := strings.CutPrefix(sc.Text(), "ready "); ok {
				ready <- issuer
			}
		}
	}()
	go func() {
		_ = cmd.Wait()
		close(proc.done)
	}()
	select {
	case issuer := <-ready:
		if issuer != p.Issuer {
			t.Fatalf("oidc-provider is ready as %s, want %s", issuer, p.Issuer)
		}
	case <-proc.done:
		t.Fatal("oidc-provider exited before it was ready")
	case <-time.After(30 * time.Second):
		t.Fatal("oidc-provider was not ready within 30s")
	}
}

// Stop ends the provider and waits for it. Once it returns, the port
// refuses connections until [Provider.Restart].
func (p *Provider) Stop() {
	p.mu.Lock()
	proc := p.proc
	p.mu.Unlock()
	if proc == nil {
		return
	}
	proc.stopOnce.Do(func() {
		_ = proc.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-proc.done:
		case <-time.After(5 * time.Second):
			_ = proc.cmd.Process.Kill()
			<-proc.done
		}
	})
}

// Token obtains an access token for the app client with the client
// credentials grant (RFC 6749 §4.4) and the given scopes. It has no aud.
func (p *Provider) Token(t testing.TB, scopes ...string) string {
	t.Helper()
	return p.TokenFor(t, "", scopes...)
}

// TokenFor is Token for the resource server at resource (an RFC 8707
// resource indicator): the token's aud is resource. An empty resource asks
// for none.
func (p *Provider) TokenFor(t testing.TB, resource string, scopes ...string) string {
	t.Helper()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {strings.Join(scopes, " ")}}
	if resource != "" {
		form.Set("resource", resource)
	}
	p.post(t, "/token", form, &tok)
	if tok.AccessToken == "" {
		t.Fatal("no access token")
	}
	return tok.AccessToken
}

// Revoke revokes token (RFC 7009) as the app client that holds it.
func (p *Provider) Revoke(t testing.TB, token string) {
	t.Helper()
	p.post(t, "/token/revocation", url.Values{"token": {token}, "token_type_hint": {"access_token"}}, nil)
}

// post sends form to path as the app client.
func (p *Provider) post(t testing.TB, path string, form url.Values, out any) {
	t.Helper()
	p.postAs(t, appID, appSecret, path, form, out)
}

// postAs sends form to path with the client's credentials in HTTP Basic,
// RFC 6749 §2.3.1 form-encoded, and decodes the answer into out unless out
// is nil.
func (p *Provider) postAs(t testing.TB, id, secret, path string, form url.Values, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.Issuer+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s", path, resp.Status)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
}
