package introspectiontest

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// tokenLifetime is the lifetime of tokens from the token endpoint.
const tokenLifetime = time.Hour

// offlineAccess is the scope that asks for a refresh token, which the
// server never issues.
const offlineAccess = "offline_access"

// token serves the token endpoint: the client_credentials grant (RFC 6749
// §4.4) for any registered client, by any accepted authentication method.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	status, body := s.grant(r)
	s.setAnswerHeaders(w, r, status)
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, status, body)
}

// grant authenticates the client and issues a token: its subject and
// client_id are the client, its scopes those asked for, its audience the
// RFC 8707 resource indicators.
func (s *Server) grant(r *http.Request) (int, map[string]any) {
	if f := readForm(r); f != nil {
		return f.answer()
	}
	id, f := s.authenticate(r)
	if f != nil {
		return f.answer()
	}
	form := r.PostForm
	for _, p := range []string{"grant_type", "scope"} {
		if len(form[p]) > 1 {
			return http.StatusBadRequest, oauthError("invalid_request", "parameter "+p+" is repeated")
		}
	}
	switch gt := form.Get("grant_type"); gt {
	case "":
		return http.StatusBadRequest, oauthError("invalid_request", "grant_type is required")
	case "client_credentials":
	default:
		return http.StatusBadRequest, oauthError("unsupported_grant_type", "the server grants client_credentials only")
	}
	scopes, f := s.grantScopes(form.Get("scope"))
	if f != nil {
		return f.answer()
	}
	resources := form["resource"]
	for _, res := range resources {
		u, err := url.Parse(res)
		if err != nil || !u.IsAbs() || strings.Contains(res, "#") {
			return http.StatusBadRequest, oauthError("invalid_target", "resource must be an absolute URI without a fragment (RFC 8707 §2)")
		}
	}
	tok := s.Issue(TokenOptions{ClientID: id, Subject: id, Scopes: scopes, Audience: slices.Clone(resources), Lifetime: tokenLifetime})
	out := map[string]any{
		"access_token": tok,
		"token_type":   "Bearer",
		"expires_in":   int64(tokenLifetime / time.Second),
	}
	if len(scopes) > 0 {
		out["scope"] = strings.Join(scopes, " ")
	}
	return http.StatusOK, out
}

// grantScopes returns the scopes of a scope parameter, each once, or
// invalid_scope for a malformed one, offline_access, or one SetScopes did
// not list.
func (s *Server) grantScopes(param string) ([]string, *failure) {
	s.mu.Lock()
	known := s.scopes
	s.mu.Unlock()
	var scopes []string
	for _, sc := range strings.Split(param, " ") {
		switch {
		case sc == "" || slices.Contains(scopes, sc):
			continue
		case !validScopeToken(sc):
			return nil, &failure{http.StatusBadRequest, "invalid_scope", "scope is malformed (RFC 6749 §3.3)"}
		case sc == offlineAccess:
			return nil, &failure{http.StatusBadRequest, "invalid_scope", "the server issues no refresh tokens"}
		case known != nil && !slices.Contains(known, sc):
			return nil, &failure{http.StatusBadRequest, "invalid_scope", "scope " + strconvQuote(sc) + " is not supported"}
		}
		scopes = append(scopes, sc)
	}
	return scopes, nil
}

// validScopeToken reports whether s is an RFC 6749 §3.3 scope-token:
// 1*( %x21 / %x23-5B / %x5D-7E ).
func validScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
