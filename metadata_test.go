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
