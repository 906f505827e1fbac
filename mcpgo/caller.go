package mcpgo

import (
	"context"
	"net/http"

	"github.com/mcpauth/introspection/internal/challenge"

	"github.com/mcpauth/introspection"
)

// Options configure [WithCaller]. The zero value is ready to use.
type Options struct {
	// UserIDWithIssuer makes the user id the token's issuer (iss), "|" and
	// its caller, for servers that accept the tokens of more than one
	// issuer: the same subject from two issuers is then two users. A token
	// without iss, or whose iss holds a "|" (which would make two pairs read
	// alike), is refused with 401. False means the caller alone.
	UserIDWithIssuer bool
	// SessionKey is the HMAC-SHA256 key that binds session ids to their
	// user. Nil means a random key of the handler's own: its session ids
	// are good only at that handler and until the process ends. Replicas
	// that serve one another's sessions need one key, of at least
	// [MinSessionKeySize] bytes, kept as secret as a signing key. WithCaller
	// copies it, and panics when it is shorter.
	SessionKey []byte
	// ResourceMetadataURL is the RFC 9728 protected resource metadata URL,
	// as given to introspection.MiddlewareOptions.ResourceMetadataURL, sent
	// as resource_metadata in the 401 challenges that WithCaller answers
	// itself, as the MCP authorization spec asks of every challenge. Empty
	// means none is sent. A URL with a character that RFC 6750 §3 does not
	// allow there (one outside %x21 / %x23-5B / %x5D-7E, such as a space
	// or '"') makes WithCaller answer every request with 500.
	ResourceMetadataURL string
}

// userIDKey is the context key of the user id.
type userIDKey struct{}

// UserID returns the user id that [WithCaller] computed for the request
// whose context is ctx: the token's caller, or with
// Options.UserIDWithIssuer its issuer, "|" and its caller. mcp-go hands tool
// handlers, and every other handler of a request, a context derived from
// the request's, so they find it there. ok is false outside WithCaller.
func UserID(ctx context.Context) (id string, ok bool) {
	id, ok = ctx.Value(userIDKey{}).(string)
	return id, ok && id != ""
}

// WithCaller hands the caller of the token that
// [introspection.RequireBearerToken] accepted on to h, an mcp-go
// server.StreamableHTTPServer, and binds h's sessions to that caller:
//
//	introspection.RequireBearerToken(v, opts)(mcpgo.WithCaller(server.NewStreamableHTTPServer(s), nil))
//
// The user id is the token's [introspection.AccessToken.Caller]: its
// subject, or for a token without one and without a username (a
// client-credentials token, where the client acts for itself) its client
// id. Handlers find it with [UserID]. A token that names no caller gets 401
// error="invalid_token", since a session cannot be bound to nobody; so does
// a user's token that names its user by username but has no sub, since its
// client id is shared by all the client's users. WithCaller's 401
// challenges carry Options.ResourceMetadataURL as resource_metadata, as the
// middleware's do; a URL that cannot be sent there (see
// [Options].ResourceMetadataURL) makes every request, CORS preflights
// included, get 500 without reaching h.
//
// Session ids are bound to the user who opened the session: the id mcp-go
// issues on initialize reaches the client sealed with an HMAC of the user
// id, and a request that carries an Mcp-Session-Id whose seal does not
// match its own user id gets 403 "session user mismatch", as the go-sdk
// answers, and never reaches h. A request with more than one Mcp-Session-Id
// header gets 400. h sees only the ids it issued. The binding holds no
// state: nothing is kept per session, so nothing is to be dropped when a
// session is deleted or expires, and replicas with the same
// Options.SessionKey accept one another's ids. A server in stateless mode
// (server.WithStateLess) issues no ids and works as before, but for
// resuming event streams; a session id sent to it anyway is refused as
// above.
//
// A request that resumes an event stream (Last-Event-ID, with
// server.WithEventStore) without an Mcp-Session-Id gets 400 and never
// reaches h: mcp-go's event store knows which session an event belongs to,
// never which caller, so without a session it would replay any caller's
// events to whoever names their id. mcp-go's stateful modes answer such a
// request 400 themselves; in stateless mode, and under protocol revision
// 2026-07-28, which has no sessions, streams cannot be resumed, and a
// client whose stream broke sends its request again.
//
// h finds the token itself with [introspection.AccessTokenFromContext].
// WithCaller does not introspect again and checks nothing of the token
// again. A request that did not pass introspection.RequireBearerToken gets
// 401, except a CORS preflight, which that middleware hands on without a
// token and which goes to h unchanged (a CORS layer there answers it).
// opts may be nil.
func WithCaller(h http.Handler, opts *Options) http.Handler {
	var o Options
	if opts != nil {
		o = *opts
	}
	s, err := newSealer(o.SessionKey)
	if err != nil {
		panic(err.Error())
	}
	refuse, ok := challenge.InvalidToken(o.ResourceMetadataURL)
	if !ok {
		return challenge.FailClosed
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t, ok := introspection.AccessTokenFromContext(r.Context())
		if !ok {
			if challenge.IsPreflight(r) {
				h.ServeHTTP(w, r)
				return
			}
			refuse(w, r)
			return
		}
		user, ok := userID(t, o.UserIDWithIssuer)
		if !ok {
			// A session cannot be bound to nobody.
			refuse(w, r)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), userIDKey{}, user))
		switch ids := r.Header.Values(sessionHeader); {
		case len(ids) > 1:
			http.Error(w, "more than one "+sessionHeader, http.StatusBadRequest)
			return
		case len(ids) == 1 && ids[0] != "":
			id, ok := s.open(user, ids[0])
			if !ok {
				http.Error(w, "session user mismatch", http.StatusForbidden)
				return
			}
			r.Header = r.Header.Clone()
			r.Header.Set(sessionHeader, id)
		case len(r.Header.Values(lastEventIDHeader)) > 0:
			// mcp-go's event store keys a stateless server's events by
			// nothing but their id: without a session, a resumption could
			// replay anyone's events.
			http.Error(w, lastEventIDHeader+" without "+sessionHeader, http.StatusBadRequest)
			return
		}
		sw := &sealingWriter{ResponseWriter: w, seal: func(id string) string { return s.seal(user, id) }}
		h.ServeHTTP(sw, r)
		// Headers that h set but never wrote go out after it returns.
		sw.sealHeader()
	})
}

// userID returns the user id of t, and false when t names no caller.
func userID(t *introspection.AccessToken, withIssuer bool) (string, bool) {
	id := t.Caller()
	if withIssuer {
		id = t.CallerWithIssuer()
	}
	return id, id != ""
}
