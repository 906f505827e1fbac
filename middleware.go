package introspection

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcpauth/introspection/internal/challenge"
)

// MiddlewareOptions configure [RequireBearerToken].
type MiddlewareOptions struct {
	// ResourceMetadataURL is the RFC 9728 protected resource metadata URL,
	// sent as resource_metadata in every challenge, as the MCP
	// authorization spec asks. Empty means none is sent.
	ResourceMetadataURL string
	// Realm is sent as the challenge's realm. Empty means none is sent.
	Realm string
	// Scopes this route needs on top of Settings.RequiredScopes, checked
	// under Settings.ScopeMatcher. Each must be an RFC 6749 §3.3
	// scope-token (%x21 / %x23-5B / %x5D-7E): with one that is not, the
	// middleware answers every request with 500.
	Scopes []string
	// Operation, if set, reads what a request asks to do once its token is
	// verified, for scopes that depend on the request, such as one per MCP
	// tool ([MCPOperation]). Nil means no per-operation scopes, and the
	// middleware never reads a body that is not form-encoded.
	Operation OperationFunc
}

// defaultRetryAfter is sent with a 503 when the authorization server gave
// no Retry-After of its own.
const defaultRetryAfter = 5 * time.Second

// maxRetryAfter caps a Retry-After delay: the one read from the
// authorization server into [IntrospectionError].RetryAfter, and so the one
// the middleware sends with a 503, however large or far the server's value.
const maxRetryAfter = time.Hour

// maxErrorDescription caps the error_description of a 403 challenge, in
// bytes; a longer one is cut and ends in "...".
const maxErrorDescription = 256

// offlineAccess is the scope that asks for refresh tokens. A resource
// server should not ask a client for it (MCP authorization spec), so no
// challenge lists it.
const offlineAccess = "offline_access"

