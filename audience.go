package introspection

import "strings"

// audienceIn reports whether the token audience aud names one of the
// resources in want, as [sameAudience] compares them.
func audienceIn(aud string, want []string) bool {
	for _, w := range want {
		if sameAudience(w, aud) {
			return true
		}
	}
	return false
}

// sameAudience reports whether the audience values a and b name the same
// resource. Equal strings always do. Two URLs with an authority
// (scheme://host[:port][path][?query]) also do when they differ only as
// RFC 3986 §6.2.2.1 and §6.2.3 let a comparison ignore, which is how the MCP
// authorization spec asks servers to read a resource's canonical URI:
//   - the case of the scheme and of the host (ASCII letters only);
//   - for http and https, an explicit default port (80, 443) or an empty
//     one against none, and an empty path against "/".
//
// Everything else compares exactly: "/mcp", "/mcp/" and "/%6Dcp" are three
// resources, and so are "?a=1" and "?A=1". A URL with userinfo, a fragment,
// or a host that is percent-encoded or not ASCII matches only itself, and
// so does any value that is not such a URL.
func sameAudience(a, b string) bool {
	if a == b {
		return true
	}
	ua, ok := splitURLAudience(a)
	if !ok {
		return false
	}
	ub, ok := splitURLAudience(b)
	return ok && asciiEqualFold(ua.scheme, ub.scheme) && asciiEqualFold(ua.host, ub.host) &&
		ua.port == ub.port && ua.rest == ub.rest
}

// urlAudience is an audience URL split for comparison; each part is a
// substring of the value.
type urlAudience struct {
	scheme string
	host   string // a reg-name or an IP literal in brackets
	port   string // "" for none, empty or the scheme's default
	rest   string // path and query; "" for an http(s) path that is "" or "/"
}

// splitURLAudience splits s when it is a URL with an authority that
// sameAudience may compare by parts; ok is false for anything else.
func splitURLAudience(s string) (u urlAudience, ok bool) {
	scheme, rest, found := strings.Cut(s, "://")
	if !found || !validScheme(scheme) {
		return u, false
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	if strings.Contains(tail, "#") {
		return u, false
	}
	host, port := authority, ""
	if strings.HasPrefix(authority, "[") {
		i := strings.IndexByte(authority, ']')
		if i < 0 {
			return u, false
		}
		host, port = authority[:i+1], authority[i+1:]
		if port != "" {
			if port[0] != ':' {
				return u, false
			}
			port = port[1:]
		}
		if !validChars(host[1:i], ipLiteralChars) {
			return u, false
		}
	} else {
		if i := strings.LastIndexByte(authority, ':'); i >= 0 {
			host, port = authority[:i], authority[i+1:]
		}
		if host == "" || !validChars(host, regNameChars) {
			return u, false
		}
	}
	if !validChars(port, digitChars) {
		return u, false
	}
	web := asciiEqualFold(scheme, "http") || asciiEqualFold(scheme, "https")
	if port == "80" && asciiEqualFold(scheme, "http") || port == "443" && asciiEqualFold(scheme, "https") {
		port = ""
	}
	if web && (tail == "/" || strings.HasPrefix(tail, "/?")) {
		tail = tail[1:]
	}
	return urlAudience{scheme: scheme, host: host, port: port, rest: tail}, true
}

// Character classes of RFC 3986 §3.2.2, without percent-encoding: a
// reg-name's unreserved and sub-delims characters, and what an IPv6 or
// IPvFuture literal between brackets is made of.
const (
	regNameChars   = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;="
	ipLiteralChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:"
	digitChars     = "0123456789"
)

func validChars(s, allowed string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(allowed, s[i]) < 0 {
			return false
		}
	}
	return true
}

// validScheme reports whether s is an RFC 3986 §3.1 scheme:
// ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
func validScheme(s string) bool {
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	return validChars(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+-.")
}

// asciiEqualFold is strings.EqualFold for ASCII letters only, so that no
// other character matches one that Unicode folds it to (the Kelvin sign
// and "k").
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		ca, cb := a[i], b[i]
		if 'A' <= ca && ca <= 'Z' {
			ca += 'a' - 'A'
		}
		if 'A' <= cb && cb <= 'Z' {
			cb += 'a' - 'A'
		}
		if ca != cb {
			return false
		}
	}
	return true
}
