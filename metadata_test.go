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
// and left out when empty (except resource), and that the handler serves
// every one of them when set.
func TestProtectedResourceMetadataHasEveryRFC9728Field(t *testing.T) {
	typ := reflect.TypeFor[ProtectedResourceMetadata]()
	var names []string
	for i := range typ.NumField() {
		name, opts, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		names = append(names, name)
		if name == "resource" {
			assert.Empty(t, opts, "resource is required (RFC 9728 §2), never omitted")
		} else {
			assert.Equal(t, "omitempty", opts, name)
		}
	}
	assert.Equal(t, rfc9728Fields, names)

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
