package introspection

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
)

// ProtectedResourceMetadata is the RFC 9728 §2 document that tells clients
// which authorization servers issue tokens for this resource and how to
// present them. It has every member that RFC 9728 §2 defines (signed
// metadata, §2.2, left out), with the field names and order of the go-sdk's
// oauthex.ProtectedResourceMetadata, so that one converts to the other.
// Empty fields are left out of the document, except Resource.
type ProtectedResourceMetadata struct {
	// Resource (resource) is the resource identifier: the canonical URL of
	// the MCP server, such as "https://mcp.example.com/mcp". Required.
	Resource string `json:"resource"`

	// AuthorizationServers (authorization_servers) lists the issuer
	// identifiers (RFC 8414 §2) of the authorization servers that issue
	// tokens for the resource. The MCP authorization spec requires at least
	// one.
	AuthorizationServers []string `json:"authorization_servers,omitempty"`

	// JWKSURI (jwks_uri) is the URL of the resource's JSON Web Key Set, for
	// clients that check responses it signs.
	JWKSURI string `json:"jwks_uri,omitempty"`

	// ScopesSupported (scopes_supported) lists the RFC 6749 §3.3 scope
	// values that clients request for the resource. offline_access is never
	// served: the MCP authorization spec says servers SHOULD NOT advertise
	// it, refresh tokens being no resource requirement.
	ScopesSupported []string `json:"scopes_supported,omitempty"`

	// BearerMethodsSupported (bearer_methods_supported) lists how a bearer
	// token may be sent: "header", "body" or "query" (RFC 6750 §2). Nil
	// means ["header"], the only one [RequireBearerToken] accepts.
	BearerMethodsSupported []string `json:"bearer_methods_supported,omitempty"`

	// ResourceSigningAlgValuesSupported (resource_signing_alg_values_supported)
	// lists the JWS alg values the resource signs responses with; never
	// "none".
	ResourceSigningAlgValuesSupported []string `json:"resource_signing_alg_values_supported,omitempty"`

	// ResourceName (resource_name) is a human-readable name of the resource
	// for end users. RFC 9728 recommends it.
	ResourceName string `json:"resource_name,omitempty"`

	// ResourceDocumentation (resource_documentation) is the URL of a page
	// for developers using the resource.
	ResourceDocumentation string `json:"resource_documentation,omitempty"`

	// ResourcePolicyURI (resource_policy_uri) is the URL of a page saying
	// how a client may use the data the resource provides.
	ResourcePolicyURI string `json:"resource_policy_uri,omitempty"`

	// ResourceTOSURI (resource_tos_uri) is the URL of the resource's terms
	// of service.
	ResourceTOSURI string `json:"resource_tos_uri,omitempty"`

	// TLSClientCertificateBoundAccessTokens
	// (tls_client_certificate_bound_access_tokens) says that the resource
	// supports mutual-TLS client certificate-bound access tokens (RFC 8705).
	// False is left out, which means the same.
	TLSClientCertificateBoundAccessTokens bool `json:"tls_client_certificate_bound_access_tokens,omitempty"`

	// AuthorizationDetailsTypesSupported
	// (authorization_details_types_supported) lists the authorization
	// details type values the resource supports (RFC 9396).
	AuthorizationDetailsTypesSupported []string `json:"authorization_details_types_supported,omitempty"`

	// DPOPSigningAlgValuesSupported (dpop_signing_alg_values_supported)
	// lists the JWS alg values the resource accepts for DPoP proofs
	// (RFC 9449); never "none".
	DPOPSigningAlgValuesSupported []string `json:"dpop_signing_alg_values_supported,omitempty"`

	// DPOPBoundAccessTokensRequired (dpop_bound_access_tokens_required)
	// says that the resource always requires DPoP-bound access tokens
	// (RFC 9449). False is left out, which means the same.
	DPOPBoundAccessTokensRequired bool `json:"dpop_bound_access_tokens_required,omitempty"`
}

