package introspection

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
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

// offlineAccess is the scope that asks for a refresh token (OpenID Connect
// Core §11). The MCP authorization spec (2026-07-28, Refresh Tokens) says
// resource servers SHOULD NOT advertise it.
const offlineAccess = "offline_access"

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
