package interop

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/interop/oidcprovider"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDPoPInterop runs RFC 9449 end to end with parties that are not ours:
// oidc-provider issues DPoP-bound opaque access tokens to a client that
// proves possession of its key, and the npm package dpop makes that key and
// every proof. The middleware, with no DPoP settings (the allowed mode),
// accepts the bound token with its proof and refuses it as a Bearer token,
// with a proof of another key, with a replayed proof, and with a proof for
// another URL or method. Every request is answered from the cache, so each
// proof is checked on a cache hit.
func TestDPoPInterop(t *testing.T) {
	p := oidcprovider.Start(t)

	// The listener comes first: the token's audience is the server's URL.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	base := "http://" + l.Addr().String()
	resource := base + "/mcp"

	v := verifier(t, p, func(s *introspection.Settings) {
		s.CacheTTL = time.Minute
		s.Audience = []string{resource}
		s.RequiredScopes = []string{"mcp:tools"}
	})
	var handled atomic.Int64
	var seen atomic.Pointer[introspection.AccessToken]
	srv := &httptest.Server{Listener: l, Config: &http.Server{
		Handler: introspection.RequireBearerToken(v, nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			handled.Add(1)
			tok, ok := introspection.AccessTokenFromContext(r.Context())
			if !ok {
				http.Error(w, "no token in the context", http.StatusInternalServerError)
				return
			}
			seen.Store(tok)
			_, _ = io.WriteString(w, "ok")
		})),
	}}
	srv.Start()
	t.Cleanup(srv.Close)

	const (
		withProof = iota
		otherKey
		replayed
		otherURL
		otherMethod
	)
	got := p.DPoPToken(t, oidcprovider.DPoPOptions{
		Scopes:   []string{"mcp:tools"},
		Resource: resource,
		Proofs: []oidcprovider.ProofRequest{
			withProof:   {Method: http.MethodGet, URL: resource},
			otherKey:    {Method: http.MethodGet, URL: resource, OtherKey: true},
			replayed:    {Method: http.MethodGet, URL: resource},
			otherURL:    {Method: http.MethodGet, URL: base + "/other"},
			otherMethod: {Method: http.MethodPost, URL: resource},
		},
	})
	token, proofs := got.AccessToken, got.Proofs

	// The premise: oidc-provider bound the token to the key of the client's
	// proofs, and not to its other key.
	require.Equal(t, "DPoP", got.TokenType, "token endpoint's token_type")
	answer := p.Introspect(t, token)
	require.Equal(t, true, answer["active"])
	require.Equal(t, "DPoP", answer["token_type"])
	cnf, ok := answer["cnf"].(map[string]any)
	require.True(t, ok, "introspection answer has a cnf object: %v", answer["cnf"])
	require.Equal(t, jwkThumbprint(t, proofs[withProof]), cnf["jkt"], "cnf.jkt is the thumbprint of the proof's key")
	require.NotEqual(t, cnf["jkt"], jwkThumbprint(t, proofs[otherKey]), "the other key is another key")
	// Without its proof the token fails for its binding alone: the scope and
	// the audience are right. This answer fills the cache.
	_, err = v.Verify(context.Background(), token)
	require.ErrorIs(t, err, introspection.ErrProofRequired)
	require.Equal(t, uint64(1), v.Stats().UpstreamRequests)

	type send struct {
		scheme string // of the Authorization header
		proof  int    // index into proofs; -1: no DPoP header
	}
	tests := []struct {
		name      string
		sends     []send
		wantCodes []int  // one per send
		wantError string // error attribute of the last answer's challenge, on its scheme
	}{
		{"bound token with its proof", []send{{"DPoP", withProof}}, []int{200}, ""},
		{"bound token as Bearer", []send{{"Bearer", -1}}, []int{401}, "invalid_token"},
		{"proof made by another key", []send{{"DPoP", otherKey}}, []int{401}, "invalid_token"},
		{"same proof twice", []send{{"DPoP", replayed}, {"DPoP", replayed}}, []int{200, 401}, "invalid_dpop_proof"},
		{"proof for another URL", []send{{"DPoP", otherURL}}, []int{401}, "invalid_dpop_proof"},
		{"proof for another method", []send{{"DPoP", otherMethod}}, []int{401}, "invalid_dpop_proof"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for i, s := range tc.sends {
				before := handled.Load()
				seen.Store(nil)
				req, err := http.NewRequest(http.MethodGet, resource, nil)
				require.NoError(t, err)
				req.Header.Set("Authorization", s.scheme+" "+token)
				if s.proof >= 0 {
					req.Header.Set("DPoP", proofs[s.proof])
				}
				resp, err := srv.Client().Do(req)
				require.NoError(t, err)
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()

				assert.Equal(t, tc.wantCodes[i], resp.StatusCode, "request %d", i+1)
				if tc.wantCodes[i] == http.StatusOK {
					assert.Equal(t, before+1, handled.Load(), "the handler ran for request %d", i+1)
					if tok := seen.Load(); assert.NotNil(t, tok, "request %d", i+1) {
						assert.Equal(t, token, tok.Token)
						assert.Equal(t, oidcprovider.DPoPClientID, tok.ClientID)
						assert.Equal(t, "DPoP", tok.TokenType)
						assert.Equal(t, []string{resource}, tok.Audience)
					}
					continue
				}
				assert.Equal(t, before, handled.Load(), "the handler ran for refused request %d", i+1)
				c := challengeFor(resp.Header.Values("WWW-Authenticate"), s.scheme)
				assert.Contains(t, c, `error="`+tc.wantError+`"`, "the %s challenge of request %d in %q",
					s.scheme, i+1, resp.Header.Values("WWW-Authenticate"))
			}
		})
	}
	assert.Equal(t, uint64(1), v.Stats().UpstreamRequests, "one introspection, then cache hits")
}