// metadataMethods are the methods ProtectedResourceMetadataHandler answers.
const metadataMethods = "GET, HEAD, OPTIONS"

// ProtectedResourceMetadataHandler serves m as JSON to GET and HEAD
// requests, without offline_access in its scopes_supported. Mount it at
// the path [MetadataPath] returns, outside [RequireBearerToken], or let
// [HandleProtectedResourceMetadata] check m and mount it. Later changes to
// m's slices do nothing.
//
// The document is public, so that browser-based clients can read it from
// any origin every answer carries Access-Control-Allow-Origin: *, and
// OPTIONS, a CORS preflight included, gets 204 with the methods above and
// the request headers the preflight asks for. Other methods get 405.
func ProtectedResourceMetadataHandler(m ProtectedResourceMetadata) http.Handler {
	if m.BearerMethodsSupported == nil {
		m.BearerMethodsSupported = []string{"header"}
	}
	// The MCP authorization spec (2026-07-28, Refresh Tokens) says
	// resource servers SHOULD NOT advertise offline_access.
	m.ScopesSupported = slices.DeleteFunc(slices.Clone(m.ScopesSupported),
		func(s string) bool { return s == offlineAccess })
	body, _ := json.Marshal(m) // strings, bools and string slices always encode
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			h.Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		case http.MethodOptions:
			h.Set("Allow", metadataMethods)
			if r.Header.Get("Access-Control-Request-Method") != "" {
				h.Set("Access-Control-Allow-Methods", metadataMethods)
				if asked := filterHeaderList(strings.Join(r.Header.Values("Access-Control-Request-Headers"), ", ")); asked != "" {
					h.Set("Access-Control-Allow-Headers", asked)
				}
				h.Add("Vary", "Access-Control-Request-Headers")
			}
			w.WriteHeader(http.StatusNoContent)
		default:
			h.Set("Allow", metadataMethods)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})
}

// filterHeaderList keeps the characters of a list of header names: the
// RFC 9110 §5.6.2 tchar, "," and " ".
func filterHeaderList(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("!#$%&'*+-.^_`|~, ", r):
			return r
		}
		return -1
	}, s)
}

// wellKnownPath is the well-known path of RFC 9728 §3, where the metadata
// of a resource without a path lives.
const wellKnownPath = "/.well-known/oauth-protected-resource"

// MetadataURL returns the RFC 9728 §3.1 metadata URL of resource: the
// well-known path inserted between the host and the resource's path, which
// keeps its escaping as written ("/a%2Fb" stays so) and loses a trailing
// "/". Userinfo, query and fragment are dropped, and an error never repeats
// resource, which may hold credentials.
func MetadataURL(resource string) (string, error) {
	u, err := metadataLocation(resource)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// MetadataPath returns the path of the URL [MetadataURL] returns for
// resource, escaped as a [http.ServeMux] pattern needs it: the mux
// unescapes a pattern and a request's path segment by segment, so
// "/.well-known/oauth-protected-resource/a%2Fb" routes the request for that
// URL, and not one for ".../a/b". A resource whose path the mux would
// never route there as it stands is an error: one with an empty or a dot
// segment ("//", "/./", "/../", escaped dots included), which the mux
// redirects and clients may resolve before asking, or with a character
// outside RFC 3986 §3.3 pchar, such as "[". The result never holds a
// character the mux treats as pattern syntax ("{", "}", a space). An error
// never repeats resource.
func MetadataPath(resource string) (string, error) {
	u, err := metadataLocation(resource)
	if err != nil {
		return "", err
	}
	p := u.EscapedPath()
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "" {
			return "", errors.New("introspection: resource path has an empty segment, which a ServeMux would not route")
		}
		if dec, _ := url.PathUnescape(seg); dec == "." || dec == ".." { // p is validly escaped
			return "", errors.New("introspection: resource path has a dot segment, which a ServeMux would not route")
		}
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c != '/' && c != '%' && strings.IndexByte(pcharChars, c) < 0 {
			return "", fmt.Errorf("introspection: resource path has the character %q, outside RFC 3986 pchar", c)
		}
	}
	return p, nil
}

