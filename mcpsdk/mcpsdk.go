// Package mcpsdk connects an [introspection.Verifier] to the official Go MCP
// SDK, github.com/modelcontextprotocol/go-sdk.
//
// The one way to wire it puts [introspection.RequireBearerToken] in front of
// the SDK's streamable HTTP handler and [WithTokenInfo] behind it:
//
//	v, err := introspection.NewVerifier(settings)
//	if err != nil {
//		return err
//	}
//	defer v.Close()
//	op, err := introspection.MCPOperation(introspection.MCPScopes{Tools: toolScopes})
//	if err != nil {
//		return err
//	}
//	handler := introspection.RequireBearerToken(v, &introspection.MiddlewareOptions{
//		ResourceMetadataURL: metadataURL,
//		Operation:           op,
//	})(mcpsdk.WithTokenInfo(mcp.NewStreamableHTTPHandler(getServer, nil), &mcpsdk.Options{
//		ResourceMetadataURL: metadataURL,
//	}))
//
// The middleware in front checks the token and its scopes with
// Settings.ScopeMatcher, so that scope hierarchies hold: those of
// Settings.RequiredScopes, and those that the JSON-RPC request needs, per
// tool, as [introspection.MCPOperation] reads them. It answers with RFC 6750
// challenges; a 403 lists every scope the call needs. [WithTokenInfo] hands
// the accepted token on to the SDK: tool handlers find the caller in
// req.Extra.TokenInfo, whose UserID is [introspection.AccessToken.Caller]
// (or, with [Options].UserIDWithIssuer, the issuer, "|" and the caller),
// whose Scopes are the granted scopes, and from which [AccessTokenFromInfo]
// returns the whole introspection answer. A stateful handler binds each
// session to that UserID: another caller's token on the session's
// Mcp-Session-Id gets the SDK's 403 "session user mismatch". [FilterTools]
// hides from tools/list the tools that the caller's token cannot call.
//
// [TokenVerifier] is for servers that keep the SDK's own middleware,
// auth.RequireBearerToken, instead. That middleware checks the scopes of its
// RequireBearerTokenOptions.Scopes, by exact match and the same for every
// request, and sends no error="…" attribute. The two wirings answer these
// requests differently when each requires the scope mcp:tools where its
// doc says, the first in Settings.RequiredScopes, the second in
// RequireBearerTokenOptions.Scopes:
//
//	request                       RequireBearerToken+WithTokenInfo  auth.RequireBearerToken+TokenVerifier
//	no Authorization header       401                               401
//	Authorization: Bearer a b     400 error="invalid_request"       401, no error attribute
//	unknown token                 401 error="invalid_token"         401, no error attribute
//	token without exp             200                               401 (200 with AllowMissingExpiration)
//	token without mcp:tools       403 error="insufficient_scope"    403, no error attribute
//	token naming no caller        401 error="invalid_token"         401, no error attribute
//	authorization server failing  503 with Retry-After              500 "authorization server unavailable"
//	DPoP token with its proof     200                               401, no error attribute
//	DPoP token as Bearer          401 error="invalid_token"         401, no error attribute
//
// Every 401 and 403 there carries resource_metadata: WithTokenInfo's 401
// for a token naming no caller carries its [Options].ResourceMetadataURL.
//
// A DPoP token is one bound to the client's key (cnf.jkt, RFC 9449), sent
// as "Authorization: DPoP <token>" with a proof in a DPoP header. Only the
// first wiring serves DPoP clients: the middleware in front checks the
// proof per Settings.DPoP, and WithTokenInfo shows the SDK's middleware
// behind it the verified token with the Bearer scheme, the only one that
// middleware reads, while the SDK's handler gets the request's own
// headers. The SDK's own middleware takes Bearer only and never hands a
// proof on, so with [TokenVerifier] a bound token is refused, also as
// Bearer ([introspection.Verifier.Verify] refuses it with
// [introspection.ErrProofRequired]), and under DPoPRequired every token is.
//
// The SDK checks TokenInfo.Expiration again, against time.Now and without
// the verifier's Settings.Leeway. So that it never refuses a token the
// verifier accepts, [TokenVerifier] sets Expiration to the token's exp plus
// Settings.Leeway, and [WithTokenInfo] turns the SDK's check off;
// [AccessTokenFromInfo] gives the exp itself.
package mcpsdk

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/mcpauth/introspection/internal/challenge"

	"github.com/mcpauth/introspection"
	"github.com/modelcontextprotocol/go-sdk/auth"
)

// ErrUnavailable is returned to the SDK when the authorization server gave
// no usable answer. The SDK answers it with 500.
var ErrUnavailable = errors.New("authorization server unavailable")

// extraKey is the TokenInfo.Extra key under which the AccessToken is kept.
const extraKey = "introspection.access_token"