// TestDPoPInteropEd25519 shows that a proof with alg Ed25519 (RFC 9864),
// which the dpop package sends for an Ed25519 key, is accepted for a token
// that oidc-provider bound to that key.
func TestDPoPInteropEd25519(t *testing.T) {
	p := oidcprovider.Start(t)
	v := verifier(t, p, nil)
	var handled atomic.Int64
	srv := httptest.NewServer(introspection.RequireBearerToken(v, nil)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		handled.Add(1)
	})))
	t.Cleanup(srv.Close)

	got := p.DPoPToken(t, oidcprovider.DPoPOptions{
		Scopes: []string{"mcp:tools"},
		Alg:    "Ed25519",
		Proofs: []oidcprovider.ProofRequest{{Method: http.MethodPost, URL: srv.URL + "/mcp"}},
	})
	require.Equal(t, "Ed25519", proofHeader(t, got.Proofs[0])["alg"])
	cnf, _ := p.Introspect(t, got.AccessToken)["cnf"].(map[string]any)
	require.Equal(t, jwkThumbprint(t, got.Proofs[0]), cnf["jkt"])

	req, err := http.NewRequest(http.MethodPost, srv.URL+"/mcp", strings.NewReader("{}"))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "DPoP "+got.AccessToken)
	req.Header.Set("DPoP", got.Proofs[0])
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "WWW-Authenticate: %q", resp.Header.Values("WWW-Authenticate"))
	assert.Equal(t, int64(1), handled.Load())
}

// challengeFor returns the challenge of scheme among the WWW-Authenticate
// values, or "" when there is none.
func challengeFor(values []string, scheme string) string {
	for _, v := range values {
		if len(v) > len(scheme) && strings.EqualFold(v[:len(scheme)], scheme) && v[len(scheme)] == ' ' {
			return v
		}
	}
	return ""
}

// proofHeader decodes the JOSE header of a proof.
func proofHeader(t *testing.T, proof string) map[string]any {
	t.Helper()
	head, _, ok := strings.Cut(proof, ".")
	require.True(t, ok, "a proof is a JWS")
	b, err := base64.RawURLEncoding.DecodeString(head)
	require.NoError(t, err)
	var h map[string]any
	require.NoError(t, json.Unmarshal(b, &h))
	return h
}

// jwkThumbprint is the RFC 7638 SHA-256 thumbprint of the jwk in a proof's
// header: the required members of its key type, in lexicographic order,
// without white space.
func jwkThumbprint(t *testing.T, proof string) string {
	t.Helper()
	jwk, ok := proofHeader(t, proof)["jwk"].(map[string]any)
	require.True(t, ok, "the proof's header has a jwk")
	var members []string
	switch jwk["kty"] {
	case "EC":
		members = []string{"crv", "kty", "x", "y"}
	case "OKP":
		members = []string{"crv", "kty", "x"}
	case "RSA":
		members = []string{"e", "kty", "n"}
	default:
		t.Fatalf("jwk of kty %v", jwk["kty"])
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, m := range members {
		s, ok := jwk[m].(string)
		require.True(t, ok, "jwk member %s is a string", m)
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"` + m + `":"` + s + `"`)
	}
	b.WriteByte('}')
	sum := sha256.Sum256([]byte(b.String()))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