// maxFormScan caps the form-encoded request body that [RequireBearerToken]
// reads to look for an access_token parameter. A longer one gets 400: it
// cannot be checked without reading it all.
const maxFormScan = 64 << 10

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
// bearer token (RFC 6750 §2.1) that v accepts and that holds the scopes the
// request needs: Settings.RequiredScopes (checked by [Verifier.Verify]),
// opts.Scopes and, with opts.Operation set, the scopes of the operation it
// asks for, all under Settings.ScopeMatcher. The handler finds the token
// with [AccessTokenFromContext]. opts may be nil.
//
// With Settings.DPoP DPoPAllowed (the default) or DPoPRequired it also
// takes a token presented with the DPoP scheme (RFC 9449 §7.1) and one
// DPoP header holding a valid proof, checked on every request, cached
// answer or not; see [Settings] for the modes. A token bound to a key or a
// client certificate is accepted only with its proof.
//
// It answers, with a WWW-Authenticate challenge per RFC 6750 §3 carrying
// realm, scope and resource_metadata (RFC 9728 §5.1) where set, one for
// each scheme the mode takes (Bearer, then DPoP with algs), the error on
// that of the scheme the request used:
//   - 401 without error when the request has no bearer credentials;
//   - 400 error="invalid_request" for malformed bearer credentials, more
//     than one Authorization header, or a token in the URI query or in a
//     form-encoded body (RFC 6750 §2.2, §2.3), also beside a valid header: a
//     parameter whose name decodes to access_token, with "&" or ";" between
//     parameters. A form-encoded body over 64 KiB gets 400 too; a shorter
//     one is handed on to the handler as it came;
//   - 401 error="invalid_token" when v rejects the token;
//   - 401 error="invalid_dpop_proof" on the DPoP challenge when the proof
//     is missing, invalid or used before, and error="use_dpop_nonce"
//     with a DPoP-Nonce header when it lacks a valid server nonce;
//   - 403 error="insufficient_scope" when a scope is missing, with scope
//     listing every scope the request needs (Settings.RequiredScopes, then
//     opts.Scopes, then the operation's, each once and never
//     offline_access, which servers should not ask for) and, when the
//     operation has a Name, an error_description such as
//     "tool 'echo' needs mcp:tools mcp:echo": '"' becomes "'", other
//     characters RFC 6750 §3 does not allow are dropped, and it is cut to
//     256 bytes.
//
// The steps come in this order: credentials, then the token's
// verification, which checks what [Verifier.Verify] checks, then
// Settings.RequiredScopes (and records the DPoP proof once the token
// holds them), then reads opts.Operation, then decides the scopes of
// opts.Scopes and of the operation, so the operation, which may read the
// body, runs only for a token the server accepts, bound to what the
// request proves. When the token lacks only a scope of
// Settings.RequiredScopes, the operation is still read, so that the one
// 403 challenge lists every scope it needs. The verification's verdict,
// in [Stats] and for the Observer, covers every scope the request needs:
// a request refused for any of them is one insufficient_scope verdict,
// not also an acceptance. An error of opts.Operation refuses the request
// (before any 403): with 413 and no challenge when it wraps
// [ErrRequestTooLarge], else with 400 error="invalid_request"; its text
// is logged at debug level, never sent. The verdict is then that of the
// token without the request's own scopes.
//
// When the authorization server gives no usable answer, the client is not
// at fault: it answers 503 with Retry-After (the server's, at most one hour;
// else 5 seconds) and no challenge. Response bodies are short and generic;
// they never carry the token or error details.
//
// A CORS preflight (OPTIONS with Origin and Access-Control-Request-Method and
// no Authorization), which browsers send without credentials, goes to the
// handler unchecked and without a token in its context, so that a CORS
// layer behind the middleware can answer it.
//
// A rejection the middleware decides itself (no or malformed credentials, a
// missing scope of opts.Scopes or of the operation, an operation error) is
// logged at debug level with its reason through Settings.Logger, never with
// the token; [Verifier.Verify] logs its own.
//
// It fails closed, with 500 and without reaching the handler: for every
// request, preflights included, when v is nil or a scope of opts.Scopes is
// not an RFC 6749 §3.3 scope-token (logged once at error level when the
// middleware is made); for a request whose operation panics or names such
// a scope, or whose scope check panics in Settings.ScopeMatcher (a panic is
// recovered, counted in [Stats].Panics and logged without its value).
func RequireBearerToken(v *Verifier, opts *MiddlewareOptions) func(http.Handler) http.Handler {
	if v == nil {
		return failClosed
	}
	var o MiddlewareOptions
	if opts != nil {
		o = *opts
		o.Scopes = append([]string(nil), opts.Scopes...)
	}
	for _, sc := range o.Scopes {
		if !validScope(sc) {
			v.safely(func() {
				v.log.LogAttrs(context.Background(), slog.LevelError,
					"introspection: invalid scope in MiddlewareOptions.Scopes; every request gets 500",
					slog.String("scope", strconv.Quote(sc)))
			})
			return failClosed
		}
	}
	base := appendScopes(nil, v.s.RequiredScopes, offlineAccess)
	base = appendScopes(base, o.Scopes, offlineAccess)
	c := challenger{
		realm:            filterQuoted(o.Realm),
		resourceMetadata: filterAttr(o.ResourceMetadataURL),
		scope:            strings.Join(base, " "),
		algs:             strings.Join(v.dp.algList, " "),
	}
	if v.dp.mode != DPoPRequired {
		c.schemes = append(c.schemes, schemeBearer)
	}
	if v.dp.mode != DPoPOff {
		c.schemes = append(c.schemes, schemeDPoP)
	}
	staticScopes := func() []string { return o.Scopes }
	logRejection := func(r *http.Request, status int, reason string) {
		v.safely(func() {
			v.log.LogAttrs(r.Context(), slog.LevelDebug, "introspection: request rejected",
				slog.Int("status", status), slog.String("reason", reason))
		})
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if challenge.IsPreflight(r) {
				next.ServeHTTP(w, r)
				return
			}
			// With nonces on, every answer carries the current one
			// (RFC 9449 §8.2), whatever it is.
			if nonce, ok := v.currentNonce(r.Context()); !ok {
				v.observeUnverified(r.Context(), errNoncePanicked)
				w.Header().Set("Retry-After", strconv.Itoa(int(defaultRetryAfter/time.Second)))
				challenge.WriteError(w, http.StatusServiceUnavailable, "temporarily_unavailable")
				return
			} else if nonce != "" {
				w.Header().Set("DPoP-Nonce", nonce)
			}
			scheme, token, reason := credentials(r, v.dp.mode)
			switch {
			case reason != "":
				logRejection(r, http.StatusBadRequest, reason)
				c.reject(w, http.StatusBadRequest, "invalid_request", "")
				return
			case scheme == "":
				logRejection(r, http.StatusUnauthorized, "no credentials")
				c.reject(w, http.StatusUnauthorized, "", "")
				return
			}
			p := possession{r: r}
			rs := requestScopes{static: o.Scopes}
			if o.Operation != nil {
				p.scopes = func() []string { return rs.read(v, o.Operation, r) }
				p.readsRequest = true
			} else if len(o.Scopes) > 0 {
				p.scopes = staticScopes
			}
			var err error
			if scheme == schemeDPoP {
				p.proof, err = v.checkProof(r, token)
				v.observeUnverified(r.Context(), err)
			}
			var t *AccessToken
			if err == nil {
				t, err = v.verify(r.Context(), token, p)
			}
			var se *ScopeError // refused for a scope: of RequiredScopes, opts.Scopes or the operation
			switch {
			case err == nil:
			case errors.As(err, &se):
			case errors.Is(err, errMatcherPanicked):
				challenge.WriteError(w, http.StatusInternalServerError, "server_error")
				return
			case errors.Is(err, ErrUseDPoPNonce):
				c.reject(w, http.StatusUnauthorized, "use_dpop_nonce", schemeDPoP)
				return
			case errors.Is(err, ErrInvalidDPoPProof):
				c.reject(w, http.StatusUnauthorized, "invalid_dpop_proof", schemeDPoP)
				return
			case errors.Is(err, ErrInvalidToken):
				c.reject(w, http.StatusUnauthorized, "invalid_token", scheme)
				return
			default:
				// The authorization server or the replay store failed, or
				// the request's own context ended: either way nothing is
				// known about the token.
				w.Header().Set("Retry-After", retryAfter(err))
				challenge.WriteError(w, http.StatusServiceUnavailable, "temporarily_unavailable")
				return
			}

			ch := c
			if o.Operation != nil {
				// Read by the verification, as it decided the scopes.
				op := rs.op
				switch {
				case !rs.opRead: // never: a verdict on the scopes reads it
					challenge.WriteError(w, http.StatusInternalServerError, "server_error")
					return
				case rs.panicked:
					challenge.WriteError(w, http.StatusInternalServerError, "server_error")
					return
				case errors.Is(rs.err, ErrRequestTooLarge):
					logRejection(r, http.StatusRequestEntityTooLarge, rs.err.Error())
					challenge.WriteError(w, http.StatusRequestEntityTooLarge, "request_too_large")
					return
				case rs.err != nil:
					logRejection(r, http.StatusBadRequest, rs.err.Error())
					c.reject(w, http.StatusBadRequest, "invalid_request", scheme)
					return
				case rs.invalid:
					v.safely(func() {
						v.log.LogAttrs(r.Context(), slog.LevelError,
							"introspection: OperationFunc returned an invalid scope; the request gets 500")
					})
					challenge.WriteError(w, http.StatusInternalServerError, "server_error")
					return
				}
				if len(op.Scopes) > 0 {
					ch.scope = strings.Join(appendScopes(slices.Clip(base), op.Scopes, offlineAccess), " ")
				}
				if op.Name != "" {
					ch.description = describeOperation(op.Name, ch.scope)
				}
			}
			if se != nil {
				if mine := rs.missing(se); mine != nil {
					logRejection(r, http.StatusForbidden, mine.Error())
				}
				ch.reject(w, http.StatusForbidden, "insufficient_scope", scheme)
				return
			}
			next.ServeHTTP(w, r.WithContext(ContextWithAccessToken(r.Context(), t)))
		})
	}
}

