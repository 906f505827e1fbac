// Command introspect asks an authorization server about a token (RFC 7662)
// and tells whether the verifier accepts it, and why not.
//
//	introspect [flags] [--] [TOKEN]
//
// The token comes from the argument, or from the first line of standard
// input when there is no argument or it is "-". A token that begins with
// "-" (base64url allows it) must follow "--", or it is taken for a flag;
// scripts should always write "--" before the token. Settings come from the
// INTROSPECTION_* environment variables (see introspection.SettingsFromEnv)
// and the flags, which win. A flag that names a file replaces its variable,
// which is then not read: -client-secret-file replaces
// INTROSPECTION_CLIENT_SECRET and INTROSPECTION_CLIENT_SECRET_FILE,
// -private-key-file INTROSPECTION_PRIVATE_KEY_FILE (whose key id
// INTROSPECTION_PRIVATE_KEY_ID still names, unless -private-key-id does),
// -tls-cert-file and -tls-key-file INTROSPECTION_TLS_CERT_FILE and
// INTROSPECTION_TLS_KEY_FILE. Files are read as SettingsFromEnv reads
// them, with the same bounds. The client secret is read from
// INTROSPECTION_CLIENT_SECRET or from a file (-client-secret-file), never
// from a flag's value, which any user could see in ps.
//
// Exit status: 0 accepted, 1 rejected, 2 introspection failed or bad usage.
//
// introspect -demo starts a test authorization server in process, issues
// a demo token, prints it and verifies it, to show the tool at work without
// any setup. The demo token is the only token the tool ever prints: where
// the server's answer repeats the token it was given, REDACTED stands in.
//
// Text from the authorization server never reaches the terminal raw:
// control characters, escape sequences, bidirectional controls and other
// characters that are not printable are shown as Go escapes (\x1b,
// \u202e) in the text output, and as \u escapes in the JSON output, which
// decodes to the server's exact text.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
)

const usageText = `usage: introspect [flags] [--] [TOKEN]

The token is read from standard input when not given or "-".
Put -- before a token that begins with "-", or it is taken for a flag.
Exit status: 0 accepted, 1 rejected, 2 introspection failed or bad usage.

`

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
	// Endpoint and Method are the introspection endpoint and client
	// authentication method used: configured, or found in the issuer's
	// metadata. Empty when discovery failed.
	Endpoint string                         `json:"introspection_endpoint,omitempty"`
	Method   introspection.ClientAuthMethod `json:"client_auth_method,omitempty"`
}

