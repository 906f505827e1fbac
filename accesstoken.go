package introspection

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// AccessToken is a token that [Verifier.Verify] accepted, with what the
// authorization server said about it. Each call returns a fresh value that
// the caller owns and may change.
type AccessToken struct {
	// Token is the bearer token as presented. It is left out of JSON;
	// Claims, which is what the server sent, is not filtered, so a server
	// that repeats the token in its answer has it marshalled there. fmt and
	// log/slog output of an AccessToken hides it everywhere.
	Token string `json:"-"`
	// ClientID is the client_id member, else sub, else "unknown".
	ClientID string `json:"client_id"`
	// Subject is the sub member: the resource owner, if any.
	Subject string `json:"sub,omitempty"`
	// Username is the username member.
	Username string `json:"username,omitempty"`
	// Issuer is the iss member.
	Issuer string `json:"iss,omitempty"`
	// TokenType is the token_type member, such as "Bearer".
	TokenType string `json:"token_type,omitempty"`
	// Scopes are the granted scopes, from scope (or scp).
	Scopes []string `json:"scopes,omitempty"`
	// Audience is the aud member as a list.
	Audience []string `json:"aud,omitempty"`
	// ExpiresAt, IssuedAt and NotBefore are exp, iat and nbf; zero when the
	// server sent none.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	IssuedAt  time.Time `json:"issued_at,omitzero"`
	NotBefore time.Time `json:"not_before,omitzero"`
	// Claims is the whole introspection response, as decoded by
	// encoding/json (numbers are float64).
	Claims map[string]any `json:"claims,omitempty"`
	// Stale reports that the verdict came from an answer past its cache
	// entry's end, used because the authorization server could not answer
	// (see Settings.StaleIfError). A handler may refuse stale tokens for
	// sensitive operations.
	Stale bool `json:"-"`
}

// HasScope reports whether scope was granted to the token exactly, as
// written: it knows no scope hierarchy. To check a scope under
// Settings.ScopeMatcher, so that a broader granted scope counts, use
// [Verifier.CheckScopes]. It is false for a nil t.
func (t *AccessToken) HasScope(scope string) bool {
	return t != nil && slices.Contains(t.Scopes, scope)
}

// Caller returns the party t speaks for, to bind sessions and per-caller
// state to: the subject (sub), or, for a token without one and without a
// username, such as a client-credentials token where the client acts for
// itself, the client_id the authorization server named. It is empty, so
// that no one is served as the caller, when:
//   - the answer names a user by username but has no sub: the token is a
//     user's, and its client_id, which every user of that client shares,
//     would make them all one caller;
//   - the answer names neither sub nor client_id: never the "unknown" that
//     ClientID falls back to, so that tokens of unnamed parties do not
//     share one identity;
//   - t is nil.
//
// Subjects and client ids share one namespace here: a client whose
// client_id equals a user's sub at the same issuer is that user.
func (t *AccessToken) Caller() string {
	switch {
	case t == nil:
		return ""
	case t.Subject != "":
		return t.Subject
	case t.Username != "":
		return ""
	}
	id, _ := t.Claims["client_id"].(string)
	return id
}

// CallerWithIssuer returns the issuer, "|" and [AccessToken.Caller]: a
// caller id that tells one subject of two issuers apart, for servers that
// trust several. It is empty when Caller is, and when the issuer is empty
// or holds a "|", which would let two ids read alike.
func (t *AccessToken) CallerWithIssuer() string {
	caller := t.Caller()
	if caller == "" || t.Issuer == "" || strings.Contains(t.Issuer, "|") {
		return ""
	}
	return t.Issuer + "|" + caller
}

// String returns a description of t without the token, also where the
// authorization server's answer repeats it. It ends in " Stale:true" for
// a token served stale.
func (t *AccessToken) String() string {
	if t == nil {
		return "<nil>"
	}
	stale := ""
	if t.Stale {
		stale = " Stale:true"
	}
	return scrub("introspection.AccessToken{ClientID:"+t.ClientID+" Subject:"+t.Subject+" Token:REDACTED"+stale+"}", t.Token)
}

// accessTokenFields has the fields of AccessToken and none of its methods,
// for printing them.
type accessTokenFields AccessToken

// Format implements [fmt.Formatter] so that no verb prints the token, for an
// AccessToken value as for a pointer: %+v and %#v print every field with
// Token shown as REDACTED, and the token REDACTED where Claims or another
// field repeats it; every other verb prints [AccessToken.String].
func (t AccessToken) Format(f fmt.State, verb rune) {
	c := accessTokenFields(t)
	if c.Token != "" {
		c.Token = redacted
	}
	switch {
	case verb == 'v' && f.Flag('#'):
		s := fmt.Sprintf("%#v", c)
		fmt.Fprint(f, scrub("introspection.AccessToken"+strings.TrimPrefix(s, "introspection.accessTokenFields"), t.Token))
	case verb == 'v' && f.Flag('+'):
		fmt.Fprint(f, scrub(fmt.Sprintf("%+v", c), t.Token))
	default:
		fmt.Fprint(f, t.String())
	}
}

// LogValue implements [slog.LogValuer]: the client, subject, username,
// issuer, token type, scopes, audience and expiry of t, and stale=true for
// a token served stale, without the token (REDACTED where one of them
// repeats it) and without Claims.
func (t *AccessToken) LogValue() slog.Value {
	if t == nil {
		return slog.StringValue("<nil>")
	}
	hide := func(s string) string { return scrub(s, t.Token) }
	hideAll := func(list []string) []string {
		out := make([]string, len(list))
		for i, s := range list {
			out[i] = hide(s)
		}
		return out
	}
	attrs := make([]slog.Attr, 0, 9)
	attrs = append(attrs, slog.String("client_id", hide(t.ClientID)))
	for _, a := range [...]struct{ key, value string }{
		{"sub", t.Subject}, {"username", t.Username}, {"iss", t.Issuer}, {"token_type", t.TokenType},
	} {
		if a.value != "" {
			attrs = append(attrs, slog.String(a.key, hide(a.value)))
		}
	}
	if t.Scopes != nil {
		attrs = append(attrs, slog.Any("scopes", hideAll(t.Scopes)))
	}
	if t.Audience != nil {
		attrs = append(attrs, slog.Any("aud", hideAll(t.Audience)))
	}
	if !t.ExpiresAt.IsZero() {
		attrs = append(attrs, slog.Time("expires_at", t.ExpiresAt))
	}
	if t.Stale {
		attrs = append(attrs, slog.Bool("stale", true))
	}
	return slog.GroupValue(attrs...)
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
