package introspection

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rfc9728Fields are the members of RFC 9728 §2, in its order.
var rfc9728Fields = []string{
	"resource",
	"authorization_servers",
	"jwks_uri",
	"scopes_supported",
	"bearer_methods_supported",
	"resource_signing_alg_values_supported",
	"resource_name",
	"resource_documentation",
	"resource_policy_uri",
	"resource_tos_uri",
	"tls_client_certificate_bound_access_tokens",
	"authorization_details_types_supported",
	"dpop_signing_alg_values_supported",
	"dpop_bound_access_tokens_required",
}

// goSDKFieldNames are the field names of the go-sdk's
// oauthex.ProtectedResourceMetadata (v1.8.0), in its order: with the same
// names and types, a value of one type converts to the other.
var goSDKFieldNames = []string{
	"Resource",
	"AuthorizationServers",
	"JWKSURI",
	"ScopesSupported",
	"BearerMethodsSupported",
	"ResourceSigningAlgValuesSupported",
	"ResourceName",
	"ResourceDocumentation",
	"ResourcePolicyURI",
	"ResourceTOSURI",
	"TLSClientCertificateBoundAccessTokens",
	"AuthorizationDetailsTypesSupported",
	"DPOPSigningAlgValuesSupported",
	"DPOPBoundAccessTokensRequired",
}

// serveMetadata asks h for target with method and returns the answer.
func serveMetadata(t *testing.T, h http.Handler, method, target string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, target, nil))
	return w
}

// metadataDocument asks h for target with GET and decodes the JSON answer.
func metadataDocument(t *testing.T, h http.Handler, target string) map[string]any {
	t.Helper()
	w := serveMetadata(t, h, http.MethodGet, target)
	require.Equal(t, http.StatusOK, w.Code, target)
	require.Equal(t, "application/json", w.Header().Get("Content-Type"), target)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &doc), target)
	return doc
}

// TestProtectedResourceMetadataHasEveryRFC9728Field checks that the type
// has one field for each member of RFC 9728 §2, named as the RFC names it
// and left out when empty (except resource), with the Go names of the
// go-sdk's type, and that the handler serves every one of them when set.
func TestProtectedResourceMetadataHasEveryRFC9728Field(t *testing.T) {
	typ := reflect.TypeFor[ProtectedResourceMetadata]()
	var names, goNames []string
	for i := range typ.NumField() {
		name, opts, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		names = append(names, name)
		goNames = append(goNames, typ.Field(i).Name)
		if name == "resource" {
			assert.Empty(t, opts, "resource is required (RFC 9728 §2), never omitted")
		} else {
			assert.Equal(t, "omitempty", opts, name)
		}
	}
	assert.Equal(t, rfc9728Fields, names)
	assert.Equal(t, goSDKFieldNames, goNames)

	// Every field set: each member is served with its value.
	var m ProtectedResourceMetadata
	v := reflect.ValueOf(&m).Elem()
	for i := range v.NumField() {
		switch f := v.Field(i); f.Kind() {
		case reflect.String:
			f.SetString("https://x.example/" + typ.Field(i).Name)
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Slice:
			f.Set(reflect.ValueOf([]string{typ.Field(i).Name}))
		default:
			t.Fatalf("field %s has an unexpected kind %s", typ.Field(i).Name, f.Kind())
		}
	}
	doc := metadataDocument(t, ProtectedResourceMetadataHandler(m), "/")
	want := map[string]any{}
	for i := range v.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		switch f := v.Field(i); f.Kind() {
		case reflect.String:
			want[name] = f.String()
		case reflect.Bool:
			want[name] = true
		case reflect.Slice:
			want[name] = []any{typ.Field(i).Name}
		}
	}
	assert.Equal(t, want, doc)

	// Only Resource set: the rest is left out, but for the default bearer method.
	doc = metadataDocument(t, ProtectedResourceMetadataHandler(ProtectedResourceMetadata{Resource: "https://mcp.example.com/mcp"}), "/")
	assert.Equal(t, map[string]any{
		"resource":                 "https://mcp.example.com/mcp",
		"bearer_methods_supported": []any{"header"},
	}, doc)
}

// TestProtectedResourceMetadataHandlerDropsOfflineAccess checks that the
// handler never serves offline_access in scopes_supported (MCP
// authorization 2026-07-28, Refresh Tokens: servers SHOULD NOT advertise
// it), leaves the other scopes in their order, and does not change the
// caller's slice.
func TestProtectedResourceMetadataHandlerDropsOfflineAccess(t *testing.T) {
	tests := []struct {
		name   string
		scopes []string
		want   any // nil: scopes_supported is left out
	}{
		{"among others", []string{"mcp:tools", "offline_access", "mcp:echo"}, []any{"mcp:tools", "mcp:echo"}},
		{"twice", []string{"offline_access", "a", "offline_access"}, []any{"a"}},
		{"alone", []string{"offline_access"}, nil},
		{"other case is another scope", []string{"Offline_Access"}, []any{"Offline_Access"}},
		{"none", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			given := append([]string(nil), tc.scopes...)
			doc := metadataDocument(t, ProtectedResourceMetadataHandler(ProtectedResourceMetadata{
				Resource:        "https://mcp.example.com/mcp",
				ScopesSupported: given,
			}), "/")
			got, present := doc["scopes_supported"]
			if tc.want == nil {
				assert.False(t, present, "scopes_supported is %v", got)
			} else {
				assert.Equal(t, tc.want, got)
			}
			assert.Equal(t, tc.scopes, given, "the caller's slice is unchanged")
		})
	}
}

