package introspection

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// ProtectedResourceMetadata is the RFC 9728 §2 document that tells clients
// which authorization servers issue tokens for this resource.
type ProtectedResourceMetadata struct {
	Resource               string   `json:"resource"`
	AuthorizationServers   []string `json:"authorization_servers,omitempty"`
	ScopesSupported        []string `json:"scopes_supported,omitempty"`
	BearerMethodsSupported []string `json:"bearer_methods_supported,omitempty"`
	ResourceName           string   `json:"resource_name,omitempty"`
	ResourceDocumentation  string   `json:"resource_documentation,omitempty"`
}

// metadataMethods are the methods ProtectedResourceMetadataHandler answers.
const metadataMethods = "GET, HEAD, OPTIONS"

// ProtectedResourceMetadataHandler serves m as JSON to GET and HEAD
// requests. Mount it at the URL [MetadataURL] returns, outside
// [RequireBearerToken].
//
// The document is public, so that browser-based clients can read it from
// any origin every answer carries Access-Control-Allow-Origin: *, and
// OPTIONS, a CORS preflight included, gets 204 with the methods above and
// the request headers the preflight asks for. Other methods get 405.
func ProtectedResourceMetadataHandler(m ProtectedResourceMetadata) http.Handler {
	if m.BearerMethodsSupported == nil {
		m.BearerMethodsSupported = []string{"header"}
	}
	body, _ := json.Marshal(m) // strings and string slices always encode
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

// MetadataURL returns the RFC 9728 §3.1 metadata URL of resource: the
// well-known path inserted between the host and the resource's path, which
// keeps its escaping as written ("/a%2Fb" stays so) and loses a trailing
// "/". Userinfo, query and fragment are dropped, and an error never repeats
// resource, which may hold credentials.
func MetadataURL(resource string) (string, error) {
	u, err := url.Parse(resource)
	if err != nil {
		return "", errors.New("introspection: resource is not a valid URL")
	}
	if u.Scheme == "" || u.Host == "" {
		return "", errors.New("introspection: resource is not an absolute URL with a scheme and a host")
	}
	raw := "/.well-known/oauth-protected-resource" + strings.TrimSuffix(u.EscapedPath(), "/")
	path, err := url.PathUnescape(raw)
	if err != nil { // EscapedPath never returns an invalid escape
		return "", errors.New("introspection: resource has an invalid path")
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: path, RawPath: raw}).String(), nil
}
