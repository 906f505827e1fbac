package introspection

import (
	"slices"
	"time"
)

// AccessToken is a token that [Verifier.Verify] accepted, with what the
// authorization server said about it. Each call returns a fresh value that
// the caller owns and may change.
type AccessToken struct {
	// Token is the bearer token as presented.
	Token string
	// ClientID is the client_id member, else sub, else "unknown".
	ClientID string
	// Subject is the sub member: the resource owner, if any.
	Subject string
	// Username is the username member.
	Username string
	// Issuer is the iss member.
	Issuer string
	// TokenType is the token_type member, such as "Bearer".
	TokenType string
	// Scopes are the granted scopes, from scope (or scp).
	Scopes []string
	// Audience is the aud member as a list.
	Audience []string
	// ExpiresAt, IssuedAt and NotBefore are exp, iat and nbf; zero when the
	// server sent none.
	ExpiresAt time.Time
	IssuedAt  time.Time
	NotBefore time.Time
	// Claims is the whole introspection response, as decoded by
	// encoding/json (numbers are float64).
	Claims map[string]any
}

// HasScope reports whether scope was granted to the token.
func (t *AccessToken) HasScope(scope string) bool {
	return slices.Contains(t.Scopes, scope)
}

// String returns a description of t without the token.
func (t *AccessToken) String() string {
	if t == nil {
		return "<nil>"
	}
	return "introspection.AccessToken{ClientID:" + t.ClientID + " Subject:" + t.Subject + " Token:REDACTED}"
}

// accessToken builds the caller's AccessToken from a. With deep set it
// copies a's slices and claims, so that nothing the caller changes reaches a
// shared or cached answer; without, a must not be used again.
func (a *answer) accessToken(token string, deep bool) *AccessToken {
	clientID := a.clientID
	if clientID == "" {
		clientID = a.subject
	}
	if clientID == "" {
		clientID = "unknown"
	}
	t := &AccessToken{
		Token:     token,
		ClientID:  clientID,
		Subject:   a.subject,
		Username:  a.username,
		Issuer:    a.issuer,
		TokenType: a.tokenType,
		Scopes:    a.scopes,
		Audience:  a.audience,
		ExpiresAt: a.expiresAt,
		IssuedAt:  a.issuedAt,
		NotBefore: a.notBefore,
		Claims:    a.claims,
	}
	if deep {
		t.Scopes = slices.Clone(a.scopes)
		t.Audience = slices.Clone(a.audience)
		t.Claims = a.claimsCopy()
	}
	return t
}

// copyClaims deep-copies a decoded JSON object. Strings, numbers, booleans
// and nil are immutable and shared; objects and arrays are copied.
func copyClaims(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = copyJSON(v)
	}
	return out
}

func copyJSON(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return copyClaims(v)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = copyJSON(e)
		}
		return out
	default:
		return v
	}
}