// TestMetadataPathRoutesMetadataURL checks that MetadataPath gives the
// path of MetadataURL's URL in the form a ServeMux pattern needs: a mux
// with the handler registered at it routes a request for MetadataURL's
// URL there, escaped paths included ("/a%2Fb" is one segment, not "/a/b").
// A resource whose path the mux would clean (dot or empty segments, which
// the mux redirects, and which clients may resolve first) or that holds
// characters outside RFC 3986 pchar is refused with an error that never
// repeats the URL's userinfo, and never panics the mux.
func TestMetadataPathRoutesMetadataURL(t *testing.T) {
	const root = "/.well-known/oauth-protected-resource"
	tests := []struct {
		resource string
		want     string
		wantErr  string
	}{
		{resource: "https://mcp.example.com", want: root},
		{resource: "https://mcp.example.com/", want: root},
		{resource: "https://mcp.example.com/mcp", want: root + "/mcp"},
		{resource: "https://mcp.example.com/mcp/", want: root + "/mcp"},
		{resource: "http://127.0.0.1:8080/a/b?x=1", want: root + "/a/b"},
		{resource: "https://mcp.example.com/a%2Fb", want: root + "/a%2Fb"},
		{resource: "https://mcp.example.com/%7euser/mcp", want: root + "/%7euser/mcp"},
		{resource: "https://mcp.example.com/t%C3%A9st", want: root + "/t%C3%A9st"},
		{resource: "https://mcp.example.com/tést", want: root + "/t%C3%A9st"},
		{resource: "https://mcp.example.com/a b", want: root + "/a%20b"},
		{resource: "https://mcp.example.com/{id}", want: root + "/%7Bid%7D"},
		{resource: "https://mcp.example.com/%7Bid%7D", want: root + "/%7Bid%7D"},
		{resource: "https://mcp.example.com/a}/{$}", want: root + "/a%7D/%7B$%7D"},
		{resource: "https://mcp.example.com/a;b=c,d:e@f!$&'()*+", want: root + "/a;b=c,d:e@f!$&'()*+"},
		{resource: "https://user:s3cret@mcp.example.com/mcp", want: root + "/mcp"},
		{resource: "/mcp", wantErr: "not an absolute URL"},
		{resource: "https://user:s3cret@mcp.example.com/a/../b", wantErr: "dot segment"},
		{resource: "https://mcp.example.com/a/./b", wantErr: "dot segment"},
		{resource: "https://mcp.example.com/..", wantErr: "dot segment"},
		{resource: "https://mcp.example.com/%2e%2E/mcp", wantErr: "dot segment"},
		{resource: "https://mcp.example.com/a/%2e", wantErr: "dot segment"},
		{resource: "https://user:s3cret@mcp.example.com/a//b", wantErr: "empty segment"},
		{resource: "https://mcp.example.com//", wantErr: "empty segment"},
		{resource: "https://mcp.example.com/[a]", wantErr: "character"},
		{resource: "https://user:s3cret@mcp.example.com/a]", wantErr: "character"},
	}
	for _, tc := range tests {
		t.Run(tc.resource, func(t *testing.T) {
			got, err := MetadataPath(tc.resource)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.True(t, strings.HasPrefix(err.Error(), "introspection: "), err.Error())
				assert.NotContains(t, err.Error(), "s3cret")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)

			metadataURL, err := MetadataURL(tc.resource)
			require.NoError(t, err)
			mux := http.NewServeMux()
			require.NotPanics(t, func() {
				mux.Handle(got, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					_, _ = w.Write([]byte("metadata"))
				}))
			})
			w := serveMetadata(t, mux, http.MethodGet, metadataURL)
			assert.Equal(t, http.StatusOK, w.Code, metadataURL)
			assert.Equal(t, "metadata", w.Body.String(), metadataURL)
		})
	}

	// The escaped slash stays one segment: "/a/b" is another resource.
	p, err := MetadataPath("https://mcp.example.com/a%2Fb")
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle(p, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	assert.Equal(t, http.StatusNotFound, serveMetadata(t, mux, http.MethodGet, "https://mcp.example.com"+root+"/a/b").Code)
}

// validMetadata returns metadata that HandleProtectedResourceMetadata
// accepts, for resource.
func validMetadata(resource string) ProtectedResourceMetadata {
	return ProtectedResourceMetadata{
		Resource:             resource,
		AuthorizationServers: []string{"https://auth.example.com/realms/mcp"},
		ScopesSupported:      []string{"mcp:tools", "offline_access", "mcp:echo"},
	}
}