// pcharChars are the characters of RFC 3986 §3.3 pchar but for
// percent-encoding: unreserved, sub-delims, ":" and "@".
const pcharChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@"

// metadataLocation returns the metadata URL of resource, as MetadataURL
// describes it.
func metadataLocation(resource string) (*url.URL, error) {
	u, err := url.Parse(resource)
	if err != nil {
		return nil, errors.New("introspection: resource is not a valid URL")
	}
	if u.Scheme == "" || u.Host == "" {
		return nil, errors.New("introspection: resource is not an absolute URL with a scheme and a host")
	}
	raw := wellKnownPath + strings.TrimSuffix(u.EscapedPath(), "/")
	path, err := url.PathUnescape(raw)
	if err != nil { // EscapedPath never returns an invalid escape
		return nil, errors.New("introspection: resource has an invalid path")
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host, Path: path, RawPath: raw}, nil
}

// HandleProtectedResourceMetadata checks m, registers
// [ProtectedResourceMetadataHandler](m) on mux, and returns the metadata
// URL to send in challenges as [MiddlewareOptions.ResourceMetadataURL].
//
// The handler is registered at [MetadataPath](m.Resource) and, for a
// resource with a path, at the root well-known path
// "/.well-known/oauth-protected-resource" too: the MCP authorization spec
// (2025-11-25, "Protected Resource Metadata Discovery Requirements";
// 2026-07-28, "Authorization Server Discovery") lets servers serve the
// metadata at either, and clients that find no resource_metadata in a
// challenge try the path-suffixed URL first, then the root. The root
// serves one resource only: when mux already routes either path (a second
// resource on the same mux, a pattern of the caller's for that path, on the
// resource's host, whatever the case of either, or with a method), or would
// panic on the pattern (it conflicts with another one), the result is an
// error, nothing of m is served, and what mux served before it serves
// still, also at a path whose pattern it took before it refused the next. A second resource on
// one mux mounts ProtectedResourceMetadataHandler at its MetadataPath
// itself.
//
// m fails the check, with an error that never repeats a URL's userinfo,
// when:
//   - Resource is not an absolute http or https URL with a host, or has
//     userinfo, a query or a fragment (RFC 9728 §1.2, RFC 8707 §2), or has
//     a path [MetadataPath] refuses;
//   - a URL names the unspecified address in any spelling that clients
//     read as one ("[::]", "[::%25lo]", "0.0.0.0", "0", "0x0": use the URL
//     clients reach, not the listen address), an IPv4 address otherwise
//     than in dotted decimal ("127.1", which a WHATWG URL parser reads as
//     127.0.0.1), a host that ends in a number but is no IPv4 address, or
//     an IPv6 zone, or has a port that is empty or outside 1 to 65535;
//   - AuthorizationServers is empty (the MCP authorization spec requires
//     one), or an entry is not an issuer identifier (RFC 8414 §2): an
//     absolute https URL, or http to a loopback host, with a host and no
//     userinfo, query or fragment;
//   - JWKSURI is set and is not https (or http to a loopback host), or
//     ResourceDocumentation, ResourcePolicyURI or ResourceTOSURI is set and
//     is not an absolute http or https URL, or one of them has userinfo;
//   - a scope is not an RFC 6749 §3.3 scope-token (offline_access is one,
//     and is left out of the document, not refused);
//   - BearerMethodsSupported lists anything but "header", the one method
//     [RequireBearerToken] accepts, or is empty but not nil;
//   - an entry of ResourceSigningAlgValuesSupported,
//     DPOPSigningAlgValuesSupported or AuthorizationDetailsTypesSupported
//     is empty, or an alg is "none".
func HandleProtectedResourceMetadata(mux *http.ServeMux, m ProtectedResourceMetadata) (metadataURL string, err error) {
	if mux == nil {
		return "", errors.New("introspection: HandleProtectedResourceMetadata needs a ServeMux, got nil")
	}
	if err := m.check(); err != nil {
		return "", err
	}
	p, err := MetadataPath(m.Resource)
	if err != nil {
		return "", err
	}
	u, err := metadataLocation(m.Resource)
	if err != nil {
		return "", err
	}
	paths := []string{p}
	if p != wellKnownPath {
		paths = append(paths, wellKnownPath)
	}
	// Host names are case-insensitive and clients send them in lower case,
	// but the mux matches a pattern's host as written: probe both.
	hosts := []string{strings.ToLower(u.Host)}
	if u.Host != hosts[0] {
		hosts = append(hosts, u.Host)
	}
	before := make([]http.Handler, len(paths))
	for i, path := range paths {
		for _, host := range hosts {
			if q := routedElsewhere(mux, host, path); q != "" {
				hint := ""
				if path == wellKnownPath && p != wellKnownPath {
					hint = "; the root metadata URL serves one resource: to serve another on this mux, mount ProtectedResourceMetadataHandler at its MetadataPath"
				}
				return "", fmt.Errorf("introspection: the ServeMux already routes %s to the pattern %q%s", path, q, hint)
			}
		}
		before[i], _ = mux.Handler(routeProbe(hosts[0], path))
	}
	// Until every pattern is registered, and for good when the mux refuses
	// one, each path serves what the mux served there before: no pattern
	// of the caller's on the resource's host or with a method routes it (see
	// routedElsewhere), so that is the handler of a pattern without either,
	// the same for every request that reaches the path's new pattern, or
	// the mux's 404, 405 or redirect.
	var ready atomic.Bool
	h := ProtectedResourceMetadataHandler(m)
	for i, path := range paths {
		earlier := before[i]
		gated := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !ready.Load() {
				earlier.ServeHTTP(w, r)
				return
			}
			h.ServeHTTP(w, r)
		})
		if err := handleNoPanic(mux, path, gated); err != nil {
			return "", err
		}
	}
	ready.Store(true)
	return u.String(), nil
}

