package introspectiontest

import (
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Default credentials of the resource server that [NewServer] registers.
const (
	ClientID     = "resource-server"
	ClientSecret = "p@ss:w+rd%/ x"
)

// Paths of the server's endpoints.
const (
	// IntrospectionPath is the path of the introspection endpoint.
	IntrospectionPath = "/introspect"
	// TokenPath is the path of the token endpoint.
	TokenPath = "/token"
	// MetadataPath is the path of the RFC 8414 authorization server
	// metadata.
	MetadataPath = "/.well-known/oauth-authorization-server"
	// OpenIDMetadataPath is the path of the OpenID Connect Discovery 1.0
	// provider metadata.
	OpenIDMetadataPath = "/.well-known/openid-configuration"
)

// TokenOptions describe a token to issue.
type TokenOptions struct {
	// ClientID is the client the token was issued to. Zero means "app".
	ClientID string
	Subject  string
	Username string
	Scopes   []string
	// Audience is sent as a string when it has one value, else an array.
	Audience []string
	// Lifetime is how long the token is active. Zero means one hour;
	// negative means it has already expired.
	Lifetime time.Duration
	// NoExpiry leaves exp out of the answer.
	NoExpiry bool
	// NotBefore, if set, is sent as nbf.
	NotBefore time.Time
	// TokenUse, if set, is sent as token_use (as Ory Hydra does).
	TokenUse string
	// DPoPKey, if set, binds the token to a DPoP key (RFC 9449 §6): the
	// answer has token_type DPoP and cnf.jkt set to it, the key's RFC 7638
	// thumbprint, such as [DPoPKey.Thumbprint] returns.
	DPoPKey string
	// Certificate, if set, binds the token to a client certificate
	// (RFC 8705 §3): cnf has x5t#S256 set to it, the base64url SHA-256 of
	// the certificate's DER.
	Certificate string
	// KeepActive keeps the token active after it expires: the answer is
	// active, with the past exp, so that a verifier's own exp check is
	// reached. Revocation still makes it inactive.
	KeepActive bool
	// Extra members are added to the answer; they override the others.
	Extra map[string]any
}

// Fault makes the introspection endpoint misbehave; the other endpoints
// answer normally. The zero Fault answers normally.
type Fault struct {
	// Latency delays every answer.
	Latency time.Duration
	// Status, if set, replaces the status code of the answer.
	Status int
	// Body, if set, replaces the body of the answer.
	Body string
	// ContentType, if set, replaces application/json. "-" sends none.
	ContentType string
	// Header is added to the answer.
	Header http.Header
}

type token struct {
	opts    TokenOptions
	issued  time.Time
	revoked bool
}

// Server is an RFC 7662 introspection server on 127.0.0.1. It is safe for
// concurrent use.
type Server struct {
	// URL is the base URL, such as http://127.0.0.1:12345.
	URL string
	// IntrospectionURL is URL + IntrospectionPath.
	IntrospectionURL string
	// TokenURL is URL + TokenPath.
	TokenURL string
	// Issuer is sent as iss and is the issuer of the metadata documents. It
	// is URL.
	Issuer string

	srv              *httptest.Server
	requests         atomic.Int64
	metadataRequests atomic.Int64

	mu         sync.Mutex                  // guards the fields below
	clients    map[string]string           // id to secret
	keyClients map[string]crypto.PublicKey // id to private_key_jwt key
	methods    []string                    // accepted client authentication methods; nil: all
	scopes     []string                    // scopes the token endpoint grants; nil: any
	jtis       *jtiMemory                  // client assertions seen
	tokens     map[string]*token
	perTok     map[string]int64 // introspection requests per token
	fault      Fault
	now        func() time.Time
}

// NewServer starts a server that knows the client [ClientID] with secret
// [ClientSecret]. Call Close when done.
func NewServer() *Server {
	s := &Server{
		clients:    map[string]string{ClientID: ClientSecret},
		keyClients: make(map[string]crypto.PublicKey),
		jtis:       newJTIMemory(maxSeenJTIs),
		tokens:     make(map[string]*token),
		perTok:     make(map[string]int64),
		now:        time.Now,
	}
	mux := http.NewServeMux()
	mux.HandleFunc(IntrospectionPath, s.introspect)
	mux.HandleFunc(TokenPath, s.token)
	mux.HandleFunc(MetadataPath, s.metadata(false))
	mux.HandleFunc(OpenIDMetadataPath, s.metadata(true))
	mux.HandleFunc(authorizationPath, s.authorize)
	mux.HandleFunc(jwksPath, s.jwks)
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL
	s.IntrospectionURL = s.URL + IntrospectionPath
	s.TokenURL = s.URL + TokenPath
	s.Issuer = s.URL
	return s
}

// Close shuts the server down and waits for its requests to end.
func (s *Server) Close() {
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// AddClient registers another client that may introspect and get tokens.
// It authenticates with its secret by client_secret_basic or
// client_secret_post, and, when the secret has at least 32 bytes (RFC 7518
// §3.2), by client_secret_jwt.
func (s *Server) AddClient(id, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[id] = secret
}

// SetNow sets the server's clock, used for iat, exp and activity, and for
// the exp, iat and nbf checks of client assertions.
func (s *Server) SetNow(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// Issue creates an opaque token and returns it.
func (s *Server) Issue(opts TokenOptions) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	tok := base64.RawURLEncoding.EncodeToString(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[tok] = &token{opts: opts, issued: s.now()}
	return tok
}

// Revoke makes token inactive.
func (s *Server) Revoke(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tokens[tok]; t != nil {
		t.revoked = true
	}
}

// SetFault makes every following introspection answer misbehave as f says.
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

// Requests returns the number of introspection requests received.
func (s *Server) Requests() int64 { return s.requests.Load() }

// MetadataRequests returns the number of requests received at
// [MetadataPath] and [OpenIDMetadataPath].
func (s *Server) MetadataRequests() int64 { return s.metadataRequests.Load() }

// RequestsFor returns the number of authenticated introspection requests
// for tok.
func (s *Server) RequestsFor(tok string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perTok[tok]
}

func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	s.mu.Lock()
	fault := s.fault
	s.mu.Unlock()
	// Read the body first: only then does net/http notice that the client
	// went away and cancel r.Context().
	_ = r.ParseForm()
	if fault.Latency > 0 {
		t := time.NewTimer(fault.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	status, body := s.answer(r)
	if fault.Status != 0 {
		status = fault.Status
	}
	raw, _ := json.Marshal(body)
	if fault.Body != "" {
		raw = []byte(fault.Body)
	}
	switch fault.ContentType {
	case "":
		w.Header().Set("Content-Type", "application/json")
	case "-":
		w.Header()["Content-Type"] = nil
	default:
		w.Header().Set("Content-Type", fault.ContentType)
	}
	for k, v := range fault.Header {
		w.Header()[k] = v
	}
	s.setAnswerHeaders(w, r, status)
	w.WriteHeader(status)
	_, _ = w.Write(raw)
}

// setAnswerHeaders sets the headers that an answer with status to r needs
// at an endpoint that authenticates clients: a Basic challenge with a 401
// when challengeBasic says so, Allow with a 405, and Cache-Control
// no-store (RFC 6749 §5.1).
func (s *Server) setAnswerHeaders(w http.ResponseWriter, r *http.Request, status int) {
	if status == http.StatusUnauthorized && s.challengeBasic(r) {
		w.Header().Set("WWW-Authenticate", basicChallenge)
	}
	if status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodPost)
	}
	w.Header().Set("Cache-Control", "no-store")
}

func oauthError(code, desc string) map[string]any {
	return map[string]any{"error": code, "error_description": desc}
}

// failure is an RFC 6749 §5.2 error answer.
type failure struct {
	status int
	code   string
	desc   string
}

func (f *failure) answer() (int, map[string]any) { return f.status, oauthError(f.code, f.desc) }

// readForm checks that r is a POST of a form with no query parameters, as
// both endpoints that take client authentication ask, and parses it.
func readForm(r *http.Request) *failure {
	if r.Method != http.MethodPost {
		return &failure{http.StatusMethodNotAllowed, "invalid_request", "use POST"}
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		return &failure{http.StatusBadRequest, "invalid_request", "body must be application/x-www-form-urlencoded"}
	}
	if err := r.ParseForm(); err != nil {
		return &failure{http.StatusBadRequest, "invalid_request", "unreadable form"}
	}
	if len(r.URL.RawQuery) > 0 {
		return &failure{http.StatusBadRequest, "invalid_request", "parameters belong in the body"}
	}
	return nil
}

// answer authenticates the caller and builds the RFC 7662 §2.2 answer.
func (s *Server) answer(r *http.Request) (int, map[string]any) {
	if f := readForm(r); f != nil {
		return f.answer()
	}
	if _, f := s.authenticate(r); f != nil {
		return f.answer()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tok := r.PostForm.Get("token")
	if tok == "" {
		return http.StatusBadRequest, oauthError("invalid_request", "token is required")
	}
	s.perTok[tok]++
	t := s.tokens[tok]
	now := s.now()
	if t == nil || t.revoked {
		return http.StatusOK, map[string]any{"active": false}
	}
	lifetime := t.opts.Lifetime
	if lifetime == 0 {
		lifetime = time.Hour
	}
	exp := t.issued.Add(lifetime)
	if !t.opts.NoExpiry && !t.opts.KeepActive && !now.Before(exp) {
		return http.StatusOK, map[string]any{"active": false}
	}
	clientID := t.opts.ClientID
	if clientID == "" {
		clientID = "app"
	}
	out := map[string]any{
		"active":     true,
		"client_id":  clientID,
		"token_type": "Bearer",
		"iat":        t.issued.Unix(),
		"iss":        s.Issuer,
	}
	if !t.opts.NoExpiry {
		out["exp"] = exp.Unix()
	}
	if len(t.opts.Scopes) > 0 {
		out["scope"] = strings.Join(t.opts.Scopes, " ")
	}
	if t.opts.Subject != "" {
		out["sub"] = t.opts.Subject
	}
	if t.opts.Username != "" {
		out["username"] = t.opts.Username
	}
	switch len(t.opts.Audience) {
	case 0:
	case 1:
		out["aud"] = t.opts.Audience[0]
	default:
		out["aud"] = t.opts.Audience
	}
	if !t.opts.NotBefore.IsZero() {
		out["nbf"] = t.opts.NotBefore.Unix()
	}
	if t.opts.TokenUse != "" {
		out["token_use"] = t.opts.TokenUse
	}
	if t.opts.DPoPKey != "" || t.opts.Certificate != "" {
		cnf := map[string]any{}
		if t.opts.DPoPKey != "" {
			cnf["jkt"] = t.opts.DPoPKey
			out["token_type"] = "DPoP"
		}
		if t.opts.Certificate != "" {
			cnf["x5t#S256"] = t.opts.Certificate
		}
		out["cnf"] = cnf
	}
	maps.Copy(out, t.opts.Extra)
	return http.StatusOK, out
}
