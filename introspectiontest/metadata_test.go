package introspectiontest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func getJSON(t *testing.T, u string) (*http.Response, map[string]any) {
	t.Helper()
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return resp, body
}

func TestMetadataDocuments(t *testing.T) {
	allMethods := []any{"client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt"}
	allAlgs := []any{"HS256", "RS256", "PS256", "ES256", "ES384", "EdDSA"}
	oauth := func(s *Server) map[string]any {
		return map[string]any{
			"issuer":                                                   s.Issuer,
			"authorization_endpoint":                                   s.URL + authorizationPath,
			"token_endpoint":                                           s.TokenURL,
			"introspection_endpoint":                                   s.IntrospectionURL,
			"token_endpoint_auth_methods_supported":                    allMethods,
			"introspection_endpoint_auth_methods_supported":            allMethods,
			"token_endpoint_auth_signing_alg_values_supported":         allAlgs,
			"introspection_endpoint_auth_signing_alg_values_supported": allAlgs,
			"grant_types_supported":                                    []any{"client_credentials"},
			"response_types_supported":                                 []any{},
		}
	}
	openid := func(s *Server) map[string]any {
		m := oauth(s)
		m["jwks_uri"] = s.URL + jwksPath
		m["subject_types_supported"] = []any{"public"}
		m["id_token_signing_alg_values_supported"] = []any{"RS256"}
		return m
	}
	tests := []struct {
		name  string
		setup func(s *Server)
		edit  func(s *Server, m map[string]any)
	}{
		{name: "default"},
		{name: "Basic and post only", setup: func(s *Server) { s.SetAuthMethods("client_secret_post", "client_secret_basic") },
			edit: func(s *Server, m map[string]any) {
				for _, e := range []string{"token", "introspection"} {
					m[e+"_endpoint_auth_methods_supported"] = []any{"client_secret_post", "client_secret_basic"}
					delete(m, e+"_endpoint_auth_signing_alg_values_supported")
				}
			}},
		{name: "private_key_jwt only", setup: func(s *Server) { s.SetAuthMethods("private_key_jwt", "private_key_jwt") },
			edit: func(s *Server, m map[string]any) {
				for _, e := range []string{"token", "introspection"} {
					m[e+"_endpoint_auth_methods_supported"] = []any{"private_key_jwt"}
					m[e+"_endpoint_auth_signing_alg_values_supported"] = []any{"RS256", "PS256", "ES256", "ES384", "EdDSA"}
				}
			}},
		{name: "client_secret_jwt only", setup: func(s *Server) { s.SetAuthMethods("client_secret_jwt") },
			edit: func(s *Server, m map[string]any) {
				for _, e := range []string{"token", "introspection"} {
					m[e+"_endpoint_auth_methods_supported"] = []any{"client_secret_jwt"}
					m[e+"_endpoint_auth_signing_alg_values_supported"] = []any{"HS256"}
				}
			}},
		{name: "scopes", setup: func(s *Server) { s.SetScopes("mcp:tools", "mcp:echo") },
			edit: func(s *Server, m map[string]any) { m["scopes_supported"] = []any{"mcp:tools", "mcp:echo"} }},
		{name: "issuer changed by the test", setup: func(s *Server) { s.Issuer = "https://issuer.example" },
			edit: func(s *Server, m map[string]any) { m["issuer"] = "https://issuer.example" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewServer()
			defer s.Close()
			if tc.setup != nil {
				tc.setup(s)
			}
			for i, doc := range []struct {
				path string
				want func(*Server) map[string]any
			}{{MetadataPath, oauth}, {OpenIDMetadataPath, openid}} {
				want := doc.want(s)
				if tc.edit != nil {
					tc.edit(s, want)
				}
				resp, body := getJSON(t, s.URL+doc.path)
				assert.Equal(t, http.StatusOK, resp.StatusCode, doc.path)
				assert.Equal(t, "application/json", resp.Header.Get("Content-Type"), doc.path)
				assert.Equal(t, want, body, doc.path)
				assert.Equal(t, int64(i+1), s.MetadataRequests())
			}
			assert.Zero(t, s.Requests(), "metadata requests are not introspection requests")
		})
	}
}

// TestMetadataNeverListsOfflineAccess holds the promise that the server
// never advertises offline_access: it issues no refresh tokens, and MCP
// clients ask for them when the metadata lists that scope.
func TestMetadataNeverListsOfflineAccess(t *testing.T) {
	s := NewServer()
	defer s.Close()
	assert.Panics(t, func() { s.SetScopes("mcp:tools", "offline_access") })
	_, body := getJSON(t, s.URL+MetadataPath)
	assert.NotContains(t, body, "scopes_supported")
}

func TestMetadataEndpointsAnswerGETOnly(t *testing.T) {
	s := NewServer()
	defer s.Close()
	for _, path := range []string{MetadataPath, OpenIDMetadataPath} {
		resp, err := http.Post(s.URL+path, "application/json", strings.NewReader("{}"))
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, path)
		assert.Equal(t, "GET, HEAD", resp.Header.Get("Allow"), path)
	}
	assert.Equal(t, int64(2), s.MetadataRequests(), "every request to the paths counts")
}

// TestDiscoveryLinks shows that the endpoints the metadata names answer:
// the authorization endpoint refuses every response type (none is
// supported), and the key set is empty.
func TestDiscoveryLinks(t *testing.T) {
	s := NewServer()
	defer s.Close()
	_, md := getJSON(t, s.URL+OpenIDMetadataPath)

	resp, body := getJSON(t, md["authorization_endpoint"].(string)+"?response_type=code&client_id=x")
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Equal(t, "unsupported_response_type", body["error"])

	resp, body = getJSON(t, md["jwks_uri"].(string))
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, map[string]any{"keys": []any{}}, body)
}
