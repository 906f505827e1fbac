package introspection

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// redacted stands in for a secret or a token in errors, logs and fmt output.
const redacted = "REDACTED"

// scrub returns s with every occurrence of each non-empty secret replaced by
// REDACTED: as is, form-encoded as the request carries it (with upper- or
// lowercase hex escapes), with JSON's escaped solidus, and with the escapes
// of a Go quoted string, as net/http quotes a broken answer. Scrubbing runs
// before any truncation, so that no prefix of a secret survives a cut. It
// costs a few passes over s.
func scrub(s string, secrets ...string) string {
	// Longer secrets first, so that a secret inside another one cannot
	// break the longer one's match and leave the rest of it in view.
	secrets = slices.Clone(secrets)
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	for _, secret := range secrets {
		if secret == "" {
			continue
		}
		s = strings.ReplaceAll(s, secret, redacted)
		if q := url.QueryEscape(secret); q != secret {
			s = strings.ReplaceAll(s, q, redacted)
			if l := lowerHexEscapes(q); l != q {
				s = strings.ReplaceAll(s, l, redacted)
			}
		}
		if strings.Contains(secret, "/") {
			s = strings.ReplaceAll(s, strings.ReplaceAll(secret, "/", `\/`), redacted)
		}
		if q := strconv.Quote(secret); q[1:len(q)-1] != secret {
			s = strings.ReplaceAll(s, q[1:len(q)-1], redacted)
		}
	}
	return s
}

// scrubError returns err when its text holds none of the secrets, and
// otherwise an error with the text scrubbed. The scrubbed error does not
// wrap err, whose text would still show them.
func scrubError(err error, secrets ...string) error {
	msg := err.Error()
	if s := scrub(msg, secrets...); s != msg {
		return errors.New(s)
	}
	return err
}

// lowerHexEscapes lowercases the hex digits of the %XX escapes in q, a
// string from url.QueryEscape.
func lowerHexEscapes(q string) string {
	b := []byte(q)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1] = lowerASCII(b[i+1])
			b[i+2] = lowerASCII(b[i+2])
			i += 2
		}
	}
	return string(b)
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

// secrets returns what the verifier must never show beside a token: the
// client secret and the Basic credentials that encode it.
func (v *Verifier) secrets() []string {
	if v.basicAuth == nil {
		return []string{v.s.ClientSecret}
	}
	basic := strings.TrimPrefix(v.basicAuth[0], "Basic ")
	return []string{v.s.ClientSecret, basic}
}

// displayURL returns raw as it may appear in an error or a log line:
// everything that could be user information, from after "//" up to the
// last "@", is replaced by REDACTED. It works on unparsable URLs too, and
// hides a password that holds "/", "?", "#" or "@".
func displayURL(raw string) string {
	at := strings.LastIndexByte(raw, '@')
	if at < 0 {
		return raw
	}
	start := 0
	if i := strings.Index(raw, "//"); i >= 0 && i < at {
		start = i + 2
	}
	return raw[:start] + redacted + raw[at:]
}

// String returns a description of v: its settings, with the client secret
// redacted. It never shows the Basic credentials or a token in flight.
func (v *Verifier) String() string {
	if v == nil {
		return "<nil>"
	}
	return "introspection.Verifier{Settings:" + v.s.String() + "}"
}

// Format implements [fmt.Formatter] so that every verb, %+v and %#v
// included, prints [Verifier.String] rather than the verifier's fields.
func (v *Verifier) Format(f fmt.State, verb rune) {
	fmt.Fprint(f, v.String())
}

// LogValue implements [slog.LogValuer]: v's settings, with the client
// secret redacted.
func (v *Verifier) LogValue() slog.Value {
	if v == nil {
		return slog.StringValue("<nil>")
	}
	return v.s.LogValue()
}