type failure struct {
	Kind             introspection.FailureKind `json:"kind"`
	StatusCode       int                       `json:"status_code,omitempty"`
	ErrorCode        string                    `json:"error,omitempty"`
	ErrorDescription string                    `json:"error_description,omitempty"`
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("introspect", flag.ContinueOnError)
	var (
		prefix     = fs.String("env-prefix", "INTROSPECTION_", "prefix of the environment variables to read")
		endpoint   = fs.String("url", "", "introspection endpoint (default $INTROSPECTION_URL)")
		clientID   = fs.String("client-id", "", "resource server's client id (default $INTROSPECTION_CLIENT_ID)")
		secretFile = fs.String("client-secret-file", "", "file holding the client secret, at most 64 KiB (default $INTROSPECTION_CLIENT_SECRET or $INTROSPECTION_CLIENT_SECRET_FILE)")
		method     = fs.String("auth-method", "", "client_secret_basic, client_secret_post, client_secret_jwt, private_key_jwt,\ntls_client_auth or self_signed_tls_client_auth (default: by the credentials and the issuer's metadata)")
		keyFile    = fs.String("private-key-file", "", "file holding the private key for private_key_jwt, PEM or JWK, at most 1 MiB (default $INTROSPECTION_PRIVATE_KEY_FILE)")
		keyID      = fs.String("private-key-id", "", "kid of the private key (default $INTROSPECTION_PRIVATE_KEY_ID, else the JWK's kid)")
		certFile   = fs.String("tls-cert-file", "", "PEM file of the client certificate for tls_client_auth (default $INTROSPECTION_TLS_CERT_FILE)")
		certKey    = fs.String("tls-key-file", "", "PEM file of the client certificate's key (default $INTROSPECTION_TLS_KEY_FILE)")
		scopes     = fs.String("scopes", "", "required scopes, space- or comma-separated")
		audience   = fs.String("audience", "", "accepted audiences, space- or comma-separated")
		issuer     = fs.String("issuer", "", "required issuer (default $INTROSPECTION_ISSUER); when neither -url nor $INTROSPECTION_URL is set,\nthe introspection endpoint is found from its metadata")
		timeout    = fs.Duration("timeout", 0, "request timeout (default 10s)")
		leeway     = fs.Duration("leeway", 0, "clock skew allowed on exp and nbf")
		insecure   = fs.Bool("allow-insecure-http", false, "allow http:// to a host that is not loopback")
		asJSON     = fs.Bool("json", false, "print the result as JSON")
		demo       = fs.Bool("demo", false, "verify a demo token against a test authorization server started in process")
	)
	usage := func() {
		fmt.Fprint(stderr, usageText)
		fs.SetOutput(stderr)
		fs.PrintDefaults()
	}
	// The flag package's own messages repeat what was typed, which may be a
	// token taken for a flag: they are discarded, and parseError says what
	// went wrong without the argument.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, parseError(fs, err))
		}
		usage()
		return exitFailed
	}
	if fs.NArg() > 1 {
		fmt.Fprintln(stderr, "introspect: give at most one token")
		return exitFailed
	}
	if *demo && fs.NArg() > 0 {
		// A verdict on the demo token could be taken for one on this token.
		fmt.Fprintln(stderr, "introspect: -demo verifies its own token; give none")
		return exitFailed
	}

	if (*certFile == "") != (*certKey == "") {
		fmt.Fprintln(stderr, "introspect: -tls-cert-file and -tls-key-file go together")
		return exitFailed
	}
	s, err := settingsFromEnv(*prefix, []fileFlag{
		{"client-secret-file", *secretFile, []string{"CLIENT_SECRET_FILE", "CLIENT_SECRET"}},
		{"private-key-file", *keyFile, []string{"PRIVATE_KEY_FILE"}},
		{"tls-cert-file", *certFile, []string{"TLS_CERT_FILE"}},
		{"tls-key-file", *certKey, []string{"TLS_KEY_FILE"}},
	})
	if err != nil {
		fmt.Fprintln(stderr, printable(err.Error()))
		return exitFailed
	}
	var token string
	if *demo {
		as := introspectiontest.NewServer()
		defer as.Close()
		// The issuer alone: the verifier finds the introspection
		// endpoint in the test server's RFC 8414 metadata.
		s = introspection.Settings{
			Issuer:         as.Issuer,
			ClientID:       introspectiontest.ClientID,
			ClientSecret:   introspectiontest.ClientSecret,
			RequiredScopes: []string{"mcp:tools"},
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
	if *keyID != "" {
		if s.PrivateKey == nil {
			fmt.Fprintln(stderr, "introspect: -private-key-id needs a private key (-private-key-file or $INTROSPECTION_PRIVATE_KEY_FILE)")
			return exitFailed
		}
		k := *s.PrivateKey
		k.KeyID = *keyID
		s.PrivateKey = &k
	}
	v, err := introspection.NewVerifier(s)
	if err != nil {
		fmt.Fprintln(stderr, printable(err.Error()))
		return exitFailed
	}
	defer v.Close()

	if !*demo {
		token = fs.Arg(0)
		if token == "" || token == "-" {
			line, err := bufio.NewReader(stdin).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				fmt.Fprintf(stderr, "introspect: reading the token: %s\n", printable(err.Error()))
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
	if tok != nil && !*demo {
		hideToken(tok, token)
	}
	res, code := verdict(tok, err)
	res.Endpoint, res.Method = v.IntrospectionURL(), v.ClientAuthMethod()
	if *asJSON {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			fmt.Fprintln(stderr, printable(err.Error()))
			return exitFailed
		}
		_, _ = stdout.Write(append(escapeJSON(b), '\n'))
		return code
	}
	printSummary(stdout, res)
	return code
}

// fileFlag is a flag that names a file, and the environment variables
// (without their prefix) it replaces: the first is the one that names the
// file.
type fileFlag struct {
	name, value string
	vars        []string
}

// settingsFromEnv returns introspection.SettingsFromEnv(prefix) with the
// files of the flags given (those with a value) in place of the
// environment's: while it runs, the first variable of each such flag holds
// the flag's value and the others are empty, so that one reader, with its
// bounds and its errors that never show what a file holds, reads every
// file; the variables are restored afterwards. Its errors name the flag
// rather than the variable it stood in for.
func settingsFromEnv(prefix string, flags []fileFlag) (introspection.Settings, error) {
	p := prefix
	if p == "" {
		p = "INTROSPECTION_"
	}
	if !strings.HasSuffix(p, "_") {
		p += "_"
	}
	var names []string // variable, flag, ...
	for _, f := range flags {
		if f.value == "" {
			continue
		}
		for i, v := range f.vars {
			value := ""
			if i == 0 {
				value = f.value
				names = append(names, p+v, "-"+f.name)
			}
			old, had := os.LookupEnv(p + v)
			_ = os.Setenv(p+v, value)
			defer func() {
				if had {
					_ = os.Setenv(p+v, old)
				} else {
					_ = os.Unsetenv(p + v)
				}
			}()
		}
	}
	s, err := introspection.SettingsFromEnv(prefix)
	if err == nil {
		return s, nil
	}
	msg := err.Error()
	if named := strings.NewReplacer(names...).Replace(msg); named != msg {
		msg = "introspect: " + strings.TrimPrefix(named, "introspection: ")
	}
	return s, errors.New(msg)
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

// hideToken replaces token by REDACTED wherever the authorization
// server's answer repeats it in t (as is or form-encoded), names of
// members included, so that the tool never prints a token it was given.
func hideToken(t *introspection.AccessToken, token string) {
	escaped := url.QueryEscape(token)
	hide := func(s string) string {
		s = strings.ReplaceAll(s, token, "REDACTED")
		return strings.ReplaceAll(s, escaped, "REDACTED")
	}
	for _, f := range []*string{&t.ClientID, &t.Subject, &t.Username, &t.Issuer, &t.TokenType} {
		*f = hide(*f)
	}
	for _, list := range [][]string{t.Scopes, t.Audience} {
		for i := range list {
			list[i] = hide(list[i])
		}
	}
	if t.Claims != nil {
		t.Claims = hideIn(t.Claims, hide).(map[string]any)
	}
}

// hideIn returns v, a value decoded from JSON, with hide applied to every
// string in it, names of members included.
func hideIn(v any, hide func(string) string) any {
	switch v := v.(type) {
	case string:
		return hide(v)
	case []any:
		for i, e := range v {
			v[i] = hideIn(e, hide)
		}
		return v
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[hide(k)] = hideIn(e, hide)
		}
		return out
	}
	return v
}

// printSummary writes r for a reader. Every string passes through
// printable, since most come from the authorization server.
func printSummary(w io.Writer, r result) {
	fmt.Fprintf(w, "verdict: %s\n", printable(r.Verdict))
	if r.Reason != "" {
		fmt.Fprintf(w, "reason:  %s\n", printable(r.Reason))
	}
	if r.Endpoint != "" {
		fmt.Fprintf(w, "asked:   %s (%s)\n", printable(r.Endpoint), printable(string(r.Method)))
	}
	if t := r.Token; t != nil {
		row := func(name string, values ...string) {
			shown := make([]string, 0, len(values))
			for _, v := range values {
				if v != "" {
					shown = append(shown, printable(v))
				}
			}
			if len(shown) > 0 {
				fmt.Fprintf(w, "%-11s%s\n", name+":", strings.Join(shown, " "))
			}
		}
		row("client_id", t.ClientID)
		row("subject", t.Subject)
		row("username", t.Username)
		row("issuer", t.Issuer)
		row("scopes", t.Scopes...)
		row("audience", t.Audience...)
		if !t.ExpiresAt.IsZero() {
			row("expires", fmt.Sprintf("%s (in %s)", t.ExpiresAt.Format(time.RFC3339), time.Until(t.ExpiresAt).Round(time.Second)))
		}
	}
}

// printable returns s with every character that a terminal could act on or
// that could mislead a reader written as a Go escape: control characters
// (C0, DEL, C1), bidirectional and other format controls, separators other
// than the space, unassigned and private-use code points, and bytes that are
// not UTF-8. A backslash is doubled, so that the escapes are unambiguous.
func printable(s string) string {
	if isPrintable(s) {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError:
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				fmt.Fprintf(&b, `\x%02x`, s[i])
			} else {
				b.WriteRune(r) // a genuine U+FFFD
			}
		case r == '\\':
			b.WriteString(`\\`)
		case unicode.IsPrint(r):
			b.WriteRune(r)
		default:
			q := strconv.QuoteRune(r) // '\x1b', '\u202e', '\n'
			b.WriteString(q[1 : len(q)-1])
		}
	}
	return b.String()
}

