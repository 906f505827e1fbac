package introspectiontest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/url"
	"slices"
)

// Client authentication methods, by their RFC 7591 §2 names.
const (
	methodBasic     = "client_secret_basic"
	methodPost      = "client_secret_post"
	methodSecretJWT = "client_secret_jwt"
	methodKeyJWT    = "private_key_jwt"
)

// allMethods are the methods the server supports, in the order its metadata
// lists them when [Server.SetAuthMethods] has not limited them.
var allMethods = []string{methodBasic, methodPost, methodSecretJWT, methodKeyJWT}

// minSecretJWTSize is the shortest secret a client_secret_jwt assertion may
// be signed with: HS256 needs a key as long as its output (RFC 7518 §3.2).
const minSecretJWTSize = 32

// minRSAKeyBits is the smallest RSA key AddKeyClient takes (RFC 7518 §3.3).
const minRSAKeyBits = 2048

// basicChallenge is the WWW-Authenticate of a 401 for a Basic client.
const basicChallenge = `Basic realm="introspection"`

// authParams are the form parameters of client authentication.
var authParams = []string{"client_id", "client_secret", "client_assertion", "client_assertion_type"}

// AddKeyClient registers a client that authenticates with private_key_jwt
// (RFC 7523 §2.2), with assertions signed by the private half of key: an
// *rsa.PublicKey of at least 2048 bits (RS256 or PS256), an *ecdsa.PublicKey
// on P-256 (ES256) or P-384 (ES384), or an ed25519.PublicKey (EdDSA). A
// private key stands for its public key. Any other key panics. A client
// may have both a secret and a key.
func (s *Server) AddKeyClient(id string, key crypto.PublicKey) {
	if priv, ok := key.(interface{ Public() crypto.PublicKey }); ok {
		key = priv.Public()
	}
	if len(keyAlgs(key)) == 0 {
		panic(fmt.Sprintf("introspectiontest: AddKeyClient: a %T is not an RSA key of at least %d bits, an ECDSA P-256 or P-384 key, or an Ed25519 key", key, minRSAKeyBits))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keyClients[id] = key
}

// SetAuthMethods sets the client authentication methods the server accepts
// at both endpoints and lists in its metadata, in the order given:
// "client_secret_basic", "client_secret_post", "client_secret_jwt",
// "private_key_jwt". A request by any other method gets 401
// invalid_client. With no methods, all four are accepted, as at the start.
// An unknown method panics.
func (s *Server) SetAuthMethods(methods ...string) {
	var list []string
	for _, m := range methods {
		if !slices.Contains(allMethods, m) {
			panic(fmt.Sprintf("introspectiontest: SetAuthMethods: unsupported method %q", m))
		}
		if !slices.Contains(list, m) {
			list = append(list, m)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.methods = list
}

// acceptedMethods returns the methods accepted. s.mu must be held.
func (s *Server) acceptedMethods() []string {
	if s.methods == nil {
		return allMethods
	}
	return s.methods
}

func (s *Server) accepts(method string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.acceptedMethods(), method)
}

// challengeBasic reports whether a 401 for r carries a Basic challenge:
// when r tried Basic (RFC 6749 §5.2 asks for it then), or the server
// accepts Basic.
func (s *Server) challengeBasic(r *http.Request) bool {
	_, _, basic := r.BasicAuth()
	return basic || s.accepts(methodBasic)
}

// keyAlgs returns the JWS algorithms a client's key verifies, none if the
// key is not one the server takes.
func keyAlgs(key crypto.PublicKey) []string {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N != nil && k.N.BitLen() >= minRSAKeyBits {
			return []string{"RS256", "PS256"}
		}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return []string{"ES256"}
		case elliptic.P384():
			return []string{"ES384"}
		}
	case ed25519.PublicKey:
		if len(k) == ed25519.PublicKeySize {
			return []string{"EdDSA"}
		}
	}
	return nil
}

// invalidClient is the RFC 6749 §5.2 invalid_client answer, 401, with a
// description made as fmt.Sprintf makes it.
func invalidClient(format string, args ...any) *failure {
	return &failure{http.StatusUnauthorized, "invalid_client", fmt.Sprintf(format, args...)}
}

// authenticate authenticates the client of r, whose form is parsed, by the
// one method it uses, and returns its id.
func (s *Server) authenticate(r *http.Request) (string, *failure) {
	form := r.PostForm
	for _, p := range authParams {
		if len(form[p]) > 1 {
			return "", &failure{http.StatusBadRequest, "invalid_request", "parameter " + p + " is repeated"}
		}
	}
	if len(r.Header.Values("Authorization")) > 1 {
		return "", &failure{http.StatusBadRequest, "invalid_request", "more than one Authorization header"}
	}
	id, secret, basic := r.BasicAuth()
	if !basic && r.Header.Get("Authorization") != "" {
		return "", invalidClient("the Authorization header does not hold Basic client credentials")
	}
	_, postedID := form["client_id"]
	_, postedSecret := form["client_secret"]
	_, a := form["client_assertion"]
	_, at := form["client_assertion_type"]
	usesAssertion := a || at
	n := 0
	for _, used := range []bool{basic, postedSecret, usesAssertion} {
		if used {
			n++
		}
	}
	// With Basic, a client_id in the body is a second method too.
	if n > 1 || basic && postedID {
		return "", &failure{http.StatusBadRequest, "invalid_request", "more than one client authentication method (RFC 6749 §2.3)"}
	}
	var method string
	switch {
	case usesAssertion:
		return s.authenticateAssertion(form)
	case basic:
		method = methodBasic
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return "", &failure{http.StatusBadRequest, "invalid_request", "client credentials are not form-encoded"}
		}
	case postedID || postedSecret:
		method = methodPost
		id, secret = form.Get("client_id"), form.Get("client_secret")
	default:
		return "", invalidClient("no client authentication")
	}
	if !s.accepts(method) {
		return "", invalidClient("client authentication method %s is not accepted", method)
	}
	s.mu.Lock()
	want, ok := s.clients[id]
	s.mu.Unlock()
	if !ok || subtle.ConstantTimeCompare([]byte(want), []byte(secret)) != 1 {
		return "", invalidClient("client authentication failed")
	}
	return id, nil
}
