package introspectiontest

import (
	"encoding/json"
	"net/http"
	"slices"
)

// Paths of the endpoints the metadata names for the clients that look for
// them, though the server grants no response type and signs no ID token.
const (
	// authorizationPath is the authorization endpoint: RFC 8414 §2 may
	// leave it out when no grant type uses it, but MCP clients (the
	// TypeScript SDK) refuse metadata without one. It refuses every
	// request with unsupported_response_type.
	authorizationPath = "/authorize"
	// jwksPath is the jwks_uri OpenID Connect Discovery 1.0 §3 requires;
	// the key set is empty.
	jwksPath = "/jwks"
)

// SetScopes sets the scopes the token endpoint grants and the metadata
// lists as scopes_supported. A token request for any other scope gets
// invalid_scope. With no scopes (as at the start), any well-formed scope
// is granted and scopes_supported is left out. offline_access panics: the
// server issues no refresh tokens, and MCP clients ask for one when the
// metadata lists that scope.
func (s *Server) SetScopes(scopes ...string) {
	if slices.Contains(scopes, offlineAccess) {
		panic("introspectiontest: SetScopes: offline_access asks for refresh tokens, which the server does not issue")
	}
	for _, sc := range scopes {
		if !validScopeToken(sc) {
			panic("introspectiontest: SetScopes: " + strconvQuote(sc) + " is not an RFC 6749 §3.3 scope token")
		}
	}
	var list []string
	if len(scopes) > 0 {
		list = slices.Clone(scopes)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scopes = list
}

// metadata serves the RFC 8414 §2 document, or with openid the OpenID
// Connect Discovery 1.0 §3 one, which adds the members that specification
// requires.
func (s *Server) metadata(openid bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.metadataRequests.Add(1)
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSON(w, http.StatusMethodNotAllowed, oauthError("invalid_request", "use GET"))
			return
		}
		s.mu.Lock()
		methods := slices.Clone(s.acceptedMethods())
		scopes := slices.Clone(s.scopes)
		issuer := s.Issuer
		s.mu.Unlock()
		doc := map[string]any{
			"issuer":                                        issuer,
			"authorization_endpoint":                        s.URL + authorizationPath,
			"token_endpoint":                                s.TokenURL,
			"introspection_endpoint":                        s.IntrospectionURL,
			"token_endpoint_auth_methods_supported":         methods,
			"introspection_endpoint_auth_methods_supported": methods,
			"grant_types_supported":                         []string{"client_credentials"},
			"response_types_supported":                      []string{},
		}
		var algs []string
		if slices.Contains(methods, methodSecretJWT) {
			algs = append(algs, secretAlg)
		}
		if slices.Contains(methods, methodKeyJWT) {
			algs = append(algs, keyAlgList...)
		}
		// RFC 8414 §2: present when a JWT method is listed, never none.
		if len(algs) > 0 {
			doc["token_endpoint_auth_signing_alg_values_supported"] = algs
			doc["introspection_endpoint_auth_signing_alg_values_supported"] = algs
		}
		if len(scopes) > 0 {
			doc["scopes_supported"] = scopes
		}
		if openid {
			doc["jwks_uri"] = s.URL + jwksPath
			doc["subject_types_supported"] = []string{"public"}
			// RS256 must be listed (OpenID Connect Discovery 1.0 §3); no
			// ID token is ever issued.
			doc["id_token_signing_alg_values_supported"] = []string{"RS256"}
		}
		writeJSON(w, http.StatusOK, doc)
	}
}

// authorize refuses every authorization request: the server supports no
// response type. With no registered redirect URI it answers the user
// agent directly (RFC 6749 §4.1.2.1).
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusBadRequest, oauthError("unsupported_response_type", "the server grants client_credentials only"))
}

// jwks serves the empty key set.
func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"keys": []any{}})
}

// writeJSON writes body as JSON with status.
func writeJSON(w http.ResponseWriter, status int, body any) {
	raw, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(raw)
}