// TestHandleProtectedResourceMetadataServesPathAndRoot checks that the
// metadata is served at the path-suffixed well-known URL that
// MetadataURL returns, and, for a resource with a path, at the root
// well-known URL too, where MCP clients look next; that both answer GET,
// HEAD, preflights and other methods as ProtectedResourceMetadataHandler
// does, without offline_access; and that nothing else is registered.
func TestHandleProtectedResourceMetadataServesPathAndRoot(t *testing.T) {
	const root = "/.well-known/oauth-protected-resource"
	tests := []struct {
		resource string
		wantURL  string
		served   []string // paths that serve the document
		notFound []string
	}{
		{"https://mcp.example.com/mcp", "https://mcp.example.com" + root + "/mcp",
			[]string{root + "/mcp", root}, []string{root + "/mcp/x", root + "/other"}},
		{"https://mcp.example.com/mcp/", "https://mcp.example.com" + root + "/mcp",
			[]string{root + "/mcp", root}, []string{root + "/mcp/x"}},
		{"http://127.0.0.1:8080/a%2Fb", "http://127.0.0.1:8080" + root + "/a%2Fb",
			[]string{root + "/a%2Fb", root}, []string{root + "/a/b"}},
		{"https://mcp.example.com", "https://mcp.example.com" + root,
			[]string{root}, []string{root + "/mcp", root + "/"}},
		{"https://mcp.example.com/", "https://mcp.example.com" + root,
			[]string{root}, []string{root + "/mcp"}},
	}
	for _, tc := range tests {
		t.Run(tc.resource, func(t *testing.T) {
			mux := http.NewServeMux()
			got, err := HandleProtectedResourceMetadata(mux, validMetadata(tc.resource))
			require.NoError(t, err)
			assert.Equal(t, tc.wantURL, got)
			want := map[string]any{
				"resource":                 tc.resource,
				"authorization_servers":    []any{"https://auth.example.com/realms/mcp"},
				"scopes_supported":         []any{"mcp:tools", "mcp:echo"},
				"bearer_methods_supported": []any{"header"},
			}
			for _, p := range tc.served {
				target := "https://mcp.example.com" + p
				assert.Equal(t, want, metadataDocument(t, mux, target), p)
				assert.Equal(t, "*", serveMetadata(t, mux, http.MethodGet, target).Header().Get("Access-Control-Allow-Origin"), p)
				assert.Equal(t, http.StatusOK, serveMetadata(t, mux, http.MethodHead, target).Code, p)
				assert.Equal(t, http.StatusMethodNotAllowed, serveMetadata(t, mux, http.MethodPost, target).Code, p)
				r := httptest.NewRequest(http.MethodOptions, target, nil)
				r.Header.Set("Origin", "https://app.example")
				r.Header.Set("Access-Control-Request-Method", "GET")
				w := httptest.NewRecorder()
				mux.ServeHTTP(w, r)
				assert.Equal(t, http.StatusNoContent, w.Code, p)
				assert.Equal(t, "*", w.Header().Get("Access-Control-Allow-Origin"), p)
			}
			for _, p := range tc.notFound {
				assert.Equal(t, http.StatusNotFound, serveMetadata(t, mux, http.MethodGet, "https://mcp.example.com"+p).Code, p)
			}
		})
	}
}