// requestScopes are the scopes a request needs besides
// Settings.RequiredScopes, which the middleware hands to the verification
// (possession.scopes): opts.Scopes and the scopes of the operation that
// opts.Operation reads, once the token is valid.
type requestScopes struct {
	static []string // opts.Scopes
	need   []string // static and the operation's, once read

	opRead   bool      // the operation was read
	op       Operation // what it read
	err      error     // its error
	panicked bool      // it panicked (recovered, counted and logged)
	invalid  bool      // it named a scope that is not a scope-token
}

// read reads the operation of r with op, once, and returns the scopes the
// request needs besides RequiredScopes: none when the operation failed,
// which refuses the request whatever the scopes, so that the verdict is
// then the token's without them.
func (rs *requestScopes) read(v *Verifier, op OperationFunc, r *http.Request) []string {
	if rs.opRead {
		return rs.need
	}
	rs.opRead = true
	rs.op, rs.panicked, rs.err = v.operation(op, r)
	rs.invalid = !rs.panicked && rs.err == nil && slices.ContainsFunc(rs.op.Scopes, invalidScope)
	if rs.panicked || rs.err != nil || rs.invalid {
		return nil
	}
	rs.need = appendScopes(slices.Clip(rs.static), rs.op.Scopes, "")
	return rs.need
}

