// Package mcpsdk connects an [introspection.Verifier] to the official Go MCP
// SDK's bearer-token middleware, github.com/modelcontextprotocol/go-sdk/auth.
//
//	v, err := introspection.NewVerifier(settings)
//	if err != nil {
//		return err
//	}
//	defer v.Close()
//	handler := mcpsdk.RequireBearerToken(v, &auth.RequireBearerTokenOptions{
//		ResourceMetadataURL: "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
//		Scopes:              []string{"mcp:tools"},
//	})(mcp.NewStreamableHTTPHandler(getServer, nil))
//
// Tool handlers find the caller in req.Extra.TokenInfo: UserID is the
// token's subject (or client id), Scopes the granted scopes, and
// [AccessToken] returns the whole introspection answer.
//
// The SDK's middleware answers 401 for an invalid token, 403 for a scope
// listed in RequireBearerTokenOptions.Scopes that the token lacks, and 500
// for any other error, with the error text as the body. The verifier here
// therefore returns only generic errors: "invalid token" (401) and
// "authorization server unavailable" (500). Its challenges carry no
// error="…" attribute and it never answers 503; for RFC 6750 error
// attributes and a 503 with Retry-After during an outage, put
// [introspection.RequireBearerToken] in front of the MCP handler and
// [WithTokenInfo] behind it.
//
// The SDK checks TokenInfo.Expiration again, against time.Now and without
// the verifier's Settings.Leeway. So that it never refuses a token the
// verifier accepts, [TokenVerifier] and [RequireBearerToken] set Expiration
// to the token's exp plus Settings.Leeway, and [WithTokenInfo] turns the
// SDK's check off; [AccessToken] gives the exp itself.
package mcpsdk

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/modelcontextprotocol/go-sdk/auth"
)

// ErrUnavailable is returned to the SDK when the authorization server gave
// no usable answer. The SDK answers it with 500.
var ErrUnavailable = errors.New("authorization server unavailable")

// extraKey is the TokenInfo.Extra key under which the AccessToken is kept.
const extraKey = "introspection.access_token"

// TokenVerifier returns an auth.TokenVerifier backed by v, so that
// auth.RequireBearerToken(mcpsdk.TokenVerifier(v), opts) works.
//
// A token that v rejects, for any reason including a scope in
// Settings.RequiredScopes that it lacks, is reported as auth.ErrInvalidToken
// (401): failing closed. For a 403, name the scopes in
// RequireBearerTokenOptions.Scopes, which the SDK checks after this verifier
// has accepted the token, or use [RequireBearerToken], which does that for
// Settings.RequiredScopes too.
//
// The TokenInfo's Expiration is the token's exp plus Settings.Leeway, the
// last instant v accepts it. A nil v fails closed: every token is answered
// with [ErrUnavailable] (500).
func TokenVerifier(v *introspection.Verifier) auth.TokenVerifier {
	return verifier(v, false)
}

// RequireBearerToken is auth.RequireBearerToken with v, where the scopes of
// v's Settings.RequiredScopes are added to opts.Scopes so that a token that
// lacks one gets the SDK's 403 rather than 401. opts may be nil.
//
// A nil v fails closed: no request reaches the handler (the SDK answers 401
// without a token and 500 with one).
func RequireBearerToken(v *introspection.Verifier, opts *auth.RequireBearerTokenOptions) func(http.Handler) http.Handler {
	var o auth.RequireBearerTokenOptions
	if opts != nil {
		o = *opts
	}
	o.Scopes = slices.Clone(o.Scopes)
	if v != nil {
		for _, s := range v.RequiredScopes() {
			if !slices.Contains(o.Scopes, s) {
				o.Scopes = append(o.Scopes, s)
			}
		}
	}
	return auth.RequireBearerToken(verifier(v, true), &o)
}

// errNoVerifier is what a nil verifier answers every token with.
var errNoVerifier = fmt.Errorf("%w (no verifier)", ErrUnavailable)