// TestHandleProtectedResourceMetadataRefusesBadMetadata checks that
// metadata that would mislead clients is refused with an error that
// starts with "introspection: " and never repeats a URL's userinfo, and
// that nothing is registered then; and that what the MCP authorization
// spec allows is accepted.
func TestHandleProtectedResourceMetadataRefusesBadMetadata(t *testing.T) {
	bad := []struct {
		name    string
		edit    func(m *ProtectedResourceMetadata)
		wantErr string
	}{
		{"no resource", func(m *ProtectedResourceMetadata) { m.Resource = "" }, "Resource"},
		{"relative resource", func(m *ProtectedResourceMetadata) { m.Resource = "/mcp" }, "Resource"},
		{"resource without scheme", func(m *ProtectedResourceMetadata) { m.Resource = "mcp.example.com/mcp" }, "Resource"},
		{"resource with another scheme", func(m *ProtectedResourceMetadata) { m.Resource = "ftp://mcp.example.com/mcp" }, "http or https"},
		{"resource without host", func(m *ProtectedResourceMetadata) { m.Resource = "https:///mcp" }, "host"},
		{"resource with port but no host", func(m *ProtectedResourceMetadata) { m.Resource = "https://:8443/mcp" }, "host"},
		{"resource with unspecified IPv6 address", func(m *ProtectedResourceMetadata) { m.Resource = "http://[::]:8080/mcp" }, "unspecified"},
		{"resource with unspecified IPv4 address", func(m *ProtectedResourceMetadata) { m.Resource = "http://0.0.0.0:8080/mcp" }, "unspecified"},
		// A WHATWG URL parser, as browsers and Node.js have it, reads a host
		// whose last label is a number as an IPv4 address.
		{"resource with host 0", func(m *ProtectedResourceMetadata) { m.Resource = "http://0:8080/mcp" }, "unspecified"},
		{"resource with host 0x0", func(m *ProtectedResourceMetadata) { m.Resource = "http://0x0:8080/mcp" }, "unspecified"},
		{"resource with host 0.0", func(m *ProtectedResourceMetadata) { m.Resource = "http://0.0:8080/mcp" }, "unspecified"},
		{"resource with host 00.0.0.0", func(m *ProtectedResourceMetadata) { m.Resource = "http://00.0.0.0:8080/mcp" }, "unspecified"},
		{"resource with host 0.0.0.0.", func(m *ProtectedResourceMetadata) { m.Resource = "http://0.0.0.0.:8080/mcp" }, "unspecified"},
		{"resource with IPv4 in another spelling", func(m *ProtectedResourceMetadata) { m.Resource = "http://127.1:8080/mcp" }, "dotted decimal"},
		{"resource with IPv4 as one number", func(m *ProtectedResourceMetadata) { m.Resource = "http://2130706433/mcp" }, "dotted decimal"},
		{"resource with a number as last label", func(m *ProtectedResourceMetadata) { m.Resource = "https://mcp.example.123/mcp" }, "IPv4"},
		{"resource with unspecified IPv6 address and zone", func(m *ProtectedResourceMetadata) { m.Resource = "http://[::%25lo]:8080/mcp" }, "unspecified"},
		{"resource with unspecified IPv4-mapped IPv6 address", func(m *ProtectedResourceMetadata) { m.Resource = "http://[::ffff:0.0.0.0]:8080/mcp" }, "unspecified"},
		{"resource with IPv6 zone", func(m *ProtectedResourceMetadata) { m.Resource = "http://[fe80::1%25eth0]:8080/mcp" }, "zone"},
		{"resource with empty port", func(m *ProtectedResourceMetadata) { m.Resource = "https://mcp.example.com:/mcp" }, "port"},
		{"resource with port 0", func(m *ProtectedResourceMetadata) { m.Resource = "https://mcp.example.com:0/mcp" }, "port"},
		{"resource with port just past 65535", func(m *ProtectedResourceMetadata) { m.Resource = "https://mcp.example.com:65536/mcp" }, "port"},
		{"resource with port 99999", func(m *ProtectedResourceMetadata) { m.Resource = "https://mcp.example.com:99999/mcp" }, "port"},
		{"authorization server with host 0", func(m *ProtectedResourceMetadata) { m.AuthorizationServers = []string{"https://0"} }, "unspecified"},
		{"authorization server with empty port", func(m *ProtectedResourceMetadata) { m.AuthorizationServers = []string{"https://auth.example.com:"} }, "port"},
		{"resource with fragment", func(m *ProtectedResourceMetadata) { m.Resource = "https://mcp.example.com/mcp#x" }, "fragment"},
		{"resource with empty fragment", func(m *ProtectedResourceMetadata) { m.Resource = "https://mcp.example.com/mcp#" }, "fragment"},
		{"resource with query", func(m *ProtectedResourceMetadata) { m.Resource = "https://mcp.example.com/mcp?tenant=a" }, "query"},
		{"resource with empty query", func(m *ProtectedResourceMetadata) { m.Resource = "https://mcp.example.com/mcp?" }, "query"},
		{"resource with userinfo", func(m *ProtectedResourceMetadata) { m.Resource = "https://user:s3cret@mcp.example.com/mcp" }, "userinfo"},
		{"resource with userinfo and bad port", func(m *ProtectedResourceMetadata) { m.Resource = "https://user:s3cret@mcp.example.com:port/mcp" }, "Resource"},
		{"resource the mux cannot route", func(m *ProtectedResourceMetadata) { m.Resource = "https://mcp.example.com/a/../mcp" }, "dot segment"},
		{"no authorization server", func(m *ProtectedResourceMetadata) { m.AuthorizationServers = nil }, "AuthorizationServers"},
		{"empty authorization server", func(m *ProtectedResourceMetadata) { m.AuthorizationServers = []string{""} }, "AuthorizationServers[0]"},
		{"authorization server over http", func(m *ProtectedResourceMetadata) {
			m.AuthorizationServers = []string{"https://a.example.com", "http://auth.example.com"}
		}, "AuthorizationServers[1]"},
		{"authorization server with userinfo", func(m *ProtectedResourceMetadata) {
			m.AuthorizationServers = []string{"https://client:s3cret@auth.example.com"}
		}, "userinfo"},
		{"authorization server with userinfo that does not parse", func(m *ProtectedResourceMetadata) {
			m.AuthorizationServers = []string{"https://client:s3cret@auth.example.com:port"}
		}, "AuthorizationServers[0]"},
		{"authorization server without scheme", func(m *ProtectedResourceMetadata) { m.AuthorizationServers = []string{"auth.example.com"} }, "AuthorizationServers[0]"},
		{"authorization server with javascript scheme", func(m *ProtectedResourceMetadata) {
			m.AuthorizationServers = []string{"javascript:alert(1)"}
		}, "AuthorizationServers[0]"},
		{"authorization server with query", func(m *ProtectedResourceMetadata) { m.AuthorizationServers = []string{"https://auth.example.com?x=1"} }, "query"},
		{"authorization server with fragment", func(m *ProtectedResourceMetadata) { m.AuthorizationServers = []string{"https://auth.example.com#x"} }, "fragment"},
		{"authorization server without host", func(m *ProtectedResourceMetadata) { m.AuthorizationServers = []string{"https:///realms/x"} }, "host"},
		{"empty scope", func(m *ProtectedResourceMetadata) { m.ScopesSupported = []string{"a", ""} }, "scope"},
		{"scope with space", func(m *ProtectedResourceMetadata) { m.ScopesSupported = []string{"a b"} }, "scope"},
		{"scope with quote", func(m *ProtectedResourceMetadata) { m.ScopesSupported = []string{`a"b`} }, "scope"},
		{"scope with backslash", func(m *ProtectedResourceMetadata) { m.ScopesSupported = []string{`a\b`} }, "scope"},
		{"scope with DEL", func(m *ProtectedResourceMetadata) { m.ScopesSupported = []string{"a\x7f"} }, "scope"},
		{"scope with non-ASCII", func(m *ProtectedResourceMetadata) { m.ScopesSupported = []string{"é"} }, "scope"},
		{"bearer method query", func(m *ProtectedResourceMetadata) { m.BearerMethodsSupported = []string{"header", "query"} }, "BearerMethodsSupported"},
		{"bearer method body", func(m *ProtectedResourceMetadata) { m.BearerMethodsSupported = []string{"body"} }, "BearerMethodsSupported"},
		{"no bearer method", func(m *ProtectedResourceMetadata) { m.BearerMethodsSupported = []string{} }, "BearerMethodsSupported"},
		{"jwks_uri over http", func(m *ProtectedResourceMetadata) { m.JWKSURI = "http://mcp.example.com/jwks" }, "JWKSURI"},
		{"jwks_uri with userinfo", func(m *ProtectedResourceMetadata) { m.JWKSURI = "https://u:s3cret@mcp.example.com/jwks" }, "userinfo"},
		{"documentation with javascript scheme", func(m *ProtectedResourceMetadata) { m.ResourceDocumentation = "javascript:alert(1)" }, "ResourceDocumentation"},
		{"policy relative", func(m *ProtectedResourceMetadata) { m.ResourcePolicyURI = "/policy" }, "ResourcePolicyURI"},
		{"terms of service with userinfo", func(m *ProtectedResourceMetadata) { m.ResourceTOSURI = "https://u:s3cret@mcp.example.com/tos" }, "userinfo"},
		{"signing alg none", func(m *ProtectedResourceMetadata) { m.ResourceSigningAlgValuesSupported = []string{"RS256", "none"} }, "ResourceSigningAlgValuesSupported[1]"},
		{"DPoP alg none", func(m *ProtectedResourceMetadata) { m.DPOPSigningAlgValuesSupported = []string{"none"} }, "DPOPSigningAlgValuesSupported[0]"},
		{"empty DPoP alg", func(m *ProtectedResourceMetadata) { m.DPOPSigningAlgValuesSupported = []string{""} }, "DPOPSigningAlgValuesSupported[0]"},
		{"empty authorization details type", func(m *ProtectedResourceMetadata) { m.AuthorizationDetailsTypesSupported = []string{""} }, "AuthorizationDetailsTypesSupported[0]"},
	}
	const root = "/.well-known/oauth-protected-resource"
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			m := validMetadata("https://mcp.example.com/mcp")
			tc.edit(&m)
			mux := http.NewServeMux()
			var got string
			var err error
			require.NotPanics(t, func() { got, err = HandleProtectedResourceMetadata(mux, m) })
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantErr)
			assert.True(t, strings.HasPrefix(err.Error(), "introspection: "), err.Error())
			assert.NotContains(t, err.Error(), "s3cret")
			assert.Empty(t, got)
			for _, p := range []string{root + "/mcp", root} {
				assert.Equal(t, http.StatusNotFound, serveMetadata(t, mux, http.MethodGet, "https://mcp.example.com"+p).Code, p)
			}
		})
	}

	good := []struct {
		name string
		edit func(m *ProtectedResourceMetadata)
	}{
		{"https everywhere", func(m *ProtectedResourceMetadata) {}},
		{"loopback authorization servers over http", func(m *ProtectedResourceMetadata) {
			m.AuthorizationServers = []string{"http://127.0.0.1:9000", "http://localhost:9000/realms/x", "http://[::1]:9000", "http://127.1.2.3"}
		}},
		{"resource over http", func(m *ProtectedResourceMetadata) { m.Resource = "http://mcp.internal:8080/mcp" }},
		{"resource on port 65535", func(m *ProtectedResourceMetadata) { m.Resource = "https://mcp.example.com:65535/mcp" }},
		{"resource on port 1", func(m *ProtectedResourceMetadata) { m.Resource = "https://mcp.example.com:1/mcp" }},
		{"resource on an IPv4 address", func(m *ProtectedResourceMetadata) { m.Resource = "http://192.0.2.1:8080/mcp" }},
		{"resource on an IPv6 address", func(m *ProtectedResourceMetadata) { m.Resource = "http://[2001:db8::1]:8080/mcp" }},
		{"resource on a host with digits", func(m *ProtectedResourceMetadata) { m.Resource = "https://mcp1.example.com/mcp" }},
		{"loopback jwks_uri over http", func(m *ProtectedResourceMetadata) { m.JWKSURI = "http://localhost:8080/jwks.json" }},
		{"resource in upper case", func(m *ProtectedResourceMetadata) { m.Resource = "HTTPS://MCP.EXAMPLE.COM/mcp" }},
		{"issuer with path", func(m *ProtectedResourceMetadata) {
			m.AuthorizationServers = []string{"https://example.okta.com/oauth2/default"}
		}},
		{"no scopes", func(m *ProtectedResourceMetadata) { m.ScopesSupported = nil }},
		{"every scope-token character", func(m *ProtectedResourceMetadata) {
			m.ScopesSupported = []string{"!#$%&'()*+,-./0123456789:;<=>?@AZ[]^_`az{|}~"}
		}},
		{"every field", func(m *ProtectedResourceMetadata) {
			m.JWKSURI = "https://mcp.example.com/jwks.json"
			m.BearerMethodsSupported = []string{"header"}
			m.ResourceSigningAlgValuesSupported = []string{"RS256", "ES256"}
			m.ResourceName = "Notes"
			m.ResourceDocumentation = "https://docs.example.com/mcp"
			m.ResourcePolicyURI = "https://example.com/policy"
			m.ResourceTOSURI = "http://example.com/tos"
			m.TLSClientCertificateBoundAccessTokens = true
			m.AuthorizationDetailsTypesSupported = []string{"payment_initiation"}
			m.DPOPSigningAlgValuesSupported = []string{"ES256"}
			m.DPOPBoundAccessTokensRequired = true
		}},
	}
	for _, tc := range good {
		t.Run(tc.name, func(t *testing.T) {
			m := validMetadata("https://mcp.example.com/mcp")
			tc.edit(&m)
			mux := http.NewServeMux()
			got, err := HandleProtectedResourceMetadata(mux, m)
			require.NoError(t, err)
			want, err := MetadataURL(m.Resource)
			require.NoError(t, err)
			assert.Equal(t, want, got)
			doc := metadataDocument(t, mux, got)
			assert.Equal(t, m.Resource, doc["resource"])
		})
	}
}