// Options configure [WithTokenInfo]. The zero Options are the defaults.
type Options struct {
	// UserIDWithIssuer makes TokenInfo.UserID the token's issuer (iss), "|"
	// and its caller, rather than the caller alone, for servers that trust
	// several issuers, where two of them may name different parties alike.
	// A token then needs an iss without "|"; one without gets 401.
	UserIDWithIssuer bool
	// ResourceMetadataURL is the RFC 9728 protected resource metadata URL,
	// as given to introspection.MiddlewareOptions.ResourceMetadataURL, sent
	// as resource_metadata in the 401 challenges that WithTokenInfo answers
	// itself, as the MCP authorization spec asks of every challenge. Empty
	// means none is sent. A URL with a character that RFC 6750 §3 does not
	// allow there (one outside %x21 / %x23-5B / %x5D-7E, such as a space
	// or '"') makes WithTokenInfo answer every request with 500.
	ResourceMetadataURL string
}

// TokenVerifier returns an auth.TokenVerifier backed by v, for servers that
// keep the SDK's own middleware:
//
//	auth.RequireBearerToken(mcpsdk.TokenVerifier(v), opts)
//
// That middleware answers 500 during an outage of the authorization server,
// sends no error="…" attribute, and checks the scopes of its options by exact
// match, the same for every request: it honours neither
// Settings.ScopeMatcher nor per-tool scopes. The package doc shows the
// wiring that does.
//
// A token that v rejects, for any reason including a scope in
// Settings.RequiredScopes that it lacks, is reported as auth.ErrInvalidToken
// (401): failing closed. For a 403, name the scopes in
// RequireBearerTokenOptions.Scopes too, which the SDK checks after this
// verifier has accepted the token. A token that names no caller
// ([introspection.AccessToken.Caller] is empty) is reported as
// auth.ErrInvalidToken too: TokenInfo.UserID is the caller.
//
// That middleware reads only the Bearer scheme, so no DPoP proof reaches
// this verifier: a token bound to a key (DPoP, or a client certificate)
// is refused as auth.ErrInvalidToken, and under Settings.DPoP
// DPoPRequired every token is. Serve DPoP clients with the wiring of the
// package doc.
//
// The TokenInfo's Expiration is the token's exp plus Settings.Leeway, the
// last instant v accepts it. A nil v fails closed: every token is answered
// with [ErrUnavailable] (500).
func TokenVerifier(v *introspection.Verifier) auth.TokenVerifier {
	if v == nil {
		return func(context.Context, string, *http.Request) (*auth.TokenInfo, error) {
			return nil, errNoVerifier
		}
	}
	leeway := v.Leeway()
	return func(ctx context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
		t, err := v.Verify(ctx, token)
		if err != nil {
			return nil, classify(err)
		}
		info := tokenInfo(t, Options{})
		if info == nil {
			return nil, auth.ErrInvalidToken
		}
		if !info.Expiration.IsZero() {
			// The SDK checks Expiration again, without the verifier's
			// Leeway: hand it the last instant the verifier accepts.
			info.Expiration = info.Expiration.Add(leeway)
		}
		return info, nil
	}
}

// errNoVerifier is what a nil verifier answers every token with.
var errNoVerifier = fmt.Errorf("%w (no verifier)", ErrUnavailable)

func classify(err error) error {
	if errors.Is(err, introspection.ErrInvalidToken) || errors.Is(err, introspection.ErrInsufficientScope) {
		return auth.ErrInvalidToken
	}
	return ErrUnavailable
}

// userID returns the TokenInfo.UserID for t under o, or "" when t names no
// caller or, with o.UserIDWithIssuer, no issuer that can be part of one.
func userID(t *introspection.AccessToken, o Options) string {
	if o.UserIDWithIssuer {
		return t.CallerWithIssuer()
	}
	return t.Caller()
}

// tokenInfo converts t, or returns nil when it gives no UserID under o. The
// bearer token itself is left out: the MCP authorization spec forbids
// passing it on.
func tokenInfo(accepted *introspection.AccessToken, o Options) *auth.TokenInfo {
	id := userID(accepted, o)
	if id == "" {
		return nil
	}
	t := *accepted
	t.Token = ""
	return &auth.TokenInfo{
		Scopes:     t.Scopes,
		Expiration: t.ExpiresAt,
		UserID:     id,
		Extra: map[string]any{
			extraKey:    &t,
			"client_id": t.ClientID,
			"subject":   t.Subject,
		},
	}
}

// AccessTokenFromInfo returns the introspection answer behind info, as
// [WithTokenInfo] and [TokenVerifier] made it. Its Token field is empty.
func AccessTokenFromInfo(info *auth.TokenInfo) (*introspection.AccessToken, bool) {
	if info == nil {
		return nil, false
	}
	t, ok := info.Extra[extraKey].(*introspection.AccessToken)
	return t, ok
}

