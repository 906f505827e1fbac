// Command introspect asks an authorization server about a token (RFC 7662)
// and tells whether the verifier accepts it, and why not.
//
//	introspect [flags] [TOKEN]
//
// The token comes from the argument, or from the first line of standard
// input when there is no argument or it is "-". Settings come from the
// INTROSPECTION_* environment variables (see introspection.SettingsFromEnv)
// and the flags, which win. The client secret is read from
// INTROSPECTION_CLIENT_SECRET or from a file (-client-secret-file), never
// from a flag's value, which any user could see in ps.
//
// Exit status: 0 accepted, 1 rejected, 2 introspection failed or bad usage.
//
// introspect -demo starts a test authorization server in process and
// verifies a demo token, to show the tool at work without any setup.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
)

const (
	exitAccepted = 0
	exitRejected = 1
	exitFailed   = 2
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// result is what -json prints.
type result struct {
	Verdict string                     `json:"verdict"` // accepted, rejected, insufficient_scope, failed
	Reason  string                     `json:"reason,omitempty"`
	Token   *introspection.AccessToken `json:"token,omitempty"`
	Failure *failure                   `json:"failure,omitempty"`
}

type failure struct {
	Kind             introspection.FailureKind `json:"kind"`
	StatusCode       int                       `json:"status_code,omitempty"`
	ErrorCode        string                    `json:"error,omitempty"`
	ErrorDescription string                    `json:"error_description,omitempty"`
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("introspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		prefix     = fs.String("env-prefix", "INTROSPECTION_", "prefix of the environment variables to read")
		endpoint   = fs.String("url", "", "introspection endpoint (default $INTROSPECTION_URL)")
		clientID   = fs.String("client-id", "", "resource server's client id (default $INTROSPECTION_CLIENT_ID)")
		secretFile = fs.String("client-secret-file", "", "file holding the client secret (default $INTROSPECTION_CLIENT_SECRET)")
		method     = fs.String("auth-method", "", "client_secret_basic or client_secret_post")
		scopes     = fs.String("scopes", "", "required scopes, space- or comma-separated")
		audience   = fs.String("audience", "", "accepted audiences, space- or comma-separated")
		issuer     = fs.String("issuer", "", "required issuer")
		timeout    = fs.Duration("timeout", 0, "request timeout (default 10s)")
		leeway     = fs.Duration("leeway", 0, "clock skew allowed on exp and nbf")
		insecure   = fs.Bool("allow-insecure-http", false, "allow http:// to a host that is not loopback")
		asJSON     = fs.Bool("json", false, "print the result as JSON")
		demo       = fs.Bool("demo", false, "verify a demo token against a test authorization server started in process")
	)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: introspect [flags] [TOKEN]\n\nThe token is read from standard input when not given.\nExit status: 0 accepted, 1 rejected, 2 introspection failed or bad usage.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitFailed
	}
	if fs.NArg() > 1 {
		fmt.Fprintln(stderr, "introspect: give at most one token")
		return exitFailed
	}

	s, err := introspection.SettingsFromEnv(*prefix)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFailed
	}
	var token string
	if *demo {
		as := introspectiontest.NewServer()
		defer as.Close()
		s = introspection.Settings{
			IntrospectionURL: as.IntrospectionURL,
			ClientID:         introspectiontest.ClientID,
			ClientSecret:     introspectiontest.ClientSecret,
			RequiredScopes:   []string{"mcp:tools"},
		}
		token = as.Issue(introspectiontest.TokenOptions{
			ClientID: "demo-client", Subject: "demo-user", Username: "Demo User",
			Scopes: []string{"mcp:tools", "profile"}, Lifetime: time.Hour,
		})
		if !*asJSON {
			fmt.Fprintf(stdout, "demo: test authorization server at %s, demo token %s\n", as.URL, token)
		}
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "url":
			s.IntrospectionURL = *endpoint
		case "client-id":
			s.ClientID = *clientID
		case "auth-method":
			s.ClientAuthMethod = introspection.ClientAuthMethod(*method)
		case "scopes":
			s.RequiredScopes = fields(*scopes)
		case "audience":
			s.Audience = fields(*audience)
		case "issuer":
			s.Issuer = *issuer
		case "timeout":
			s.Timeout = *timeout
		case "leeway":
			s.Leeway = *leeway
		case "allow-insecure-http":
			s.AllowInsecureHTTP = *insecure
		}
	})
	if *secretFile != "" {
		b, err := os.ReadFile(*secretFile)
		if err != nil {
			fmt.Fprintf(stderr, "introspect: -client-secret-file: %v\n", err)
			return exitFailed
		}
		s.ClientSecret = strings.TrimRight(string(b), "\r\n")
	}
	v, err := introspection.NewVerifier(s)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFailed
	}
	defer v.Close()

	if !*demo {
		token = fs.Arg(0)
		if token == "" || token == "-" {
			line, err := bufio.NewReader(stdin).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				fmt.Fprintf(stderr, "introspect: reading the token: %v\n", err)
				return exitFailed
			}
			token = strings.TrimSpace(line)
		}
		if token == "" {
			fmt.Fprintln(stderr, "introspect: no token given (argument or standard input)")
			return exitFailed
		}
	}

	tok, err := v.Verify(ctx, token)
	res, code := verdict(tok, err)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			fmt.Fprintln(stderr, err)
			return exitFailed
		}
		return code
	}
	printSummary(stdout, res)
	return code
}

// verdict turns Verify's result into what the tool prints and its exit
// status. The bearer token itself is never printed.
func verdict(tok *introspection.AccessToken, err error) (result, int) {
	var ie *introspection.IntrospectionError
	switch {
	case err == nil:
		tok.Token = ""
		return result{Verdict: "accepted", Token: tok}, exitAccepted
	case errors.Is(err, introspection.ErrInsufficientScope):
		return result{Verdict: "insufficient_scope", Reason: err.Error()}, exitRejected
	case errors.Is(err, introspection.ErrInvalidToken):
		return result{Verdict: "rejected", Reason: err.Error()}, exitRejected
	case errors.As(err, &ie):
		return result{Verdict: "failed", Reason: err.Error(), Failure: &failure{
			Kind: ie.Kind, StatusCode: ie.StatusCode, ErrorCode: ie.ErrorCode, ErrorDescription: ie.ErrorDescription,
		}}, exitFailed
	default:
		return result{Verdict: "failed", Reason: err.Error()}, exitFailed
	}
}

func printSummary(w io.Writer, r result) {
	fmt.Fprintf(w, "verdict: %s\n", r.Verdict)
	if r.Reason != "" {
		fmt.Fprintf(w, "reason:  %s\n", r.Reason)
	}
	if t := r.Token; t != nil {
		row := func(name, value string) {
			if value != "" {
				fmt.Fprintf(w, "%-11s%s\n", name+":", value)
			}
		}
		row("client_id", t.ClientID)
		row("subject", t.Subject)
		row("username", t.Username)
		row("issuer", t.Issuer)
		row("scopes", strings.Join(t.Scopes, " "))
		row("audience", strings.Join(t.Audience, " "))
		if !t.ExpiresAt.IsZero() {
			row("expires", fmt.Sprintf("%s (in %s)", t.ExpiresAt.Format(time.RFC3339), time.Until(t.ExpiresAt).Round(time.Second)))
		}
	}
}

func fields(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}