// isPrintable reports whether printable would return s unchanged.
func isPrintable(s string) bool {
	for i, r := range s {
		if r == '\\' || !unicode.IsPrint(r) {
			return false
		}
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return false
			}
		}
	}
	return true
}

// escapeJSON returns the JSON text b with every character that is not
// printable written as a \u escape, so that it decodes to the same value.
// encoding/json already escapes the C0 controls, U+2028 and U+2029, but
// writes DEL, the C1 controls (U+009B is CSI) and bidirectional controls
// such as U+202E as they are. Such characters can only occur inside JSON
// strings, where a \u escape means the same character.
func escapeJSON(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == '\n' || r == ' ' || (unicode.IsPrint(r) && !(r == utf8.RuneError && size == 1)) {
			out = append(out, b[:size]...)
		} else {
			for _, u := range utf16.Encode([]rune{r}) {
				out = fmt.Appendf(out, `\u%04x`, u)
			}
		}
		b = b[size:]
	}
	return out
}

func fields(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}

// parseError describes an error of flag.FlagSet.Parse without repeating
// what was typed: an argument taken for a flag may be a token that begins
// with "-". Only the names of defined flags are shown.
func parseError(fs *flag.FlagSet, err error) string {
	msg := err.Error()
	// invalid value %q for flag -%s: %v, and the same for a boolean.
	for _, f := range []struct{ prefix, infix string }{
		{"invalid value ", " for flag -"},
		{"invalid boolean value ", " for -"},
	} {
		rest, ok := strings.CutPrefix(msg, f.prefix)
		if !ok {
			continue
		}
		if value, err := strconv.QuotedPrefix(rest); err == nil {
			if rest, ok := strings.CutPrefix(rest[len(value):], f.infix); ok {
				if name, _, _ := strings.Cut(rest, ":"); fs.Lookup(name) != nil {
					return "introspect: invalid value for flag -" + name
				}
			}
		}
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok && fs.Lookup(name) != nil {
		return "introspect: " + msg
	}
	what := "bad flag"
	for _, kind := range []string{"flag provided but not defined", "bad flag syntax"} {
		if strings.HasPrefix(msg, kind) {
			what = kind
		}
	}
	return "introspect: " + what + ` (not shown: it may be a token); put -- before a token that begins with "-"`
}