// routeProbe returns a GET request for path, as MetadataPath escapes it,
// on host, to ask a ServeMux which handler serves it.
func routeProbe(host, path string) *http.Request {
	unescaped, _ := url.PathUnescape(path) // MetadataPath escapes validly
	return &http.Request{Method: http.MethodGet, Host: host, URL: &url.URL{Path: unescaped, RawPath: path}}
}

// routedElsewhere returns the pattern of mux that serves a GET for path on
// host and would still serve it once a pattern for path (no method, no
// host) is registered, or "" when there is none. That is a pattern for the
// same path, with a method or without, or one with host, which the mux
// prefers to any without. A less specific pattern without host, such as
// "/", yields to the new one, and so does a pattern for path+"/", to which
// the mux redirects only while path is not registered. A pattern with a
// method and a wildcard that matches path conflicts with the new one: the
// mux refuses the new one then (see handleNoPanic).
func routedElsewhere(mux *http.ServeMux, host, path string) string {
	_, q := mux.Handler(routeProbe(host, path))
	rest := q
	if i := strings.IndexAny(q, " \t"); i >= 0 { // after the method
		rest = strings.TrimLeft(q[i+1:], " \t")
	}
	qhost, qpath, _ := strings.Cut(rest, "/")
	qpath = "/" + qpath
	if qpath == path+"/" || qhost == "" && qpath != path {
		return ""
	}
	return q
}

// handleNoPanic registers h at pattern on mux, and turns the panic with
// which the mux refuses a pattern (a conflict with another one) into an
// error. The mux is unchanged when it refuses.
func handleNoPanic(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("introspection: the ServeMux refused the pattern %q: %v", pattern, r)
		}
	}()
	mux.Handle(pattern, h)
	return nil
}