// TestHandleProtectedResourceMetadataRouteTaken checks that a route the
// mux already serves, or that the mux would refuse, is an error rather
// than a panic: two resources on one mux cannot both have the root
// well-known URL, so the second call fails; and that a failed call leaves
// nothing of its own served, while the first resource's metadata stays.
func TestHandleProtectedResourceMetadataRouteTaken(t *testing.T) {
	const root = "/.well-known/oauth-protected-resource"
	noop := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("theirs")) })
	tests := []struct {
		name     string
		setup    func(t *testing.T, mux *http.ServeMux)
		resource string
		wantErr  string   // empty: accepted
		notOurs  []string // paths that must not serve this resource's document
	}{
		{"second resource wants the root", func(t *testing.T, mux *http.ServeMux) {
			_, err := HandleProtectedResourceMetadata(mux, validMetadata("https://mcp.example.com/a"))
			require.NoError(t, err)
		}, "https://mcp.example.com/b", root, []string{root + "/b", root}},
		{"same resource twice", func(t *testing.T, mux *http.ServeMux) {
			_, err := HandleProtectedResourceMetadata(mux, validMetadata("https://mcp.example.com/mcp"))
			require.NoError(t, err)
		}, "https://mcp.example.com/mcp", "already", nil},
		{"root resource, then one with a path", func(t *testing.T, mux *http.ServeMux) {
			_, err := HandleProtectedResourceMetadata(mux, validMetadata("https://mcp.example.com"))
			require.NoError(t, err)
		}, "https://mcp.example.com/mcp", root, []string{root + "/mcp", root}},
		{"a GET pattern for the root", func(t *testing.T, mux *http.ServeMux) {
			mux.Handle("GET "+root, noop)
		}, "https://mcp.example.com/mcp", root, []string{root + "/mcp", root}},
		{"a pattern for the path on the resource's host", func(t *testing.T, mux *http.ServeMux) {
			mux.Handle("mcp.example.com"+root+"/mcp", noop)
		}, "https://mcp.example.com/mcp", root + "/mcp", []string{root + "/mcp", root}},
		{"a catch-all on the resource's host, which the mux prefers", func(t *testing.T, mux *http.ServeMux) {
			mux.Handle("mcp.example.com/", noop)
		}, "https://mcp.example.com/mcp", `"mcp.example.com/"`, []string{root + "/mcp", root}},
		{"a catch-all on the resource's host as the resource writes it", func(t *testing.T, mux *http.ServeMux) {
			mux.Handle("MCP.Example.com/", noop)
		}, "https://MCP.Example.com/mcp", `"MCP.Example.com/"`, []string{root + "/mcp", root}},
		{"a GET catch-all the mux would find in conflict", func(t *testing.T, mux *http.ServeMux) {
			mux.Handle("GET /", noop)
		}, "https://mcp.example.com/mcp", "GET /", []string{root + "/mcp", root}},
		{"a POST wildcard that conflicts with the root only", func(t *testing.T, mux *http.ServeMux) {
			mux.Handle("POST /.well-known/{x}", noop)
		}, "https://mcp.example.com/mcp", "conflicts", []string{root + "/mcp", root}},
		{"a subtree above, less specific", func(t *testing.T, mux *http.ServeMux) {
			mux.Handle("/.well-known/", noop)
		}, "https://mcp.example.com/mcp", "", nil},
		{"a GET pattern for the path with a trailing slash", func(t *testing.T, mux *http.ServeMux) {
			mux.Handle("GET "+root+"/mcp/", noop)
		}, "https://mcp.example.com/mcp", "", nil},
		{"a pattern for the path with a trailing slash on the resource's host", func(t *testing.T, mux *http.ServeMux) {
			mux.Handle("mcp.example.com"+root+"/mcp/", noop)
		}, "https://mcp.example.com/mcp", "", nil},
		{"a pattern on another host", func(t *testing.T, mux *http.ServeMux) {
			mux.Handle("other.example.com"+root, noop)
		}, "https://mcp.example.com/mcp", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mux := http.NewServeMux()
			tc.setup(t, mux)
			before := map[string]string{}
			for _, p := range []string{root, root + "/a", root + "/mcp"} {
				w := serveMetadata(t, mux, http.MethodGet, "https://mcp.example.com"+p)
				before[p] = w.Body.String()
			}
			m := validMetadata(tc.resource)
			var got string
			var err error
			require.NotPanics(t, func() { got, err = HandleProtectedResourceMetadata(mux, m) })
			if tc.wantErr == "" {
				require.NoError(t, err)
				for _, p := range []string{root + "/mcp", root} {
					doc := metadataDocument(t, mux, "https://mcp.example.com"+p)
					assert.Equal(t, tc.resource, doc["resource"], p)
				}
				return
			}
			require.Error(t, err)
			assert.Empty(t, got)
			assert.Contains(t, err.Error(), tc.wantErr)
			assert.True(t, strings.HasPrefix(err.Error(), "introspection: "), err.Error())
			for _, p := range tc.notOurs {
				w := serveMetadata(t, mux, http.MethodGet, "https://mcp.example.com"+p)
				assert.NotContains(t, w.Body.String(), `"resource":"`+tc.resource+`"`, p)
			}
			for p, body := range before {
				w := serveMetadata(t, mux, http.MethodGet, "https://mcp.example.com"+p)
				assert.Equal(t, body, w.Body.String(), "what the mux served before is served still: %s", p)
			}
		})
	}

	_, err := HandleProtectedResourceMetadata(nil, validMetadata("https://mcp.example.com/mcp"))
	assert.ErrorContains(t, err, "introspection: ")
}