// verifier adapts v. With scopesChecked, the SDK is known to check every
// required scope itself, so a token that lacks one is handed on with its
// granted scopes and the SDK answers 403.
func verifier(v *introspection.Verifier, scopesChecked bool) auth.TokenVerifier {
	if v == nil {
		return func(context.Context, string, *http.Request) (*auth.TokenInfo, error) {
			return nil, errNoVerifier
		}
	}
	leeway := v.Leeway()
	return func(ctx context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
		t, err := v.Verify(ctx, token)
		var se *introspection.ScopeError
		switch {
		case err == nil:
		case scopesChecked && errors.As(err, &se):
			// Every missing scope is in the SDK's Scopes, which it checks
			// before anything else of the TokenInfo: it answers 403.
			return &auth.TokenInfo{Scopes: se.Granted}, nil
		default:
			return nil, classify(err)
		}
		info := tokenInfo(t)
		if !info.Expiration.IsZero() {
			// The SDK checks Expiration again, without the verifier's
			// Leeway: hand it the last instant the verifier accepts.
			info.Expiration = info.Expiration.Add(leeway)
		}
		return info, nil
	}
}

func classify(err error) error {
	if errors.Is(err, introspection.ErrInvalidToken) || errors.Is(err, introspection.ErrInsufficientScope) {
		return auth.ErrInvalidToken
	}
	return ErrUnavailable
}

// tokenInfo converts t. The bearer token itself is left out: the MCP
// authorization spec forbids passing it on.
func tokenInfo(accepted *introspection.AccessToken) *auth.TokenInfo {
	t := *accepted
	t.Token = ""
	userID := t.Subject
	if userID == "" {
		userID = t.ClientID
	}
	return &auth.TokenInfo{
		Scopes:     t.Scopes,
		Expiration: t.ExpiresAt,
		UserID:     userID,
		Extra: map[string]any{
			extraKey:    &t,
			"client_id": t.ClientID,
			"subject":   t.Subject,
		},
	}
}

// AccessToken returns the introspection answer behind info, as made by this
// package's verifiers. Its Token field is empty.
func AccessToken(info *auth.TokenInfo) (*introspection.AccessToken, bool) {
	if info == nil {
		return nil, false
	}
	t, ok := info.Extra[extraKey].(*introspection.AccessToken)
	return t, ok
}

// WithTokenInfo hands the token that [introspection.RequireBearerToken]
// accepted on to the SDK, so that tool handlers find it in
// req.Extra.TokenInfo as with [RequireBearerToken]:
//
//	introspection.RequireBearerToken(v, opts)(mcpsdk.WithTokenInfo(mcpHandler))
//
// It does not introspect again and checks nothing again: exp (with
// Settings.Leeway), scopes and audience were checked by the verifier in
// front, so the SDK's own expiry check is turned off. TokenInfo.Expiration is
// the token's exp. A request that did not pass introspection.RequireBearerToken
// gets 401, except a CORS preflight, which that middleware hands on without a
// token and which goes to h unchanged (a CORS layer there answers it).
func WithTokenInfo(h http.Handler) http.Handler {
	fromContext := func(ctx context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
		t, ok := introspection.AccessTokenFromContext(ctx)
		if !ok || t.Token != token {
			return nil, auth.ErrInvalidToken
		}
		return tokenInfo(t), nil
	}
	checked := auth.RequireBearerToken(fromContext, &auth.RequireBearerTokenOptions{
		AllowMissingExpiration: true,          // the verifier allows tokens without exp
		ClockSkew:              checkedExpiry, // and has checked exp with its Leeway
	})(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := introspection.AccessTokenFromContext(r.Context()); !ok && isPreflight(r) {
			// introspection.RequireBearerToken hands CORS preflights on
			// without a token; they are for the CORS layer behind it.
			h.ServeHTTP(w, r)
			return
		}
		checked.ServeHTTP(w, r)
	})
}

// isPreflight reports whether r is a CORS preflight without credentials, as
// introspection.RequireBearerToken recognizes one.
func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" &&
		r.Header.Get("Access-Control-Request-Method") != "" && len(r.Header.Values("Authorization")) == 0
}

// checkedExpiry is the SDK's ClockSkew behind a verifier that has already
// checked exp: the longest duration, so that the SDK never refuses a token
// for its Expiration (time.Time.Add saturates rather than wraps).
const checkedExpiry = time.Duration(math.MaxInt64)