// infoKey is the context key under which WithTokenInfo hands the TokenInfo
// to the SDK's middleware.
type infoKey struct{}

// WithTokenInfo hands the token that [introspection.RequireBearerToken]
// accepted on to the SDK, so that tool handlers find it in
// req.Extra.TokenInfo and the SDK binds sessions to its UserID. The package
// doc shows the wiring. opts may be nil.
//
// TokenInfo.UserID is [introspection.AccessToken.Caller]: the subject, or
// for a client-credentials token without one (and without a username) the
// client id. A token that names no caller, a user's token that names its
// user by username but has no sub included, gets 401
// error="invalid_token", since a session cannot be bound to nobody, nor to
// the client that all its users share; so does, with
// Options.UserIDWithIssuer, a token without a usable issuer. Its 401
// challenges carry Options.ResourceMetadataURL as resource_metadata, as
// the middleware's do; a URL that cannot be sent there (see
// [Options].ResourceMetadataURL) makes every request, CORS preflights
// included, get 500 without reaching h.
//
// A request with the DPoP scheme (RFC 9449 §7.1), whose proof the
// middleware in front checked, reaches the SDK's middleware with the same
// token under the Bearer scheme, the only one it reads; h gets the
// request with its own headers.
//
// It does not introspect again and checks nothing else again: exp (with
// Settings.Leeway), scopes and audience were checked by the middleware in
// front, so the SDK's own expiry check is turned off. TokenInfo.Expiration
// is the token's exp. A request that did not pass
// introspection.RequireBearerToken gets 401, except a CORS preflight, which
// that middleware hands on without a token and which goes to h unchanged (a
// CORS layer there answers it).
func WithTokenInfo(h http.Handler, opts *Options) http.Handler {
	var o Options
	if opts != nil {
		o = *opts
	}
	refuse, ok := challenge.InvalidToken(o.ResourceMetadataURL)
	if !ok {
		return challenge.FailClosed
	}
	fromContext := func(ctx context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
		t, ok := introspection.AccessTokenFromContext(ctx)
		info, _ := ctx.Value(infoKey{}).(*auth.TokenInfo)
		if !ok || info == nil || t.Token != token {
			return nil, auth.ErrInvalidToken
		}
		return info, nil
	}
	checked := auth.RequireBearerToken(fromContext, &auth.RequireBearerTokenOptions{
		ResourceMetadataURL:    o.ResourceMetadataURL,
		AllowMissingExpiration: true,          // the verifier allows tokens without exp
		ClockSkew:              checkedExpiry, // and has checked exp with its Leeway
	})(restoreHeader(h))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t, ok := introspection.AccessTokenFromContext(r.Context())
		if !ok && challenge.IsPreflight(r) {
			// introspection.RequireBearerToken hands CORS preflights on
			// without a token; they are for the CORS layer behind it.
			h.ServeHTTP(w, r)
			return
		}
		var info *auth.TokenInfo
		if ok {
			info = tokenInfo(t, o)
		}
		if info == nil {
			refuse(w, r)
			return
		}
		ctx := context.WithValue(r.Context(), infoKey{}, info)
		if bearer, ok := asBearer(r.Header.Values("Authorization")); ok {
			// The SDK's middleware reads only the Bearer scheme: show it
			// the DPoP token, whose proof the middleware in front checked,
			// as one, and give h the request's own header back.
			ctx = context.WithValue(ctx, headerKey{}, r.Header)
			r = r.WithContext(ctx)
			r.Header = r.Header.Clone()
			r.Header.Set("Authorization", bearer)
			checked.ServeHTTP(w, r)
			return
		}
		checked.ServeHTTP(w, r.WithContext(ctx))
	})
}

// headerKey is the context key under which WithTokenInfo keeps the header
// of a DPoP request while the SDK's middleware sees it as a Bearer one.
type headerKey struct{}

// asBearer returns the one Authorization header of the DPoP scheme (RFC
// 9449 §7.1) as the same credentials with the Bearer scheme, and false
// for any other header.
func asBearer(authorization []string) (string, bool) {
	if len(authorization) != 1 {
		return "", false
	}
	scheme, token, ok := strings.Cut(authorization[0], " ")
	if !ok || !strings.EqualFold(scheme, "DPoP") {
		return "", false
	}
	return "Bearer " + token, true
}

// restoreHeader returns h, handed the request with the header it came
// with when WithTokenInfo changed its scheme for the SDK's middleware.
func restoreHeader(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if header, ok := r.Context().Value(headerKey{}).(http.Header); ok {
			r = r.WithContext(r.Context())
			r.Header = header
		}
		h.ServeHTTP(w, r)
	})
}

// checkedExpiry is the SDK's ClockSkew behind a verifier that has already
// checked exp: the longest duration, so that the SDK never refuses a token
// for its Expiration (time.Time.Add saturates rather than wraps).
const checkedExpiry = time.Duration(math.MaxInt64)