func TestProtectedResourceMetadata(t *testing.T) {
	h := ProtectedResourceMetadataHandler(ProtectedResourceMetadata{
		Resource:             "https://mcp.example.com/mcp",
		AuthorizationServers: []string{"https://as.example.com"},
		ScopesSupported:      []string{"tools"},
	})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/.well-known/oauth-protected-resource/mcp", nil))
	require.Equal(t, 200, w.Code)
	assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
	var got map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &got))
	assert.Equal(t, map[string]any{
		"resource":                 "https://mcp.example.com/mcp",
		"authorization_servers":    []any{"https://as.example.com"},
		"scopes_supported":         []any{"tools"},
		"bearer_methods_supported": []any{"header"},
	}, got)

	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/", nil))
	assert.Equal(t, http.StatusMethodNotAllowed, w.Code)
}

func TestMetadataURL(t *testing.T) {
	tests := []struct{ in, want, wantErr string }{
		{"https://mcp.example.com", "https://mcp.example.com/.well-known/oauth-protected-resource", ""},
		{"https://mcp.example.com/", "https://mcp.example.com/.well-known/oauth-protected-resource", ""},
		{"https://mcp.example.com/mcp", "https://mcp.example.com/.well-known/oauth-protected-resource/mcp", ""},
		{"http://127.0.0.1:8080/a/b?x=1", "http://127.0.0.1:8080/.well-known/oauth-protected-resource/a/b", ""},
		{"/mcp", "", "not an absolute URL"},
	}
	for _, tc := range tests {
		got, err := MetadataURL(tc.in)
		if tc.wantErr != "" {
			assert.ErrorContains(t, err, tc.wantErr)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, tc.want, got)
	}
}