// missing returns, as a ScopeError, the scopes of the request's own that
// se lists as missing, in the order the request needs them, or nil when
// se lists only scopes of RequiredScopes.
func (rs *requestScopes) missing(se *ScopeError) *ScopeError {
	need := rs.static
	if rs.opRead {
		need = rs.need
	}
	var mine []string
	for _, sc := range need {
		if slices.Contains(se.Missing, sc) && !slices.Contains(mine, sc) {
			mine = append(mine, sc)
		}
	}
	if mine == nil {
		return nil
	}
	return &ScopeError{Missing: mine, Granted: se.Granted}
}

// failClosed is middleware that answers every request with 500 and lets
// none reach the next handler.
func failClosed(http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		challenge.WriteError(w, http.StatusInternalServerError, "server_error")
	})
}

// operation calls op for r. A panic in it is recovered, counted and logged
// once, and reported by panicked.
func (v *Verifier) operation(op OperationFunc, r *http.Request) (o Operation, panicked bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			o, panicked, err = Operation{}, true, nil
			_ = v.recovered(r.Context(), "OperationFunc", p)
		}
	}()
	o, err = op(r)
	return o, false, err
}

func invalidScope(s string) bool { return !validScope(s) }

// appendScopes appends to list each scope of add that list lacks, but for
// omit.
func appendScopes(list, add []string, omit string) []string {
	for _, sc := range add {
		if sc != omit && !slices.Contains(list, sc) {
			list = append(list, sc)
		}
	}
	return list
}