// check reports what makes m unfit to serve, as
// HandleProtectedResourceMetadata lists it.
func (m *ProtectedResourceMetadata) check() error {
	if err := checkMetadataURL("Resource", m.Resource, urlResource); err != nil {
		return err
	}
	if len(m.AuthorizationServers) == 0 {
		return errors.New("introspection: AuthorizationServers is empty; the MCP authorization spec requires at least one issuer")
	}
	for i, as := range m.AuthorizationServers {
		if err := checkMetadataURL(fmt.Sprintf("AuthorizationServers[%d]", i), as, urlIssuer); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		name, v string
		rule    urlRule
	}{
		{"JWKSURI", m.JWKSURI, urlKeys},
		{"ResourceDocumentation", m.ResourceDocumentation, urlPage},
		{"ResourcePolicyURI", m.ResourcePolicyURI, urlPage},
		{"ResourceTOSURI", m.ResourceTOSURI, urlPage},
	} {
		if f.v == "" {
			continue
		}
		if err := checkMetadataURL(f.name, f.v, f.rule); err != nil {
			return err
		}
	}
	for i, sc := range m.ScopesSupported {
		if !validScope(sc) {
			return fmt.Errorf("introspection: ScopesSupported[%d] %q is not an RFC 6749 §3.3 scope-token", i, sc)
		}
	}
	if m.BearerMethodsSupported != nil && len(m.BearerMethodsSupported) == 0 {
		return errors.New(`introspection: BearerMethodsSupported is empty; leave it nil for ["header"]`)
	}
	for i, bm := range m.BearerMethodsSupported {
		if bm != "header" {
			return fmt.Errorf(`introspection: BearerMethodsSupported[%d] is %q; RequireBearerToken accepts a token in the Authorization header only ("header")`, i, bm)
		}
	}
	for _, l := range []struct {
		name   string
		values []string
		alg    bool
	}{
		{"ResourceSigningAlgValuesSupported", m.ResourceSigningAlgValuesSupported, true},
		{"AuthorizationDetailsTypesSupported", m.AuthorizationDetailsTypesSupported, false},
		{"DPOPSigningAlgValuesSupported", m.DPOPSigningAlgValuesSupported, true},
	} {
		for i, v := range l.values {
			if v == "" || l.alg && v == "none" {
				return fmt.Errorf("introspection: %s[%d] is %q, which is not allowed", l.name, i, v)
			}
		}
	}
	return nil
}

// urlRule says what checkMetadataURL asks of a URL beyond being absolute,
// with a host and without userinfo.
type urlRule int

const (
	urlResource urlRule = iota // http or https; no query, no fragment
	urlIssuer                  // https, or http to a loopback host; no query, no fragment
	urlKeys                    // https, or http to a loopback host
	urlPage                    // http or https
)

// checkMetadataURL checks the URL raw of the field name by rule. Its
// errors name the field and never repeat raw, which may hold credentials.
func checkMetadataURL(name, raw string, rule urlRule) error {
	if raw == "" {
		return fmt.Errorf("introspection: %s is empty", name)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("introspection: %s is not a valid URL", name)
	}
	if u.User != nil {
		return fmt.Errorf("introspection: %s must not carry userinfo", name)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if (rule == urlIssuer || rule == urlKeys) && !isLoopback(u.Hostname()) {
			return fmt.Errorf("introspection: %s must use https (http only to a loopback host)", name)
		}
	default:
		return fmt.Errorf("introspection: %s must be an absolute http or https URL", name)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("introspection: %s has no host", name)
	}
	if err := checkHostPort(name, u); err != nil {
		return err
	}
	if rule == urlResource || rule == urlIssuer {
		if u.RawQuery != "" || u.ForceQuery {
			return fmt.Errorf("introspection: %s must not have a query", name)
		}
		if strings.Contains(raw, "#") {
			return fmt.Errorf("introspection: %s must not have a fragment", name)
		}
	}
	if rule == urlResource {
		if _, err := MetadataPath(raw); err != nil {
			return err
		}
	}
	return nil
}

