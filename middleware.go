package introspection

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MiddlewareOptions configure [RequireBearerToken].
type MiddlewareOptions struct {
	// ResourceMetadataURL is the RFC 9728 protected resource metadata URL,
	// sent as resource_metadata in every challenge, as the MCP
	// authorization spec asks. Empty means none is sent.
	ResourceMetadataURL string
	// Realm is sent as the challenge's realm. Empty means none is sent.
	Realm string
	// Scopes this route needs on top of Settings.RequiredScopes.
	Scopes []string
}

// defaultRetryAfter is sent with a 503 when the authorization server gave
// no Retry-After of its own.
const defaultRetryAfter = 5 * time.Second

// maxRetryAfter caps a Retry-After delay: the one read from the
// authorization server into [IntrospectionError].RetryAfter, and so the one
// the middleware sends with a 503, however large or far the server's value.
const maxRetryAfter = time.Hour

type contextKey struct{}

// AccessTokenFromContext returns the token that [RequireBearerToken] accepted
// for the request whose context is ctx.
func AccessTokenFromContext(ctx context.Context) (*AccessToken, bool) {
	t, ok := ctx.Value(contextKey{}).(*AccessToken)
	return t, ok
}

// ContextWithAccessToken returns a copy of ctx that carries t, for code that
// verifies tokens itself and for tests of handlers.
func ContextWithAccessToken(ctx context.Context, t *AccessToken) context.Context {
	return context.WithValue(ctx, contextKey{}, t)
}

// RequireBearerToken returns middleware that admits a request only with a
// bearer token (RFC 6750 §2.1) that v accepts and that holds opts.Scopes.
// The handler finds the token with [AccessTokenFromContext]. opts may be nil.
//
// It answers, with a WWW-Authenticate challenge per RFC 6750 §3 carrying
// realm, scope and resource_metadata (RFC 9728 §5.1) where set:
//   - 401 without error when the request has no bearer credentials;
//   - 400 error="invalid_request" for malformed bearer credentials, a token
//     in the URI query, or more than one Authorization header;
//   - 401 error="invalid_token" when v rejects the token;
//   - 403 error="insufficient_scope" with the needed scopes.
//
// When the authorization server gives no usable answer, the client is not
// at fault: it answers 503 with Retry-After (the server's, at most one hour;
// else 5 seconds) and no challenge. Response
// bodies are short and generic; they never carry the token or error details.
func RequireBearerToken(v *Verifier, opts *MiddlewareOptions) func(http.Handler) http.Handler {
	var o MiddlewareOptions
	if opts != nil {
		o = *opts
		o.Scopes = append([]string(nil), opts.Scopes...)
	}
	var scopes []string
	for _, sc := range append(append([]string(nil), v.s.RequiredScopes...), o.Scopes...) {
		if sc = filterAttr(sc); sc != "" {
			scopes = append(scopes, sc)
		}
	}
	c := challenger{
		realm:            filterQuoted(o.Realm),
		resourceMetadata: filterAttr(o.ResourceMetadataURL),
		scope:            strings.Join(scopes, " "),
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			token, ok, malformed := bearerToken(r)
			switch {
			case malformed:
				c.reject(w, http.StatusBadRequest, "invalid_request")
				return
			case !ok:
				c.reject(w, http.StatusUnauthorized, "")
				return
			}
			t, err := v.Verify(r.Context(), token)
			if err == nil {
				err = missingScopes(t.Scopes, o.Scopes)
			}
			switch {
			case err == nil:
				next.ServeHTTP(w, r.WithContext(ContextWithAccessToken(r.Context(), t)))
			case errors.Is(err, ErrInsufficientScope):
				c.reject(w, http.StatusForbidden, "insufficient_scope")
			case errors.Is(err, ErrInvalidToken):
				c.reject(w, http.StatusUnauthorized, "invalid_token")
			default:
				// The authorization server failed, or the request's own
				// context ended: either way nothing is known about the token.
				w.Header().Set("Retry-After", retryAfter(err))
				writeBody(w, http.StatusServiceUnavailable, "temporarily_unavailable")
			}
		})
	}
}

// retryAfter returns the Retry-After to send when err left the token
// unjudged: the authorization server's delay in whole seconds, rounded up
// and at most maxRetryAfter, or defaultRetryAfter when it gave none.
func retryAfter(err error) string {
	retry := defaultRetryAfter
	var ie *IntrospectionError
	if errors.As(err, &ie) && ie.RetryAfter > 0 {
		retry = min(ie.RetryAfter, maxRetryAfter)
	}
	return strconv.FormatInt(int64((retry+time.Second-1)/time.Second), 10)
}

// bearerToken extracts the token from the Authorization header. ok is false
// when there are no bearer credentials; malformed is true when there are
// some but they are not one valid RFC 6750 b64token in one header.
func bearerToken(r *http.Request) (token string, ok, malformed bool) {
	// RFC 6750 §2.3 allows the URI query, but the MCP authorization spec
	// forbids it (query strings end up in logs); refuse it outright.
	if strings.Contains(r.URL.RawQuery, "access_token") {
		if _, inQuery := r.URL.Query()["access_token"]; inQuery {
			return "", false, true
		}
	}
	values := r.Header.Values("Authorization")
	if len(values) == 0 {
		return "", false, false
	}
	if len(values) > 1 {
		return "", false, true
	}
	scheme, rest, _ := strings.Cut(values[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", false, false
	}
	token = strings.TrimLeft(rest, " ")
	if !validToken(token) {
		return "", false, true
	}
	return token, true, false
}

type challenger struct {
	realm, resourceMetadata, scope string
}

// reject writes an RFC 6750 §3 challenge and a short generic body.
func (c challenger) reject(w http.ResponseWriter, status int, code string) {
	var b strings.Builder
	b.WriteString("Bearer")
	sep := " "
	attr := func(name, value string) {
		if value == "" {
			return
		}
		b.WriteString(sep)
		b.WriteString(name)
		b.WriteString(`="`)
		b.WriteString(value)
		b.WriteString(`"`)
		sep = ", "
	}
	attr("realm", c.realm)
	attr("error", code)
	if code != "invalid_request" {
		attr("scope", c.scope)
	}
	attr("resource_metadata", c.resourceMetadata)
	w.Header().Set("WWW-Authenticate", b.String())
	if code == "" {
		code = "unauthorized"
	}
	writeBody(w, status, code)
}

func writeBody(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"error":"` + code + `"}` + "\n"))
}

// filterAttr keeps the characters RFC 6750 §3 allows in a scope token and an
// error_uri: %x21 / %x23-5B / %x5D-7E.
func filterAttr(s string) string {
	return strings.Map(func(r rune) rune {
		if r == 0x21 || r >= 0x23 && r <= 0x5B || r >= 0x5D && r <= 0x7E {
			return r
		}
		return -1
	}, s)
}

// filterQuoted keeps printable ASCII but for '"' and '\', for a realm.
func filterQuoted(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 0x20 && r <= 0x7E && r != '"' && r != '\\' {
			return r
		}
		return -1
	}, s)
}