// TestProtectedResourceMetadataAnswersPreflight checks that the metadata
// handler, serving a public document, answers CORS preflights and allows
// every origin.
func TestProtectedResourceMetadataAnswersPreflight(t *testing.T) {
	h := ProtectedResourceMetadataHandler(ProtectedResourceMetadata{Resource: "https://mcp.example.com/mcp"})
	tests := []struct {
		name        string
		method      string
		header      http.Header
		wantStatus  int
		wantHeaders map[string]string
	}{
		{"preflight", http.MethodOptions, http.Header{
			"Origin": {"https://app.example"}, "Access-Control-Request-Method": {"GET"},
			"Access-Control-Request-Headers": {"mcp-protocol-version"},
		}, 204, map[string]string{
			"Access-Control-Allow-Origin":  "*",
			"Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
			"Access-Control-Allow-Headers": "mcp-protocol-version",
			"Allow":                        "GET, HEAD, OPTIONS",
		}},
		{"preflight asking for odd headers", http.MethodOptions, http.Header{
			"Origin": {"https://app.example"}, "Access-Control-Request-Method": {"GET"},
			"Access-Control-Request-Headers": {"x-a, x\"b\r\nset-cookie: c"},
		}, 204, map[string]string{
			"Access-Control-Allow-Origin":  "*",
			"Access-Control-Allow-Headers": "x-a, xbset-cookie c",
		}},
		{"plain OPTIONS", http.MethodOptions, nil, 204, map[string]string{
			"Allow": "GET, HEAD, OPTIONS", "Access-Control-Allow-Origin": "*",
		}},
		{"cross-origin GET", http.MethodGet, http.Header{"Origin": {"https://app.example"}}, 200, map[string]string{
			"Access-Control-Allow-Origin": "*", "Content-Type": "application/json",
		}},
		{"HEAD", http.MethodHead, nil, 200, map[string]string{
			"Access-Control-Allow-Origin": "*", "Content-Type": "application/json",
		}},
		{"POST", http.MethodPost, nil, 405, map[string]string{"Allow": "GET, HEAD, OPTIONS"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/.well-known/oauth-protected-resource/mcp", nil)
			for k, vals := range tc.header {
				r.Header[k] = vals
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			assert.Equal(t, tc.wantStatus, w.Code)
			for k, want := range tc.wantHeaders {
				assert.Equal(t, want, w.Header().Get(k), k)
			}
			if tc.method == http.MethodOptions {
				assert.Empty(t, w.Body.String())
			}
		})
	}
}

// TestMetadataURLKeepsEscapedPathDropsUserinfo checks that MetadataURL
// keeps the resource's path exactly as escaped, drops credentials written
// into the URL and never repeats them in an error.
func TestMetadataURLKeepsEscapedPathDropsUserinfo(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://mcp.example.com/a%2Fb", "https://mcp.example.com/.well-known/oauth-protected-resource/a%2Fb"},
		{"https://mcp.example.com/a%2Fb/", "https://mcp.example.com/.well-known/oauth-protected-resource/a%2Fb"},
		{"https://mcp.example.com/%7euser/mcp", "https://mcp.example.com/.well-known/oauth-protected-resource/%7euser/mcp"},
		{"https://mcp.example.com/t%C3%A9st", "https://mcp.example.com/.well-known/oauth-protected-resource/t%C3%A9st"},
		{"https://mcp.example.com/a%20b", "https://mcp.example.com/.well-known/oauth-protected-resource/a%20b"},
		{"https://user:s3cret@mcp.example.com/mcp", "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"},
		{"https://user@mcp.example.com:8443/mcp#frag", "https://mcp.example.com:8443/.well-known/oauth-protected-resource/mcp"},
	}
	for _, tc := range tests {
		got, err := MetadataURL(tc.in)
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
	}
	for _, bad := range []string{"//user:s3cret@/mcp", "https://user:s3cret@mcp.example.com:port/mcp", "user:s3cret@mcp"} {
		_, err := MetadataURL(bad)
		require.Error(t, err, bad)
		assert.NotContains(t, err.Error(), "s3cret", bad)
		assert.True(t, strings.HasPrefix(err.Error(), "introspection: "), err.Error())
	}
}