// checkHostPort checks the host and port of u, the URL of the field name,
// as clients read them: a WHATWG URL parser (browsers, Node.js) reads a
// host whose last label is a number ("0", "0x0", "127.1") as an IPv4
// address, and knows no IPv6 zones. It refuses the unspecified address in
// any spelling ("0.0.0.0", "0", "[::]", "[::%25lo]"), an IPv4 address not
// in dotted decimal (clients would name the resource otherwise), a host
// that ends in a number but is no IPv4 address, an IPv6 zone, and a port
// that is empty or outside 1 to 65535.
func checkHostPort(name string, u *url.URL) error {
	host := u.Hostname()
	unspecified := fmt.Errorf("introspection: %s names the unspecified address %s; use the URL clients reach, not the listen address", name, host)
	if strings.HasPrefix(u.Host, "[") {
		a, err := netip.ParseAddr(host)
		switch {
		case err != nil:
			return fmt.Errorf("introspection: %s has an invalid IPv6 address", name)
		case a.WithZone("").Unmap().IsUnspecified():
			return unspecified
		case a.Zone() != "":
			return fmt.Errorf("introspection: %s has an IPv6 zone, which clients cannot use", name)
		}
	} else if a, numeric, ok := whatwgIPv4(host); numeric {
		switch {
		case !ok:
			return fmt.Errorf("introspection: %s has a host that ends in a number but is not an IPv4 address", name)
		case a.IsUnspecified():
			return unspecified
		case a.String() != host:
			return fmt.Errorf("introspection: %s has the IPv4 address %s written otherwise than in dotted decimal", name, a)
		}
	}
	if strings.HasSuffix(u.Host, ":") {
		return fmt.Errorf("introspection: %s has an empty port", name)
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return fmt.Errorf("introspection: %s has the port %s, outside 1 to 65535", name, port)
		}
	}
	return nil
}

// whatwgIPv4 reads host as the WHATWG URL Standard's host parser does:
// numeric reports whether host "ends in a number", so that the parser
// takes it for an IPv4 address, and ok whether it is one, a.
func whatwgIPv4(host string) (a netip.Addr, numeric, ok bool) {
	parts := strings.Split(host, ".")
	if parts[len(parts)-1] == "" {
		if len(parts) == 1 {
			return netip.Addr{}, false, false
		}
		parts = parts[:len(parts)-1]
	}
	last := parts[len(parts)-1]
	_, isNumber := ipv4Number(last)
	allDigits := last != "" && strings.Trim(last, "0123456789") == ""
	if !isNumber && !allDigits {
		return netip.Addr{}, false, false
	}
	if len(parts) > 4 {
		return netip.Addr{}, true, false
	}
	numbers := make([]uint64, len(parts))
	for i, part := range parts {
		n, isNumber := ipv4Number(part)
		if !isNumber || i < len(parts)-1 && n > 255 {
			return netip.Addr{}, true, false
		}
		numbers[i] = n
	}
	v := numbers[len(numbers)-1]
	if v >= 1<<(8*(5-len(numbers))) {
		return netip.Addr{}, true, false
	}
	for i, n := range numbers[:len(numbers)-1] {
		v += n << (8 * (3 - i))
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true, true
}

// ipv4Number reads s as the WHATWG URL Standard's IPv4 number parser does:
// decimal, octal after "0", hexadecimal after "0x" or "0X". A value past
// 2^32, which no part of an address can have, is returned as some value
// past 2^32.
func ipv4Number(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	base := uint64(10)
	switch {
	case len(s) >= 2 && (s[:2] == "0x" || s[:2] == "0X"):
		base, s = 16, s[2:]
	case len(s) >= 2 && s[0] == '0':
		base, s = 8, s[1:]
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		var d uint64
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case c >= 'a' && c <= 'f':
			d = uint64(c-'a') + 10
		case c >= 'A' && c <= 'F':
			d = uint64(c-'A') + 10
		default:
			return 0, false
		}
		if d >= base {
			return 0, false
		}
		if n <= 1<<32 { // past that, n stays past it
			n = n*base + d
		}
	}
	return n, true
}