// describeOperation returns the error_description of a 403 challenge for
// the operation name that needs scopes (none to list: the name alone): '"'
// shown as "'", the characters RFC 6750 §3 does not allow dropped, and cut
// to maxErrorDescription bytes.
func describeOperation(name, scopes string) string {
	if scopes != "" {
		name += " needs " + scopes
	}
	s := strings.Map(func(r rune) rune {
		switch {
		case r == '"':
			return '\''
		case r >= 0x20 && r <= 0x7E && r != '\\':
			return r
		}
		return -1
	}, name)
	if len(s) > maxErrorDescription {
		s = s[:maxErrorDescription-len("...")] + "..."
	}
	return s
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

// The schemes of the Authorization header that [RequireBearerToken]
// accepts.
const (
	schemeBearer = "Bearer"
	schemeDPoP   = "DPoP"
)

// credentials reads the token of r from its one Authorization header,
// presented with the Bearer scheme (RFC 6750 §2.1), unless mode is
// DPoPRequired, or the DPoP scheme (RFC 9449 §7.1), unless mode is
// DPoPOff. scheme is "" when r has no credentials of an accepted scheme.
// reason says why, when the credentials are malformed: not one valid
// b64token in one header, or a token (also, or instead) in the URI query or
// a form-encoded body, which the MCP authorization spec forbids (query
// strings end up in logs) and RFC 6750 §2 forbids beside a header. r.Body is
// left for the next handler as it came.
func credentials(r *http.Request, mode DPoPMode) (scheme, token, reason string) {
	if hasAccessTokenParam(r.URL.RawQuery) {
		return "", "", "token in the URI query"
	}
	values := r.Header.Values("Authorization")
	switch {
	case len(values) > 1:
		return "", "", "more than one Authorization header"
	case len(values) == 1:
		name, rest, _ := strings.Cut(values[0], " ")
		switch {
		case strings.EqualFold(name, schemeBearer) && mode != DPoPRequired:
			scheme = schemeBearer
		case strings.EqualFold(name, schemeDPoP) && mode != DPoPOff:
			scheme = schemeDPoP
		}
		if scheme != "" {
			token = strings.TrimLeft(rest, " ")
			if !validToken(token) {
				return "", "", "malformed " + strings.ToLower(scheme) + " credentials"
			}
		}
	}
	if reason := formBodyToken(r); reason != "" {
		return "", "", reason
	}
	return scheme, token, ""
}

// hasAccessTokenParam reports whether the form-encoded q has a parameter
// whose name decodes to access_token, taking ";" as a separator as well as
// "&", as some servers do.
func hasAccessTokenParam(q string) bool {
	const name = "access_token"
	for q != "" {
		pair := q
		if i := strings.IndexAny(q, "&;"); i >= 0 {
			pair, q = q[:i], q[i+1:]
		} else {
			q = ""
		}
		key, _, _ := strings.Cut(pair, "=")
		if key == name {
			return true
		}
		if len(key) > len(name) && strings.ContainsAny(key, "%+") {
			if k, err := url.QueryUnescape(key); err == nil && k == name {
				return true
			}
		}
	}
	return false
}

// formBodyToken looks for an access_token parameter in a form-encoded body
// (RFC 6750 §2.2) and says why the request is malformed, or "". It reads at
// most maxFormScan+1 bytes and puts them back in front of the rest of the
// body, so the next handler reads the body as it came.
func formBodyToken(r *http.Request) string {
	if r.Body == nil || r.Body == http.NoBody || !isForm(r.Header.Values("Content-Type")) {
		return ""
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxFormScan+1))
	r.Body = replayBody{Reader: io.MultiReader(bytes.NewReader(b), r.Body), Closer: r.Body}
	switch {
	case err != nil:
		return "unreadable form-encoded body"
	case len(b) > maxFormScan:
		return "form-encoded body over " + strconv.Itoa(maxFormScan) + " bytes"
	case hasAccessTokenParam(string(b)):
		return "token in a form-encoded body"
	}
	return ""
}

// isForm reports whether any of the Content-Type values has the media type
// application/x-www-form-urlencoded, whatever its parameters.
func isForm(contentTypes []string) bool {
	for _, ct := range contentTypes {
		mt, _, _ := strings.Cut(ct, ";")
		if strings.EqualFold(strings.TrimSpace(mt), "application/x-www-form-urlencoded") {
			return true
		}
	}
	return false
}

// replayBody is a request body whose first bytes were read and put back.
type replayBody struct {
	io.Reader
	io.Closer
}

type challenger struct {
	realm, resourceMetadata, scope, description string
	// schemes are the challenges to send, in order: Bearer unless DPoP is
	// required, DPoP unless it is off.
	schemes []string
	algs    string // the DPoP challenge's algs
}

// reject writes an RFC 6750 §3 challenge for each scheme, and a short
// generic body. The error goes on the challenge of the scheme the request
// used, or on every challenge when used is "".
func (c challenger) reject(w http.ResponseWriter, status int, code, used string) {
	for _, scheme := range c.schemes {
		if used == "" || used == scheme {
			w.Header().Add("WWW-Authenticate", c.challenge(scheme, code))
		} else {
			w.Header().Add("WWW-Authenticate", c.challenge(scheme, ""))
		}
	}
	if code == "" {
		code = "unauthorized"
	}
	challenge.WriteError(w, status, code)
}

// challenge returns the challenge of one scheme, with error code when not
// empty.
func (c challenger) challenge(scheme, code string) string {
	var b strings.Builder
	b.WriteString(scheme)
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
	if code == "insufficient_scope" {
		attr("error_description", c.description)
	}
	if code != "invalid_request" {
		attr("scope", c.scope)
	}
	attr("resource_metadata", c.resourceMetadata)
	if scheme == schemeDPoP {
		attr("algs", c.algs)
	}
	return b.String()
}

// filterAttr keeps the characters RFC 6750 §3 allows in a scope token and an
// error_uri: %x21 / %x23-5B / %x5D-7E.
func filterAttr(s string) string {
	return strings.Map(func(r rune) rune {
		if challenge.IsAttrChar(r) {
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