// TestWHATWGIPv4ReadsHostsAsClientsDo: whatwgIPv4 takes a host for an IPv4
// address, and reads it, as a WHATWG URL parser does. want is what
// new URL("http://"+host+"/").hostname gave in Node.js v20.20.2: an address, a
// domain (the host itself) or a failure ("").
func TestWHATWGIPv4ReadsHostsAsClientsDo(t *testing.T) {
	tests := []struct{ host, want string }{
		{"0", "0.0.0.0"},
		{"0x", "0.0.0.0"},
		{"0X0", "0.0.0.0"},
		{"00.0.0.0", "0.0.0.0"},
		{"0.0.0.0.", "0.0.0.0"},
		{"0x7f.1", "127.0.0.1"},
		{"127.1", "127.0.0.1"},
		{"0300.0250.1.1", "192.168.1.1"},
		{"1.0x", "1.0.0.0"},
		{"1.2.3.4.", "1.2.3.4"},
		{"4294967295", "255.255.255.255"},
		{"4294967296", ""},
		{"999999999999999999999", ""},
		{"1.2.3.4.5", ""},
		{"256.0.0.1", ""},
		{"1.2.3.256", ""},
		{"foo.09", ""},
		{"a.b.0x", ""},
		{"1..2", ""},
		{"example.com", "example.com"},
		{"mcp1.example.com", "mcp1.example.com"},
		{"1.2.3.4..", "1.2.3.4.."},
	}
	for _, tc := range tests {
		t.Run(tc.host, func(t *testing.T) {
			a, numeric, ok := whatwgIPv4(tc.host)
			switch tc.want {
			case "":
				assert.True(t, numeric, "not taken for an address")
				assert.False(t, ok, "read as %s", a)
			case tc.host:
				assert.False(t, numeric, "taken for an address")
			default:
				assert.True(t, numeric, "not taken for an address")
				require.True(t, ok, "not read")
				assert.Equal(t, tc.want, a.String())
			}
		})
	}
}
